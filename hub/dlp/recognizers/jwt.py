"""JSON Web Tokens (JWS compact form): three base64url segments separated by dots, the
header and the payload JSON objects (so both start with ``eyJ``, the encoding of ``{"``).
``validate`` decodes the header and wants a JSON object with an ``alg`` member, and the
payload to decode to a JSON object; a token whose structure checks out scores 1.0."""

from __future__ import annotations

import base64
import binascii
import json

from hub.dlp.base import Pattern, Recognizer


def _decode_json_object(segment: str) -> dict[str, object] | None:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    return value if isinstance(value, dict) else None


class JwtRecognizer(Recognizer):
    entity = "JWT"
    name = "jwt"
    patterns = (
        Pattern(
            "jws compact",
            r"eyJ(?<![A-Za-z0-9_.-]eyJ)[A-Za-z0-9_-]{8,2000}\.eyJ[A-Za-z0-9_-]{2,16000}"
            r"\.[A-Za-z0-9_-]{0,2000}(?![A-Za-z0-9_.-])",
            0.5,
        ),
    )
    context = ("jwt", "bearer", "token", "authorization", "id token", "access token")
    field_names = ("jwt", "idtoken", "accesstoken", "refreshtoken", "authorization", "bearer")

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        header_b64, payload_b64, _signature = candidate.split(".")
        header = _decode_json_object(header_b64)
        if header is None or "alg" not in header:
            return None
        if _decode_json_object(payload_b64) is None:
            return None
        return self.validated_score
