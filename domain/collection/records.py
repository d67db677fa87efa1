"""What the workflow records of an invoice's life: timeline events and the changes they carry
(payments, approvals, disputes, plans, tasks). Written by activities into the store.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel

from domain.holds import Installment
from domain.law import LatePaymentCosts
from domain.lifecycle import ApprovalStatus, PaymentResult
from domain.money import Money


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
    CONTACT_CORRECTED = "contact_corrected"
    MESSAGE_DEFERRED = "message_deferred"
    MESSAGE_UNKNOWN = "message_unknown"
    LATE_PAYMENT_COSTS = "late_payment_costs"
    # A text, a letter or a call failed to reach the debtor: the step went out again on its
    # fallback channels (an email's is FALLBACK, as it always was).
    CHANNEL_FALLBACK = "channel_fallback"
    # A channel can no longer reach the debtor (told once, when it is first known).
    CHANNEL_INVALID = "channel_invalid"
    # A registered letter's acknowledgment of receipt.
    LETTER_RECEIVED = "letter_received"
    # A limitation warning's task closed (the date moved, or nothing is owed any more).
    LIMITATION_WARNING_CLOSED = "limitation_warning_closed"
    # A contact correction made a channel usable again: the task asking for it is done.
    CONTACT_TASK_CLOSED = "contact_task_closed"
    MEDIATION_ENDED = "mediation_ended"
    HANDED_OFF = "handed_off"
    LEGAL_UPDATED = "legal_updated"


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


class EventRecord(BaseModel):
    """One timeline event, keyed `(invoice, key)` in the store: a retried write changes nothing."""

    key: str
    kind: EventKind
    at: datetime
    summary: str
    detail: dict[str, str] = {}
    payment: PaymentChange | None = None
    approval: ApprovalChange | None = None
    dispute: DisputeChange | None = None
    plan: PlanChange | None = None
    task: TaskChange | None = None
    # Set when an operator moved the invoice to another playbook.
    playbook: tuple[str, int] | None = None
    # The late-payment costs of an invoice paid late, segments included (the read model keeps
    # them for `GET /v1/invoices/{n}`).
    late_costs: LatePaymentCosts | None = None
