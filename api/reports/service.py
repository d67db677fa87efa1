"""Portfolio listings and reports over the store's read model (formulas: `domain.kpis`)."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlmodel import Session

from api.errors import Invalid
from api.reports.schemas import (
    AgingReport,
    AgingRow,
    ChannelCost,
    DebtorPage,
    DebtorRow,
    DisputeReport,
    DsoPoint,
    ForecastReport,
    ForecastWeek,
    InvoicePage,
    InvoiceRow,
    KpiReport,
    SortKey,
    StepEffectiveness,
)
from api.schemas import MoneyPublic
from config import Settings
from domain import kpis
from domain.kpis import Bucket
from domain.lifecycle import HOLD_STAGES, Stage
from domain.money import quantize
from domain.selection import RiskAssessment, RiskBand, risk_score
from store import portfolio
from store.debtors import risk_inputs
from store.portfolio import InvoiceFilter
from store.tables import Debtor, Invoice

MAX_PAGE = 500


def today() -> date:
    return datetime.now(UTC).date()


# ------------------------------------------------------------------ invoices


def invoice_filter(
    *,
    stage: list[Stage] | None = None,
    side_state: list[Stage] | None = None,
    debtor: str | None = None,
    segment: str | None = None,
    risk_band: RiskBand | None = None,
    risks: dict[str, RiskAssessment] | None = None,
    min_days_overdue: int | None = None,
    max_days_overdue: int | None = None,
    min_amount: Decimal | None = None,
    max_amount: Decimal | None = None,
    due_from: date | None = None,
    due_to: date | None = None,
    playbook: str | None = None,
    currency: str | None = None,
    open_only: bool = False,
    as_of: date | None = None,
) -> InvoiceFilter:
    """The query's filters as the store takes them; days overdue become due-date bounds."""
    day = as_of or today()
    for state in side_state or []:
        if state not in HOLD_STAGES:
            names = ", ".join(sorted(s.value for s in HOLD_STAGES))
            raise Invalid(f"side_state {state.value!r} is not a side state; use one of {names}")
    latest = [d for d in (due_to,) if d is not None]
    earliest = [d for d in (due_from,) if d is not None]
    if min_days_overdue is not None:
        latest.append(day - timedelta(days=min_days_overdue))
    if max_days_overdue is not None:
        earliest.append(day - timedelta(days=max_days_overdue))
    if min_amount is not None and max_amount is not None and min_amount > max_amount:
        raise Invalid(f"min_amount {min_amount} is above max_amount {max_amount}")
    band_ids = None
    if risk_band is not None:
        assert risks is not None
        band_ids = tuple(sorted(i for i, r in risks.items() if r.band == risk_band))
    return InvoiceFilter(
        stages=tuple(s.value for s in stage or []),
        side_states=tuple(s.value for s in side_state or []),
        debtor_id=debtor,
        segment=segment,
        debtor_ids=band_ids,
        due_on_or_before=min(latest) if latest else None,
        due_on_or_after=max(earliest) if earliest else None,
        min_amount=min_amount,
        max_amount=max_amount,
        playbook=playbook,
        currency=currency,
        open_only=open_only,
    )


def _cursor(sort: SortKey, descending: bool, row: Invoice) -> str:
    value = getattr(row, "debtor_id" if sort == SortKey.DEBTOR else sort.value)
    payload = json.dumps([sort.value, descending, str(value), row.number])
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _after(cursor: str, sort: SortKey, descending: bool) -> tuple[Any, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key, desc, value, number = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, binascii.Error, TypeError) as err:
        raise Invalid("cursor is not one this API gave out: start again without it") from err
    if key != sort.value or desc != descending:
        raise Invalid("cursor was made for another sort order: start again without it")
    typed: Any = value
    if sort in (SortKey.DUE_DATE, SortKey.ISSUE_DATE):
        typed = date.fromisoformat(value)
    elif sort in (SortKey.AMOUNT, SortKey.OUTSTANDING):
        typed = Decimal(value)
    return typed, str(number)


def _row(invoice: Invoice, debtor: Debtor, risk: RiskBand, day: date) -> InvoiceRow:
    return InvoiceRow(
        number=invoice.number,
        debtor_id=debtor.id,
        debtor_name=debtor.name,
        segment=debtor.segment,
        risk_band=risk,
        amount=MoneyPublic.of(invoice.amount, invoice.currency),
        outstanding=MoneyPublic.of(invoice.outstanding, invoice.currency),
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        days_overdue=(day - invoice.due_date).days,
        stage=invoice.stage,
        playbook=invoice.playbook,
        next_step=invoice.next_step,
        next_step_at=portfolio.aware(invoice.next_step_at) if invoice.next_step_at else None,
    )


def _band(risks: dict[str, RiskAssessment], debtor_id: str) -> RiskBand:
    return risks[debtor_id].band if debtor_id in risks else RiskBand.LOW


def _risks(session: Session, debtor_ids: set[str], day: date) -> dict[str, RiskAssessment]:
    return {i: risk_score(risk_inputs(session, i, day)) for i in debtor_ids}


def list_invoices(
    session: Session,
    filters: dict[str, Any],
    *,
    sort: SortKey = SortKey.DUE_DATE,
    descending: bool = False,
    cursor: str | None = None,
    limit: int = 50,
) -> InvoicePage:
    day = today()
    # Every debtor's score is needed to filter on a band; otherwise only the page's debtors'.
    band = filters.get("risk_band") is not None
    risks = portfolio.risk_by_debtor(session, day) if band else {}
    found = invoice_filter(**filters, risks=risks, as_of=day)
    after = _after(cursor, sort, descending) if cursor else None
    rows = portfolio.list_invoices(
        session, found, sort=sort.value, descending=descending, after=after, limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    if not band:
        risks = _risks(session, {d.id for _, d in rows}, day)
    return InvoicePage(
        items=[_row(i, d, _band(risks, d.id), day) for i, d in rows],
        next_cursor=_cursor(sort, descending, rows[-1][0]) if more and rows else None,
    )


CSV_COLUMNS = [
    "number",
    "debtor_id",
    "debtor_name",
    "segment",
    "risk_band",
    "amount",
    "outstanding",
    "currency",
    "issue_date",
    "due_date",
    "days_overdue",
    "stage",
    "playbook",
    "next_step",
    "next_step_at",
]


def invoices_csv(
    session: Session, filters: dict[str, Any], *, sort: SortKey, descending: bool
) -> Iterator[str]:
    """Every matching invoice (no pagination), one CSV line at a time."""
    day = today()
    risks = portfolio.risk_by_debtor(session, day)
    found = invoice_filter(**filters, risks=risks, as_of=day)
    rows = portfolio.list_invoices(session, found, sort=sort.value, descending=descending)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for invoice, debtor in rows:
        r = _row(invoice, debtor, _band(risks, debtor.id), day)
        writer.writerow(
            [
                r.number,
                r.debtor_id,
                r.debtor_name,
                r.segment or "",
                r.risk_band.value,
                r.amount.amount,
                r.outstanding.amount,
                r.amount.currency,
                r.issue_date.isoformat(),
                r.due_date.isoformat(),
                r.days_overdue,
                r.stage,
                r.playbook,
                r.next_step or "",
                r.next_step_at.isoformat() if r.next_step_at else "",
            ]
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()


# ------------------------------------------------------------------ debtors


def list_debtors(session: Session, cursor: str | None, limit: int) -> DebtorPage:
    day = today()
    debtors = portfolio.debtors_page(session, cursor, limit + 1)
    more = len(debtors) > limit
    debtors = debtors[:limit]
    ids = [d.id for d in debtors]
    activity = portfolio.debtor_activity(session, ids)
    open_rows = portfolio.open_invoices_of(session, ids)
    risks = _risks(session, {d.id for d in debtors}, day)
    items = []
    for debtor in debtors:
        mine = [i for i in open_rows if i.debtor_id == debtor.id]
        totals: dict[str, Decimal] = {}
        for invoice in mine:
            totals[invoice.currency] = (
                totals.get(invoice.currency, Decimal(0)) + invoice.outstanding
            )
        late = [(day - i.due_date).days for i in mine if i.due_date < day]
        act = activity[debtor.id]
        items.append(
            DebtorRow(
                id=debtor.id,
                name=debtor.name,
                segment=debtor.segment,
                open_invoices=len(mine),
                open_total=[MoneyPublic.of(v, c) for c, v in sorted(totals.items())],
                oldest_overdue_days=max(late) if late else None,
                risk_score=risks[debtor.id].score,
                risk_band=risks[debtor.id].band,
                last_contact=act.last_contact,
                next_action=act.next_action,
                next_action_at=act.next_action_at,
            )
        )
    return DebtorPage(items=items, next_cursor=debtors[-1].id if more and debtors else None)


# ------------------------------------------------------------------ reports


def _money(value: Decimal, currency: str) -> str:
    return str(quantize(value, currency))


def _opt(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _aging_row(segment: str | None, row: dict[Bucket, Decimal], currency: str) -> AgingRow:
    return AgingRow(
        segment=segment,
        not_due=_money(row[Bucket.NOT_DUE], currency),
        d1_30=_money(row[Bucket.D1_30], currency),
        d31_60=_money(row[Bucket.D31_60], currency),
        d61_90=_money(row[Bucket.D61_90], currency),
        d90_plus=_money(row[Bucket.D90_PLUS], currency),
        total=_money(sum(row.values(), Decimal(0)), currency),
    )


def aging(session: Session, currency: str, as_of: date | None) -> AgingReport:
    day = as_of or today()
    rows = portfolio.load_receivables(session, currency)
    table = kpis.aging(rows, day)
    whole = dict.fromkeys(Bucket, Decimal(0))
    for row in table.values():
        for bucket, amount in row.items():
            whole[bucket] += amount
    return AgingReport(
        as_of=day,
        currency=currency,
        buckets=_aging_row(None, whole, currency),
        by_segment=[
            _aging_row(segment, row, currency)
            for segment, row in sorted(table.items(), key=lambda kv: kv[0] or "")
        ],
        at_legal_stage=_money(kpis.legal_receivables(rows, day), currency),
    )


def _period(start: date | None, end: date | None) -> tuple[date, date]:
    last = end or today()
    first = start or last.replace(day=1)
    if first > last:
        raise Invalid(f"from ({first}) is after to ({last})")
    return first, last


def kpi_report(
    session: Session,
    settings: Settings,
    currency: str,
    start: date | None,
    end: date | None,
    within_days: int,
) -> KpiReport:
    first, last = _period(start, end)
    rows = portfolio.load_receivables(session, currency)
    dso = kpis.dso_count_back(rows, last)
    best = kpis.best_possible_dso(rows, first, last)
    unit = {
        "email": settings.cost_email,
        "sms": settings.cost_sms,
        "letter": settings.cost_letter,
        "phone": settings.cost_phone,
    }
    counts = portfolio.channel_counts(session, first, last)
    costs = [
        ChannelCost(
            channel=channel,
            count=counts.get(channel, 0),
            unit_cost=_money(price, currency),
            total=_money(price * counts.get(channel, 0), currency),
        )
        for channel, price in unit.items()
    ]
    disputes = kpis.dispute_figures(portfolio.load_disputes(session, first, last))
    effects = kpis.step_effectiveness(
        portfolio.load_step_sends(session, first, last), rows, within_days
    )
    return KpiReport(
        period_from=first,
        period_to=last,
        currency=currency,
        days=kpis.days_between(first, last),
        sales=_money(kpis.sales(rows, first, last), currency),
        receivables_start=_money(kpis.receivables(rows, first - timedelta(days=1)), currency),
        receivables_end=_money(kpis.receivables(rows, last), currency),
        current_receivables_end=_money(kpis.current_receivables(rows, last), currency),
        receivables_end_at_legal_stage=_money(kpis.legal_receivables(rows, last), currency),
        collected=_money(kpis.collected(rows, first, last), currency),
        collected_by_legal_action=_money(
            kpis.collected_by_legal_action(rows, first, last), currency
        ),
        dso=str(dso),
        best_possible_dso=_opt(best),
        average_days_delinquent=_opt(None if best is None else dso - best),
        cei_pct=_opt(kpis.cei(rows, first, last)),
        recovery_rate_pct=_opt(kpis.recovery_rate(rows, first, last)),
        average_days_to_pay_after_due=_opt(kpis.average_days_late(rows, first, last)),
        cost_by_channel=costs,
        cost_total=_money(sum((unit[c] * counts.get(c, 0) for c in unit), Decimal(0)), currency),
        disputes=DisputeReport(
            count=disputes.count,
            by_reason=disputes.by_reason,
            resolved=disputes.resolved,
            median_days_to_resolve=_opt(disputes.median_days_to_resolve),
            resolved_within_deadline_pct=_opt(disputes.resolved_within_deadline),
        ),
        step_window_days=within_days,
        steps=[
            StepEffectiveness(
                step_id=e.step_id,
                template=e.template,
                invoices=e.invoices,
                paid_within=e.paid_within,
                paid_share_pct=str(e.paid_share),
                collected=_money(e.collected, currency),
            )
            for e in effects
        ],
    )


def dso_trend(session: Session, currency: str, months: int = 12) -> list[DsoPoint]:
    """Count-back DSO at the end of each of the last `months` months (this one: today)."""
    rows = portfolio.load_receivables(session, currency)
    points = []
    end = today()
    for _ in range(months):
        points.append(DsoPoint(month_end=end, dso=str(kpis.dso_count_back(rows, end))))
        end = end.replace(day=1) - timedelta(days=1)
    return list(reversed(points))


def forecast(session: Session, currency: str) -> ForecastReport:
    day = today()
    open_invoices = portfolio.load_open_invoices(session, currency, day)
    weeks = kpis.forecast(open_invoices, day)
    legal = sum((i.outstanding for i in open_invoices if i.legal), Decimal(0))
    return ForecastReport(
        as_of=day,
        currency=currency,
        weights={band: str(weight) for band, weight in kpis.RISK_WEIGHTS.items()},
        weeks=[
            ForecastWeek(
                week_start=w.start,
                gross=_money(w.gross, currency),
                expected=_money(w.expected, currency),
                from_due_dates=_money(w.by_source[kpis.Source.DUE_DATE], currency),
                from_installments=_money(w.by_source[kpis.Source.INSTALLMENT], currency),
                from_promises=_money(w.by_source[kpis.Source.PROMISE], currency),
            )
            for w in weeks
        ],
        at_legal_stage=_money(legal, currency),
    )
