"""Child-process hygiene shared by the supervisor and the embedded broker."""

from __future__ import annotations

import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1
# Resolved once in the parent: the child, between fork and exec, only makes the call.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """In a child, before exec: ask Linux to send SIGTERM when the parent dies, so a
    supervisor killed with SIGKILL leaves no orphan workers."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
