"""What people do to an invoice while it is being collected: disputes, payment plans,
promises to pay, holds, cancellation and write-off, and the delivery events of its messages.

Each model is the input of one workflow Update (or Signal) and carries the actor, so every
decision is recorded with who took it.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from domain.money import Money
from domain.playbook import Playbook

Actor = str


class DisputeOpen(BaseModel):
    dispute_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=2000)
    # None: the whole outstanding amount is disputed.
    amount: Money | None = None
    opened_by: Actor = Field(min_length=1)


class DisputeOutcome(StrEnum):
    UPHELD = "upheld"
    REJECTED = "rejected"


class DisputeResolution(BaseModel):
    dispute_id: str
    outcome: DisputeOutcome
    # Upheld: the credit note's amount; None cancels the invoice (credit note for all of it).
    credit: Money | None = None
    credit_note_reference: str | None = None
    comment: str = ""
    resolved_by: Actor = Field(min_length=1)


class Installment(BaseModel):
    due_date: date
    amount: Money


class PlanProposal(BaseModel):
    plan_id: str = Field(min_length=1, max_length=64)
    installments: list[Installment] = Field(min_length=1, max_length=60)
    proposed_by: Actor = Field(min_length=1)
    comment: str = ""

    @property
    def total(self) -> Decimal:
        return sum((i.amount.amount for i in self.installments), start=Decimal(0))

    @model_validator(mode="after")
    def _ordered(self) -> PlanProposal:
        check_installments(self.installments)
        return self


def check_installments(installments: list[Installment]) -> None:
    """A schedule's own sense (a plan's, a mediation agreement's): raises ValueError."""
    dates = [i.due_date for i in installments]
    if dates != sorted(dates) or len(set(dates)) != len(dates):
        raise ValueError("installment dates must be distinct and in order")
    currencies = {i.amount.currency for i in installments}
    if len(currencies) != 1:
        raise ValueError("installments must all be in the invoice's currency")
    if any(not i.amount.is_positive for i in installments):
        raise ValueError("every installment must be a positive amount")


class PlanDecision(BaseModel):
    plan_id: str
    approve: bool
    decided_by: Actor = Field(min_length=1)
    comment: str = ""


class PromiseToPay(BaseModel):
    promise_id: str = Field(min_length=1, max_length=64)
    until: date
    recorded_by: Actor = Field(min_length=1)
    note: str = ""


class HoldRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)
    until: date | None = None
    by: Actor = Field(min_length=1)
    # The client's Idempotency-Key: the same pause asked twice is one pause.
    key: str | None = Field(default=None, max_length=200)


class ResumeRequest(BaseModel):
    by: Actor = Field(min_length=1)
    comment: str = ""


class ClosureKind(StrEnum):
    CANCEL = "cancel"
    WRITE_OFF = "write_off"


class Closure(BaseModel):
    kind: ClosureKind
    reason: str = Field(min_length=1, max_length=2000)
    by: Actor = Field(min_length=1)
    credit_note_reference: str | None = None


class PlaybookMigration(BaseModel):
    """An operator moves a running invoice to another playbook (or a newer version of it)."""

    playbook: Playbook
    by: Actor = Field(min_length=1)
    reason: str = ""


DeliveryKind = Literal[
    "processed",
    "delivered",
    "open",
    "click",
    "deferred",
    "bounce",
    "dropped",
    "spamreport",
    "unsubscribe",
]
# Events that mean the address cannot be used: the playbook's fallback channel takes over.
# Every channel reports with these two (`DeliveryEvent.channel` says which, `reason` says why):
# SMS: a hard failure is a "bounce", a STOP reply a "dropped"; letter: returned or not claimed
# at the post office is a "bounce"; phone: a wrong number, or not reached as many times as the
# playbook allows, is a "bounce".
UNDELIVERABLE: frozenset[str] = frozenset({"bounce", "dropped"})


class DeliveryEvent(BaseModel):
    event_id: str
    kind: DeliveryKind
    step_id: str
    channel: str = "email"
    occurred_at: datetime
    reason: str | None = None


def task_id(invoice_number: str, kind: Literal["call", "dispute", "plan"], ref: str) -> str:
    """The one builder of collector task ids: `<invoice>:dispute:<id>`, `<invoice>:plan:<id>`,
    `<invoice>:<step>:call` (the API and the tests address tasks by these)."""
    if kind == "call":
        return f"{invoice_number}:{ref}:call"
    return f"{invoice_number}:{kind}:{ref}"
