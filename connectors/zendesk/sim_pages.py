"""The simulator's paging, as the Zendesk Support API documents it (pure functions over an
ordered index; ``simulator.py`` serves them).

- Cursor-based incremental exports: items after a position (``start_time`` → (t, -1); a
  ``cursor`` → the (timestamp, id) it encodes, like Zendesk's base64 ``"<t>.0||<id>|"``),
  at most ``per_page`` (1000), changes of the last minute left out; ``after_cursor`` is
  the last item read, ``end_of_stream`` says nothing is left.
- The time-based export: items at or after ``start_time``; a page never splits a second
  (it runs on past ``per_page`` to the end of its last second), so the next page, asked
  from ``end_time``, repeats that second's items; ``end_of_stream`` when ``count`` is
  below ``per_page``.
- Lists (comments, users): cursor pagination (``page[size]`` up to 100, ``page[after]``,
  ``meta.has_more``/``after_cursor``, ``links.next``) or offset pagination (``page``,
  ``per_page``, ``next_page``, ``previous_page``, ``count``).
"""

from __future__ import annotations

import base64
import binascii
import json
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

__all__ = ["EXPORT_MAX", "LIST_MAX", "Index", "PageError", "cursor_page", "list_page", "time_page"]

EXPORT_MAX, LIST_MAX = 1000, 100
_INF = 1 << 62
_TOO_RECENT = "Too recent start_time. Use a start_time older than 1 minute"


@dataclass(frozen=True)
class PageError:
    status: int
    error: str
    description: str


class Index:
    """Items of one export, ordered by (timestamp, id), with their JSON pre-encoded (the
    items carry ``_id`` and ``_ts``, their position; keys starting with _ are not sent)."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.by_id = {i["_id"]: i for i in items}
        self.rebuild()

    def rebuild(self) -> None:
        order = sorted(self.by_id.values(), key=lambda i: (i["_ts"], i["_id"]))
        self.keys = [(i["_ts"], i["_id"]) for i in order]
        self.items = order
        self.encoded = [json.dumps(public(i)).encode() for i in order]


def public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("_")}


def number(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def encode_cursor(key: tuple[int, int]) -> str:
    return base64.urlsafe_b64encode(f"{key[0]}.0||{key[1]}|".encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[int, int] | None:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        ts, _, rest = raw.partition(".0||")
        return int(ts), int(rest.rstrip("|"))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return None


def _tail(fields: dict[str, Any]) -> bytes:
    """``"k": v, ...}`` — the end of a page object whose item list was joined as bytes."""
    return json.dumps(fields)[1:].encode()


def cursor_page(
    index: Index, name: str, q: Mapping[str, str], url: str, cutoff: int
) -> bytes | PageError:
    """A page of ``/incremental/{name}/cursor.json`` (``url``: the endpoint's own URL)."""
    if q.get("cursor"):
        position = decode_cursor(q["cursor"])
        if position is None:
            return PageError(400, "InvalidPaginationParameter", "cursor is not valid")
    else:
        start = number(q.get("start_time"))
        if start is None:
            return PageError(400, "InvalidValue", "start_time is required")
        if start > cutoff:
            return PageError(400, "InvalidValue", _TOO_RECENT)
        position = (start, -1)
    per_page = min(number(q.get("per_page")) or EXPORT_MAX, EXPORT_MAX)
    skip_deleted = name == "tickets" and q.get("exclude_deleted") in ("true", "1")
    i = first = bisect_right(index.keys, position)
    end = bisect_right(index.keys, (cutoff, _INF))
    chosen: list[int] = []
    while i < end and len(chosen) < per_page:
        if not (skip_deleted and index.items[i].get("status") == "deleted"):
            chosen.append(i)
        i += 1
    after = encode_cursor(index.keys[i - 1] if i > first else position)
    extra = {"per_page": per_page} if q.get("per_page") else {}
    items = b",".join(index.encoded[j] for j in chosen)
    tail = _tail(
        {
            "after_url": f"{url}?{urlencode({'cursor': after, **extra})}",
            "after_cursor": after,
            "before_url": None,  # paging backwards is not reproduced
            "before_cursor": None,
            "end_of_stream": i >= end,
        }
    )
    return b'{"' + name.encode() + b'":[' + items + b"]," + tail


def time_page(
    index: Index, name: str, q: Mapping[str, str], url: str, cutoff: int
) -> bytes | PageError:
    """A page of ``/incremental/{name}.json`` (time-based)."""
    start = number(q.get("start_time"))
    if start is None:
        return PageError(400, "InvalidValue", "start_time is required")
    if start > cutoff:
        return PageError(400, "InvalidValue", _TOO_RECENT)
    per_page = min(number(q.get("per_page")) or EXPORT_MAX, EXPORT_MAX)
    i = bisect_right(index.keys, (start, -1))
    end = bisect_right(index.keys, (cutoff, _INF))
    j = min(i + per_page, end)
    while i < j < end and index.keys[j][0] == index.keys[j - 1][0]:
        j += 1  # a page never splits a second
    end_time = index.keys[j - 1][0] if j > i else start
    extra: dict[str, Any] = {"per_page": per_page} if q.get("per_page") else {}
    if q.get("include"):  # the next page side-loads what this one did
        extra["include"] = q["include"]
    tail = _tail(
        {
            "next_page": f"{url}?{urlencode({'start_time': end_time, **extra})}",
            "count": j - i,
            "end_of_stream": j - i < per_page,
            "end_time": end_time,
        }
    )
    return b'{"' + name.encode() + b'":[' + b",".join(index.encoded[i:j]) + b"]," + tail


def list_page(name: str, items: list[dict[str, Any]], q: Mapping[str, str], url: str) -> bytes:
    """A page of a list endpoint (items in order, each with an ``id``)."""
    if "page[size]" in q:  # cursor pagination
        size = min(number(q.get("page[size]")) or LIST_MAX, LIST_MAX)
        after = number(q.get("page[after]", "").removeprefix("c")) or 0
        start = next((k for k, it in enumerate(items) if it["id"] > after), len(items))
        page = items[start : start + size]
        more = start + size < len(items)
        after_c = f"c{page[-1]['id']}" if page else None
        payload: dict[str, Any] = {
            name: page,
            "meta": {
                "has_more": more,
                "after_cursor": after_c,
                "before_cursor": f"c{page[0]['id']}" if page else None,
            },
            "links": {
                "next": f"{url}?{urlencode({'page[size]': size, 'page[after]': after_c})}"
                if more
                else None,
                "prev": None,
            },
        }
    else:  # offset pagination
        per = min(number(q.get("per_page")) or LIST_MAX, LIST_MAX)
        page_no = max(number(q.get("page")) or 1, 1)
        page = items[(page_no - 1) * per : page_no * per]
        more = page_no * per < len(items)
        payload = {
            name: page,
            "next_page": f"{url}?{urlencode({'page': page_no + 1, 'per_page': per})}"
            if more
            else None,
            "previous_page": f"{url}?{urlencode({'page': page_no - 1, 'per_page': per})}"
            if page_no > 1
            else None,
            "count": len(items),
        }
    return json.dumps(payload).encode()
