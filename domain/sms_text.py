"""How long a text message is, as the networks count it (3GPP TS 23.038 and 23.040).

A message in the GSM 7-bit alphabet holds 160 characters; one character outside it (a "ç", an
"ô", an emoji) switches the whole message to UCS-2, which holds 70. A longer message is split
into segments that each lose room to the header that joins them: 153 and 67. Each segment is
billed as one message, so a playbook caps how many a template may use.

The extension table's characters (€, [, ], {, }, \\, ^, ~, |) are sent as an escape plus the
character: they count twice in GSM-7.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# The GSM 03.38 default alphabet (the escape code itself excluded): note "é" and "Ç" are in it,
# but not "ç", "ê", "è"'s cousins "ë", "ô", "â", "î", "û".
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM7 = GSM7_BASIC | GSM7_EXTENSION

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


class Encoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True)
class SmsLength:
    encoding: Encoding
    # Septets (GSM-7) or UTF-16 code units (UCS-2): what the segment limits count.
    units: int
    segments: int
    # Characters that forced UCS-2, for a message that says what to change.
    non_gsm: tuple[str, ...] = ()

    def describe(self) -> str:
        why = f" (because of {', '.join(repr(c) for c in self.non_gsm)})" if self.non_gsm else ""
        return f"{self.segments} segment(s), {self.units} {self.encoding.value} units{why}"


def sms_text(text: str) -> str:
    """A rendered template as it goes out: one line, and the no-break spaces that locales put
    in amounts and dates ("1 234,56 €") made plain spaces, which GSM-7 has (they would switch
    the whole text to UCS-2 and more than halve its room)."""
    return " ".join(text.replace("\u202f", " ").replace("\u00a0", " ").split())


def sms_length(text: str) -> SmsLength:
    non_gsm = tuple(dict.fromkeys(c for c in text if c not in _GSM7))
    if not non_gsm:
        units = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
        return SmsLength(Encoding.GSM7, units, _segments(units, GSM7_SINGLE, GSM7_PART))
    # Characters outside the Basic Multilingual Plane take two UTF-16 code units.
    units = len(text.encode("utf-16-le")) // 2
    return SmsLength(Encoding.UCS2, units, _segments(units, UCS2_SINGLE, UCS2_PART), non_gsm)


def _segments(units: int, single: int, part: int) -> int:
    if units <= single:
        return 1
    return -(-units // part)
