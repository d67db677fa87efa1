"""The state the invoice workflow carried before the collection machine (v1).

Kept so that those runs replay, and so that their continue-as-new input can be read and moved
onto the machine (`workflows/invoice.py`). Never change these models.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel

from contracts.calendar import BusinessTime
from domain.lifecycle import PaymentResult, PendingApproval, Stage
from domain.money import Money


class Hold(BaseModel):
    """A side state that freezes the escalation clock until it ends."""

    stage: Stage
    resume_stage: Stage
    since: datetime
    # When the hold lifts by itself (end of a pause, promised day plus grace); None: by hand.
    until: datetime | None = None
    ref: str = ""
    reason: str = ""


class OpenDispute(BaseModel):
    dispute_id: str
    deadline: datetime
    reminders: int = 0


class InstallmentState(BaseModel):
    due_date: date
    amount: Money
    paid: Money
    reminded: bool = False

    @property
    def settled(self) -> bool:
        return self.paid.amount >= self.amount.amount


class PlanState(BaseModel):
    plan_id: str
    status: str  # proposed (awaiting a second person's approval) or active
    proposed_by: str
    installments: list[InstallmentState]


class CarriedState(BaseModel):
    """Everything the workflow must remember across continue-as-new."""

    anchor: datetime
    stage: Stage
    outstanding: Money
    overpayment: Money | None = None
    step_index: int = 0
    last_action_at: datetime | None = None
    revision: int = 0
    payments: dict[str, PaymentResult] = {}
    approval: PendingApproval | None = None
    approval_rounds: dict[str, int] = {}
    retry_at: dict[str, datetime] = {}
    rejection_note: str | None = None
    # Collection work: at most one hold at a time, and what it left behind.
    hold: Hold | None = None
    dispute: OpenDispute | None = None
    plan: PlanState | None = None
    # Time spent frozen shifts every later step; the escalation resumes no earlier than this.
    shift_seconds: float = 0
    not_before: datetime | None = None
    closed_refs: dict[str, str] = {}
    # Delivery: once the debtor's email bounced, steps use their fallback channels.
    email_invalid: bool = False
    seen_events: list[str] = []
    fallback_due: list[str] = []
    # Business-day send times per step, as the calendar answered them (recorded in history).
    calendar: dict[str, BusinessTime] = {}
    notified_stage: Stage | None = None
