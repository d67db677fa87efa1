"""Store writes that record what the workflow did: timeline, read model, payments, approvals.

One activity, one transaction: the event row is keyed by (invoice, key) under a UNIQUE
constraint, so a retry that finds its event already written changes nothing.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio import activity

from domain.calls import call_due_at
from domain.holds import Installment
from domain.lifecycle import ApprovalStatus, InvoiceStatus, PaymentResult
from domain.money import Money
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


class EventKind(StrEnum):
    OPENED = "opened"
    STEP_DONE = "step_done"
    STEP_SKIPPED = "step_skipped"
    MESSAGE_FAILED = "message_failed"
    STAGE_CHANGED = "stage_changed"
    PAYMENT = "payment"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_REMINDER = "approval_reminder"
    APPROVAL_DECIDED = "approval_decided"
    APPROVAL_CANCELLED = "approval_cancelled"
    TASK_OPENED = "task_opened"
    FALLBACK = "fallback"
    DELIVERY = "delivery"
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_REMINDER = "dispute_reminder"
    DISPUTE_RESOLVED = "dispute_resolved"
    PLAN_PROPOSED = "plan_proposed"
    PLAN_DECIDED = "plan_decided"
    PLAN_BROKEN = "plan_broken"
    PLAN_ENDED = "plan_ended"
    PROMISE_RECORDED = "promise_recorded"
    PROMISE_BROKEN = "promise_broken"
    HOLD_STARTED = "hold_started"
    HOLD_ENDED = "hold_ended"
    CLOSURE = "closure"
    PLAYBOOK_MIGRATED = "playbook_migrated"
    CLOSED = "closed"


class ApprovalChange(BaseModel):
    approval_id: str
    step_id: str
    target_stage: str
    status: ApprovalStatus
    at: datetime
    decided_by: str | None = None
    comment: str | None = None


class PaymentChange(BaseModel):
    result: PaymentResult
    received_on: date | None = None


class DisputeChange(BaseModel):
    dispute_id: str
    status: str  # open, upheld, rejected
    at: datetime
    by: str
    reason: str | None = None
    amount: Money | None = None
    deadline: datetime | None = None
    resolution: str | None = None
    credit: Money | None = None


class PlanChange(BaseModel):
    plan_id: str
    status: str  # proposed, active, rejected, broken, completed
    at: datetime
    by: str
    installments: list[Installment] | None = None
    needs_approval: bool | None = None
    comment: str | None = None


class TaskChange(BaseModel):
    task_id: str
    kind: str  # call, dispute, plan_approval
    status: str  # open, done, cancelled
    at: datetime
    title: str = ""
    due_at: datetime | None = None


class ProgressRecord(BaseModel):
    invoice_number: str
    key: str
    kind: EventKind
    at: datetime
    summary: str
    detail: dict[str, str] = {}
    status: InvoiceStatus
    payment: PaymentChange | None = None
    approval: ApprovalChange | None = None
    dispute: DisputeChange | None = None
    plan: PlanChange | None = None
    task: TaskChange | None = None
    # Set when an operator moved the invoice to another playbook.
    playbook: tuple[str, int] | None = None


class ProgressActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="record_progress")
    def record_progress(self, record: ProgressRecord) -> bool:
        """Returns False when a retry finds the record already written."""
        with transaction(self._engine) as session:
            already = session.exec(
                select(Event.id).where(
                    Event.invoice_number == record.invoice_number, Event.key == record.key
                )
            ).first()
            if already is not None:
                return False
            session.add(
                Event(
                    invoice_number=record.invoice_number,
                    key=record.key,
                    kind=record.kind,
                    at=record.at,
                    stage=record.status.stage,
                    summary=record.summary,
                    detail=dict(record.detail),
                )
            )
            if record.payment is not None:
                _add_payment(session, record.invoice_number, record.payment, record.at)
            if record.approval is not None:
                _apply_approval(session, record.invoice_number, record.kind, record.approval)
            if record.dispute is not None:
                _apply_dispute(session, record.invoice_number, record.dispute)
            if record.plan is not None:
                _apply_plan(session, record.invoice_number, record.plan)
            if record.task is not None:
                _apply_task(session, record.invoice_number, record.task)
            _update_read_model(session, record.status)
            if record.playbook is not None:
                invoice = session.get(Invoice, record.invoice_number)
                if invoice is not None:
                    invoice.playbook, invoice.playbook_version = record.playbook
                    session.add(invoice)
        return True


def _add_payment(session: Session, number: str, change: PaymentChange, at: datetime) -> None:
    result = change.result
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


def _update_read_model(session: Session, status: InvoiceStatus) -> None:
    invoice = session.get(Invoice, status.number)
    if invoice is None:
        raise LookupError(f"invoice {status.number} is not in the store")
    if invoice.revision > status.revision:
        return
    invoice.revision = status.revision
    invoice.stage = status.stage
    invoice.outstanding = status.outstanding.amount
    invoice.overpayment = status.overpayment.amount if status.overpayment else None
    invoice.next_step = status.next_step.step_id if status.next_step else None
    invoice.next_step_at = status.next_step.at if status.next_step else None
    invoice.updated_at = utcnow()
    session.add(invoice)
