"""The token vault: the way back from a deterministic token to the value it stands for,
open only to the holder of the vault's private key acting in a role the DLP policy lets
reveal — and every attempt, granted or not, on record.

Why a key pair: the processors that tokenize must be able to *write* the vault, and
nothing they hold may *read* it back (a compromised processor, its logs or its database
credentials give no value). Each value is sealed to the vault's X25519 public key: a fresh
ephemeral key pair per value, the shared secret through HKDF-SHA256 into an AES-256-GCM key,
the token and the entity as associated data (a sealed value moved to another token does
not open). Only the private key, kept by the privacy office and never by the hub's
processes, opens it. The token itself stays the keyed HMAC of `hub.dlp.operators.tokenize`,
so joins on tokens work without the vault.

The role check and the access log are the second lock: `TokenVault.reveal` refuses a role
the policy's ``vault.reveal_roles`` does not name, and writes one ``dlp_vault_reveals`` row
per attempt — who, in which role, why, which token and entity, the outcome — never the
value. The log is a signed hash chain (`projections.access_log`, key: the audit key), so an
edited or deleted row shows in ``crmhub audit verify``. The role is the caller's claim until
the hub has its own sign-in; the private key is what enforces the rule today.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Engine, case, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from hub.errors import ConfigError, DataQualityError, FatalError, HubError, RetriableError

if TYPE_CHECKING:
    from hub.dlp.engine import Engine as DlpEngine
    from hub.dlp.operators import KeyRing
    from projections.access_log import RevealRecord

_VERSION = b"\x01"
_INFO = b"crmhub token vault v1"
_PUBLIC_PREFIX = "x25519:"
GRANTED, DENIED, UNKNOWN, UNOPENED = "revealed", "role-denied", "unknown-token", "key-mismatch"


class RevealDenied(HubError):
    """The role may not reveal tokens (the attempt is on record)."""


class ChainContention(RetriableError):
    """Concurrent reveals kept taking the access log's next place first."""


class UnknownToken(HubError):
    """The vault holds no value for the token (the attempt is on record)."""


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class VaultPublicKey:
    """What the tokenizing processors hold: enough to seal, nothing to open."""

    key: X25519PublicKey

    @cached_property
    def key_id(self) -> str:
        """A short name of the key (its SHA-256, 16 hex digits), stored with each value so
        a vault sealed to several keys over time says which private key opens a row."""
        return hashlib.sha256(_raw(self.key)).hexdigest()[:16]

    def text(self) -> str:
        """``x25519:<base64url>``: the form settings and ``vault keygen`` use."""
        return _PUBLIC_PREFIX + base64.urlsafe_b64encode(_raw(self.key)).decode().rstrip("=")

    @classmethod
    def parse(cls, text: str) -> VaultPublicKey:
        if not text.startswith(_PUBLIC_PREFIX):
            raise ConfigError(f"a vault public key starts with {_PUBLIC_PREFIX!r}")
        body = text[len(_PUBLIC_PREFIX) :].strip()
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            return cls(X25519PublicKey.from_public_bytes(raw))
        except ValueError:
            raise ConfigError("the vault public key is not 32 bytes of base64url") from None


@dataclass(frozen=True)
class VaultPrivateKey:
    key: X25519PrivateKey

    @classmethod
    def generate(cls) -> VaultPrivateKey:
        return cls(X25519PrivateKey.generate())

    @property
    def public(self) -> VaultPublicKey:
        return VaultPublicKey(self.key.public_key())

    def save(self, path: Path) -> None:
        """PKCS#8 PEM, created with mode 0600 (refuses to overwrite a key)."""
        pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)

    @classmethod
    def load(cls, path: Path) -> VaultPrivateKey:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot read a vault private key from {path}: {exc}") from None
        if not isinstance(key, X25519PrivateKey):
            raise ConfigError(f"{path} holds a {type(key).__name__}, not an X25519 key")
        return cls(key)


def _cipher(shared: bytes, ephemeral: bytes, recipient: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_INFO)
    return AESGCM(hkdf.derive(shared))


def _aad(token: str, entity: str) -> bytes:
    return f"{token}\x1f{entity}".encode()


def entry_key(keys: KeyRing, token: str, origin: str, subject: str) -> str:
    """The key of a token's vault entry on the compacted topic ``crm.dlp.vault.v1``: the
    token, then whose value it is — a keyed digest of the processor flow that tokenized it
    (`origin`, the entry's CloudEvents source) and the event's subject: ``tok_…@<20 hex>``.
    One key per owner, so compaction keeps every owner's latest entry, and an erasure's
    tombstones delete the erased person's entries only, never another person's entry of
    the same value (a shared phone or bank account). Keyed, because a subject id may be
    guessable (an e-mail address)."""
    owner = f"{origin}\x1f{subject}".encode()
    digest = hmac.digest(keys.derived("default", "vault-owner"), owner, "sha256")
    return f"{token}@{digest.hex()[:20]}"


# A token is ``tok_<entity, lower-cased>_<digest>``: whatever an entity's name holds, no
# space and no "@" (which parts a topic key's token from its owner).
_ENTRY_KEY = re.compile(r"(tok_[^\s@]+)@[0-9a-f]{20}")
_TOKEN = re.compile(r"tok_[^\s@]+")
# What the access log names when what was asked is no token: it may be the value itself,
# pasted by mistake, and the log is kept for good.
NOT_A_TOKEN = "(not a token)"  # noqa: S105 - a placeholder, no secret


def token_of(text: str) -> str:
    """The token of a vault entry's topic key (`entry_key`), which is what a consumer of
    ``crm.dlp.vault.v1`` has in hand; any other text as it is, but for the spaces around."""
    text = text.strip()
    found = _ENTRY_KEY.fullmatch(text)
    return found.group(1) if found else text


def is_token(text: str) -> bool:
    """Whether `text` has a token's shape (``tok_<entity>_<digest>``: `tokenize`)."""
    return _TOKEN.fullmatch(text) is not None


def seal_value(public: VaultPublicKey, token: str, entity: str, value: str) -> bytes:
    """``01 | ephemeral public key (32) | nonce (12) | AES-256-GCM(value) | tag (16)``."""
    ephemeral = X25519PrivateKey.generate()
    eph_raw = _raw(ephemeral.public_key())
    cipher = _cipher(ephemeral.exchange(public.key), eph_raw, _raw(public.key))
    nonce = os.urandom(12)
    return _VERSION + eph_raw + nonce + cipher.encrypt(nonce, value.encode(), _aad(token, entity))


def open_value(private: VaultPrivateKey, token: str, entity: str, sealed: bytes) -> str:
    """The value sealed for `token` and `entity`; FatalError when the key is not the one
    it was sealed to, or the bytes, token or entity were altered."""
    if len(sealed) < 1 + 32 + 12 + 16 or sealed[:1] != _VERSION:
        raise FatalError("not a sealed vault value (unknown format)")
    eph_raw, nonce, body = sealed[1:33], sealed[33:45], sealed[45:]
    try:
        shared = private.key.exchange(X25519PublicKey.from_public_bytes(eph_raw))
        cipher = _cipher(shared, eph_raw, _raw(private.key.public_key()))
        return cipher.decrypt(nonce, body, _aad(token, entity)).decode()
    except (InvalidTag, ValueError):
        raise FatalError("the vault value does not open with this key (or was altered)") from None


class TokenVault:
    """Reveals from the vault's rows (``dlp_token_vault``, which the projection writes from
    ``crm.dlp.vault.v1``: `projections.store`) with its access log (``dlp_vault_reveals``),
    in the read model's database."""

    #: Tries at the access log's next place when concurrent reveals keep taking it first.
    ATTEMPTS = 5

    def __init__(
        self,
        engine: Engine,
        reveal_roles: frozenset[str] | set[str],
        *,
        log_key: bytes,
        detector: DlpEngine | None = None,
        min_score: float = 0.5,
    ) -> None:
        """`detector` (default: every registered recognizer, built at the first reveal)
        finds what the reasons given hold at `min_score` (the DLP policy's threshold)."""
        if not log_key:
            raise ConfigError("the vault's access log needs the audit key to sign its rows")
        self.engine = engine
        self.reveal_roles = frozenset(reveal_roles)
        self.log_key = log_key
        self._detector = detector
        self._min_score = min_score

    def scrubbed(self, reason: str) -> str:
        """`reason` with what the DLP engine finds in it redacted (``[REDACTED:US_SSN]``):
        a reason is free text ("DSAR for card 4111…"), and the access log is kept for good."""
        from hub.dlp.operators import RedactParams, redact

        if self._detector is None:
            from hub.dlp import registry
            from hub.dlp.engine import Engine as DlpEngine

            self._detector = DlpEngine(registry.load())
        for f in reversed(self._detector.scan_text(reason, min_score=self._min_score)):
            reason = reason[: f.start] + redact(f.entity, RedactParams()) + reason[f.end :]
        return reason

    def reveal(
        self,
        token: str,
        private: VaultPrivateKey,
        *,
        actor: str,
        role: str,
        reason: str,
        now: datetime,
    ) -> str:
        """The value behind `token` (or behind a vault entry's topic key, `entry_key`), for
        `actor` acting as `role` with `reason`. Every call leaves one access-log row,
        whatever its outcome, under the token; the value is never in it."""
        from projections.access_log import RevealRecord

        if not actor.strip() or not reason.strip():
            raise DataQualityError("a reveal needs the actor's name and a reason")
        token = token_of(token)  # a topic key names the token (all owners' values are one)
        if not is_token(token):
            token = NOT_A_TOKEN  # logged as asked, but not as typed
        # the log row as far as the caller tells it: the lookup adds entity and outcome
        asked = RevealRecord(token, None, actor, role, self.scrubbed(reason), outcome="", at=now)
        for attempt in range(self.ATTEMPTS):
            try:
                outcome, value = self._logged_attempt(asked, private)
                break
            except DBAPIError as exc:
                # another reveal took the log's next place: read the new last row, again
                if not _lost_race(exc):
                    raise
                if attempt == self.ATTEMPTS - 1:
                    raise ChainContention(
                        "the vault's access log is busy with concurrent reveals; try again"
                    ) from None
        if outcome == DENIED:
            allowed = ", ".join(sorted(self.reveal_roles)) or "none"
            raise RevealDenied(f"role {role!r} may not reveal tokens (allowed: {allowed})")
        if outcome == UNKNOWN and token == NOT_A_TOKEN:
            raise UnknownToken("not a vault token: tokens read tok_<entity>_<digest>")
        if outcome == UNKNOWN:
            raise UnknownToken("the vault holds no value for this token")
        if outcome == UNOPENED:
            raise FatalError("the vault value does not open with this key (or was altered)")
        assert value is not None
        return value

    def _logged_attempt(
        self, asked: RevealRecord, private: VaultPrivateKey
    ) -> tuple[str, str | None]:
        """One transaction: look the token up, open it if the role may, and chain the
        attempt into the access log. (outcome, the value when revealed)."""
        from projections.access_log import append
        from projections.models import DlpVaultEntry

        token = asked.token
        with Session(self.engine) as session, session.begin():
            # A row per owner of the value, all of the same value: the newest sealed to
            # this private key if there is one (the vault's key may have been rotated).
            entry = session.scalars(
                select(DlpVaultEntry)
                .where(DlpVaultEntry.token == token)
                .order_by(
                    case((DlpVaultEntry.key_id == private.public.key_id, 0), else_=1),
                    DlpVaultEntry.sealed_at.desc(),
                    DlpVaultEntry.vault_key,
                )
                .limit(1)
            ).first()
            outcome, value = GRANTED, None
            if asked.role not in self.reveal_roles:
                outcome = DENIED
            elif entry is None:
                outcome = UNKNOWN
            else:
                try:
                    value = open_value(private, token, entry.entity, entry.sealed)
                except FatalError:
                    outcome = UNOPENED
            entity = entry.entity if entry is not None else None
            append(session, replace(asked, entity=entity, outcome=outcome), self.log_key)
        return outcome, value


def _lost_race(exc: DBAPIError) -> bool:
    """Whether a reveal's transaction failed because another one wrote the access log's
    next row first: the unique link (PostgreSQL, or SQLite once the other committed), or
    SQLite refusing to turn this reader into a writer while the other writes (SQLITE_BUSY,
    which it answers at once rather than wait on a deadlock)."""
    if isinstance(exc, IntegrityError):
        return "prev_hash" in str(exc.orig)  # the unique link, not another constraint
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return isinstance(exc, OperationalError) and code is not None and code & 0xFF == _BUSY


_BUSY = 5  # SQLITE_BUSY; extended codes (BUSY_SNAPSHOT, ...) keep it in their low byte


__all__ = [
    "NOT_A_TOKEN",
    "ChainContention",
    "RevealDenied",
    "TokenVault",
    "UnknownToken",
    "VaultPrivateKey",
    "VaultPublicKey",
    "entry_key",
    "open_value",
    "seal_value",
]
