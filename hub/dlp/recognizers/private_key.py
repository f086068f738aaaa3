"""Private key blocks: PEM (``-----BEGIN RSA PRIVATE KEY-----``, PKCS#8, EC, DSA,
ENCRYPTED), OpenSSH and PGP armour — the whole block from BEGIN to END, so masking it
removes the key material, not just the header.

The pattern is tempered: a lazy, bounded body (16-8000 characters; a 4096-bit RSA key in
PKCS#8 is about 3,300) of base64, whitespace, literal ``\\n`` escapes (keys pasted into JSON)
and the few header characters PEM and PGP use (``Proc-Type: 4,ENCRYPTED``), so a BEGIN with
no END costs at most one bounded scan. ``validate`` wants the BEGIN and END labels to agree
and at least 64 base64 characters of body, which drops "-----BEGIN PRIVATE KEY-----
...-----END PRIVATE KEY-----" placeholders in docs."""

from __future__ import annotations

import re

from hub.dlp.base import Pattern, Recognizer

_LABEL = r"[A-Z0-9 ]{0,20}PRIVATE KEY(?: BLOCK)?"
_BODY = r"[A-Za-z0-9+/=\s\\:,.()-]{16,8000}?"
_MIN_BODY = 64
_HEADER_LINE = re.compile(r"^[A-Za-z-]+: .*$", re.MULTILINE)
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/=]+")


class PrivateKeyRecognizer(Recognizer):
    entity = "PRIVATE_KEY"
    name = "private_key"
    patterns = (
        Pattern(
            "pem block",
            "-----BEGIN " + _LABEL + "-----" + _BODY + "-----END " + _LABEL + "-----",
            0.6,
        ),
    )
    context = ("private key", "privatekey", "ssh", "pem", "rsa", "key")
    field_names = ("privatekey", "sshkey", "pem", "secretkey", "signingkey")

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        begin_end = candidate.index("-----", 11)
        begin_label = candidate[11:begin_end]
        end_start = candidate.rindex("-----END ")
        end_label = candidate[end_start + 9 : -5]
        if begin_label != end_label:
            return None
        body = candidate[begin_end + 5 : end_start].replace("\\n", "\n").replace("\\r", "\n")
        body = _HEADER_LINE.sub("", body)
        if len(_NOT_BASE64.sub("", body)) < _MIN_BODY:
            return None
        return self.validated_score
