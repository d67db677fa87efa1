"""The invoice lifecycle: stages, and the facts and messages a collection workflow works with.

These are plain pydantic models (never SQLModel tables): they travel through Temporal, so they
must be deterministic, small and free of personal data. Contact details stay in the store.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from domain.money import Money


class Stage(StrEnum):
    UPCOMING = "upcoming"
    OVERDUE = "overdue"
    FORMAL_NOTICE = "formal_notice"
    MEDIATION = "mediation"
    LEGAL = "legal"
    HANDED_OFF = "handed_off"
    PAID = "paid"
    CANCELLED = "cancelled"
    WRITTEN_OFF = "written_off"
    # Side states: the escalation clock is frozen until they end.
    DISPUTED = "disputed"
    PAYMENT_PLAN = "payment_plan"
    PROMISED = "promised"
    PAUSED = "paused"


TERMINAL_STAGES = frozenset({Stage.HANDED_OFF, Stage.PAID, Stage.CANCELLED, Stage.WRITTEN_OFF})
HOLD_STAGES = frozenset({Stage.DISPUTED, Stage.PAYMENT_PLAN, Stage.PROMISED, Stage.PAUSED})

# Escalation order: a playbook may only move forward along it.
ESCALATION_ORDER = (
    Stage.UPCOMING,
    Stage.OVERDUE,
    Stage.FORMAL_NOTICE,
    Stage.MEDIATION,
    Stage.LEGAL,
)


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class InvoiceFacts(BaseModel):
    """What the workflow knows of an invoice: ids, amounts and dates, no personal data."""

    model_config = ConfigDict(frozen=True)

    number: str
    debtor_id: str
    amount: Money
    issue_date: date
    due_date: date
    language: str = "fr"
    country: str = "FR"
    segment: str | None = None
    # Where the debtor is, for business days and the send window (None: the country's zone).
    timezone: str | None = None
    subdivision: str | None = None
    # The invoice's own contractual late-payment rate ("3x_legal", "12.50"; see
    # domain.law.InterestClause); None: the creditor's terms of sale, else the legal default.
    interest_clause: str | None = None


class PaymentInput(BaseModel):
    reference: str = Field(min_length=1, max_length=128)
    amount: Money
    received_on: date | None = None


class PaymentResult(BaseModel):
    reference: str
    amount: Money
    outstanding: Money
    stage: Stage
    overpayment: Money | None = None
    # The invoice's revision once the payment was applied: the API writes the answer to the
    # read model under it before acknowledging (None on a replayed answer).
    revision: int | None = None
    # The claim's limitation date once this payment acknowledged the debt (Civil code 2240):
    # written to the read model with the answer, as the snapshot of the same revision would.
    limitation_date: date | None = None


class EscalationDecision(BaseModel):
    approval_id: str
    approve: bool
    comment: str = ""
    decided_by: str = Field(min_length=1)


class NextStep(BaseModel):
    step_id: str
    stage: Stage
    at: datetime
    needs_approval: bool = False
    note: str | None = None
    # The key the step's email to the debtor will be sent under: a debtor's message of the day
    # lists this invoice when its step falls due the same day (see activities/delivery.py).
    message_key: str | None = None


class PendingApproval(BaseModel):
    approval_id: str
    step_id: str
    target_stage: Stage
    requested_at: datetime


class InvoiceStatus(BaseModel):
    number: str
    stage: Stage
    outstanding: Money
    next_step: NextStep | None = None
    pending_approval: PendingApproval | None = None
    overpayment: Money | None = None
    # Increases with every recorded change, so the read model ignores stale snapshots.
    revision: int = 0
    # The last day an action for payment can be brought (L110-4: 5 years from the due date,
    # started afresh by the latest acknowledgment of the debt); None once nothing is owed.
    limitation_date: date | None = None


class DecisionResult(BaseModel):
    approval_id: str
    approved: bool
    status: InvoiceStatus
