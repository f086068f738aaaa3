"""A labelled, deterministic corpus for measuring DLP detection: speed and accuracy.

``generate(n_records, seed)`` (or ``generate_mb(mb, seed)``) builds a `Corpus` of CRM-like
records of four kinds, mixed as a hub sees them:

- ``contact``: a structured record — ``name``, ``email``, ``phone``, ``company``,
  ``order_id`` … and, for some, ``ssn``, ``iban``, ``card_number``, ``dob``,
  ``routing_number``, ``nhs_number``, ``bsn``, ``client_ip``, ``codice_fiscale``,
  ``driver_license`` and a short ``notes`` field;
- ``ticket``, ``hr_note``, ``sales_note``: free text (support-ticket comments, HR onboarding
  notes, sales-call notes) in the field ``notes``, with sensitive values embedded in
  sentences that carry the words people write around them.

About 40 % of records carry no sensitive value at all. Every record is padded with hard
negatives — order and invoice numbers, timestamps, software versions, ZIP+4 codes, ISBNs,
UUIDs, git SHAs, prices, tracking numbers, meeting dates — that look like identifiers.

Identifiers carry valid check digits (Luhn, mod-97, mod-11, 11-proof, ISO 7064, the DNI
letter, the ABA 3-7-1 sum, GitHub's CRC32), computed here, so a checksum-validating
recognizer can confirm them. Phone numbers are from ranges libphonenumber calls valid.

Labels: one `Label` per sensitive value, ``(record, field, start, end, entity)`` with
character offsets into that field's text. ``field`` is the structured field name, or None
for free-text records (their one text has no field name to give context). Entity names are
the hub's (``EMAIL_ADDRESS``, ``PHONE_NUMBER``, ``CREDIT_CARD``, ``IBAN_CODE``, ``US_SSN``,
``DATE_OF_BIRTH``, ``IP_ADDRESS``, ``ABA_ROUTING_NUMBER``, ``UK_NHS``, ``NL_BSN``,
``DE_TAX_ID``, ``ES_NIF``, ``US_BANK_NUMBER``, ``US_PASSPORT``, ``AWS_ACCESS_KEY``,
``GITHUB_TOKEN``, ``JWT``, ``IT_FISCAL_CODE``, ``US_DRIVER_LICENSE``), mostly Presidio's.
Person names and postal addresses appear but are not labelled: the hub has no recognizer
for them.

Usage::

    corpus = generate_mb(2.0, seed=7)
    for text, field, labels in corpus.texts():
        ...
"""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

__all__ = ["Corpus", "Label", "Record", "generate", "generate_mb"]

NO_PII_SHARE = 0.4


@dataclass(frozen=True, slots=True)
class Label:
    """One sensitive value: record index, field (None for free text), [start, end) in
    characters of that field's text, and the entity."""

    record: int
    field: str | None
    start: int
    end: int
    entity: str


@dataclass(frozen=True, slots=True)
class Record:
    """A record: ``kind`` (contact, ticket, hr_note, sales_note), its texts by field name
    (free-text records have one text under ``notes``) and its labels."""

    index: int
    kind: str
    fields: dict[str, str]
    labels: tuple[Label, ...]

    @property
    def structured(self) -> bool:
        return self.kind == "contact"


@dataclass(slots=True)
class Corpus:
    seed: int
    records: list[Record] = field(default_factory=list)

    def texts(self) -> Iterator[tuple[str, str | None, list[Label]]]:
        """(text, field, labels) per scanned text: one per structured field, one per
        free-text record (field None). Label offsets are into that text."""
        for record in self.records:
            for name, text in record.fields.items():
                fld = name if record.structured else None
                labels = [lb for lb in record.labels if lb.field == fld]
                yield text, fld, labels

    @property
    def size_bytes(self) -> int:
        return sum(len(t.encode()) for t, _, _ in self.texts())

    @property
    def labels(self) -> list[Label]:
        return [lb for r in self.records for lb in r.labels]


# -- identifiers with valid check digits ---------------------------------------------------
def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def card_number(rng: random.Random) -> str:
    kind = rng.choice(("visa", "mc", "amex"))
    if kind == "amex":
        body = rng.choice(("34", "37")) + _digits(rng, 12)
        number = body + luhn_digit(body)
        layout = rng.choice(("plain", "amex"))
        if layout == "amex":
            return f"{number[:4]} {number[4:10]} {number[10:]}"
        return number
    body = ("4" if kind == "visa" else str(rng.randint(51, 55))) + _digits(
        rng, 14 if kind == "visa" else 13
    )
    number = body + luhn_digit(body)
    sep = rng.choice(("", " ", "-"))
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


def iban(rng: random.Random) -> str:
    country = rng.choice(("DE", "GB", "NL", "FR"))
    if country == "DE":
        bban = _digits(rng, 18)
    elif country == "GB":
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + _digits(rng, 14)
    elif country == "NL":
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + _digits(rng, 10)
    else:
        bank, branch, account = _digits(rng, 5), _digits(rng, 5), _digits(rng, 11)
        key = 97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97
        bban = bank + branch + account + f"{key:02d}"
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    compact = f"{country}{check:02d}{bban}"
    if rng.random() < 0.5:
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return compact


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def nhs_number(rng: random.Random) -> str:
    while True:
        first = _digits(rng, 9)
        total = sum(int(d) * w for d, w in zip(first, range(10, 1, -1), strict=True))
        check = 11 - total % 11
        if check == 10:
            continue
        number = first + str(0 if check == 11 else check)
        if len(set(number)) > 1:
            return f"{number[:3]} {number[3:6]} {number[6:]}"


def bsn(rng: random.Random) -> str:
    while True:
        first = str(rng.randint(1, 9)) + _digits(rng, 7)
        total = sum(int(d) * w for d, w in zip(first, range(9, 1, -1), strict=True))
        last = total % 11
        if last < 10:
            number = first + str(last)
            return f"{number[:4]}.{number[4:6]}.{number[6:]}"


def de_tax_id(rng: random.Random) -> str:
    while True:
        chosen = rng.sample(string.digits, 9)
        chosen.append(rng.choice(chosen))
        rng.shuffle(chosen)
        if chosen[0] == "0":
            continue
        body = "".join(chosen)
        product = 10
        for ch in body:
            total = (int(ch) + product) % 10 or 10
            product = total * 2 % 11
        check = (11 - product) % 10
        return body + str(check)


def es_nif(rng: random.Random) -> str:
    number = rng.randint(10_000_000, 99_999_999)
    return f"{number}{'TRWAGMYFPDXBNJZSQVHLCKE'[number % 23]}"


_CF_MONTHS = "ABCDEHLMPRST"
_CONSONANTS = "BCDFGHJKLMNPQRSTVZ"


def it_fiscal_code(rng: random.Random) -> str:
    """Codice fiscale: surname and name letters, birth year, month letter, day (+40 for
    women), the town's cadastral code, and the check letter (python-stdnum computes it)."""
    from stdnum.it import codicefiscale

    letters = "".join(rng.choice(_CONSONANTS) for _ in range(6))
    day = rng.randint(1, 28) + (40 if rng.random() < 0.5 else 0)
    town = rng.choice("ABCDEFGHILM") + f"{rng.randint(1, 999):03d}"
    body = f"{letters}{rng.randint(40, 99):02d}{rng.choice(_CF_MONTHS)}{day:02d}{town}"
    return body + codicefiscale.calc_check_digit(body)


def driver_license(rng: random.Random) -> str:
    """A US driver licence in one of the common state shapes (no check digit exists)."""
    shape = rng.randrange(3)
    if shape == 0:  # CA: a letter and seven digits
        return rng.choice(string.ascii_uppercase) + _digits(rng, 7)
    if shape == 1:  # FL/MI: a letter and twelve digits
        return rng.choice("FMS") + _digits(rng, 12)
    return f"{rng.randint(10_000_000, 99_999_999)}"  # TX: eight digits


def aba_routing(rng: random.Random) -> str:
    weights = (3, 7, 1, 3, 7, 1, 3, 7)
    while True:
        first = f"{rng.choice((1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 21, 22, 26, 31)):02d}"
        body = first + _digits(rng, 6)
        total = sum(w * int(d) for w, d in zip(weights, body, strict=True))
        number = body + str((10 - total % 10) % 10)
        if len(set(number)) > 1:
            return number


_PHONES: tuple[Callable[[random.Random], str], ...] = (
    lambda r: f"+1 415 {r.randint(200, 999)} {r.randint(1000, 9999)}",
    lambda r: f"(212) {r.randint(200, 999)}-{r.randint(1000, 9999)}",
    # North American numbers as most people write them: one in eleven also passes the NHS
    # check, and context tells the two apart (hub.dlp.recognizers.uk_nhs)
    lambda r: f"{r.randint(201, 989)}-{r.randint(200, 999)}-{r.randint(1000, 9999)}",
    lambda r: f"{r.randint(201, 989)} {r.randint(200, 999)} {r.randint(1000, 9999)}",
    lambda r: f"+44 20 7946 {r.randint(0, 999):04d}",
    lambda r: f"020 7946 {r.randint(0, 999):04d}",
    lambda r: f"+49 30 {r.randint(1000000, 9999999)}",
    lambda r: f"+33 1 42 68 {r.randint(10, 99)} {r.randint(10, 99)}",
    lambda r: f"+31 20 {r.randint(100, 999)} {r.randint(1000, 9999)}",
)


def phone(rng: random.Random) -> str:
    import phonenumbers

    while True:
        candidate = rng.choice(_PHONES)(rng)
        region = None if candidate[0] == "+" else "GB" if candidate[0] == "0" else "US"
        if phonenumbers.is_valid_number(phonenumbers.parse(candidate, region)):
            return candidate


FIRST = ("Anna", "Jonas", "Maria", "Pedro", "Chloé", "Sven", "Priya", "Liam", "Noah", "Jürgen")
LAST = ("Müller", "Smith", "García", "de Vries", "Dubois", "Rossi", "Patel", "O'Neil", "Kim")
DOMAINS = ("acme-corp.com", "globex.io", "initech.co.uk", "umbrella.de", "hooli.nl")
COMPANIES = ("Acme Corp", "Globex", "Initech", "Umbrella GmbH", "Hooli BV", "Stark Ind.")


def email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
    local = local.replace("é", "e").replace("ü", "ue").replace("í", "i")
    return f"{local}{rng.randint(1, 99) if rng.random() < 0.3 else ''}@{rng.choice(DOMAINS)}"


def dob(rng: random.Random) -> str:
    y, m, d = rng.randint(1940, 2004), rng.randint(1, 12), rng.randint(1, 28)
    months = ("January", "February", "March", "April", "May", "June", "July")
    return rng.choice(
        (
            f"{y}-{m:02d}-{d:02d}",
            f"{m}/{d}/{y}",
            f"{d:02d}.{m:02d}.{y}",
            f"{months[m % 7]} {d}, {y}",
        )
    )


def ipv4(rng: random.Random) -> str:
    first = rng.choice((10, 172, 192, 203, 81))
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


_B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def github_token(rng: random.Random) -> str:
    body = "".join(rng.choice(_B62) for _ in range(30))
    value = zlib.crc32(body.encode())
    crc = ""
    while value:
        value, rest = divmod(value, 62)
        crc = _B62[rest] + crc
    return "ghp_" + body + crc.rjust(6, "0")


def aws_access_key(rng: random.Random) -> str:
    return "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))


def jwt(rng: random.Random) -> str:
    def seg(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    payload = {"sub": str(rng.randint(1, 10**6)), "iat": rng.randint(1_600_000_000, 1_800_000_000)}
    sig = base64.urlsafe_b64encode(rng.randbytes(32)).rstrip(b"=").decode()
    return f"{seg({'alg': 'HS256', 'typ': 'JWT'})}.{seg(payload)}.{sig}"


def bank_account(rng: random.Random) -> str:
    return str(rng.randint(1, 9)) + _digits(rng, rng.randint(9, 11))


def passport(rng: random.Random) -> str:
    return rng.choice(string.ascii_uppercase) + _digits(rng, 8)


# -- hard negatives ------------------------------------------------------------------------
def hard_negative(rng: random.Random) -> str:
    kind = rng.randrange(12)
    if kind == 0:
        return f"order #{rng.randint(10**8, 10**10)}"
    if kind == 1:
        day = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        return f"at {day}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:11Z"
    if kind == 2:
        parts = (rng.randint(1, 12), rng.randint(0, 20), rng.randint(0, 9), rng.randint(0, 99))
        return "version " + ".".join(map(str, parts))
    if kind == 3:
        return f"ZIP {rng.randint(10000, 99999)}-{rng.randint(1000, 9999)}"
    if kind == 4:
        return "ISBN 978-0-306-40615-7"
    if kind == 5:
        return f"request id {uuid.UUID(int=rng.getrandbits(128))}"
    if kind == 6:
        return f"commit {rng.getrandbits(160):040x}"
    if kind == 7:
        return f"invoice INV-{rng.randint(2019, 2025)}-{rng.randint(0, 999999):06d}"
    if kind == 8:
        return f"total ${rng.randint(1, 99)},{rng.randint(100, 999)}.{rng.randint(0, 99):02d}"
    if kind == 9:
        return f"tracking 1Z{rng.getrandbits(60):015X}"
    if kind == 10:
        return f"meeting on {rng.randint(1, 12)}/{rng.randint(1, 28)}/2025 at 14:30"
    return f"SKU {rng.randint(100000, 999999)}-{rng.randint(10, 99)} qty {rng.randint(1, 500)}"


FILLER = (
    "Customer reported that the sync job failed twice overnight.",
    "Escalated to tier 2 after the third retry.",
    "Please double-check the mapping before the next release.",
    "They asked about the enterprise plan and volume discounts.",
    "Follow-up scheduled; the account manager is on leave until Monday.",
    "Onboarding checklist mostly complete, laptop ordered.",
    "Le client souhaite une réponse avant vendredi.",
    "Kunde wünscht Rückruf, bitte Termin vorschlagen.",
    "No blockers; waiting on legal to sign the DPA.",
    "Imported 1,204 rows; 3 rejected for missing country codes.",
)

# (entity, generator, sentence templates with {v}) for free text
_FREE: dict[str, tuple[tuple[str, Callable[[random.Random], str], tuple[str, ...]], ...]] = {
    "ticket": (
        ("EMAIL_ADDRESS", email, ("Reply to {v} when fixed.", "Contact: {v}")),
        ("PHONE_NUMBER", phone, ("Call back on {v} after 3pm.", "Mobile {v}")),
        ("CREDIT_CARD", card_number, ("Customer pasted card {v} in chat.", "payment card {v}")),
        ("IP_ADDRESS", ipv4, ("Requests came from client IP {v}.", "host {v} timed out")),
        ("AWS_ACCESS_KEY", aws_access_key, ("Log shows key {v} in the config.",)),
        ("GITHUB_TOKEN", github_token, ("Leaked token {v} was revoked.",)),
        ("JWT", jwt, ("Authorization: Bearer {v}",)),
    ),
    "hr_note": (
        ("US_SSN", ssn, ("SSN {v} on the W-4.", "social security number: {v}")),
        ("DATE_OF_BIRTH", dob, ("Date of birth: {v}.", "born {v}")),
        ("IBAN_CODE", iban, ("Salary to IBAN {v}.", "bank account {v}")),
        ("UK_NHS", nhs_number, ("NHS number {v}.",)),
        ("NL_BSN", bsn, ("BSN {v} verified.",)),
        ("DE_TAX_ID", de_tax_id, ("Steuer-IdNr {v} received.",)),
        ("ES_NIF", es_nif, ("DNI {v} copiado.",)),
        ("US_PASSPORT", passport, ("Passport no. {v} scanned.",)),
        ("PHONE_NUMBER", phone, ("Emergency contact phone {v}.",)),
        ("IT_FISCAL_CODE", it_fiscal_code, ("Codice fiscale {v} allegato.", "CF: {v}")),
        (
            "US_DRIVER_LICENSE",
            driver_license,
            ("Driver's license {v} copied for the I-9.", "DL number {v}, expires 2027."),
        ),
    ),
    "sales_note": (
        ("EMAIL_ADDRESS", email, ("Send the quote to {v}.",)),
        ("PHONE_NUMBER", phone, ("Direct line {v}.", "called {v} twice")),
        ("ABA_ROUTING_NUMBER", aba_routing, ("Wire via ABA routing {v}.",)),
        ("US_BANK_NUMBER", bank_account, ("Checking account {v} for ACH.",)),
        ("IBAN_CODE", iban, ("SEPA transfer to {v}.",)),
    ),
}

# structured optional fields: name -> (entity, generator)
_FIELDS: dict[str, tuple[str, Callable[[random.Random], str]]] = {
    "ssn": ("US_SSN", ssn),
    "iban": ("IBAN_CODE", iban),
    "card_number": ("CREDIT_CARD", card_number),
    "dob": ("DATE_OF_BIRTH", dob),
    "routing_number": ("ABA_ROUTING_NUMBER", aba_routing),
    "nhs_number": ("UK_NHS", nhs_number),
    "bsn": ("NL_BSN", bsn),
    "client_ip": ("IP_ADDRESS", ipv4),
    "passport_number": ("US_PASSPORT", passport),
    "codice_fiscale": ("IT_FISCAL_CODE", it_fiscal_code),
    "driver_license": ("US_DRIVER_LICENSE", driver_license),
}


class _Text:
    """Builds a text from pieces, recording labelled spans."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.spans: list[tuple[int, int, str]] = []

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)

    def add_value(self, template: str, value: str, entity: str) -> None:
        head, tail = template.split("{v}")
        self.add(head)
        self.spans.append((self.size, self.size + len(value), entity))
        self.add(value + tail)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _free_text(rng: random.Random, kind: str, pii: bool) -> _Text:
    out = _Text()
    sentences = rng.randint(3, 9)
    with_value = set(rng.sample(range(sentences), k=min(sentences, rng.randint(1, 3))))
    for i in range(sentences):
        if i:
            out.add(" " if rng.random() < 0.8 else "\n")
        if pii and i in with_value:
            entity, gen, templates = rng.choice(_FREE[kind])
            out.add_value(rng.choice(templates), gen(rng), entity)
        elif rng.random() < 0.45:
            out.add(rng.choice(FILLER)[:-1] + ", " + hard_negative(rng) + ".")
        else:
            out.add(rng.choice(FILLER))
    return out


def _contact(rng: random.Random, index: int, pii: bool) -> Record:
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    fields: dict[str, str] = {
        "name": name,
        "company": rng.choice(COMPANIES),
        "order_id": f"ORD-{rng.randint(10**7, 10**9)}",
        "created_at": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T09:12:44Z",
        "status": rng.choice(("open", "won", "lost", "nurture")),
        "amount": f"{rng.randint(100, 99999)}.{rng.randint(0, 99):02d}",
        "zip": f"{rng.randint(10000, 99999)}-{rng.randint(1000, 9999)}",
    }
    labels: list[Label] = []
    if pii:
        fields["email"] = email(rng)
        labels.append(Label(index, "email", 0, len(fields["email"]), "EMAIL_ADDRESS"))
        if rng.random() < 0.7:
            fields["phone"] = phone(rng)
            labels.append(Label(index, "phone", 0, len(fields["phone"]), "PHONE_NUMBER"))
        for name_ in rng.sample(sorted(_FIELDS), k=rng.randint(1, 3)):
            entity, gen = _FIELDS[name_]
            fields[name_] = gen(rng)
            labels.append(Label(index, name_, 0, len(fields[name_]), entity))
    else:
        fields["email"] = "n/a"
    if rng.random() < 0.5:
        note = _free_text(rng, rng.choice(tuple(_FREE)), pii and rng.random() < 0.3)
        fields["notes"] = note.text
        labels.extend(Label(index, "notes", s, e, ent) for s, e, ent in note.spans)
    return Record(index, "contact", fields, tuple(labels))


def _record(rng: random.Random, index: int) -> Record:
    pii = rng.random() >= NO_PII_SHARE
    kind = rng.choice(("contact", "contact", "ticket", "hr_note", "sales_note"))
    if kind == "contact":
        return _contact(rng, index, pii)
    note = _free_text(rng, kind, pii)
    labels = tuple(Label(index, None, s, e, ent) for s, e, ent in note.spans)
    return Record(index, kind, {"notes": note.text}, labels)


def generate(n_records: int, seed: int = 7) -> Corpus:
    """`n_records` records from `seed`: the same arguments give the same corpus."""
    rng = random.Random(seed)
    return Corpus(seed, [_record(rng, i) for i in range(n_records)])


def generate_mb(mb: float, seed: int = 7) -> Corpus:
    """Records from `seed` until the scanned text reaches about `mb` megabytes."""
    rng = random.Random(seed)
    corpus = Corpus(seed)
    target, size = int(mb * 1_000_000), 0
    while size < target:
        record = _record(rng, len(corpus.records))
        corpus.records.append(record)
        size += sum(len(t.encode()) for t in record.fields.values())
    return corpus
