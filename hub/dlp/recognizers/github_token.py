"""GitHub tokens: the classic prefixed forms (``ghp_`` personal, ``gho_`` OAuth, ``ghu_``
user-to-server, ``ghs_`` server-to-server, ``ghr_`` refresh) with 36 base62 characters,
and fine-grained personal tokens ``github_pat_`` + 22 + ``_`` + 59.

Classic tokens end in a six-character base62 CRC32 of the 30 random characters before it
(GitHub's 2021 token-format announcement). ``validate`` checks it and scores 1.0 when it
holds; the prefix alone is specific enough that a token whose checksum does not hold (or a
fine-grained token, whose checksum scheme is not published) still scores 0.85."""

from __future__ import annotations

import string
import zlib

from hub.dlp.base import Pattern, Recognizer

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_UNCONFIRMED = 0.85
_MIN_DISTINCT = 8


def base62_crc32(data: str) -> str:
    """The CRC32 of ``data`` in base62, left-padded with zeros to six characters."""
    value = zlib.crc32(data.encode("ascii"))
    out = ""
    while value:
        value, rest = divmod(value, 62)
        out = _BASE62[rest] + out
    return out.rjust(6, "0")


class GithubTokenRecognizer(Recognizer):
    entity = "GITHUB_TOKEN"
    name = "github_token"
    patterns = (
        Pattern("classic", r"gh[pousr]_(?<![A-Za-z0-9_]....)[A-Za-z0-9]{36}(?![A-Za-z0-9_])", 0.85),
        Pattern(
            "fine-grained",
            r"github_pat_(?<![A-Za-z0-9_]github_pat_)[A-Za-z0-9]{22}_[A-Za-z0-9]{59}(?![A-Za-z0-9_])",
            0.85,
        ),
    )
    context = ("github", "gh", "token", "pat")
    field_names = ("githubtoken", "ghtoken", "githubpat")

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        secret = candidate.rsplit("_", 1)[1]
        if len(set(secret)) < _MIN_DISTINCT:
            return None  # ghp_xxxxxxxx… placeholders
        if pattern.name == "classic" and base62_crc32(secret[:30]) == secret[30:]:
            return self.validated_score
        return _UNCONFIRMED
