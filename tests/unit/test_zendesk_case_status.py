"""The case-status policy (policies/case_status.yaml): the shipped file maps every status
Zendesk documents for live tickets into the CRM's case-status list and nothing else; a
bad file is one ConfigError line naming the file and the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.zendesk.policy import DEFAULT_POLICY, load_case_status_policy
from hub.errors import ConfigError

GOOD = """\
version: "t.1"
case_statuses: [Open, In Progress, Resolved]
statuses:
  new: Open
  open: In Progress
  solved: Resolved
"""


def test_the_shipped_policy_maps_the_six_ticket_statuses_into_the_enum() -> None:
    policy = load_case_status_policy(DEFAULT_POLICY)
    assert set(policy.statuses) == {"new", "open", "pending", "hold", "solved", "closed"}
    assert set(policy.statuses.values()) <= set(policy.case_statuses)
    assert policy.case_status("pending") == "Waiting on Customer"
    assert policy.case_status("solved") == "Resolved"


@pytest.mark.parametrize(
    "status",
    ["deleted", "Open", "OPEN", " open", "escalated", "", None, 3, ["open"]],
)
def test_an_unmapped_status_has_no_case_status_never_a_near_one(status: object) -> None:
    assert load_case_status_policy(DEFAULT_POLICY).case_status(status) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD.replace("solved: Resolved", "solved: Done"),
            "statuses.solved: 'Done' is not one of case_statuses (Open, In Progress, Resolved)",
        ),
        (GOOD.replace("  solved: Resolved", "  open: Open"), "key 'open' is given twice"),
        (GOOD + "owner: ops\n", "owner: Extra inputs are not permitted"),
        (
            GOOD.replace("new: Open", "New: Open"),
            "statuses.New: bad status name: String should match pattern",
        ),
        (GOOD.replace('version: "t.1"\n', ""), ": version: Field required"),
        (
            GOOD.replace("[Open, In Progress, Resolved]", "[Open, open, Resolved]"),
            "case_statuses: values must differ from one another",
        ),
        (
            GOOD.replace("[Open, In Progress, Resolved]", "[]"),
            "case_statuses: Tuple should have at least 1",
        ),
        (GOOD.replace("new: Open", "new: 3"), "statuses.new: Input should be a valid string"),
        ("- just\n- a list\n", "the top level must be a mapping"),
        ("statuses: [unclosed\n", "line 2, column 1"),
    ],
    ids=[
        "outside-enum",
        "key-twice",
        "unknown-key",
        "bad-name",
        "no-version",
        "enum-twice",
        "empty-enum",
        "not-text",
        "not-a-mapping",
        "bad-yaml",
    ],
)
def test_a_bad_policy_is_one_line_naming_the_key_path(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "case_status.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_case_status_policy(path)
    message = caught.value.message
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_a_missing_policy_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the policy file"):
        load_case_status_policy(tmp_path / "absent.yaml")


def test_the_good_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "case_status.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert load_case_status_policy(path).case_status("open") == "In Progress"
