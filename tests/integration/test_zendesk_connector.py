"""The zendesk connector against the Zendesk simulator (a real HTTP server on 127.0.0.1):
paging and cursors, resumes at every page boundary and inside pages, incremental reads of
new changes, the export limit paced and 429s honoured (requests and waits counted), 5xx
bursts, malformed JSON and timeouts recovered, bad items quarantined with reasons that
quote no value; then runs through the hub's ``ConnectorRunner`` on the session broker,
one of them killed (SIGKILL) between two pages and resumed."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.zendesk.config import ZendeskConfig
from connectors.zendesk.connector import ZendeskConnector
from connectors.zendesk.dataset import Dataset, generate
from connectors.zendesk.simulator import Faults, Simulator, create_app
from hub.broker import ensure_topics
from hub.connect import ConnectorRunner, stream_codecs
from hub.connect_offsets import OffsetStore
from hub.errors import ConfigError, RetriableError
from hub.events import deterministic_id
from hub.sdk.streams import SourceRecord
from hub.serde import AvroCodec, load_schema_text, schema_path
from hub.serving import serve
from hub.settings import REPO_ROOT
from tests.integration.conftest import headers_of, hub_env, read_topic

SCHEMAS = REPO_ROOT / "schemas"
PAGE = 7
NO_LIMITS = {"export_limit": 0, "account_limit": 0}


class Sleeps:
    """The connector's sleep: records every wait, then really waits."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


@dataclass
class Site:
    url: str
    sim: Simulator
    data: Dataset

    def connector(self, sleeps: Sleeps | None = None, **config: Any) -> ZendeskConnector:
        settings: dict[str, Any] = {
            "name": "zd-it",
            "base_url": self.url,
            "email": self.sim.email,
            "api_token": self.sim.api_token,
            "page_size": PAGE,
            "comments_page_size": 2,
            "export_rate_limit": 10_000,
            "poll_interval_seconds": 0,
            "retry_attempts": 4,
            "retry_backoff_seconds": 0.01,
            "read_timeout_seconds": 2,
            **config,
        }
        return ZendeskConnector(ZendeskConfig(**settings), sleep=sleeps or Sleeps())


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Simulator]]:
    sim = Simulator()
    with serve(create_app(sim)) as url:
        yield url, sim


@pytest.fixture
def site(server: tuple[str, Simulator]) -> Site:
    """The module's server with a fresh account, no limits, no faults, an admin."""
    url, sim = server
    data = generate(5, tickets=45, users=25, organizations=10)
    sim.reset(data, Faults(**NO_LIMITS))  # type: ignore[arg-type]
    sim.role = "admin"
    return Site(url, sim, data)


def read(
    connector: ZendeskConnector, stream: str, cursor: Mapping[str, Any] | None = None
) -> list[SourceRecord]:
    return list(connector.fetch_stream(connector.stream(stream), cursor))


def ids(records: list[SourceRecord]) -> list[str]:
    return [r.record_id for r in records if not r.checkpoint]


def good(records: list[SourceRecord]) -> set[str]:
    return {r.record_id for r in records if not r.checkpoint and not r.reasons}


def visible_tickets(data: Dataset) -> int:
    return len(data.tickets)


# -- paging and cursors ---------------------------------------------------------------------


def test_every_stream_pages_through_its_export_and_reads_each_item_once(site: Site) -> None:
    connector = site.connector()
    expected = site.data.expected()
    for stream in ("tickets", "users", "organizations", "ticket_comments"):
        records = read(connector, stream)
        assert len(ids(records)) == len(set(ids(records))), f"{stream}: an item read twice"
        assert good(records) == expected.good[stream], stream
        assert sum(1 for r in records if r.reasons) == expected.bad[stream], stream
    stats = site.sim.stats
    # cursor export: one request per page of 7, the last one says end_of_stream
    assert stats["route:tickets_export"] == 2 * math.ceil(len(site.data.tickets) / PAGE)
    assert stats["route:users_export"] == math.ceil(len(site.data.users) / PAGE)
    # time-based: organizations share a second at a page boundary (a bulk update): the
    # next page repeats that second, and nothing is read twice (asserted above)
    assert stats["route:organizations_export"] >= math.ceil(len(site.data.organizations) / PAGE)
    assert stats["status:429"] == 0


def resume_points(records: list[SourceRecord]) -> list[int]:
    return [i for i, r in enumerate(records) if r.cursor is not None]


@pytest.mark.parametrize("stream", ["tickets", "users", "organizations", "ticket_comments"])
def test_a_resume_from_any_cursor_neither_skips_nor_repeats(site: Site, stream: str) -> None:
    """A kill after any resume point (page boundaries included): the rest of the read,
    from that cursor, is exactly what the full read had after it."""
    full = read(site.connector(), stream)
    points = resume_points(full)
    boundaries = [i for i in points if "after" not in (full[i].cursor or {})]
    inside = [i for i in points if i not in boundaries]
    step = 5 if stream != "ticket_comments" else 20
    tried = 0
    for i in sorted({*boundaries[:: 1 if stream != "ticket_comments" else 4], *inside[::step]}):
        rest = read(site.connector(), stream, dict(full[i].cursor or {}))
        assert ids(rest) == ids(full[i + 1 :]), f"resume after #{i} ({full[i].cursor})"
        tried += 1
    assert tried >= 5


def test_new_changes_are_read_by_the_next_incremental_read(site: Site) -> None:
    connector = site.connector()
    first = {s: read(connector, s) for s in ("tickets", "ticket_comments")}
    final = {s: next(r.cursor for r in reversed(recs) if r.cursor) for s, recs in first.items()}
    assert read(connector, "tickets", final["tickets"]) == [SourceRecord.at(final["tickets"])], (
        "nothing changed, yet something was read"
    )

    changed = [t["id"] for t in site.data.tickets if t["status"] == "open"][:3]
    at = int(time.time()) - 120
    for n, tid in enumerate(changed):
        site.sim.touch_ticket(tid, at=at + n, status="solved", comment=f"Solved, thanks ({n})")
    again = read(connector, "tickets", final["tickets"])
    assert [r.key for r in again if not r.checkpoint] == [str(t) for t in changed]
    assert all(r.value and r.value["case_status"] == "Resolved" for r in again if r.value)
    assert {r.record_id for r in again if not r.checkpoint} == {
        f"tickets:{tid}:{at + n}" for n, tid in enumerate(changed)
    }
    comments = read(connector, "ticket_comments", final["ticket_comments"])
    bodies = [r.value["body"] for r in comments if r.value]
    assert [b for b in bodies if b.startswith("Solved, thanks")] == [
        f"Solved, thanks ({n})" for n in range(3)
    ]
    # the older comments of those tickets come again with the same record ids (the same
    # event ids: consumers drop them), never with new ones
    before = good(first["ticket_comments"])
    assert all(
        r.record_id in before or "Solved" in (r.value or {}).get("body", "")
        for r in comments
        if not r.checkpoint and not r.reasons
    )


# -- comments from the ticket event export (comments.source=events) ---------------------------


def test_comment_events_read_every_comment_once_in_few_requests(site: Site) -> None:
    """The event export gives the same comments (the same record ids) as reading them per
    ticket, plus those of tickets the ticket export cannot place, in one request per page
    of events instead of one per ticket."""
    records = read(site.connector(comments_source="events"), "ticket_comments")
    expected = site.data.expected(comments="events")
    assert len(ids(records)) == len(set(ids(records)))
    assert good(records) == expected.good["ticket_comments"]
    assert sum(1 for r in records if r.reasons) == expected.bad["ticket_comments"]
    comments = sum(len(t) for t in site.data.comments.values())
    stats = site.sim.stats
    assert stats["route:ticket_events_export"] <= math.ceil(comments / PAGE) + 2
    assert stats["route:comments"] == 0
    per_ticket = good(read(site.connector(), "ticket_comments"))
    assert per_ticket <= good(records)  # one record id per comment, whichever the source
    assert stats["route:comments"] > stats["route:ticket_events_export"]
    values = [r.value for r in records if r.value]
    assert all(v["body"] and v["ticket_id"] for v in values)


def test_comment_events_resume_from_any_cursor(site: Site) -> None:
    full = read(site.connector(comments_source="events"), "ticket_comments")
    points = resume_points(full)
    assert all((full[i].cursor or {}).get("source") == "events" for i in points)
    for i in points[::7]:
        rest = read(
            site.connector(comments_source="events"), "ticket_comments", dict(full[i].cursor or {})
        )
        assert ids(rest) == ids(full[i + 1 :]), f"resume after #{i} ({full[i].cursor})"


def test_comment_events_read_new_comments_next_time(site: Site) -> None:
    connector = site.connector(comments_source="events")
    first = read(connector, "ticket_comments")
    final = next(r.cursor for r in reversed(first) if r.cursor)
    assert ids(read(connector, "ticket_comments", final)) == []
    ticket = next(t["id"] for t in site.data.tickets if t["status"] == "open")
    site.sim.touch_ticket(ticket, at=int(time.time()) - 120, comment="Fixed on our side")
    again = read(connector, "ticket_comments", final)
    assert [(r.key, (r.value or {}).get("body")) for r in again if not r.checkpoint] == [
        (str(ticket), "Fixed on our side")
    ]


def test_a_cursor_of_the_other_comments_source_is_a_config_error(site: Site) -> None:
    per_ticket = read(site.connector(), "ticket_comments")
    cursor = next(r.cursor for r in reversed(per_ticket) if r.cursor)
    with pytest.raises(ConfigError, match=r"another comments\.source"):
        read(site.connector(comments_source="events"), "ticket_comments", cursor)
    events = read(site.connector(comments_source="events"), "ticket_comments")
    cursor = next(r.cursor for r in reversed(events) if r.cursor)
    with pytest.raises(ConfigError, match=r"another comments\.source"):
        read(site.connector(), "ticket_comments", cursor)


@pytest.mark.parametrize(
    "cursor",
    [{"start_time": "yesterday"}, {"cursor": 42}, {"after": [1, "x"]}, {"partial": [1, 2]}],
)
def test_a_cursor_altered_by_hand_is_a_config_error(site: Site, cursor: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="stored cursor of stream tickets") as caught:
        read(site.connector(), "tickets", cursor)
    assert "yesterday" not in caught.value.message
    assert site.sim.stats["requests"] == 0


def test_deleted_tickets_are_left_out_when_asked(site: Site) -> None:
    deleted = {t for t, kind in site.data.faults["tickets"].items() if kind == "deleted"}
    assert deleted
    records = read(site.connector(exclude_deleted=True), "tickets")
    assert not {r.key for r in records} & {str(t) for t in deleted}
    assert good(records) == site.data.expected(exclude_deleted=True).good["tickets"]


def test_oauth_bearer_token_reads(site: Site) -> None:
    connector = site.connector(email=None, api_token=None, oauth_token=site.sim.oauth_token)
    connector.check()
    assert good(read(connector, "users")) == site.data.expected().good["users"]


# -- rate limits ----------------------------------------------------------------------------


def test_the_export_limit_is_paced_so_no_429_comes(site: Site) -> None:
    site.sim.faults = Faults(export_limit=6, window_seconds=1.0, account_limit=0)
    sleeps = Sleeps()
    connector = site.connector(sleeps, export_rate_limit=6, export_rate_window_seconds=1.0)
    started = time.monotonic()
    records = read(connector, "tickets")
    took = time.monotonic() - started
    pages = math.ceil(len(site.data.tickets) / PAGE)
    assert good(records) == site.data.expected().good["tickets"]
    assert site.sim.stats["route:tickets_export"] == pages  # no retry: no 429 came
    assert site.sim.stats["status:429"] == 0
    assert len(connector.pacer.waits) == pages - 1  # one request every 1/6 s
    assert all(0 < w <= 1 / 6 + 0.01 for w in connector.pacer.waits)
    assert sleeps.waits == connector.pacer.waits
    assert took >= (pages - 1) / 6 - 0.1


def test_a_429_is_waited_out_as_retry_after_says(site: Site) -> None:
    site.sim.faults = Faults(export_limit=3, window_seconds=1.0, account_limit=0)
    connector = site.connector(retry_attempts=5)  # the connector does not pace here
    started = time.monotonic()
    records = read(connector, "tickets")
    took = time.monotonic() - started
    assert good(records) == site.data.expected().good["tickets"]
    served_429 = site.sim.stats["export_429"]
    pages = math.ceil(len(site.data.tickets) / PAGE)
    assert served_429 >= 1
    # each 429 retried once, after "Retry-After: 1" (not the 0.01 s backoff)
    assert site.sim.stats["route:tickets_export"] == pages + served_429
    assert connector.requests == pages + served_429
    assert took >= served_429 * 1.0 - 0.05


def test_a_429_asking_longer_than_the_worker_allows_goes_back_to_the_worker(site: Site) -> None:
    site.sim.faults = Faults(throttle=True, retry_after=45, **NO_LIMITS)  # type: ignore[arg-type]
    with pytest.raises(RetriableError) as caught:
        read(site.connector(retry_max_wait_seconds=30), "users")
    assert caught.value.retry_after == 45
    assert site.sim.stats["requests"] == 1  # not retried here: the worker waits


def test_a_spent_account_budget_is_waited_for_before_the_next_request(site: Site) -> None:
    site.sim.faults = Faults(export_limit=0, account_limit=4, window_seconds=1.0)
    sleeps = Sleeps()
    connector = site.connector(sleeps, select="ticket_comments")
    records: list[SourceRecord] = []
    reading = cast(
        Generator[SourceRecord, None, None],
        connector.fetch_stream(connector.stream("ticket_comments"), None),
    )
    for rec in reading:
        records.append(rec)
        if sleeps.waits or site.sim.stats["requests"] > 40:
            break  # a request after the budget's reset came back
    reading.close()
    assert site.sim.stats["requests"] <= 9  # at most two windows: 4 + 4 + 1
    assert site.sim.stats["status:429"] == 0  # ratelimit-remaining: 0 was heeded
    assert sleeps.waits, "no wait for the budget's reset"
    assert all(0 < w <= 1.0 for w in sleeps.waits)


# -- failures -------------------------------------------------------------------------------


def test_a_burst_of_5xx_is_retried(site: Site) -> None:
    site.sim.faults = Faults(fail_next=3, fail_status=503, **NO_LIMITS)  # type: ignore[arg-type]
    records = read(site.connector(retry_attempts=4), "users")
    assert good(records) == site.data.expected().good["users"]
    assert site.sim.stats["status:503"] == 3


def test_a_server_down_for_longer_than_the_attempts_is_retriable(site: Site) -> None:
    site.sim.faults = Faults(down=True, **NO_LIMITS)  # type: ignore[arg-type]
    with pytest.raises(RetriableError, match="HTTP 503 after 3 attempts"):
        read(site.connector(retry_attempts=3), "organizations")
    assert site.sim.stats["requests"] == 3


def test_malformed_json_is_retried_then_given_up(site: Site) -> None:
    site.sim.faults = Faults(malformed_next=2, **NO_LIMITS)  # type: ignore[arg-type]
    records = read(site.connector(), "organizations")
    assert good(records) == site.data.expected().good["organizations"]
    assert site.sim.stats["malformed"] == 2
    site.sim.faults = Faults(malformed_next=100, **NO_LIMITS)  # type: ignore[arg-type]
    with pytest.raises(RetriableError, match="not JSON"):
        read(site.connector(retry_attempts=3), "organizations")


def test_a_slow_answer_times_out_and_is_retried(site: Site) -> None:
    site.sim.faults = Faults(slow_next=1, slow_seconds=1.5, **NO_LIMITS)  # type: ignore[arg-type]
    connector = site.connector(read_timeout_seconds=0.5)
    records = read(connector, "users")
    assert good(records) == site.data.expected().good["users"]
    assert site.sim.stats["slow"] == 1
    assert connector.requests == math.ceil(len(site.data.users) / PAGE) + 1


def test_bad_items_are_quarantined_with_reasons_that_quote_no_value(site: Site) -> None:
    connector = site.connector()
    bad = [
        r
        for s in ("tickets", "users", "organizations", "ticket_comments")
        for r in read(connector, s)
        if r.reasons
    ]
    faults = site.data.faults
    assert len(bad) == sum(site.data.expected().bad.values())
    rules = Counter(reason.rule_id for r in bad for reason in r.reasons)
    deleted_or_unknown = sum(
        1 for kind in faults["tickets"].values() if kind in ("deleted", "unknown_status")
    )
    assert rules["service.case_status.unmapped"] == deleted_or_unknown
    assert rules["zendesk.missing"] >= 1
    assert rules["zendesk.int_type"] >= 1
    by_id = {
        **{u["id"]: u for u in site.data.users},
        **{o["id"]: o for o in site.data.organizations},
        **{t["id"]: t for t in site.data.tickets},
    }
    for rec in bad:
        text = json.dumps([reason.as_dict() for reason in rec.reasons])
        for quoted in site.data.expected().quoted.values():
            assert quoted not in text
        assert rec.raw is not None  # the item, for re-drive after a fix
        item = by_id.get(json.loads(rec.raw).get("id"))
        for name in ("name", "email", "phone", "subject", "description", "body"):
            value = (item or {}).get(name) or json.loads(rec.raw).get(name)
            if isinstance(value, str) and len(value) > 3:
                assert value not in text, f"{rec.record_id}: a reason quotes {name}"
        assert rec.error_class in ("SchemaError", "DataQualityError")


# -- through the hub's runner, on the session broker --------------------------------------


@dataclass(frozen=True)
class Topics:
    tickets: str
    comments: str
    users: str
    organizations: str
    quarantine: str
    offsets: str

    @classmethod
    def make(cls, bootstrap: str, suffix: str) -> Topics:
        name = f"it.zd.{{}}.{suffix}".format
        t = cls(
            name("tickets"),
            name("comments"),
            name("users"),
            name("orgs"),
            name("quarantine"),
            f"_it-zd-off-{suffix}",
        )
        specs: dict[str, tuple[int, dict[str, str]]] = {
            name: (2, {})
            for name in (t.tickets, t.comments, t.users, t.organizations, t.quarantine)
        }
        ensure_topics(bootstrap, {**specs, t.offsets: (1, {"cleanup.policy": "compact"})})
        return t


def build_runner(
    bootstrap: str,
    registry: SchemaRegistryClient,
    url: str,
    topics: Topics,
    *,
    select: str,
    chunk_size: int,
) -> ConnectorRunner:
    connector = ZendeskConnector(
        ZendeskConfig(
            name="zd-runner",
            base_url=url,
            email=Simulator.email,
            api_token=Simulator.api_token,
            page_size=PAGE,
            comments_page_size=2,
            export_rate_limit=10_000,
            poll_interval_seconds=0,
            select=select,
            tickets_topic=topics.tickets,
            ticket_comments_topic=topics.comments,
            users_topic=topics.users,
            organizations_topic=topics.organizations,
        )
    )
    offsets = OffsetStore(bootstrap, topics.offsets)
    offsets.load()
    quarantine = load_schema_text(schema_path(SCHEMAS, "common/QuarantineRecord"))
    return ConnectorRunner(
        connector,
        bootstrap=bootstrap,
        codec_for=stream_codecs(registry, SCHEMAS),
        quarantine_codec=AvroCodec(registry, topics.quarantine, quarantine),
        offsets=offsets,
        chunk_size=chunk_size,
    )


def runner_main(argv: list[str]) -> None:
    """The connector subprocess of the kill test: reads the ticket stream once."""
    bootstrap, registry_url, url, *names = argv
    topics = Topics(*names)
    registry = SchemaRegistryClient({"url": registry_url})
    build_runner(bootstrap, registry, url, topics, select="tickets", chunk_size=5).run_once()


def event_ids(data: Dataset, stream: str) -> set[str]:
    return {deterministic_id("zd-runner", rid) for rid in data.expected().good[stream]}


@pytest.mark.integration
def test_every_stream_through_the_runner_once(
    kafka_bootstrap: str, registry: SchemaRegistryClient, site: Site, unique: str
) -> None:
    topics = Topics.make(kafka_bootstrap, unique)
    runner = build_runner(
        kafka_bootstrap,
        registry,
        site.url,
        topics,
        select="tickets,ticket_comments,users,organizations",
        chunk_size=50,
    )
    expected = site.data.expected()
    try:
        handled = runner.run_once()
        assert handled == sum(len(v) for v in expected.good.values()) + sum(expected.bad.values())
        for stream, topic in (
            ("tickets", topics.tickets),
            ("ticket_comments", topics.comments),
            ("users", topics.users),
            ("organizations", topics.organizations),
        ):
            messages = read_topic(kafka_bootstrap, topic, expect=len(expected.good[stream]))
            seen = Counter(headers_of(m)["ce_id"] for m in messages)
            assert set(seen) == event_ids(site.data, stream), stream
            assert max(seen.values()) == 1, f"{stream}: an event published twice"
        codec = AvroCodec(
            registry,
            topics.tickets,
            load_schema_text(schema_path(SCHEMAS, "service/TicketChanged")),
        )
        statuses = {t["id"]: t["status"] for t in site.data.tickets}
        mapped = {
            "new": "Open",
            "open": "In Progress",
            "pending": "Waiting on Customer",
            "hold": "In Progress",
            "solved": "Resolved",
            "closed": "Closed",
        }
        for m in read_topic(kafka_bootstrap, topics.tickets, expect=1):
            value = codec.decode(m.value())
            assert m.key() == str(value["ticket_id"]).encode()
            assert value["case_status"] == mapped[statuses[value["ticket_id"]]]
            assert value["case_status_policy"] == "2026.12-service.1"
        quarantined = read_topic(
            kafka_bootstrap, topics.quarantine, expect=sum(expected.bad.values())
        )
        assert len(quarantined) == sum(expected.bad.values())
        assert runner.run_once() == 0  # the cursors are at the end: nothing new
    finally:
        runner.close()


@pytest.mark.integration
def test_a_kill_between_pages_resumes_without_skipping_or_repeating(
    kafka_bootstrap: str,
    registry_url: str,
    registry: SchemaRegistryClient,
    site: Site,
    unique: str,
    tmp_path: Any,
) -> None:
    topics = Topics.make(kafka_bootstrap, unique)
    site.sim.faults = Faults(stall_after=3, slow_seconds=60, **NO_LIMITS)  # type: ignore[arg-type]
    code = (
        "import sys; from tests.integration.test_zendesk_connector import runner_main; "
        "runner_main(sys.argv[1:])"
    )
    argv = [
        kafka_bootstrap,
        registry_url,
        site.url,
        topics.tickets,
        topics.comments,
        topics.users,
        topics.organizations,
        topics.quarantine,
        topics.offsets,
    ]
    log_path = tmp_path / "connector.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *argv],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=hub_env(kafka_bootstrap, registry_url, tmp_path / "home"),
        )
    try:
        deadline = time.monotonic() + 60
        while site.sim.stats["stalled"] == 0 and time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
            time.sleep(0.05)
        assert site.sim.stats["stalled"] == 1, "the connector never asked for page 4"
        time.sleep(0.3)  # the runner is waiting for page 4: three pages were read
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        site.sim.faults = Faults(**NO_LIMITS)  # type: ignore[arg-type]
    assert proc.returncode == -signal.SIGKILL

    store = OffsetStore(kafka_bootstrap, topics.offsets)
    store.load()
    committed = store.get("zd-runner", {"stream": "tickets"})
    assert committed is not None
    assert committed["done"] is False
    assert 0 < committed["rows_read"] < len(site.data.tickets)
    before = read_topic(kafka_bootstrap, topics.tickets)

    runner = build_runner(
        kafka_bootstrap, registry, site.url, topics, select="tickets", chunk_size=5
    )
    try:
        runner.run_once()
    finally:
        runner.close()
    expected = site.data.expected()
    after = read_topic(kafka_bootstrap, topics.tickets, expect=len(expected.good["tickets"]))
    seen = Counter(headers_of(m)["ce_id"] for m in after)
    assert set(seen) == event_ids(site.data, "tickets"), "a ticket change never arrived"
    assert max(seen.values()) == 1, "a ticket change was published twice"
    assert len(before) < len(after)
    quarantined = read_topic(kafka_bootstrap, topics.quarantine, expect=expected.bad["tickets"])
    assert Counter(headers_of(m)["ce_id"] for m in quarantined).most_common(1)[0][1] == 1
    assert len(quarantined) == expected.bad["tickets"]
    done = OffsetStore(kafka_bootstrap, topics.offsets)
    done.load()
    final = done.get("zd-runner", {"stream": "tickets"})
    assert final is not None
    assert final["done"] is True
    assert final["rows_read"] == len(site.data.tickets)
