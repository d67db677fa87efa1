"""The invoice workflow's first released shape, kept so that runs started on it replay.

Frozen: `workflows/invoice.py` runs this code only for histories recorded before the collection
machine (no `collection-machine` patch marker). Never change what it does; delete it once no
running invoice was started before the machine (their next continue-as-new moves them over).
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityHandle

with workflow.unsafe.imports_passed_through():
    from activities.calendar import BusinessTime, BusinessTimeRequest, business_time
    from activities.messaging import MessagingActivities, SendRequest
    from activities.notify import (
        BackofficeEvent,
        BackofficeEventKind,
        NotifyActivities,
        backoffice_event_id,
    )
    from activities.progress import (
        ApprovalChange,
        DisputeChange,
        EventKind,
        PaymentChange,
        PlanChange,
        ProgressActivities,
        ProgressRecord,
        TaskChange,
    )
    from contracts.invoice import InvoiceWorkflowInput
    from contracts.legacy import (
        CarriedState,
        Hold,
        InstallmentState,
        OpenDispute,
        PlanState,
    )
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
        task_id,
    )
    from domain.lifecycle import (
        HOLD_STAGES,
        TERMINAL_STAGES,
        ApprovalStatus,
        DecisionResult,
        EscalationDecision,
        InvoiceStatus,
        NextStep,
        PaymentInput,
        PaymentResult,
        PendingApproval,
        Stage,
    )
    from domain.money import Money
    from domain.playbook import FILE_TEMPLATES, Channel, Recipient, Step, Tone
    from domain.schedule import Clock
    from workflows import contract
    from workflows.mailbox import enqueue_debtor_message
    from workflows.waiting import Wakeable

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
CALENDAR_TIMEOUT = timedelta(seconds=10)
# Back-office notifications: retried with backoff for up to three days (an ERP maintenance
# window), never blocking the collection.
NOTIFY_TIMEOUT = timedelta(seconds=30)
NOTIFY_DEADLINE = timedelta(days=3)
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=10),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(hours=1),
    non_retryable_error_types=["WebhookRejected"],
)
# Delivery events already applied, kept for de-duplication (the newest ones suffice: providers
# replay recent events, not months-old ones).
SEEN_EVENTS_KEPT = 200


NOTICES = {
    EventKind.DISPUTE_OPENED: BackofficeEventKind.DISPUTE_OPENED,
    EventKind.DISPUTE_RESOLVED: BackofficeEventKind.DISPUTE_RESOLVED,
    EventKind.PLAN_PROPOSED: BackofficeEventKind.PLAN_PROPOSED,
    EventKind.PLAN_BROKEN: BackofficeEventKind.PLAN_BROKEN,
    EventKind.PROMISE_RECORDED: BackofficeEventKind.PROMISE_RECORDED,
    EventKind.PROMISE_BROKEN: BackofficeEventKind.PROMISE_BROKEN,
    EventKind.HOLD_STARTED: BackofficeEventKind.PAUSED,
    EventKind.HOLD_ENDED: BackofficeEventKind.RESUMED,
    EventKind.FALLBACK: BackofficeEventKind.EMAIL_UNDELIVERABLE,
}
CLOSING_NOTICES = {
    Stage.PAID: BackofficeEventKind.PAID,
    Stage.HANDED_OFF: BackofficeEventKind.HANDED_OFF,
    Stage.CANCELLED: BackofficeEventKind.CANCELLED,
    Stage.WRITTEN_OFF: BackofficeEventKind.WRITTEN_OFF,
}


class LegacyInvoiceRun:
    """The invoice workflow as released before the collection machine (frozen: replays only)."""

    def __init__(self, input: InvoiceWorkflowInput) -> None:
        self._invoice = input.invoice
        self._playbook = input.playbook
        self._day_seconds = input.day_seconds
        self._history_limit = input.history_limit
        self._state = input.state or CarriedState(
            anchor=workflow.now(), stage=Stage.UPCOMING, outstanding=input.invoice.amount
        )
        self._clock = Clock(self._state.anchor, input.day_seconds)
        self._alarm = Wakeable()
        self._decision: EscalationDecision | None = None
        self._decided: dict[str, DecisionResult] = {}
        self._notifications: list[ActivityHandle[int]] = []

    # ------------------------------------------------------------------ the lifecycle

    async def run(self, input: InvoiceWorkflowInput) -> InvoiceStatus:
        if input.state is None:
            await self._record(EventKind.OPENED, "opened", "Collection started")
            if input.hold is not None:
                await self._apply_pause(input.hold, key="opened")
        while self._state.stage not in TERMINAL_STAGES:
            if self._history_is_long():
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._notifications_sent()
                workflow.continue_as_new(
                    InvoiceWorkflowInput(
                        invoice=self._invoice,
                        playbook=self._playbook,
                        day_seconds=self._day_seconds,
                        state=self._state,
                        history_limit=self._history_limit,
                    )
                )
            await self._advance()
        await self._close_open_work()
        if self._state.stage == Stage.PAID:
            await self._thank()
        await self._record(EventKind.CLOSED, "closed", f"Collection ended: {self._state.stage}")
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._notifications_sent()
        return self.status()

    def _history_is_long(self) -> bool:
        info = workflow.info()
        if info.is_continue_as_new_suggested():
            return True
        return (
            bool(self._history_limit) and info.get_current_history_length() >= self._history_limit
        )

    def _plan(self) -> NextStep | None:
        """What comes next and when, from the state alone (the status query uses it too)."""
        if self._closed:
            return None
        hold = self._state.hold
        if hold is not None:
            return NextStep(
                step_id=f"{hold.stage.value}_ends",
                stage=hold.resume_stage,
                at=self._hold_wake_at(),
                note=f"escalation frozen ({hold.stage.value}) since {hold.since.isoformat()}"
                + (f": {hold.reason}" if hold.reason else ""),
            )
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
        if self._state.fallback_due:
            await self._fallback(self._state.fallback_due.pop(0))
            return
        if self._state.hold is not None:
            await self._while_held()
            return
        step = self._current_step()
        if step is not None and step.id not in self._state.calendar:
            self._state.calendar[step.id] = await self._business_time(step)
        planned = self._plan()
        if planned is None:
            await self._alarm.sleep_until(workflow.now() + self._clock.days(IDLE_TICK_DAYS))
            return
        if not await self._alarm.sleep_until(planned.at):
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
        if step is None or step.id != planned.step_id:
            # A hold or a migration landed while this run waited: plan again (this replaced an
            # assert that failed the workflow task forever; no recorded history reached it).
            return
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

    def _current_step(self) -> Step | None:
        steps = self._playbook.steps
        return steps[self._state.step_index] if self._state.step_index < len(steps) else None

    def _nominal_at(self, step: Step) -> datetime:
        """The step's business-day time, shifted by the time the escalation was frozen."""
        known = self._state.calendar.get(step.id)
        if known is not None:
            at = self._clock.compress(known.at)
        else:
            at = self._clock.planned_at(self._invoice.due_date, step.offset_days)
        return at + timedelta(seconds=self._state.shift_seconds)

    def _due_at(self, step: Step) -> datetime:
        at = self._nominal_at(step)
        if self._state.not_before is not None:
            at = max(at, self._state.not_before)
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
            and self._nominal_at(following[0]) <= now
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
        sends = [(channel, Recipient.DEBTOR, step.template) for channel in self._channels(step)]
        sends += [(Channel.EMAIL, r, FILE_TEMPLATES[r]) for r in step.notify]
        for channel, recipient, template in sends:
            # A payment that lands mid-step stops the rest of it.
            if self._closed:
                break
            request = self._request(step.id, channel, recipient, template, step.tone)
            if channel == Channel.EMAIL and recipient == Recipient.DEBTOR:
                # Through the debtor's mailbox: one message a day, listing all their invoices.
                await enqueue_debtor_message(request, self._invoice.debtor_id, self._day_seconds)
            else:
                await self._send(request)
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
                    lambda: (
                        self._decision is not None or self._closed or self._state.hold is not None
                    ),
                    timeout=wait,
                )
                break
            except TimeoutError:
                reminders += 1
                reminder_id = f"{step.id}_approval{rounds}_reminder{reminders}"
                await self._send(
                    self._request(
                        reminder_id,
                        Channel.EMAIL,
                        Recipient.COLLECTORS,
                        "approval_reminder",
                        Tone.FIRM,
                        approval=pending,
                    )
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
        if decision is None or self._closed or self._state.hold is not None:
            if decision is not None:
                self._decided[pending.approval_id] = DecisionResult(
                    approval_id=pending.approval_id, approved=False, status=self.status()
                )
            await self._record(
                EventKind.APPROVAL_CANCELLED,
                f"approval:{pending.approval_id}:cancelled",
                f"Approval {pending.approval_id} withdrawn: invoice {self._state.stage}",
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

    def _channels(self, step: Step) -> list[Channel]:
        """The step's channels, with email replaced by its fallback once the address bounced."""
        channels: list[Channel] = []
        for channel in step.channels:
            replacements = (
                step.fallback
                if (channel == Channel.EMAIL and self._state.email_invalid)
                else (channel,)
            )
            channels += [c for c in replacements if c not in channels]
        return channels

    async def _business_time(self, step: Step) -> BusinessTime:
        return await workflow.execute_local_activity(
            business_time,
            BusinessTimeRequest(
                day=self._invoice.due_date + timedelta(days=step.offset_days),
                country=self._invoice.country,
                timezone=self._invoice.timezone,
                subdivision=self._invoice.subdivision,
            ),
            start_to_close_timeout=CALENDAR_TIMEOUT,
        )

    async def _fallback(self, step_id: str) -> None:
        """The email of `step_id` bounced: the step goes out again on its fallback channels."""
        step = next((s for s in self._playbook.steps if s.id == step_id), None)
        if step is None or self._closed:
            return
        for channel in step.fallback:
            await self._send(
                self._request(
                    f"{step.id}_fallback", channel, Recipient.DEBTOR, step.template, step.tone
                )
            )
        await self._record(
            EventKind.FALLBACK,
            f"fallback:{step.id}",
            f"Email for {step.id} undeliverable: sent again by "
            + ", ".join(c.value for c in step.fallback),
        )

    # ------------------------------------------------------------------ holds

    def _hold_wake_at(self) -> datetime:
        """When a held invoice next needs attention (an endless hold still wakes now and then)."""
        now = workflow.now()
        candidates = [now + self._clock.days(IDLE_TICK_DAYS)]
        hold = self._state.hold
        if hold is not None and hold.until is not None:
            candidates.append(hold.until)
        if self._state.dispute is not None:
            candidates.append(self._state.dispute.deadline)
        plan = self._state.plan
        if plan is not None and plan.status == "active":
            for item in plan.installments:
                if item.settled:
                    continue
                due = self._clock.planned_at(item.due_date, 0)
                if not item.reminded:
                    candidates.append(
                        due - self._clock.days(self._playbook.installment_reminder_days)
                    )
                candidates.append(due + self._clock.days(self._playbook.installment_grace_days))
                break
        return min(candidates)

    async def _while_held(self) -> None:
        if not await self._alarm.sleep_until(self._hold_wake_at()):
            return
        hold, now = self._state.hold, workflow.now()
        if hold is None:
            return
        dispute = self._state.dispute
        if dispute is not None and now >= dispute.deadline:
            dispute.reminders += 1
            dispute.deadline = now + self._clock.days(self._playbook.approval_reminder_repeat_days)
            await self._send(
                self._request(
                    f"dispute_{dispute.dispute_id}_reminder{dispute.reminders}",
                    Channel.EMAIL,
                    Recipient.COLLECTORS,
                    "dispute_reminder",
                    Tone.FIRM,
                )
            )
            await self._record(
                EventKind.DISPUTE_REMINDER,
                f"dispute:{dispute.dispute_id}:reminder{dispute.reminders}",
                f"Dispute {dispute.dispute_id} past its resolution deadline: collectors reminded",
            )
            return
        if self._state.plan is not None and self._state.plan.status == "active":
            await self._plan_tick()
            return
        if hold.until is not None and now >= hold.until:
            if hold.stage == Stage.PROMISED:
                self._release(grace_days=0)
                await self._record(
                    EventKind.PROMISE_BROKEN,
                    f"promise:{hold.ref}:broken",
                    f"Promise to pay {hold.ref} not kept: escalation resumes",
                )
            else:
                self._release(grace_days=0)
                await self._record(
                    EventKind.HOLD_ENDED,
                    f"hold:{hold.since.isoformat()}:ended",
                    "Pause ended: escalation resumes",
                )

    async def _plan_tick(self) -> None:
        plan = self._state.plan
        if plan is None:
            return
        now = workflow.now()
        for number, item in enumerate(plan.installments, start=1):
            if item.settled:
                continue
            due = self._clock.planned_at(item.due_date, 0)
            remind_at = due - self._clock.days(self._playbook.installment_reminder_days)
            if not item.reminded and now >= remind_at:
                item.reminded = True
                await self._send(
                    self._request(
                        f"plan_{plan.plan_id}_installment{number}",
                        Channel.EMAIL,
                        Recipient.DEBTOR,
                        "installment_reminder",
                        Tone.COURTEOUS,
                        installment=item,
                    )
                )
            elif now >= due + self._clock.days(self._playbook.installment_grace_days):
                self._state.plan = None
                self._release(grace_days=0)
                await self._record(
                    EventKind.PLAN_BROKEN,
                    f"plan:{plan.plan_id}:broken",
                    f"Installment {number} of plan {plan.plan_id} missed: plan broken, "
                    "escalation resumes",
                    plan=PlanChange(plan_id=plan.plan_id, status="broken", at=now, by="relance"),
                )
            return

    def _enter_hold(self, stage: Stage, *, ref: str, reason: str, until: datetime | None) -> None:
        current = self._state.hold
        self._state.hold = Hold(
            stage=stage,
            # A hold replacing another keeps the original stage and start: the clock stays
            # frozen since the first one.
            resume_stage=current.resume_stage if current else self._state.stage,
            since=current.since if current else workflow.now(),
            until=until,
            ref=ref,
            reason=reason,
        )
        self._state.stage = stage
        self._alarm.wake()
        self._upsert_search_attributes()

    def _release(self, grace_days: float) -> None:
        hold = self._state.hold
        if hold is None:
            return
        now = workflow.now()
        self._state.shift_seconds += (now - hold.since).total_seconds()
        self._state.not_before = now + self._clock.days(grace_days)
        self._state.stage = hold.resume_stage
        self._state.hold = None
        self._alarm.wake()
        self._upsert_search_attributes()

    def _moment(self, day: date) -> datetime:
        return self._clock.planned_at(day, 0)

    async def _apply_pause(self, request: HoldRequest, key: str) -> None:
        until = self._moment(request.until) if request.until else None
        self._enter_hold(Stage.PAUSED, ref=key, reason=request.reason, until=until)
        await self._record(
            EventKind.HOLD_STARTED,
            f"hold:{key}",
            f"Paused by {request.by}: {request.reason}"
            + (f" (until {request.until.isoformat()})" if request.until else ""),
            detail={"by": request.by},
        )

    async def _close_open_work(self) -> None:
        """An invoice that ends leaves no dispute, plan or hold open behind it."""
        now = workflow.now()
        if self._state.dispute is not None:
            dispute, self._state.dispute = self._state.dispute, None
            await self._record(
                EventKind.DISPUTE_RESOLVED,
                f"dispute:{dispute.dispute_id}:closed",
                f"Dispute {dispute.dispute_id} closed: invoice {self._state.stage}",
                dispute=DisputeChange(
                    dispute_id=dispute.dispute_id,
                    status="closed",
                    at=now,
                    by="relance",
                    resolution=f"invoice {self._state.stage}",
                ),
                task=TaskChange(
                    task_id=task_id(self._invoice.number, "dispute", dispute.dispute_id),
                    kind="dispute",
                    status="cancelled",
                    at=now,
                ),
            )
        if self._state.plan is not None:
            plan, self._state.plan = self._state.plan, None
            status = "completed" if self._state.stage == Stage.PAID else "cancelled"
            await self._record(
                EventKind.PLAN_ENDED,
                f"plan:{plan.plan_id}:{status}",
                f"Payment plan {plan.plan_id} {status}",
                plan=PlanChange(plan_id=plan.plan_id, status=status, at=now, by="relance"),
            )
        self._state.hold = None

    async def _thank(self) -> None:
        paid = self._invoice.amount - self._state.outstanding
        if self._state.overpayment is not None:
            paid = paid + self._state.overpayment
        await self._send(
            self._request(
                "thank_you", Channel.EMAIL, Recipient.DEBTOR, "thank_you", Tone.FRIENDLY, paid=paid
            )
        )

    # ------------------------------------------------------------------ messages in

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
        self._allocate_to_installments(payment.amount)
        self._alarm.wake()
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

    async def decide_escalation(self, decision: EscalationDecision) -> DecisionResult:
        self._decision = decision
        await workflow.wait_condition(lambda: decision.approval_id in self._decided)
        return self._decided[decision.approval_id]

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

    def _allocate_to_installments(self, amount: Money) -> None:
        """Payments settle a plan's installments in order, oldest first."""
        plan = self._state.plan
        if plan is None:
            return
        left = amount
        for item in plan.installments:
            if left.amount <= 0:
                break
            missing = item.amount - item.paid
            if missing.amount <= 0:
                continue
            applied = missing if missing.amount <= left.amount else left
            item.paid = item.paid + applied
            left = left - applied

    # ------------------------------------------------------------------ collection work

    def _require_open(self) -> None:
        if self._closed:
            raise ApplicationError(
                f"invoice {self._invoice.number} is already {self._state.stage}",
                type="InvoiceClosed",
            )

    def _require_currency(self, amount: Money | None, what: str) -> None:
        if amount is not None and amount.currency != self._invoice.amount.currency:
            raise ApplicationError(
                f"{what} currency {amount.currency} does not match the invoice currency "
                f"{self._invoice.amount.currency}",
                type="CurrencyMismatch",
            )

    def _require_no_hold_but(self, *allowed: Stage) -> None:
        hold = self._state.hold
        if hold is not None and hold.stage not in allowed:
            raise ApplicationError(
                f"invoice {self._invoice.number} is {hold.stage.value}: end that first",
                type="DisputeOpen" if hold.stage == Stage.DISPUTED else "HoldConflict",
            )

    async def open_dispute(self, request: DisputeOpen) -> InvoiceStatus:
        if request.dispute_id in self._state.closed_refs or (
            self._state.dispute is not None and self._state.dispute.dispute_id == request.dispute_id
        ):
            return self.status()
        now = workflow.now()
        deadline = now + self._clock.days(self._playbook.dispute_resolution_days)
        self._state.dispute = OpenDispute(dispute_id=request.dispute_id, deadline=deadline)
        self._enter_hold(Stage.DISPUTED, ref=request.dispute_id, reason=request.reason, until=None)
        await self._record(
            EventKind.DISPUTE_OPENED,
            f"dispute:{request.dispute_id}",
            f"Dispute {request.dispute_id} opened by {request.opened_by}: escalation frozen",
            detail={"reason": request.reason, "by": request.opened_by},
            dispute=DisputeChange(
                dispute_id=request.dispute_id,
                status="open",
                at=now,
                by=request.opened_by,
                reason=request.reason,
                amount=request.amount,
                deadline=deadline,
            ),
            task=TaskChange(
                task_id=task_id(self._invoice.number, "dispute", request.dispute_id),
                kind="dispute",
                status="open",
                at=now,
                due_at=deadline,
                title=f"Resolve dispute {request.dispute_id} on invoice {self._invoice.number}",
            ),
        )
        return self.status()

    def _validate_open_dispute(self, request: DisputeOpen) -> None:
        if request.dispute_id in self._state.closed_refs:
            return
        self._require_open()
        self._require_currency(request.amount, "disputed amount")
        if self._state.dispute is not None:
            if self._state.dispute.dispute_id == request.dispute_id:
                return
            raise ApplicationError(
                f"dispute {self._state.dispute.dispute_id} is already open on invoice "
                f"{self._invoice.number}",
                type="DisputeOpen",
            )
        self._require_no_hold_but(Stage.PROMISED, Stage.PAUSED)

    async def resolve_dispute(self, resolution: DisputeResolution) -> InvoiceStatus:
        dispute = self._state.dispute
        if dispute is None:  # the validator refuses this; kept for the type checker
            return self.status()
        now = workflow.now()
        self._state.dispute = None
        self._state.closed_refs[dispute.dispute_id] = resolution.outcome.value
        credit: Money | None = None
        if resolution.outcome == DisputeOutcome.UPHELD:
            credit = resolution.credit or self._state.outstanding
            remaining = self._state.outstanding - credit
            if remaining.amount <= 0:
                self._state.outstanding = Money.of(0, remaining.currency)
                self._state.hold = None
                self._state.stage = Stage.CANCELLED
                self._alarm.wake()
                self._upsert_search_attributes()
            else:
                self._state.outstanding = remaining
                self._release(self._playbook.dispute_grace_days)
            summary = f"Dispute {dispute.dispute_id} upheld by {resolution.resolved_by}: " + (
                f"credit note of {credit}, {self._state.outstanding} outstanding"
            )
        else:
            self._release(self._playbook.dispute_grace_days)
            summary = (
                f"Dispute {dispute.dispute_id} rejected by {resolution.resolved_by}: escalation "
                f"resumes at {self._state.stage} after {self._playbook.dispute_grace_days:g} "
                "days' grace"
            )
        await self._record(
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
                at=now,
                by=resolution.resolved_by,
                resolution=resolution.comment or None,
                credit=credit,
            ),
            task=TaskChange(
                task_id=task_id(self._invoice.number, "dispute", dispute.dispute_id),
                kind="dispute",
                status="done",
                at=now,
            ),
        )
        return self.status()

    def _validate_resolve_dispute(self, resolution: DisputeResolution) -> None:
        self._require_open()
        dispute = self._state.dispute
        if dispute is None or dispute.dispute_id != resolution.dispute_id:
            raise ApplicationError(
                f"no open dispute {resolution.dispute_id} on invoice {self._invoice.number}",
                type="UnknownDispute",
            )
        self._require_currency(resolution.credit, "credit note")
        if resolution.credit is not None and not resolution.credit.is_positive:
            raise ApplicationError("a credit note must be a positive amount", type="InvalidAmount")

    async def propose_payment_plan(self, proposal: PlanProposal) -> InvoiceStatus:
        now = workflow.now()
        needs_approval = self._playbook.plan_needs_approval(
            proposal.total, len(proposal.installments)
        )
        zero = Money.of(0, self._invoice.amount.currency)
        self._state.plan = PlanState(
            plan_id=proposal.plan_id,
            status="proposed" if needs_approval else "active",
            proposed_by=proposal.proposed_by,
            installments=[
                InstallmentState(due_date=i.due_date, amount=i.amount, paid=zero)
                for i in proposal.installments
            ],
        )
        self._enter_hold(
            Stage.PAYMENT_PLAN, ref=proposal.plan_id, reason=proposal.comment, until=None
        )
        await self._record(
            EventKind.PLAN_PROPOSED,
            f"plan:{proposal.plan_id}",
            f"Payment plan {proposal.plan_id} of {len(proposal.installments)} installments "
            f"proposed by {proposal.proposed_by}"
            + (": awaiting a second person's approval" if needs_approval else ": active"),
            plan=PlanChange(
                plan_id=proposal.plan_id,
                status=self._state.plan.status,
                at=now,
                by=proposal.proposed_by,
                installments=list(proposal.installments),
                needs_approval=needs_approval,
                comment=proposal.comment or None,
            ),
            task=TaskChange(
                task_id=task_id(self._invoice.number, "plan", proposal.plan_id),
                kind="plan_approval",
                status="open",
                at=now,
                due_at=now + self._clock.days(self._playbook.approval_reminder_days),
                title=f"Approve payment plan {proposal.plan_id} on invoice "
                f"{self._invoice.number} (proposed by {proposal.proposed_by})",
            )
            if needs_approval
            else None,
        )
        return self.status()

    def _validate_plan(self, proposal: PlanProposal) -> None:
        self._require_open()
        if self._state.plan is not None:
            raise ApplicationError(
                f"payment plan {self._state.plan.plan_id} is already {self._state.plan.status}",
                type="PlanConflict",
            )
        self._require_no_hold_but(Stage.PROMISED, Stage.PAUSED)
        self._require_currency(proposal.installments[0].amount, "installment")
        total = proposal.total
        if total != self._state.outstanding.amount:
            raise ApplicationError(
                f"installments add up to {total} {self._invoice.amount.currency}, but "
                f"{self._state.outstanding} is outstanding",
                type="PlanMismatch",
            )

    async def decide_payment_plan(self, decision: PlanDecision) -> InvoiceStatus:
        plan = self._state.plan
        if plan is None:  # the validator refuses this; kept for the type checker
            return self.status()
        now = workflow.now()
        if decision.approve:
            plan.status = "active"
            summary = f"Payment plan {plan.plan_id} approved by {decision.decided_by}"
            self._alarm.wake()
        else:
            self._state.plan = None
            self._release(grace_days=0)
            summary = f"Payment plan {plan.plan_id} rejected by {decision.decided_by}"
        await self._record(
            EventKind.PLAN_DECIDED,
            f"plan:{plan.plan_id}:decided",
            summary,
            detail={"by": decision.decided_by, "comment": decision.comment},
            plan=PlanChange(
                plan_id=plan.plan_id,
                status="active" if decision.approve else "rejected",
                at=now,
                by=decision.decided_by,
                comment=decision.comment or None,
            ),
            task=TaskChange(
                task_id=task_id(self._invoice.number, "plan", plan.plan_id),
                kind="plan_approval",
                status="done",
                at=now,
            ),
        )
        return self.status()

    def _validate_plan_decision(self, decision: PlanDecision) -> None:
        self._require_open()
        plan = self._state.plan
        if plan is None or plan.plan_id != decision.plan_id or plan.status != "proposed":
            raise ApplicationError(
                f"payment plan {decision.plan_id} is not awaiting a decision", type="UnknownPlan"
            )
        if decision.decided_by == plan.proposed_by:
            raise ApplicationError(
                f"{decision.decided_by} proposed plan {plan.plan_id}: a second person must "
                "decide it (four-eyes)",
                type="FourEyes",
            )

    async def record_promise(self, promise: PromiseToPay) -> InvoiceStatus:
        if promise.promise_id in self._state.closed_refs:
            return self.status()
        self._state.closed_refs[promise.promise_id] = "promise"
        until = self._moment(promise.until) + self._clock.days(self._playbook.promise_grace_days)
        self._enter_hold(Stage.PROMISED, ref=promise.promise_id, reason=promise.note, until=until)
        await self._record(
            EventKind.PROMISE_RECORDED,
            f"promise:{promise.promise_id}",
            f"Promise to pay by {promise.until.isoformat()} recorded by {promise.recorded_by}",
            detail={"by": promise.recorded_by, "note": promise.note},
        )
        return self.status()

    def _validate_promise(self, promise: PromiseToPay) -> None:
        if promise.promise_id in self._state.closed_refs:
            return
        self._require_open()
        self._require_no_hold_but(Stage.PROMISED, Stage.PAUSED)
        if promise.until < self._clock.calendar_date(workflow.now()):
            raise ApplicationError(
                f"promised date {promise.until.isoformat()} is in the past",
                type="InvalidPromise",
            )

    async def pause(self, request: HoldRequest) -> InvoiceStatus:
        await self._apply_pause(request, key=f"pause{self._state.revision}")
        return self.status()

    def _validate_pause(self, request: HoldRequest) -> None:
        self._require_open()
        self._require_no_hold_but(Stage.PROMISED, Stage.PAUSED)

    async def resume(self, request: ResumeRequest) -> InvoiceStatus:
        self._release(grace_days=0)
        await self._record(
            EventKind.HOLD_ENDED,
            f"resume{self._state.revision}",
            f"Resumed by {request.by}" + (f": {request.comment}" if request.comment else ""),
            detail={"by": request.by},
        )
        return self.status()

    def _validate_resume(self, request: ResumeRequest) -> None:
        self._require_open()
        if self._state.hold is None or self._state.hold.stage != Stage.PAUSED:
            raise ApplicationError(
                f"invoice {self._invoice.number} is not paused", type="NotPaused"
            )

    async def close(self, closure: Closure) -> InvoiceStatus:
        if closure.kind == ClosureKind.CANCEL:
            self._state.stage = Stage.CANCELLED
            self._state.outstanding = Money.of(0, self._invoice.amount.currency)
            summary = f"Cancelled by {closure.by} (credit note): {closure.reason}"
        else:
            self._state.stage = Stage.WRITTEN_OFF
            summary = f"Written off by {closure.by}: {closure.reason}"
        self._state.hold = None
        self._alarm.wake()
        self._upsert_search_attributes()
        await self._record(
            EventKind.CLOSURE,
            f"closure:{closure.kind.value}",
            summary,
            detail={
                "by": closure.by,
                "credit_note": closure.credit_note_reference or "",
            },
        )
        return self.status()

    def _validate_close(self, closure: Closure) -> None:
        self._require_open()

    async def migrate_playbook(self, migration: PlaybookMigration) -> InvoiceStatus:
        old, new = self._playbook, migration.playbook
        current = self._current_step()
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
        self._playbook = new
        self._state.step_index = index
        self._state.calendar = {}
        self._alarm.wake()
        await self._record(
            EventKind.PLAYBOOK_MIGRATED,
            f"playbook:{new.name}:{new.version}:{self._state.revision}",
            f"Playbook {old.name} v{old.version} → {new.name} v{new.version} by {migration.by}"
            + (f": {migration.reason}" if migration.reason else ""),
            detail={
                "by": migration.by,
                "from": f"{old.name}:{old.version}",
                "to": f"{new.name}:{new.version}",
            },
            playbook=(new.name, new.version),
        )
        return self.status()

    def _validate_migration(self, migration: PlaybookMigration) -> None:
        self._require_open()
        if self._state.approval is not None:
            raise ApplicationError(
                f"approval {self._state.approval.approval_id} is pending: decide it first",
                type="HoldConflict",
            )

    def delivery_event(self, event: DeliveryEvent) -> None:
        if event.event_id in self._state.seen_events:
            return
        self._state.seen_events = [
            *self._state.seen_events[-SEEN_EVENTS_KEPT + 1 :],
            event.event_id,
        ]
        if (
            event.kind in UNDELIVERABLE
            and event.channel == Channel.EMAIL.value
            and not self._state.email_invalid
        ):
            self._state.email_invalid = True
            if any(s.id == event.step_id for s in self._playbook.steps):
                self._state.fallback_due.append(event.step_id)
            self._alarm.wake()

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

    async def _send(self, request: SendRequest) -> None:
        step_id, channel, recipient = request.step_id, request.channel, request.recipient
        if channel == Channel.PHONE:
            # A phone step is work for a collector: a call task, answered through the API.
            await self._record(
                EventKind.TASK_OPENED,
                f"task:{step_id}:call",
                f"Call the debtor about invoice {self._invoice.number} ({step_id})",
                task=TaskChange(
                    task_id=task_id(self._invoice.number, "call", step_id),
                    kind="call",
                    status="open",
                    at=workflow.now(),
                    title=f"Call about invoice {self._invoice.number} ({step_id})",
                    due_at=workflow.now() + self._clock.days(self._playbook.call_task_days),
                ),
            )
            return
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

    def _request(
        self,
        step_id: str,
        channel: Channel,
        recipient: Recipient,
        template: str,
        tone: Tone,
        *,
        paid: Money | None = None,
        approval: PendingApproval | None = None,
        installment: InstallmentState | None = None,
    ) -> SendRequest:
        return SendRequest(
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
            installment_amount=installment.amount if installment else None,
            installment_due_date=installment.due_date if installment else None,
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
        dispute: DisputeChange | None = None,
        plan: PlanChange | None = None,
        task: TaskChange | None = None,
        playbook: tuple[str, int] | None = None,
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
                dispute=dispute,
                plan=plan,
                task=task,
                playbook=playbook,
            ),
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=RECORD_RETRY,
        )
        self._notify(kind, key, plan)

    def _notify(self, kind: EventKind, key: str, plan: PlanChange | None) -> None:
        """Tell the back office what an ERP acts on (credit hold, dunning flags).

        Started, not awaited: a back office that is down delays its notifications, never the
        collection. They are awaited before the workflow ends or continues as new.
        """
        stage = self._state.stage
        notified: BackofficeEventKind | None = None
        if kind == EventKind.CLOSED:
            notified = CLOSING_NOTICES.get(stage)
        elif kind == EventKind.PLAN_DECIDED and plan is not None:
            notified = (
                BackofficeEventKind.PLAN_ACTIVATED
                if plan.status == "active"
                else BackofficeEventKind.PLAN_REJECTED
            )
        elif kind == EventKind.PLAN_ENDED and plan is not None and plan.status == "completed":
            notified = BackofficeEventKind.PLAN_COMPLETED
        else:
            notified = NOTICES.get(kind)
        if (
            notified is None
            and stage != self._state.notified_stage
            and stage not in (TERMINAL_STAGES | HOLD_STAGES)
        ):
            notified = BackofficeEventKind.STAGE_CHANGED
        if notified is None:
            return
        self._state.notified_stage = stage
        self._notifications.append(
            workflow.start_activity_method(
                NotifyActivities.notify_backoffice,
                BackofficeEvent(
                    event_id=backoffice_event_id(self._invoice.number, notified, key),
                    kind=notified,
                    invoice_number=self._invoice.number,
                    debtor_id=self._invoice.debtor_id,
                    stage=stage.value,
                    outstanding=self._state.outstanding,
                    occurred_at=workflow.now(),
                ),
                start_to_close_timeout=NOTIFY_TIMEOUT,
                schedule_to_close_timeout=NOTIFY_DEADLINE,
                retry_policy=NOTIFY_RETRY,
            )
        )

    async def _notifications_sent(self) -> None:
        pending, self._notifications = self._notifications, []
        # A notification refused or expired is in the history; it never fails the invoice.
        await asyncio.gather(*pending, return_exceptions=True)

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
