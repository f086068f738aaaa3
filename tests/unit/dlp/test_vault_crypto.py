"""The token vault's sealing (`hub.dlp.vault`): what the public key seals only the private
key opens, bound to its token and entity."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hub.dlp.policy import VaultPolicy
from hub.dlp.vault import VaultPrivateKey, VaultPublicKey, open_value, seal_value
from hub.errors import ConfigError, FatalError

TOKEN, ENTITY, VALUE = "tok_us_ssn_abc", "US_SSN", "078-05-1120"


@pytest.fixture(scope="module")
def private() -> VaultPrivateKey:
    return VaultPrivateKey.generate()


def test_sealed_value_opens_with_the_private_key_only(private: VaultPrivateKey) -> None:
    sealed = seal_value(private.public, TOKEN, ENTITY, VALUE)
    assert VALUE.encode() not in sealed
    assert open_value(private, TOKEN, ENTITY, sealed) == VALUE
    with pytest.raises(FatalError, match="does not open"):
        open_value(VaultPrivateKey.generate(), TOKEN, ENTITY, sealed)


def test_each_seal_is_fresh(private: VaultPrivateKey) -> None:
    """An ephemeral key per value: equal values do not give equal bytes in the vault."""
    assert seal_value(private.public, TOKEN, ENTITY, VALUE) != seal_value(
        private.public, TOKEN, ENTITY, VALUE
    )


@pytest.mark.parametrize(
    ("token", "entity"), [("tok_us_ssn_other", ENTITY), (TOKEN, "NL_BSN")], ids=["token", "entity"]
)
def test_a_sealed_value_is_bound_to_its_token_and_entity(
    private: VaultPrivateKey, token: str, entity: str
) -> None:
    sealed = seal_value(private.public, TOKEN, ENTITY, VALUE)
    with pytest.raises(FatalError):
        open_value(private, token, entity, sealed)


def test_altered_or_foreign_bytes_do_not_open(private: VaultPrivateKey) -> None:
    sealed = bytearray(seal_value(private.public, TOKEN, ENTITY, VALUE))
    sealed[-1] ^= 1
    with pytest.raises(FatalError, match="altered"):
        open_value(private, TOKEN, ENTITY, bytes(sealed))
    with pytest.raises(FatalError, match="unknown format"):
        open_value(private, TOKEN, ENTITY, b"\x02" + bytes(sealed[1:]))
    with pytest.raises(FatalError, match="unknown format"):
        open_value(private, TOKEN, ENTITY, b"\x01short")


def test_public_key_text_round_trips_and_bad_text_is_a_config_error(
    private: VaultPrivateKey,
) -> None:
    text = private.public.text()
    assert text.startswith("x25519:")
    parsed = VaultPublicKey.parse(text)
    assert parsed.key_id == private.public.key_id
    assert open_value(private, TOKEN, ENTITY, seal_value(parsed, TOKEN, ENTITY, VALUE)) == VALUE
    with pytest.raises(ConfigError, match="starts with"):
        VaultPublicKey.parse("ed25519:AAAA")
    with pytest.raises(ConfigError, match="32 bytes"):
        VaultPublicKey.parse("x25519:AAAA")


def test_private_key_file_is_owner_only_and_never_overwritten(
    private: VaultPrivateKey, tmp_path: Path
) -> None:
    path = tmp_path / "vault.pem"
    private.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = VaultPrivateKey.load(path)
    assert loaded.public.key_id == private.public.key_id
    with pytest.raises(FileExistsError):
        VaultPrivateKey.generate().save(path)
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="cannot read"):
        VaultPrivateKey.load(tmp_path / "junk.pem")


def test_reveal_roles_need_names() -> None:
    assert VaultPolicy().reveal_roles == ()
    with pytest.raises(ValueError, match="needs a name"):
        VaultPolicy(reveal_roles=("privacy-officer", " "))
