"""Receivables KPIs: pure formulas over facts the store reads (docs/kpis.md states each one).

Everything here is a function of plain facts (amounts, dates, payments), so each formula can be
checked by hand on a small portfolio. Amounts are Decimal in one currency: reports never add
amounts of different currencies (the caller picks the currency).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from domain.selection import RiskBand

ZERO = Decimal(0)
TENTH = Decimal("0.1")
# How many months the DSO count-back walks at most: older receivables count as that old.
COUNT_BACK_MONTHS = 24


def tenth(value: Decimal) -> Decimal:
    return value.quantize(TENTH, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Receivable:
    """One invoice as the KPIs see it."""

    number: str
    amount: Decimal
    issue_date: date
    due_date: date
    # (day received, amount), in any order.
    payments: tuple[tuple[date, Decimal], ...] = ()
    # Written off (or handed off and closed): no longer counted as receivable from that day.
    ended_on: date | None = None
    # Cancelled by a credit note: never was a sale, never a receivable.
    cancelled: bool = False
    segment: str | None = None
    # Handed off to the legal partner that day: still receivable while the file is open, and
    # what is paid from then on is collected by legal action, not by the reminders.
    legal_from: date | None = None

    def at_legal_stage(self, day: date) -> bool:
        return self.legal_from is not None and self.legal_from <= day

    def by_legal_action(self, on: date) -> bool:
        """Whether a payment received `on` came in once the file was with the partner."""
        return self.at_legal_stage(on)

    def paid_by(self, day: date) -> Decimal:
        return sum((amount for on, amount in self.payments if on <= day), ZERO)

    def balance(self, day: date) -> Decimal:
        """What is owed at the end of `day`."""
        if self.cancelled or day < self.issue_date:
            return ZERO
        if self.ended_on is not None and self.ended_on <= day:
            return ZERO
        return max(ZERO, self.amount - self.paid_by(day))

    def settled_on(self) -> date | None:
        """The day of the payment that brought the balance to zero."""
        total = ZERO
        for on, amount in sorted(self.payments):
            total += amount
            if total >= self.amount:
                return on
        return None


def receivables(rows: Iterable[Receivable], day: date) -> Decimal:
    """Accounts receivable at the end of `day`."""
    return sum((r.balance(day) for r in rows), ZERO)


def current_receivables(rows: Iterable[Receivable], day: date) -> Decimal:
    """The part of the receivables not yet due on `day` (due that day or later)."""
    return sum((r.balance(day) for r in rows if r.due_date >= day), ZERO)


def sales(rows: Iterable[Receivable], start: date, end: date) -> Decimal:
    """Credit sales: invoices issued from `start` to `end` inclusive, credit notes excluded."""
    return sum((r.amount for r in rows if not r.cancelled and start <= r.issue_date <= end), ZERO)


def days_between(start: date, end: date) -> int:
    """Days of the period, both ends included."""
    return (end - start).days + 1


def dso_count_back(rows: Sequence[Receivable], day: date) -> Decimal:
    """Days sales outstanding on `day`, count-back method.

    Start from the receivables on `day`; take away the credit sales of the current month (up to
    `day`), then of each month before, adding that month's days, until a month's sales are more
    than what is left: that month adds its days in proportion (left / its sales × its days).
    """
    left = receivables(rows, day)
    days = ZERO
    end = day
    for _ in range(COUNT_BACK_MONTHS):
        if left <= 0:
            break
        start = end.replace(day=1)
        month_sales = sales(rows, start, end)
        month_days = Decimal(days_between(start, end))
        if left >= month_sales:
            left -= month_sales
            days += month_days
        else:
            days += left / month_sales * month_days
            left = ZERO
        end = start - timedelta(days=1)
    return tenth(days)


def best_possible_dso(rows: Sequence[Receivable], start: date, end: date) -> Decimal | None:
    """Current (not yet due) receivables at the end / credit sales of the period × its days."""
    period_sales = sales(rows, start, end)
    if period_sales <= 0:
        return None
    return tenth(current_receivables(rows, end) / period_sales * days_between(start, end))


def cei(rows: Sequence[Receivable], start: date, end: date) -> Decimal | None:
    """Collection effectiveness index, in percent.

    (receivables at the start + sales − receivables at the end)
    / (receivables at the start + sales − current receivables at the end) × 100,
    where "at the start" is the end of the day before the period.
    """
    opening = receivables(rows, start - timedelta(days=1))
    period_sales = sales(rows, start, end)
    collectible = opening + period_sales - current_receivables(rows, end)
    if collectible <= 0:
        return None
    return tenth((opening + period_sales - receivables(rows, end)) / collectible * 100)


def recovery_rate(rows: Sequence[Receivable], start: date, end: date) -> Decimal | None:
    """Of what was still unpaid at the due date, for invoices due in the period, the share
    collected (payments after the due date, up to the end of the period), in percent."""
    past_due = ZERO
    recovered = ZERO
    for r in rows:
        if r.cancelled or not (start <= r.due_date <= end):
            continue
        unpaid = r.balance(r.due_date)
        if unpaid <= 0:
            continue
        late = sum((a for on, a in r.payments if r.due_date < on <= end), ZERO)
        past_due += unpaid
        recovered += min(late, unpaid)
    if past_due <= 0:
        return None
    return tenth(recovered / past_due * 100)


def average_days_late(rows: Sequence[Receivable], start: date, end: date) -> Decimal | None:
    """Mean days from due date to settlement of invoices settled in the period (early = 0)."""
    lateness = []
    for r in rows:
        settled = None if r.cancelled else r.settled_on()
        if settled is not None and start <= settled <= end:
            lateness.append(max(0, (settled - r.due_date).days))
    if not lateness:
        return None
    return tenth(Decimal(sum(lateness)) / len(lateness))


def collected(rows: Iterable[Receivable], start: date, end: date) -> Decimal:
    return sum((a for r in rows for on, a in r.payments if start <= on <= end), ZERO)


def collected_by_legal_action(rows: Iterable[Receivable], start: date, end: date) -> Decimal:
    """The part of `collected` received once the file was with the legal partner."""
    return sum(
        (a for r in rows for on, a in r.payments if start <= on <= end and r.by_legal_action(on)),
        ZERO,
    )


def legal_receivables(rows: Iterable[Receivable], day: date) -> Decimal:
    """The part of the receivables on `day` with the legal partner (open hand-offs)."""
    return sum((r.balance(day) for r in rows if r.at_legal_stage(day)), ZERO)


# ------------------------------------------------------------------ aging


class Bucket(StrEnum):
    NOT_DUE = "not_due"
    D1_30 = "1-30"
    D31_60 = "31-60"
    D61_90 = "61-90"
    D90_PLUS = "90+"


def bucket_of(days_overdue: int) -> Bucket:
    if days_overdue <= 0:
        return Bucket.NOT_DUE
    if days_overdue <= 30:
        return Bucket.D1_30
    if days_overdue <= 60:
        return Bucket.D31_60
    if days_overdue <= 90:
        return Bucket.D61_90
    return Bucket.D90_PLUS


def aging(rows: Iterable[Receivable], day: date) -> dict[str | None, dict[Bucket, Decimal]]:
    """Open amounts on `day` by segment and bucket of days past the due date."""
    table: dict[str | None, dict[Bucket, Decimal]] = {}
    for r in rows:
        owed = r.balance(day)
        if owed <= 0:
            continue
        row = table.setdefault(r.segment, dict.fromkeys(Bucket, ZERO))
        row[bucket_of((day - r.due_date).days)] += owed
    return table


# ------------------------------------------------------------------ steps


@dataclass(frozen=True)
class StepSent:
    """A playbook step's message reaching an invoice (its first send on any channel)."""

    step_id: str
    template: str
    invoice: str
    sent_on: date


@dataclass(frozen=True)
class StepEffect:
    step_id: str
    template: str
    invoices: int
    paid_within: int
    collected: Decimal

    @property
    def paid_share(self) -> Decimal:
        return tenth(Decimal(self.paid_within) / self.invoices * 100)


def step_effectiveness(
    sends: Iterable[StepSent], rows: Sequence[Receivable], within_days: int
) -> list[StepEffect]:
    """Per step and template: invoices reached, those settled within N days after the send
    (the send's day counted as day 0), and what was paid on them in those days. A step sent
    before the hand-off is not credited with what came in once the file was with the legal
    partner: that was collected by legal action (the hand-off's own step is)."""
    by_number = {r.number: r for r in rows}
    groups: dict[tuple[str, str], list[StepSent]] = {}
    for send in sends:
        groups.setdefault((send.step_id, send.template), []).append(send)
    effects = []
    for (step_id, template), group in sorted(groups.items()):
        paid = 0
        amount = ZERO
        for send in group:
            r = by_number.get(send.invoice)
            if r is None:
                continue
            last = send.sent_on + timedelta(days=within_days)
            if r.legal_from is not None and send.sent_on < r.legal_from:
                last = min(last, r.legal_from - timedelta(days=1))
            settled = r.settled_on()
            if settled is not None and send.sent_on <= settled <= last:
                paid += 1
            amount += sum((a for on, a in r.payments if send.sent_on <= on <= last), ZERO)
        effects.append(StepEffect(step_id, template, len(group), paid, amount))
    return effects


# ------------------------------------------------------------------ disputes (ISO 10002)


@dataclass(frozen=True)
class DisputeFact:
    reason: str
    opened_at: datetime
    deadline: datetime
    resolved_at: datetime | None = None


@dataclass(frozen=True)
class DisputeFigures:
    count: int
    by_reason: dict[str, int]
    resolved: int
    median_days_to_resolve: Decimal | None
    resolved_within_deadline: Decimal | None  # percent of the resolved ones


def dispute_figures(disputes: Sequence[DisputeFact]) -> DisputeFigures:
    """Complaints handling as ISO 10002 asks to monitor it: how many, why, how fast, on time."""
    resolved = [d for d in disputes if d.resolved_at is not None]
    durations = [
        Decimal((d.resolved_at - d.opened_at).total_seconds()) / 86400
        for d in resolved
        if d.resolved_at is not None
    ]
    on_time = sum(1 for d in resolved if d.resolved_at is not None and d.resolved_at <= d.deadline)
    reasons = Counter(d.reason.strip().lower() for d in disputes)
    return DisputeFigures(
        count=len(disputes),
        by_reason=dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        resolved=len(resolved),
        median_days_to_resolve=tenth(statistics.median(durations)) if durations else None,
        resolved_within_deadline=(
            tenth(Decimal(on_time) / len(resolved) * 100) if resolved else None
        ),
    )


# ------------------------------------------------------------------ forecast

# How much of an expected receipt the forecast counts, by the debtor's risk band.
RISK_WEIGHTS: dict[RiskBand, Decimal] = {
    RiskBand.LOW: Decimal("0.90"),
    RiskBand.MEDIUM: Decimal("0.70"),
    RiskBand.HIGH: Decimal("0.40"),
}
FORECAST_WEEKS = 13


class Source(StrEnum):
    DUE_DATE = "due_date"
    INSTALLMENT = "installment"
    PROMISE = "promise"


@dataclass(frozen=True)
class ExpectedReceipt:
    on: date
    amount: Decimal
    source: Source
    band: RiskBand


@dataclass(frozen=True)
class OpenInvoice:
    """An open invoice as the forecast sees it."""

    outstanding: Decimal
    due_date: date
    band: RiskBand
    # The debtor's average days late on its past invoices: when a due date is expected to pay.
    usual_days_late: int = 0
    disputed: bool = False
    promised_on: date | None = None
    # The active plan's installments (due date, amount), in order.
    installments: tuple[tuple[date, Decimal], ...] = ()
    # With the legal partner (an open hand-off): owed, but when it comes in is the court's.
    legal: bool = False


def expected_receipts(invoice: OpenInvoice, today: date) -> list[ExpectedReceipt]:
    """When the money of one open invoice is expected: a disputed invoice, never (until the
    dispute is resolved); a plan, its installments not yet paid (the last ones, adding up to
    what is outstanding); a promise, its date; otherwise its due date moved by the debtor's
    usual days late. A date already past is expected today. An invoice with the legal partner
    is not forecast: the procedure, not a due date, says when it pays (the forecast reports
    its amount apart)."""
    if invoice.disputed or invoice.legal or invoice.outstanding <= 0:
        return []
    if invoice.installments:
        left = invoice.outstanding
        pending: list[ExpectedReceipt] = []
        for on, amount in reversed(invoice.installments):
            if left <= 0:
                break
            part = min(amount, left)
            pending.append(ExpectedReceipt(max(on, today), part, Source.INSTALLMENT, invoice.band))
            left -= part
        return list(reversed(pending))
    if invoice.promised_on is not None:
        return [
            ExpectedReceipt(
                max(invoice.promised_on, today), invoice.outstanding, Source.PROMISE, invoice.band
            )
        ]
    expected = invoice.due_date + timedelta(days=invoice.usual_days_late)
    return [
        ExpectedReceipt(max(expected, today), invoice.outstanding, Source.DUE_DATE, invoice.band)
    ]


@dataclass
class Week:
    start: date
    gross: Decimal = ZERO
    expected: Decimal = ZERO
    by_source: dict[Source, Decimal] = field(default_factory=lambda: dict.fromkeys(Source, ZERO))


def forecast(invoices: Iterable[OpenInvoice], today: date) -> list[Week]:
    """Expected receipts for the 13 weeks from the Monday of this week, each weighted by the
    debtor's risk band (RISK_WEIGHTS)."""
    first = today - timedelta(days=today.weekday())
    weeks = [Week(first + timedelta(weeks=k)) for k in range(FORECAST_WEEKS)]
    for invoice in invoices:
        for receipt in expected_receipts(invoice, today):
            index = (receipt.on - first).days // 7
            if not 0 <= index < FORECAST_WEEKS:
                continue
            week = weeks[index]
            weighted = receipt.amount * RISK_WEIGHTS[receipt.band]
            week.gross += receipt.amount
            week.expected += weighted
            week.by_source[receipt.source] += weighted
    return weeks
