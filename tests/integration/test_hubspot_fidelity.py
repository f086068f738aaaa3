"""Fidelity of the HubSpot simulator: HubSpot's own Python client (``hubspot-api-client``),
pointed at the simulator through its ``host`` setting, lists contacts page by page, runs a
search and reads associations, deserialising every answer into its generated models. A
simulator the real client cannot use is not a reproduction."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.contacts import ApiException, Filter, FilterGroup, PublicObjectSearchRequest

from connectors.hubspot.simdata import generate
from connectors.hubspot.simulator import Limits, Simulator, create_app
from hub.serving import serve


@pytest.fixture(scope="module")
def hubspot_sim() -> Iterator[tuple[Simulator, str]]:
    sim = Simulator(
        generate(5, contacts=130, companies=20),
        limits=Limits(burst_max=None, search_per_second=None),
    )
    with serve(create_app(sim)) as url:
        yield sim, url


def client_for(url: str, token: str) -> HubSpot:
    return HubSpot(access_token=token, host=url)


def test_the_client_lists_contacts_page_by_page(hubspot_sim: tuple[Simulator, str]) -> None:
    sim, url = hubspot_sim
    api = client_for(url, sim.token).crm.contacts.basic_api
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = api.get_page(limit=50, after=after, properties=["email", "firstname"])
        pages += 1
        for contact in page.results:
            seen.append(contact.id)
            assert contact.properties["hs_object_id"] == contact.id
            assert "email" in contact.properties
            assert contact.created_at.tzinfo is not None  # parsed as a datetime
            assert contact.archived is False
        if page.paging is None or page.paging.next is None:
            break
        after = page.paging.next.after
    live = sorted(i for i, c in sim.account.contacts.items() if c.archived_at is None)
    assert [int(i) for i in seen] == live  # every one once, in id order
    assert pages == -(-len(live) // 50)
    everything = client_for(url, sim.token).crm.contacts.get_all()  # the client's own pager
    assert sorted(int(c.id) for c in everything) == live


def test_the_client_runs_a_search(hubspot_sim: tuple[Simulator, str]) -> None:
    sim, url = hubspot_sim
    api = client_for(url, sim.token).crm.contacts.search_api
    cut = sorted(c.updated for c in sim.account.contacts.values())[60]
    request = PublicObjectSearchRequest(
        filter_groups=[
            FilterGroup(
                filters=[
                    Filter(property_name="lastmodifieddate", operator="GTE", value=str(cut)),
                ]
            )
        ],
        sorts=[{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        properties=["email", "lastmodifieddate"],
        limit=20,
    )
    found = []
    while True:
        answer = api.do_search(public_object_search_request=request)
        found.extend(answer.results)
        if answer.paging is None:
            break
        request.after = answer.paging.next.after
    expected = {
        i for i, c in sim.account.contacts.items() if c.updated >= cut and c.archived_at is None
    }
    assert answer.total == len(expected)
    assert {int(c.id) for c in found} == expected
    times = [c.updated_at for c in found]
    assert times == sorted(times)  # ascending, as asked


def test_the_client_reads_associations(hubspot_sim: tuple[Simulator, str]) -> None:
    sim, url = hubspot_sim
    v4 = client_for(url, sim.token).crm.associations.v4
    contact, companies = next(iter(sorted(sim.account.associations.items())))
    page = v4.basic_api.get_page("contacts", str(contact), "companies", limit=500)
    assert {int(r.to_object_id) for r in page.results} == set(companies)
    primary = [r for r in page.results if any(t.type_id == 1 for t in r.association_types)]
    assert len(primary) == 1
    assert primary[0].association_types[0].category == "HUBSPOT_DEFINED"

    lonely = next(
        i
        for i, c in sim.account.contacts.items()
        if i not in sim.account.associations and c.archived_at is None
    )
    batch = v4.batch_api.get_page(
        "contacts",
        "companies",
        BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[{"id": str(contact)}, {"id": str(lonely)}]
        ),
    )
    assert batch.status == "COMPLETE"
    assert [r._from.id for r in batch.results] == [str(contact)]
    assert batch.num_errors == 1  # a contact without companies: a 207 with an error


def test_the_client_sees_a_refused_token_and_a_rate_limit(
    hubspot_sim: tuple[Simulator, str],
) -> None:
    sim, url = hubspot_sim
    with pytest.raises(ApiException) as refused:
        client_for(url, "pat-na1-wrong").crm.contacts.basic_api.get_page(limit=1)
    assert refused.value.status == 401
    assert '"category":"INVALID_AUTHENTICATION"' in refused.value.body

    sim.limits.burst_max, sim.limits.burst_interval_ms = 2, 60_000
    try:
        api = client_for(url, sim.token).crm.contacts.basic_api
        api.get_page(limit=1)
        api.get_page(limit=1)
        with pytest.raises(ApiException) as limited:
            api.get_page(limit=1)
    finally:
        sim.limits.burst_max = None
    assert limited.value.status == 429
    assert '"policyName":"TEN_SECONDLY_ROLLING"' in limited.value.body
    assert limited.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"
