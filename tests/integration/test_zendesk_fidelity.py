"""Fidelity of the Zendesk simulator: ``zenpy``, the most-used Python client of the Zendesk
API, reads it as it reads Zendesk. Zenpy builds its URLs as https://{subdomain}.{domain};
its own settings ``ZENPY_FORCE_NETLOC`` and ``ZENPY_FORCE_SCHEME`` (added by its maintainer
for local mocks, zenpy PR 406) point it at http://127.0.0.1:PORT. No zenpy code is patched.

It pages through the cursor-based ticket export (following ``after_url`` until
``end_of_stream``), resumes from the connector's own cursor, reads users (their export, the
list with cursor pagination, one by id), a ticket's comments and the time-based
organization export; refused credentials fail as zenpy expects."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
from zenpy import Zenpy
from zenpy.lib.exception import APIException

from connectors.zendesk.config import ZendeskConfig
from connectors.zendesk.connector import ZendeskConnector
from connectors.zendesk.dataset import generate
from connectors.zendesk.simulator import Faults, Simulator, create_app
from hub.serving import serve

PER_PAGE = 10


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Simulator]]:
    sim = Simulator(generate(11, tickets=35, users=30, organizations=9))
    with serve(create_app(sim)) as url:
        yield url, sim


@pytest.fixture
def sim(server: tuple[str, Simulator], monkeypatch: pytest.MonkeyPatch) -> Simulator:
    url, simulator = server
    simulator.reset(generate(11, tickets=35, users=30, organizations=9), Faults())
    monkeypatch.setenv("ZENPY_FORCE_NETLOC", url.removeprefix("http://"))
    monkeypatch.setenv("ZENPY_FORCE_SCHEME", "http")
    return simulator


def client(sim: Simulator, token: str | None = None) -> Zenpy:
    return Zenpy(subdomain="acme", email=sim.email, token=token or sim.api_token)


def test_zenpy_pages_through_the_cursor_ticket_export(sim: Simulator) -> None:
    tickets = list(client(sim).tickets.incremental(start_time=1, per_page=PER_PAGE))
    assert [t.id for t in tickets] == [t["id"] for t in sim.tickets.items]
    assert {t.status for t in tickets} >= {"open", "solved", "deleted"}
    pages = math.ceil(len(sim.dataset.tickets) / PER_PAGE)
    assert sim.stats["route:tickets_export"] == pages  # after_url followed to end_of_stream
    assert sim.stats["status:429"] == 0  # 4 pages: within the 10 a minute


def test_zenpy_resumes_from_the_connectors_cursor(
    sim: Simulator, server: tuple[str, Simulator]
) -> None:
    url, _ = server
    connector = ZendeskConnector(
        ZendeskConfig(
            base_url=url,
            email=sim.email,
            api_token=sim.api_token,
            select="tickets",
        )
    )
    records = list(connector.fetch_stream(connector.stream("tickets"), None))
    final = records[-1].cursor
    assert final is not None
    assert isinstance(final.get("cursor"), str)
    zenpy = client(sim)
    assert list(zenpy.tickets.incremental(cursor=final["cursor"])) == []
    changed = sim.tickets.items[0]["id"]
    sim.touch_ticket(changed, at=int(time.time()) - 90, status="pending")
    again = list(zenpy.tickets.incremental(cursor=final["cursor"]))
    assert [(t.id, t.status) for t in again] == [(changed, "pending")]


def test_zenpy_reads_users(sim: Simulator) -> None:
    zenpy = client(sim)
    exported = list(zenpy.users.incremental(start_time=1, per_page=PER_PAGE))
    assert [u.id for u in exported] == [u["id"] for u in sim.users.items]
    listed = list(zenpy.users())  # GET /users.json with cursor pagination (page[size]=100)
    assert sorted(u.id for u in listed) == sorted(u["id"] for u in sim.users.items)
    someone = next(u for u in sim.users.items if u.get("role") == "end-user")
    one = zenpy.users(id=someone["id"])
    assert (one.name, one.email) == (someone["name"], someone["email"])


def test_zenpy_reads_a_tickets_comments(sim: Simulator) -> None:
    ticket = next(t for t in sim.tickets.items if t["status"] == "open")
    comments = list(client(sim).tickets.comments(ticket=ticket["id"]))
    assert [c.body for c in comments] == [c["body"] for c in sim.comments[ticket["id"]]]


def test_zenpy_reads_the_time_based_organization_export(sim: Simulator) -> None:
    orgs = list(client(sim).organizations.incremental(start_time=1))
    # the time-based export may repeat items of a page's last second (documented)
    assert {o.id for o in orgs} == {o["id"] for o in sim.organizations.items}


def test_zenpy_reads_the_ticket_event_export_with_comment_events(sim: Simulator) -> None:
    """zenpy's ``tickets.events`` (GET /incremental/ticket_events.json) with
    ``include=comment_events``: every comment of a ticket that is not deleted, as a child
    event of its audit."""
    zenpy = client(sim)
    events = list(zenpy.tickets.events(start_time=1, include="comment_events", per_page=20))
    assert sim.stats["route:ticket_events_export"] > 1  # several pages, each with comments
    bodies = {
        (e.ticket_id, c["body"])
        for e in events
        for c in e.child_events
        if c.get("event_type") == "Comment" and "body" in c
    }
    expected = {
        (t["id"], c["body"])
        for t in sim.tickets.items
        if t["status"] != "deleted"
        for c in sim.comments.get(t["id"], [])
        if "body" in c
    }
    assert bodies == expected
    assert all(e.event_type == "Audit" for e in events)


def test_zenpy_sees_refused_credentials(sim: Simulator) -> None:
    with pytest.raises(APIException) as caught:
        list(client(sim, token="wrong").tickets.incremental(start_time=1))
    assert caught.value.response.status_code == 401
