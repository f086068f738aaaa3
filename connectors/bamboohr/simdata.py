"""Seeded, realistic data for the BambooHR simulator: a company's employees with every field
an HR system holds (the sensitive ones too, so that minimisation has something to drop),
their change history as BambooHR's change tracking reports it, and the ground truth the
tests need.

- Field names and value formats are BambooHR's: ids as strings, dates ``YYYY-MM-DD`` with
  ``0000-00-00`` for an empty date, ``status`` Active/Inactive, ``supervisorEId`` the
  supervisor's internal id.
- ``lastChanged`` times are whole seconds and deliberately tie: several employees changed in
  the same second (one bulk import of ``bulk`` employees at one second), so a cursor that
  resumes by time alone would skip or repeat.
- About ``bad_share`` of the employees hold a date that is not a date (``31/02/2021``,
  ``TBD``): the connector must quarantine them, never coerce.
- About ``dlp_share`` hold personal data where no field declares it (a private phone number
  or e-mail address typed into ``location`` or ``jobTitle``): the DLP stage finds them.
- About ``deleted_share`` are deleted: change tracking reports them ``Deleted``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

__all__ = ["SENSITIVE_FIELDS", "Change", "Company", "generate_company", "iso_seconds"]

FIRST = (
    "Anna", "James", "Maria", "Robert", "Linda", "Michael", "Sarah", "David", "Laura",
    "Daniel", "Emma", "Thomas", "Olivia", "Peter", "Sophie", "Lukas", "Julia", "Paul",
    "Chloé", "Hannah", "Marco", "Elena", "Noah", "Mia", "Liam", "Grace", "Zoë", "José",
)  # fmt: skip
LAST = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Wilson",
    "Anderson", "Taylor", "Moore", "Martin", "Lee", "Walker", "Hall", "King", "Wright",
    "Schmidt", "Fischer", "Dubois", "Rossi", "Jansen", "Novak", "Larsen", "Núñez", "O’Brien",
)  # fmt: skip
DEPARTMENTS = {
    "Sales": ("Account Executive", "Sales Development Rep", "Regional Sales Manager"),
    "Customer Success": ("Customer Success Manager", "Support Engineer", "Onboarding Lead"),
    "Marketing": ("Campaign Manager", "Content Strategist", "Marketing Ops Analyst"),
    "Engineering": ("Software Engineer", "Site Reliability Engineer", "Engineering Manager"),
    "People": ("HR Business Partner", "Recruiter", "Payroll Specialist"),
    "Finance": ("Controller", "Financial Analyst", "Accounts Payable Clerk"),
}
DIVISIONS = ("North America", "EMEA", "APAC")
LOCATIONS = ("Salt Lake City", "Lindon", "London", "Berlin", "Singapore", "Remote")
BAD_DATES = ("31/02/2021", "TBD", "2021-13-40", "next Monday")
DOMAIN = "example.com"
# Fields an HR system holds that no CRM needs (the simulator can "overshare" them).
SENSITIVE_FIELDS = ("ssn", "dateOfBirth", "homePhone", "payRate")


def iso_seconds(when: datetime) -> str:
    """``2024-01-02T03:04:05+00:00``: the form BambooHR's change tracking sample shows."""
    return when.astimezone(UTC).replace(microsecond=0).isoformat()


@dataclass
class Change:
    """One employee's entry in change tracking: the last change wins."""

    action: str  # Inserted | Updated | Deleted
    last_changed: datetime


@dataclass
class Company:
    """A company's employees (BambooHR field names) and their change-tracking entries."""

    domain: str
    employees: dict[str, dict[str, Any]]  # id -> every field, deleted ones removed
    changes: dict[str, Change]  # id -> its change-tracking entry
    bad: set[str] = field(default_factory=set)  # ids holding a date that is not a date
    planted: set[str] = field(default_factory=set)  # ids with personal data in a free field
    clock: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def tick(self) -> datetime:
        """The next change time (one second later than the last one)."""
        self.clock += timedelta(seconds=1)
        return self.clock

    def update(self, employee_id: str, values: dict[str, Any], at: datetime | None = None) -> None:
        when = at or self.tick()
        self.employees[employee_id].update(values)
        self.changes[employee_id] = Change("Updated", when)

    def insert(self, values: dict[str, Any], at: datetime | None = None) -> str:
        when = at or self.tick()
        new_id = str(max((int(i) for i in self.changes), default=99) + 1)
        self.employees[new_id] = {**values, "id": new_id}
        self.changes[new_id] = Change("Inserted", when)
        return new_id

    def delete(self, employee_id: str, at: datetime | None = None) -> None:
        when = at or self.tick()
        self.employees.pop(employee_id, None)
        self.bad.discard(employee_id)
        self.changes[employee_id] = Change("Deleted", when)

    # -- ground truth ---------------------------------------------------------------------

    def live_ids(self) -> list[str]:
        return [i for i, c in self.changes.items() if c.action != "Deleted"]

    def deleted_ids(self) -> list[str]:
        return [i for i, c in self.changes.items() if c.action == "Deleted"]


def _phone(rng: random.Random, area: int = 801) -> str:
    return f"+1 {area}-555-{rng.randrange(100, 200):04d}"


def _date(rng: random.Random, start: date, days: int) -> str:
    return (start + timedelta(days=rng.randrange(days))).isoformat()


def _employee(rng: random.Random, employee_id: int, supervisor: str | None) -> dict[str, Any]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    department = rng.choice(sorted(DEPARTMENTS))
    active = rng.random() > 0.12
    hired = date(2012, 1, 1) + timedelta(days=rng.randrange(4500))
    handle = f"{first}.{last}".lower().replace("’", "").replace(" ", "")
    return {
        "id": str(employee_id),
        "employeeNumber": f"E{employee_id:05d}",
        "firstName": first,
        "lastName": last,
        "preferredName": first[:3] if rng.random() < 0.1 else "",
        "displayName": f"{first} {last}",
        "workEmail": f"{handle}{employee_id}@{DOMAIN}",
        "workPhone": _phone(rng),
        "mobilePhone": _phone(rng, 385),
        "homePhone": _phone(rng, 435),
        "homeEmail": f"{handle}.home{employee_id}@mail.example.net",
        "jobTitle": rng.choice(DEPARTMENTS[department]),
        "department": department,
        "division": rng.choice(DIVISIONS),
        "location": rng.choice(LOCATIONS),
        "status": "Active" if active else "Inactive",
        "employmentHistoryStatus": "Full-Time" if rng.random() < 0.85 else "Part-Time",
        "hireDate": hired.isoformat(),
        "terminationDate": "0000-00-00"
        if active
        else (hired + timedelta(days=rng.randrange(30, 2000))).isoformat(),
        "supervisorEId": supervisor or "",
        "dateOfBirth": _date(rng, date(1960, 1, 1), 15000),
        "ssn": f"{rng.randrange(100, 899):03d}-{rng.randrange(10, 99):02d}-"
        f"{rng.randrange(1000, 9999):04d}",
        "gender": rng.choice(("Female", "Male", "Nonbinary", "")),
        "maritalStatus": rng.choice(("Single", "Married", "")),
        "address1": f"{rng.randrange(1, 999)} {rng.choice(LAST)} Street",
        "city": rng.choice(("Provo", "Orem", "London", "Berlin")),
        "zipcode": f"{rng.randrange(10000, 99999)}",
        "country": rng.choice(("United States", "United Kingdom", "Germany")),
        "payRate": f"{rng.randrange(40, 180) * 1000}.00 USD",
    }


def generate_company(
    seed: int = 7,
    count: int = 200,
    *,
    domain: str = "acme",
    bad_share: float = 0.03,
    dlp_share: float = 0.05,
    deleted_share: float = 0.05,
    bulk: int = 20,
    start: datetime | None = None,
) -> Company:
    """``count`` employees changed between ``start`` and about ``count`` seconds later."""
    rng = random.Random(seed)
    clock = start or datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
    company = Company(domain=domain, employees={}, changes={}, clock=clock)
    ids: list[str] = []
    bulk_at = rng.randrange(max(1, count - bulk)) if count > bulk else -1
    i = 0
    while i < count:
        # Ties: a bulk import (``bulk`` employees in one second), else 1-3 per second.
        group = bulk if i == bulk_at else rng.choice((1, 1, 2, 3))
        when = company.tick()
        for _ in range(min(group, count - i)):
            employee_id = 100 + i
            supervisor = rng.choice(ids) if ids and rng.random() < 0.8 else None
            values = _employee(rng, employee_id, supervisor)
            key = str(employee_id)
            roll = rng.random()
            if roll < bad_share:
                values[rng.choice(("hireDate", "terminationDate"))] = rng.choice(BAD_DATES)
                company.bad.add(key)
            elif roll < bad_share + dlp_share:
                if rng.random() < 0.5:
                    values["location"] = f"Remote (private line {_phone(rng)})"
                else:
                    values["jobTitle"] += f" - cc {values['homeEmail']}"
                company.planted.add(key)
            company.employees[key] = values
            company.changes[key] = Change("Inserted" if rng.random() < 0.6 else "Updated", when)
            ids.append(key)
            i += 1
    for key in rng.sample(ids, int(len(ids) * deleted_share)):
        company.delete(key, at=company.changes[key].last_changed)
        company.planted.discard(key)
    return company
