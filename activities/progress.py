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

from domain.lifecycle import ApprovalStatus, InvoiceStatus, PaymentResult
from store.engine import transaction
from store.tables import Approval, Event, Invoice, Payment, utcnow


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
            _update_read_model(session, record.status)
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
