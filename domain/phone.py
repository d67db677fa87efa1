"""Phone numbers: one form everywhere, E.164 ("+33612345678").

Back offices write numbers as people do ("06 12 34 56 78", "+33 (0)6 12...", "0033 6..."); the
debtor's country says how to read a national number. Google's libphonenumber (the `phonenumbers`
package) knows every country's plan: a number it calls invalid cannot be dialled or texted.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

# Kinds of numbers that can receive a text message. Fixed lines cannot; FIXED_LINE_OR_MOBILE is
# what the plan says where the two share ranges (the US, Canada).
_TEXTABLE = frozenset(
    {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE, PhoneNumberType.PAGER}
)


class InvalidPhoneNumber(ValueError):
    """A number that cannot be dialled, with why, in words a back-office person can act on."""


def normalize_phone(raw: str, country: str) -> str:
    """`raw` in E.164, reading a national number as one of `country` (ISO 3166-1 alpha-2)."""
    text = raw.strip()
    if not text:
        raise InvalidPhoneNumber("the phone number is empty")
    try:
        parsed = phonenumbers.parse(text, country.upper())
    except NumberParseException as exc:
        raise InvalidPhoneNumber(f"{raw!r} is not a phone number: {exc._msg}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber(
            f"{raw!r} is not a valid number in {country.upper()} (or, with a +prefix, in the "
            "country it names)"
        )
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


def can_receive_sms(e164: str) -> bool:
    """Whether the number is of a kind that receives texts (a mobile, not a fixed line)."""
    return phonenumbers.number_type(phonenumbers.parse(e164, None)) in _TEXTABLE


def display_phone(e164: str) -> str:
    """The number as a collector dials it from abroad: "+33 6 12 34 56 78"."""
    return phonenumbers.format_number(
        phonenumbers.parse(e164, None), PhoneNumberFormat.INTERNATIONAL
    )
