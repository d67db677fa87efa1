"""Money: a Decimal amount with its ISO 4217 currency. Never a float.

The bounds of what Relance collects live here, once:
- currencies: the ISO 4217 codes that were legal tender somewhere on or after the first day
  Relance takes (`domain.dates.EARLIEST_DATE`, where the rate tables start),
  from the CLDR data that babel ships. Funds codes (CHE), metals (XAU), test codes (XTS, XXX)
  and currencies withdrawn before then (FRF) are not money an invoice is written in.
- minor units: CLDR's, i.e. the decimals the messages print (EUR 2, JPY 0, BHD 3), so that an
  amount we accept is an amount we can write in a letter without rounding.
- a maximum: amounts are below 10^12 units of their currency (999 999 999 999.99 EUR). The
  store keeps 14 integer digits (Numeric(18, 4)); the margin holds interest and indemnities
  added to an invoice, and no B2B invoice comes near it.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Final

from babel import Locale
from babel.numbers import get_currency_precision, get_territory_currencies
from pydantic import AfterValidator, BaseModel, ConfigDict, WithJsonSchema

MAX_AMOUNT: Final = Decimal(10) ** 12
# Currencies in use on or after the first day of the date window (domain.dates).
_CURRENCIES_SINCE: Final = date(2015, 1, 1)


def _currencies_in_use() -> dict[str, int]:
    """ISO 4217 code -> minor units, for every currency legal tender since 2015."""
    codes: set[str] = set()
    for territory in Locale("en").territories:
        if isinstance(territory, str) and len(territory) == 2 and territory.isalpha():
            codes |= set(
                get_territory_currencies(
                    territory, start_date=_CURRENCIES_SINCE, end_date=date(9999, 12, 31)
                )
            )
    return {code: get_currency_precision(code) for code in sorted(codes)}


# Computed once at import (outside any workflow sandbox: workflows import this module passed
# through), so validating or rounding never reads babel's data files again.
_MINOR_UNITS: Final = _currencies_in_use()
CURRENCIES: Final = frozenset(_MINOR_UNITS)


def _check_currency(code: str) -> str:
    if code not in CURRENCIES:
        raise ValueError(
            f"currency must be an ISO 4217 code in use, in capitals, such as EUR, got {code!r}"
        )
    return code


Currency = Annotated[
    str,
    AfterValidator(_check_currency),
    WithJsonSchema({"type": "string", "enum": sorted(CURRENCIES), "examples": ["EUR"]}),
]


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency, 2)


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit, half-up as accountants expect."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP)


def check_amount(amount: Decimal, currency: str | None) -> Decimal:
    """An amount Relance can collect: finite, positive, below the maximum and, when the currency
    is known, with no more decimals than it has (10.001 EUR is refused, never rounded)."""
    if not amount.is_finite():
        raise ValueError(f"must be a number, got {amount}")
    if amount <= 0:
        raise ValueError(f"must be greater than 0, got {amount}")
    if amount >= MAX_AMOUNT:
        # Checked before any rounding: quantizing 10^26 at 2 decimals overflows the context.
        raise ValueError(f"must be less than {MAX_AMOUNT:,.0f} (Relance's maximum), got {amount}")
    if currency is not None and quantize(amount, currency) != amount:
        raise ValueError(
            f"{amount} has more decimals than {currency} allows ({minor_units(currency)})"
        )
    return amount


class Money(BaseModel):
    model_config = ConfigDict(frozen=True)

    amount: Decimal
    currency: Currency

    @classmethod
    def of(cls, amount: Decimal | str | int, currency: str) -> Money:
        return cls(amount=quantize(Decimal(amount), currency), currency=currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot mix {self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money.of(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money.of(self.amount - other.amount, self.currency)

    def __str__(self) -> str:
        return f"{quantize(self.amount, self.currency)} {self.currency}"

    @property
    def is_positive(self) -> bool:
        return self.amount > 0
