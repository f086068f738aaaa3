"""The demo's three API departments: marketing (HubSpot), service (Zendesk) and HR
(BambooHR, plus an HRIS export file), each read by its connector from a local server that
reproduces the real API, and a burst of signed webhooks (some forged).

The simulators run in this process (uvicorn threads on 127.0.0.1); the connectors run in
the hub's connect worker and are registered through the Connect REST API, their
credentials given as ``${env:…}`` references (the values are in the environment the
stack inherits, never in a stored config). Counts for the summary are measured where they
live (topics, the read model); the generated data only says how much the connectors must
read (the one check against the generator, as for the sales files).
"""

from __future__ import annotations

import csv
import os
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from hub import topics
from hub.kafka_read import read_until_quiet

#: Environment variables holding the simulators' credentials (the configs reference them).
ENV = {
    "HUB_DEMO_HUBSPOT_TOKEN": "pat-na1-demo-token",
    "HUB_DEMO_HUBSPOT_SECRET": "demo-hubspot-client-secret",
    "HUB_DEMO_ZENDESK_TOKEN": "demo-zendesk-api-token",
    "HUB_DEMO_ZENDESK_SECRET": "demo-zendesk-signing-secret",
    "HUB_DEMO_BAMBOOHR_KEY": "demo-bamboohr-api-key",
}
ZENDESK_EMAIL = "integrations@acme.example"

MARKETING = "marketing-hubspot"
SERVICE = "service-zendesk"
HR = "hr-bamboohr"
HR_EXPORT = "hr-hris-export"


@dataclass(frozen=True)
class Sizes:
    contacts: int = 300
    duplicate_emails: int = 6  # contacts given another contact's address (a double import)
    shared_people: int = 40  # contacts (with their e-mail events) who are also sales leads
    tickets: int = 150
    employees: int = 120
    stale_export_rows: int = 3  # export rows for employees BambooHR has deleted
    webhook_deliveries: int = 60  # per webhook source
    events_per_delivery: int = 5  # HubSpot batches events; Zendesk sends one per request
    bad_signature_every: int = 10


@dataclass
class Expected:
    """What the connectors must publish, from the generated data: every record the
    source holds that is readable (the unreadable ones are quarantined by the connector)."""

    contacts: int = 0  # contacts, archived ones included
    contacts_unreadable: int = 0
    email_events: int = 0  # campaign e-mail events (sends, opens, clicks...)
    tickets: int = 0  # tickets whose status the case-status policy maps
    tickets_unreadable: int = 0  # deleted or unknown status, unreadable time
    employees: int = 0  # changed (Inserted / Updated) employees + export rows
    employees_unreadable: int = 0  # a date that is not a date
    employees_deleted: int = 0
    export_rows: int = 0


@dataclass
class Sources:
    hubspot_url: str
    zendesk_url: str
    bamboohr_url: str
    bamboohr_domain: str
    export_dir: Path
    expected: Expected
    export_file: Path | None = None


@contextmanager
def api_sources(
    home: Path,
    sizes: Sizes = Sizes(),
    seed: int = 7,
    lead_addresses: Sequence[str] = (),
) -> Iterator[Sources]:
    """Start the three simulators with generated accounts; stop them at the end."""
    from connectors.bamboohr.simdata import generate_company
    from connectors.bamboohr.simulator import Simulator as BambooSim
    from connectors.hubspot.simdata import generate as hubspot_account
    from connectors.hubspot.simulator import Simulator as HubSpotSim
    from connectors.hubspot.simulator import create_app as hubspot_app
    from connectors.zendesk.dataset import generate as zendesk_dataset
    from connectors.zendesk.simulator import Simulator as ZendeskSim
    from connectors.zendesk.simulator import create_app as zendesk_app
    from hub.serving import serve

    os.environ.update({k: v for k, v in ENV.items() if k not in os.environ})
    account = hubspot_account(seed, contacts=sizes.contacts)
    _also_sales_leads(account, lead_addresses[: sizes.shared_people])
    _double_imports(account, sizes.duplicate_emails, seed)
    dataset = zendesk_dataset(seed, tickets=sizes.tickets)
    company = generate_company(seed, sizes.employees, domain="acme")
    tickets = dataset.expected(exclude_deleted=False)
    bad_employees = len(company.bad & set(company.live_ids()))
    expected = Expected(
        contacts=len(account.contacts) - len(account.bad_contacts),
        contacts_unreadable=len(account.bad_contacts),
        email_events=len(account.events) - len(account.bad_events),
        tickets=len(tickets.good["tickets"]),
        tickets_unreadable=tickets.bad["tickets"],
        employees=len(company.live_ids()) - bad_employees + sizes.stale_export_rows + 2,
        employees_unreadable=bad_employees,
        employees_deleted=len(company.deleted_ids()),
        export_rows=sizes.stale_export_rows + 2,
    )
    export_dir = home / "hris-drop"
    export_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        hubspot = stack.enter_context(
            serve(
                hubspot_app(HubSpotSim(account, token=os.environ["HUB_DEMO_HUBSPOT_TOKEN"])),
                name="hubspot-sim",
            )
        )
        zendesk = stack.enter_context(
            serve(
                zendesk_app(
                    ZendeskSim(
                        dataset,
                        email=ZENDESK_EMAIL,
                        api_token=os.environ["HUB_DEMO_ZENDESK_TOKEN"],
                    )
                ),
                name="zendesk-sim",
            )
        )
        bamboo = BambooSim(company, api_keys={os.environ["HUB_DEMO_BAMBOOHR_KEY"]: "ok"})
        bamboohr = stack.enter_context(serve(bamboo.app(), name="bamboohr-sim"))
        sources = Sources(hubspot, zendesk, bamboohr, company.domain, export_dir, expected)
        staging = home / "staging-hr"
        staging.mkdir(parents=True, exist_ok=True)
        sources.export_file = _stale_export(staging, company, sizes.stale_export_rows, seed)
        yield sources


def _also_sales_leads(account: Any, addresses: Sequence[str]) -> None:
    """Contacts that are sales leads too (the same person in both tools): the contact and
    every e-mail event sent to it get a lead's address, so attribution sees both
    departments' touches of one person."""
    recipients = Counter(
        e.get("recipient") for e in account.events if e.get("type") in ("OPEN", "CLICK")
    )
    touched = [
        c
        for _, c in sorted(account.contacts.items())
        if c.archived_at is None and recipients[c.properties.get("email")] > 0
    ]
    for contact, address in zip(touched, addresses, strict=False):
        old = contact.properties["email"]
        contact.properties["email"] = address
        for event in account.events:
            if event.get("recipient") == old:
                event["recipient"] = address


def _double_imports(account: Any, count: int, seed: int) -> None:
    """``count`` contacts carry the address of another contact: a list imported twice
    under new ids. The processor must keep the first holder and quarantine the others."""
    rng = random.Random(seed)
    live = sorted(i for i, c in account.contacts.items() if c.archived_at is None)
    for holder, copy in zip(live[:count], rng.sample(live[count:], count), strict=True):
        email = account.contacts[holder].properties.get("email")
        if email:
            account.contacts[copy].properties["email"] = email.upper()  # same address


def _stale_export(staging: Path, company: Any, stale: int, seed: int) -> Path:
    """An HRIS export from an older roster: two current employees, and ``stale`` rows for
    employees BambooHR has deleted since. The read model must not bring those back."""
    rng = random.Random(seed)
    deleted = sorted(company.deleted_ids())[:stale]
    current = rng.sample(sorted(company.live_ids()), 2)
    path = staging / "roster-export.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["EEID", "First Name", "Last Name", "Work Email", "Job Title", "Status"])
        for n, eid in enumerate([*current, *deleted]):
            w.writerow(
                [eid, "Former", f"Employee{n}", f"former{n}@acme.example", "Analyst", "Active"]
            )
    return path


def connector_configs(sources: Sources) -> dict[str, dict[str, str]]:
    """The Connect configs of the API departments (secrets as ``${env:…}``)."""
    return {
        MARKETING: {
            "connector.class": "hubspot",
            "base.url": sources.hubspot_url,
            "access.token": "${env:HUB_DEMO_HUBSPOT_TOKEN}",
            "webhook.secret": "${env:HUB_DEMO_HUBSPOT_SECRET}",
        },
        SERVICE: {
            "connector.class": "zendesk",
            "base.url": sources.zendesk_url,
            "email": ZENDESK_EMAIL,
            "api.token": "${env:HUB_DEMO_ZENDESK_TOKEN}",
            "webhook.secret": "${env:HUB_DEMO_ZENDESK_SECRET}",
            "select": "tickets,users,organizations",
        },
        HR: {
            "connector.class": "bamboohr",
            "company.domain": sources.bamboohr_domain,
            "base.url": f"{sources.bamboohr_url}/api/gateway.php/{sources.bamboohr_domain}/",
            "api.key": "${env:HUB_DEMO_BAMBOOHR_KEY}",
        },
        HR_EXPORT: {
            "connector.class": "hris-export",
            "drop.dir": str(sources.export_dir.resolve()),
        },
    }


def drop_export(sources: Sources) -> None:
    """Move the export file into the drop directory (atomic rename)."""
    assert sources.export_file is not None
    sources.export_file.replace(sources.export_dir / sources.export_file.name)


@dataclass
class WebhookBurst:
    source: str
    sent: int = 0
    forged: int = 0
    statuses: Counter[int] = field(default_factory=Counter)


def webhook_bursts(api_url: str, sizes: Sizes, seed: int = 7) -> list[WebhookBurst]:
    """Signed deliveries to both webhook endpoints, every ``bad_signature_every``-th with a
    corrupted signature (answered 401, nothing written to Kafka)."""
    from connectors.hubspot import webhook_sender as hubspot_hooks
    from connectors.zendesk import webhook_sender as zendesk_hooks

    out = []
    h = hubspot_hooks.send_burst(
        f"{api_url}/webhooks/{MARKETING}",
        os.environ["HUB_DEMO_HUBSPOT_SECRET"],  # what the registered config resolves
        sizes.webhook_deliveries,
        events_per_delivery=sizes.events_per_delivery,
        bad_every=sizes.bad_signature_every,
        seed=seed,
    )
    out.append(WebhookBurst("hubspot", h.sent, h.bad_signatures, h.statuses))
    z = zendesk_hooks.send_burst(
        f"{api_url}/webhooks/{SERVICE}",
        os.environ["HUB_DEMO_ZENDESK_SECRET"],
        sizes.webhook_deliveries,
        bad_every=sizes.bad_signature_every,
        seed=seed,
    )
    out.append(WebhookBurst("zendesk", z.sent, z.bad_signatures, z.statuses))
    return out


# -- measuring -------------------------------------------------------------------------------


@dataclass
class FlowCounts:
    """One department stream from raw topic to read model, as measured."""

    department: str
    raw_topic: str
    clean_topic: str
    table: str | None = None  # the read-model table of its records
    raw: int = 0
    clean: int = 0
    clean_ids: set[str] = field(default_factory=set)  # distinct keys on the clean topic
    quarantined: int = 0  # read-model quarantine rows whose source is this flow
    read_model: int = 0

    @property
    def distinct_clean(self) -> int:
        return len(self.clean_ids)


#: (department, raw topic, clean topic, read-model table, extra quarantine source topics);
#: e-mail events have no table of their own (their opens and clicks are touches).
FLOWS: tuple[tuple[str, str, str, str | None, tuple[str, ...]], ...] = (
    (
        "marketing",
        topics.RAW_MARKETING_CONTACTS,
        topics.CLEAN_MARKETING_CONTACTS,
        "marketing_contacts",
        (topics.MARKETING_EMAIL_CLAIMS,),
    ),
    (
        "marketing",
        topics.RAW_MARKETING_EMAIL_EVENTS,
        topics.CLEAN_MARKETING_EMAIL_EVENTS,
        None,
        (),
    ),
    ("service", topics.RAW_SERVICE_TICKETS, topics.CLEAN_SERVICE_TICKETS, "service_cases", ()),
    ("hr", topics.RAW_HR_EMPLOYEES, topics.CLEAN_HR_EMPLOYEES, "hr_employees", ()),
    ("hr", topics.RAW_HR_ERASURES, topics.CLEAN_HR_ERASURES, "hr_erasures", ()),
)


def scan(bootstrap: str, topic: str) -> tuple[int, set[str]]:
    """(messages, distinct keys) of a whole topic, counted by reading it (see
    hub.kafka_read: watermarks are not a count on the embedded broker)."""
    keys: set[str] = set()
    count = 0
    for msg in read_until_quiet(bootstrap, topic, group="hub-demo-scan"):
        count += 1
        key = msg.key()
        if key is not None:
            keys.add(key.decode(errors="replace"))
    return count, keys


def measure_flows(bootstrap: str, engine: Engine) -> tuple[list[FlowCounts], set[str]]:
    """Every flow's counts, and the ids on the clean erasures topic."""
    from sqlalchemy import table as sql_table

    from projections.models import QuarantineRow

    out = []
    erased: set[str] = set()
    with engine.connect() as conn:
        for department, raw_topic, clean_topic, table, extra in FLOWS:
            flow = FlowCounts(department, raw_topic, clean_topic, table)
            flow.raw, _ = scan(bootstrap, raw_topic)
            flow.clean, flow.clean_ids = scan(bootstrap, clean_topic)
            if clean_topic == topics.CLEAN_HR_ERASURES:
                erased = flow.clean_ids
            q = QuarantineRow.__table__.c
            flow.quarantined = (
                conn.scalar(
                    select(func.count())
                    .select_from(QuarantineRow)
                    .where(q.source_topic.in_([raw_topic, *extra]))
                )
                or 0
            )
            if table is not None:
                flow.read_model = (
                    conn.scalar(select(func.count()).select_from(sql_table(table))) or 0
                )
            out.append(flow)
    return out, erased


def quarantine_by_department(engine: Engine) -> dict[str, Counter[str]]:
    """Read-model quarantine reasons by department and rule."""
    from projections.models import QuarantineReason, QuarantineRow

    r, q = QuarantineReason.__table__.c, QuarantineRow.__table__.c
    out: dict[str, Counter[str]] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(q.department, r.rule_id, func.count())
            .select_from(
                QuarantineReason.__table__.join(QuarantineRow.__table__, r.event_id == q.event_id)
            )
            .group_by(q.department, r.rule_id)
        )
        for department, rule, n in rows:
            out.setdefault(department or "-", Counter())[rule] += n
    return out
