"""What the collection endpoints take in and give back: disputes, payment plans, holds,
closures and the collectors' tasks.

Amounts are decimal strings, as everywhere in the API; their currency is the invoice's unless
the request names one. What comes in is never a table class, and never the workflow's own
input model: the service adds the ids and the actor.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationInfo, field_validator

from api.schemas import AmountString, IsoDate, MoneyPublic, MultiLine, NextStepPublic, SingleLine
from domain import calls
from domain.holds import DisputeOutcome
from domain.lifecycle import InvoiceStatus
from domain.money import Currency, check_amount

Reason = Annotated[MultiLine, Field(min_length=1, max_length=2000)]
Comment = Annotated[MultiLine, Field(max_length=2000)]
CreditNoteReference = Annotated[
    SingleLine, Field(min_length=1, max_length=128, examples=["AV-0042"])
]


def check_scale(amount: Decimal, currency: str | None) -> Decimal:
    """No silent rounding of money: 10.001 EUR is refused, not turned into 10.00."""
    return check_amount(amount, currency)


# ------------------------------------------------------------------ the invoice after an action


class InvoiceState(BaseModel):
    """The invoice as the workflow answered the action: its stage, balance and next step."""

    number: str
    stage: str
    outstanding: MoneyPublic
    next_step: NextStepPublic | None = None

    @classmethod
    def of(cls, status: InvoiceStatus) -> InvoiceState:
        return cls(
            number=status.number,
            stage=status.stage,
            outstanding=MoneyPublic.from_money(status.outstanding),
            next_step=(
                NextStepPublic.model_validate(status.next_step.model_dump())
                if status.next_step
                else None
            ),
        )


class ActionDone(BaseModel):
    """Who acted, and the invoice's state afterwards."""

    by: str = Field(description="the API key's label (or prefix): who the history names")
    # False when the workflow accepted the action but is still recording it: the state below
    # is then the last one the store holds.
    applied: bool
    status: InvoiceState


# ------------------------------------------------------------------ disputes


class DisputeCreate(BaseModel):
    """The debtor contests the invoice, or part of it: the escalation freezes at once."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason
    # Before `amount`: the amount's decimals are checked against it.
    currency: Currency | None = Field(
        default=None, examples=["EUR"], description="the invoice's currency when left out"
    )
    amount: AmountString | None = Field(
        default=None,
        validate_default=True,
        description="the disputed amount; left out, the whole outstanding amount is disputed",
    )

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        currency = info.data.get("currency")
        if value is None:
            if currency is not None:
                raise ValueError("a currency goes with an amount: give both, or neither")
            return None
        return check_scale(value, currency)


class DisputeResolutionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: DisputeOutcome
    credit: AmountString | None = Field(
        default=None,
        description="upheld only: the credit note's amount, in the invoice's currency; left "
        "out, the credit note covers everything outstanding and the invoice is cancelled",
    )
    credit_note_reference: CreditNoteReference | None = None
    comment: Comment = ""

    @field_validator("credit", "credit_note_reference")
    @classmethod
    def _upheld_only(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("outcome") == DisputeOutcome.REJECTED:
            raise ValueError("only an upheld dispute has a credit note")
        return value


class DisputeOpened(ActionDone):
    dispute_id: str


class DisputeResolved(ActionDone):
    dispute_id: str
    outcome: DisputeOutcome


class DisputePublic(BaseModel):
    id: str
    invoice_number: str
    status: str = Field(description="open, upheld, rejected, or closed with the invoice")
    reason: str
    amount: MoneyPublic | None = None
    opened_by: str
    opened_at: datetime
    deadline: datetime
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None
    credit: MoneyPublic | None = None


# ------------------------------------------------------------------ payment plans


class InstallmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    due_date: IsoDate
    amount: AmountString


class PlanCreate(BaseModel):
    """An échéancier: installments in the invoice's currency, adding up to what is outstanding."""

    model_config = ConfigDict(extra="forbid")

    installments: list[InstallmentIn] = Field(min_length=1, max_length=60)
    comment: Comment = ""

    @field_validator("installments")
    @classmethod
    def _ordered(cls, value: list[InstallmentIn]) -> list[InstallmentIn]:
        dates = [i.due_date for i in value]
        if dates != sorted(dates) or len(set(dates)) != len(dates):
            raise ValueError("installment due dates must be distinct and in order")
        return value


class PlanProposed(ActionDone):
    plan_id: str
    needs_approval: bool = Field(
        description="true: a second person (another API key) must approve it before it runs"
    )
    plan_status: str = Field(description="proposed (awaiting approval) or active")


class PlanDecisionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: StrictBool
    comment: Comment = ""


class PlanDecided(ActionDone):
    plan_id: str
    approved: bool


class InstallmentPublic(BaseModel):
    due_date: date
    amount: MoneyPublic


class PlanPublic(BaseModel):
    id: str
    invoice_number: str
    status: str = Field(description="proposed, active, rejected, broken, completed, cancelled")
    installments: list[InstallmentPublic]
    needs_approval: bool
    proposed_by: str
    proposed_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str | None = None


# ------------------------------------------------------------------ holds and closures


class PauseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason
    until: IsoDate | None = Field(
        default=None, description="the pause ends by itself that day; left out, by a resume"
    )


class ResumeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Comment = ""


class CancelCreate(BaseModel):
    """The back office cancelled the invoice with a credit note: collection ends."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason
    credit_note_reference: CreditNoteReference


# ------------------------------------------------------------------ tasks


class TaskStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class TaskKind(StrEnum):
    CALL = "call"
    DISPUTE = "dispute"
    PLAN_APPROVAL = "plan_approval"
    # A debtor asked for a payment plan on the phone: a collector drafts the proposal.
    PLAN_PROPOSAL = "plan_proposal"
    # The claim becomes time-barred in six months (L110-4): act, or get the debt acknowledged
    # (a promise recorded as this task's outcome is one).
    LIMITATION = "limitation"
    # Nothing of a step reached the debtor (every channel and fallback known not to): correct
    # the contact (`PUT /v1/debtors/{id}/contact`).
    CONTACT = "contact"


# reached, no_answer (not reached), wrong_number, promise, dispute, plan_requested.
CallOutcome = calls.CallOutcome


class TaskPublic(BaseModel):
    id: str
    invoice_number: str
    kind: str
    status: str
    title: str
    due_at: datetime
    created_at: datetime
    outcome: str | None = None
    notes: str | None = None
    promise_date: date | None = None
    closed_by: str | None = None
    closed_at: datetime | None = None


class TaskOutcomeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: CallOutcome
    notes: MultiLine = Field(default="", max_length=4000)
    # validate_default: a promise without a date is refused on this field, not silently.
    promise_date: IsoDate | None = Field(
        default=None,
        validate_default=True,
        description="required with the outcome promise: the day the debtor promised to pay by",
    )

    @field_validator("promise_date")
    @classmethod
    def _promise_needs_date(cls, value: date | None, info: ValidationInfo) -> date | None:
        outcome = info.data.get("outcome")
        if outcome == CallOutcome.PROMISE and value is None:
            raise ValueError("the outcome promise needs the promised date")
        if outcome is not None and outcome != CallOutcome.PROMISE and value is not None:
            raise ValueError("a promised date goes with the outcome promise only")
        return value


class TaskClosed(BaseModel):
    task: TaskPublic
    status: InvoiceState | None = Field(
        default=None, description="with a promise: the invoice's state once the workflow took it"
    )


class PlaybookChange(BaseModel):
    """Move a running invoice to another playbook: an explicit operator decision."""

    model_config = ConfigDict(extra="forbid")

    playbook: SingleLine = Field(min_length=1, max_length=64, description="a playbook's name")
    reason: Comment = ""
