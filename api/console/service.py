"""What each console page shows, read from the store. Actions are not here: the console's
routes call the API's own services (approvals, tasks, collection) for every change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from api.collection_schemas import PlanPublic
from api.console import charts
from api.console.i18n import translate
from api.errors import ApiError, Invalid
from api.import_schemas import MessagePreview
from api.reports import service as reports
from api.reports.schemas import AgingReport, DsoPoint, ForecastReport, KpiReport
from api.schemas import HistoryEntry, InvoicePublic
from api.services import collection, invoices, previews
from config import Settings
from domain.law import AmountDue, statement_of_amounts
from domain.lifecycle import Stage
from domain.money import Money, quantize
from domain.rates import RateUnknownError
from domain.selection import RiskBand
from store import portfolio
from store.people import Language
from store.portfolio import aware
from store.tables import Approval, Debtor, Dispute, Invoice, Task

# Disputes whose deadline falls within this many days show on the "today" page.
DISPUTE_WARNING = timedelta(days=3)
# Promises to pay due within this many days show on the "today" page.
PROMISE_WARNING = timedelta(days=2)


@dataclass(frozen=True)
class Today:
    approvals: list[Approval]
    tasks: list[Task]
    disputes: list[Dispute]
    promises: list[Task]


def today(session: Session) -> Today:
    now = datetime.now(UTC)
    end_of_day = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return Today(
        approvals=portfolio.pending_approvals(session),
        tasks=portfolio.open_tasks_due_before(session, end_of_day),
        disputes=portfolio.open_disputes_due_by(session, now + DISPUTE_WARNING),
        promises=portfolio.promises_due_by(session, (now + PROMISE_WARNING).date()),
    )


def open_tasks(session: Session) -> list[tuple[Task, Invoice, Debtor]]:
    return portfolio.open_tasks(session)


@dataclass(frozen=True)
class ApprovalPage:
    approval: Approval
    invoice: InvoicePublic
    preview: MessagePreview | None
    preview_note: str | None
    timeline: list[HistoryEntry]


def approval_page(
    session: Session, engine: Engine, settings: Settings, approval_id: str
) -> ApprovalPage | None:
    approval = session.get(Approval, approval_id)
    if approval is None:
        return None
    invoice = invoices.get_invoice(session, settings, approval.invoice_number)
    preview: MessagePreview | None = None
    note = None
    try:
        # The message the escalation would send, by the same code that sends it, in the
        # debtor's language (what they would read, whatever the collector's).
        preview = previews.preview(engine, settings, approval.invoice_number, approval.step_id)
    except ApiError as why:
        note = why.detail
    return ApprovalPage(
        approval=approval,
        invoice=invoice,
        preview=preview,
        preview_note=note,
        timeline=invoices.history(session, approval.invoice_number),
    )


@dataclass(frozen=True)
class InvoicePage:
    invoice: InvoicePublic
    debtor: Debtor
    timeline: list[HistoryEntry]
    disputes: list[Dispute]
    plans: list[PlanPublic]
    # Interest and indemnity owed today, as the formal notice would state them.
    statement: AmountDue | None


def _statement(invoice: InvoicePublic, still_open: bool) -> AmountDue | None:
    """What is owed today; an open hand-off still owes it (the partner claims it)."""
    day = datetime.now(UTC).date()
    outstanding = Money.of(Decimal(invoice.outstanding.amount), invoice.outstanding.currency)
    if not still_open or day <= invoice.due_date or outstanding.amount <= 0:
        return None
    try:
        # The same computation as the messages' (activities.messaging).
        return statement_of_amounts(outstanding, invoice.due_date, day)
    except RateUnknownError:
        return None


def invoice_page(session: Session, settings: Settings, number: str) -> InvoicePage:
    invoice = invoices.get_invoice(session, settings, number)
    debtor = session.get(Debtor, invoice.debtor_id)
    assert debtor is not None  # an invoice's debtor is a foreign key
    disputes = session.exec(
        select(Dispute).where(Dispute.invoice_number == number).order_by(col(Dispute.opened_at))
    ).all()
    timeline = invoices.history(session, number)
    plans = collection.list_plans(session, number)
    still_open = bool(portfolio.open_numbers(session, [number]))
    return InvoicePage(
        invoice, debtor, timeline, list(disputes), plans, _statement(invoice, still_open)
    )


@dataclass(frozen=True)
class ReportsPage:
    aging: AgingReport
    kpis: KpiReport
    dso: list[DsoPoint]
    forecast: ForecastReport
    charts: dict[str, str]


def reports_page(
    session: Session, settings: Settings, currency: str, language: Language
) -> ReportsPage:
    def t(key: str) -> str:
        return translate(language, key)

    aging = reports.aging(session, currency, None)
    kpis = reports.kpi_report(session, settings, currency, None, None, 7)
    dso = reports.dso_trend(session, currency)
    forecast = reports.forecast(session, currency)
    labels = [t("not_due"), "1–30", "31–60", "61–90", "90+"]
    return ReportsPage(
        aging=aging,
        kpis=kpis,
        dso=dso,
        forecast=forecast,
        charts={
            "aging": charts.aging(aging, t("aging"), labels),
            "dso": charts.dso(dso, t("dso_trend")),
            "steps": charts.steps(kpis, t("step_effectiveness")),
            "forecast": charts.forecast(forecast, t("forecast"), t("gross"), t("expected")),
        },
    )


def money(amount: Decimal, currency: str) -> str:
    """A table amount as the API shows it: the currency's minor unit, with its code."""
    return f"{quantize(amount, currency)} {currency}"


def local(moment: datetime | None) -> str:
    return aware(moment).strftime("%Y-%m-%d %H:%M") if moment else ""


def portfolio_filters(params: dict[str, str]) -> dict[str, Any]:
    """The portfolio form's fields as the report service's filters (empty fields ignored)."""

    def text(name: str) -> str | None:
        value = params.get(name, "").strip()
        return value or None

    try:
        stage = text("stage")
        side = text("side_state")
        band = text("risk_band")
        number = {k: text(k) for k in ("min_days_overdue", "max_days_overdue")}
        amount = {k: text(k) for k in ("min_amount", "max_amount")}
        due = {k: text(k) for k in ("due_from", "due_to")}
        return {
            "stage": [Stage(stage)] if stage else None,
            "side_state": [Stage(side)] if side else None,
            "debtor": text("debtor"),
            "segment": text("segment"),
            "risk_band": RiskBand(band) if band else None,
            **{k: int(v) if v else None for k, v in number.items()},
            **{k: Decimal(v) if v else None for k, v in amount.items()},
            **{k: date.fromisoformat(v) if v else None for k, v in due.items()},
            "playbook": text("playbook"),
            "currency": None,
            "open_only": False,
        }
    except (ValueError, InvalidOperation) as err:
        raise Invalid(f"a filter is not valid: {err}") from err
