"""A seedable, realistic Zendesk account for the simulator: organizations, users (end users
and agents), tickets and their comments, in the shapes the Support API documents.

The same seed gives the same account. A share of the items is *bad* the way real exports
go wrong (a deleted ticket, whose status no case status maps; a status outside Zendesk's
values; a time that is not ISO-8601; an id sent as text; a missing role or name; a comment
without a body); ``Dataset.expected`` says, from the generator's own knowledge (not by
running the connector's reader), which record ids a reader must publish and how many items
it must quarantine. Free text carries personal data the DLP stage must find (phone
numbers, e-mail addresses, card numbers, dates of birth), and the users' names, e-mail
addresses and phone numbers are personal fields. Everything uses reserved example domains
and 555 phone numbers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["BASE_TIME", "Dataset", "Expected", "generate", "iso"]

BASE_TIME = 1_760_000_000  # 2025-10-09T08:53:20Z: every generated change is before it
DAY = 86_400

FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Katherine",
    "Edsger",
    "Barbara",
    "Linus",
    "Margaret",
    "Donald",
    "Frances",
    "Ken",
    "Radia",
    "John",
    "Hedy",
    "Tim",
    "Sophie",
    "Yukihiro",
    "Anita",
    "Niklaus",
    "Shafi",
    "Émile",
    "Zoë",
    "José",
    "Björn",
]
LAST = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Johnson",
    "Dijkstra",
    "Liskov",
    "Torvalds",
    "Hamilton",
    "Knuth",
    "Allen",
    "Thompson",
    "Perlman",
    "McCarthy",
    "Lamarr",
    "Berners-Lee",
    "Wilson",
    "Matsumoto",
    "Borg",
    "Wirth",
    "Goldwasser",
    "Zola",
    "Núñez",
]
COMPANIES = [
    "Analytical Engines",
    "Bletchley Works",
    "Navy Compilers",
    "Orbit Dynamics",
    "Semaphore Labs",
    "Pascal & Sons",
    "Kernel Cooperative",
    "Lambda Freight",
    "Hypertext Bakery",
    "Quantum Lettuce",
    "Relay Logistics",
    "Vector Dental",
    "Turing Tea Rooms",
    "Cobol Insurance",
    "Packet Farms",
    "Stack Hotels",
]
SUBJECTS = [
    "Cannot log in to the portal",
    "Invoice {n} shows the wrong amount",
    "Order {n} arrived damaged",
    "Password reset e-mail never arrives",
    "Please cancel my subscription",
    "App crashes when exporting a report",
    "Refund for order {n}",
    "Change the billing address on the account",
    "Question about the API rate limits",
    "Delivery {n} is late",
    "Two-factor codes are not accepted",
    "Upgrade to the enterprise plan",
]
REPLIES = [
    "Thanks for reaching out, we are looking into it.",
    "Could you send a screenshot of the error?",
    "I have escalated this to our billing team.",
    "This should now be fixed; please try again.",
    "We have issued the refund, it takes 3-5 business days.",
    "Is there anything else we can help with?",
    "It works now, thank you!",
    "Still broken on my side, sorry.",
]
# Personal data the DLP stage must find in free text ({..} filled per item).
LEAKS = [
    "You can call me back on {phone}.",
    "My other address is {email}.",
    "Card used: {card}, please refund it.",
    "For verification my date of birth is {dob}.",
    "My SSN is {ssn} if you need it for the tax form.",
]
CARDS = ["4111 1111 1111 1111", "5500-0000-0000-0004", "3400 000000 00009"]
SSNS = ["536-22-8834", "219-09-9999", "078-05-1120"]
PRIORITIES = ["low", "normal", "normal", "high", "urgent"]
TYPES = ["question", "incident", "problem", "task"]
CHANNELS = ["email", "web", "api", "voice", "mobile"]
STATUSES = ["new", "open", "open", "pending", "hold", "solved", "solved", "closed", "closed"]
BAD_TICKET = ["deleted", "unknown_status", "bad_created", "text_stamp"]
BAD_USER = ["no_role", "flag_as_text", "bad_updated"]
BAD_COMMENT = ["no_body", "author_as_text"]


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Expected:
    """What a reader of the whole account must give, per stream."""

    good: dict[str, set[str]] = field(default_factory=dict)  # stream -> record ids
    bad: dict[str, int] = field(default_factory=dict)  # stream -> quarantined items
    quoted: dict[str, str] = field(default_factory=dict)  # text no reason may quote


@dataclass
class Dataset:
    organizations: list[dict[str, Any]]
    users: list[dict[str, Any]]
    tickets: list[dict[str, Any]]
    comments: dict[int, list[dict[str, Any]]]  # ticket id -> comments, oldest first
    faults: dict[str, dict[int, str]]  # stream -> item id -> kind of fault
    seed: int = 0

    def expected(self, *, exclude_deleted: bool = False, comments: str = "tickets") -> Expected:
        """What a reader of the whole account must give. ``comments``: where the comment
        stream reads — ``tickets`` (per changed ticket: tickets the export cannot place are
        skipped, as deleted ones) or ``events`` (the ticket event export: every comment of
        a ticket that is not deleted)."""
        out = Expected()
        tickets = [
            t
            for t in self.tickets
            if not (exclude_deleted and self.faults["tickets"].get(t["_id"]) == "deleted")
        ]
        out.good["tickets"] = {
            f"tickets:{t['_id']}:{t['_ts']}"
            for t in tickets
            if t["_id"] not in self.faults["tickets"]
        }
        out.bad["tickets"] = len(tickets) - len(out.good["tickets"])
        comments_good: set[str] = set()
        comments_bad = 0
        skipped = ("deleted", "text_stamp") if comments == "tickets" else ("deleted",)
        for t in self.tickets if comments == "events" else tickets:
            if self.faults["tickets"].get(t["_id"]) in skipped:
                continue
            for c in self.comments.get(t["_id"], []):
                if c["id"] in self.faults["ticket_comments"]:
                    comments_bad += 1
                else:
                    comments_good.add(f"ticket_comments:{c['id']}")
        out.good["ticket_comments"], out.bad["ticket_comments"] = comments_good, comments_bad
        for name, items in (("users", self.users), ("organizations", self.organizations)):
            out.good[name] = {
                f"{name}:{i['_id']}:{i['_ts']}" for i in items if i["_id"] not in self.faults[name]
            }
            out.bad[name] = len(items) - len(out.good[name])
        out.quoted = {
            "unknown status": "escalated_tier3",
            "bad time": "next tuesday",
            "flag as text": "sometimes",
        }
        return out


class _Gen:
    def __init__(self, seed: int, bad_share: float, span_days: int) -> None:
        self.rnd = random.Random(seed)
        self.bad_share = bad_share
        self.span = span_days * DAY
        self.next_id = 1000 + seed % 97
        self.seen: dict[str, int] = {}
        self.faults: dict[str, dict[int, str]] = {
            "tickets": {},
            "users": {},
            "organizations": {},
            "ticket_comments": {},
        }

    def new_id(self) -> int:
        self.next_id += self.rnd.randint(1, 9)
        return self.next_id

    def when(self, after: int | None = None) -> int:
        lo = after if after is not None else BASE_TIME - self.span
        return self.rnd.randint(lo, max(lo, BASE_TIME - 3_600))

    def fault(self, stream: str, kinds: list[str]) -> str | None:
        """The fault of the next item of ``stream``, if any: every kind once among the
        first items (so a small account has each), then at random with ``bad_share``."""
        n = self.seen[stream] = self.seen.get(stream, -1) + 1
        if self.bad_share <= 0:
            return None
        if n % 7 == 3 and n // 7 < len(kinds):
            return kinds[n // 7]
        return self.rnd.choice(kinds) if self.rnd.random() < self.bad_share else None

    def leak(self, name: str) -> str:
        r = self.rnd
        first, last = name.split(" ", 1) if " " in name else (name, "X")
        return r.choice(LEAKS).format(
            phone=f"+1 415 555 {r.randint(100, 199):04d}",
            email=f"{first.lower()}.{last.lower()}@example.net",
            card=r.choice(CARDS),
            dob=f"{r.randint(1950, 2001)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
            ssn=r.choice(SSNS),
        )


def _organizations(g: _Gen, count: int) -> list[dict[str, Any]]:
    out = []
    bulk = BASE_TIME - 7_200  # an admin's bulk update: several organizations, one second
    for i in range(count):
        oid = g.new_id()
        company = COMPANIES[i % len(COMPANIES)] + ("" if i < len(COMPANIES) else f" {i}")
        created = g.when()
        updated = bulk if i % 4 == 1 and created < bulk else g.when(created)
        domain = company.lower().replace(" & ", "-").replace(" ", "-") + ".example.com"
        org: dict[str, Any] = {
            "url": f"/api/v2/organizations/{oid}.json",
            "id": oid,
            "name": company,
            "shared_tickets": g.rnd.random() < 0.3,
            "shared_comments": False,
            "external_id": f"ACC-{oid}" if g.rnd.random() < 0.5 else None,
            "created_at": iso(created),
            "updated_at": iso(updated),
            "domain_names": [domain],
            "details": f"{g.rnd.randint(1, 999)} Example Street, Springfield",
            "notes": None,
            "group_id": None,
            "tags": ["customer"],
            "organization_fields": {},
            "_id": oid,
            "_ts": updated,
        }
        if g.fault("organizations", ["no_name"]):
            org["name"] = None
            g.faults["organizations"][oid] = "no_name"
        out.append(org)
    return out


def _users(g: _Gen, count: int, orgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        uid = g.new_id()
        name = f"{g.rnd.choice(FIRST)} {g.rnd.choice(LAST)}"
        role = "agent" if i % 10 == 0 else ("admin" if i == 1 else "end-user")
        org = g.rnd.choice(orgs) if orgs and role == "end-user" else None
        created = g.when()
        updated = g.when(created)
        first, last = name.lower().split(" ", 1)
        email_domain = org["domain_names"][0] if org else "support.example.org"
        user: dict[str, Any] = {
            "id": uid,
            "url": f"/api/v2/users/{uid}.json",
            "name": name,
            "email": f"{first}.{last.replace(' ', '')}{uid % 100}@{email_domain}",
            "created_at": iso(created),
            "updated_at": iso(updated),
            "time_zone": "Pacific Time (US & Canada)",
            "iana_time_zone": "America/Los_Angeles",
            "phone": f"+1-415-555-{g.rnd.randint(100, 999):04d}" if g.rnd.random() < 0.6 else None,
            "shared_phone_number": None,
            "photo": None,
            "locale_id": 1,
            "locale": "en-US",
            "organization_id": org["id"] if org else None,
            "role": role,
            "verified": g.rnd.random() < 0.8,
            "external_id": None,
            "tags": [],
            "alias": None,
            "active": True,
            "shared": False,
            "shared_agent": False,
            "last_login_at": iso(updated),
            "two_factor_auth_enabled": None,
            "signature": None,
            "details": None,
            "notes": g.leak(name) if g.rnd.random() < 0.15 else None,
            "role_type": None,
            "custom_role_id": None,
            "moderator": role != "end-user",
            "ticket_restriction": "requested" if role == "end-user" else None,
            "only_private_comments": False,
            "restricted_agent": role == "end-user",
            "suspended": False,
            "default_group_id": None,
            "report_csv": False,
            "user_fields": {},
            "_id": uid,
            "_ts": updated,
        }
        kind = g.fault("users", BAD_USER)
        if kind:
            g.faults["users"][uid] = kind
            if kind == "no_role":
                del user["role"]
            elif kind == "flag_as_text":
                user["verified"] = "sometimes"
            else:
                user["updated_at"] = "next tuesday"
        out.append(user)
    return out


def _comment(g: _Gen, cid: int, author: int, body: str, at: int, public: bool) -> dict[str, Any]:
    return {
        "id": cid,
        "type": "Comment",
        "author_id": author,
        "body": body,
        "html_body": f'<div class="zd-comment"><p>{body}</p></div>',
        "plain_body": body,
        "public": public,
        "attachments": [],
        "audit_id": cid + 1,
        "via": {"channel": "web", "source": {"from": {}, "to": {}, "rel": None}},
        "created_at": iso(at),
        "metadata": {"system": {}, "custom": {}},
    }


def _tickets(
    g: _Gen, count: int, users: list[dict[str, Any]], per_ticket: tuple[int, int]
) -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    requesters = [u for u in users if u.get("role") == "end-user"] or users
    agents = [u for u in users if u.get("role") in ("agent", "admin")] or users
    tickets, comments = [], {}
    bulk = BASE_TIME - 7_200  # a trigger updating tickets in bulk: one second, many tickets
    for i in range(count):
        tid = g.new_id()
        req, agent = g.rnd.choice(requesters), g.rnd.choice(agents)
        created = g.when()
        subject = g.rnd.choice(SUBJECTS).format(n=g.rnd.randint(10_000, 99_999))
        description = f"Hello, {subject.lower()}. " + (
            g.leak(str(req["name"])) if g.rnd.random() < 0.2 else "Thanks in advance."
        )
        thread = [_comment(g, g.new_id(), req["id"], description, created, True)]
        at = created
        for _ in range(g.rnd.randint(*per_ticket) - 1):
            at = g.when(at)
            author = g.rnd.choice([req, agent])
            text = g.rnd.choice(REPLIES)
            if g.rnd.random() < 0.1:
                text += " " + g.leak(str(req["name"]))
            c = _comment(g, g.new_id(), author["id"], text, at, g.rnd.random() < 0.85)
            kind = g.fault("ticket_comments", BAD_COMMENT)
            if kind:
                g.faults["ticket_comments"][c["id"]] = kind
                if kind == "no_body":
                    c["body"] = c["plain_body"] = None
                else:
                    c["author_id"] = f"U-{author['id']}"
            thread.append(c)
        updated = at
        generated = bulk if i % 9 == 4 and bulk > updated else updated + g.rnd.choice([0, 0, 5])
        status = g.rnd.choice(STATUSES)
        ticket: dict[str, Any] = {
            "url": f"/api/v2/tickets/{tid}.json",
            "id": tid,
            "external_id": None,
            "via": {"channel": g.rnd.choice(CHANNELS), "source": {"from": {}, "to": {}}},
            "created_at": iso(created),
            "updated_at": iso(updated),
            "generated_timestamp": generated,
            "type": g.rnd.choice(TYPES),
            "subject": subject,
            "raw_subject": subject,
            "description": description,
            "priority": g.rnd.choice(PRIORITIES),
            "status": status,
            "recipient": "support@acme.example.com",
            "requester_id": req["id"],
            "submitter_id": req["id"],
            "assignee_id": agent["id"],
            "organization_id": req.get("organization_id"),
            "group_id": 360_000_001,
            "collaborator_ids": [],
            "follower_ids": [],
            "email_cc_ids": [],
            "forum_topic_id": None,
            "problem_id": None,
            "has_incidents": False,
            "is_public": True,
            "due_at": None,
            "tags": [status, "web"],
            "custom_fields": [],
            "custom_status_id": 1,
            "satisfaction_rating": {"score": "offered"} if status == "solved" else None,
            "sharing_agreement_ids": [],
            "fields": [],
            "followup_ids": [],
            "ticket_form_id": 360_000_100,
            "brand_id": 360_000_010,
            "allow_channelback": False,
            "allow_attachments": True,
            "from_messaging_channel": False,
            "_id": tid,
            "_ts": generated,
        }
        kind = g.fault("tickets", BAD_TICKET)
        if kind:
            g.faults["tickets"][tid] = kind
            if kind == "deleted":
                ticket["status"] = "deleted"
            elif kind == "unknown_status":
                ticket["status"] = "escalated_tier3"
            elif kind == "bad_created":
                ticket["created_at"] = "next tuesday"
            else:
                ticket["generated_timestamp"] = str(generated)
        tickets.append(ticket)
        comments[tid] = thread
    return tickets, comments


def generate(
    seed: int = 7,
    *,
    tickets: int = 200,
    users: int = 80,
    organizations: int = 12,
    comments_per_ticket: tuple[int, int] = (1, 4),
    bad_share: float = 0.04,
    span_days: int = 120,
) -> Dataset:
    """A whole account. Items carry ``_id`` and ``_ts`` (their export position), which the
    simulator strips before answering."""
    g = _Gen(seed, bad_share, span_days)
    orgs = _organizations(g, organizations)
    people = _users(g, users, orgs)
    all_tickets, comments = _tickets(g, tickets, people, comments_per_ticket)
    return Dataset(orgs, people, all_tickets, comments, g.faults, seed)
