"""The hubspot connector against the HubSpot simulator on a real uvicorn server: paging,
exact resumes (a read killed between pages neither skips nor repeats, ties included), the
10,000-result search cap, rate limits (headers and 429 policies), 5xx bursts, malformed
JSON, timeouts, bad records, and one run through the real ConnectorRunner on the session
broker."""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.simdata import generate
from connectors.hubspot.simulator import Faults, Limits, Simulator, create_app
from hub.broker import ensure_topics
from hub.connect import ConnectorRunner, stream_codecs
from hub.connect_offsets import OffsetStore
from hub.connect_plugins import build_config, find_plugin
from hub.errors import RetriableError
from hub.sdk.streams import SourcePartition, SourceRecord
from hub.serde import AvroCodec, load_schema_text, schema_path
from hub.serving import serve
from hub.settings import REPO_ROOT
from tests.integration.conftest import headers_of, read_topic

SCHEMAS = REPO_ROOT / "schemas"
NOW = 1_790_000_000_000  # a frozen "now" after every generated change
FAST = {"backoff.initial.seconds": "0.01", "backoff.jitter.seconds": "0", "max.attempts": "4"}


@pytest.fixture
def sim_url() -> Iterator[tuple[Simulator, str]]:
    sim = Simulator(
        generate(3, contacts=250, companies=40, campaigns=4),
        limits=Limits(burst_max=None, search_per_second=None),
    )
    with serve(create_app(sim)) as url:
        yield sim, url


def make(
    sim: Simulator, url: str, clock: Callable[[], int] | None = None, /, **extra: str
) -> HubSpotConnector:
    config = {
        "access.token": sim.token,
        "base.url": url,
        "settle.seconds": "0",
        "start.date": "2025-01-01T00:00:00Z",
        **FAST,
        **extra,
    }
    plugin = find_plugin("hubspot")
    return HubSpotConnector(
        build_config(plugin, "it-hubspot", config),  # type: ignore[arg-type]
        clock=clock or (lambda: NOW),
    )


def read(
    connector: HubSpotConnector, stream: str, cursor: Any = None, stop_after: int | None = None
) -> tuple[list[SourceRecord], dict[str, Any] | None]:
    """The records of one stream (checkpoints left out) and the last cursor seen; with
    ``stop_after``, the read is closed after that many records (a kill)."""
    out: list[SourceRecord] = []
    last = dict(cursor) if cursor else None
    records = connector.fetch(SourcePartition({"stream": stream}, cursor))
    try:
        for rec in records:
            if rec.cursor is not None:
                last = dict(rec.cursor)
            if not rec.checkpoint:
                out.append(rec)
                if stop_after is not None and len(out) >= stop_after:
                    break
    finally:
        records.close()  # type: ignore[attr-defined]
    return out, last


def live_contacts(sim: Simulator) -> list[int]:
    return sorted(i for i, c in sim.account.contacts.items() if c.archived_at is None)


def ids(records: list[SourceRecord]) -> list[str]:
    return [r.record_id for r in records]


def test_a_full_sync_pages_the_list_endpoint_100_at_a_time(
    sim_url: tuple[Simulator, str],
) -> None:
    sim, url = sim_url
    records, last = read(make(sim, url), "contacts")
    live = sorted(i for i, c in sim.account.contacts.items() if c.archived_at is None)
    archived = sorted(i for i, c in sim.account.contacts.items() if c.archived_at is not None)
    assert archived, "the generator archived no contact"
    assert [int(r.key or 0) for r in records] == live + archived  # id order, each once
    assert sim.stats.by_endpoint["list"] == 3 + 1  # 250 live at 100 a page, then archived
    assert sim.stats.by_endpoint["search"] == 0  # the clock stood still: no window to search
    assert last is not None
    assert last["phase"] == "incremental"
    gone = [r for r in records if r.value and r.value["archived"]]
    assert [int(r.key or 0) for r in gone] == archived
    assert all(r.record_id.split(":")[2] == "archived" for r in gone)


def _touch_with_ties(sim: Simulator, start: int) -> list[int]:
    """Modify 40 contacts: 20 in the same millisecond (a bulk edit), 20 spread after it.
    Returns their ids in the order an exact read must give: (modified, id)."""
    contacts = sorted(i for i, c in sim.account.contacts.items() if c.archived_at is None)
    tied, spread = contacts[10:30], contacts[100:120]
    sim.touch("contacts", list(reversed(tied)), at_ms=start)
    for n, oid in enumerate(spread):
        sim.touch("contacts", [oid], at_ms=start + 1 + n // 3)  # small ties as well
    return tied + spread


def test_a_read_killed_mid_incremental_resumes_without_skip_or_repeat(
    sim_url: tuple[Simulator, str],
) -> None:
    sim, url = sim_url
    _, after_full = read(make(sim, url), "contacts")
    expected = _touch_with_ties(sim, NOW + 1_000)
    later = lambda: NOW + 60_000  # noqa: E731
    small = {"search.page.size": "7"}

    whole, _ = read(make(sim, url, later, **small), "contacts", after_full)
    assert [int(r.key or 0) for r in whole] == expected  # (modified, id) order, ties too
    # kills inside the tie group, at its page boundaries (7, 14) and after it (20)
    for cut in (1, 6, 7, 8, 13, 14, 19, 20, 21, 39):
        first, at = read(make(sim, url, later, **small), "contacts", after_full, stop_after=cut)
        rest, _ = read(make(sim, url, later, **small), "contacts", at)
        assert ids(first) + ids(rest) == ids(whole), f"killed after {cut}"


def test_a_read_killed_mid_full_sync_resumes_without_skip_or_repeat(
    sim_url: tuple[Simulator, str],
) -> None:
    sim, url = sim_url
    small = {"page.size": "30"}
    whole, _ = read(make(sim, url, **small), "contacts")
    for cut in (1, 29, 30, 31, 100, 245, 249):  # mid-page, page ends, the archived ones
        first, at = read(make(sim, url, **small), "contacts", stop_after=cut)
        rest, _ = read(make(sim, url, **small), "contacts", at)
        assert ids(first) + ids(rest) == ids(whole), f"killed after {cut}"


def test_email_events_resume_inside_a_page(sim_url: tuple[Simulator, str]) -> None:
    sim, url = sim_url
    small = {"email.events.page.size": "50", "email.events.window.days": "40"}
    whole, _ = read(make(sim, url, **small), "email_events")
    assert len(whole) == len(sim.account.events)
    for cut in (1, 49, 50, 51, 300):
        first, at = read(make(sim, url, **small), "email_events", stop_after=cut)
        rest, _ = read(make(sim, url, **small), "email_events", at)
        assert ids(first) + ids(rest) == ids(whole), f"killed after {cut}"


def test_a_window_that_changes_between_pages_is_asked_again(
    sim_url: tuple[Simulator, str],
) -> None:
    sim, url = sim_url
    _, after_full = read(make(sim, url), "contacts")
    changed = live_contacts(sim)[:30]
    for n, oid in enumerate(changed):
        sim.touch("contacts", [oid], at_ms=NOW + 1_000 + n)
    connector = make(sim, url, lambda: NOW + 60_000, **{"search.page.size": "7"})
    got: list[str] = []
    for rec in connector.fetch(SourcePartition({"stream": "contacts"}, after_full)):
        if rec.checkpoint:
            continue
        got.append(rec.record_id)
        if len(got) == 10:  # page 2 is read; one already emitted record changes again:
            sim.touch("contacts", [changed[2]], at_ms=NOW + 120_000)  # it leaves the window
    expected = [f"contacts:{oid}:{NOW + 1_000 + n}" for n, oid in enumerate(changed)]
    assert got == expected  # the offsets shifted by one: nothing skipped, nothing twice


def test_a_window_over_the_search_cap_is_split(sim_url: tuple[Simulator, str]) -> None:
    sim, url = sim_url
    _, after_full = read(make(sim, url), "contacts")
    big = generate(
        9, contacts=10_050, companies=0, campaigns=0, events_per_contact=0, archived_share=0
    )
    start = NOW + 1_000
    for n, obj in enumerate(big.contacts.values()):
        obj.id += 100_000
        obj.updated = start + n % 4_000  # 10,050 changes in 4 s, ties in most milliseconds
        sim.add("contacts", obj)
    records, last = read(make(sim, url, lambda: NOW + 60_000), "contacts", after_full)
    assert sorted(int(r.key or 0) for r in records) == sorted(o.id for o in big.contacts.values())
    assert len(records) == 10_050
    assert sim.stats.by_status[400] == 0  # never paged past the 10,000th result
    searches = sim.stats.by_endpoint["search"]
    assert 101 <= searches <= 115  # 100 a page, plus a few to size the windows
    order = [(r.value["updated_at"], int(r.key or 0)) for r in records if r.value]
    assert order == sorted(order)
    assert after_full is not None
    assert last == {
        "phase": "incremental",
        "since": NOW + 60_000,
        "id": None,
        "full_at": after_full["full_at"],
    }


def test_one_millisecond_over_the_cap_is_read_by_id(sim_url: tuple[Simulator, str]) -> None:
    sim, url = sim_url
    _, after_full = read(make(sim, url), "contacts")
    live = sorted(i for i, c in sim.account.contacts.items() if c.archived_at is None)
    sim.touch("contacts", live[:120], at_ms=NOW + 5_000)  # 120 in one millisecond
    sim.touch("contacts", live[120:125], at_ms=NOW + 5_001)
    cap = {"search.max.results": "50", "search.page.size": "20"}
    whole, _ = read(make(sim, url, lambda: NOW + 60_000, **cap), "contacts", after_full)
    assert [int(r.key or 0) for r in whole] == live[:125]
    # ~16 halvings down to the millisecond, 7 pages by id, ~16 doublings back up
    assert sim.stats.by_endpoint["search"] <= 60
    first, at = read(
        make(sim, url, lambda: NOW + 60_000, **cap), "contacts", after_full, stop_after=47
    )
    rest, _ = read(make(sim, url, lambda: NOW + 60_000, **cap), "contacts", at)
    assert ids(first) + ids(rest) == ids(whole)


def _api_log(sim: Simulator, prefix: str) -> list[tuple[float, int]]:
    return [(t, status) for t, path, status in sim.stats.log if path.startswith(prefix)]


def test_the_rate_limit_headers_are_honoured_before_any_429(
    sim_url: tuple[Simulator, str],
) -> None:
    sim, url = sim_url
    sim.limits.burst_max, sim.limits.burst_interval_ms = 4, 1_000
    began = time.monotonic()
    records, _ = read(make(sim, url, **{"page.size": "5"}), "companies")
    took = time.monotonic() - began
    assert len(records) == len(sim.account.companies)
    log = _api_log(sim, "/crm/v3/objects/companies")
    assert len(log) == 9  # 8 pages of 5, then the archived list
    assert all(status == 200 for _, status in log)  # waited for the budget: no 429
    times = [t for t, _ in log]
    assert all(b - a >= 0.95 for a, b in zip(times, times[4:], strict=False))  # ≤ 4 a second
    assert took >= 2.0


def test_a_search_429_waits_the_second_its_policy_names(sim_url: tuple[Simulator, str]) -> None:
    sim, url = sim_url
    _, after_full = read(make(sim, url), "contacts")
    for n, oid in enumerate(live_contacts(sim)[:30]):
        sim.touch("contacts", [oid], at_ms=NOW + 1_000 + n)
    sim.limits.search_per_second = 1
    records, _ = read(
        make(sim, url, lambda: NOW + 60_000, **{"search.page.size": "10"}), "contacts", after_full
    )
    assert len(records) == 30
    assert sim.stats.rate_limited["SECONDLY"] >= 1
    log = _api_log(sim, "/crm/v3/objects/contacts/search")
    for (t429, status), (t_next, _) in itertools.pairwise(log):
        if status == 429:
            assert t_next - t429 >= 0.9  # Retry-After 1 s from the body's policyName


def test_the_daily_limit_stops_the_read_until_midnight_without_retrying(
    sim_url: tuple[Simulator, str],
) -> None:
    sim, url = sim_url
    sim.limits.daily_max = 0
    connector = make(sim, url, **{"account.timezone": "America/New_York"})
    with pytest.raises(RetriableError) as caught:
        read(connector, "companies")
    assert sim.stats.rate_limited["DAILY"] == 1  # one request: no retry storm
    assert caught.value.retry_after is not None
    assert 1 <= caught.value.retry_after <= 86_400
    assert sim.token not in caught.value.message


def test_a_5xx_burst_is_recovered(sim_url: tuple[Simulator, str]) -> None:
    sim, url = sim_url
    clean, _ = read(make(sim, url), "companies")
    sim.faults = Faults(fail_next=3, fail_status=502)
    again, _ = read(make(sim, url), "companies")
    assert ids(again) == ids(clean)
    assert sim.stats.by_status[502] == 3


def test_malformed_json_is_retried_then_given_up_on(sim_url: tuple[Simulator, str]) -> None:
    sim, url = sim_url
    clean, _ = read(make(sim, url), "companies")
    sim.faults = Faults(malformed_next=2)
    again, _ = read(make(sim, url), "companies")
    assert ids(again) == ids(clean)
    sim.faults = Faults(malformed_next=100)
    with pytest.raises(RetriableError, match="not JSON") as caught:
        read(make(sim, url), "companies")
    assert "propert" not in caught.value.message  # the body is never quoted


def test_a_slow_answer_times_out_and_is_asked_again(sim_url: tuple[Simulator, str]) -> None:
    sim, url = sim_url
    clean, _ = read(make(sim, url), "companies")
    before = sim.stats.requests
    sim.faults = Faults(slow_next=1, slow_seconds=1.0)
    again, _ = read(make(sim, url, **{"read.timeout.seconds": "0.3"}), "companies")
    assert ids(again) == ids(clean)
    assert sim.stats.requests - before == 2 + 1  # a page and the archived list, one retry


def test_bad_records_go_to_quarantine_with_reasons_that_quote_no_value(
    sim_url: tuple[Simulator, str],
) -> None:
    sim, url = sim_url
    records, _ = read(make(sim, url), "contacts")
    bad = [r for r in records if r.reasons]
    assert {int(r.key or 0) for r in bad} == sim.account.bad_contacts
    for rec in bad:
        assert [(x.rule_id, x.field) for x in rec.reasons] == [
            ("hubspot.property.type", "num_conversion_events")
        ]
        assert "three" not in json.dumps([x.as_dict() for x in rec.reasons])
        assert rec.raw is not None
        assert b"three" in rec.raw
    events, _ = read(make(sim, url), "email_events")
    bad_events = {r.key for r in events if r.reasons}
    assert bad_events == sim.account.bad_events


def test_the_runner_publishes_every_stream_and_a_restart_reads_only_changes(
    sim_url: tuple[Simulator, str],
    kafka_bootstrap: str,
    registry: SchemaRegistryClient,
    unique: str,
) -> None:
    sim, url = sim_url
    prefix = f"it.hubspot.{unique}"
    quarantine, offsets = f"{prefix}.quarantine", f"_{prefix}.offsets"
    streams = ("contacts", "companies", "contact_company_associations", "campaigns", "email_events")
    ensure_topics(
        kafka_bootstrap,
        {
            **{f"{prefix}.{s}": (2, {}) for s in streams},
            quarantine: (1, {}),
            offsets: (1, {"cleanup.policy": "compact"}),
        },
    )

    def runner() -> ConnectorRunner:
        store = OffsetStore(kafka_bootstrap, offsets)
        store.load()
        text = load_schema_text(schema_path(SCHEMAS, "common/QuarantineRecord"))
        connector = make(
            sim,
            url,
            lambda: int(time.time() * 1000) + 1,
            **{"topic.template": f"{prefix}.{{stream}}"},
        )
        return ConnectorRunner(
            connector,
            bootstrap=kafka_bootstrap,
            codec_for=stream_codecs(registry, SCHEMAS),
            quarantine_codec=AvroCodec(registry, quarantine, text),
            offsets=store,
        )

    account = sim.account
    handled = runner().run_once()
    live = sum(1 for c in account.contacts.values() if c.archived_at is None)
    total = (
        len(account.contacts)
        + len(account.companies)
        + live
        + len(account.campaigns)
        + len(account.events)
    )
    assert handled == total
    contacts = read_topic(
        kafka_bootstrap,
        f"{prefix}.contacts",
        expect=len(account.contacts) - len(account.bad_contacts),
    )
    bad = len(account.bad_contacts) + len(account.bad_companies) + len(account.bad_events)
    assert len(read_topic(kafka_bootstrap, quarantine, expect=bad)) == bad
    first = contacts[0]
    headers = headers_of(first)
    assert headers["ce_type"] == "crm.marketing.contact.changed.v1"
    assert headers["hub_department"] == "marketing"
    value = AvroCodec(
        registry, f"{prefix}.contacts", load_schema_text(schema_path(SCHEMAS, "marketing/Contact"))
    ).decode(first.value())
    assert value["contact_id"] == (first.key() or b"").decode()
    assert value["email"] == account.contacts[int(value["contact_id"])].properties["email"]

    changed = sorted(
        i
        for i in account.contacts
        if i not in account.bad_contacts and account.contacts[i].archived_at is None
    )[:3]
    sim.touch("contacts", changed)  # now: after the first run's incremental window
    assert runner().run_once() == 3 + 3  # the changes, and their association snapshots
    contacts = read_topic(kafka_bootstrap, f"{prefix}.contacts", expect=len(contacts) + 3)
    twice = Counter(int((m.key() or b"0").decode()) for m in contacts)
    assert sorted(k for k, n in twice.items() if n == 2) == changed
    assert len(contacts) == len(account.contacts) - len(account.bad_contacts) + 3


def test_the_simulators_admin_surface_switches_faults_and_counts(
    sim_url: tuple[Simulator, str],
) -> None:
    sim, url = sim_url
    auth = {"Authorization": f"Bearer {sim.token}"}
    with httpx.Client(base_url=url, timeout=10) as http:
        assert http.post("/_sim/faults", json={"down": True}).json()["down"] is True
        assert http.get("/crm/v3/objects/contacts", headers=auth).status_code == 503
        http.post("/_sim/faults", json={"down": False, "expired_token": True})
        expired = http.get("/crm/v3/objects/contacts", headers=auth)
        assert expired.status_code == 401
        assert expired.json()["category"] == "EXPIRED_AUTHENTICATION"
        http.post("/_sim/faults", json={"expired_token": False})
        http.post("/_sim/touch", json={"objectType": "contacts", "ids": [101], "atMs": NOW})
        assert sim.account.contacts[101].updated == NOW
        ok = http.get("/crm/v3/objects/contacts", headers=auth, params={"limit": 2})
        assert ok.headers["X-HubSpot-RateLimit-Daily-Remaining"].isdigit()
        assert (
            http.get("/crm/v3/objects/contacts", headers=auth, params={"limit": 101}).status_code
            == 400
        )  # the list's max is 100
        stats = http.get("/_sim/stats").json()
    assert stats["byStatus"] == {"503": 1, "401": 1, "200": 1, "400": 1}


def test_archivals_arrive_with_the_next_full_pass(sim_url: tuple[Simulator, str]) -> None:
    sim, url = sim_url
    _, after_full = read(make(sim, url), "contacts")
    victim = live_contacts(sim)[5]
    sim.archive("contacts", [victim], at_ms=NOW + 1_000)
    unseen, _ = read(make(sim, url, lambda: NOW + 60_000), "contacts", after_full)
    assert unseen == []  # the search API does not return archived records
    day_later = NOW + 25 * 3_600_000  # past full.resync.hours (24)
    records, last = read(make(sim, url, lambda: day_later), "contacts", after_full)
    gone = [r.record_id for r in records if r.value and r.value["archived"]]
    assert f"contacts:{victim}:archived:{NOW + 1_000}" in gone
    assert last is not None
    assert last["full_at"] == day_later  # a new pass started (settle.seconds 0)
