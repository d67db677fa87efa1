"""The bounds of money: which currencies, how many decimals, how large."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.money import CURRENCIES, MAX_AMOUNT, Money, check_amount, minor_units


def test_currencies_are_iso_4217_codes_in_use() -> None:
    assert {"EUR", "USD", "GBP", "CHF", "JPY", "XOF", "HRK"} <= CURRENCIES
    # Not money an invoice is written in: unknown, metals, test codes, funds, withdrawn.
    assert not {"ABC", "XAU", "XTS", "XXX", "CHE", "FRF", "DEM"} & CURRENCIES


def test_minor_units_are_those_the_messages_print() -> None:
    # ISO 4217 / CLDR: euro cents, no yen subdivision, Bahraini fils in thousandths.
    assert (minor_units("EUR"), minor_units("JPY"), minor_units("BHD")) == (2, 0, 3)


@pytest.mark.parametrize(
    ("amount", "currency", "says"),
    [
        ("0", "EUR", "greater than 0"),
        ("-1", "EUR", "greater than 0"),
        ("1000000000000", "EUR", "less than 1,000,000,000,000"),
        ("1E+26", "EUR", "less than"),
        ("10.001", "EUR", "more decimals than EUR allows (2)"),
        ("10.5", "JPY", "more decimals than JPY allows (0)"),
        ("NaN", "EUR", "must be a number"),
    ],
)
def test_amounts_out_of_bounds_are_refused(amount: str, currency: str, says: str) -> None:
    with pytest.raises(ValueError) as refused:
        check_amount(Decimal(amount), currency)
    assert says in str(refused.value)


def test_the_largest_amount_is_kept_to_the_cent() -> None:
    largest = MAX_AMOUNT - Decimal("0.01")

    assert check_amount(largest, "EUR") == largest
    assert Money.of(largest, "EUR").amount == Decimal("999999999999.99")
    assert check_amount(Decimal("10.500"), "BHD") == Decimal("10.5")
