"""What can happen to an invoice from outside: people's decisions, payments, provider events,
and the answers to the machine's own questions (the calendar, a send's outcome).

The people's commands are the models of domain/holds.py and domain/lifecycle.py (each is the
input of one workflow Update); this module adds the rest and names the union the machine takes.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.collection.state import CalendarAnswer, Message
from domain.holds import (
    Closure,
    DeliveryEvent,
    DisputeOpen,
    DisputeResolution,
    HoldRequest,
    PlanDecision,
    PlanProposal,
    PlaybookMigration,
    PromiseToPay,
    ResumeRequest,
)
from domain.law import LatePaymentCosts
from domain.lifecycle import EscalationDecision, PaymentInput
from domain.playbook import Channel


class ContactCorrected(BaseModel):
    """The debtor's contact details were corrected: the channels named are used again after a
    bounce, a STOP, a returned letter or calls never reached (email only, in the first shape)."""

    event_id: str = Field(min_length=1, max_length=200)
    by: str = Field(min_length=1)
    reason: str = ""
    channels: tuple[Channel, ...] = (Channel.EMAIL,)


class LetterReceived(BaseModel):
    """A registered letter's acknowledgment of receipt came back, signed on `received_on`.

    `deadline` is the formal notice's deadline when the playbook runs it from receipt, computed
    where the business calendar is known (domain/notice.py); None otherwise.
    """

    event_id: str = Field(min_length=1, max_length=200)
    step_id: str = Field(min_length=1, max_length=100)
    received_on: date
    deadline: date | None = None


class CalendarAnswered(BaseModel):
    answer: CalendarAnswer


class SendResult(StrEnum):
    SENT = "sent"
    # Listed in the debtor's message of the day that another invoice sent.
    INCLUDED = "included"
    # The debtor already had a message that day on that channel: the next day, then.
    DEFERRED = "deferred"
    # The invoice no longer wanted it when it was about to go out (paid, held, closed).
    NOT_WANTED = "not_wanted"
    FAILED = "failed"
    # An earlier attempt may have reached the provider: a person decides.
    UNKNOWN = "unknown"
    # The channel cannot reach the debtor at all (no number or address, a STOP, a number the
    # provider refuses for good): the step takes its fallback channels.
    UNDELIVERABLE = "undeliverable"


class SendSettled(BaseModel):
    message: Message
    result: SendResult
    reason: str = ""
    # For a deferred message: the day it may go out.
    next_day: date | None = None


class LateCostsComputed(BaseModel):
    """The law's answer for an invoice settled after its due date (None: nothing was late;
    `error`: no rate is known, and the amount is never guessed)."""

    costs: LatePaymentCosts | None = None
    error: str = ""


Command = (
    PaymentInput
    | EscalationDecision
    | DisputeOpen
    | DisputeResolution
    | PlanProposal
    | PlanDecision
    | PromiseToPay
    | HoldRequest
    | ResumeRequest
    | Closure
    | PlaybookMigration
    | DeliveryEvent
    | ContactCorrected
    | CalendarAnswered
    | SendSettled
    | LateCostsComputed
    | LetterReceived
)
