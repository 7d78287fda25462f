"""Personal data found by patterns, with the checksums that keep them honest.

llmspec uses its own patterns rather than presidio-analyzer: presidio's pattern recognizers do
run offline (with its no-op NLP engine), but the package requires spaCy (about 390 MB installed)
and reaches for the network through tldextract on first use, for five regular expressions and
two checksums. What is found: e-mail addresses, phone numbers (9 to 15 digits, international or
national formats), IBANs (country length and ISO 13616 mod-97 checksum), payment card numbers
(a known network prefix, 13 to 19 digits, Luhn checksum) and US social security numbers (the
SSA's rules: no area 000, 666 or 9xx, no group 00, no serial 0000).

    >>> [(k, v) for k, v in find_pii("mail jane.doe@example.com, card 4111 1111 1111 1111")]
    [('email', 'jane.doe@example.com'), ('card', '4111111111111111')]
    >>> find_pii("card 4111 1111 1111 1112")  # fails the Luhn check
    []
"""

from __future__ import annotations

import re

EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*"
    r"\.[A-Za-z]{2,24}(?![\w-])"
)
CARD = re.compile(r"(?<![\d.-])\d(?:[ -]?\d){12,18}(?![\d])")
IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}")
SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,5}(?:[ .-]?\d{2,5}){1,5}(?![\w])"
)
NOT_PHONE = re.compile(
    r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$|^\d{3}-\d{2}-\d{4}$"
)  # dates, and the shape of an SSN (valid or not)

IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20,
    "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18,
    "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30,
    "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}  # fmt: skip
"""IBAN lengths by country (SWIFT's IBAN registry)."""

CARD_PREFIXES = (
    (("4",), (13, 16, 19)),  # Visa
    (tuple(str(p) for p in range(51, 56)) + tuple(str(p) for p in range(2221, 2721)), (16,)),
    (("34", "37"), (15,)),  # American Express
    (("6011", "65") + tuple(str(p) for p in range(644, 650)), (16, 17, 18, 19)),  # Discover
    (("36", "38") + tuple(str(p) for p in range(300, 306)), (14, 15, 16)),  # Diners Club
    (tuple(str(p) for p in range(3528, 3590)), (16, 17, 18, 19)),  # JCB
    (("62",), (16, 17, 18, 19)),  # UnionPay
    (("5018", "5020", "5038", "6304", "6759", "6761", "6763"), tuple(range(12, 20))),  # Maestro
)


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits.

    >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
    (True, False)
    """
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_valid(digits: str) -> bool:
    """A known network's prefix and length, and the Luhn checksum."""
    if not luhn_valid(digits):
        return False
    return any(
        len(digits) in lengths and digits.startswith(prefixes)
        for prefixes, lengths in CARD_PREFIXES
    )


def iban_valid(text: str) -> bool:
    """ISO 13616: the country's length and the mod-97 checksum.

    >>> iban_valid("DE89 3704 0044 0532 0130 00"), iban_valid("DE89 3704 0044 0532 0130 01")
    (True, False)
    """
    s = text.replace(" ", "").upper()
    if len(s) < 15 or len(s) > 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    if IBAN_LENGTHS.get(s[:2], len(s)) != len(s) or not s.isalnum():
        return False
    moved = s[4:] + s[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def _iban_at(candidate: str) -> str | None:
    """The longest prefix of a pattern match that is a valid IBAN (the pattern may run on into
    a following word)."""
    s = candidate.replace(" ", "")
    for n in range(min(34, len(s)), 14, -1):
        if iban_valid(s[:n]):
            return s[:n]
    return None


def find_pii(text: str) -> list[tuple[str, str]]:
    """Personal data in `text`: (kind, value) in order of appearance; values normalized
    (digits only for cards, IBANs without spaces, e-mails lower-cased)."""
    found: list[tuple[int, str, str]] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b in taken)

    for m in EMAIL.finditer(text):
        found.append((m.start(), "email", m.group(0).lower()))
        taken.append(m.span())
    for m in IBAN.finditer(text):
        iban = _iban_at(m.group(0))
        if iban is not None and free(*m.span()):
            found.append((m.start(), "iban", iban))
            taken.append((m.start(), m.start() + len(m.group(0))))
    for m in CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if card_valid(digits) and free(*m.span()):
            found.append((m.start(), "card", digits))
            taken.append(m.span())
    for m in SSN.finditer(text):
        if free(*m.span()):
            found.append((m.start(), "ssn", m.group(0)))
            taken.append(m.span())
    for m in PHONE.finditer(text):
        value = m.group(0)
        digits = re.sub(r"\D", "", value)
        if 9 <= len(digits) <= 15 and not NOT_PHONE.match(value) and free(*m.span()):
            found.append((m.start(), "phone", digits))
            taken.append(m.span())
    return [(kind, value) for _, kind, value in sorted(found)]


def normalized(kind: str, value: str) -> str:
    """A planted value as `find_pii` reports it (to compare the two)."""
    if kind == "email":
        return value.lower()
    if kind == "iban":
        return value.replace(" ", "").upper()
    if kind in ("card", "phone"):
        return re.sub(r"\D", "", value)
    return value
