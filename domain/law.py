"""The late-payment law Relance computes (France / EU): pure functions, Decimal only.

Callers pass every date; nothing here reads a clock or does I/O. Amounts are `Money`; rates
are annual percentages as `Decimal` (Decimal("13.15") means 13.15 % a year).

Sources: Code de commerce L441-10 (payment terms, late-payment interest, recovery indemnity),
D441-5 (40 € indemnity), L110-4 (limitation between traders), Civil code 2224-2254
(limitation: start, interruption, long stop), Directive 2011/7/EU (EU reference rate + 8).
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

from domain.money import Money
from domain.rates import HalfYear, ecb_main_refinancing_rate, legal_interest_rate


class InterestRegime(StrEnum):
    # L441-10 II: ECB rate + 10 points, floor 3 × the legal interest rate.
    FRANCE = "france"
    # Directive 2011/7/EU art. 2(6)-(7): ECB reference rate + 8 points, no floor.
    EU_DIRECTIVE = "eu_directive"


FRANCE_MARGIN: Final = Decimal("10")
EU_DIRECTIVE_MARGIN: Final = Decimal("8")
LEGAL_RATE_FLOOR_MULTIPLE: Final = Decimal("3")

# Day count: actual/365. Interest = principal × rate × days / 365, where `days` are the actual
# calendar days late — 365 even in a leap year, as for French legal interest; some courts and
# creditors use 360 (or 366 in leap years), which gives slightly different cents.
DAY_COUNT_BASIS: Final = 365


@dataclass(frozen=True)
class RateInForce:
    percent: Decimal
    half_year: HalfYear
    # An input was past the end of a rate table or not yet confirmed (see domain.rates).
    provisional: bool


def rate_in_force(regime: InterestRegime, on: date) -> RateInForce:
    """The annual late-payment rate for the half-year containing `on`, with its provenance.

    Both regimes freeze the ECB rate at its value on 1 January / 1 July for the whole
    half-year. Raises `domain.rates.RateUnknownError` for a half-year before the tables.

    FRANCE applies max(ECB + 10, 3 × legal rate "autres cas"). Note: L441-10 II words the
    3 × legal rate floor as a limit on a *contractual* rate, with ECB + 10 as the default when
    the contract is silent; applying it as a floor on the default is the product's chosen
    reading. It only bites in 2024 (15.21 % vs 14.50 %, 14.76 % vs 14.25 %).
    """
    ecb = ecb_main_refinancing_rate(on)
    if regime is InterestRegime.EU_DIRECTIVE:
        return RateInForce(ecb.percent + EU_DIRECTIVE_MARGIN, ecb.half_year, ecb.provisional)
    legal = legal_interest_rate(on)
    percent = max(ecb.percent + FRANCE_MARGIN, LEGAL_RATE_FLOOR_MULTIPLE * legal.percent)
    return RateInForce(percent, ecb.half_year, ecb.provisional or legal.provisional)


def annual_rate(regime: InterestRegime, on: date) -> Decimal:
    """The annual rate in percent in force for the half-year containing `on`."""
    return rate_in_force(regime, on).percent


class InterestPeriod(BaseModel):
    """One line of the interest breakdown: a stretch of days inside one half-year."""

    model_config = ConfigDict(frozen=True)

    start: date  # first day of interest (inclusive)
    end: date  # last day of interest (inclusive)
    days: int
    rate: Decimal  # annual, percent
    provisional: bool


def interest_periods(
    due_date: date, until: date, regime: InterestRegime = InterestRegime.FRANCE
) -> tuple[InterestPeriod, ...]:
    """Split the days late, (due_date, until], by half-year, each with its rate.

    Interest runs from the day after the due date (L441-10 II: the penalties are owed from
    the day following the payment date on the invoice, without any reminder) up to and
    including `until`. Empty when `until <= due_date`.
    """
    periods: list[InterestPeriod] = []
    first_day = due_date + timedelta(days=1)
    half_year = HalfYear.containing(first_day)
    while first_day <= until:
        last_day = min(half_year.end, until)
        rate = rate_in_force(regime, first_day)
        periods.append(
            InterestPeriod(
                start=first_day,
                end=last_day,
                days=(last_day - first_day).days + 1,
                rate=rate.percent,
                provisional=rate.provisional,
            )
        )
        half_year = half_year.next()
        first_day = half_year.start
    return tuple(periods)


def _interest(principal: Money, periods: Sequence[InterestPeriod]) -> Money:
    if principal.amount < 0:
        raise ValueError(f"late-payment interest needs a non-negative principal, got {principal}")
    # Simple interest (never compounded: no anatocisme without a court order or clause,
    # Civil code 1343-2). Sum the exact per-period amounts and round once, half-up, to the
    # currency's minor unit, so splitting at 1 January / 1 July never adds rounding cents.
    rate_days = sum((p.rate * p.days for p in periods), Decimal(0))
    exact = principal.amount * rate_days / (Decimal(100) * DAY_COUNT_BASIS)
    return Money.of(exact, principal.currency)


def late_payment_interest(
    principal: Money,
    due_date: date,
    until: date,
    regime: InterestRegime = InterestRegime.FRANCE,
) -> Money:
    """Late-payment interest on `principal`, unpaid after `due_date`, up to `until` included.

    Simple interest, actual/365, split by half-year so a rate change on 1 January / 1 July
    applies from that day; zero when `until <= due_date`; quantized half-up to the minor unit.
    Raises `RateUnknownError` if a day late falls before the rate tables.
    """
    return _interest(principal, interest_periods(due_date, until, regime))


# D441-5: 40 € per invoice paid late, outside the scope of VAT (it is damages, not the price
# of a service). Higher recovery costs can be claimed on proof (L441-10 II), not computed here.
RECOVERY_INDEMNITY: Final = Money.of("40", "EUR")


def recovery_indemnity(currency: str) -> Money:
    """The fixed recovery indemnity for one late invoice invoiced in `currency`.

    Always returns 40 EUR: D441-5 fixes the amount in euros and sets no conversion date or
    rate, so converting it would invent law. For a non-EUR invoice the caller shows it as a
    separate EUR line (as `statement_of_amounts` does) instead of folding it into the total.
    """
    del currency  # accepted so call sites state the invoice currency; the answer is EUR anyway
    return RECOVERY_INDEMNITY


class AmountDue(BaseModel):
    """What a formal notice ("mise en demeure") states for one invoice, as of a date."""

    model_config = ConfigDict(frozen=True)

    regime: InterestRegime
    due_date: date
    as_of: date
    principal: Money
    interest: Money
    indemnity: Money  # always EUR; 0 EUR when the invoice is not late
    rate: Decimal  # annual percent in force on `as_of`
    days_late: int
    periods: tuple[InterestPeriod, ...]
    # principal + interest, plus the indemnity only when the invoice is in EUR.
    total: Money
    # Some rate used was past the end of the tables or unconfirmed: check before sending.
    provisional: bool

    @property
    def indemnity_in_total(self) -> bool:
        return self.indemnity.currency == self.principal.currency


def statement_of_amounts(
    principal: Money,
    due_date: date,
    as_of: date,
    regime: InterestRegime = InterestRegime.FRANCE,
) -> AmountDue:
    """Principal, interest to `as_of` (inclusive), the 40 € indemnity, and their total.

    The indemnity is owed as soon as the invoice is late (L441-10 II, "de plein droit").
    The total never mixes currencies: for a non-EUR invoice the EUR indemnity stays its own
    line and `total` is principal + interest in the invoice currency.
    """
    periods = interest_periods(due_date, as_of, regime)
    interest = _interest(principal, periods)
    days_late = max((as_of - due_date).days, 0)
    indemnity = recovery_indemnity(principal.currency) if days_late else Money.of(0, "EUR")
    total = principal + interest
    if indemnity.currency == principal.currency:
        total = total + indemnity
    current = rate_in_force(regime, as_of)
    return AmountDue(
        regime=regime,
        due_date=due_date,
        as_of=as_of,
        principal=principal,
        interest=interest,
        indemnity=indemnity,
        rate=current.percent,
        days_late=days_late,
        periods=periods,
        total=total,
        provisional=current.provisional or any(p.provisional for p in periods),
    )


# --- Payment terms (L441-10 I) -----------------------------------------------------------

PaymentTerms = Literal["60_days", "45_days_end_of_month", "end_of_month_45_days"]


def _end_of_month(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def max_due_date(issue_date: date, terms: PaymentTerms = "60_days") -> date:
    """The latest due date the parties may agree for an invoice issued on `issue_date`.

    L441-10 I caps agreed terms at 60 days from the issue date, or, if expressly agreed,
    45 days end of month ("45 jours fin de mois") from the issue date. The law does not say
    how to count the latter, and the administration (DGCCRF fact sheet on payment terms, CEPC
    answer on "computation des délais") admits two readings:

    * "45_days_end_of_month": issue date + 45 days, then the end of that month. Chosen as THE
      reading because both the DGCCRF and the CEPC list it first ("date de facture + 45 jours
      + fin du mois"); e.g. 15 January → 1 March → 31 March.
    * "end_of_month_45_days": end of the issue month, then + 45 days (the reading of the
      Senate report on the 2008 LME law, also admitted); e.g. 15 January → 31 January →
      17 March. Offered so a contract that uses it can be computed too.

    Days are calendar days, the issue day not counted. Sector caps (transport, perishable
    food: L441-11) are not modelled here.
    """
    if terms == "60_days":
        return issue_date + timedelta(days=60)
    if terms == "45_days_end_of_month":
        return _end_of_month(issue_date + timedelta(days=45))
    if terms == "end_of_month_45_days":
        return _end_of_month(issue_date) + timedelta(days=45)
    raise ValueError(f"unknown payment terms {terms!r}")


# --- Limitation (L110-4, Civil code 2224 ff.) --------------------------------------------

LIMITATION_YEARS: Final = 5
LONG_STOP_YEARS: Final = 20


def _add_years(day: date, years: int) -> date:
    # A period in years ends on the same day of the month (CPC 641 by analogy); 29 February
    # with no twin ends on the last day of February.
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 2, 28)


def limitation_date(due_date: date, acknowledgments: Sequence[date] = ()) -> date:
    """The last day on which an action for payment can still be brought (inclusive).

    L110-4: claims between traders are time-barred after 5 years. The period runs from the
    due date (Civil code 2233: not before a debt's term), the day itself not counted, and is
    acquired when its last day has passed (2228-2229). Some courts start it earlier (e.g. when
    the delivery or service was completed); pass that date instead to get the cautious date.

    An acknowledgment of the debt by the debtor (part payment, request for time, signed
    statement...) interrupts it (2240) and a new 5-year period starts from it (2231). A
    formal notice ("mise en demeure") does NOT interrupt it, nor does any reminder: only
    acknowledgments, court actions (2241) and enforcement measures (2244) do, and the last two
    are outside this function. An acknowledgment made after the period has run out does not
    revive it (it may be a waiver, 2250-2251: a lawyer's call), so it is ignored. Interruptions
    cannot push the deadline beyond 20 years from the due date (long stop, 2232).
    """
    long_stop = _add_years(due_date, LONG_STOP_YEARS)
    deadline = _add_years(due_date, LIMITATION_YEARS)
    for acknowledged in sorted(acknowledgments):
        if acknowledged > deadline:
            break
        deadline = min(max(deadline, _add_years(acknowledged, LIMITATION_YEARS)), long_stop)
    return deadline
