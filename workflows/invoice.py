"""One invoice's collection, from the courtesy pre-reminder to payment or legal hand-off.

The workflow decides *what happens when*; activities do everything outside (store, email).
It holds one small state model, which it carries through continue-as-new.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.messaging import MessagingActivities, SendRequest
    from activities.progress import (
        ApprovalChange,
        EventKind,
        PaymentChange,
        ProgressActivities,
        ProgressRecord,
    )
    from domain.lifecycle import (
        TERMINAL_STAGES,
        ApprovalStatus,
        DecisionResult,
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
    from domain.playbook import FILE_TEMPLATES, Channel, Playbook, Recipient, Step, Tone
    from domain.schedule import Clock
    from workflows import contract

SEND_TIMEOUT = timedelta(seconds=60)
# A provider outage is retried with backoff for up to a day, then recorded as a failure.
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=["PermanentSendError", "TemplateNotFound", "MissingInvoice"],
)
SEND_DEADLINE = timedelta(days=1)
# The store must eventually take the record: retry without limit.
RECORD_TIMEOUT = timedelta(seconds=30)
RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
# With nothing planned, the workflow still wakes now and then to re-check (cheap, bounded history).
IDLE_TICK_DAYS = 30


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


class InvoiceWorkflowInput(BaseModel):
    invoice: InvoiceFacts
    playbook: Playbook
    day_seconds: float = 86400.0
    state: CarriedState | None = None


@workflow.defn
class InvoiceWorkflow:
    @workflow.init
    def __init__(self, input: InvoiceWorkflowInput) -> None:
        self._invoice = input.invoice
        self._playbook = input.playbook
        self._day_seconds = input.day_seconds
        self._state = input.state or CarriedState(
            anchor=workflow.now(), stage=Stage.UPCOMING, outstanding=input.invoice.amount
        )
        self._clock = Clock(self._state.anchor, input.day_seconds)
        self._woken = False
        self._decision: EscalationDecision | None = None
        self._decided: dict[str, DecisionResult] = {}

    # ------------------------------------------------------------------ the lifecycle

    @workflow.run
    async def run(self, input: InvoiceWorkflowInput) -> InvoiceStatus:
        if input.state is None:
            await self._record(EventKind.OPENED, "opened", "Collection started")
        while self._state.stage not in TERMINAL_STAGES:
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    InvoiceWorkflowInput(
                        invoice=self._invoice,
                        playbook=self._playbook,
                        day_seconds=self._day_seconds,
                        state=self._state,
                    )
                )
            await self._advance()
        if self._state.stage == Stage.PAID:
            await self._thank()
        await self._record(EventKind.CLOSED, "closed", f"Collection ended: {self._state.stage}")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    def _plan(self) -> NextStep | None:
        """What comes next and when, from the state alone (the status query uses it too)."""
        if self._closed:
            return None
        step = self._current_step()
        overdue_at = self._clock.planned_at(self._invoice.due_date, 1)
        if self._state.stage == Stage.UPCOMING and (
            step is None or self._due_at(step) > overdue_at
        ):
            return NextStep(step_id=contract.DUE_DATE_PASSES, stage=Stage.OVERDUE, at=overdue_at)
        if step is None:
            return None
        note = None
        if self._state.approval is not None:
            note = f"awaiting decision on approval {self._state.approval.approval_id}"
        elif step.id in self._state.retry_at:
            note = self._state.rejection_note
        return NextStep(
            step_id=step.id,
            stage=step.stage,
            at=self._due_at(step),
            needs_approval=step.requires_approval,
            note=note,
        )

    async def _advance(self) -> None:
        """Wait for the next thing to happen, then do it (or re-plan if woken early)."""
        planned = self._plan()
        if planned is None:
            await self._sleep_until(workflow.now() + self._clock.days(IDLE_TICK_DAYS))
            return
        if not await self._sleep_until(planned.at):
            return
        if planned.step_id == contract.DUE_DATE_PASSES:
            if self._state.stage == Stage.UPCOMING:
                self._state.stage = Stage.OVERDUE
                self._upsert_search_attributes()
                await self._record(
                    EventKind.STAGE_CHANGED, "stage:overdue", "Due date passed: invoice overdue"
                )
            return
        step = self._current_step()
        assert step is not None and step.id == planned.step_id
        skip_reason = self._skip_reason(step)
        if skip_reason:
            self._state.step_index += 1
            await self._record(
                EventKind.STEP_SKIPPED, f"skip:{step.id}", f"Skipped {step.id}: {skip_reason}"
            )
        elif step.requires_approval:
            await self._escalate(step)
        else:
            await self._perform(step)
            self._state.step_index += 1
            await self._record(EventKind.STEP_DONE, f"step:{step.id}", f"Step {step.id} done")

    async def _sleep_until(self, at: datetime) -> bool:
        """True when `at` came; False when a message woke the workflow first."""
        delay = at - workflow.now()
        if delay <= timedelta(0):
            return True
        self._woken = False
        try:
            await workflow.wait_condition(lambda: self._woken, timeout=delay)
        except TimeoutError:
            return True
        return False

    def _wake(self) -> None:
        self._woken = True

    def _current_step(self) -> Step | None:
        steps = self._playbook.steps
        return steps[self._state.step_index] if self._state.step_index < len(steps) else None

    def _due_at(self, step: Step) -> datetime:
        at = self._clock.planned_at(self._invoice.due_date, step.offset_days)
        retry = self._state.retry_at.get(step.id)
        if retry is not None:
            at = max(at, retry)
        # Never two actions closer than the playbook's gap: no burst after a late hand-over
        # or an outage, the missed step is caught up once.
        if self._state.last_action_at is not None:
            at = max(at, self._state.last_action_at + self._clock.days(self._playbook.min_gap_days))
        return at

    def _skip_reason(self, step: Step) -> str | None:
        now = workflow.now()
        if step.stage == Stage.UPCOMING and now >= self._clock.planned_at(
            self._invoice.due_date, 0
        ):
            return "the due date has already passed"
        following = self._playbook.steps[self._state.step_index + 1 :]
        if (
            following
            and not step.requires_approval
            and following[0].stage == step.stage
            and self._clock.planned_at(self._invoice.due_date, following[0].offset_days) <= now
        ):
            return f"{following[0].id} is already due; only the latest reminder is sent"
        return None

    @property
    def _closed(self) -> bool:
        return self._state.stage in TERMINAL_STAGES

    async def _perform(self, step: Step) -> None:
        if self._closed:
            return
        if step.stage != self._state.stage:
            self._state.stage = step.stage
            self._upsert_search_attributes()
        sends = [(channel, Recipient.DEBTOR, step.template) for channel in step.channels]
        sends += [(Channel.EMAIL, r, FILE_TEMPLATES[r]) for r in step.notify]
        for channel, recipient, template in sends:
            # A payment that lands mid-step stops the rest of it.
            if self._closed:
                break
            await self._send(step.id, channel, recipient, template, step.tone)
        self._state.last_action_at = workflow.now()

    async def _escalate(self, step: Step) -> None:
        """Ask a collector; remind them while nobody answers; then act on the decision."""
        rounds = self._state.approval_rounds.get(step.id, 0) + 1
        self._state.approval_rounds[step.id] = rounds
        pending = PendingApproval(
            approval_id=f"{self._invoice.number}:{step.id}:{rounds}",
            step_id=step.id,
            target_stage=step.stage,
            requested_at=workflow.now(),
        )
        self._state.approval = pending
        await self._record(
            EventKind.APPROVAL_REQUESTED,
            f"approval:{pending.approval_id}",
            f"Escalation to {step.stage} awaits a collector's approval",
            approval=self._approval_change(pending, ApprovalStatus.PENDING),
        )
        reminders = 0
        wait = self._clock.days(self._playbook.approval_reminder_days)
        while True:
            try:
                await workflow.wait_condition(
                    lambda: self._decision is not None or self._state.stage in TERMINAL_STAGES,
                    timeout=wait,
                )
                break
            except TimeoutError:
                reminders += 1
                reminder_id = f"{step.id}_approval{rounds}_reminder{reminders}"
                await self._send(
                    reminder_id,
                    Channel.EMAIL,
                    Recipient.COLLECTORS,
                    "approval_reminder",
                    Tone.FIRM,
                    approval=pending,
                )
                await self._record(
                    EventKind.APPROVAL_REMINDER,
                    f"approval:{pending.approval_id}:reminder{reminders}",
                    f"Collectors reminded of approval {pending.approval_id}",
                    approval=self._approval_change(pending, ApprovalStatus.PENDING),
                )
                wait = self._clock.days(self._playbook.approval_reminder_repeat_days)
        self._state.approval = None
        decision, self._decision = self._decision, None
        if decision is None or self._closed:
            if decision is not None:
                self._decided[pending.approval_id] = DecisionResult(
                    approval_id=pending.approval_id, approved=False, status=self.status()
                )
            await self._record(
                EventKind.APPROVAL_CANCELLED,
                f"approval:{pending.approval_id}:cancelled",
                f"Approval {pending.approval_id} cancelled: invoice {self._state.stage}",
                approval=self._approval_change(pending, ApprovalStatus.CANCELLED),
            )
            return
        await self._apply_decision(step, pending, decision)

    async def _apply_decision(
        self, step: Step, pending: PendingApproval, decision: EscalationDecision
    ) -> None:
        verdict = ApprovalStatus.APPROVED if decision.approve else ApprovalStatus.REJECTED
        change = self._approval_change(pending, verdict, decision)
        if decision.approve:
            self._state.retry_at.pop(step.id, None)
            self._state.rejection_note = None
            await self._perform(step)
            self._state.step_index += 1
            if step.stage == Stage.LEGAL and not self._closed:
                self._state.stage = Stage.HANDED_OFF
                self._upsert_search_attributes()
            summary = f"Escalation to {step.stage} approved by {decision.decided_by}"
        else:
            retry = workflow.now() + self._clock.days(self._playbook.rejection_retry_days)
            self._state.retry_at[step.id] = retry
            self._state.rejection_note = (
                f"escalation to {step.stage} rejected by {decision.decided_by}"
                + (f" ({decision.comment})" if decision.comment else "")
                + f"; stays {self._state.stage} and is proposed again on {retry.isoformat()}"
            )
            summary = f"Escalation to {step.stage} rejected by {decision.decided_by}"
        await self._record(
            EventKind.APPROVAL_DECIDED,
            f"approval:{pending.approval_id}:decided",
            summary,
            detail={"comment": decision.comment, "decided_by": decision.decided_by},
            approval=change,
        )
        self._decided[pending.approval_id] = DecisionResult(
            approval_id=pending.approval_id, approved=decision.approve, status=self.status()
        )

    async def _thank(self) -> None:
        paid = self._invoice.amount - self._state.outstanding
        if self._state.overpayment is not None:
            paid = paid + self._state.overpayment
        await self._send(
            "thank_you", Channel.EMAIL, Recipient.DEBTOR, "thank_you", Tone.FRIENDLY, paid=paid
        )

    # ------------------------------------------------------------------ messages in

    @workflow.update
    async def record_payment(self, payment: PaymentInput) -> PaymentResult:
        known = self._state.payments.get(payment.reference)
        if known is not None:
            return known
        remaining = self._state.outstanding - payment.amount
        overpayment = None
        if remaining.amount <= 0:
            overpayment = (
                Money.of(-remaining.amount, remaining.currency) if remaining.amount else None
            )
            remaining = Money.of(0, remaining.currency)
            self._state.stage = Stage.PAID
            self._state.overpayment = overpayment
        self._state.outstanding = remaining
        result = PaymentResult(
            reference=payment.reference,
            amount=payment.amount,
            outstanding=remaining,
            stage=self._state.stage,
            overpayment=overpayment,
        )
        self._state.payments[payment.reference] = result
        self._wake()
        self._upsert_search_attributes()
        summary = f"Payment {payment.reference} of {payment.amount}: {remaining} outstanding"
        if overpayment is not None:
            summary += f", overpaid by {overpayment}"
        await self._record(
            EventKind.PAYMENT,
            f"payment:{payment.reference}",
            summary,
            payment=PaymentChange(result=result, received_on=payment.received_on),
        )
        return result

    @record_payment.validator
    def _validate_payment(self, payment: PaymentInput) -> None:
        if payment.reference in self._state.payments:
            return  # a replay gets the same answer
        if payment.amount.currency != self._invoice.amount.currency:
            raise ApplicationError(
                f"payment currency {payment.amount.currency} does not match the invoice "
                f"currency {self._invoice.amount.currency}",
                type="CurrencyMismatch",
            )
        if not payment.amount.is_positive:
            raise ApplicationError("payment amount must be positive", type="InvalidAmount")
        if self._state.stage in TERMINAL_STAGES:
            raise ApplicationError(
                f"invoice {self._invoice.number} is already {self._state.stage}",
                type="InvoiceClosed",
            )

    @workflow.update
    async def decide_escalation(self, decision: EscalationDecision) -> DecisionResult:
        self._decision = decision
        await workflow.wait_condition(lambda: decision.approval_id in self._decided)
        return self._decided[decision.approval_id]

    @decide_escalation.validator
    def _validate_decision(self, decision: EscalationDecision) -> None:
        pending = self._state.approval
        if pending is None or pending.approval_id != decision.approval_id:
            raise ApplicationError(
                f"approval {decision.approval_id} is not pending on invoice "
                f"{self._invoice.number}"
                + (f" (pending: {pending.approval_id})" if pending else ""),
                type="StaleApproval",
            )
        if self._decision is not None:
            raise ApplicationError(
                f"approval {decision.approval_id} is already being decided", type="StaleApproval"
            )

    @workflow.query
    def status(self) -> InvoiceStatus:
        return InvoiceStatus(
            number=self._invoice.number,
            stage=self._state.stage,
            outstanding=self._state.outstanding,
            next_step=self._plan(),
            pending_approval=self._state.approval,
            overpayment=self._state.overpayment,
            revision=self._state.revision,
        )

    # ------------------------------------------------------------------ effects out

    async def _send(
        self,
        step_id: str,
        channel: Channel,
        recipient: Recipient,
        template: str,
        tone: Tone,
        *,
        paid: Money | None = None,
        approval: PendingApproval | None = None,
    ) -> None:
        request = SendRequest(
            invoice_number=self._invoice.number,
            step_id=step_id,
            channel=channel,
            recipient=recipient,
            template=template,
            tone=tone,
            planned_at=workflow.now(),
            as_of=self._clock.calendar_date(workflow.now()),
            outstanding=self._state.outstanding,
            paid=paid,
            approval_id=approval.approval_id if approval else None,
            target_stage=approval.target_stage if approval else None,
        )
        try:
            await workflow.execute_activity_method(
                MessagingActivities.send_message,
                request,
                start_to_close_timeout=SEND_TIMEOUT,
                schedule_to_close_timeout=SEND_DEADLINE,
                retry_policy=SEND_RETRY,
            )
        except ActivityError as err:
            # A message that cannot go out must not stop the collection: it is recorded, and
            # the escalation carries on.
            reason = str(err.cause) if err.cause else str(err)
            await self._record(
                EventKind.MESSAGE_FAILED,
                f"failed:{step_id}:{channel.value}:{recipient.value}",
                f"{channel.value} to {recipient.value} for {step_id} failed: {reason}",
            )

    async def _record(
        self,
        kind: EventKind,
        key: str,
        summary: str,
        *,
        detail: dict[str, str] | None = None,
        payment: PaymentChange | None = None,
        approval: ApprovalChange | None = None,
    ) -> None:
        self._state.revision += 1
        await workflow.execute_activity_method(
            ProgressActivities.record_progress,
            ProgressRecord(
                invoice_number=self._invoice.number,
                key=key,
                kind=kind,
                at=workflow.now(),
                summary=summary,
                detail=detail or {},
                status=self.status(),
                payment=payment,
                approval=approval,
            ),
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=RECORD_RETRY,
        )

    def _approval_change(
        self,
        pending: PendingApproval,
        status: ApprovalStatus,
        decision: EscalationDecision | None = None,
    ) -> ApprovalChange:
        return ApprovalChange(
            approval_id=pending.approval_id,
            step_id=pending.step_id,
            target_stage=pending.target_stage,
            status=status,
            at=workflow.now(),
            decided_by=decision.decided_by if decision else None,
            comment=decision.comment if decision else None,
        )

    def _upsert_search_attributes(self) -> None:
        workflow.upsert_search_attributes(
            [
                contract.STAGE.value_set(self._state.stage.value),
                contract.OUTSTANDING.value_set(float(self._state.outstanding.amount)),
            ]
        )
