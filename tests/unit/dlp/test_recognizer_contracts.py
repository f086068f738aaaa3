"""What the engine relies on from every recognizer, and the quick paths some validators take
that must give their library's verdict:

- a ceiling is never under the score ``validate`` gives (else the engine would skip a
  finding);
- the e-mail recognizer's "plainly valid" shortcut only accepts what email-validator
  accepts;
- the IBAN check gives ``stdnum.iban``'s verdict.
"""

from __future__ import annotations

import random
import re
import string

import pytest
from email_validator import EmailNotValidError, validate_email
from stdnum import iban as stdnum_iban
from stdnum import numdb

from bench.dlp_corpus import generate, iban
from hub.dlp import registry
from hub.dlp.base import Pattern, Recognizer
from hub.dlp.recognizers.email import EmailRecognizer, plainly_valid
from hub.dlp.recognizers.iban import IBAN_LENGTHS, IbanRecognizer
from tests.unit.dlp.scan_helpers import table_texts

RECOGNIZERS = registry.load()
_REGISTRY = numdb.get("iban")
TEXTS = [t for t, _, _ in generate(400, seed=21).texts()] + table_texts()


def _candidates(recognizer: Recognizer, pattern: Pattern) -> list[str]:
    compiled = re.compile(pattern.regex)
    return sorted({m.group() for text in TEXTS for m in compiled.finditer(text)})


@pytest.mark.parametrize("recognizer", RECOGNIZERS, ids=lambda r: r.name)
def test_ceilings_hold(recognizer: Recognizer) -> None:
    for pattern in recognizer.patterns:
        for candidate in _candidates(recognizer, pattern):
            ceiling = recognizer.ceiling(candidate, pattern)
            assert ceiling <= pattern.ceiling, (candidate, ceiling)
            score = recognizer.validate(candidate, pattern)
            assert score is None or score <= ceiling, (candidate, score, ceiling)


def test_ceilings_are_below_one_where_it_matters() -> None:
    """The shortcuts the engine takes need ceilings under the usual threshold for the
    shapes that mean nothing alone (bare digit runs)."""
    by_name = {r.name: r for r in RECOGNIZERS}
    phone, nhs = by_name["phone"], by_name["uk_nhs"]
    assert phone.ceiling("4155552671", phone.patterns[0]) < 0.5
    assert phone.ceiling("+1 415 555 2671", phone.patterns[0]) >= 0.5
    assert nhs.ceiling("9434765919", nhs.patterns[0]) < 0.5
    assert max(p.ceiling for p in by_name["aba_routing"].patterns) < 0.5


# -- e-mail ---------------------------------------------------------------------------------
_FILE_EXTENSIONS = {"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff"}
_FILE_EXTENSIONS |= {"pdf", "css", "js"}


def _library_accepts(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def _addresses(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    local_chars = string.ascii_letters + string.digits + "._%+-"
    tlds = ["com", "io", "local", "test", "onion", "arpa", "invalid", "localhost", "de", "x"]
    out = []
    for _ in range(count):
        local = "".join(rng.choice(local_chars) for _ in range(rng.randint(1, 70)))
        labels = [
            "".join(rng.choice(string.ascii_letters + string.digits + "-") for _ in range(n))
            for n in (rng.randint(1, 70) for _ in range(rng.randint(1, 4)))
        ]
        if rng.random() < 0.2:
            labels.insert(0, "xn--" + "".join(rng.choice("abcdef0123") for _ in range(6)))
        out.append(f"{local}@{'.'.join([*labels, rng.choice(tlds)])}")
    return out


def test_plainly_valid_addresses_are_valid() -> None:
    email = EmailRecognizer()
    pattern = email.patterns[0]
    compiled = re.compile(pattern.regex)
    candidates = [m.group() for a in _addresses(3000, seed=4) for m in compiled.finditer(a)]
    candidates += [m.group() for text in TEXTS for m in compiled.finditer(text)]
    shortcut = 0
    for candidate in candidates:
        if plainly_valid(candidate):
            shortcut += 1
            assert _library_accepts(candidate), candidate
        extension = candidate.rsplit(".", 1)[-1].lower()
        library = _library_accepts(candidate) and extension not in _FILE_EXTENSIONS
        expected = email.validated_score if library else None
        assert email.validate(candidate, pattern) == expected, candidate
    assert shortcut > 500
    for special in ("a@b.test", "a@x.local", "a..b@x.com", "a@xn--bcher-kva.com", "a@ab--cd.com"):
        assert not plainly_valid(special)


# -- IBAN -----------------------------------------------------------------------------------
def _ibans(seed: int) -> list[str]:
    """IBANs of every registry country laid out as the registry says, with a right or a
    wrong check, some with a typo or a letter where a digit belongs; and the corpus
    generator's."""
    rng = random.Random(seed)
    out = [iban(rng).replace(" ", "") for _ in range(300)]
    kinds = {"n": string.digits, "a": string.ascii_uppercase, "c": string.digits + "ABCXYZ"}
    for country in IBAN_LENGTHS:
        props = _REGISTRY.info(country)[0][1]
        layout = re.findall(r"(\d+)!([nac])", props.get("bban", "")) if props else []
        for _ in range(30):
            bban = "".join(rng.choice(kinds[k]) for n, k in layout for _ in range(int(n)))
            if not bban:
                bban = "".join(rng.choice(string.digits) for _ in range(IBAN_LENGTHS[country] - 4))
            numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
            check = 98 - int(numeric) % 97
            if rng.random() < 0.2:  # a wrong check
                check = (check - 1 + rng.randint(1, 96)) % 97 + 1
            if rng.random() < 0.2:  # a typo, or a letter where the layout has a digit
                i = rng.randrange(len(bban))
                bban = bban[:i] + rng.choice(string.digits + "Q") + bban[i + 1 :]
            out.append(f"{country}{check:02d}{bban}")
    return out


def test_iban_check_agrees_with_stdnum() -> None:
    recognizer = IbanRecognizer()
    pattern = recognizer.patterns[0]
    accepted = 0
    for number in _ibans(seed=8):
        expected = stdnum_iban.is_valid(number, check_country=False)
        found = recognizer.validate(number, pattern) is not None
        assert found is expected, number
        accepted += found
    assert accepted > 1000
