"""The schemas are the public contract: every ``schemas/**/*.avsc`` must stay BACKWARD
compatible (transitively) with every version of it committed before, so a downstream app
built on an old version never breaks. The history comes from git; a change that drops a
field without a default, or changes a type, fails here with the registry's own reason."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hub.registry.compat import CompatibilityLevel, compatibility_problems, parse_schema
from hub.settings import REPO_ROOT

SCHEMAS = sorted((REPO_ROOT / "schemas").rglob("*.avsc"))


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout


def history(path: Path) -> list[tuple[str, str]]:
    """(commit, text) of every committed version of ``path``, oldest first."""
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("no git history here (not a clone): nothing to compare with")
    rel = path.relative_to(REPO_ROOT).as_posix()
    commits = git("log", "--format=%H", "--follow", "--", rel).split()
    out = []
    for commit in reversed(commits):
        try:
            out.append((commit[:10], git("show", f"{commit}:{rel}")))
        except subprocess.CalledProcessError:
            continue  # the file was deleted or renamed in that commit
    return out


def test_every_topic_schema_is_checked() -> None:
    names = {p.relative_to(REPO_ROOT / "schemas").as_posix() for p in SCHEMAS}
    assert {"sales/LeadCaptured.avsc", "common/QuarantineRecord.avsc"} <= names


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_schema_is_backward_compatible_with_every_committed_version(path: Path) -> None:
    current = parse_schema(path.read_text(encoding="utf-8")).avro
    older = [(i + 1, parse_schema(text).avro) for i, (_, text) in enumerate(history(path))]
    problems = compatibility_problems(current, older, CompatibilityLevel.BACKWARD_TRANSITIVE)
    assert problems == [], "\n".join(problems)


def test_the_check_refuses_a_breaking_change() -> None:
    """The check itself: dropping the default of a new field, or changing a type, fails."""
    old = parse_schema(
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]}'
    ).avro
    new_field = parse_schema(
        '{"type": "record", "name": "R", "fields": ['
        '{"name": "a", "type": "string"}, {"name": "b", "type": "string"}]}'
    ).avro
    retyped = parse_schema(
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}'
    ).avro
    level = CompatibilityLevel.BACKWARD_TRANSITIVE
    assert compatibility_problems(new_field, [(1, old)], level)
    assert compatibility_problems(retyped, [(1, old)], level)
