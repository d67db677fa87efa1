"""The published rates the late-payment law refers to, as data (no I/O, no clock).

Two series, each frozen per half-year (semester):

* the ECB main refinancing operations rate ("taux refi") in force on 1 January / 1 July.
  Code de commerce L441-10 II and Directive 2011/7/EU art. 2(7) both freeze it for the whole
  half-year rather than following every ECB decision, so one value per half-year is exact;
* the French legal interest rate ("taux de l'intérêt légal") for "tous les autres cas", i.e.
  creditors other than natural persons acting for non-professional needs, which is what a B2B
  creditor is. It is fixed by arrêté every semester (Code monétaire et financier L313-2 and
  D313-1-A). The tables start in 2015-H1 because that is the first semester with a separate
  "autres cas" rate (ordonnance 2014-947); before it a single yearly rate applied.

Lookups never guess backwards: a half-year before a table raises `RateUnknownError`. After the
end of a table the last value keeps applying, flagged `provisional`: the law refers to the rate
"in force", and the last published value is the best one known until someone adds the next row
— but a formal notice built on it must be checked, so the flag travels to the statement.
Rows whose value is not yet confirmed against the official publication are `confirmed=False`
and are provisional for the same reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import pairwise
from types import MappingProxyType
from typing import Final, Literal


@dataclass(frozen=True, order=True)
class HalfYear:
    """A calendar semester: H1 = 1 January–30 June, H2 = 1 July–31 December."""

    year: int
    half: Literal[1, 2]

    def __post_init__(self) -> None:
        if self.half not in (1, 2):
            raise ValueError(f"half must be 1 or 2, got {self.half!r}")

    @classmethod
    def containing(cls, day: date) -> HalfYear:
        return cls(day.year, 1 if day.month <= 6 else 2)

    @property
    def start(self) -> date:
        return date(self.year, 1 if self.half == 1 else 7, 1)

    @property
    def end(self) -> date:
        return date(self.year, 6, 30) if self.half == 1 else date(self.year, 12, 31)

    def next(self) -> HalfYear:
        return HalfYear(self.year, 2) if self.half == 1 else HalfYear(self.year + 1, 1)

    def __str__(self) -> str:
        return f"{self.year}-H{self.half}"


class RateUnknownError(LookupError):
    """No published rate is recorded for that half-year; never silently guessed."""

    def __init__(self, series: str, half_year: HalfYear, first_known: HalfYear) -> None:
        self.series = series
        self.half_year = half_year
        super().__init__(
            f"no {series} is recorded for {half_year} "
            f"({half_year.start.isoformat()} to {half_year.end.isoformat()}); "
            f"the table starts at {first_known}"
        )


@dataclass(frozen=True)
class PublishedRate:
    """One row: an annual rate in percent, and whether it was checked against the source."""

    percent: Decimal
    confirmed: bool = True


@dataclass(frozen=True)
class RateLookup:
    percent: Decimal
    half_year: HalfYear
    # True past the end of the table (last value reused) or for an unconfirmed row.
    provisional: bool


def _r(percent: str, *, confirmed: bool = True) -> PublishedRate:
    return PublishedRate(Decimal(percent), confirmed)


ECB_SERIES: Final = "ECB main refinancing operations rate"
LEGAL_SERIES: Final = "French legal interest rate (autres cas)"

# Rate in force on the FIRST DAY of each half-year. The comment gives the ECB decision's
# effective date that set it, so each row can be checked: a change effective after 1 January /
# 1 July only counts from the next half-year.
ECB_MAIN_REFINANCING_RATE: Final[Mapping[HalfYear, PublishedRate]] = MappingProxyType(
    {
        HalfYear(2015, 1): _r("0.05"),  # since 10 Sep 2014
        HalfYear(2015, 2): _r("0.05"),
        HalfYear(2016, 1): _r("0.05"),
        HalfYear(2016, 2): _r("0.00"),  # since 16 Mar 2016
        HalfYear(2017, 1): _r("0.00"),
        HalfYear(2017, 2): _r("0.00"),
        HalfYear(2018, 1): _r("0.00"),
        HalfYear(2018, 2): _r("0.00"),
        HalfYear(2019, 1): _r("0.00"),
        HalfYear(2019, 2): _r("0.00"),
        HalfYear(2020, 1): _r("0.00"),
        HalfYear(2020, 2): _r("0.00"),
        HalfYear(2021, 1): _r("0.00"),
        HalfYear(2021, 2): _r("0.00"),
        HalfYear(2022, 1): _r("0.00"),
        HalfYear(2022, 2): _r("0.00"),  # the rise to 0.50 took effect on 27 Jul 2022, too late
        HalfYear(2023, 1): _r("2.50"),  # since 21 Dec 2022
        HalfYear(2023, 2): _r("4.00"),  # since 21 Jun 2023
        HalfYear(2024, 1): _r("4.50"),  # since 20 Sep 2023
        HalfYear(2024, 2): _r("4.25"),  # since 12 Jun 2024
        HalfYear(2025, 1): _r("3.15"),  # since 18 Dec 2024
        HalfYear(2025, 2): _r("2.15"),  # since 11 Jun 2025
        HalfYear(2026, 1): _r("2.15"),  # unchanged at the Jul, Sep, Oct and Dec 2025 meetings
        # Assumes no change took effect in H1 2026.
        HalfYear(2026, 2): _r("2.15", confirmed=False),  # to confirm against the ECB decisions
    }
)

# Legal interest rate, "tous les autres cas", per semester (arrêté published in late June /
# late December for the next semester).
LEGAL_INTEREST_RATE_OTHER_CASES: Final[Mapping[HalfYear, PublishedRate]] = MappingProxyType(
    {
        HalfYear(2015, 1): _r("0.93"),
        HalfYear(2015, 2): _r("0.99"),
        HalfYear(2016, 1): _r("1.01"),  # arrêté 23 Dec 2015
        HalfYear(2016, 2): _r("0.93"),
        HalfYear(2017, 1): _r("0.90"),
        HalfYear(2017, 2): _r("0.90"),
        HalfYear(2018, 1): _r("0.89"),
        HalfYear(2018, 2): _r("0.88"),  # arrêté 27 Jun 2018
        HalfYear(2019, 1): _r("0.86"),
        HalfYear(2019, 2): _r("0.87"),
        HalfYear(2020, 1): _r("0.87"),
        HalfYear(2020, 2): _r("0.84"),
        HalfYear(2021, 1): _r("0.79"),
        HalfYear(2021, 2): _r("0.76"),
        HalfYear(2022, 1): _r("0.76"),
        HalfYear(2022, 2): _r("0.77"),
        HalfYear(2023, 1): _r("2.06"),
        HalfYear(2023, 2): _r("4.22"),  # arrêté 27 Jun 2023
        HalfYear(2024, 1): _r("5.07"),
        HalfYear(2024, 2): _r("4.92"),
        HalfYear(2025, 1): _r("3.71"),
        HalfYear(2025, 2): _r("2.76"),  # arrêté 19 Jun 2025 (JO 24 Jun 2025)
        HalfYear(2026, 1): _r("2.62"),  # arrêté 15 Dec 2025 (JO 26 Dec 2025)
        # 2026-H2: not recorded yet; lookups reuse 2026-H1 and are flagged provisional.
    }
)


def _check_contiguous(series: str, table: Mapping[HalfYear, PublishedRate]) -> None:
    # A gap would make "the last known value" ambiguous; fail at import, not in a letter.
    keys = sorted(table)
    for before, after in pairwise(keys):
        if before.next() != after:
            raise ValueError(f"{series} table has a gap between {before} and {after}")


_check_contiguous(ECB_SERIES, ECB_MAIN_REFINANCING_RATE)
_check_contiguous(LEGAL_SERIES, LEGAL_INTEREST_RATE_OTHER_CASES)


def _lookup(series: str, table: Mapping[HalfYear, PublishedRate], on: date) -> RateLookup:
    half_year = HalfYear.containing(on)
    first, last = min(table), max(table)
    if half_year < first:
        raise RateUnknownError(series, half_year, first)
    if half_year > last:
        return RateLookup(table[last].percent, half_year, provisional=True)
    row = table[half_year]
    return RateLookup(row.percent, half_year, provisional=not row.confirmed)


def ecb_main_refinancing_rate(on: date) -> RateLookup:
    """ECB main refinancing rate (percent) in force on the first day of `on`'s half-year."""
    return _lookup(ECB_SERIES, ECB_MAIN_REFINANCING_RATE, on)


def legal_interest_rate(on: date) -> RateLookup:
    """French legal interest rate, "autres cas" (percent), for `on`'s half-year."""
    return _lookup(LEGAL_SERIES, LEGAL_INTEREST_RATE_OTHER_CASES, on)
