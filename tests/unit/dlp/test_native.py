"""The compiled DLP hot path (`hub.dlp.native`, built by setup.py with mypyc): the install
compiles it, the compiled engine finds exactly what its Python sources find, and a source
that changed after the build is never shadowed by its old compiled code."""

from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TypedDict

import pytest

import hub.dlp.engine
from hub.dlp import native

ROOT = Path(__file__).resolve().parents[3]

# Scans the corpus in a fresh interpreter and prints the findings and which code ran.
_SCAN = """
import json
from bench.dlp_corpus import generate
from hub.dlp import native, registry
from hub.dlp.engine import Engine

engine = Engine(registry.load(), backend="hyperscan")
corpus = generate(400, seed=23)
found = [
    [[f.field, *f.finding] for f in fs]
    for fs in engine.scan_records([r.fields for r in corpus.records], min_score=0.0)
]
print(json.dumps({"status": native.status(), "findings": found}))
"""


class ScanResult(TypedDict):
    """What _SCAN prints: which code ran, and each record's findings as [field, *finding]."""

    status: str
    findings: list[list[list[object]]]


def _scan(**env: str) -> ScanResult:
    out = subprocess.run(
        [sys.executable, "-c", _SCAN],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result: ScanResult = json.loads(out.stdout)
    return result


def test_the_install_compiled_the_engine() -> None:
    """`make` builds the compiled engine; this process runs it (a failed build installs the
    sources, which would only show as a slower engine)."""
    assert os.environ.get(native.PURE_ENV) != "1", "run the suite without HUB_DLP_PURE=1"
    assert native.stale() == [], "compiled DLP modules are older than their sources: run make"
    assert native.status() == "compiled (mypyc)"
    assert native.compiled_file(hub.dlp.engine.__file__)
    missing = [m for m in native.COMPILED if native.extension_of(m) is None]
    assert missing == []


def test_compiled_is_every_recognizer() -> None:
    """The list setup.py compiles names every recognizer module there is."""
    on_disk = {
        p.stem for p in (ROOT / "hub" / "dlp" / "recognizers").glob("*.py") if p.stem != "__init__"
    }
    assert set(native.RECOGNIZERS) == on_disk


def test_compiled_and_sources_find_the_same() -> None:
    compiled = _scan()
    sources = _scan(**{native.PURE_ENV: "1"})
    assert compiled["status"] == "compiled (mypyc)"
    assert sources["status"] == f"interpreted ({native.PURE_ENV}=1)"
    assert compiled["findings"] == sources["findings"]
    assert sum(map(len, compiled["findings"])) > 400


def _fake_build(root: Path, module: str, *, source_age: float, ext_age: float) -> None:
    source = native.source_of(module, root)
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text("X = 1\n")
    ext = source.with_suffix(importlib.machinery.EXTENSION_SUFFIXES[0])
    ext.write_bytes(b"")
    now = time.time()
    os.utime(source, (now - source_age, now - source_age))
    os.utime(ext, (now - ext_age, now - ext_age))


def test_stale_lists_modules_edited_after_the_build(tmp_path: Path) -> None:
    _fake_build(tmp_path, "hub.dlp.engine", source_age=10, ext_age=100)  # edited since
    _fake_build(tmp_path, "hub.dlp.base", source_age=100, ext_age=10)  # built since
    native.source_of("hub.dlp.phone_validity", tmp_path).write_text("X = 1\n")  # not built
    modules = ["hub.dlp.engine", "hub.dlp.base", "hub.dlp.phone_validity"]
    assert native.stale(modules, tmp_path) == ["hub.dlp.engine"]
    assert native.extension_of("hub.dlp.phone_validity", tmp_path) is None


def test_sources_first_finder_loads_the_py_file(tmp_path: Path) -> None:
    _fake_build(tmp_path, "pkgx.mod", source_age=10, ext_age=100)
    finder = native._SourcesFirst(["pkgx.mod"], tmp_path)
    spec = finder.find_spec("pkgx.mod", None)
    assert spec is not None
    assert spec.origin == str(tmp_path / "pkgx" / "mod.py")
    assert finder.find_spec("pkgx.other", None) is None


# Imports a compiled module of each kind and prints which code runs and from where.
_WHICH = (
    "import logging, json; logging.basicConfig(level=logging.WARNING)\n"
    "import hub.dlp.native as n, hub.dlp.engine as e, hub.dlp.recognizers.phone as p\n"
    "print(json.dumps([n.status(), e.__file__, p.__file__]))\n"
)


def _built_copy(tmp_path: Path) -> Path:
    """A copy of the built package (sources, extensions and the shared library, with their
    modification times)."""
    if native.status() != "compiled (mypyc)":
        pytest.fail(f"needs the compiled build; this process runs: {native.status()}")
    copy = tmp_path / "tree"
    shutil.copytree(ROOT / "hub", copy / "hub", ignore=shutil.ignore_patterns("__pycache__"))
    for lib in ROOT.glob("hub_dlp_native__mypyc*"):
        shutil.copy2(lib, copy / lib.name)
    return copy


def _which(copy: Path) -> tuple[str, str, str, str]:
    """(status, engine file, phone recognizer file, log) of a process importing `copy`."""
    out = subprocess.run(
        [sys.executable, "-c", _WHICH],
        cwd=copy,
        env={**os.environ, "PYTHONPATH": str(copy)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    status, engine_file, phone_file = json.loads(out.stdout)
    return status, engine_file, phone_file, out.stderr


def test_a_built_copy_runs_compiled(tmp_path: Path) -> None:
    """The copy, untouched, runs its compiled modules (so the test below is about the
    edit, not about the copy)."""
    copy = _built_copy(tmp_path)
    status, engine_file, phone_file, _ = _which(copy)
    assert status == "compiled (mypyc)"
    assert Path(engine_file).parent == copy / "hub" / "dlp"
    assert native.compiled_file(engine_file)
    assert native.compiled_file(phone_file)


@pytest.mark.parametrize("edit", ["hub/dlp/engine.py", "hub/dlp/recognizers/phone.py"])
def test_an_edited_source_runs_instead_of_its_old_build(tmp_path: Path, edit: str) -> None:
    """One source newer than its extension: every compiled module runs from source (never
    a mix of old and new code), and the log says to rebuild."""
    copy = _built_copy(tmp_path)
    os.utime(copy / edit)  # edited after the build
    status, engine_file, phone_file, log = _which(copy)
    assert engine_file == str(copy / "hub" / "dlp" / "engine.py")
    assert phone_file == str(copy / "hub" / "dlp" / "recognizers" / "phone.py")
    assert status.startswith("interpreted (sources changed since the build")
    assert "older than their sources" in log


_BENCH = "from bench.dlp_engine import main; main(['--mb', '0.01', '--repeat', '1'])"


def test_the_dlp_bench_refuses_to_measure_an_old_build(tmp_path: Path) -> None:
    """A source edited after the build makes the engine run interpreted, ~2.5 times slower:
    the bench says so and measures nothing, rather than report that as the engine's speed.
    With ``HUB_DLP_PURE=1`` (the interpreted engine on purpose) it measures."""
    copy = _built_copy(tmp_path)
    os.utime(copy / "hub/dlp/engine.py")  # edited after the build
    env = {**os.environ, "PYTHONPATH": f"{copy}{os.pathsep}{ROOT}"}
    env.pop(native.PURE_ENV, None)
    run = subprocess.run(
        [sys.executable, "-c", _BENCH],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 1  # SystemExit with a message
    assert "not measuring: the DLP engine runs interpreted (sources changed" in run.stderr
    assert "make .venv/.installed-dev" in run.stderr
    assert "MB/s" not in run.stdout
    pure = subprocess.run(
        [sys.executable, "-c", _BENCH],
        cwd=copy,
        env={**env, native.PURE_ENV: "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert pure.returncode == 0, pure.stderr
    assert "MB/s" in pure.stdout
    assert native.unmeasurable() is None  # this process runs the compiled build
