"""How each kind of HubSpot stream is read, and the cursors that resume it exactly.

CRM objects (contacts, companies; and the contacts behind the association snapshots) go
through three phases, each in the cursor:

1. ``full``: the list endpoint, ordered by id, ``after`` paging.
   ``{"phase": "full", "started": S, "after": A, "id": X}``: the page at token ``A`` was
   being read and every object up to id ``X`` in it is done (a resume asks for page ``A``
   again and drops ids ≤ ``X``). ``S`` is when the pass started, less the settle time.
2. ``archived``: the same with ``archived=true`` (archived records, so deletions reach the
   hub as changes with ``archived: true``).
3. ``incremental``: the search endpoint, ``lastmodifieddate`` (``hs_lastmodifieddate`` for
   companies) ``GTE since`` and ``LT until`` (now less the settle time: the search index
   lags writes), sorted ascending. ``{"phase": "incremental", "since": T, "id": X}``:
   every change up to ``(T, X)`` in (modified, id) order is done. Records sharing a
   millisecond (a bulk import) come from the search in no defined order, so each group of
   equal times is held until the time moves on and is then emitted in id order: the cursor
   after each record is exact. A search returns 10,000 results at most: a window that
   holds more is halved until it fits; one millisecond that holds more is read by id
   (``hs_object_id GT X``, sorted by id). Paging is an offset: when the total of the
   window changes between pages (a record in it was modified again and left it), the
   window is asked again from the last emitted position, so nothing shifts past unseen.
   After ``full.resync.hours`` a new full pass starts (it also catches archivals).

Marketing e-mail events are immutable: windows of ``created`` time, closed (ending before
now less the settle time), paged by ``offset`` while ``hasMore``.
``{"since": T0, "until": T1, "offset": O, "skip": k, "limit": L}``: in the window
``[T0, T1)`` the page at ``O`` (of ``L``) was being read and its first ``k`` events are
done; a closed window answers the same pages again, so a resume is exact.

Campaigns are few: every page is read (sorted by ``updatedAt``), then the campaigns
after ``{"updated": T, "id": G}`` in (updatedAt, id) order are emitted.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from connectors.hubspot.client import EventsPage, HubSpotClient, Page
from connectors.hubspot.mapping import millis
from hub.errors import RetriableError

Item = tuple[Any, dict[str, Any] | None]  # (source object, the cursor after it)


@dataclass(slots=True)
class Batch:
    """What one request gave: objects with their cursors, then perhaps a checkpoint."""

    items: list[Item] = field(default_factory=list)
    checkpoint: dict[str, Any] | None = None
    phase: str = "full"
    started: int = 0  # of the full pass
    extra: Any = None  # what ``ObjectReader.enrich`` fetched for the items
    enriched: bool = False


def _oid(obj: Any) -> int | None:
    oid = obj.get("id") if isinstance(obj, dict) else None
    text = str(oid) if oid is not None else ""
    return int(text) if text.isdigit() else None


@dataclass
class ObjectReader:
    client: HubSpotClient
    object_type: str
    properties: Sequence[str]
    modified: str  # the last-modified property
    clock: Callable[[], int]  # epoch ms
    page_size: int = 100
    search_page_size: int = 100
    max_results: int = 10_000
    settle_ms: int = 30_000
    resync_ms: int = 0
    archived: bool = True  # read archived records in each full pass
    # more to fetch for each batch's objects (the association snapshots' batch read); in a
    # full pass it runs with the page, ahead of time
    enrich: Callable[[list[Any]], Any] | None = None
    searches: int = 0

    def read(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        for batch in self._read(cursor):
            if self.enrich is not None and batch.items and not batch.enriched:
                batch.extra, batch.enriched = self.enrich([o for o, _ in batch.items]), True
            yield batch

    def _read(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        cur = dict(cursor or {})
        phase = cur.get("phase")
        if phase not in ("full", "archived", "incremental"):
            cur = {"phase": "full", "started": self.clock() - self.settle_ms}
            phase = "full"
        if phase == "incremental":
            full_at = int(cur.get("full_at", cur.get("since", 0)))
            if self.resync_ms and self.clock() - full_at >= self.resync_ms:
                cur = {"phase": "full", "started": self.clock() - self.settle_ms}
                yield Batch(checkpoint={**cur, "after": None, "id": None})
                phase = "full"
            else:
                yield from self._incremental(int(cur["since"]), cur.get("id"), full_at)
                return
        started = int(cur["started"])
        if phase == "full":
            yield from self._list("full", started, cur.get("after"), cur.get("id"))
            nxt = {"phase": "archived", "started": started, "after": None, "id": None}
            yield Batch(checkpoint=nxt, phase="archived", started=started)
            cur = nxt
        if self.archived:
            yield from self._list("archived", started, cur.get("after"), cur.get("id"))
        inc = {"phase": "incremental", "since": started, "id": None, "full_at": started}
        yield Batch(checkpoint=inc, phase="incremental", started=started)
        yield from self._incremental(started, None, started)

    # -- list ---------------------------------------------------------------------------------

    def _fetch(self, phase: str, after: str | None) -> tuple[Page, Any]:
        page = self.client.list_page(
            self.object_type,
            properties=self.properties,
            limit=self.page_size,
            after=after,
            archived=phase == "archived",
        )
        extra = self.enrich(page.results) if self.enrich is not None and page.results else None
        return page, extra

    def _list(self, phase: str, started: int, after: str | None, last: Any) -> Iterator[Batch]:
        """The list endpoint page by page; the next page (and its enrichment) is fetched in
        a background thread while the caller handles this one. One request at a time is in
        flight, so rate limits and the client's state are as in a serial read."""
        last_id = int(last) if last is not None else None
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"hubspot-{phase}")
        try:
            ahead = pool.submit(self._fetch, phase, after)
            while True:
                page, extra = ahead.result()
                if page.after is not None:
                    ahead = pool.submit(self._fetch, phase, page.after)
                batch = Batch(phase=phase, started=started, extra=extra, enriched=True)
                for obj in page.results:
                    oid = _oid(obj)
                    if oid is not None and last_id is not None and oid <= last_id:
                        continue
                    at = None
                    if oid is not None:
                        at = {"phase": phase, "started": started, "after": after, "id": oid}
                    batch.items.append((obj, at))
                yield batch
                if page.after is None:
                    return
                after, last_id = page.after, None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # -- search -------------------------------------------------------------------------------

    def _search(self, lo: int, hi: int, after: str | None = None) -> Any:
        self.searches += 1
        return self.client.search_page(
            self.object_type,
            filters=[
                {"propertyName": self.modified, "operator": "GTE", "value": str(lo)},
                {"propertyName": self.modified, "operator": "LT", "value": str(hi)},
            ],
            sort=self.modified,
            properties=self.properties,
            limit=self.search_page_size,
            after=after,
        )

    def _incremental(self, since: int, last: Any, full_at: int) -> Iterator[Batch]:
        last_id: int | None = int(last) if last is not None else None
        until = self.clock() - self.settle_ms
        width = until - since  # a window's span: halved while too full, doubled after
        while since < until:
            hi = min(until, since + max(1, width))
            first = self._search(since, hi)
            while first.total > self.max_results and hi - since > 1:
                hi = since + (hi - since) // 2
                first = self._search(since, hi)
            width = 2 * (hi - since)
            if first.total > self.max_results:  # one millisecond holds too many: by id
                yield from self._one_millisecond(since, last_id, full_at)
                since, last_id = since + 1, None
            else:
                state: list[Any] = [since, last_id]
                done = yield from self._window(first, state, hi, full_at)
                since, last_id = state[0], state[1]
                if not done:
                    continue  # the window changed under the paging: ask again from here
                since, last_id = hi, None
            mark = {"phase": "incremental", "since": since, "id": None, "full_at": full_at}
            yield Batch(checkpoint=mark, phase="incremental")

    def _window(
        self, page: Any, state: list[Any], hi: int, full_at: int
    ) -> Generator[Batch, None, bool]:
        """Emit the window's records in (modified, id) order; returns False when its total
        changed between pages (``state`` then holds the last emitted position)."""
        since, last_id = state
        total = page.total
        group: list[tuple[int, int, Any]] = []
        group_at: int | None = None

        def flush() -> Batch:
            batch = Batch(phase="incremental")
            for at, oid, obj in sorted(group, key=lambda g: g[1]):
                cursor = {"phase": "incremental", "since": at, "id": oid, "full_at": full_at}
                batch.items.append((obj, cursor))
                state[0], state[1] = at, oid
            group.clear()
            return batch

        while True:
            loose = Batch(phase="incremental")
            for obj in page.results:
                oid = _oid(obj)
                props = obj.get("properties") if isinstance(obj, dict) else None
                at = millis(props.get(self.modified)) if isinstance(props, dict) else None
                if oid is None or at is None:
                    loose.items.append((obj, None))  # unreadable: quarantined, no resume point
                    continue
                if at == since and last_id is not None and oid <= last_id:
                    continue  # done before the resume point
                if group_at is not None and at < group_at:
                    raise RetriableError(
                        f"hubspot:{self.client.name}: search of {self.object_type} answered "
                        "out of order; will ask again"
                    )
                if group_at is not None and at > group_at:
                    loose.items.extend(flush().items)
                group.append((at, oid, obj))
                group_at = at
            if loose.items:
                yield loose
            if page.after is None:
                if group:
                    yield flush()
                return True
            page = self._search(since, hi, page.after)
            if page.total != total:
                return False  # pending group dropped: asked again from the last emitted

    def _one_millisecond(self, at: int, last_id: int | None, full_at: int) -> Iterator[Batch]:
        while True:
            self.searches += 1
            page = self.client.search_page(
                self.object_type,
                filters=[
                    {"propertyName": self.modified, "operator": "EQ", "value": str(at)},
                    {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id or 0)},
                ],
                sort="hs_object_id",
                properties=self.properties,
                limit=self.search_page_size,
            )
            batch = Batch(phase="incremental")
            for obj in page.results:
                oid = _oid(obj)
                cursor = None
                if oid is not None:
                    last_id = oid
                    cursor = {"phase": "incremental", "since": at, "id": oid, "full_at": full_at}
                batch.items.append((obj, cursor))
            yield batch
            if len(page.results) < self.search_page_size:
                return


# -- campaigns ------------------------------------------------------------------------------


def read_campaigns(
    client: HubSpotClient,
    cursor: dict[str, Any] | None,
    *,
    page_size: int,
    properties: Sequence[str],
) -> Iterator[Item]:
    after: str | None = None
    found: list[tuple[int, str, Any]] = []
    while True:
        page = client.campaigns_page(limit=page_size, after=after, properties=properties)
        for obj in page.results:
            updated = millis(obj.get("updatedAt")) if isinstance(obj, dict) else None
            cid = obj.get("id") if isinstance(obj, dict) else None
            found.append((updated if updated is not None else 0, str(cid or ""), obj))
        if page.after is None:
            break
        after = page.after
    found.sort(key=lambda f: (f[0], f[1]))
    done = (int(cursor["updated"]), str(cursor["id"])) if cursor else None
    for updated, cid, obj in found:
        if done is not None and (updated, cid) <= done:
            continue
        yield obj, {"updated": updated, "id": cid}


# -- e-mail events --------------------------------------------------------------------------


def read_email_events(
    client: HubSpotClient,
    cursor: dict[str, Any] | None,
    *,
    start_ms: int,
    window_ms: int,
    page_size: int,
    settle_ms: int,
    clock: Callable[[], int],
) -> Iterator[Item]:
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hubspot-events")
    try:
        yield from _email_events(
            client,
            cursor,
            pool,
            start_ms=start_ms,
            window_ms=window_ms,
            page_size=page_size,
            settle_ms=settle_ms,
            clock=clock,
        )
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _email_events(
    client: HubSpotClient,
    cursor: dict[str, Any] | None,
    pool: ThreadPoolExecutor,
    *,
    start_ms: int,
    window_ms: int,
    page_size: int,
    settle_ms: int,
    clock: Callable[[], int],
) -> Iterator[Item]:
    ahead: Future[EventsPage]
    cur = dict(cursor or {})
    since = int(cur.get("since", start_ms))
    until = cur.get("until")
    offset = cur.get("offset")
    skip = int(cur.get("skip", 0))
    limit = int(cur.get("limit", page_size))
    cap = clock() - settle_ms
    while True:
        if until is None:
            if since >= cap:
                return
            until, limit = min(since + window_ms, cap), page_size
        end = int(until)
        ahead = pool.submit(
            client.email_events_page, start_ms=since, end_ms=end, limit=limit, offset=offset
        )
        while True:
            page = ahead.result()
            if page.offset is not None:  # the next page is fetched while this one is handled
                ahead = pool.submit(
                    client.email_events_page,
                    start_ms=since,
                    end_ms=end,
                    limit=limit,
                    offset=page.offset,
                )
            for i, event in enumerate(page.events):
                if i < skip:
                    continue
                at = {"since": since, "until": end, "offset": offset, "skip": i + 1, "limit": limit}
                created = event.get("created") if isinstance(event, dict) else None
                if isinstance(created, int) and not since <= created < end:
                    continue  # belongs to the next window (an inclusive end)
                yield event, at
            if page.offset is None:
                break
            offset, skip = page.offset, 0
        since, until, offset, skip = end, None, None, 0
        yield None, {"since": since, "until": None, "offset": None, "skip": 0, "limit": limit}


__all__ = ["Batch", "Item", "ObjectReader", "read_campaigns", "read_email_events"]
