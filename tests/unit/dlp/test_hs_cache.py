"""The compiled-database cache: a second engine loads what the first compiled and finds
the same; anything that does not read back whole is compiled again; a cache that cannot
be written, or is off, costs only the compile."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import hyperscan
import pytest

from hub.dlp import hs_cache, hyperscan_matcher, registry
from hub.dlp.engine import Engine

TEXTS = [
    "card 4111 1111 1111 1111, ssn 078-05-1120, mail ana@example.com",
    "IBAN DE89 3704 0044 0532 0130 00 and call +44 20 7946 0958",
    "nothing here but order 2024-03-05 and version 1.2.3.4",
]


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    where = tmp_path / "cache"
    monkeypatch.setenv(hs_cache.ENV, str(where))
    hyperscan_matcher._CACHE.clear()  # this process's own copies: build from disk or anew
    yield where
    hyperscan_matcher._CACHE.clear()


def _findings(engine: Engine) -> list[list[tuple[str, int, int, float]]]:
    return [
        [(f.entity, f.start, f.end, f.score) for f in found]
        for found in engine.scan_texts(TEXTS, [None] * len(TEXTS), min_score=0.5)
    ]


def _no_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise AssertionError("compiled instead of loading from the cache")

    monkeypatch.setattr(hyperscan, "Database", refuse)


def test_a_second_engine_loads_what_the_first_compiled(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled = _findings(Engine(registry.load(), backend="hyperscan"))
    files = sorted(cache_dir.glob("*.hsdb"))
    assert len(files) == 2  # the main database and the context-gated one
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    assert cache_dir.stat().st_mode & 0o777 == 0o700
    hyperscan_matcher._CACHE.clear()
    with monkeypatch.context() as m:
        _no_compiling(m)
        loaded = _findings(Engine(registry.load(), backend="hyperscan"))
    assert loaded == compiled
    found = {f[0] for texts in loaded for f in texts}
    assert found >= {"CREDIT_CARD", "EMAIL_ADDRESS", "IBAN_CODE", "PHONE_NUMBER"}


def test_another_set_of_patterns_is_another_database(cache_dir: Path) -> None:
    Engine(registry.load(), backend="hyperscan")
    some = [r for r in registry.load() if r.entity in ("CREDIT_CARD", "EMAIL_ADDRESS")]
    Engine(some, backend="hyperscan")
    assert len(list(cache_dir.glob("*.hsdb"))) == 3  # no gated patterns among the two


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # a torn write
        lambda data: data[:-100] + bytes(b ^ 0xFF for b in data[-100:]),  # not its digest
        lambda data: b"something else entirely",
        lambda data: data.replace(b'"sha256"', b'"sha-256"', 1),  # another header
        lambda data: data.replace(b'"som": [', b'"som": ["x", ', 1),  # facts of another shape
        lambda data: data.replace(b'"unscanned"', b'"scanned"', 1),  # facts missing
    ],
    ids=["torn", "altered", "foreign", "header", "facts-shape", "facts-missing"],
)
def test_a_damaged_file_is_compiled_again_and_replaced(
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    damage: object,
) -> None:
    expected = _findings(Engine(registry.load(), backend="hyperscan"))
    for f in cache_dir.glob("*.hsdb"):
        f.write_bytes(damage(f.read_bytes()))  # type: ignore[operator]
    hyperscan_matcher._CACHE.clear()
    with caplog.at_level(logging.WARNING, logger=hs_cache.__name__):
        assert _findings(Engine(registry.load(), backend="hyperscan")) == expected
    assert "ignoring the cached DLP database" in caplog.text
    hyperscan_matcher._CACHE.clear()
    with monkeypatch.context() as m:  # rewritten whole: the next engine loads it
        _no_compiling(m)
        assert _findings(Engine(registry.load(), backend="hyperscan")) == expected


def test_off_keeps_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hs_cache.ENV, "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    hyperscan_matcher._CACHE.clear()
    Engine(registry.load(), backend="hyperscan")
    assert list(tmp_path.rglob("*")) == []


def test_the_default_place_is_the_users_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(hs_cache.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert hs_cache.directory() == tmp_path / "crmhub" / "dlp"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert hs_cache.directory() == Path.home() / ".cache" / "crmhub" / "dlp"


def test_a_cache_that_cannot_be_written_costs_only_the_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(hs_cache.ENV, str(blocker / "cache"))
    hyperscan_matcher._CACHE.clear()
    with caplog.at_level(logging.INFO, logger=hs_cache.__name__):
        engine = Engine(registry.load(), backend="hyperscan")
    assert _findings(engine)[0]
    assert "cannot keep the compiled DLP database" in caplog.text
    assert list(tmp_path.iterdir()) == [blocker]  # no stray temporary file either
    hyperscan_matcher._CACHE.clear()


def test_only_the_newest_databases_are_kept(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hs_cache, "KEEP", 2)
    for entity in ("CREDIT_CARD", "EMAIL_ADDRESS", "IBAN_CODE"):
        Engine([r for r in registry.load() if r.entity == entity], backend="hyperscan")
    kept = list(cache_dir.glob("*.hsdb"))
    assert len(kept) == 2
    assert not list(cache_dir.glob("*.tmp"))
