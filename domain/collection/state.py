"""The invoice's state, as one explicit model: what the machine reads and returns.

A lifecycle stage (the escalation: upcoming → legal, or an end), a ledger (amount, payments,
credits), at most one hold as a tagged union, at most one pending approval, and the bookkeeping
the rules need (where in the playbook, when the last action went out, what is waiting to be
sent). It is small and carried whole through continue-as-new.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from domain.legal import LegalFile, Mediation
from domain.lifecycle import InvoiceFacts, PaymentResult, Stage
from domain.money import Money
from domain.playbook import Channel, Playbook, Recipient, Tone
from domain.schedule import Clock

# Ids already applied (delivery events, contact corrections), for de-duplication: the newest
# suffice, providers replay recent events, not months-old ones.
SEEN_KEPT = 200

# The rules' edition. A running invoice keeps the edition it started with, so its saved history
# replays; it takes the newest at its next continue-as-new. A rule that changes what an invoice
# does is written `if state.rules >= N`. Edition 1 is every state carried before the field was.
RULES_LATEST = 3


class RecordedPayment(BaseModel):
    result: PaymentResult
    received_on: date | None = None


class Ledger(BaseModel):
    """What is owed: outstanding = amount − payments − credits, never below zero."""

    amount: Money
    payments: dict[str, RecordedPayment] = {}
    credits: dict[str, Money] = {}

    def _total(self, amounts: list[Money]) -> Decimal:
        return sum((m.amount for m in amounts), start=Decimal(0))

    @property
    def paid(self) -> Money:
        return Money.of(
            self._total([p.result.amount for p in self.payments.values()]), self.amount.currency
        )

    @property
    def credited(self) -> Money:
        return Money.of(self._total(list(self.credits.values())), self.amount.currency)

    @property
    def outstanding(self) -> Money:
        left = self.amount.amount - self.paid.amount - self.credited.amount
        return Money.of(max(left, Decimal(0)), self.amount.currency)

    @property
    def overpayment(self) -> Money | None:
        extra = self.paid.amount + self.credited.amount - self.amount.amount
        return Money.of(extra, self.amount.currency) if extra > 0 else None


class Paused(BaseModel):
    kind: Literal["paused"] = "paused"
    key: str
    reason: str
    by: str
    # None: until someone resumes it.
    until: datetime | None = None


class Promised(BaseModel):
    kind: Literal["promised"] = "promised"
    promise_id: str
    promised_for: date
    # The promised day plus the playbook's grace: then the promise is broken.
    until: datetime
    by: str
    note: str = ""


class Disputed(BaseModel):
    kind: Literal["disputed"] = "disputed"
    dispute_id: str
    reason: str
    by: str
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


class OnPlan(BaseModel):
    kind: Literal["plan"] = "plan"
    plan_id: str
    # proposed: awaiting a second person's approval; active: installments running.
    status: Literal["proposed", "active"]
    proposed_by: str
    installments: list[InstallmentState]


Hold = Annotated[Paused | Promised | Disputed | OnPlan, Field(discriminator="kind")]

HOLD_STAGE: dict[str, Stage] = {
    "paused": Stage.PAUSED,
    "promised": Stage.PROMISED,
    "disputed": Stage.DISPUTED,
    "plan": Stage.PAYMENT_PLAN,
}


class Approval(BaseModel):
    approval_id: str
    step_id: str
    target_stage: Stage
    requested_at: datetime
    remind_at: datetime
    reminders: int = 0


class Message(BaseModel):
    """One message to send: to whom, on which channel, with which template, about what.

    `wanted_in` lists the stages the invoice must still be in when the message goes out; the
    send re-checks it against the store in the same transaction as its reservation.
    """

    step_id: str
    channel: Channel
    recipient: Recipient = Recipient.DEBTOR
    template: str
    tone: Tone
    wanted_in: tuple[Stage, ...]
    # The escalation stage it belongs to (a formal notice or a legal file whose outcome is
    # unknown after a crash is not resent without a person).
    stage: Stage
    approval_id: str | None = None
    target_stage: Stage | None = None
    installment_amount: Money | None = None
    installment_due_date: date | None = None
    paid: Money | None = None

    @property
    def consolidated(self) -> bool:
        """A debtor's email goes through the once-a-day rule (and is listed with the debtor's
        other invoices due the same day)."""
        return self.channel == Channel.EMAIL and self.recipient == Recipient.DEBTOR


class Deferred(BaseModel):
    """A debtor message that found the day already used: it goes out on the next day."""

    message: Message
    day: date
    # Caught up late (an outage): not before this real moment.
    earliest: datetime | None = None

    @property
    def question(self) -> CalendarQuestion:
        return CalendarQuestion(day=self.day, earliest=self.earliest)


class CalendarQuestion(BaseModel):
    """When may an action really go out? Business days, the send window, the debtor's zone.

    Answered outside the machine (holiday data is not pure over time), recorded in history.
    All moments are real calendar moments (not compressed by a short demo day).
    """

    day: date
    # Time the escalation was frozen, which moves the step later.
    delay_seconds: float = 0
    # Not before this moment (the gap since the last action, a rejection's retry, a grace).
    earliest: datetime | None = None


class CalendarAnswer(BaseModel):
    question: CalendarQuestion
    # On the workflow's clock.
    at: datetime
    note: str | None = None


class CollectionState(BaseModel):
    invoice: InvoiceFacts
    playbook: Playbook
    day_seconds: float = 86400.0
    # The moment the invoice was handed over: a short demo day compresses time around it.
    anchor: datetime
    stage: Stage = Stage.UPCOMING
    ledger: Ledger
    hold: Hold | None = None
    # When the escalation froze (kept across one hold replacing another).
    held_since: datetime | None = None
    approval: Approval | None = None
    approval_rounds: dict[str, int] = {}
    # A step a collector approved: it goes out at the next business moment.
    approved_step: str | None = None
    step_index: int = 0
    last_action_at: datetime | None = None
    # Time spent frozen shifts every later step; the escalation resumes no earlier than this.
    shift_seconds: float = 0
    not_before: datetime | None = None
    retry_at: dict[str, datetime] = {}
    rejection_note: str | None = None
    deferred: list[Deferred] = []
    # Once the debtor's email bounced, steps use their fallback channels until corrected.
    email_invalid: bool = False
    fallback_due: list[str] = []
    seen: list[str] = []
    closed_refs: dict[str, str] = {}
    # The calendar's latest answers, each for the question it was asked.
    calendar_answers: list[CalendarAnswer] = []
    # Acknowledgments of the debt (Civil code 2240: payments, signed plans, promises): each
    # starts the 5-year limitation afresh (L110-4); a formal notice does not.
    acknowledged_on: list[date] = []
    # Increases with every recorded change, so the read model ignores stale snapshots.
    revision: int = 0
    # The end of the collection has been recorded (and the thank-you sent when paid).
    closed: bool = False
    notified_stage: Stage | None = None
    rules: int = 1
    # Rules 2: the other channels that cannot reach the debtor (an SMS STOP or hard failure, a
    # registered letter returned or not claimed, calls never reached): steps use their fallback
    # instead until the contact is corrected. Email keeps its own flag, `email_invalid`, which
    # histories recorded before this list carry.
    invalid_channels: list[Channel] = []
    # Registered letters whose acknowledgment of receipt came back: step → day received.
    received_on: dict[str, date] = {}
    # The formal notice's deadline when it runs from receipt: later steps wait until it passed.
    notice_deadline: date | None = None
    # The limitation date collectors were last warned of (rules 2): once per date; an
    # acknowledgment that moves the date allows a new warning before the new one.
    limitation_warned: date | None = None
    # How the mediation ended, once a collector recorded it.
    mediation: Mediation | None = None
    # The legal partner's file on a handed-off invoice (rules 2: it stays open with them).
    legal: LegalFile | None = None

    @property
    def clock(self) -> Clock:
        return Clock(self.anchor, self.day_seconds)

    @property
    def shown_stage(self) -> Stage:
        """What people see: the hold's stage while held, else the lifecycle stage."""
        return HOLD_STAGE[self.hold.kind] if self.hold is not None else self.stage

    @property
    def outstanding(self) -> Money:
        return self.ledger.outstanding
