"""Which DLP modules are compiled (mypyc, see ``setup.py``), and whether the compiled ones
are in use.

The modules in `COMPILED` run per candidate or per text. An install compiles them into one
extension library (``hub_dlp_native__mypyc``) plus one small extension per module, and
Python imports an extension before a source file of the same name. Two cases run the
sources instead, for every compiled module at once (a compiled module calls the other
compiled ones inside the library, so a mix of old and new code is never an option):

- ``HUB_DLP_PURE=1`` in the environment (a profiler that should see Python frames, or a
  comparison of the two);
- a source changed after the build (a checkout, an edit): the compiled code is not what the
  file says, so the sources win and a warning says to rebuild (``make`` reinstalls when a
  compiled source changes).

`status` tells which case holds; the DLP bench prints it next to its figures, and refuses
to run on a stale or missing build (`unmeasurable`).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

RECOGNIZERS = (
    "aba_routing",
    "aws_access_key",
    "aws_secret_key",
    "credit_card",
    "date_of_birth",
    "de_tax_id",
    "email",
    "es_nif",
    "fr_nir",
    "github_token",
    "iban",
    "ip_address",
    "it_fiscal_code",
    "jwt",
    "medical_record_number",
    "nl_bsn",
    "phone",
    "private_key",
    "slack_token",
    "stripe_key",
    "uk_nhs",
    "us_bank_account",
    "us_driver_license",
    "us_passport",
    "us_ssn",
)
COMPILED = (
    "hub.dlp.base",
    "hub.dlp.engine",
    "hub.dlp.hyperscan_matcher",
    "hub.dlp.phone_validity",
    *(f"hub.dlp.recognizers.{name}" for name in RECOGNIZERS),
)
PURE_ENV = "HUB_DLP_PURE"
_ROOT = Path(__file__).resolve().parents[2]  # the directory that holds the hub package


def source_of(module: str, root: Path = _ROOT) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def extension_of(module: str, root: Path = _ROOT) -> Path | None:
    """The module's compiled extension file, if the build made one."""
    source = source_of(module, root)
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = source.with_suffix(suffix)
        if candidate.exists():
            return candidate
    return None


def stale(modules: Sequence[str] = COMPILED, root: Path = _ROOT) -> list[str]:
    """The compiled modules whose source changed after their extension was built."""
    out = []
    for module in modules:
        ext = extension_of(module, root)
        source = source_of(module, root)
        if ext is not None and source.exists() and source.stat().st_mtime > ext.stat().st_mtime:
            out.append(module)
    return out


class _SourcesFirst(importlib.abc.MetaPathFinder):
    """Imports the compiled modules from their ``.py`` sources."""

    def __init__(self, modules: Sequence[str], root: Path) -> None:
        self.modules = frozenset(modules)
        self.root = root

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.modules:
            return None
        source = source_of(fullname, self.root)
        if not source.exists():
            return None
        return importlib.util.spec_from_file_location(fullname, source)


_state = "interpreted (not built)"


def select() -> str:
    """Decide once, before any compiled module is imported (``hub.dlp`` calls it), whether
    the compiled modules or their sources run; returns `status`."""
    global _state  # noqa: PLW0603 - decided once per process
    if any(isinstance(f, _SourcesFirst) for f in sys.meta_path):
        return _state
    built = [m for m in COMPILED if extension_of(m) is not None]
    changed = stale(built)
    if os.environ.get(PURE_ENV) == "1":
        _state = f"interpreted ({PURE_ENV}=1)"
    elif changed:
        _state = "interpreted (sources changed since the build; run make to rebuild)"
        log.warning(
            "DLP: %d compiled module(s) are older than their sources (%s); running the "
            "sources. Rebuild with `make` (pip install -e .) to run the compiled engine.",
            len(changed),
            ", ".join(changed[:3]),
        )
    elif built:
        _state = "compiled (mypyc)"
        return _state
    else:
        return _state
    sys.meta_path.insert(0, _SourcesFirst(COMPILED, _ROOT))
    return _state


def status() -> str:
    """Either "compiled (mypyc)" or "interpreted (…why…)"."""
    return _state


def unmeasurable() -> str | None:
    """Why a benchmark of the DLP engine in this process would measure the wrong code, or
    None: it runs the compiled build, or the sources on purpose (``HUB_DLP_PURE=1``). A
    build older than its sources, or none at all, silently runs the sources about 2.5
    times slower; the DLP benches refuse to report that as the engine's speed."""
    if _state in ("compiled (mypyc)", f"interpreted ({PURE_ENV}=1)"):
        return None
    return (
        f"the DLP engine runs {_state}, not its compiled build. Rebuild with "
        f"`make .venv/.installed-dev` (pip install -e .), or set {PURE_ENV}=1 to measure "
        "the interpreted engine on purpose"
    )


def compiled_file(path: str | None) -> bool:
    """Whether a module's ``__file__`` is a compiled extension."""
    return bool(path) and any(str(path).endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES)
