"""Postal addresses per country, and phone numbers in E.164."""

from __future__ import annotations

import pytest

from domain.phone import InvalidPhoneNumber, can_receive_sms, display_phone, normalize_phone
from domain.postal import InvalidAddress, postal_address


def test_a_french_address_reads_as_the_post_expects() -> None:
    address = postal_address(
        name="Dupont & Fils SARL",
        attention="Service comptabilité",
        street=["Bâtiment B", "12 rue de la Paix"],
        postal_code="75 002",
        city="Paris",
        country="fr",
    )

    assert address.lines() == [
        "Dupont & Fils SARL",
        "Service comptabilité",
        "Bâtiment B",
        "12 rue de la Paix",
        "75002 PARIS",
    ]
    # Posted from France to abroad, the country goes on the last line; at home it does not.
    assert address.lines(sender_country="DE")[-1] == "FRANCE"


@pytest.mark.parametrize(
    ("postal_code", "city", "said"),
    [
        ("96000", "Paris", "no French postcode"),  # 96 is no département
        ("7500", "Paris", "not a postal code of FR"),
        ("75002", "", "city: required in FR"),
    ],
)
def test_a_bad_french_address_names_the_field(postal_code: str, city: str, said: str) -> None:
    with pytest.raises(InvalidAddress) as refused:
        postal_address(name="X", street=["1 rue"], postal_code=postal_code, city=city, country="FR")
    assert said in str(refused.value)


def test_overseas_and_corsican_postcodes_are_french() -> None:
    for code, city in (("97400", "Saint-Denis"), ("20000", "Ajaccio"), ("98000", "Monaco")):
        assert (
            postal_address(
                name="X", street=["1 rue"], postal_code=code, city=city, country="FR"
            ).postal_code
            == code
        )


def test_other_countries_follow_their_own_rules() -> None:
    berlin = postal_address(
        name="Muster GmbH", street=["Hauptstr. 1"], postal_code="10115", city="Berlin", country="DE"
    )
    assert berlin.lines(sender_country="FR")[-2:] == ["10115 BERLIN", "GERMANY"]
    with pytest.raises(InvalidAddress, match="not a postal code of BE"):
        postal_address(name="X", street=["Rue 1"], postal_code="10000", city="Bxl", country="BE")


def test_a_line_longer_than_a_sorting_machine_reads_is_refused() -> None:
    with pytest.raises(InvalidAddress, match="38 characters"):
        postal_address(name="X", street=["1" * 39], postal_code="75002", city="Paris", country="FR")


@pytest.mark.parametrize(
    ("raw", "country", "e164"),
    [
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("+33 (0)6 12 34 56 78", "FR", "+33612345678"),
        ("0033 6 12 34 56 78", "FR", "+33612345678"),
        ("01 42 34 56 78", "FR", "+33142345678"),
        ("0151 23456789", "DE", "+4915123456789"),
    ],
)
def test_numbers_become_e164(raw: str, country: str, e164: str) -> None:
    assert normalize_phone(raw, country) == e164


@pytest.mark.parametrize("raw", ["", "12", "06 12 34", "not a number", "+33 9 99"])
def test_numbers_that_cannot_be_dialled_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalize_phone(raw, "FR")


def test_only_mobiles_take_texts_and_numbers_read_internationally() -> None:
    assert can_receive_sms("+33612345678")
    assert not can_receive_sms("+33142345678")  # a Paris fixed line
    assert display_phone("+33612345678") == "+33 6 12 34 56 78"
