"""The portfolio as reports read it: invoices with their debtor, payments, sends, disputes.

Reads only. The KPI formulas live in `domain.kpis`; this module turns rows into their facts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, func, select

from domain.collection.records import EventKind
from domain.kpis import DisputeFact, OpenInvoice, Receivable, StepSent
from domain.lifecycle import ApprovalStatus, Stage
from domain.playbook import Recipient
from domain.selection import RiskAssessment, risk_score
from store.debtors import risk_inputs
from store.open_invoices import still_open
from store.tables import (
    Approval,
    Debtor,
    Dispute,
    Event,
    Interaction,
    InteractionStatus,
    Invoice,
    Payment,
    PaymentPlan,
    Task,
)


def open_numbers(session: Session, numbers: Sequence[str]) -> set[str]:
    """Which of these invoices are still open (`still_open`)."""
    if not numbers:
        return set()
    return set(
        session.exec(
            select(Invoice.number).where(col(Invoice.number).in_(numbers), still_open())
        ).all()
    )


def aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; the store only ever writes UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _paid_on(row: Payment) -> date:
    return row.received_on or aware(row.recorded_at).date()


def payments_by_invoice(
    session: Session, numbers: Sequence[str] | None = None
) -> dict[str, list[tuple[date, Decimal]]]:
    query = select(Payment)
    if numbers is not None:
        query = query.where(col(Payment.invoice_number).in_(numbers))
    found: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
    for row in session.exec(query).all():
        found[row.invoice_number].append((_paid_on(row), row.amount))
    return found


def load_receivables(session: Session, currency: str) -> list[Receivable]:
    rows = session.exec(
        select(Invoice, Debtor)
        .join(Debtor, col(Debtor.id) == col(Invoice.debtor_id))
        .where(Invoice.currency == currency)
    ).all()
    paid = payments_by_invoice(session)
    handed = _first_events(session, EventKind.HANDED_OFF)
    closed = _first_events(session, EventKind.CLOSED)

    def ended_on(invoice: Invoice) -> date | None:
        if invoice.stage == Stage.WRITTEN_OFF:
            return aware(invoice.updated_at).date()
        if invoice.stage == Stage.HANDED_OFF:
            # Out of the receivables from the day the file closed (settled or abandoned by the
            # partner; the first edition's hand-off); an open hand-off is still owed.
            return closed.get(invoice.number)
        return None

    return [
        Receivable(
            number=invoice.number,
            amount=invoice.amount,
            issue_date=invoice.issue_date,
            due_date=invoice.due_date,
            payments=tuple(paid.get(invoice.number, ())),
            ended_on=ended_on(invoice),
            cancelled=invoice.stage == Stage.CANCELLED,
            segment=debtor.segment,
            legal_from=handed.get(invoice.number),
        )
        for invoice, debtor in rows
    ]


def _first_events(session: Session, kind: EventKind) -> dict[str, date]:
    """The day each invoice's history first recorded `kind`."""
    rows = session.exec(
        select(Event.invoice_number, func.min(Event.at))
        .where(Event.kind == kind.value)
        .group_by(col(Event.invoice_number))
    ).all()
    return {number: aware(at).date() for number, at in rows}


def _in_period(column: Any, start: date, end: date) -> ColumnElement[bool]:
    return and_(column >= day_start(start), column < day_start(end + timedelta(days=1)))


# The thanks go out once the invoice is paid: they collect nothing and are no reminder.
THANK_YOU_STEP = "thank_you"


def load_step_sends(session: Session, start: date, end: date) -> list[StepSent]:
    """Each step's first successful send to the debtor per invoice, sent in the period
    (messages to collectors, mediators or lawyers do not ask the debtor for anything)."""
    rows = session.exec(
        select(Interaction)
        .where(
            Interaction.status == InteractionStatus.SENT,
            Interaction.recipient == Recipient.DEBTOR,
            Interaction.step_id != THANK_YOU_STEP,
            _in_period(col(Interaction.sent_at), start, end),
        )
        .order_by(col(Interaction.sent_at))
    ).all()
    first: dict[tuple[str, str], StepSent] = {}
    for row in rows:
        assert row.sent_at is not None
        key = (row.invoice_number, row.step_id)
        first.setdefault(
            key, StepSent(row.step_id, row.template, row.invoice_number, aware(row.sent_at).date())
        )
    return list(first.values())


def channel_counts(session: Session, start: date, end: date) -> dict[str, int]:
    """Messages sent to debtors per channel in the period, and calls made (call tasks closed)."""
    counts: dict[str, int] = {}
    for channel, count in session.exec(
        select(Interaction.channel, func.count())
        .where(
            Interaction.status == InteractionStatus.SENT,
            Interaction.recipient == Recipient.DEBTOR,
            _in_period(col(Interaction.sent_at), start, end),
        )
        .group_by(col(Interaction.channel))
    ).all():
        counts[channel] = int(count)
    calls = session.exec(
        select(func.count())
        .select_from(Task)
        .where(
            Task.kind == "call",
            col(Task.outcome).is_not(None),
            _in_period(col(Task.closed_at), start, end),
        )
    ).one()
    counts["phone"] = counts.get("phone", 0) + int(calls)
    return counts


def load_disputes(session: Session, start: date, end: date) -> list[DisputeFact]:
    rows = session.exec(select(Dispute).where(_in_period(col(Dispute.opened_at), start, end))).all()
    return [
        DisputeFact(
            reason=row.reason,
            opened_at=aware(row.opened_at),
            deadline=aware(row.deadline),
            resolved_at=aware(row.resolved_at) if row.resolved_at else None,
        )
        for row in rows
    ]


def risk_by_debtor(session: Session, as_of: date) -> dict[str, RiskAssessment]:
    """Every debtor's risk score, from its own history (the same score playbooks select on)."""
    ids = session.exec(select(Debtor.id)).all()
    return {debtor_id: risk_score(risk_inputs(session, debtor_id, as_of)) for debtor_id in ids}


def _promises(session: Session, numbers: Sequence[str]) -> dict[str, date]:
    rows = session.exec(
        select(Task)
        .where(col(Task.invoice_number).in_(numbers), col(Task.promise_date).is_not(None))
        .order_by(col(Task.closed_at))
    ).all()
    return {row.invoice_number: row.promise_date for row in rows if row.promise_date}


def _plans(session: Session, numbers: Sequence[str]) -> dict[str, tuple[tuple[date, Decimal], ...]]:
    rows = session.exec(
        select(PaymentPlan).where(
            col(PaymentPlan.invoice_number).in_(numbers), PaymentPlan.status == "active"
        )
    ).all()
    plans = {}
    for row in rows:
        plans[row.invoice_number] = tuple(
            (date.fromisoformat(str(i["due_date"])), _installment_amount(i["amount"]))
            for i in row.installments
        )
    return plans


def _installment_amount(value: object) -> Decimal:
    # Installments are stored as Money dumps ({"amount": "...", "currency": "..."}).
    if isinstance(value, dict):
        return Decimal(str(value["amount"]))
    return Decimal(str(value))


def load_open_invoices(session: Session, currency: str, as_of: date) -> list[OpenInvoice]:
    invoices = session.exec(
        select(Invoice).where(
            Invoice.currency == currency, still_open(), col(Invoice.outstanding) > 0
        )
    ).all()
    numbers = [i.number for i in invoices]
    risks: dict[str, RiskAssessment] = {}
    usual: dict[str, int] = {}
    for debtor_id in {i.debtor_id for i in invoices}:
        inputs = risk_inputs(session, debtor_id, as_of)
        risks[debtor_id] = risk_score(inputs)
        usual[debtor_id] = round(inputs.avg_days_late)
    promises = _promises(session, numbers)
    plans = _plans(session, numbers)
    return [
        OpenInvoice(
            outstanding=i.outstanding,
            due_date=i.due_date,
            band=risks[i.debtor_id].band,
            usual_days_late=usual[i.debtor_id],
            disputed=i.stage == Stage.DISPUTED,
            promised_on=promises.get(i.number) if i.stage == Stage.PROMISED else None,
            installments=plans.get(i.number, ()) if i.stage == Stage.PAYMENT_PLAN else (),
            legal=i.stage == Stage.HANDED_OFF,
        )
        for i in invoices
    ]


# ------------------------------------------------------------------ the invoice list


@dataclass(frozen=True)
class InvoiceFilter:
    stages: tuple[str, ...] = ()
    side_states: tuple[str, ...] = ()
    debtor_id: str | None = None
    segment: str | None = None
    debtor_ids: tuple[str, ...] | None = None  # the risk band's debtors, resolved by the caller
    due_on_or_before: date | None = None
    due_on_or_after: date | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    playbook: str | None = None
    currency: str | None = None
    open_only: bool = False


SORTABLE = {
    "number": col(Invoice.number),
    "due_date": col(Invoice.due_date),
    "issue_date": col(Invoice.issue_date),
    "amount": col(Invoice.amount),
    "outstanding": col(Invoice.outstanding),
    "stage": col(Invoice.stage),
    "debtor": col(Invoice.debtor_id),
}


def _conditions(f: InvoiceFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if f.stages:
        where.append(col(Invoice.stage).in_(f.stages))
    if f.side_states:
        where.append(col(Invoice.stage).in_(f.side_states))
    if f.debtor_id is not None:
        where.append(col(Invoice.debtor_id) == f.debtor_id)
    if f.segment is not None:
        where.append(col(Debtor.segment) == f.segment)
    if f.debtor_ids is not None:
        where.append(col(Invoice.debtor_id).in_(f.debtor_ids))
    if f.due_on_or_before is not None:
        where.append(col(Invoice.due_date) <= f.due_on_or_before)
    if f.due_on_or_after is not None:
        where.append(col(Invoice.due_date) >= f.due_on_or_after)
    if f.min_amount is not None:
        where.append(col(Invoice.outstanding) >= f.min_amount)
    if f.max_amount is not None:
        where.append(col(Invoice.outstanding) <= f.max_amount)
    if f.playbook is not None:
        where.append(col(Invoice.playbook) == f.playbook)
    if f.currency is not None:
        where.append(col(Invoice.currency) == f.currency)
    if f.open_only:
        where.append(still_open())
    return where


def list_invoices(
    session: Session,
    f: InvoiceFilter,
    *,
    sort: str = "due_date",
    descending: bool = False,
    after: tuple[Any, str] | None = None,
    limit: int | None = None,
) -> list[tuple[Invoice, Debtor]]:
    """Invoices matching `f`, ordered by `sort` then number; keyset pagination after a row."""
    key = SORTABLE[sort]
    query = (
        select(Invoice, Debtor)
        .join(Debtor, col(Debtor.id) == col(Invoice.debtor_id))
        .where(*_conditions(f))
    )
    if after is not None:
        value, number = after
        beyond = key < value if descending else key > value
        tie = col(Invoice.number) < number if descending else col(Invoice.number) > number
        query = query.where(or_(beyond, and_(key == value, tie)))
    order = (key.desc(), col(Invoice.number).desc()) if descending else (key, col(Invoice.number))
    query = query.order_by(*order)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query).all())


# ------------------------------------------------------------------ debtors


@dataclass(frozen=True)
class DebtorActivity:
    last_contact: datetime | None
    next_action: str | None
    next_action_at: datetime | None


def debtor_activity(session: Session, debtor_ids: Sequence[str]) -> dict[str, DebtorActivity]:
    last = dict(
        session.exec(
            select(Invoice.debtor_id, func.max(Interaction.sent_at))
            .join(Interaction, col(Interaction.invoice_number) == col(Invoice.number))
            .where(
                col(Invoice.debtor_id).in_(debtor_ids),
                Interaction.status == InteractionStatus.SENT,
            )
            .group_by(col(Invoice.debtor_id))
        ).all()
    )
    upcoming = session.exec(
        select(Invoice)
        .where(
            col(Invoice.debtor_id).in_(debtor_ids),
            still_open(),
            col(Invoice.next_step_at).is_not(None),
        )
        .order_by(col(Invoice.next_step_at))
    ).all()
    first: dict[str, Invoice] = {}
    for invoice in upcoming:
        first.setdefault(invoice.debtor_id, invoice)
    found = {}
    for debtor_id in debtor_ids:
        seen = last.get(debtor_id)
        nxt = first.get(debtor_id)
        found[debtor_id] = DebtorActivity(
            last_contact=aware(seen) if seen else None,
            next_action=f"{nxt.number}: {nxt.next_step}" if nxt and nxt.next_step else None,
            next_action_at=aware(nxt.next_step_at) if nxt and nxt.next_step_at else None,
        )
    return found


def open_invoices_of(session: Session, debtor_ids: Sequence[str]) -> list[Invoice]:
    return list(
        session.exec(
            select(Invoice).where(
                col(Invoice.debtor_id).in_(debtor_ids),
                still_open(),
                col(Invoice.outstanding) > 0,
            )
        ).all()
    )


def debtors_page(session: Session, after: str | None, limit: int) -> list[Debtor]:
    query = select(Debtor).order_by(col(Debtor.id)).limit(limit)
    if after is not None:
        query = query.where(col(Debtor.id) > after)
    return list(session.exec(query).all())


# ------------------------------------------------------------------ work waiting


def pending_approvals(session: Session) -> list[Approval]:
    return list(
        session.exec(
            select(Approval)
            .where(Approval.status == ApprovalStatus.PENDING)
            .order_by(col(Approval.requested_at))
        ).all()
    )


def open_tasks_due_before(session: Session, moment: datetime) -> list[Task]:
    return list(
        session.exec(
            select(Task)
            .where(Task.status == "open", col(Task.due_at) < moment)
            .order_by(col(Task.due_at))
        ).all()
    )


def open_disputes_due_by(session: Session, moment: datetime) -> list[Dispute]:
    return list(
        session.exec(
            select(Dispute)
            .where(Dispute.status == "open", col(Dispute.deadline) <= moment)
            .order_by(col(Dispute.deadline))
        ).all()
    )


def promises_due_by(session: Session, day: date) -> list[Task]:
    """The call tasks whose promise to pay falls by `day`, on invoices still promised."""
    return list(
        session.exec(
            select(Task)
            .join(Invoice, col(Invoice.number) == col(Task.invoice_number))
            .where(
                Invoice.stage == Stage.PROMISED,
                col(Task.promise_date).is_not(None),
                col(Task.promise_date) <= day,
            )
            .order_by(col(Task.promise_date))
        ).all()
    )


def open_tasks(session: Session) -> list[tuple[Task, Invoice, Debtor]]:
    """Open tasks, the most urgent first, with their invoice and debtor (for contacts)."""
    return list(
        session.exec(
            select(Task, Invoice, Debtor)
            .join(Invoice, col(Invoice.number) == col(Task.invoice_number))
            .join(Debtor, col(Debtor.id) == col(Invoice.debtor_id))
            .where(Task.status == "open")
            .order_by(col(Task.due_at))
        ).all()
    )
