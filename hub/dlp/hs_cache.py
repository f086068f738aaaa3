"""Compiled hyperscan databases kept on disk, so a process that builds the DLP engine loads
what an earlier one compiled instead of compiling again.

Compiling the recognizers' database takes ~0.4 s of the ~0.6 s it takes to build the
engine; every `crmhub dlp` command and every processor start paid it. A database is keyed
by everything its compilation reads: the expressions with their ids, flags and lengths
(the caller's `material`), the hyperscan package's version and the machine's architecture.
A file holds a header (the facts the caller derived while compiling, and the SHA-256 of the
database bytes) and the bytes of ``hyperscan.dumpb``. Anything that does not read back
whole — a torn write, another format, bytes that do not match their digest, a database
hyperscan refuses (another CPU) — is a miss: the caller compiles and stores it again.
Nothing here can change what the engine finds, only how soon it starts.

Where: ``$HUB_DLP_CACHE_DIR`` (``off`` turns the cache off), else
``$XDG_CACHE_HOME/crmhub/dlp`` or ``~/.cache/crmhub/dlp``, created 0700. Whoever can
write there can change what the engine detects, as whoever can write the hub's code can:
keep it the hub user's own. At most `KEEP` databases are kept (the oldest go).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import tempfile
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV = "HUB_DLP_CACHE_DIR"
MAGIC = b"crmhub-hsdb/1\n"
KEEP = 64
SUFFIX = ".hsdb"


def directory() -> Path | None:
    """The cache directory, or None when the cache is off."""
    configured = os.environ.get(ENV, "").strip()
    if configured.lower() == "off":
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "crmhub" / "dlp"


def key(material: object) -> str:
    """The file name stem for a database compiled from `material` (its ``repr`` must
    name everything the compilation reads) on this kind of CPU."""
    text = repr(("hyperscan", version("hyperscan"), platform.machine(), _cpu(), material))
    return hashlib.sha256(text.encode()).hexdigest()


@cache
def _cpu() -> str:
    """The CPU's feature flags, where Linux tells them: hyperscan compiles for the features
    of the CPU it runs on, so a cache directory shared by other hosts keeps theirs apart."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    return " ".join(sorted(line.partition(":")[2].split()))
    except OSError:
        pass
    return platform.processor()


def load(hs: Any, stem: str, fields: tuple[str, ...]) -> tuple[Any, dict[str, Any]] | None:
    """(the database, or None for an empty one; the stored facts), or None on a miss. Each
    of `fields` must be in the facts, a list of integers."""
    where = directory()
    if where is None:
        return None
    path = where / (stem + SUFFIX)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        if not data.startswith(MAGIC):
            raise ValueError("not a cached database")
        header_end = data.index(b"\n", len(MAGIC))
        header = json.loads(data[len(MAGIC) : header_end])
        body = data[header_end + 1 :]
        if hashlib.sha256(body).hexdigest() != header["sha256"]:
            raise ValueError("digest mismatch")
        facts: dict[str, Any] = header["facts"]
        for name in fields:
            if not all(isinstance(n, int) for n in facts[name]):
                raise ValueError(f"{name} is not a list of integers")
        db = None
        if body:
            db = hs.loadb(body, hs.HS_MODE_BLOCK)
            db.scratch = hs.Scratch(db)  # compile makes one; a loaded database has none
    except (ValueError, KeyError, TypeError, hs.error) as exc:
        log.warning("ignoring the cached DLP database %s (%s); compiling", path, exc)
        return None
    return db, facts


def store(hs: Any, stem: str, db: Any, facts: dict[str, Any]) -> None:
    """Keep `db` (None: empty) and `facts` (JSON) under `stem`; a cache that cannot be
    written is only logged."""
    where = directory()
    if where is None:
        return
    body = b"" if db is None else bytes(hs.dumpb(db))
    header = json.dumps({"sha256": hashlib.sha256(body).hexdigest(), "facts": facts})
    tmp: str | None = None
    try:
        where.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=where, suffix=".tmp", delete=False) as f:
            tmp = f.name
            f.write(MAGIC + header.encode() + b"\n" + body)
        os.replace(tmp, where / (stem + SUFFIX))  # whole or not at all
        tmp = None
        _prune(where)
    except OSError as exc:
        log.info("cannot keep the compiled DLP database in %s: %s", where, exc.strerror)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _prune(where: Path) -> None:
    """Drop the least recently written databases past `KEEP`."""
    files = sorted(where.glob("*" + SUFFIX), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in files[KEEP:]:
        stale.unlink(missing_ok=True)
