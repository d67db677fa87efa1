"""IBANs written in free text (payment instructions): found, and checked (ISO 13616).

`schwifty` knows each country's IBAN length and format; the mod-97 checksum catches a typo
that would send a debtor's transfer to nobody, or to somebody else.
"""

from __future__ import annotations

import re

from schwifty import IBAN
from schwifty.exceptions import SchwiftyException
from schwifty.registry import get_iban_spec

# A country code and two check digits starting a word: where an IBAN may begin.
_START = re.compile(r"\b([A-Z]{2})(\d{2})")
_GROUPED = re.compile(r"[A-Za-z0-9]")


def _candidate(text: str, start: int, length: int) -> str:
    """The `length` alphanumeric characters from `start`, skipping single spaces."""
    chars: list[str] = []
    position = start
    while position < len(text) and len(chars) < length:
        char = text[position]
        if _GROUPED.fullmatch(char):
            chars.append(char)
        elif char != " " or (position + 1 < len(text) and text[position + 1] == " "):
            break
        position += 1
    return "".join(chars)


def ibans_in(text: str) -> list[str]:
    """Every IBAN-shaped sequence in `text` (grouped by 4 or not), compact and upper-case."""
    found = []
    for match in _START.finditer(text):
        try:
            length = get_iban_spec(match.group(1)).iban_length
        except (KeyError, SchwiftyException):
            continue  # not a country with IBANs: a word like "AB12" in a reference
        found.append(_candidate(text, match.start(), length).upper())
    return found


def iban_error(candidate: str) -> str | None:
    """Why `candidate` is not a valid IBAN, or None."""
    try:
        IBAN(candidate)
    except SchwiftyException as err:
        return str(err).rstrip(".").lower()
    return None
