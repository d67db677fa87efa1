"""The invoice's timeline and read model in the store, as the workflow records them.

Every write is keyed: an event by `(invoice, key)` under a UNIQUE constraint, the read model by
its revision. A retried activity, or two writers racing, change nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from functools import cache

from sqlalchemy import Update, bindparam, update
from sqlalchemy import select as select_columns
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from contracts.backoffice import BackofficeEvent
from domain.calls import call_due_at
from domain.collection.records import (
    ApprovalChange,
    DisputeChange,
    EventKind,
    EventRecord,
    PaymentChange,
    PlanChange,
    TaskChange,
)
from domain.lifecycle import TERMINAL_STAGES, ApprovalStatus, InvoiceStatus, PaymentResult
from store import notices as outbox_store
from store.engine import transaction
from store.tables import (
    Approval,
    Debtor,
    Dispute,
    Event,
    Invoice,
    Payment,
    PaymentPlan,
    Task,
    utcnow,
)

# The statements every transition runs, built once: SQLAlchemy spends more building and keying
# a statement than SQLite spends running it (bench/deliver.py measures the difference).
_EVENTS_WRITTEN = select(Event.key).where(
    Event.invoice_number == bindparam("number"),
    col(Event.key).in_(bindparam("keys", expanding=True)),
)
_INVOICE_KNOWN = select_columns(col(Invoice.number)).where(
    col(Invoice.number) == bindparam("number")
)


def write_events(session: Session, number: str, records: Sequence[EventRecord], stage: str) -> int:
    """Write the events not yet written (and the changes they carry); returns how many."""
    if not records:
        return 0
    known = set(
        session.exec(_EVENTS_WRITTEN, params={"number": number, "keys": [r.key for r in records]})
    )
    written = 0
    for record in records:
        if record.key in known:
            continue
        known.add(record.key)
        written += 1
        session.add(
            Event(
                invoice_number=number,
                key=record.key,
                kind=record.kind,
                at=record.at,
                stage=stage,
                summary=record.summary,
                detail=dict(record.detail),
            )
        )
        if record.payment is not None:
            _add_payment(session, number, record.payment, record.at)
        if record.approval is not None:
            _apply_approval(session, number, record.kind, record.approval)
        if record.dispute is not None:
            _apply_dispute(session, number, record.dispute)
        if record.plan is not None:
            _apply_plan(session, number, record.plan)
        if record.task is not None:
            _apply_task(session, number, record.task)
        if record.playbook is not None:
            invoice = session.get(Invoice, number)
            if invoice is not None:
                invoice.playbook, invoice.playbook_version = record.playbook
                session.add(invoice)
        if record.late_costs is not None:
            invoice = session.get(Invoice, number)
            if invoice is not None:
                invoice.late_payment_costs = record.late_costs.model_dump(mode="json")
                session.add(invoice)
    return written


def record_snapshot(
    session: Session,
    number: str,
    records: Sequence[EventRecord],
    status: InvoiceStatus,
    notices: Sequence[BackofficeEvent] = (),
) -> None:
    """A transition's events, then the status after it (events take the stage it shows), and
    the back-office notices it decided, kept in the outbox with them."""
    if session.execute(_INVOICE_KNOWN, {"number": number}).first() is None:
        raise LookupError(f"invoice {number} is not in the store")
    apply_status(session, status)
    session.flush()
    write_events(session, number, records, status.stage)
    outbox_store.enqueue(session, notices)


def _add_payment(session: Session, number: str, change: PaymentChange, at: datetime) -> None:
    result = change.result
    known = session.exec(
        select(Payment.id).where(
            Payment.invoice_number == number, Payment.reference == result.reference
        )
    ).first()
    if known is not None:
        return  # written already: the API acknowledged it, or the workflow recorded it
    session.add(
        Payment(
            invoice_number=number,
            reference=result.reference,
            amount=result.amount.amount,
            currency=result.amount.currency,
            outstanding_after=result.outstanding.amount,
            overpayment=result.overpayment.amount if result.overpayment else None,
            received_on=change.received_on,
            recorded_at=at,
        )
    )


def _apply_approval(session: Session, number: str, kind: EventKind, change: ApprovalChange) -> None:
    approval = session.get(Approval, change.approval_id)
    if approval is None:
        approval = Approval(
            id=change.approval_id,
            invoice_number=number,
            step_id=change.step_id,
            target_stage=change.target_stage,
            requested_at=change.at,
        )
    if kind == EventKind.APPROVAL_REMINDER:
        approval.reminders_sent += 1
    elif change.status != ApprovalStatus.PENDING:
        approval.status = change.status
        approval.decided_at = change.at
        approval.decided_by = change.decided_by
        approval.comment = change.comment
    session.add(approval)


def _apply_dispute(session: Session, number: str, change: DisputeChange) -> None:
    dispute = session.get(Dispute, change.dispute_id)
    if dispute is None:
        dispute = Dispute(
            id=change.dispute_id,
            invoice_number=number,
            reason=change.reason or "",
            amount=change.amount.amount if change.amount else None,
            currency=change.amount.currency if change.amount else None,
            opened_by=change.by,
            opened_at=change.at,
            deadline=change.deadline or change.at,
        )
    if change.status != "open":
        dispute.status = change.status
        dispute.resolved_by = change.by
        dispute.resolved_at = change.at
        dispute.resolution = change.resolution
        dispute.credit = change.credit.amount if change.credit else None
    elif change.deadline is not None:
        dispute.deadline = change.deadline
    session.add(dispute)


def _apply_plan(session: Session, number: str, change: PlanChange) -> None:
    plan = session.get(PaymentPlan, change.plan_id)
    if plan is None:
        plan = PaymentPlan(
            id=change.plan_id, invoice_number=number, proposed_by=change.by, proposed_at=change.at
        )
    plan.status = change.status
    if change.installments is not None:
        plan.installments = [i.model_dump(mode="json") for i in change.installments]
    if change.needs_approval is not None:
        plan.needs_approval = change.needs_approval
    if change.status in ("active", "rejected") and plan.proposed_at != change.at:
        plan.decided_by = change.by
        plan.decided_at = change.at
    if change.comment:
        plan.comment = change.comment
    session.add(plan)


def _in_business_hours(session: Session, number: str, due_at: datetime) -> datetime:
    """A call is due when someone answers: inside the debtor's business hours, their time zone,
    a business day of their country (domain/calls.py)."""
    invoice = session.get(Invoice, number)
    debtor = session.get(Debtor, invoice.debtor_id) if invoice else None
    if debtor is None:
        return due_at
    return call_due_at(
        due_at, 0, country=debtor.country, timezone=debtor.timezone, subdivision=debtor.subdivision
    )


def _apply_task(session: Session, number: str, change: TaskChange) -> None:
    task = session.get(Task, change.task_id)
    if task is None:
        due_at = change.due_at or change.at
        if change.kind == "call":
            due_at = _in_business_hours(session, number, due_at)
        task = Task(
            id=change.task_id,
            invoice_number=number,
            kind=change.kind,
            title=change.title,
            due_at=due_at,
            created_at=change.at,
        )
    elif task.status != "open":
        return  # a collector closed it already: their outcome stands
    task.status = change.status
    if change.status != "open":
        task.closed_at = change.at
        task.closed_by = "relance"
    session.add(task)


def apply_status(session: Session, status: InvoiceStatus) -> bool:
    """Make the read model say `status`, unless it already says something newer.

    One conditional UPDATE (`WHERE revision < :new`): two writers racing (an Update's answer
    written by the API, the workflow's own record) can never let the older snapshot win, on
    SQLite and PostgreSQL alike. Returns whether this snapshot was the newest.
    """
    step = status.next_step
    return _write_if_newer(
        session,
        status.number,
        status.revision,
        stage=status.stage.value,
        outstanding=status.outstanding.amount,
        overpayment=status.overpayment.amount if status.overpayment else None,
        next_step=step.step_id if step else None,
        next_step_at=step.at if step else None,
        next_message_key=step.message_key if step else None,
        limitation_date=status.limitation_date,
    )


def _write_if_newer(session: Session, number: str, revision: int, **values: object) -> bool:
    """The one conditional write of the read model: only a newer revision lands."""
    params = {f"new_{name}": value for name, value in values.items()}
    params.update(the_number=number, new_revision=revision, new_updated_at=utcnow())
    result = session.execute(_if_newer(tuple(sorted(values))), params)
    return bool(getattr(result, "rowcount", 0))


@cache
def _if_newer(columns: tuple[str, ...]) -> Update:
    """`_write_if_newer`'s statement for these columns, built once per set of columns (every
    transition runs it). An UPDATE's bind names may not be its columns' names: hence "new_"."""
    return (
        update(Invoice)
        .where(
            col(Invoice.number) == bindparam("the_number"),
            col(Invoice.revision) < bindparam("new_revision"),
        )
        .values(
            revision=bindparam("new_revision"),
            updated_at=bindparam("new_updated_at"),
            **{name: bindparam(f"new_{name}") for name in columns},
        )
        .execution_options(synchronize_session=False)
    )


def acknowledge(engine: Engine, status: InvoiceStatus) -> None:
    """The API writes an Update's answer to the read model before it answers the client.

    So once a payment, a hold or a closure is acknowledged, a message still in flight finds it
    when it re-checks (activities/delivery.py), and no debtor hears of a paid invoice again.
    """
    with transaction(engine) as session:
        apply_status(session, status)


def acknowledge_payment(
    engine: Engine, number: str, result: PaymentResult, received_on: date | None
) -> None:
    """`acknowledge` for a payment's answer: the payment row, its stage, balance and revision."""
    if result.revision is None:
        return  # a replayed answer: the first one was written
    revision = result.revision
    ended = result.stage in TERMINAL_STAGES
    values: dict[str, object] = {
        "stage": result.stage.value,
        "outstanding": result.outstanding.amount,
        "overpayment": result.overpayment.amount if result.overpayment else None,
    }
    if result.limitation_date is not None or ended:
        # (An answer of the first workflow shape carries no date: it leaves the known one.)
        values["limitation_date"] = result.limitation_date
    if ended:
        values.update(next_step=None, next_step_at=None, next_message_key=None)
    for attempt in (1, 2):
        try:
            with transaction(engine) as session:
                if attempt == 1:  # the second time, the workflow's record wrote it
                    change = PaymentChange(result=result, received_on=received_on)
                    _add_payment(session, number, change, utcnow())
                _write_if_newer(session, number, revision, **values)
            return
        except IntegrityError:
            # The workflow's own record wrote the payment row first: write the rest again.
            if attempt == 2:
                raise
