"""The tap as a subprocess: its own process group, its stdout read line by line with an idle
timeout, its stderr kept in a log file, and always stopped and reaped.

``TapProcess`` is a context manager: leaving it (normally, on an error, or because the
generator reading it was closed) stops the tap — SIGTERM to its whole process group, then
SIGKILL after a grace period — and waits for it, so no tap and no child of a tap is left
behind. Messages name the log file and the setting to change; they never quote what the
tap printed (it may hold personal data).
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO

from hub.errors import ConfigError, FatalError

log = logging.getLogger(__name__)

GRACE_SECONDS = 5.0  # SIGTERM -> SIGKILL
MAX_LINE_BYTES = 64 * 1024 * 1024  # one Singer message; past it the tap is not speaking Singer
KEEP_LOGS = 20  # stderr logs kept per connector
_CHUNK = 1 << 16

# What a tap inherits from the worker's environment: locale, paths and proxies. Not the
# rest: the worker's environment holds the secrets of every connector it runs.
PASSED_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "SYSTEMROOT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
)


def tap_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The tap's environment: ``PASSED_ENV`` from the worker, then the connector's own."""
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env.update(extra)
    return env


class TapLogs:
    """Where a connector's tap runs write their stderr: one file per run, newest kept."""

    def __init__(self, root: Path | None, connector: str) -> None:
        base = root if root is not None else Path(tempfile.gettempdir()) / "crm-hub-singer"
        self.dir = base / connector

    def new(self, mode: str) -> Path:
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the tap log directory {self.dir} ({exc.strerror}); "
                "set log.dir to a writable directory"
            ) from None
        self._prune()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        return self.dir / f"{stamp}-{mode}.stderr.log"

    def _prune(self) -> None:
        logs = sorted(self.dir.glob("*.stderr.log"))
        for old in logs[: max(0, len(logs) - KEEP_LOGS + 1)]:
            with contextlib.suppress(OSError):
                old.unlink()


class TapProcess:
    """One run of a tap (``with TapProcess(...) as tap: for line in tap.lines(): ...``)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        idle_timeout: float,
        who: str,
        timeout_setting: str = "idle.timeout.seconds",
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.idle_timeout = idle_timeout
        self.who = who  # "connector x", for messages
        self.timeout_setting = timeout_setting
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self.lines_read = 0

    # -- lifetime ----------------------------------------------------------------------------

    def __enter__(self) -> TapProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._stderr = self.log_path.open("wb")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=self.env,
                start_new_session=True,  # its own process group: stopped as a whole
            )
        except FileNotFoundError:
            self._close_log()
            raise ConfigError(
                f"{self.who}: the tap command {self.argv[0]!r} was not found; check "
                "tap.command (an executable on the worker's PATH, or its full path)"
            ) from None
        except OSError as exc:
            self._close_log()
            raise ConfigError(
                f"{self.who}: the tap command {self.argv[0]!r} cannot be started "
                f"({exc.strerror}); check tap.command"
            ) from None
        log.debug("%s: tap started (pid %s), stderr in %s", self.who, self.proc.pid, self.log_path)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    def interrupt(self) -> None:
        """Ask the tap's process group to stop (from another thread: the reader then sees
        the end of its output; ``stop`` reaps it)."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)

    def stop(self) -> None:
        """Stop the tap and every process of its group; reap it. Safe to call twice."""
        proc = self.proc
        if proc is None:
            return
        if proc.stdout is not None:  # first: a tap blocked on a full pipe gets EPIPE
            proc.stdout.close()
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        _signal_group(proc.pid, signal.SIGKILL)  # children it left behind
        self._close_log()

    def _close_log(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    # -- reading -------------------------------------------------------------------------------

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def _hung(self, what: str) -> FatalError:
        return FatalError(
            f"{self.who}: the tap {what} for {self.idle_timeout:g} s ({self.timeout_setting}) "
            f"and was stopped; its log is {self.log_path}. Raise {self.timeout_setting} if the "
            "source is only slow, else fix the tap and restart the connector"
        )

    def lines(self) -> Iterator[bytes]:
        """The tap's stdout, one line at a time (without the newline). Silence on stdout
        and stderr for ``idle_timeout`` seconds is a hung tap (FatalError). Returns at the
        end of stdout once the tap has exited: read ``returncode`` then."""
        proc = self.proc
        assert proc is not None, "start() first"
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        pending: list[bytes] = []
        pending_size = 0
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            log_size = self._log_size()
            while True:
                if not selector.select(self.idle_timeout):
                    size = self._log_size()
                    if size != log_size:  # busy, logging to stderr: not hung
                        log_size = size
                        continue
                    raise self._hung("wrote nothing")
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    break
                if b"\n" not in chunk:
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size > MAX_LINE_BYTES:
                        raise FatalError(
                            f"{self.who}: the tap wrote a line longer than "
                            f"{MAX_LINE_BYTES // (1024 * 1024)} MiB on stdout (line "
                            f"{self.lines_read + 1}); it was stopped, and its log is "
                            f"{self.log_path}"
                        )
                    continue
                parts = chunk.split(b"\n")
                if pending:
                    parts[0] = b"".join([*pending, parts[0]])
                    pending, pending_size = [], 0
                rest = parts.pop()
                if rest:
                    pending, pending_size = [rest], len(rest)
                for line in parts:
                    self.lines_read += 1
                    yield line
        if pending:
            self.lines_read += 1
            yield b"".join(pending)
        try:
            proc.wait(self.idle_timeout)
        except subprocess.TimeoutExpired:
            raise self._hung("closed its output but did not exit") from None


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def exit_reason(returncode: int) -> str:
    """``exited with code 1`` or ``was killed by SIGKILL``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"


__all__ = [
    "GRACE_SECONDS",
    "MAX_LINE_BYTES",
    "PASSED_ENV",
    "TapLogs",
    "TapProcess",
    "exit_reason",
    "tap_environment",
]
