"""Text message length as the networks count it (3GPP TS 23.038 / 23.040)."""

from __future__ import annotations

import pytest

from domain.sms_text import Encoding, sms_length, sms_text


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        # 160 GSM-7 characters fit one message; 161 need two parts of at most 153.
        ("a" * 160, Encoding.GSM7, 160, 1),
        ("a" * 161, Encoding.GSM7, 161, 2),
        ("a" * 306, Encoding.GSM7, 306, 2),  # 2 × 153
        ("a" * 307, Encoding.GSM7, 307, 3),
        # "é" and "à" are in the GSM alphabet: still one septet each.
        ("échéance à régler", Encoding.GSM7, 17, 1),
        # "€" is in the extension table: escape + character, two septets.
        ("€" * 80, Encoding.GSM7, 160, 1),
        ("€" * 81, Encoding.GSM7, 162, 2),
        # One "ç" switches the whole text to UCS-2: 70 per message, 67 per part.
        ("reçu" + "a" * 66, Encoding.UCS2, 70, 1),
        ("reçu" + "a" * 67, Encoding.UCS2, 71, 2),
        # An emoji is two UTF-16 code units.
        ("🙂", Encoding.UCS2, 2, 1),
    ],
)
def test_length_and_segments(text: str, encoding: Encoding, units: int, segments: int) -> None:
    length = sms_length(text)

    assert (length.encoding, length.units, length.segments) == (encoding, units, segments)


def test_the_characters_that_force_ucs2_are_named() -> None:
    assert "'ç'" in sms_length("Reçu, merci").describe()


def test_amounts_formatted_by_a_french_locale_stay_gsm7() -> None:
    # Babel writes "1 234,56 €" with a narrow no-break space (U+202F) and a no-break space.
    text = sms_text("Merci de régler\n 1\u202f234,56\u00a0€ avant le 3 mars.")

    assert text == "Merci de régler 1 234,56 € avant le 3 mars."
    assert sms_length(text).encoding == Encoding.GSM7
