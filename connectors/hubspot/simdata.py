"""The simulator's data: a seedable generator of a HubSpot account's CRM objects, marketing
campaigns, marketing e-mail events and contact-company associations.

Realistic on purpose: personal data the DLP stage will find (names, e-mail addresses, phone
numbers in several formats, free-text messages that quote an IBAN or a phone number), bulk
imports that give many records the same ``lastmodifieddate`` millisecond (ties), a share of
archived records, and a share of bad records a connector must quarantine (a legacy import
that wrote text into a number property, an e-mail event of an unknown type or without its
recipient). The same seed gives the same account, byte for byte.
"""

from __future__ import annotations

import functools
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DAY_MS = 86_400_000
DEFAULT_BASE = datetime(2026, 1, 1, tzinfo=UTC)

FIRST = (
    "Ada",
    "Grace",
    "Alan",
    "Katherine",
    "Edsger",
    "Barbara",
    "Donald",
    "Radia",
    "Linus",
    "Margaret",
    "Tim",
    "Frances",
    "John",
    "Hedy",
    "Dennis",
    "Sophie",
    "Émile",
    "Zoë",
)
LAST = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Johnson",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Perlman",
    "Torvalds",
    "Hamilton",
    "Berners-Lee",
    "Allen",
    "McCarthy",
    "Lamarr",
    "Ritchie",
    "Wilson",
    "Zola",
    "O'Brien",
)
DOMAINS = ("example.com", "example.org", "mail.example.net", "corp.example.co.uk")
STAGES = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "customer")
LEAD_STATUS = ("NEW", "OPEN", "IN_PROGRESS", "ATTEMPTED_TO_CONTACT", "CONNECTED", None)
CITIES = (
    ("London", "United Kingdom"),
    ("Paris", "France"),
    ("Boston", "United States"),
    ("Berlin", "Germany"),
    ("Amsterdam", "Netherlands"),
    ("Toronto", "Canada"),
)
INDUSTRIES = (
    "COMPUTER_SOFTWARE",
    "FINANCIAL_SERVICES",
    "HOSPITAL_HEALTH_CARE",
    "RETAIL",
    "HIGHER_EDUCATION",
    None,
)
COMPANY_WORDS = (
    "Analytical",
    "Engines",
    "Compiler",
    "Works",
    "Orbital",
    "Systems",
    "Lattice",
    "Labs",
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Tailspin",
)
PHONE_FORMS = ("+1-415-555-{:04d}", "(617) 555-{:04d}", "+44 20 7946 {:04d}", "0612{:04d}34")
MESSAGES = (
    "Please send me the pricing sheet.",
    "Call me back on +44 20 7946 0958 after 5pm.",
    "Refund to my account DE89 3704 0044 0532 0130 00 please.",
    "Interested in the enterprise plan for 40 seats.",
    "My colleague jane.roe@example.org should get the invite too.",
    None,
)
EVENT_FLOW = ("SENT", "DELIVERED", "OPEN", "CLICK")
BROWSERS = ("Chrome", "Firefox", "Safari", "Microsoft Edge")
# v4 association types HubSpot defines between contacts and companies
PRIMARY = {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"}
UNLABELED = {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": None}


@functools.lru_cache(maxsize=1 << 20)
def iso(ms: int) -> str:
    """A HubSpot datetime property value: ISO-8601 UTC with milliseconds (cached: the
    simulator renders the same times over and over)."""
    t = time.gmtime(ms // 1000)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:"
        f"{t.tm_sec:02d}.{ms % 1000:03d}Z"
    )


@dataclass(slots=True)
class CrmObject:
    """A contact or company as the CRM holds it (property values are strings, as sent)."""

    id: int
    properties: dict[str, str | None]
    created: int  # epoch ms
    updated: int  # epoch ms: the lastmodifieddate / hs_lastmodifieddate property
    archived_at: int | None = None


@dataclass(slots=True)
class Campaign:
    id: str  # campaign GUID
    properties: dict[str, str | None]
    created: int
    updated: int


@dataclass
class Account:
    """One simulated HubSpot account (portal)."""

    portal_id: int
    contacts: dict[int, CrmObject] = field(default_factory=dict)
    companies: dict[int, CrmObject] = field(default_factory=dict)
    campaigns: dict[str, Campaign] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)  # sorted by (created, id)
    # contact id -> company id -> association types
    associations: dict[int, dict[int, list[dict[str, Any]]]] = field(default_factory=dict)
    bad_contacts: set[int] = field(default_factory=set)
    bad_companies: set[int] = field(default_factory=set)
    bad_events: set[str] = field(default_factory=set)

    def objects(self, object_type: str) -> dict[int, CrmObject]:
        if object_type == "contacts":
            return self.contacts
        if object_type == "companies":
            return self.companies
        raise KeyError(object_type)


# The property that holds an object's last modification time (companies use the hs_ one).
MODIFIED_PROPERTY = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate"}


def _phone(rng: random.Random) -> str:
    return rng.choice(PHONE_FORMS).format(rng.randrange(10_000))


def generate(
    seed: int = 7,
    *,
    contacts: int = 200,
    companies: int = 40,
    campaigns: int = 6,
    events_per_contact: float = 2.0,
    bad_share: float = 0.02,
    archived_share: float = 0.02,
    tie_share: float = 0.1,
    base: datetime = DEFAULT_BASE,
) -> Account:
    """A deterministic account: ``contacts`` contacts (ids from 101), ``companies``
    companies (ids from 5001), ``campaigns`` campaigns and about ``events_per_contact``
    e-mail events per contact, everything modified before ``base``."""
    rng = random.Random(seed)
    end = int(base.timestamp() * 1000)
    account = Account(portal_id=62515)
    import_at = end - 40 * DAY_MS + 123  # one bulk import: many records, the same millisecond

    for i in range(companies):
        cid = 5001 + i
        created = end - rng.randrange(60, 800) * DAY_MS - rng.randrange(DAY_MS)
        updated = created + rng.randrange(0, end - created)
        city, country = rng.choice(CITIES)
        words = rng.sample(COMPANY_WORDS, 2)
        employees: str | None = str(rng.choice((8, 45, 120, 800, 12000)))
        if rng.random() < bad_share:
            employees = "50-100"  # a legacy import wrote a range into a number property
            account.bad_companies.add(cid)
        props: dict[str, str | None] = {
            "name": f"{words[0]} {words[1]} {i}",
            "domain": f"{words[0].lower()}{i}.example.com",
            "industry": rng.choice(INDUSTRIES),
            "numberofemployees": employees,
            "annualrevenue": f"{rng.randrange(1, 900) * 100_000}",
            "city": city,
            "country": country,
            "phone": _phone(rng),
        }
        account.companies[cid] = CrmObject(cid, props, created, updated)

    company_ids = list(account.companies)
    for i in range(contacts):
        cid = 101 + i
        first, last = rng.choice(FIRST), rng.choice(LAST)
        created = end - rng.randrange(30, 400) * DAY_MS - rng.randrange(DAY_MS)
        updated = import_at if rng.random() < tie_share else created + rng.randrange(end - created)
        updated = max(updated, created)
        city, country = rng.choice(CITIES)
        conversions: str | None = str(rng.randrange(0, 9))
        if rng.random() < bad_share:
            conversions = "three"  # text in a number property
            account.bad_contacts.add(cid)
        domain = rng.choice(DOMAINS)
        props = {
            "email": f"{first.lower()}.{last.lower().replace(chr(39), '')}{i}@{domain}",
            "firstname": first,
            "lastname": last,
            "phone": _phone(rng) if rng.random() < 0.8 else None,
            "company": account.companies[rng.choice(company_ids)].properties["name"]
            if company_ids
            else None,
            "jobtitle": rng.choice(("CTO", "Head of Marketing", "Engineer", None)),
            "lifecyclestage": rng.choice(STAGES),
            "hs_lead_status": rng.choice(LEAD_STATUS),
            "city": city,
            "country": country,
            "message": rng.choice(MESSAGES),
            "hs_email_optout": rng.choice(("true", "false", "false", None)),
            "num_conversion_events": conversions,
        }
        archived = end - rng.randrange(1, 20) * DAY_MS if rng.random() < archived_share else None
        account.contacts[cid] = CrmObject(cid, props, created, updated, archived)
        if company_ids and archived is None:
            chosen = rng.sample(company_ids, k=min(len(company_ids), rng.choice((0, 1, 1, 2))))
            links: dict[int, list[dict[str, Any]]] = {}
            for n, company in enumerate(chosen):
                links[company] = [dict(PRIMARY), dict(UNLABELED)] if n == 0 else [dict(UNLABELED)]
            if links:
                account.associations[cid] = links

    for i in range(campaigns):
        guid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        created = end - rng.randrange(100, 300) * DAY_MS
        updated = created + rng.randrange(end - created)
        start = datetime.fromtimestamp(created / 1000, UTC).date()
        account.campaigns[guid] = Campaign(
            guid,
            {
                "hs_name": f"Campaign {i}: {rng.choice(('Spring launch', 'Webinar', 'Renewal'))}",
                "hs_start_date": start.isoformat(),
                "hs_end_date": None,
                "hs_campaign_status": rng.choice(("planned", "in_progress", "active", "paused")),
                "hs_notes": rng.choice(("Budget approved by Ada.", None)),
                "hs_audience": rng.choice(("Developers", "CFOs", None)),
                "hs_currency_code": "USD",
                "hs_owner": str(rng.randrange(1000, 1100)),
            },
            created,
            updated,
        )

    email_campaigns = [1_000_000 + i for i in range(max(1, campaigns))]
    live = [c for c in account.contacts.values() if c.archived_at is None]
    n_events = int(len(live) * events_per_contact)
    while len(account.events) < n_events and live:
        contact = rng.choice(live)
        sent = end - rng.randrange(1, 200) * DAY_MS - rng.randrange(DAY_MS)
        send_id = f"{rng.getrandbits(64):016x}"
        steps = rng.choice((1, 2, 2, 3, 4))
        campaign = rng.choice(email_campaigns)
        for step in range(steps):
            at = sent + step * rng.randrange(1000, 6 * 3_600_000)
            account.events.append(
                _event(
                    rng, account, contact, EVENT_FLOW[step], at, send_id, campaign, sent, bad_share
                )
            )
    account.events.sort(key=lambda e: (e["created"], e["id"]))
    return account


def _event(
    rng: random.Random,
    account: Account,
    contact: CrmObject,
    kind: str,
    at: int,
    send_id: str,
    campaign: int,
    sent: int,
    bad_share: float,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "created": at,
        "type": kind,
        "recipient": contact.properties["email"],
        "portalId": account.portal_id,
        "appId": 113,
        "appName": "BatchEmail",
        "emailCampaignId": campaign,
        "sentBy": {"id": send_id, "created": sent},
    }
    if kind in ("OPEN", "CLICK"):
        city, country = rng.choice(CITIES)
        event["browser"] = {"name": rng.choice(BROWSERS), "family": "browser"}
        event["location"] = {"city": city, "country": country, "state": None}
        event["userAgent"] = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)"
    if kind == "CLICK":
        event["url"] = f"https://www.example.com/offer?utm_campaign={campaign}"
    if kind == "DELIVERED":
        event["response"] = "250 2.0.0 OK"
        event["smtpId"] = f"<{send_id}@mail.example.com>"
    if rng.random() < bad_share:
        if rng.random() < 0.5:
            event["type"] = "TELEPORTED"  # not an event type of the API
        else:
            del event["recipient"]
        account.bad_events.add(event["id"])
    return event
