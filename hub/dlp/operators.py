"""Operators that protect a found value, each typed by a pydantic parameter model:
mask (keep last N), redact, keyed hash (HMAC-SHA256), deterministic tokenize (reversible
only through the token vault by an authorised role), encrypt (AES-256-GCM, key id in the
output), generalize (date of birth -> year) and block (the event goes to quarantine).

Keys come from settings (SecretStr); an operator never logs or raises with a value in it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field

from hub.errors import ConfigError, DataQualityError, FatalError

_YEAR = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)")


class _Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MaskParams(_Params):
    operator: Literal["mask"] = "mask"
    keep_last: int = Field(default=4, ge=0, le=8)
    char: str = Field(default="*", min_length=1, max_length=1)
    keep_separators: bool = True


class RedactParams(_Params):
    operator: Literal["redact"] = "redact"
    replacement: str = Field(default="[REDACTED:{entity}]", max_length=64)


class HashParams(_Params):
    operator: Literal["hash"] = "hash"
    key_id: str = "default"
    length: int = Field(default=32, ge=16, le=64, description="hex characters kept")


class TokenizeParams(_Params):
    operator: Literal["tokenize"] = "tokenize"
    key_id: str = "default"


class EncryptParams(_Params):
    operator: Literal["encrypt"] = "encrypt"
    key_id: str = "default"


class GeneralizeParams(_Params):
    operator: Literal["generalize"] = "generalize"
    to: Literal["year"] = "year"


class BlockParams(_Params):
    operator: Literal["block"] = "block"


class KeepParams(_Params):
    """An explicit exception: the policy allows the value to pass in clear."""

    operator: Literal["keep"] = "keep"


AnyParams = (
    MaskParams
    | RedactParams
    | HashParams
    | TokenizeParams
    | EncryptParams
    | GeneralizeParams
    | BlockParams
    | KeepParams
)
OperatorParams = Annotated[AnyParams, Field(discriminator="operator")]


class BlockedValue(DataQualityError):
    """Raised by the block operator: the event goes to quarantine with an incident."""


class KeyRing:
    """Named 256-bit keys (from settings). The key id travels with encrypted output so a
    rotated key can still decrypt old values."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        for kid, key in keys.items():
            if len(key) != 32:
                raise ConfigError(f"DLP key {kid!r} must be 32 bytes (AES-256), got {len(key)}")
        if not keys:
            raise ConfigError("DLP needs at least one key")
        self._keys = dict(keys)
        # Built on first use, once per key: the operators run once per finding.
        self._derived: dict[tuple[str, str], bytes] = {}
        self._aead: dict[str, AESGCM] = {}

    def get(self, key_id: str) -> bytes:
        try:
            return self._keys[key_id]
        except KeyError:
            raise ConfigError(
                f"unknown DLP key id {key_id!r}; known: {', '.join(sorted(self._keys))}"
            ) from None

    @staticmethod
    def derive(secret: bytes, purpose: str) -> bytes:
        """A purpose-specific 32-byte key from one master secret (HKDF-like, SHA-256)."""
        return hmac.new(secret, b"crm-hub/dlp/" + purpose.encode(), hashlib.sha256).digest()

    def derived(self, key_id: str, purpose: str) -> bytes:
        """``derive(get(key_id), purpose)``, computed once per key and purpose."""
        found = self._derived.get((key_id, purpose))
        if found is None:
            found = self._derived[(key_id, purpose)] = self.derive(self.get(key_id), purpose)
        return found

    def aead(self, key_id: str) -> AESGCM:
        """The AES-256-GCM cipher of key `key_id` (stateless: one serves every call)."""
        found = self._aead.get(key_id)
        if found is None:
            found = self._aead[key_id] = AESGCM(self.get(key_id))
        return found


def fingerprint(keys: KeyRing, value: str, key_id: str = "default") -> str:
    """Keyed fingerprint of a value for incidents: equal values correlate, the value
    cannot be recovered or brute-forced without the key."""
    key = keys.derived(key_id, "fingerprint")
    return hmac.digest(key, value.encode(), "sha256").hex()[:32]


def mask(value: str, p: MaskParams) -> str:
    """Every letter and digit as ``p.char`` but the last ``keep_last`` of them; other
    characters kept when ``keep_separators``, else masked too. One pass, right to left."""
    keep, char, separators = p.keep_last, p.char, p.keep_separators
    out: list[str] = []
    for ch in reversed(value):
        if ch.isalnum():
            if keep > 0:
                keep -= 1
                out.append(ch)
            else:
                out.append(char)
        else:
            out.append(ch if separators else char)
    out.reverse()
    return "".join(out)


def redact(entity: str, p: RedactParams) -> str:
    return p.replacement.replace("{entity}", entity)


def keyed_hash(keys: KeyRing, value: str, p: HashParams) -> str:
    key = keys.derived(p.key_id, "hash")
    return "h:" + hmac.digest(key, value.encode(), "sha256").hex()[: p.length]


def tokenize(keys: KeyRing, entity: str, value: str, p: TokenizeParams) -> str:
    """Deterministic token: the same value of the same entity always gets the same token,
    so joins and deduplication still work on protected data."""
    key = keys.derived(p.key_id, "token")
    mac = hmac.digest(key, f"{entity}\x1f{value}".encode(), "sha256")
    return f"tok_{entity.lower()}_{base64.b32encode(mac[:15]).decode().lower()}"


def encrypt(keys: KeyRing, value: str, p: EncryptParams, *, aad: bytes = b"") -> str:
    """AES-256-GCM with a random 96-bit nonce: ``enc:v1:<key id>:<base64url(nonce|ct|tag)>``."""
    nonce = os.urandom(12)
    ct = keys.aead(p.key_id).encrypt(nonce, value.encode(), aad)
    blob = base64.urlsafe_b64encode(nonce + ct).decode().rstrip("=")
    return f"enc:v1:{p.key_id}:{blob}"


def decrypt(keys: KeyRing, token: str, *, aad: bytes = b"") -> str:
    try:
        prefix, version, key_id, blob = token.split(":", 3)
    except ValueError:
        raise DataQualityError("not an encrypted value (expected enc:v1:<key>:<data>)") from None
    if prefix != "enc" or version != "v1":
        raise DataQualityError("not an encrypted value (expected enc:v1:<key>:<data>)")
    raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
    try:
        return keys.aead(key_id).decrypt(raw[:12], raw[12:], aad).decode()
    except InvalidTag:
        raise FatalError("encrypted value failed authentication (wrong key or tampered)") from None


def seal(keys: KeyRing, data: bytes, *, key_id: str = "default", aad: bytes = b"") -> bytes:
    """Encrypt bytes at rest (quarantine payloads): nonce | ciphertext | tag."""
    nonce = os.urandom(12)
    return nonce + keys.aead(key_id).encrypt(nonce, data, aad)


def unseal(keys: KeyRing, blob: bytes, *, key_id: str = "default", aad: bytes = b"") -> bytes:
    try:
        return keys.aead(key_id).decrypt(blob[:12], blob[12:], aad)
    except InvalidTag:
        raise FatalError("sealed payload failed authentication (wrong key or tampered)") from None


def keyring_from_master(master: bytes, key_ids: tuple[str, ...] = ("default",)) -> KeyRing:
    return KeyRing({kid: KeyRing.derive(master, f"key/{kid}") for kid in key_ids})


def generalize(value: str, _p: GeneralizeParams) -> str:
    """Date of birth -> its year (the only generalisation policies use so far)."""
    m = _YEAR.search(value)
    return m.group(1) if m else "[DATE]"


@dataclass(frozen=True, slots=True)
class Operation:
    """The outcome of one operator on one value."""

    operator: str
    replacement: str | None  # None: block


def apply_operator(params: AnyParams, keys: KeyRing, entity: str, value: str) -> Operation:
    """Dispatch by parameter type. Block raises BlockedValue; keep returns the value."""
    match params:
        case MaskParams():
            out = mask(value, params)
        case RedactParams():
            out = redact(entity, params)
        case HashParams():
            out = keyed_hash(keys, value, params)
        case TokenizeParams():
            out = tokenize(keys, entity, value, params)
        case EncryptParams():
            out = encrypt(keys, value, params)
        case GeneralizeParams():
            out = generalize(value, params)
        case KeepParams():
            out = value
        case BlockParams():
            raise BlockedValue(f"{entity} is blocked by policy")
    return Operation(params.operator, out)


__all__ = [
    "AnyParams",
    "BlockParams",
    "BlockedValue",
    "EncryptParams",
    "GeneralizeParams",
    "HashParams",
    "KeepParams",
    "KeyRing",
    "MaskParams",
    "Operation",
    "OperatorParams",
    "RedactParams",
    "TokenizeParams",
    "apply_operator",
    "decrypt",
    "encrypt",
    "fingerprint",
    "generalize",
    "keyed_hash",
    "keyring_from_master",
    "mask",
    "redact",
    "seal",
    "tokenize",
    "unseal",
]
