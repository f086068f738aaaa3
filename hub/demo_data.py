"""A realistic, deterministic sample of sales lead spreadsheets for the demo and the tests.

Three exports as sales teams really produce them:

* ``leads_emea.csv`` - UTF-8 with BOM, ``;``-delimited, European dates (``05.03.2024``),
  local header spellings ('Given name', 'E-mail'), no id column (ids derive from e-mail);
* ``leads_us.csv`` - Windows-1252, ``,``-delimited, US dates (``03/05/2024``), names such
  as 'José', 'Zoë' and O'Brien with a curly apostrophe in cp1252 bytes, a few empty lead ids;
* ``leads_trade_shows.xlsx`` - Excel dates (real date cells and some raw serial numbers),
  phones stored as numbers, blank leading rows, the header repeated in the middle.

And the mess the pipeline must survive: quoted notes with newlines, stray spaces, blank
rows; about 8 % invalid rows, each breaking one rule (bad e-mail syntax, unparseable phone,
no last name, company name over 255 characters, so past both a 120-character limit and the
CRM column size in policies/validation.yaml); about 0.2 % unreadable rows (wrong column
count, CSVs only); about 5 % updates that repeat an earlier valid lead with a changed
status. Every phone number of a valid row is valid for its country per ``phonenumbers``.
"""

from __future__ import annotations

import csv
import io
import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path

import phonenumbers

__all__ = ["DemoFile", "DemoManifest", "generate_demo_files"]

INVALID_SHARE = 0.08
UNREADABLE_SHARE = 0.002
UPDATE_SHARE = 0.05
BLANK_ROW_SHARE = 0.004
# Over-long company names must break the limit whichever one applies: the brief's 120
# characters or the CRM column size in policies/validation.yaml (255).
MAX_COMPANY_LENGTH = 255

EMEA_CSV = "leads_emea.csv"
US_CSV = "leads_us.csv"
TRADE_SHOWS_XLSX = "leads_trade_shows.xlsx"


@dataclass(frozen=True)
class DemoFile:
    name: str
    fmt: str  # 'csv' or 'xlsx'
    rows: int  # data records written, broken ones included (no headers, no blank rows)
    unreadable_rows: int = 0  # records written with a wrong column count on purpose
    invalid_rows: int = 0  # readable records that break exactly one validation rule
    updates: int = 0  # records repeating an earlier, valid lead with a new status


@dataclass(frozen=True)
class DemoManifest:
    files: list[DemoFile]
    total_rows: int
    #: Addresses of valid leads (the first ones generated): the demo makes some of them
    #: marketing contacts too, so attribution has people both departments touched.
    valid_addresses: list[str] = field(default_factory=list)


# -- vocabulary ---------------------------------------------------------------------------

_FIRST = (
    "Anna", "James", "Maria", "Robert", "Linda", "Michael", "Sarah", "David", "Laura",
    "Daniel", "Emma", "Thomas", "Olivia", "Peter", "Sophie", "Lukas", "Julia", "Paul",
    "Chloé", "Hannah", "Marco", "Elena", "Noah", "Mia", "Liam", "Grace", "Ethan", "Ava",
    "Lucas", "Nina",
)  # fmt: skip
_LAST = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Wilson",
    "Anderson", "Taylor", "Thomas", "Moore", "Martin", "Lee", "Walker", "Hall", "Young",
    "King", "Wright", "Schmidt", "Schneider", "Fischer", "Weber", "Dubois", "Lefèvre",
    "Rossi", "Bianchi", "Jansen", "Visser", "Novak", "Larsen", "Hansen", "Fernández", "López",
)  # fmt: skip
_ACCENTED_FIRST = ("José", "Zoë", "François", "Søren", "Renée", "Björn", "Åsa", "Noël", "Inês")
_ACCENTED_LAST = ("O’Brien", "Müller", "Núñez", "Ångström", "D’Amico", "Gröning", "Šimek")
_UTF8_ONLY_NAMES = ("Łukasz", "Dvořák", "Wiśniewska", "Ştefan")  # not in Windows-1252

_COMPANIES = (
    "Northwind Traders",
    "Contoso Ltd",
    "Fabrikam Inc",
    "Adventure Works",
    "Tailspin Toys",
    "Wide World Importers",
    "Litware Inc",
    "Proseware",
    "Woodgrove Bank",
    "Alpine Ski House",
    "Blue Yonder Airlines",
    "Coho Winery",
    "Lucerne Publishing",
    "Margie’s Travel",
    "Trey Research",
    "Fourth Coffee",
    "Humongous Insurance",
    "Southridge Video",
    "Wingtip Toys",
    "Bäckerei Sonnenschein GmbH",
    "Café Lumière SARL",
    "Nordlicht Logistik AG",
)
_TITLES = (
    "VP Sales",
    "Head of Procurement",
    "CTO",
    "IT Manager",
    "Operations Director",
    "Buyer",
    "CFO",
    "Marketing Lead",
    "Office Manager",
    "Founder & CEO",
)
_SOURCES = ("Web", "Trade show", "Referral", "Cold call", "Partner", "Webinar", "LinkedIn")
_STATUSES = ("New", "Contacted", "Qualified", "Proposal", "Negotiation", "Won", "Lost")
_OWNERS = ("Ann Lee", "Bob Martin", "Carla Gómez", "Dieter Braun", "Emma Stone", "Farid Haddad")
_NOTES = (
    "Call back next week",
    "Interested in the premium plan; asked for a quote",
    "Budget approved for Q3",
    "Met at booth 12.\nFollow up with the product sheet",
    "Wants a demo, “ASAP”",
    "Price sensitive – quoted 12.500 €",
    'Said "maybe later", send the case study',
    "Two decision makers:\n- the CFO\n- the head of IT",
    "No reply to 2 e-mails",
)
SENSITIVE_NOTE_SHARE = 0.04


def _luhn_complete(prefix: str, rng: random.Random, length: int = 16) -> str:
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def _iban_de(rng: random.Random) -> str:
    bban = "".join(str(rng.randrange(10)) for _ in range(18))
    check = 98 - int(bban + "131400") % 97  # D=13, E=14
    raw = f"DE{check:02d}{bban}"
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def sensitive_note(rng: random.Random) -> str:
    """A sales note with one sensitive value in it (synthetic, checksum-valid)."""
    kind = rng.randrange(5)
    if kind == 0:
        card = _luhn_complete("4", rng)
        return f"Paid the deposit by card {card[:4]} {card[4:8]} {card[8:12]} {card[12:]}"
    if kind == 1:
        ssn = f"{rng.randrange(100, 600)}-{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)}"
        return f"Needs a W-9 first, SSN {ssn} on file"
    if kind == 2:
        return f"Invoice to IBAN {_iban_de(rng)}"
    if kind == 3:
        dob = date(1960, 1, 1) + timedelta(days=rng.randrange(15000))
        return f"Birthday gift idea - DOB: {dob.isoformat()}"
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    key = "AKIA" + "".join(rng.choice(alphabet) for _ in range(16))
    return f"IT contact shared the integration key {key} by mistake"


_BAD_EMAILS = (
    "{local}@@{domain}",
    "{local}.{domain}",
    "{local} at {domain}",
    "{local}@{stem}",
    "{local}@{domain}.",
    "{local},{domain}",
)
_BAD_PHONES = ("12345", "call me", "+1 23", "n/a", "99-99", "0000", "tbd", "ext. 12")

_US_AREAS = (415, 212, 312, 617, 206, 512, 303, 650, 408, 213, 305, 404)
# Formats per country; each yields numbers phonenumbers holds valid for that region.
_PHONES: dict[str, tuple[str, ...]] = {
    "US": ("({a}) 555-01{d2}", "{a}.555.01{d2}", "+1 {a} 555 01{d2}", "{a}-555-01{d2}"),
    "CA": ("(416) 555-01{d2}", "+1 604 555 01{d2}"),
    "DE": ("030 {d8}", "+49 30 {d4} {d4}", "089 {d7}", "+49 89 {d7}", "0151 {d8}"),
    "GB": ("+44 20 7946 0{d3}", "020 7946 0{d3}", "+44 161 496 0{d3}"),
    "FR": ("+33 1 42 68 {d2} {d2}", "01 42 68 {d2} {d2}", "06 12 34 {d2} {d2}"),
    "NL": ("+31 20 {d3} {d4}", "020 {d3} {d4}"),
    "ES": ("+34 91 {d3} {d2} {d2}", "91 {d3} {d2} {d2}"),
    "IT": ("+39 06 4{d3} {d4}", "02 {d4} {d4}"),
    "AU": ("+61 2 9{d3} {d4}", "(02) 9{d3} {d4}", "0491 570 {d3}"),
    "SG": ("+65 62{d2} {d4}", "+65 65{d2} {d4}"),
}


@dataclass(frozen=True)
class _Lead:
    lead_id: str
    first_name: str
    last_name: str
    email: str
    phone: str
    company: str
    job_title: str
    country: str
    lead_source: str
    lead_status: str
    created: date
    owner: str
    notes: str
    kind: str = "valid"  # valid | invalid | update | unreadable


@dataclass(frozen=True)
class _Profile:
    name: str
    fmt: str
    countries: tuple[str, ...]
    id_prefix: str | None  # None: the sheet has no id column
    cp1252: bool = False


_EMEA = _Profile(EMEA_CSV, "csv", ("DE", "DE", "GB", "GB", "FR", "NL", "ES", "IT"), None)
_US = _Profile(US_CSV, "csv", ("US",) * 9 + ("CA",), "US-", cp1252=True)
_SHOWS = _Profile(TRADE_SHOWS_XLSX, "xlsx", ("US", "US", "GB", "DE", "AU", "SG"), "TS-2024-")


class _Factory:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.emails: set[str] = set()
        self.serial = 0

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(n))

    def phone(self, country: str) -> str:
        """A number in one of the country's formats that phonenumbers holds valid there."""
        for _ in range(20):
            text = self._phone_text(country)
            number = phonenumbers.parse(text, country)
            if phonenumbers.is_valid_number(number):
                return text
        raise AssertionError(f"no valid demo phone format for {country}")  # pragma: no cover

    def _phone_text(self, country: str) -> str:
        """A number in one of the country's formats, each digit group drawn afresh."""
        out: list[str] = []
        rest = self.rng.choice(_PHONES[country])
        while "{" in rest:
            before, _, tail = rest.partition("{")
            key, _, rest = tail.partition("}")
            out.append(before)
            out.append(str(self.rng.choice(_US_AREAS)) if key == "a" else self.digits(int(key[1:])))
        out.append(rest)
        return "".join(out)

    def name(self, pool: Sequence[str], accented: Sequence[str], share: float) -> str:
        return self.rng.choice(accented) if self.rng.random() < share else self.rng.choice(pool)

    def email(self, first: str, last: str, company: str) -> str:
        local = f"{_ascii(first)}.{_ascii(last)}"
        domain = _ascii(company.split(maxsplit=1)[0]) + self.rng.choice(
            (".com", ".com", ".net", ".io")
        )
        address, n = f"{local}@{domain}", 1
        while address in self.emails:
            n += 1
            address = f"{local}{n}@{domain}"
        self.emails.add(address)
        return address

    def lead(self, profile: _Profile) -> _Lead:
        rng = self.rng
        self.serial += 1
        country = rng.choice(profile.countries)
        latin1 = profile.cp1252
        first = self.name(
            _FIRST, _ACCENTED_FIRST if latin1 else _ACCENTED_FIRST + _UTF8_ONLY_NAMES[:1], 0.15
        )
        last = self.name(
            _LAST, _ACCENTED_LAST if latin1 else _ACCENTED_LAST + _UTF8_ONLY_NAMES[1:], 0.12
        )
        company = rng.choice(_COMPANIES)
        lead_id = ""
        if profile.id_prefix is not None and not (latin1 and rng.random() < 0.01):
            lead_id = f"{profile.id_prefix}{self.serial:06d}"
        return _Lead(
            lead_id=lead_id,
            first_name=first,
            last_name=last,
            email=self.email(first, last, company),
            phone=self.phone(country),
            company=company,
            job_title=rng.choice(_TITLES),
            country=country,
            lead_source=rng.choice(_SOURCES),
            lead_status=rng.choice(_STATUSES[:3]),
            created=date(2023, 1, 2) + timedelta(days=rng.randrange(700)),
            owner=rng.choice(_OWNERS),
            notes=self.note(),
        )

    def note(self) -> str:
        """Mostly harmless notes; about 4 % carry a sensitive value a rep pasted in (what
        the DLP stage is for), each with a valid checksum so recognizers confirm it."""
        rng = self.rng
        roll = rng.random()
        if roll < SENSITIVE_NOTE_SHARE:
            return sensitive_note(rng)
        return rng.choice(_NOTES) if roll < 0.3 else ""

    def break_rule(self, lead: _Lead) -> _Lead:
        """One validation defect, picked evenly among the four kinds."""
        rng = self.rng
        kind = rng.randrange(4)
        if kind == 0:
            local, _, domain = lead.email.partition("@")
            bad = rng.choice(_BAD_EMAILS).format(
                local=local, domain=domain, stem=domain.split(".")[0]
            )
            return replace(lead, email=bad, kind="invalid")
        if kind == 1:
            return replace(lead, phone=rng.choice(_BAD_PHONES), kind="invalid")
        if kind == 2:
            return replace(lead, last_name="", kind="invalid")
        long_name = (
            f"{lead.company} – Regional Procurement and Strategic Sourcing Division for Europe, "
            "the Middle East, Africa and the Asia-Pacific Region, incorporating the former "
            "Northern Hemisphere Distribution, Logistics and After-Sales Service Subsidiaries "
            "(Holding Company, Registered Office and Principal Place of Business)"
        )
        assert len(long_name) > MAX_COMPANY_LENGTH
        return replace(lead, company=long_name, kind="invalid")

    def update_of(self, lead: _Lead) -> _Lead:
        later = [s for s in _STATUSES if s != lead.lead_status]
        note = self.rng.choice(("Status changed after call", "Sent proposal", lead.notes))
        return replace(lead, lead_status=self.rng.choice(later), notes=note, kind="update")


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _plan(factory: _Factory, profile: _Profile, rows: int, unreadable: int) -> list[_Lead]:
    """The file's records in order: base leads (valid, invalid, unreadable) and updates of
    earlier valid leads placed after them."""
    rng = factory.rng
    updates = round(rows * UPDATE_SHARE)
    base_count = rows - updates
    invalid = min(round(rows * INVALID_SHARE), max(0, base_count - unreadable - updates))
    base = [factory.lead(profile) for _ in range(base_count)]
    slots = rng.sample(range(base_count), invalid + unreadable)
    for i in slots[:invalid]:
        base[i] = factory.break_rule(base[i])
    for i in slots[invalid:]:
        base[i] = replace(base[i], kind="unreadable")
    valid = [i for i, lead in enumerate(base) if lead.kind == "valid"]
    originals = rng.sample(valid, min(updates, len(valid)))
    keyed: list[tuple[float, _Lead]] = [(float(i), lead) for i, lead in enumerate(base)]
    for i in originals:
        keyed.append((rng.uniform(i + 0.5, base_count), factory.update_of(base[i])))
    keyed.sort(key=lambda pair: pair[0])
    return [lead for _, lead in keyed]


# -- writers ------------------------------------------------------------------------------

_EMEA_HEADER = (
    "Given name", "Surname ", "E-mail", "Telephone", "Company", "Position", "Country",
    "Source", "Stage", "Created on", "Account Manager", "Remarks",
)  # fmt: skip
_US_HEADER = (
    "Lead ID", "First Name", "Last Name", "Email Address", "Phone", "Company", "Title",
    "Country", "Lead Source", "Status", "Created Date", "Sales Rep", "Notes",
)  # fmt: skip
_XLSX_HEADER = (
    "Lead ID", "First Name", "Last Name", "Email", "Mobile", "Account Name", "Job Title",
    "Country", "Source", "Lead Status", "Created", "Owner", "Comments",
)  # fmt: skip


def _spaced(rng: random.Random, text: str) -> str:
    """Now and then the stray spaces people type around a value."""
    roll = rng.random()
    if roll < 0.03:
        return text + "  "
    if roll < 0.04:
        return " " + text
    return text


def _csv_fields(lead: _Lead, profile: _Profile, rng: random.Random) -> list[str]:
    if profile is _EMEA:
        created = lead.created.strftime("%d.%m.%Y" if rng.random() < 0.9 else "%Y-%m-%d")
        fields = [lead.first_name, lead.last_name, lead.email, lead.phone, lead.company]
        fields += [lead.job_title, lead.country, lead.lead_source, lead.lead_status, created]
        return [_spaced(rng, f) for f in fields] + [lead.owner, lead.notes]
    created = lead.created.strftime("%m/%d/%Y")
    fields = [lead.lead_id, lead.first_name, lead.last_name, lead.email, lead.phone]
    fields += [lead.company, lead.job_title, lead.country, lead.lead_source, lead.lead_status]
    return [_spaced(rng, f) for f in fields] + [created, lead.owner, lead.notes]


def _write_csv(dest: Path, profile: _Profile, leads: list[_Lead], rng: random.Random) -> None:
    header = _EMEA_HEADER if profile is _EMEA else _US_HEADER
    delimiter = ";" if profile is _EMEA else ","
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    buf.write("\r\n")  # a blank line before the header
    if profile is _EMEA:
        writer.writerow([""] * len(header))  # a row of empty cells, as Excel exports them
    writer.writerow(header)
    repeat_header_at = len(leads) // 2 if profile is _EMEA else -1
    for index, lead in enumerate(leads):
        if index == repeat_header_at:
            writer.writerow(header)  # two exports pasted together
        if rng.random() < BLANK_ROW_SHARE:
            buf.write("\r\n" if rng.random() < 0.5 else delimiter * (len(header) - 1) + "\r\n")
        fields = _csv_fields(lead, profile, rng)
        if lead.kind == "unreadable":
            if rng.random() < 0.5:
                fields.append("see notes")  # an unquoted delimiter split a cell in two
            else:
                del fields[-3:]  # a row cut short
        writer.writerow(fields)
    text = buf.getvalue()
    if profile.cp1252:
        (dest / profile.name).write_bytes(text.encode("cp1252"))
    else:
        (dest / profile.name).write_bytes(text.encode("utf-8-sig"))


def _excel_serial(day: date) -> int:
    return (day - date(1899, 12, 30)).days


def _xlsx_row(lead: _Lead, rng: random.Random) -> list[object]:
    created: object
    roll = rng.random()
    if roll < 0.15:
        created = _excel_serial(lead.created)  # pasted as a plain number, no date format
    elif roll < 0.2:
        created = datetime.combine(lead.created, time(9 + rng.randrange(8), rng.randrange(60)))
    else:
        created = lead.created
    phone: object = lead.phone
    if lead.country == "US" and lead.kind != "invalid" and rng.random() < 0.3:
        phone = float("".join(ch for ch in lead.phone if ch.isdigit())[-10:])  # typed as number
    return [
        lead.lead_id,
        _spaced(rng, lead.first_name),
        lead.last_name,
        _spaced(rng, lead.email),
        phone,
        lead.company,
        lead.job_title,
        lead.country,
        lead.lead_source,
        lead.lead_status,
        created,
        lead.owner,
        lead.notes or None,
    ]


def _write_xlsx(dest: Path, leads: list[_Lead], rng: random.Random) -> None:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    workbook.properties.creator = "CRM Event Hub demo"
    workbook.properties.created = datetime(2024, 6, 1, 12, 0)
    sheet = workbook.create_sheet("Leads")
    sheet.append([])
    sheet.append([])  # two blank rows above the header
    sheet.append(list(_XLSX_HEADER))
    repeat_header_at = len(leads) // 2
    for index, lead in enumerate(leads):
        if index == repeat_header_at:
            sheet.append(list(_XLSX_HEADER))
        if rng.random() < BLANK_ROW_SHARE:
            sheet.append([])
        sheet.append(_xlsx_row(lead, rng))
    workbook.save(dest / _SHOWS.name)


def generate_demo_files(dest: Path, *, rows: int = 12_000, seed: int = 7) -> DemoManifest:
    """Write the sample files into ``dest`` (created if needed) and describe them."""
    if rows < 3:
        raise ValueError("rows must be at least 3 (one per file)")
    dest.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    factory = _Factory(rng)
    emea_rows = round(rows * 0.38)
    us_rows = round(rows * 0.34)
    plan = ((_EMEA, emea_rows), (_US, us_rows), (_SHOWS, rows - emea_rows - us_rows))
    unreadable_total = round(rows * UNREADABLE_SHARE)
    unreadable = {_EMEA: unreadable_total // 2, _US: unreadable_total - unreadable_total // 2}
    files: list[DemoFile] = []
    addresses: list[str] = []
    for profile, count in plan:
        leads = _plan(factory, profile, count, unreadable.get(profile, 0))
        addresses += [lead.email for lead in leads if lead.kind == "valid"][:50]
        if profile.fmt == "csv":
            _write_csv(dest, profile, leads, rng)
        else:
            _write_xlsx(dest, leads, rng)
        files.append(
            DemoFile(
                name=profile.name,
                fmt=profile.fmt,
                rows=len(leads),
                unreadable_rows=sum(lead.kind == "unreadable" for lead in leads),
                invalid_rows=sum(lead.kind == "invalid" for lead in leads),
                updates=sum(lead.kind == "update" for lead in leads),
            )
        )
    return DemoManifest(
        files=files, total_rows=sum(f.rows for f in files), valid_addresses=addresses
    )
