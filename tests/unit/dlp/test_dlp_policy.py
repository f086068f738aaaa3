from __future__ import annotations

from pathlib import Path

import pytest

from hub.dlp.operators import EncryptParams, KeepParams, MaskParams, RedactParams
from hub.dlp.policy import PolicyResolver, load_dlp_policy
from hub.errors import ConfigError
from hub.settings import REPO_ROOT

POLICY = REPO_ROOT / "policies" / "dlp.yaml"


@pytest.fixture(scope="module")
def resolver() -> PolicyResolver:
    return PolicyResolver(load_dlp_policy(POLICY))


@pytest.mark.parametrize(
    ("department", "field", "entity", "rule_id", "action"),
    [
        ("sales", "email", "EMAIL_ADDRESS", "sales.contact-fields", KeepParams()),
        ("sales", "phone_e164", "PHONE_NUMBER", "sales.contact-phone", KeepParams()),
        ("sales", "notes", "EMAIL_ADDRESS", "entity.EMAIL_ADDRESS", MaskParams(keep_last=0)),
        ("sales", "notes", "CREDIT_CARD", "sales.notes.card", RedactParams()),
        ("service", "notes", "CREDIT_CARD", "entity.CREDIT_CARD", MaskParams(keep_last=4)),
        ("hr", "notes", "US_SSN", "hr.national-ids", EncryptParams()),
        ("sales", "notes", "SOMETHING_NEW", "default", RedactParams()),
    ],
)
def test_resolution_order(
    resolver: PolicyResolver,
    department: str,
    field: str,
    entity: str,
    rule_id: str,
    action: object,
) -> None:
    decision = resolver.resolve(department, "crm.clean.x.v1", field, entity)
    assert decision.rule_id == rule_id
    assert decision.action == action


def test_every_secret_entity_is_blocked(resolver: PolicyResolver) -> None:
    for entity in ("AWS_ACCESS_KEY", "GITHUB_TOKEN", "PRIVATE_KEY"):
        assert resolver.resolve("sales", "t", "notes", entity).action.operator == "block"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('version: "1"\ndefault: {operator: shred}\n', "default"),
        ("version: 1\ndefault: {operator: redact}\n", "version"),
        ('version: "1"\n', "default"),
        ('version: "1"\ndefault: {operator: redact}\nmin_score: 2\n', "min_score"),
        ('version: "1"\ndefault: {operator: redact}\nentities: {ssn: {operator: mask}}\n', "upper"),
        (
            'version: "1"\ndefault: {operator: redact}\nrules: [{id: x, action: {operator: mask, '
            "keep_last: 40}}]\n",
            "rules.0.action",
        ),
        ('version: "1"\ndefault: {operator: redact}\ncolour: red\n', "colour"),
        ("version: [\n", "line"),
        ("- a\n- b\n", "mapping"),
    ],
)
def test_bad_policy_is_one_clear_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "dlp.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_dlp_policy(path)
    message = str(exc.value)
    assert "\n" not in message
    assert str(path) in message
    assert fragment in message
