from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from pydantic import TypeAdapter, ValidationError

from hub.dlp.operators import (
    BlockedValue,
    BlockParams,
    EncryptParams,
    GeneralizeParams,
    HashParams,
    KeepParams,
    KeyRing,
    MaskParams,
    OperatorParams,
    RedactParams,
    TokenizeParams,
    apply_operator,
    decrypt,
    encrypt,
    fingerprint,
)
from hub.errors import ConfigError, FatalError

KEYS = KeyRing({"default": b"k" * 32, "2026-q4": b"q" * 32})
CARD = "4111 1111 1111 1111"


@pytest.mark.parametrize(
    ("value", "params", "expected"),
    [
        (CARD, MaskParams(), "**** **** **** 1111"),
        (CARD, MaskParams(keep_last=0), "**** **** **** ****"),
        ("536-22-1234", MaskParams(keep_last=4, char="#"), "###-##-1234"),
        ("536-22-1234", MaskParams(keep_separators=False), "*******1234"),
        ("ab", MaskParams(keep_last=4), "ab"),
        ("+44 (20) 7946-0018", MaskParams(keep_last=3), "+** (**) ****-*018"),
        ("Zoë Ångström 7", MaskParams(keep_last=2, keep_separators=False), "***********m*7"),
    ],
)
def test_mask_keeps_last_n_alphanumerics(value: str, params: MaskParams, expected: str) -> None:
    assert apply_operator(params, KEYS, "CREDIT_CARD", value).replacement == expected


def test_keyed_outputs_stay_what_earlier_versions_stored() -> None:
    """Fingerprints in stored incidents and tokens in the read model are compared with new
    ones: the per-key caches must give exactly the documented construction, per key."""
    value = "ann@example.com"
    for key_id in ("default", "2026-q4"):
        for _ in range(2):  # the second time from the cache
            fp_key = KeyRing.derive(KEYS.get(key_id), "fingerprint")
            expected = hmac.new(fp_key, value.encode(), hashlib.sha256).hexdigest()[:32]
            assert fingerprint(KEYS, value, key_id) == expected
            hash_key = KeyRing.derive(KEYS.get(key_id), "hash")
            hashed = apply_operator(HashParams(key_id=key_id), KEYS, "EMAIL_ADDRESS", value)
            assert (
                hashed.replacement
                == "h:" + hmac.new(hash_key, value.encode(), "sha256").hexdigest()[:32]
            )
            token_key = KeyRing.derive(KEYS.get(key_id), "token")
            mac = hmac.new(token_key, f"EMAIL_ADDRESS\x1f{value}".encode(), "sha256").digest()
            token = apply_operator(TokenizeParams(key_id=key_id), KEYS, "EMAIL_ADDRESS", value)
            assert (
                token.replacement
                == "tok_email_address_" + base64.b32encode(mac[:15]).decode().lower()
            )


def test_redact_names_the_entity_only() -> None:
    op = apply_operator(RedactParams(), KEYS, "US_SSN", "536-22-1234")
    assert op.replacement == "[REDACTED:US_SSN]"


def test_hash_is_keyed_deterministic_and_differs_by_key() -> None:
    a = apply_operator(HashParams(), KEYS, "EMAIL_ADDRESS", "ann@example.com").replacement
    b = apply_operator(HashParams(), KEYS, "EMAIL_ADDRESS", "ann@example.com").replacement
    c = apply_operator(HashParams(key_id="2026-q4"), KEYS, "EMAIL_ADDRESS", "ann@example.com")
    assert a == b
    assert a != c.replacement
    assert a is not None
    assert a.startswith("h:")
    assert "ann" not in a
    assert len(a) == 2 + 32


def test_tokenize_is_deterministic_per_entity_and_value() -> None:
    t1 = apply_operator(TokenizeParams(), KEYS, "US_SSN", "536-22-1234").replacement
    t2 = apply_operator(TokenizeParams(), KEYS, "US_SSN", "536-22-1234").replacement
    t3 = apply_operator(TokenizeParams(), KEYS, "US_SSN", "536-22-1235").replacement
    t4 = apply_operator(TokenizeParams(), KEYS, "IBAN_CODE", "536-22-1234").replacement
    assert t1 == t2
    assert len({t1, t3, t4}) == 3
    assert t1 is not None
    assert t1.startswith("tok_us_ssn_")
    assert "1234" not in t1


def test_encrypt_round_trips_with_key_id_and_fresh_nonce() -> None:
    a = encrypt(KEYS, CARD, EncryptParams(key_id="2026-q4"))
    b = encrypt(KEYS, CARD, EncryptParams(key_id="2026-q4"))
    assert a.startswith("enc:v1:2026-q4:")
    assert a != b  # random nonce: equal plaintexts do not correlate
    assert decrypt(KEYS, a) == CARD
    assert "1111" not in a


def test_encrypt_detects_tampering_and_wrong_aad() -> None:
    token = encrypt(KEYS, CARD, EncryptParams(), aad=b"lead-1")
    with pytest.raises(FatalError):
        decrypt(KEYS, token, aad=b"lead-2")
    head, blob = token.rsplit(":", 1)
    flipped = blob[:-2] + ("A" if blob[-2] != "A" else "B") + blob[-1]
    with pytest.raises(FatalError) as exc:
        decrypt(KEYS, f"{head}:{flipped}")
    assert CARD not in str(exc.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1984-03-05", "1984"), ("03/05/1984", "1984"), ("5 March 1984", "1984"), ("n/a", "[DATE]")],
)
def test_generalize_date_of_birth_to_year(value: str, expected: str) -> None:
    assert apply_operator(GeneralizeParams(), KEYS, "DATE_OF_BIRTH", value).replacement == expected


def test_block_raises_without_the_value() -> None:
    with pytest.raises(BlockedValue) as exc:
        apply_operator(BlockParams(), KEYS, "CREDIT_CARD", CARD)
    assert CARD not in str(exc.value)
    assert "CREDIT_CARD" in str(exc.value)


def test_keep_is_an_explicit_exception() -> None:
    assert apply_operator(KeepParams(), KEYS, "EMAIL_ADDRESS", "a@b.co").replacement == "a@b.co"


def test_operator_params_are_typed_and_discriminated() -> None:
    adapter: TypeAdapter[object] = TypeAdapter(OperatorParams)
    assert adapter.validate_python({"operator": "mask", "keep_last": 2}) == MaskParams(keep_last=2)
    with pytest.raises(ValidationError):
        adapter.validate_python({"operator": "mask", "keep_last": 99})
    with pytest.raises(ValidationError):
        adapter.validate_python({"operator": "shred"})
    with pytest.raises(ValidationError):
        adapter.validate_python({"operator": "hash", "salt": "x"})


def test_keyring_rejects_short_keys_and_unknown_ids() -> None:
    with pytest.raises(ConfigError):
        KeyRing({"default": b"short"})
    with pytest.raises(ConfigError) as exc:
        apply_operator(EncryptParams(key_id="nope"), KEYS, "US_SSN", "x")
    assert "default" in str(exc.value)


def test_fingerprint_correlates_without_revealing() -> None:
    f1 = fingerprint(KEYS, CARD)
    assert f1 == fingerprint(KEYS, CARD)
    assert f1 != fingerprint(KEYS, "4111 1111 1111 1112")
    assert f1 != fingerprint(KeyRing({"default": b"z" * 32}), CARD)
    assert "1111" not in f1
