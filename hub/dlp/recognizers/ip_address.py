"""IP_ADDRESS: IPv4 dotted quads and IPv6 addresses (all RFC 4291 text forms, including
``::`` compression and an embedded IPv4 tail), confirmed by the standard ``ipaddress``
module.

IPv4 octets are range-checked in the pattern itself (0-255, no leading zeros), so
``validate`` only parses. A dotted quad is also how software versions, section numbers and
OIDs look. The recognizer interface has no negative context, so that context lives in the
pattern as fixed-width negative lookbehinds: a quad directly after ``v``/``V`` or after the
words version, ver, release, build, rev or section (lower, Title or UPPER case, followed by
a space, ``:``, ``: `` or ``=``) is not a candidate, nor one glued to a further ``.digit``
or ``-suffix`` ("1.2.3.4-beta"). IPv6 candidates need at least two hex groups, so a lone
``::`` (C++ scopes, YAML) or ``::1`` is not reported; clock times and MAC addresses fail
``ipaddress``.
"""

from __future__ import annotations

import ipaddress

from hub.dlp.base import Pattern, Recognizer

_NEGATIVE_WORDS = ("version", "ver", "release", "build", "rev", "section")
_NEGATIVE_SEPARATORS = (" ", ":", ": ", "=")
_NOT_AFTER_WORD = "".join(
    f"(?<!{variant}{sep})"
    for word in _NEGATIVE_WORDS
    for variant in (word, word.title(), word.upper())
    for sep in _NEGATIVE_SEPARATORS
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = (
    r"(?=\d{1,3}\.\d)(?<![\w.\-])(?<!::)(?<![0-9A-Fa-f]{4}:)"  # not the tail of an IPv6 address
    + _NOT_AFTER_WORD
    + _OCTET
    + r"(?:\."
    + _OCTET
    + r"){3}(?![\w\-]|\.\w)"
)
_HEX = r"[0-9A-Fa-f]"
# Optional first group (absent when the address starts with '::'), then 2-7 ':'-led groups
# (empty groups allow '::'), then an optional IPv4 tail.
_IPV6 = (
    rf"(?={_HEX}{{0,4}}:)(?<![\w:.])(?:{_HEX}{{1,4}}|(?=::))(?::{_HEX}{{0,4}}){{2,7}}"
    r"(?:\.\d{1,3}){0,3}(?![\w:]|\.\w)"
)


class IpAddressRecognizer(Recognizer):
    entity = "IP_ADDRESS"
    name = "ip_address"
    patterns = (Pattern("ipv4", _IPV4, 0.6), Pattern("ipv6", _IPV6, 0.7))
    context = ("ip", "ipv4", "ipv6", "address", "addr", "host", "client", "server", "remote")
    # No bare "ip": field matching is by suffix, and "zip" and "membership" end with it.
    field_names = (
        "ipaddress",
        "ipaddr",
        "ipv4",
        "ipv6",
        "clientip",
        "remoteip",
        "sourceip",
        "srcip",
        "destinationip",
        "dstip",
        "hostip",
        "serverip",
        "remoteaddr",
    )

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        if pattern.name == "ipv4":
            return pattern.score  # octet ranges are checked by the pattern
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            return None
        head = candidate.split(".", 1)[0]
        if sum(1 for group in head.split(":") if group) < 2:
            return None
        return pattern.score
