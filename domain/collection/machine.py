"""The rules of one invoice: `(state, command | tick, now) → (state, effects)`.

- `validate(state, command, now)` says whether a command may apply (a typed `Refusal`, or None);
  the workflow's Update validators call it, so a refused command is never written anywhere.
- `apply(state, command, now)` applies a command; `tick(state, now)` does whatever is due at
  `now`. Both return a `Transition`: the new state (the input is never changed) and the effects
  to carry out, in order. When the machine needs the business calendar to place an action, the
  transition carries a `question`; the caller answers with `CalendarAnswered` and ticks again.
- `status(state, now)` is what people see; `wake_at(state, now)` is when to tick next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel

from domain.collection import keys
from domain.collection.commands import (
    CalendarAnswered,
    Command,
    ContactCorrected,
    LateCostsComputed,
    LetterReceived,
    SendResult,
    SendSettled,
)
from domain.collection.records import (
    ApprovalChange,
    DisputeChange,
    EventKind,
    EventRecord,
    PaymentChange,
    PlanChange,
    TaskChange,
)
from domain.collection.state import (
    RULES_LATEST,
    SEEN_KEPT,
    Approval,
    CalendarAnswer,
    CalendarQuestion,
    CollectionState,
    Deferred,
    Disputed,
    InstallmentState,
    Ledger,
    Message,
    OnPlan,
    Paused,
    Promised,
    RecordedPayment,
)
from domain.errors import ErrorType
from domain.holds import (
    UNDELIVERABLE,
    Closure,
    ClosureKind,
    DeliveryEvent,
    DisputeOpen,
    DisputeOutcome,
    DisputeResolution,
    HoldRequest,
    PlanDecision,
    PlanProposal,
    PlaybookMigration,
    PromiseToPay,
    ResumeRequest,
)
from domain.law import LatePaymentCosts, LimitationStatus, Paid, limitation_status
from domain.legal import (
    LEGAL_ENDINGS,
    LegalFile,
    LegalStatus,
    LegalUpdate,
    Mediation,
    MediationOutcome,
    MediationResult,
)
from domain.lifecycle import (
    ESCALATION_ORDER,
    TERMINAL_STAGES,
    ApprovalStatus,
    EscalationDecision,
    InvoiceFacts,
    InvoiceStatus,
    NextStep,
    PaymentInput,
    PaymentResult,
    PendingApproval,
    Stage,
)
from domain.money import Money
from domain.playbook import (
    FILE_TEMPLATES,
    LATE_PAYMENT_STATEMENT_TEMPLATE,
    Channel,
    LatePaymentCostsAction,
    Playbook,
    Recipient,
    Step,
    Tone,
)

DUE_DATE_PASSES = "due_date_passes"
# With nothing planned, a held or idle invoice still wakes now and then to re-check.
IDLE_TICK_DAYS = 30
# The calendar answers kept: the current step's and a deferred message's suffice.
CALENDAR_KEPT = 4
# A calendar moment this far in the past is a catch-up, not a timer firing: ask again from now.
CATCH_UP_DAYS = 10 / (24 * 60)
CATCH_UP_FLOOR_SECONDS = 5
# A step's messages are wanted while the invoice escalates (the legal step's own messages
# go out as it hands the file off).
ESCALATING = (*ESCALATION_ORDER, Stage.HANDED_OFF)
# What the back office is told of, by the kind of event recorded.
NOTICES: dict[EventKind, str] = {
    EventKind.LATE_PAYMENT_COSTS: "late_payment_costs",
    EventKind.DISPUTE_OPENED: "dispute_opened",
    EventKind.DISPUTE_RESOLVED: "dispute_resolved",
    EventKind.PLAN_PROPOSED: "plan_proposed",
    EventKind.PLAN_BROKEN: "plan_broken",
    EventKind.PROMISE_RECORDED: "promise_recorded",
    EventKind.PROMISE_BROKEN: "promise_broken",
    EventKind.HOLD_STARTED: "paused",
    EventKind.HOLD_ENDED: "resumed",
    EventKind.FALLBACK: "email_undeliverable",
    EventKind.CHANNEL_FALLBACK: "contact_undeliverable",
    EventKind.HANDED_OFF: "handed_off",
}
CHANNEL_NAMES = {
    Channel.EMAIL: "Email",
    Channel.SMS: "SMS",
    Channel.LETTER: "Letter",
    Channel.PHONE: "Phone",
}
# What the legal partner receives when a handed-off invoice ends on our side.
LEGAL_CLOSED_TEMPLATE = "legal_closed"
CLOSING_NOTICES = {
    Stage.PAID: "paid",
    Stage.HANDED_OFF: "handed_off",
    Stage.CANCELLED: "cancelled",
    Stage.WRITTEN_OFF: "written_off",
}
# Rules 2: the legal partner's file, as the back office hears of it: each report of its
# progress, and its end when the partner settles or abandons it (the invoice stays handed_off,
# so no closing notice of a stage says so).
LEGAL_UPDATED_NOTICE = "legal_updated"
LEGAL_ENDING_NOTICES = {
    LegalStatus.SETTLED: "legal_settled",
    LegalStatus.ABANDONED: "legal_abandoned",
}


class Refusal(BaseModel):
    type: ErrorType
    message: str


class Send(BaseModel):
    message: Message
    # The workflow moment it was decided, and the calendar day it speaks of (days late,
    # interest are counted to it).
    planned_at: datetime
    as_of: date
    outstanding: Money


class Record(BaseModel):
    event: EventRecord


class ComputeLateCosts(BaseModel):
    """Settled after its due date: the law says what it still owes (an activity computes it,
    from rate tables that ops may update; the answer comes back as `LateCostsComputed`)."""

    payments: list[Paid]
    # What the payments settled: the invoice's amount less its credit notes. A credit note
    # says that part was never owed, so it bears no interest. None: the invoice's amount
    # (effects recorded before credits were counted).
    owed: Money | None = None


class Notify(BaseModel):
    """Tell the back office (an ERP puts a customer on credit hold, flags dunning...), as
    things stood when it happened."""

    kind: str
    event_id: str
    stage: Stage
    outstanding: Money
    at: datetime
    # Kind-specific details, flat strings (a `paid` event's late-payment costs).
    data: dict[str, str] = {}


Effect = Send | Record | Notify | ComputeLateCosts


@dataclass
class Transition:
    state: CollectionState
    effects: list[Effect] = field(default_factory=list)
    # The calendar must place an action before the machine can go on.
    question: CalendarQuestion | None = None
    # What a payment answers (the same answer for the same reference).
    reply: PaymentResult | None = None


# ---------------------------------------------------------------------------------- validation


def validate(state: CollectionState, command: Command, now: datetime) -> Refusal | None:
    number = state.invoice.number
    closed = Refusal(
        type=ErrorType.INVOICE_CLOSED, message=f"invoice {number} is already {state.stage}"
    )
    terminal = ended(state)
    # Handed off and still open (rules 2): payments, closures and the partner's progress only.
    stopped = closed if terminal else _with_partner(state)
    match command:
        case PaymentInput():
            if command.reference in state.ledger.payments:
                return None  # a replay gets the same answer
            if command.amount.currency != state.invoice.amount.currency:
                return _currency(state, command.amount, "payment")
            if not command.amount.is_positive:
                return Refusal(
                    type=ErrorType.INVALID_AMOUNT, message="payment amount must be positive"
                )
            return closed if terminal else None
        case EscalationDecision():
            pending = state.approval
            if pending is None or pending.approval_id != command.approval_id:
                return Refusal(
                    type=ErrorType.STALE_APPROVAL,
                    message=f"approval {command.approval_id} is not pending on invoice {number}"
                    + (f" (pending: {pending.approval_id})" if pending else ""),
                )
            return None
        case DisputeOpen():
            if _replayed_dispute(state, command.dispute_id):
                return None
            if stopped:
                return stopped
            if command.amount is not None and command.amount.currency != _currency_of(state):
                return _currency(state, command.amount, "disputed amount")
            if isinstance(state.hold, Disputed):
                return Refusal(
                    type=ErrorType.DISPUTE_OPEN,
                    message=f"dispute {state.hold.dispute_id} is already open on invoice {number}",
                )
            return _hold_conflict(state)
        case DisputeResolution():
            if stopped:
                return stopped
            hold = state.hold
            if not isinstance(hold, Disputed) or hold.dispute_id != command.dispute_id:
                return Refusal(
                    type=ErrorType.UNKNOWN_DISPUTE,
                    message=f"no open dispute {command.dispute_id} on invoice {number}",
                )
            if command.credit is not None:
                if command.credit.currency != _currency_of(state):
                    return _currency(state, command.credit, "credit note")
                if not command.credit.is_positive:
                    return Refusal(
                        type=ErrorType.INVALID_AMOUNT,
                        message="a credit note must be a positive amount",
                    )
            return None
        case PlanProposal():
            if stopped:
                return stopped
            if isinstance(state.hold, OnPlan):
                return Refusal(
                    type=ErrorType.PLAN_CONFLICT,
                    message=f"payment plan {state.hold.plan_id} is already {state.hold.status}",
                )
            conflict = _hold_conflict(state)
            if conflict is not None:
                return conflict
            first = command.installments[0].amount
            if first.currency != _currency_of(state):
                return _currency(state, first, "installment")
            if command.total != state.outstanding.amount:
                return Refusal(
                    type=ErrorType.PLAN_MISMATCH,
                    message=f"installments add up to {command.total} {_currency_of(state)}, "
                    f"but {state.outstanding} is outstanding",
                )
            return None
        case PlanDecision():
            if stopped:
                return stopped
            plan = state.hold
            if (
                not isinstance(plan, OnPlan)
                or plan.plan_id != command.plan_id
                or plan.status != "proposed"
            ):
                return Refusal(
                    type=ErrorType.UNKNOWN_PLAN,
                    message=f"payment plan {command.plan_id} is not awaiting a decision",
                )
            if command.decided_by == plan.proposed_by:
                return Refusal(
                    type=ErrorType.FOUR_EYES,
                    message=f"{command.decided_by} proposed plan {plan.plan_id}: a second "
                    "person must decide it (four-eyes)",
                )
            return None
        case PromiseToPay():
            if command.promise_id in state.closed_refs:
                return None
            if stopped:
                return stopped
            conflict = _hold_conflict(state)
            if conflict is not None:
                return conflict
            if command.until < state.clock.calendar_date(now):
                return Refusal(
                    type=ErrorType.INVALID_PROMISE,
                    message=f"promised date {command.until.isoformat()} is in the past",
                )
            return None
        case HoldRequest():
            if command.key is not None and f"pause:{command.key}" in state.closed_refs:
                return None
            return stopped or _hold_conflict(state)
        case ResumeRequest():
            if stopped:
                return stopped
            if not isinstance(state.hold, Paused):
                return Refusal(type=ErrorType.NOT_PAUSED, message=f"invoice {number} is not paused")
            return None
        case Closure():
            return closed if terminal else None
        case PlaybookMigration():
            if stopped:
                return stopped
            if state.approval is not None:
                return Refusal(
                    type=ErrorType.HOLD_CONFLICT,
                    message=f"approval {state.approval.approval_id} is pending: decide it first",
                )
            return None
        case MediationResult():
            return closed if terminal else _validate_mediation(state, command, now)
        case LegalUpdate():
            return closed if terminal else _validate_legal(state, command)
    return None


def ended(state: CollectionState) -> bool:
    """Whether the collection is over. Under rules 2 a handed-off invoice stays open with the
    legal partner (payments still come, the partner reports progress) until it is paid, closed,
    or the partner settles or abandons the file; under rules 1 the hand-off is its end."""
    if state.stage == Stage.HANDED_OFF and state.rules >= 2:
        return state.legal is not None and state.legal.status in LEGAL_ENDINGS
    return state.stage in TERMINAL_STAGES


def _with_partner(state: CollectionState) -> Refusal | None:
    """The refusal of a hold or a plan once the file is with the legal partner."""
    if state.stage != Stage.HANDED_OFF:
        return None
    return Refusal(
        type=ErrorType.WRONG_STAGE,
        message=f"invoice {state.invoice.number} is handed off to the legal partner: only "
        "payments, the partner's progress (legal) and a cancellation or write-off apply",
    )


def _validate_mediation(
    state: CollectionState, result: MediationResult, now: datetime
) -> Refusal | None:
    number = state.invoice.number
    known = state.mediation
    if known is not None and (known.outcome, known.mediator_reference) == (
        result.outcome,
        result.mediator_reference,
    ):
        return None  # the same outcome again: a replay
    if state.stage != Stage.MEDIATION:
        return Refusal(
            type=ErrorType.WRONG_STAGE,
            message=f"invoice {number} is {state.shown_stage}: a mediation's outcome is "
            "recorded once the mediator has the file (stage mediation)",
        )
    if known is not None and known.outcome != MediationOutcome.WITHDRAWN:
        return Refusal(
            type=ErrorType.WRONG_STAGE,
            message=f"mediation {known.mediator_reference} on invoice {number} already ended in "
            f"{known.outcome}",
        )
    if result.outcome == MediationOutcome.AGREEMENT:
        return validate(state, _agreed_plan(result), now)
    return None


def _agreed_plan(result: MediationResult) -> PlanProposal:
    """A mediation agreement's schedule, proposed as a payment plan (the playbook's four-eyes
    limits apply to it as to any plan)."""
    return PlanProposal(
        plan_id=result.plan_id or f"mediation-{result.mediator_reference}",
        installments=result.installments,
        proposed_by=result.recorded_by,
        comment=f"mediation {result.mediator_reference} agreement",
    )


def _validate_legal(state: CollectionState, update: LegalUpdate) -> Refusal | None:
    if state.stage != Stage.HANDED_OFF:
        return Refusal(
            type=ErrorType.WRONG_STAGE,
            message=f"invoice {state.invoice.number} is {state.shown_stage}: the legal "
            "partner's progress is recorded once the file is handed off",
        )
    costs = update.costs
    if costs is not None:
        if costs.currency != _currency_of(state):
            return _currency(state, costs, "legal costs")
        if costs.amount < 0:
            return Refusal(type=ErrorType.INVALID_AMOUNT, message="legal costs cannot be negative")
    return None


def _currency_of(state: CollectionState) -> str:
    return state.invoice.amount.currency


def _currency(state: CollectionState, amount: Money, what: str) -> Refusal:
    return Refusal(
        type=ErrorType.CURRENCY_MISMATCH,
        message=f"{what} currency {amount.currency} does not match the invoice currency "
        f"{_currency_of(state)}",
    )


def _replayed_dispute(state: CollectionState, dispute_id: str) -> bool:
    hold = state.hold
    return dispute_id in state.closed_refs or (
        isinstance(hold, Disputed) and hold.dispute_id == dispute_id
    )


def _hold_conflict(state: CollectionState) -> Refusal | None:
    """A dispute or a plan must end before another hold starts (a promise or a pause may be
    replaced)."""
    hold = state.hold
    if hold is None or isinstance(hold, Paused | Promised):
        return None
    shown = state.shown_stage.value
    return Refusal(
        type=ErrorType.DISPUTE_OPEN if isinstance(hold, Disputed) else ErrorType.HOLD_CONFLICT,
        message=f"invoice {state.invoice.number} is {shown}: end that first",
    )


# ---------------------------------------------------------------------------------- transitions


def apply(state: CollectionState, command: Command, now: datetime) -> Transition | Refusal:
    refusal = validate(state, command, now)
    if refusal is not None:
        return refusal
    run = _Run(_fresh(state), now)
    run.command(command)
    run.settle_end()
    return run.transition()


def tick(state: CollectionState, now: datetime) -> Transition:
    run = _Run(_fresh(state), now)
    run.advance()
    run.settle_end()
    return run.transition()


def opened(state: CollectionState, now: datetime, hold: HoldRequest | None) -> Transition:
    """The first transition of a new invoice: recorded, and on hold if asked (an opt-out)."""
    run = _Run(_fresh(state), now)
    run.record(EventKind.OPENED, "opened", "Collection started")
    if hold is not None:
        run.pause(hold, key="opened")
    return run.transition()


def _fresh(state: CollectionState) -> CollectionState:
    """A copy the transition may change, leaving `state` as it was.

    The invoice's facts and its playbook are frozen and shared; only what a transition changes
    is copied (a deep copy of the whole state on every tick is what the workflow would pay for).
    """
    hold = state.hold.model_copy(deep=True) if state.hold is not None else None
    ledger = state.ledger
    return state.model_copy(
        update={
            "ledger": ledger.model_copy(
                update={"payments": dict(ledger.payments), "credits": dict(ledger.credits)}
            ),
            "hold": hold,
            "approval": state.approval.model_copy() if state.approval is not None else None,
            "approval_rounds": dict(state.approval_rounds),
            "retry_at": dict(state.retry_at),
            "deferred": [d.model_copy() for d in state.deferred],
            "fallback_due": list(state.fallback_due),
            "seen": list(state.seen),
            "closed_refs": dict(state.closed_refs),
            "calendar_answers": list(state.calendar_answers),
            "acknowledged_on": list(state.acknowledged_on),
            "invalid_channels": list(state.invalid_channels),
            "received_on": dict(state.received_on),
            "mediation": state.mediation.model_copy() if state.mediation else None,
            "legal": state.legal.model_copy() if state.legal else None,
        }
    )


class _Run:
    """One transition in the making: the state it changes, and the effects it collects."""

    def __init__(self, state: CollectionState, now: datetime) -> None:
        self.s = state
        self.now = now
        self.effects: list[Effect] = []
        self.question: CalendarQuestion | None = None
        self.reply: PaymentResult | None = None

    def transition(self) -> Transition:
        return Transition(self.s, self.effects, self.question, self.reply)

    # ---------------------------------------------------------------- effects

    def days(self, count: float) -> timedelta:
        return self.s.clock.days(count)

    @property
    def today(self) -> date:
        return self.s.clock.calendar_date(self.now)

    def record(
        self,
        kind: EventKind,
        key: str,
        summary: str,
        *,
        detail: dict[str, str] | None = None,
        payment: PaymentChange | None = None,
        approval: ApprovalChange | None = None,
        dispute: DisputeChange | None = None,
        plan: PlanChange | None = None,
        task: TaskChange | None = None,
        playbook: tuple[str, int] | None = None,
        late_costs: LatePaymentCosts | None = None,
        notice_data: dict[str, str] | None = None,
    ) -> None:
        self.s.revision += 1
        self.effects.append(
            Record(
                event=EventRecord(
                    key=key,
                    kind=kind,
                    at=self.now,
                    summary=summary,
                    detail=detail or {},
                    payment=payment,
                    approval=approval,
                    dispute=dispute,
                    plan=plan,
                    task=task,
                    playbook=playbook,
                    late_costs=late_costs,
                )
            )
        )
        # The back office gets the amounts of late-payment costs, and what `notice_data` names;
        # other details (who recorded it, free notes) stay inside.
        data = detail if kind == EventKind.LATE_PAYMENT_COSTS else notice_data
        self.notify(kind, key, plan, data)

    def notify(
        self,
        kind: EventKind,
        key: str,
        plan: PlanChange | None,
        data: dict[str, str] | None = None,
    ) -> None:
        stage = self.s.shown_stage
        notice: str | None
        if kind == EventKind.CLOSED:
            # (An open hand-off told the back office when it happened; its end by the partner
            # is told as such.)
            notice = (
                self.legal_ending_notice()
                if _open_hand_off(self.s)
                else CLOSING_NOTICES.get(self.s.stage)
            )
        elif kind == EventKind.LEGAL_UPDATED:
            notice = LEGAL_UPDATED_NOTICE if self.s.rules >= 2 else None
        elif kind == EventKind.PLAN_DECIDED and plan is not None:
            notice = "plan_activated" if plan.status == "active" else "plan_rejected"
        elif kind == EventKind.PLAN_ENDED and plan is not None and plan.status == "completed":
            notice = "plan_completed"
        else:
            notice = NOTICES.get(kind)
        if (
            notice is None
            and self.s.hold is None
            and stage not in TERMINAL_STAGES
            and stage != self.s.notified_stage
        ):
            notice = "stage_changed"
        if notice is None:
            return
        self.s.notified_stage = stage
        if notice == CLOSING_NOTICES[Stage.PAID] and self.paid_awaits_costs():
            return
        self.effects.append(
            Notify(
                kind=notice,
                event_id=keys.backoffice_event_id(self.s.invoice.number, notice, key),
                stage=stage,
                outstanding=self.s.outstanding,
                at=self.now,
                data=data or {},
            )
        )

    def send(self, message: Message, as_of: date | None = None) -> None:
        self.effects.append(
            Send(
                message=message,
                planned_at=self.now,
                as_of=as_of or self.today,
                outstanding=self.s.outstanding,
            )
        )

    def channels(self, step: Step) -> list[Channel]:
        """The step's channels, email replaced by its fallback while the address is invalid."""
        if self.s.rules >= 2:
            return self.usable_channels(step)
        channels: list[Channel] = []
        for channel in step.channels:
            replacements = (
                step.fallback if (channel == Channel.EMAIL and self.s.email_invalid) else (channel,)
            )
            channels += [c for c in replacements if c not in channels]
        return channels

    def to_debtor(
        self,
        step_id: str,
        template: str,
        tone: Tone,
        wanted_in: tuple[Stage, ...],
        **extra: object,
    ) -> None:
        """A debtor message outside the playbook's steps (thank-you, installment reminder):
        routed like a step's email, by its fallback while the address is invalid."""
        channels = [Channel.LETTER] if self.s.email_invalid else [Channel.EMAIL]
        if self.s.rules >= 2:
            channels = [c for c in channels if not channel_invalid(self.s, c)]
        for channel in channels:
            self.send(
                Message(
                    step_id=step_id,
                    channel=channel,
                    template=template,
                    tone=tone,
                    wanted_in=wanted_in,
                    stage=self.s.stage,
                    **extra,
                )
            )

    def to_collectors(self, step_id: str, template: str, wanted_in: tuple[Stage, ...]) -> None:
        approval = self.s.approval
        self.send(
            Message(
                step_id=step_id,
                channel=Channel.EMAIL,
                recipient=Recipient.COLLECTORS,
                template=template,
                tone=Tone.FIRM,
                wanted_in=wanted_in,
                stage=self.s.stage,
                approval_id=approval.approval_id if approval else None,
                target_stage=approval.target_stage if approval else None,
            )
        )

    # ---------------------------------------------------------------- commands

    def command(self, command: Command) -> None:
        match command:
            case PaymentInput():
                self.payment(command)
            case EscalationDecision():
                self.decision(command)
            case DisputeOpen():
                self.open_dispute(command)
            case DisputeResolution():
                self.resolve_dispute(command)
            case PlanProposal():
                self.propose_plan(command)
            case PlanDecision():
                self.decide_plan(command)
            case PromiseToPay():
                self.promise(command)
            case HoldRequest():
                self.pause(command, key=command.key or f"pause{self.s.revision}")
            case ResumeRequest():
                self.release(grace_days=0)
                self.record(
                    EventKind.HOLD_ENDED,
                    f"resume{self.s.revision}",
                    f"Resumed by {command.by}"
                    + (f": {command.comment}" if command.comment else ""),
                    detail={"by": command.by},
                )
            case Closure():
                self.close(command)
            case PlaybookMigration():
                self.migrate(command)
            case DeliveryEvent():
                self.delivery(command)
            case ContactCorrected():
                self.contact_corrected(command)
            case CalendarAnswered():
                kept = [a for a in self.s.calendar_answers if a.question != command.answer.question]
                self.s.calendar_answers = [*kept[-(CALENDAR_KEPT - 1) :], command.answer]
            case SendSettled():
                self.settled(command)
            case LateCostsComputed():
                self.late_costs(command)
            case LetterReceived():
                self.letter_received(command)
            case MediationResult():
                self.mediation_ended(command)
            case LegalUpdate():
                self.legal_update(command)

    def payment(self, payment: PaymentInput) -> None:
        known = self.s.ledger.payments.get(payment.reference)
        if known is not None:
            self.reply = known.result
            return
        ledger = self.s.ledger
        result = PaymentResult(
            reference=payment.reference,
            amount=payment.amount,
            outstanding=payment.amount,  # set below, once the ledger has it
            stage=self.s.stage,
        )
        ledger.payments[payment.reference] = RecordedPayment(
            result=result, received_on=payment.received_on
        )
        self.s.acknowledged_on.append(payment.received_on or self.today)
        if not ledger.outstanding.is_positive:
            self.end(Stage.PAID)
        result.outstanding = ledger.outstanding
        result.stage = Stage.PAID if self.s.stage == Stage.PAID else self.s.shown_stage
        result.overpayment = ledger.overpayment if self.s.stage == Stage.PAID else None
        self.allocate(payment.amount)
        summary = (
            f"Payment {payment.reference} of {payment.amount}: {result.outstanding} outstanding"
        )
        if result.overpayment is not None:
            summary += f", overpaid by {result.overpayment}"
        self.record(
            EventKind.PAYMENT,
            f"payment:{payment.reference}",
            summary,
            payment=PaymentChange(result=result, received_on=payment.received_on),
        )
        self.reply = result.model_copy(
            update={"revision": self.s.revision, "limitation_date": shown_limitation(self.s)}
        )
        # The same reference again gets this same answer.
        ledger.payments[payment.reference] = RecordedPayment(
            result=self.reply, received_on=payment.received_on
        )

    def allocate(self, amount: Money) -> None:
        """Payments settle a plan's installments in order, oldest first."""
        plan = self.s.hold
        if not isinstance(plan, OnPlan):
            return
        left = amount
        for item in plan.installments:
            if not left.is_positive:
                break
            missing = item.amount - item.paid
            if not missing.is_positive:
                continue
            applied = missing if missing.amount <= left.amount else left
            item.paid = item.paid + applied
            left = left - applied

    def decision(self, decision: EscalationDecision) -> None:
        pending = self.s.approval
        if pending is None:
            return
        self.s.approval = None
        step_id = pending.step_id
        if decision.approve:
            self.s.approved_step = step_id
            self.s.retry_at.pop(step_id, None)
            self.s.rejection_note = None
            # It goes out at the next business moment, not before the decision.
            self.s.not_before = max(self.s.not_before or self.now, self.now)
            summary = f"Escalation to {pending.target_stage} approved by {decision.decided_by}"
            status = ApprovalStatus.APPROVED
        else:
            retry = self.now + self.days(self.s.playbook.rejection_retry_days)
            self.s.retry_at[step_id] = retry
            self.s.rejection_note = (
                f"escalation to {pending.target_stage} rejected by {decision.decided_by}"
                + (f" ({decision.comment})" if decision.comment else "")
                + f"; stays {self.s.stage} and is proposed again on {retry.isoformat()}"
            )
            summary = f"Escalation to {pending.target_stage} rejected by {decision.decided_by}"
            status = ApprovalStatus.REJECTED
        self.record(
            EventKind.APPROVAL_DECIDED,
            f"approval:{pending.approval_id}:decided",
            summary,
            detail={"comment": decision.comment, "decided_by": decision.decided_by},
            approval=self.approval_change(pending, status, decision),
        )

    def approval_change(
        self,
        pending: Approval,
        status: ApprovalStatus,
        decision: EscalationDecision | None = None,
    ) -> ApprovalChange:
        return ApprovalChange(
            approval_id=pending.approval_id,
            step_id=pending.step_id,
            target_stage=pending.target_stage,
            status=status,
            at=self.now,
            decided_by=decision.decided_by if decision else None,
            comment=decision.comment if decision else None,
        )

    def withdraw_approval(self) -> None:
        pending = self.s.approval
        if pending is None:
            return
        self.s.approval = None
        self.record(
            EventKind.APPROVAL_CANCELLED,
            f"approval:{pending.approval_id}:cancelled",
            f"Approval {pending.approval_id} withdrawn: invoice {self.s.shown_stage}",
            approval=self.approval_change(pending, ApprovalStatus.CANCELLED),
        )

    def enter_hold(self, hold: Paused | Promised | Disputed | OnPlan) -> None:
        # A hold replacing another keeps the clock frozen since the first one.
        if self.s.hold is None:
            self.s.held_since = self.now
        self.s.hold = hold
        self.withdraw_approval()

    def release(self, grace_days: float) -> None:
        if self.s.hold is None:
            return
        since = self.s.held_since or self.now
        self.s.shift_seconds += (self.now - since).total_seconds()
        self.s.not_before = self.now + self.days(grace_days)
        self.s.hold = None
        self.s.held_since = None

    def open_dispute(self, request: DisputeOpen) -> None:
        if _replayed_dispute(self.s, request.dispute_id):
            return
        deadline = self.now + self.days(self.s.playbook.dispute_resolution_days)
        self.enter_hold(
            Disputed(
                dispute_id=request.dispute_id,
                reason=request.reason,
                by=request.opened_by,
                deadline=deadline,
            )
        )
        number = self.s.invoice.number
        self.record(
            EventKind.DISPUTE_OPENED,
            f"dispute:{request.dispute_id}",
            f"Dispute {request.dispute_id} opened by {request.opened_by}: escalation frozen",
            detail={"reason": request.reason, "by": request.opened_by},
            dispute=DisputeChange(
                dispute_id=request.dispute_id,
                status="open",
                at=self.now,
                by=request.opened_by,
                reason=request.reason,
                amount=request.amount,
                deadline=deadline,
            ),
            task=TaskChange(
                task_id=keys.task_id(number, "dispute", request.dispute_id),
                kind="dispute",
                status="open",
                at=self.now,
                due_at=deadline,
                title=f"Resolve dispute {request.dispute_id} on invoice {number}",
            ),
        )

    def resolve_dispute(self, resolution: DisputeResolution) -> None:
        dispute = self.s.hold
        if not isinstance(dispute, Disputed):
            return
        self.s.closed_refs[dispute.dispute_id] = resolution.outcome.value
        grace = self.s.playbook.dispute_grace_days
        credit: Money | None = None
        if resolution.outcome == DisputeOutcome.UPHELD:
            credit = resolution.credit or self.s.outstanding
            self.s.ledger.credits[dispute.dispute_id] = credit
            if self.s.outstanding.is_positive:
                self.release(grace)
            else:
                self.end(Stage.CANCELLED)
            summary = (
                f"Dispute {dispute.dispute_id} upheld by {resolution.resolved_by}: credit note of "
                f"{credit}, {self.s.outstanding} outstanding"
            )
        else:
            self.release(grace)
            summary = (
                f"Dispute {dispute.dispute_id} rejected by {resolution.resolved_by}: escalation "
                f"resumes at {self.s.stage} after {grace:g} days' grace"
            )
        self.record(
            EventKind.DISPUTE_RESOLVED,
            f"dispute:{dispute.dispute_id}:{resolution.outcome.value}",
            summary,
            detail={
                "by": resolution.resolved_by,
                "comment": resolution.comment,
                "credit_note": resolution.credit_note_reference or "",
            },
            dispute=DisputeChange(
                dispute_id=dispute.dispute_id,
                status=resolution.outcome.value,
                at=self.now,
                by=resolution.resolved_by,
                resolution=resolution.comment or None,
                credit=credit,
            ),
            task=TaskChange(
                task_id=keys.task_id(self.s.invoice.number, "dispute", dispute.dispute_id),
                kind="dispute",
                status="done",
                at=self.now,
            ),
        )

    def propose_plan(self, proposal: PlanProposal) -> None:
        playbook = self.s.playbook
        needs_approval = playbook.plan_needs_approval(proposal.total, len(proposal.installments))
        zero = Money.of(0, _currency_of(self.s))
        plan = OnPlan(
            plan_id=proposal.plan_id,
            status="proposed" if needs_approval else "active",
            proposed_by=proposal.proposed_by,
            installments=[
                InstallmentState(due_date=i.due_date, amount=i.amount, paid=zero)
                for i in proposal.installments
            ],
        )
        self.enter_hold(plan)
        number = self.s.invoice.number
        self.record(
            EventKind.PLAN_PROPOSED,
            f"plan:{proposal.plan_id}",
            f"Payment plan {proposal.plan_id} of {len(proposal.installments)} installments "
            f"proposed by {proposal.proposed_by}"
            + (": awaiting a second person's approval" if needs_approval else ": active"),
            plan=PlanChange(
                plan_id=proposal.plan_id,
                status=plan.status,
                at=self.now,
                by=proposal.proposed_by,
                installments=list(proposal.installments),
                needs_approval=needs_approval,
                comment=proposal.comment or None,
            ),
            task=TaskChange(
                task_id=keys.task_id(number, "plan", proposal.plan_id),
                kind="plan_approval",
                status="open",
                at=self.now,
                due_at=self.now + self.days(playbook.approval_reminder_days),
                title=f"Approve payment plan {proposal.plan_id} on invoice {number} "
                f"(proposed by {proposal.proposed_by})",
            )
            if needs_approval
            else None,
        )

    def decide_plan(self, decision: PlanDecision) -> None:
        plan = self.s.hold
        if not isinstance(plan, OnPlan):
            return
        if decision.approve:
            plan.status = "active"
            self.s.acknowledged_on.append(self.today)
            summary = f"Payment plan {plan.plan_id} approved by {decision.decided_by}"
        else:
            self.release(grace_days=0)
            summary = f"Payment plan {plan.plan_id} rejected by {decision.decided_by}"
        self.record(
            EventKind.PLAN_DECIDED,
            f"plan:{plan.plan_id}:decided",
            summary,
            detail={"by": decision.decided_by, "comment": decision.comment},
            plan=PlanChange(
                plan_id=plan.plan_id,
                status="active" if decision.approve else "rejected",
                at=self.now,
                by=decision.decided_by,
                comment=decision.comment or None,
            ),
            task=TaskChange(
                task_id=keys.task_id(self.s.invoice.number, "plan", plan.plan_id),
                kind="plan_approval",
                status="done",
                at=self.now,
            ),
        )

    def promise(self, promise: PromiseToPay) -> None:
        if promise.promise_id in self.s.closed_refs:
            return
        self.s.closed_refs[promise.promise_id] = "promise"
        self.s.acknowledged_on.append(self.today)
        until = self.s.clock.planned_at(promise.until, 0) + self.days(
            self.s.playbook.promise_grace_days
        )
        self.enter_hold(
            Promised(
                promise_id=promise.promise_id,
                promised_for=promise.until,
                until=until,
                by=promise.recorded_by,
                note=promise.note,
            )
        )
        self.record(
            EventKind.PROMISE_RECORDED,
            f"promise:{promise.promise_id}",
            f"Promise to pay by {promise.until.isoformat()} recorded by {promise.recorded_by}",
            detail={"by": promise.recorded_by, "note": promise.note},
        )

    def pause(self, request: HoldRequest, key: str) -> None:
        ref = f"pause:{key}"
        if ref in self.s.closed_refs:
            return
        self.s.closed_refs[ref] = "pause"
        until = self.s.clock.planned_at(request.until, 0) if request.until else None
        self.enter_hold(Paused(key=key, reason=request.reason, by=request.by, until=until))
        self.record(
            EventKind.HOLD_STARTED,
            f"hold:{key}",
            f"Paused by {request.by}: {request.reason}"
            + (f" (until {request.until.isoformat()})" if request.until else ""),
            detail={"by": request.by},
        )

    def close(self, closure: Closure) -> None:
        if closure.kind == ClosureKind.CANCEL:
            # A credit note for what is left.
            self.s.ledger.credits["closure"] = self.s.outstanding
            self.end(Stage.CANCELLED)
            summary = f"Cancelled by {closure.by} (credit note): {closure.reason}"
        else:
            self.end(Stage.WRITTEN_OFF)
            summary = f"Written off by {closure.by}: {closure.reason}"
        self.record(
            EventKind.CLOSURE,
            f"closure:{closure.kind.value}",
            summary,
            detail={"by": closure.by, "credit_note": closure.credit_note_reference or ""},
        )

    def migrate(self, migration: PlaybookMigration) -> None:
        old, new = self.s.playbook, migration.playbook
        current = self.current_step()
        # Carry on from the same point: the same step if the new playbook has it, else the
        # first step not earlier than it; steps already done are not done again.
        if current is None:
            index = len(new.steps)
        else:
            index = next(
                (i for i, step in enumerate(new.steps) if step.id == current.id),
                next(
                    (i for i, s in enumerate(new.steps) if s.offset_days >= current.offset_days),
                    len(new.steps),
                ),
            )
        self.s.playbook = new
        self.s.step_index = index
        self.s.approved_step = None
        self.record(
            EventKind.PLAYBOOK_MIGRATED,
            f"playbook:{new.name}:{new.version}:{self.s.revision}",
            f"Playbook {old.name} v{old.version} → {new.name} v{new.version} by {migration.by}"
            + (f": {migration.reason}" if migration.reason else ""),
            detail={
                "by": migration.by,
                "from": f"{old.name}:{old.version}",
                "to": f"{new.name}:{new.version}",
            },
            playbook=(new.name, new.version),
        )

    def seen(self, event_id: str) -> bool:
        if event_id in self.s.seen:
            return True
        self.s.seen = [*self.s.seen[-SEEN_KEPT + 1 :], event_id]
        return False

    def delivery(self, event: DeliveryEvent) -> None:
        if self.seen(event.event_id):
            return
        if self.s.rules >= 2:
            if event.kind in UNDELIVERABLE:
                self.channel_failed(event.channel, event.step_id, event.reason or event.kind)
            return
        if event.kind not in UNDELIVERABLE or event.channel != Channel.EMAIL.value:
            return
        if self.s.email_invalid:
            return
        self.s.email_invalid = True
        known = any(step.id == event.step_id for step in self.s.playbook.steps)
        ref = f"fallback:{event.step_id}"
        # Once per step: a second bounce of it (after a correction) sends no second letter.
        if known and ref not in self.s.closed_refs and event.step_id not in self.s.fallback_due:
            self.s.fallback_due.append(event.step_id)

    def contact_corrected(self, correction: ContactCorrected) -> None:
        if self.seen(correction.event_id):
            return
        if self.s.rules >= 2:
            self.channels_corrected(correction)
            return
        was_invalid = self.s.email_invalid
        if Channel.EMAIL in correction.channels:
            # (Edition 1 knows no other channel's failure: a new number or address changes
            # nothing for it.)
            self.s.email_invalid = False
        else:
            was_invalid = False
        self.record(
            EventKind.CONTACT_CORRECTED,
            f"contact:{correction.event_id}",
            f"Contact details corrected by {correction.by}"
            + (f": {correction.reason}" if correction.reason else "")
            + ("; email is used again" if was_invalid else ""),
            detail={"by": correction.by},
        )

    def settled(self, settled: SendSettled) -> None:
        message = settled.message
        key = keys.message_key(
            self.s.invoice.number, message.step_id, message.channel, message.recipient
        )
        match settled.result:
            case SendResult.DEFERRED:
                if self.s.shown_stage not in message.wanted_in or settled.next_day is None:
                    return
                self.s.deferred.append(Deferred(message=message, day=settled.next_day))
                self.record(
                    EventKind.MESSAGE_DEFERRED,
                    f"deferred:{key}:{settled.next_day.isoformat()}",
                    f"{message.channel.value} for {message.step_id} waits for "
                    f"{settled.next_day.isoformat()}: the debtor already had a message that day",
                )
            case SendResult.UNDELIVERABLE if (
                self.s.rules >= 2 and message.recipient == Recipient.DEBTOR
            ):
                if not self.channel_failed(message.channel, message.step_id, settled.reason):
                    self.record(
                        EventKind.MESSAGE_FAILED,
                        f"failed:{message.step_id}:{message.channel.value}:debtor",
                        f"{message.channel.value} for {message.step_id} cannot reach the debtor: "
                        f"{settled.reason}",
                    )
            case SendResult.FAILED | SendResult.UNDELIVERABLE:
                # (Before rules 2, a message undeliverable at send time was only a failure.)
                self.record(
                    EventKind.MESSAGE_FAILED,
                    f"failed:{message.step_id}:{message.channel.value}:{message.recipient.value}",
                    f"{message.channel.value} to {message.recipient.value} for {message.step_id} "
                    f"failed: {settled.reason}",
                )
            case SendResult.UNKNOWN:
                self.record(
                    EventKind.MESSAGE_UNKNOWN,
                    f"unknown:{key}",
                    f"{message.channel.value} for {message.step_id} may have gone out before a "
                    "crash: a person checks the provider before anything is resent",
                    task=TaskChange(
                        task_id=keys.check_task_id(self.s.invoice.number, key),
                        kind="check_message",
                        status="open",
                        at=self.now,
                        due_at=self.now + self.days(1),
                        title=f"Check whether {message.template} for invoice "
                        f"{self.s.invoice.number} went out ({settled.reason})",
                    ),
                )
            case _:
                return

    # ---------------------------------------------------------------- the clock

    def current_step(self) -> Step | None:
        steps = self.s.playbook.steps
        return steps[self.s.step_index] if self.s.step_index < len(steps) else None

    def when(self, question: CalendarQuestion) -> datetime | None:
        """The answer the calendar gave to `question`, or None (then the machine asks)."""
        for answer in self.s.calendar_answers:
            if answer.question == question:
                return answer.at
        if self.question is None:
            self.question = question
        return None

    def advance(self) -> None:
        """Do everything due at `now`, in order, until something lies in the future."""
        # Bounded: each pass either acts (and moves the state on) or stops.
        for _ in range(4 * len(self.s.playbook.steps) + 16):
            if not self.step_once():
                return

    def step_once(self) -> bool:
        """One due thing done: True; nothing due now: False."""
        s = self.s
        if self.deferred_due():
            return True
        if s.stage in TERMINAL_STAGES:
            # An open hand-off: the legal partner acts on limitation (their action interrupts it).
            return self.with_partner()
        if self.watch_limitation():
            return True
        if s.hold is not None:
            return self.held()
        if s.fallback_due:
            self.fallback(s.fallback_due.pop(0))
            return True
        if s.approval is not None:
            if self.now < s.approval.remind_at:
                return False
            self.remind_approval()
            return True
        step = self.current_step()
        if step is not None and s.rules >= 3 and overtaken_before_due(s, step, self.now):
            # Rules 3: skipped at once, not at the next send window (skipping sends nothing).
            # Until then an invoice handed over at 19:00, three days past due, showed "upcoming".
            self.do_step(step)
            return True
        before_due = step is not None and step.stage == Stage.UPCOMING
        if s.stage == Stage.UPCOMING and self.now >= self.overdue_at() and not before_due:
            s.stage = Stage.OVERDUE
            self.record(
                EventKind.STAGE_CHANGED, "stage:overdue", "Due date passed: invoice overdue"
            )
            return True
        if step is None:
            return False
        at = self.when(step_question(s, step))
        if at is None or at > self.now:
            return False
        if self.late(at):
            # Caught up after a late hand-over or an outage: not at once, whatever the hour,
            # but at the next moment the calendar allows from now.
            s.not_before = self.now
            return True
        self.do_step(step)
        return True

    def late(self, at: datetime) -> bool:
        """Whether a moment the calendar gave is long past (a timer fires at it, not later):
        ten minutes of a day, and never less than a few real seconds of timer latency (a demo
        day of a second would otherwise count every timer as late)."""
        tolerance = max(self.days(CATCH_UP_DAYS), timedelta(seconds=CATCH_UP_FLOOR_SECONDS))
        return self.now - at > tolerance

    def deferred_due(self) -> bool:
        """A message that found its day used goes out on its day, if the invoice still wants it
        (a thank-you still goes out after the end; a reminder waits out a hold, never a payment)."""
        s = self.s
        for deferred in list(s.deferred):
            if s.shown_stage not in deferred.message.wanted_in:
                if s.stage in TERMINAL_STAGES:
                    s.deferred.remove(deferred)
                continue
            at = self.when(deferred.question)
            if at is not None and self.late(at):
                deferred.earliest = self.clock_real(self.now)
                return True
            if at is not None and at <= self.now:
                s.deferred.remove(deferred)
                self.send(deferred.message, as_of=deferred.day)
                if s.stage not in TERMINAL_STAGES:
                    s.last_action_at = self.now
                return True
        return False

    def clock_real(self, moment: datetime) -> datetime:
        return self.s.clock.expand(moment)

    def overdue_at(self) -> datetime:
        return self.s.clock.planned_at(self.s.invoice.due_date, 1)

    def do_step(self, step: Step) -> None:
        s = self.s
        reason = skip_reason(s, step, self.now)
        if reason is not None:
            s.step_index += 1
            self.record(EventKind.STEP_SKIPPED, f"skip:{step.id}", f"Skipped {step.id}: {reason}")
            return
        if step.requires_approval and s.approved_step != step.id:
            self.request_approval(step)
            return
        s.approved_step = None
        s.stage = step.stage
        channels = self.channels(step)
        if not channels and s.rules >= 2:
            self.unreachable(step)
        for channel in channels:
            if channel == Channel.PHONE:
                self.call_task(step)
            else:
                self.send(self.step_message(step, channel, Recipient.DEBTOR, step.template))
        for recipient in step.notify:
            self.send(self.step_message(step, Channel.EMAIL, recipient, FILE_TEMPLATES[recipient]))
        s.step_index += 1
        s.last_action_at = self.now
        if step.stage == Stage.LEGAL:
            s.stage = Stage.HANDED_OFF
        self.record(EventKind.STEP_DONE, f"step:{step.id}", f"Step {step.id} done")
        if _open_hand_off(s):
            self.handed_off()

    def call_task(self, step: Step) -> None:
        """A phone step is work for a collector: a call task, answered through the API."""
        number = self.s.invoice.number
        self.record(
            EventKind.TASK_OPENED,
            f"task:{step.id}:call",
            f"Call the debtor about invoice {number} ({step.id})",
            task=TaskChange(
                task_id=keys.task_id(number, "call", step.id),
                kind="call",
                status="open",
                at=self.now,
                title=f"Call about invoice {number} ({step.id})",
                due_at=self.now + self.days(self.s.playbook.call_task_days),
            ),
        )

    def step_message(
        self, step: Step, channel: Channel, recipient: Recipient, template: str
    ) -> Message:
        return Message(
            step_id=step.id,
            channel=channel,
            recipient=recipient,
            template=template,
            tone=step.tone,
            wanted_in=ESCALATING,
            stage=step.stage,
        )

    def request_approval(self, step: Step) -> None:
        rounds = self.s.approval_rounds.get(step.id, 0) + 1
        self.s.approval_rounds[step.id] = rounds
        pending = Approval(
            approval_id=keys.approval_id(self.s.invoice.number, step.id, rounds),
            step_id=step.id,
            target_stage=step.stage,
            requested_at=self.now,
            remind_at=self.now + self.days(self.s.playbook.approval_reminder_days),
        )
        self.s.approval = pending
        self.record(
            EventKind.APPROVAL_REQUESTED,
            f"approval:{pending.approval_id}",
            f"Escalation to {step.stage} awaits a collector's approval",
            approval=self.approval_change(pending, ApprovalStatus.PENDING),
        )

    def remind_approval(self) -> None:
        pending = self.s.approval
        if pending is None:
            return
        pending.reminders += 1
        pending.remind_at = self.now + self.days(self.s.playbook.approval_reminder_repeat_days)
        round_ = self.s.approval_rounds.get(pending.step_id, 1)
        self.to_collectors(
            f"{pending.step_id}_approval{round_}_reminder{pending.reminders}",
            "approval_reminder",
            ESCALATION_ORDER,
        )
        self.record(
            EventKind.APPROVAL_REMINDER,
            f"approval:{pending.approval_id}:reminder{pending.reminders}",
            f"Collectors reminded of approval {pending.approval_id}",
            approval=self.approval_change(pending, ApprovalStatus.PENDING),
        )

    def fallback(self, step_id: str) -> None:
        """The email of `step_id` bounced: the step goes out again on its fallback channels."""
        if self.s.rules >= 2:
            self.fallback_from(step_id)
            return
        step = next((s for s in self.s.playbook.steps if s.id == step_id), None)
        if step is None:
            return
        self.s.closed_refs[f"fallback:{step_id}"] = "sent"
        for channel in step.fallback:
            message = self.step_message(step, channel, Recipient.DEBTOR, step.template)
            self.send(message.model_copy(update={"step_id": f"{step.id}_fallback"}))
        self.record(
            EventKind.FALLBACK,
            f"fallback:{step.id}",
            f"Email for {step.id} undeliverable: sent again by "
            + ", ".join(c.value for c in step.fallback),
        )

    # ---------------------------------------------------------------- every channel (rules 2)

    def usable_channels(self, step: Step) -> list[Channel]:
        """The step's channels, each that cannot reach the debtor replaced by the step's
        fallback channels that still can."""
        channels: list[Channel] = []
        for channel in step.channels:
            replacements = self.fallbacks(step) if channel_invalid(self.s, channel) else [channel]
            channels += [c for c in replacements if c not in channels]
        return channels

    def fallbacks(self, step: Step) -> list[Channel]:
        return [c for c in step.fallback if not channel_invalid(self.s, c)]

    def channel_failed(self, value: str, step_id: str, reason: str) -> bool:
        """A channel did not reach the debtor: it is not used again until the contact is
        corrected, and the step it failed for goes out again on its fallback (once per step).
        False if the channel was already known not to reach them."""
        try:
            channel = Channel(value)
        except ValueError:
            return False
        if channel_invalid(self.s, channel):
            return False
        if channel == Channel.EMAIL:
            self.s.email_invalid = True
        else:
            self.s.invalid_channels.append(channel)
            self.record(
                EventKind.CHANNEL_INVALID,
                f"invalid:{channel.value}:{self.s.revision}",
                f"{CHANNEL_NAMES[channel]} cannot reach the debtor ({reason}): not used again "
                "until the contact is corrected",
                detail={"channel": channel.value, "step": step_id, "reason": reason},
            )
        ref = f"fallback:{step_id}"
        known = any(step.id == step_id for step in self.s.playbook.steps)
        if known and ref not in self.s.closed_refs and step_id not in self.s.fallback_due:
            self.s.closed_refs[ref] = f"due:{channel.value}"
            self.s.fallback_due.append(step_id)
        base = step_id.removesuffix("_fallback")
        step = next((st for st in self.s.playbook.steps if st.id == base), None)
        # The fallback itself failed (a message, or a call, which is the step's own task): if
        # nothing else of the step can reach them, a person.
        fell_back = base != step_id or self.s.closed_refs.get(f"fallback:{base}") == "sent"
        if (
            step is not None
            and fell_back
            and all(channel_invalid(self.s, c) for c in (*step.channels, *step.fallback))
        ):
            self.unreachable(step)
        return True

    def fallback_from(self, step_id: str) -> None:
        """A channel of `step_id` did not reach the debtor: the step goes out again on its
        fallback channels that still can, other than those it already used."""
        step = next((s for s in self.s.playbook.steps if s.id == step_id), None)
        if step is None:
            return
        ref = f"fallback:{step_id}"
        due = self.s.closed_refs.get(ref, "")
        failed = Channel(due.removeprefix("due:")) if due.startswith("due:") else Channel.EMAIL
        self.s.closed_refs[ref] = "sent"
        used = [c for c in step.channels if c != failed and not channel_invalid(self.s, c)]
        channels = [c for c in self.fallbacks(step) if c not in used]
        for channel in channels:
            if channel == Channel.PHONE:
                self.call_task(step)
                continue
            message = self.step_message(step, channel, Recipient.DEBTOR, step.template)
            self.send(message.model_copy(update={"step_id": f"{step.id}_fallback"}))
        then = (
            "sent again by " + ", ".join(c.value for c in channels)
            if channels
            else "no other channel of the step can reach the debtor; correct the contact"
        )
        if failed == Channel.EMAIL:
            self.record(
                EventKind.FALLBACK,
                f"fallback:{step.id}",
                f"Email for {step.id} undeliverable: {then}",
            )
        else:
            self.record(
                EventKind.CHANNEL_FALLBACK,
                f"fallback:{step.id}:{failed.value}",
                f"{CHANNEL_NAMES[failed]} for {step.id} did not reach the debtor: {then}",
                detail={"failed": failed.value, "fallback": ",".join(c.value for c in channels)},
            )
        if not channels and not used:
            self.unreachable(step)

    def unreachable(self, step: Step) -> None:
        """Nothing of `step` can reach the debtor (each of its channels and fallbacks is known
        not to): a collector gets a task to correct the contact, once per step."""
        ref = f"unreachable:{step.id}"
        if ref in self.s.closed_refs:
            return
        self.s.closed_refs[ref] = "task"
        number = self.s.invoice.number
        title = f"No channel reaches the debtor of invoice {number}: correct the contact"
        self.record(
            EventKind.TASK_OPENED,
            f"task:{step.id}:contact",
            f"{title} ({step.id} went to nobody)",
            detail={"step": step.id},
            task=TaskChange(
                task_id=keys.contact_task_id(number, step.id),
                kind="contact",
                status="open",
                at=self.now,
                title=title,
                due_at=self.now + self.days(1),
            ),
        )

    def channels_corrected(self, correction: ContactCorrected) -> None:
        """The contact was corrected: the channels it names are used again."""
        cleared = [c for c in correction.channels if channel_invalid(self.s, c)]
        if Channel.EMAIL in correction.channels:
            self.s.email_invalid = False
        self.s.invalid_channels = [
            c for c in self.s.invalid_channels if c not in correction.channels
        ]
        used_again = ", ".join(c.value for c in cleared)
        self.record(
            EventKind.CONTACT_CORRECTED,
            f"contact:{correction.event_id}",
            f"Contact details corrected by {correction.by}"
            + (f": {correction.reason}" if correction.reason else "")
            + (
                f"; {used_again} {'is' if len(cleared) == 1 else 'are'} used again"
                if cleared
                else ""
            ),
            detail={
                "by": correction.by,
                "channels": ",".join(c.value for c in correction.channels),
            },
        )
        if cleared:
            self.close_contact_tasks(correction.by)

    def close_contact_tasks(self, by: str) -> None:
        """A channel reaches the debtor again: the tasks asking to correct the contact are done
        (a step's task is still never opened twice)."""
        number = self.s.invoice.number
        for ref, value in list(self.s.closed_refs.items()):
            if not ref.startswith("unreachable:") or value != "task":
                continue
            step_id = ref.removeprefix("unreachable:")
            self.s.closed_refs[ref] = "done"
            self.record(
                EventKind.CONTACT_TASK_CLOSED,
                f"task:{step_id}:contact:done",
                f"The contact was corrected by {by}: the task to correct it ({step_id}) is done",
                detail={"step": step_id},
                task=TaskChange(
                    task_id=keys.contact_task_id(number, step_id),
                    kind="contact",
                    status="done",
                    at=self.now,
                ),
            )

    def letter_received(self, received: LetterReceived) -> None:
        """A registered letter's acknowledgment of receipt: recorded; for the formal notice
        whose deadline runs from receipt, later steps wait until that deadline passed."""
        if self.seen(received.event_id):
            return
        s = self.s
        step_id = received.step_id.removesuffix("_fallback")
        step = next((st for st in s.playbook.steps if st.id == step_id), None)
        s.received_on[received.step_id] = received.received_on
        deadline = None
        if (
            step is not None
            and step.stage == Stage.FORMAL_NOTICE
            and s.playbook.notice_deadline_from == "receipt"
            and received.deadline is not None
        ):
            deadline = received.deadline
            s.notice_deadline = max(deadline, s.notice_deadline or deadline)
        on = received.received_on.isoformat()
        detail = {"step": received.step_id, "received_on": on}
        if deadline is not None:
            detail["deadline"] = deadline.isoformat()
        self.record(
            EventKind.LETTER_RECEIVED,
            f"received:{received.step_id}",
            f"Registered letter for {received.step_id} received on {on}"
            + (
                f": the formal notice's deadline is {deadline.isoformat()}, the next step waits "
                "for it"
                if deadline is not None
                else ""
            ),
            detail=detail,
        )

    def held(self) -> bool:
        s, now, hold = self.s, self.now, self.s.hold
        match hold:
            case Disputed() if now >= hold.deadline:
                hold.reminders += 1
                hold.deadline = now + self.days(s.playbook.approval_reminder_repeat_days)
                self.to_collectors(
                    f"dispute_{hold.dispute_id}_reminder{hold.reminders}",
                    "dispute_reminder",
                    (Stage.DISPUTED,),
                )
                self.record(
                    EventKind.DISPUTE_REMINDER,
                    f"dispute:{hold.dispute_id}:reminder{hold.reminders}",
                    f"Dispute {hold.dispute_id} past its resolution deadline: collectors reminded",
                )
                return True
            case OnPlan(status="active"):
                return self.plan_due(hold)
            case Promised() if now >= hold.until:
                self.release(grace_days=0)
                self.record(
                    EventKind.PROMISE_BROKEN,
                    f"promise:{hold.promise_id}:broken",
                    f"Promise to pay {hold.promise_id} not kept: escalation resumes",
                )
                return True
            case Paused(until=datetime() as until) if now >= until:
                since = s.held_since or now
                self.release(grace_days=0)
                self.record(
                    EventKind.HOLD_ENDED,
                    f"hold:{since.isoformat()}:ended",
                    "Pause ended: escalation resumes",
                )
                return True
        return False

    def plan_due(self, plan: OnPlan) -> bool:
        playbook = self.s.playbook
        for number, item in enumerate(plan.installments, start=1):
            if item.settled:
                continue
            due = self.s.clock.planned_at(item.due_date, 0)
            if not item.reminded and self.now >= due - self.days(
                playbook.installment_reminder_days
            ):
                item.reminded = True
                self.to_debtor(
                    f"plan_{plan.plan_id}_installment{number}",
                    "installment_reminder",
                    Tone.COURTEOUS,
                    (Stage.PAYMENT_PLAN,),
                    installment_amount=item.amount,
                    installment_due_date=item.due_date,
                )
                return True
            if self.now >= due + self.days(playbook.installment_grace_days):
                self.release(grace_days=0)
                self.record(
                    EventKind.PLAN_BROKEN,
                    f"plan:{plan.plan_id}:broken",
                    f"Installment {number} of plan {plan.plan_id} missed: plan broken, "
                    "escalation resumes",
                    plan=PlanChange(
                        plan_id=plan.plan_id, status="broken", at=self.now, by="relance"
                    ),
                )
                return True
            return False
        return False

    # ---------------------------------------------------------------- the end

    def end(self, stage: Stage) -> None:
        if _open_hand_off(self.s) and stage != Stage.HANDED_OFF:
            self.tell_partner(stage)
        self.s.stage = stage

    def settle_end(self) -> None:
        """An invoice that ends closes what it left open, thanks a payer, and says so once."""
        s = self.s
        if not ended(s) or s.closed:
            return
        s.closed = True
        s.deferred = []
        s.fallback_due = []
        self.withdraw_approval()
        hold = s.hold
        s.hold, s.held_since = None, None
        if isinstance(hold, Disputed):
            self.record(
                EventKind.DISPUTE_RESOLVED,
                f"dispute:{hold.dispute_id}:closed",
                f"Dispute {hold.dispute_id} closed: invoice {s.stage}",
                dispute=DisputeChange(
                    dispute_id=hold.dispute_id,
                    status="closed",
                    at=self.now,
                    by="relance",
                    resolution=f"invoice {s.stage}",
                ),
                task=TaskChange(
                    task_id=keys.task_id(s.invoice.number, "dispute", hold.dispute_id),
                    kind="dispute",
                    status="cancelled",
                    at=self.now,
                ),
            )
        if isinstance(hold, OnPlan):
            status = "completed" if s.stage == Stage.PAID else "cancelled"
            self.record(
                EventKind.PLAN_ENDED,
                f"plan:{hold.plan_id}:{status}",
                f"Payment plan {hold.plan_id} {status}",
                plan=PlanChange(plan_id=hold.plan_id, status=status, at=self.now, by="relance"),
            )
        if s.stage == Stage.PAID:
            paid = s.ledger.paid
            self.to_debtor("thank_you", "thank_you", Tone.FRIENDLY, (Stage.PAID,), paid=paid)
            self.ask_late_costs()
        self.end_limitation_watch()
        legal = s.legal
        end = f"{s.stage}, legal file {legal.status}" if _open_hand_off(s) and legal else s.stage
        self.record(
            EventKind.CLOSED,
            "closed",
            f"Collection ended: {end}",
            notice_data=legal_data(legal) if _open_hand_off(s) else None,
        )

    def ask_late_costs(self) -> None:
        """Paid after its due date: the interest to each payment's day and the 40 € are owed
        (L441-10 II, D441-5), whatever the playbook then does with them."""
        s = self.s
        payments = [
            Paid(received_on=p.received_on or self.today, amount=p.result.amount)
            for p in s.ledger.payments.values()
        ]
        if s.playbook.late_payment_costs == LatePaymentCostsAction.NONE or not payments:
            return
        if max(p.received_on for p in payments) <= s.invoice.due_date:
            return
        owed = Money.of(
            max(s.ledger.amount.amount - s.ledger.credited.amount, Decimal(0)),
            s.ledger.amount.currency,
        )
        self.effects.append(ComputeLateCosts(payments=payments, owed=owed))

    def late_costs(self, computed: LateCostsComputed) -> None:
        costs = computed.costs
        if costs is None:
            if computed.error:
                self.record(
                    EventKind.LATE_PAYMENT_COSTS,
                    "late_costs",
                    f"Paid late, but its late-payment costs are not computed: {computed.error}",
                )
            self.paid_notice({"late_payment_costs_error": computed.error} if computed.error else {})
            return
        detail = late_costs_data(costs)
        self.record(
            EventKind.LATE_PAYMENT_COSTS,
            "late_costs",
            f"Paid {costs.days_late} days late: {costs.interest} interest and {costs.indemnity} "
            f"indemnity owed (L441-10 II, D441-5), {costs.total} in all"
            + (" (provisional rate)" if costs.provisional else ""),
            detail=detail,
            late_costs=costs,
        )
        self.paid_notice(detail)
        if self.s.playbook.late_payment_costs == LatePaymentCostsAction.STATEMENT:
            self.to_debtor(
                "late_payment_statement",
                LATE_PAYMENT_STATEMENT_TEMPLATE,
                Tone.FORMAL,
                (Stage.PAID,),
            )

    def paid_awaits_costs(self) -> bool:
        """Rules 2: an invoice paid late tells the back office `paid` once its late-payment
        costs are known, with them, rather than before them (the costs are an activity's
        answer, after the settlement)."""
        return self.s.rules >= 2 and any(isinstance(e, ComputeLateCosts) for e in self.effects)

    def paid_notice(self, data: dict[str, str]) -> None:
        """The `paid` notice held back by `paid_awaits_costs`, now with the costs."""
        s = self.s
        if s.rules < 2 or s.stage != Stage.PAID:
            return
        notice = CLOSING_NOTICES[Stage.PAID]
        self.effects.append(
            Notify(
                kind=notice,
                event_id=keys.backoffice_event_id(s.invoice.number, notice, "closed"),
                stage=s.shown_stage,
                outstanding=s.outstanding,
                at=self.now,
                data=data,
            )
        )

    # ---------------------------------------------------------------- limitation

    def watch_limitation(self) -> bool:
        """Rules 2: six months before the claim becomes time-barred, a collector task: act
        (a court action interrupts limitation) or get the debt acknowledged. Once per
        limitation date; when an acknowledgment moves the date, the old warning is answered."""
        s = self.s
        if s.rules < 2:
            return False
        limitation = limitation_of(s, self.today)
        warned = s.limitation_warned
        if warned is not None and warned != limitation.limitation_date:
            s.limitation_warned = None
            self.limitation_task(warned, "done", "acknowledged: limitation starts afresh")
            return True
        if warned is not None or not limitation.warn:
            return False
        s.limitation_warned = limitation.limitation_date
        self.limitation_task(limitation.limitation_date, "open", "")
        return True

    def end_limitation_watch(self) -> None:
        """An invoice paid, cancelled or written off needs no action before its limitation
        date (a handed-off one does: its partner must act in time)."""
        s = self.s
        warned = s.limitation_warned
        if warned is None or s.stage == Stage.HANDED_OFF:
            return
        s.limitation_warned = None
        self.limitation_task(warned, "cancelled", f"invoice {s.stage}")

    def limitation_task(self, deadline: date, status: str, why: str) -> None:
        number, day = self.s.invoice.number, deadline.isoformat()
        title = f"Invoice {number}: limitation on {day}: act or acknowledge"
        summary = (
            f"{title} (5 years, Code de commerce L110-4; a formal notice does not interrupt it)"
            if status == "open"
            else f"Limitation warning for {day} {status}: {why}"
        )
        self.record(
            EventKind.TASK_OPENED if status == "open" else EventKind.LIMITATION_WARNING_CLOSED,
            f"limitation:{day}" if status == "open" else f"limitation:{day}:{status}",
            summary,
            detail={"limitation_date": day},
            task=TaskChange(
                task_id=keys.limitation_task_id(number, deadline),
                kind="limitation",
                status=status,
                at=self.now,
                title=title,
                due_at=self.s.clock.planned_at(deadline, 0),
            ),
        )

    # ---------------------------------------------------------------- mediation and legal

    def mediation_ended(self, result: MediationResult) -> None:
        s = self.s
        known = s.mediation
        if known is not None and (known.outcome, known.mediator_reference) == (
            result.outcome,
            result.mediator_reference,
        ):
            return
        ref = result.mediator_reference
        s.mediation = Mediation(
            outcome=result.outcome,
            mediator_reference=ref,
            started_on=result.started_on,
            ended_on=result.ended_on,
            recorded_at=self.now,
        )
        plan = _agreed_plan(result) if result.outcome == MediationOutcome.AGREEMENT else None
        match result.outcome:
            case MediationOutcome.AGREEMENT:
                # A signed agreement acknowledges the debt (Civil code 2240).
                s.acknowledged_on.append(result.ended_on)
                summary = f"Mediation {ref} ended in an agreement: payment plan proposed"
            case MediationOutcome.FAILURE:
                step = self.current_step()
                if step is not None and step.stage == Stage.LEGAL:
                    # An earlier rejection waited for the mediation: the legal step is asked now.
                    s.retry_at.pop(step.id, None)
                    s.rejection_note = None
                summary = f"Mediation {ref} failed: the escalation goes on to the legal step"
            case _:
                summary = f"Mediation {ref} withdrawn: the escalation carries on where it was"
        self.record(
            EventKind.MEDIATION_ENDED,
            f"mediation:{ref}:{result.outcome.value}",
            f"{summary} (recorded by {result.recorded_by})"
            + (f": {result.note}" if result.note else ""),
            detail={
                "outcome": result.outcome.value,
                "mediator_reference": ref,
                "started_on": result.started_on.isoformat(),
                "ended_on": result.ended_on.isoformat(),
                "by": result.recorded_by,
                "note": result.note,
                "plan_id": plan.plan_id if plan else "",
            },
        )
        if plan is not None:
            self.propose_plan(plan)

    def handed_off(self) -> None:
        """Rules 2: the hand-off is a stage, not the end; the back office is told of it."""
        self.record(
            EventKind.HANDED_OFF,
            "handed_off",
            "File handed off to the legal partner: payments and their progress are still "
            "recorded here",
        )

    def legal_ending_notice(self) -> str | None:
        """Rules 2: the notice of a file the partner settled or abandoned."""
        legal = self.s.legal
        if self.s.rules < 2 or legal is None:
            return None
        return LEGAL_ENDING_NOTICES.get(legal.status)

    def with_partner(self) -> bool:
        """Handed off and open: nothing is planned, but a bounced hand-off message goes again by
        its fallback (an earlier reminder's bounce is moot now: the partner has the file)."""
        s = self.s
        if ended(s) or not s.fallback_due:
            return False
        step_id = s.fallback_due.pop(0)
        if any(step.id == step_id and step.stage == Stage.LEGAL for step in s.playbook.steps):
            self.fallback(step_id)
        return True

    def legal_update(self, update: LegalUpdate) -> None:
        s = self.s
        before = s.legal
        reference = update.partner_reference or (before.partner_reference if before else None)
        costs = update.costs or (before.costs if before else None)
        s.legal = LegalFile(
            status=update.status, partner_reference=reference, costs=costs, updated_at=self.now
        )
        self.record(
            EventKind.LEGAL_UPDATED,
            f"legal:{s.revision}",
            f"Legal file{f' {reference}' if reference else ''}: {update.status.value}"
            + (f", costs {costs}" if costs else "")
            + f" (recorded by {update.by})"
            + (f": {update.note}" if update.note else ""),
            detail={
                "status": update.status.value,
                "partner_reference": reference or "",
                "costs": str(costs.amount) if costs else "",
                "currency": costs.currency if costs else "",
                "by": update.by,
                "note": update.note,
            },
            notice_data=legal_data(s.legal),
        )

    def tell_partner(self, stage: Stage) -> None:
        """Paid, cancelled or written off after the hand-off: the legal partner stops."""
        self.send(
            Message(
                step_id=f"legal_{stage.value}",
                channel=Channel.EMAIL,
                recipient=Recipient.LEGAL_PARTNER,
                template=LEGAL_CLOSED_TEMPLATE,
                tone=Tone.FORMAL,
                wanted_in=(stage,),
                stage=stage,
                paid=self.s.ledger.paid if stage == Stage.PAID else None,
            )
        )


def legal_data(legal: LegalFile | None) -> dict[str, str]:
    """The legal file as the back office gets it, flat strings (no collector, no notes)."""
    if legal is None:
        return {}
    costs = legal.costs
    return {
        "status": legal.status.value,
        "partner_reference": legal.partner_reference or "",
        "costs": str(costs.amount) if costs else "",
        "currency": costs.currency if costs else "",
    }


def late_costs_data(costs: LatePaymentCosts) -> dict[str, str]:
    """The late-payment costs as flat strings, for the timeline and the back office."""
    return {
        "interest": str(costs.interest.amount),
        "indemnity": str(costs.indemnity.amount),
        "indemnity_currency": costs.indemnity.currency,
        "total": str(costs.total.amount),
        "currency": costs.total.currency,
        "paid_on": costs.paid_on.isoformat(),
        "days_late": str(costs.days_late),
        "provisional": str(costs.provisional).lower(),
    }


def limitation_of(state: CollectionState, today: date) -> LimitationStatus:
    """The claim against limitation on `today`, from the acknowledgments the state holds."""
    return limitation_status(state.invoice.due_date, state.acknowledged_on, today)


def shown_limitation(state: CollectionState) -> date | None:
    """The limitation date people see; None once nothing is owed (paid or cancelled)."""
    if state.stage in (Stage.PAID, Stage.CANCELLED):
        return None
    return limitation_of(state, state.invoice.due_date).limitation_date


def limitation_wake_at(state: CollectionState, now: datetime) -> list[datetime]:
    """When `watch_limitation` has something to do (rules 2 only: saved histories replay)."""
    if state.rules < 2 or state.stage in TERMINAL_STAGES:
        return []
    limitation = limitation_of(state, state.clock.calendar_date(now))
    warned = state.limitation_warned
    if warned is not None:
        return [now] if warned != limitation.limitation_date else []
    if limitation.time_barred:
        return []
    return [state.clock.planned_at(limitation.warn_from, 0)]


def _open_hand_off(state: CollectionState) -> bool:
    """Handed off under rules 2: the file is with the legal partner, the invoice still open."""
    return state.stage == Stage.HANDED_OFF and state.rules >= 2


# ---------------------------------------------------------------------------------- planning


def step_question(state: CollectionState, step: Step) -> CalendarQuestion:
    """The calendar question that places `step`: its day, moved by the time frozen, and never
    before the gap since the last action, a rejection's retry date or a grace period."""
    clock = state.clock
    floors = [state.not_before, state.retry_at.get(step.id)]
    if state.last_action_at is not None:
        floors.append(state.last_action_at + clock.days(state.playbook.min_gap_days))
    if state.notice_deadline is not None:
        # The formal notice's deadline ran from receipt: nothing follows before it passed.
        floors.append(clock.planned_at(state.notice_deadline, 1))
    earliest = max((f for f in floors if f is not None), default=None)
    day = state.invoice.due_date + timedelta(days=step.offset_days)
    return CalendarQuestion(
        day=_after_mediation(state, step, day),
        delay_seconds=state.shift_seconds / clock.scale,
        earliest=clock.expand(earliest) if earliest is not None else None,
    )


def _after_mediation(state: CollectionState, step: Step, day: date) -> date:
    """A failed mediation brings the legal step forward: its approval is asked at once, not on
    the playbook's day (a withdrawn one leaves the escalation where it was)."""
    mediation = state.mediation
    if (
        mediation is None
        or mediation.outcome != MediationOutcome.FAILURE
        or step.stage != Stage.LEGAL
    ):
        return day
    return min(day, state.clock.calendar_date(mediation.recorded_at))


def nominal_at(state: CollectionState, step: Step) -> datetime:
    """The step's planned moment before the calendar places it (shifted by frozen time)."""
    at = state.clock.planned_at(state.invoice.due_date, step.offset_days)
    return at + timedelta(seconds=state.shift_seconds)


def overtaken_before_due(state: CollectionState, step: Step, now: datetime) -> bool:
    """A step meant before the due date that the due date has overtaken: it will only ever be
    skipped, since time does not go back."""
    return step.stage == Stage.UPCOMING and now >= state.clock.planned_at(state.invoice.due_date, 0)


def skip_reason(state: CollectionState, step: Step, now: datetime) -> str | None:
    clock = state.clock
    if overtaken_before_due(state, step, now):
        return "the due date has already passed"
    if step.stage in (Stage.FORMAL_NOTICE, Stage.LEGAL):
        today = clock.calendar_date(now)
        limitation = limitation_of(state, today)
        if limitation.time_barred:
            return (
                "the claim is time-barred: the last day to act on it was "
                f"{limitation.limitation_date.isoformat()} (5 years, Code de commerce L110-4)"
            )
    following = state.playbook.steps[state.step_index + 1 :]
    if (
        following
        and not step.requires_approval
        and following[0].stage == step.stage
        and nominal_at(state, following[0]) <= now
    ):
        return f"{following[0].id} is already due; only the latest reminder is sent"
    return None


def _answer(state: CollectionState, question: CalendarQuestion) -> CalendarAnswer | None:
    return next((a for a in state.calendar_answers if a.question == question), None)


def _answer_at(state: CollectionState, question: CalendarQuestion, now: datetime) -> datetime:
    """When the calendar placed `question`; `now` while it has not answered (ask it now)."""
    answer = _answer(state, question)
    return answer.at if answer else now


def _step_at(state: CollectionState, step: Step) -> datetime:
    answer = _answer(state, step_question(state, step))
    if answer is not None:
        return answer.at
    return max(nominal_at(state, step), state.not_before or nominal_at(state, step))


def hold_wake_at(state: CollectionState, now: datetime) -> datetime:
    """When a held invoice next needs attention (an endless hold still wakes now and then)."""
    clock, playbook, hold = state.clock, state.playbook, state.hold
    candidates = [now + clock.days(IDLE_TICK_DAYS)]
    match hold:
        case Paused(until=datetime() as until):
            candidates.append(until)
        case Promised():
            candidates.append(hold.until)
        case Disputed():
            candidates.append(hold.deadline)
        case OnPlan(status="active"):
            for item in hold.installments:
                if item.settled:
                    continue
                due = clock.planned_at(item.due_date, 0)
                if not item.reminded:
                    candidates.append(due - clock.days(playbook.installment_reminder_days))
                candidates.append(due + clock.days(playbook.installment_grace_days))
                break
    return min(candidates)


def wake_at(state: CollectionState, now: datetime) -> datetime | None:
    """When `tick` has something to do next (None: the collection has ended)."""
    deferred = [
        _answer_at(state, d.question, now)
        for d in state.deferred
        if state.shown_stage in d.message.wanted_in
    ]
    if state.stage in TERMINAL_STAGES:
        if state.fallback_due and not ended(state):
            deferred.append(now)
        return min(deferred, default=None)
    # Deferred messages, and the limitation warning (which a hold does not stop).
    due = [*deferred, *limitation_wake_at(state, now)]
    if state.hold is not None:
        return min([hold_wake_at(state, now), *due])
    candidates = [now + state.clock.days(IDLE_TICK_DAYS), *due]
    if state.fallback_due:
        candidates.append(now)
    if state.approval is not None:
        candidates.append(state.approval.remind_at)
        return min(candidates)
    step = _current(state)
    if state.stage == Stage.UPCOMING and (step is None or step.stage != Stage.UPCOMING):
        # (A pre-reminder still to place comes first: the due date passes after it.)
        candidates.append(state.clock.planned_at(state.invoice.due_date, 1))
    if step is not None:
        candidates.append(_answer_at(state, step_question(state, step), now))
    return min(candidates)


def channel_invalid(state: CollectionState, channel: Channel) -> bool:
    """Whether `channel` is known not to reach the debtor (until the contact is corrected)."""
    if channel == Channel.EMAIL:
        return state.email_invalid
    return channel in state.invalid_channels


def _current(state: CollectionState) -> Step | None:
    steps = state.playbook.steps
    return steps[state.step_index] if state.step_index < len(steps) else None


def next_step(state: CollectionState, now: datetime) -> NextStep | None:
    """What comes next and when, from the state alone (the status query and read model)."""
    if state.stage in TERMINAL_STAGES:
        return None
    hold = state.hold
    if hold is not None:
        since = state.held_since or now
        reason = getattr(hold, "reason", "") or getattr(hold, "note", "")
        return NextStep(
            step_id=f"{state.shown_stage.value}_ends",
            stage=state.stage,
            at=hold_wake_at(state, now),
            note=f"escalation frozen ({state.shown_stage.value}) since {since.isoformat()}"
            + (f": {reason}" if reason else ""),
        )
    step = _current(state)
    overdue_at = state.clock.planned_at(state.invoice.due_date, 1)
    if state.stage == Stage.UPCOMING and (step is None or _step_at(state, step) > overdue_at):
        return NextStep(step_id=DUE_DATE_PASSES, stage=Stage.OVERDUE, at=overdue_at)
    if step is None:
        return None
    note = None
    if state.approval is not None:
        note = f"awaiting decision on approval {state.approval.approval_id}"
    elif step.id in state.retry_at:
        note = state.rejection_note
    elif state.notice_deadline is not None and now < state.clock.planned_at(
        state.notice_deadline, 1
    ):
        note = (
            f"waits for the formal notice's deadline, {state.notice_deadline.isoformat()} "
            "(counted from its receipt)"
        )
    emails = Channel.EMAIL in step.channels and not state.email_invalid
    return NextStep(
        step_id=step.id,
        stage=step.stage,
        at=_step_at(state, step),
        needs_approval=step.requires_approval,
        note=note,
        message_key=(
            keys.message_key(state.invoice.number, step.id, Channel.EMAIL, Recipient.DEBTOR)
            if emails and not step.requires_approval
            else None
        ),
    )


def status(state: CollectionState, now: datetime) -> InvoiceStatus:
    approval = state.approval
    return InvoiceStatus(
        number=state.invoice.number,
        stage=state.shown_stage,
        outstanding=state.outstanding,
        next_step=next_step(state, now),
        pending_approval=PendingApproval(
            approval_id=approval.approval_id,
            step_id=approval.step_id,
            target_stage=approval.target_stage,
            requested_at=approval.requested_at,
        )
        if approval
        else None,
        overpayment=state.ledger.overpayment if state.stage == Stage.PAID else None,
        revision=state.revision,
        limitation_date=shown_limitation(state),
    )


def new_state(
    invoice: InvoiceFacts,
    playbook: Playbook,
    day_seconds: float,
    now: datetime,
    rules: int = RULES_LATEST,
) -> CollectionState:
    return CollectionState(
        invoice=invoice,
        playbook=playbook,
        day_seconds=day_seconds,
        anchor=now,
        ledger=Ledger(amount=invoice.amount),
        rules=rules,
    )
