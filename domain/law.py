"""The late-payment law Relance computes (France / EU): pure functions, Decimal only.

Callers pass every date; nothing here reads a clock or does I/O. Amounts are `Money`; rates
are annual percentages as `Decimal` (Decimal("13.15") means 13.15 % a year).

Sources: Code de commerce L441-10 (payment terms, late-payment interest, recovery indemnity),
D441-5 (40 € indemnity), L110-4 (limitation between traders), Civil code 2224-2254
(limitation: start, interruption, long stop), Directive 2011/7/EU (EU reference rate + 8).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from domain.money import Money
from domain.rates import (
    HalfYear,
    RateTable,
    RateUnknownError,
    ecb_main_refinancing_rate,
    legal_interest_rate,
)


class InterestRegime(StrEnum):
    # L441-10 II: ECB rate + 10 points when the contract states no rate (no floor on it).
    FRANCE = "france"
    # Directive 2011/7/EU art. 2(6)-(7): reference rate + 8 points (euro area: the ECB rate).
    EU_DIRECTIVE = "eu_directive"


FRANCE_MARGIN: Final = Decimal("10")
EU_DIRECTIVE_MARGIN: Final = Decimal("8")
# L441-10 II: a contractual rate may not be below 3 × the legal interest rate.
LEGAL_RATE_FLOOR_MULTIPLE: Final = Decimal("3")

# Day count: actual/365. Interest = principal × rate × days / 365, where `days` are the actual
# calendar days late — 365 even in a leap year, as for French legal interest; some courts and
# creditors use 360 (or 366 in leap years), which gives slightly different cents.
DAY_COUNT_BASIS: Final = 365

# Member states of the euro area and the day they joined (Directive 2011/7/EU art. 2(7)(a):
# their reference rate is the ECB's). Other EU states use their central bank's rate (2(7)(b)),
# for which Relance holds no table: it refuses rather than guess.
EURO_AREA: Final = {
    **dict.fromkeys(
        ("AT", "BE", "DE", "ES", "FI", "FR", "IE", "IT", "LU", "NL", "PT"), date(1999, 1, 1)
    ),
    "GR": date(2001, 1, 1),
    "SI": date(2007, 1, 1),
    "CY": date(2008, 1, 1),
    "MT": date(2008, 1, 1),
    "SK": date(2009, 1, 1),
    "EE": date(2011, 1, 1),
    "LV": date(2014, 1, 1),
    "LT": date(2015, 1, 1),
    "HR": date(2023, 1, 1),
    "BG": date(2026, 1, 1),
}
EU_MEMBERS: Final = frozenset(EURO_AREA) | {"CZ", "DK", "HU", "PL", "RO", "SE"}


class NoRateTableError(RateUnknownError):
    """The debtor's reference rate is a national central bank's, of which no table is kept."""

    def __init__(self, country: str, half_year: HalfYear) -> None:
        self.country = country
        self.series = f"central bank rate of {country}"
        self.half_year = half_year
        LookupError.__init__(
            self,
            f"late-payment interest for a debtor in {country} in {half_year} uses the national "
            f"central bank's reference rate (Directive 2011/7/EU art. 2(7)(b), {country} was not "
            "in the euro area), and Relance holds no table of it: state a contractual rate for "
            "this invoice, or compute the interest by hand",
        )


def interest_regime(country: str) -> InterestRegime:
    """France for French debtors (and outside the EU, where French law of the creditor
    applies); the directive's reference rate + 8 for debtors in another member state."""
    return InterestRegime.EU_DIRECTIVE if country in EU_MEMBERS - {"FR"} else InterestRegime.FRANCE


_MULTIPLE = re.compile(
    r"^\s*(\d{1,2}(?:[.,]\d{1,2})?)\s*(?:x|×|\*)\s*_?"
    r"(?:legal|legal rate|legal interest rate|taux légal|taux legal|taux d'intérêt légal"
    r"|taux de l'intérêt légal|tl)\s*$",
    re.IGNORECASE,
)
_FIXED = re.compile(r"^\s*(\d{1,2}(?:[.,]\d{1,4})?)\s*%?\s*$")


class InterestClause(BaseModel):
    """A contractual late-payment rate (terms of sale or the invoice): a multiple of the legal
    interest rate of each half-year, or a fixed annual percentage."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    legal_multiple: Decimal | None = None
    percent: Decimal | None = None

    @model_validator(mode="after")
    def _one_of(self) -> InterestClause:
        if (self.legal_multiple is None) == (self.percent is None):
            raise ValueError(
                "a contractual rate is either a multiple of the legal rate or a percent"
            )
        return self

    @classmethod
    def parse(cls, text: str) -> InterestClause:
        """'3x_legal', '3 × taux légal', '3.5 x legal rate' or a percentage ('12.50', '12,5 %')."""
        if match := _MULTIPLE.match(text):
            return cls(legal_multiple=Decimal(match.group(1).replace(",", ".")))
        if match := _FIXED.match(text):
            return cls(percent=Decimal(match.group(1).replace(",", ".")))
        raise ValueError(
            f"a contractual rate is written like '3x_legal' (3 × the legal interest rate) or "
            f"'12.50' (a fixed annual percent), got {text!r}"
        )

    def __str__(self) -> str:
        if self.legal_multiple is not None:
            return f"{self.legal_multiple}x_legal"
        return f"{self.percent}"


class RateBasis(StrEnum):
    """Why a segment has its rate: the line a debtor or a judge checks."""

    ECB_PLUS_10 = "ecb_plus_10"  # L441-10 II default: "taux BCE + 10 points"
    EU_REFERENCE_PLUS_8 = "eu_reference_plus_8"  # Directive 2011/7/EU art. 2(6)
    CONTRACT = "contract"  # the clause's own rate
    # A fixed contractual rate that fell below 3 × the legal rate in a later half-year: the
    # clause cannot go below that floor (L441-10 II), so the floor applies there.
    LEGAL_FLOOR = "legal_floor"


@dataclass(frozen=True)
class RateInForce:
    percent: Decimal
    half_year: HalfYear
    basis: RateBasis
    # A rate used was past the end of a table or not yet confirmed (see domain.rates).
    provisional: bool


def minimum_contractual_rate(on: date, table: RateTable | None = None) -> RateInForce:
    """3 × the legal interest rate of `on`'s half-year: the lowest rate a contract may state."""
    legal = legal_interest_rate(on, table)
    return RateInForce(
        LEGAL_RATE_FLOOR_MULTIPLE * legal.percent,
        legal.half_year,
        RateBasis.LEGAL_FLOOR,
        legal.provisional,
    )


class RateBelowFloorError(ValueError):
    """A contractual rate below 3 × the legal rate (L441-10 II): refused at hand-over."""


def check_contractual_rate(
    clause: InterestClause, due_date: date, table: RateTable | None = None
) -> None:
    """Refuse a clause below 3 × the legal rate of the half-year in which interest starts.

    Raises RateBelowFloorError saying why, or RateUnknownError before the tables.
    """
    first_day = due_date + timedelta(days=1)
    floor = minimum_contractual_rate(first_day, table)
    if clause.legal_multiple is not None:
        if clause.legal_multiple < LEGAL_RATE_FLOOR_MULTIPLE:
            raise RateBelowFloorError(
                f"a contractual rate of {clause.legal_multiple} × the legal interest rate is "
                f"below the minimum of {LEGAL_RATE_FLOOR_MULTIPLE} × the legal rate that "
                "Code de commerce L441-10 II allows"
            )
        return
    assert clause.percent is not None
    if clause.percent < floor.percent:
        legal = floor.percent / LEGAL_RATE_FLOOR_MULTIPLE
        raise RateBelowFloorError(
            f"a contractual rate of {clause.percent} % is below the minimum Code de commerce "
            f"L441-10 II allows for {floor.half_year}, when interest on this invoice starts: "
            f"3 × the legal interest rate of {legal} % = {floor.percent} %"
        )


def rate_in_force(
    regime: InterestRegime,
    on: date,
    clause: InterestClause | None = None,
    table: RateTable | None = None,
    country: str | None = None,
) -> RateInForce:
    """The annual late-payment rate for the half-year containing `on`, with its basis.

    Both default regimes freeze the ECB rate at its value on 1 January / 1 July for the whole
    half-year. Without a clause the French default is ECB + 10 with NO floor: the 3 × legal
    rate minimum of L441-10 II limits what a contract may state, not the default (so 2024-H1
    is 14.50 %, not 15.21 %). A clause's rate applies, but never below 3 × the legal rate.
    Raises RateUnknownError before the tables, NoRateTableError for a debtor outside the euro
    area under the directive.
    """
    half_year = HalfYear.containing(on)
    if clause is not None:
        floor = minimum_contractual_rate(on, table)
        if clause.legal_multiple is not None:
            percent = clause.legal_multiple * floor.percent / LEGAL_RATE_FLOOR_MULTIPLE
            return RateInForce(percent, half_year, RateBasis.CONTRACT, floor.provisional)
        assert clause.percent is not None
        if clause.percent < floor.percent:
            return floor
        return RateInForce(clause.percent, half_year, RateBasis.CONTRACT, False)
    if regime is InterestRegime.EU_DIRECTIVE:
        if country is not None and not (
            country in EURO_AREA and EURO_AREA[country] <= half_year.start
        ):
            raise NoRateTableError(country, half_year)
        ecb = ecb_main_refinancing_rate(on, table)
        return RateInForce(
            ecb.percent + EU_DIRECTIVE_MARGIN,
            half_year,
            RateBasis.EU_REFERENCE_PLUS_8,
            ecb.provisional,
        )
    ecb = ecb_main_refinancing_rate(on, table)
    return RateInForce(
        ecb.percent + FRANCE_MARGIN, half_year, RateBasis.ECB_PLUS_10, ecb.provisional
    )


def annual_rate(regime: InterestRegime, on: date, clause: InterestClause | None = None) -> Decimal:
    """The annual rate in percent in force for the half-year containing `on`."""
    return rate_in_force(regime, on, clause).percent


class Paid(BaseModel):
    """A sum received on a day: it ends the interest on the part it paid on that day."""

    model_config = ConfigDict(frozen=True)

    received_on: date
    amount: Money


class InterestSegment(BaseModel):
    """One line of the interest breakdown: a principal late over days of one half-year."""

    model_config = ConfigDict(frozen=True)

    principal: Money
    start: date  # first day of interest (inclusive)
    end: date  # last day of interest (inclusive)
    days: int
    rate: Decimal  # annual, percent
    basis: RateBasis
    # The contract clause the rate comes from (basis contract or legal_floor), e.g. "3x_legal".
    clause: str | None = None
    half_year: str
    provisional: bool


def interest_segments(
    principal: Money,
    due_date: date,
    until: date,
    regime: InterestRegime = InterestRegime.FRANCE,
    *,
    payments: Sequence[Paid] = (),
    clause: InterestClause | None = None,
    table: RateTable | None = None,
    country: str | None = None,
) -> tuple[InterestSegment, ...]:
    """Split the days late, (due_date, until], by half-year and by payment.

    Interest runs from the day after the due date (L441-10 II: owed from the day following the
    payment date on the invoice, without any reminder) up to and including `until`. A payment
    received on day P ends the interest on the part it paid on P (that part is late through P
    inclusive, as a sum paid on P is late P - due_date days); the rest goes on from P + 1.
    Payments on or before the due date reduce the principal before interest starts. Empty when
    `until <= due_date` or nothing is left unpaid.
    """
    if principal.amount < 0:
        raise ValueError(f"late-payment interest needs a non-negative principal, got {principal}")
    paid_by_day: dict[date, Decimal] = {}
    for payment in payments:
        if payment.amount.currency != principal.currency:
            raise ValueError(
                f"a payment in {payment.amount.currency} cannot reduce a principal in "
                f"{principal.currency}"
            )
        day = max(payment.received_on, due_date)
        paid_by_day[day] = paid_by_day.get(day, Decimal(0)) + payment.amount.amount
    remaining = principal.amount - paid_by_day.pop(due_date, Decimal(0))
    segments: list[InterestSegment] = []
    first_day = due_date + timedelta(days=1)
    payment_days = sorted(paid_by_day)
    while first_day <= until and remaining > 0:
        half_year = HalfYear.containing(first_day)
        last_day = min(half_year.end, until)
        paid_day = next((d for d in payment_days if first_day <= d <= last_day), None)
        if paid_day is not None:
            last_day = paid_day
        rate = rate_in_force(regime, first_day, clause, table, country)
        segments.append(
            InterestSegment(
                principal=Money.of(remaining, principal.currency),
                start=first_day,
                end=last_day,
                days=(last_day - first_day).days + 1,
                rate=rate.percent,
                basis=rate.basis,
                clause=str(clause)
                if rate.basis in (RateBasis.CONTRACT, RateBasis.LEGAL_FLOOR) and clause
                else None,
                half_year=str(half_year),
                provisional=rate.provisional,
            )
        )
        if paid_day is not None:
            remaining -= paid_by_day[paid_day]
        first_day = last_day + timedelta(days=1)
    return tuple(segments)


def interest_of(segments: Sequence[InterestSegment], currency: str) -> Money:
    """The interest of the segments, rounded once, half-up, to the currency's minor unit.

    Simple interest (never compounded: no anatocisme without a court order or clause, Civil
    code 1343-2). The exact per-segment amounts are summed and rounded once, so splitting at
    1 January / 1 July or at a payment never adds rounding cents.
    """
    exact = sum((s.principal.amount * s.rate * s.days for s in segments), Decimal(0)) / (
        Decimal(100) * DAY_COUNT_BASIS
    )
    return Money.of(exact, currency)


def late_payment_interest(
    principal: Money,
    due_date: date,
    until: date,
    regime: InterestRegime = InterestRegime.FRANCE,
    *,
    payments: Sequence[Paid] = (),
    clause: InterestClause | None = None,
    table: RateTable | None = None,
) -> Money:
    """Late-payment interest on `principal`, unpaid after `due_date`, up to `until` included."""
    segments = interest_segments(
        principal, due_date, until, regime, payments=payments, clause=clause, table=table
    )
    return interest_of(segments, principal.currency)


# D441-5: 40 € per invoice paid late, outside the scope of VAT (it is damages, not the price
# of a service). Higher recovery costs can be claimed on proof (L441-10 II), not computed here.
RECOVERY_INDEMNITY: Final = Money.of("40", "EUR")


def recovery_indemnity(currency: str) -> Money:
    """The fixed recovery indemnity for one late invoice invoiced in `currency`.

    Always 40 EUR, once per invoice whatever the number of reminders: D441-5 fixes the amount
    in euros and sets no conversion date or rate, so converting it would invent law. For a
    non-EUR invoice the caller shows it as a separate EUR line instead of adding it in.
    """
    del currency  # accepted so call sites state the invoice currency; the answer is EUR anyway
    return RECOVERY_INDEMNITY


class AmountDue(BaseModel):
    """What a formal notice ("mise en demeure") states for one invoice, as of a date."""

    model_config = ConfigDict(frozen=True)

    regime: InterestRegime
    due_date: date
    as_of: date
    principal: Money  # what is still unpaid at `as_of`
    interest: Money
    indemnity: Money  # always EUR; 0 EUR when the invoice is not late
    rate: Decimal  # annual percent in force on `as_of`
    basis: RateBasis
    days_late: int
    segments: tuple[InterestSegment, ...]
    # principal + interest, plus the indemnity only when the invoice is in EUR.
    total: Money
    # Some rate used was past the end of the tables or unconfirmed: say so in the letter.
    provisional: bool

    @property
    def indemnity_in_total(self) -> bool:
        return self.indemnity.currency == self.principal.currency


def statement_of_amounts(
    principal: Money,
    due_date: date,
    as_of: date,
    regime: InterestRegime = InterestRegime.FRANCE,
    *,
    payments: Sequence[Paid] = (),
    clause: InterestClause | None = None,
    table: RateTable | None = None,
    country: str | None = None,
) -> AmountDue:
    """Principal still unpaid, interest to `as_of` (inclusive), the 40 € indemnity, the total.

    `principal` is the invoice's amount when `payments` lists what was paid (each ends the
    interest on its part on its day), or the outstanding amount when none is given. The
    indemnity is owed once the invoice is late (L441-10 II, "de plein droit"), once per
    invoice. The total never mixes currencies: for a non-EUR invoice the EUR indemnity stays
    its own line.
    """
    segments = interest_segments(
        principal,
        due_date,
        as_of,
        regime,
        payments=payments,
        clause=clause,
        table=table,
        country=country,
    )
    interest = interest_of(segments, principal.currency)
    paid = sum((p.amount.amount for p in payments if p.received_on <= as_of), Decimal(0))
    unpaid = Money.of(max(principal.amount - paid, Decimal(0)), principal.currency)
    days_late = max((as_of - due_date).days, 0)
    late = days_late > 0 and (unpaid.is_positive or bool(segments))
    indemnity = recovery_indemnity(principal.currency) if late else Money.of(0, "EUR")
    total = unpaid + interest
    if indemnity.currency == principal.currency:
        total = total + indemnity
    current = rate_in_force(
        regime, max(as_of, due_date + timedelta(days=1)), clause, table, country
    )
    return AmountDue(
        regime=regime,
        due_date=due_date,
        as_of=as_of,
        principal=unpaid,
        interest=interest,
        indemnity=indemnity,
        rate=current.percent,
        basis=current.basis,
        days_late=days_late,
        segments=segments,
        total=total,
        provisional=current.provisional or any(s.provisional for s in segments),
    )


class LatePaymentCosts(BaseModel):
    """What an invoice paid after its due date still owes once paid: the interest to each
    payment's date and the 40 € (L441-10 II, D441-5). Recorded in the history, the read model,
    `GET /v1/invoices/{n}` and the `paid` webhook."""

    model_config = ConfigDict(frozen=True)

    due_date: date
    paid_on: date  # the day the last payment settled it
    days_late: int  # of the last payment
    amount: Money  # the invoice's amount
    segments: tuple[InterestSegment, ...]
    interest: Money
    indemnity: Money  # 40 EUR, once per invoice
    # interest + indemnity when the invoice is in EUR; the interest alone otherwise.
    total: Money
    indemnity_in_total: bool
    provisional: bool


def late_payment_costs(
    amount: Money,
    due_date: date,
    payments: Sequence[Paid],
    regime: InterestRegime = InterestRegime.FRANCE,
    *,
    clause: InterestClause | None = None,
    table: RateTable | None = None,
    country: str | None = None,
) -> LatePaymentCosts | None:
    """The late-payment costs of an invoice `payments` settled; None when none was late.

    Each payment ends the interest on the part it paid on its `received_on`. Raises ValueError
    when the payments do not settle `amount` (the invoice still accrues: use
    `statement_of_amounts`).
    """
    paid = sum((p.amount.amount for p in payments), Decimal(0))
    if paid < amount.amount:
        raise ValueError(
            f"payments of {Money.of(paid, amount.currency)} do not settle {amount}: "
            "late-payment costs are computed once the invoice is paid"
        )
    paid_on = max(p.received_on for p in payments)
    if paid_on <= due_date:
        return None
    segments = interest_segments(
        amount,
        due_date,
        paid_on,
        regime,
        payments=payments,
        clause=clause,
        table=table,
        country=country,
    )
    interest = interest_of(segments, amount.currency)
    indemnity = recovery_indemnity(amount.currency)
    in_total = indemnity.currency == amount.currency
    return LatePaymentCosts(
        due_date=due_date,
        paid_on=paid_on,
        days_late=(paid_on - due_date).days,
        amount=amount,
        segments=segments,
        interest=interest,
        indemnity=indemnity,
        total=interest + indemnity if in_total else interest,
        indemnity_in_total=in_total,
        provisional=any(s.provisional for s in segments),
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


class AcknowledgmentKind(StrEnum):
    """What counts as the debtor acknowledging the debt (Civil code 2240). A formal notice or
    a reminder does not: they are the creditor's acts, not the debtor's."""

    PAYMENT = "payment"  # a part payment acknowledges the whole
    SIGNED_PLAN = "signed_plan"  # a payment plan the debtor signed (asks for time)
    PROMISE = "promise"  # a promise to pay recorded as an acknowledgment


class Acknowledgment(BaseModel):
    model_config = ConfigDict(frozen=True)

    on: date
    kind: AcknowledgmentKind


# Collectors are warned this many months before the claim becomes time-barred.
LIMITATION_WARNING_MONTHS: Final = 6


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


class LimitationStatus(BaseModel):
    """Where an invoice stands against limitation on a given day."""

    model_config = ConfigDict(frozen=True)

    limitation_date: date  # the last day an action can be brought
    warn_from: date  # from this day collectors are warned (6 months before)
    time_barred: bool  # on the day asked: no formal notice, no hand-off
    warn: bool  # on the day asked: inside the warning window, not yet barred


def limitation_status(
    due_date: date, acknowledgments: Sequence[Acknowledgment | date], on: date
) -> LimitationStatus:
    """Whether the claim is time-barred on `on`, and whether collectors should be warned.

    A claim is barred the day after its limitation date (the last day still counts). Pass the
    acknowledgments of debt only (payments, signed plans, promises recorded as such): never a
    formal notice, which does not interrupt limitation.
    """
    days = [a.on if isinstance(a, Acknowledgment) else a for a in acknowledgments]
    return limitation_as_of(limitation_date(due_date, days), on)


def limitation_as_of(deadline: date, on: date) -> LimitationStatus:
    """Where a claim whose limitation date is known stands on `on` (barred the day after)."""
    warn_from = _add_months(deadline, -LIMITATION_WARNING_MONTHS)
    barred = on > deadline
    return LimitationStatus(
        limitation_date=deadline,
        warn_from=warn_from,
        time_barred=barred,
        warn=warn_from <= on and not barred,
    )
