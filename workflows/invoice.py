"""One invoice's collection: the interpreter of the collection machine (domain/collection/).

The machine decides what happens when; this workflow only waits, orders and carries out. Every
handler and the main loop change the state under one lock, through the machine, and the loop
plans again after every await. Effects run as activities: messages (each with the records of
the transition that decided it, in one transaction), records, back-office notifications.

Runs started before the machine (no `collection-machine` marker in their history) replay on the
first released shape, kept in workflows/legacy/; at their next continue-as-new they move here.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityHandle

with workflow.unsafe.imports_passed_through():
    from activities.calendar import business_moment
    from activities.delivery import DeliveryActivities
    from activities.law import LateCostsRequest, LawActivities
    from activities.notify import BackofficeEvent, BackofficeEventKind, NotifyActivities
    from contracts.calendar import BusinessMomentRequest
    from contracts.errors import NON_RETRYABLE_SEND_ERRORS, ErrorType
    from contracts.invoice import (
        MACHINE_PATCH,
        DeliveryOutcome,
        DeliveryRequest,
        InvoiceWorkflowInput,
        Snapshot,
    )
    from domain.collection import machine
    from domain.collection.commands import (
        CalendarAnswered,
        Command,
        ContactCorrected,
        LateCostsComputed,
        LetterReceived,
        SendResult,
        SendSettled,
    )
    from domain.collection.state import RULES_LATEST, CalendarAnswer, CalendarQuestion
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
    from domain.legal import LegalUpdate, MediationResult
    from domain.lifecycle import (
        DecisionResult,
        EscalationDecision,
        InvoiceStatus,
        PaymentInput,
        PaymentResult,
    )
    from workflows import contract
    from workflows.legacy.convert import from_carried_state
    from workflows.legacy.invoice_v1 import LegacyInvoiceRun

SEND_TIMEOUT = timedelta(seconds=60)
# A provider outage is retried with backoff for up to a day, then recorded as a failure.
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=NON_RETRYABLE_SEND_ERRORS,
)
SEND_DEADLINE = timedelta(days=1)
# The store must eventually take the record: retry without limit.
RECORD_TIMEOUT = timedelta(seconds=30)
RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
CALENDAR_TIMEOUT = timedelta(seconds=10)
# The law's figures: a missing rate is final (never guessed), anything else is retried.
LAW_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=[ErrorType.RATE_UNKNOWN.value, ErrorType.NOT_SUPPORTED.value],
)
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
# A debtor's message of the day lists their invoices falling due within 10 minutes of it.
GATHER_DAYS = 10 / (24 * 60)


@workflow.defn
class InvoiceWorkflow:
    @workflow.init
    def __init__(self, input: InvoiceWorkflowInput) -> None:
        self._legacy: LegacyInvoiceRun | None = None
        if not workflow.patched(MACHINE_PATCH):
            self._legacy = LegacyInvoiceRun(input)
        now = workflow.now()
        if input.machine is not None:
            self._state = input.machine
        elif input.state is not None and self._legacy is None:
            self._state = from_carried_state(input, now)
        else:
            self._state = machine.new_state(
                input.invoice, input.playbook, input.day_seconds, now, rules=input.rules
            )
        self._input = input
        self._lock = asyncio.Lock()
        self._woken = False
        self._running: list[asyncio.Task[None]] = []
        self._notifications: list[ActivityHandle[int]] = []
        self._shown = (self._state.shown_stage, self._state.outstanding)

    # ------------------------------------------------------------------ the loop

    @workflow.run
    async def run(self, input: InvoiceWorkflowInput) -> InvoiceStatus:
        if self._legacy is not None:
            return await self._legacy.run(input)
        if input.machine is None and input.state is None:
            async with self._lock:
                # Recorded with the first action placed: the read model then says when it is.
                opened = self._take(machine.opened(self._state, workflow.now(), input.hold))
                self._carry(opened + await self._advance())
        while True:
            async with self._lock:
                self._carry(await self._advance())
                wake = machine.wake_at(self._state, workflow.now())
            if wake is None:
                # Ended: once the last sends have settled (one may have been put off to the
                # next day, like a thank-you on a day the debtor already had a message).
                await self._quiesce()
                if machine.wake_at(self._state, workflow.now()) is None:
                    if machine.ended(self._state):
                        break
                    # Open with nothing planned (handed off): people's Updates alone wake it.
                    if self._history_is_long():
                        self._continue_as_new(input)
                    await self._wait_for_people()
                continue
            if self._history_is_long():
                await self._quiesce()
                self._continue_as_new(input)
            await self._sleep_until(wake)
        return self.status()

    def _continue_as_new(self, input: InvoiceWorkflowInput) -> NoReturn:
        workflow.continue_as_new(
            InvoiceWorkflowInput(
                invoice=self._state.invoice,
                playbook=self._state.playbook,
                day_seconds=self._state.day_seconds,
                history_limit=input.history_limit,
                # The next run follows the newest rules (its own history starts here).
                machine=self._state.model_copy(update={"rules": RULES_LATEST}),
                notify_backoffice=input.notify_backoffice,
            )
        )

    async def _advance(self) -> list[machine.Effect]:
        """Tick until nothing is due now, answering the calendar's questions on the way.

        The effects are carried out together afterwards, so what they record shows the state
        once the calendar placed the next action.
        """
        effects: list[machine.Effect] = []
        while True:
            transition = machine.tick(self._state, workflow.now())
            effects += self._take(transition)
            if transition.question is None:
                return effects
            answer = await self._ask_calendar(transition.question)
            effects += self._take(self._apply(CalendarAnswered(answer=answer)))

    async def _sleep_until(self, at: datetime) -> None:
        delay = at - workflow.now()
        if delay <= timedelta(0):
            return
        self._woken = False
        # Always a timeout: switching between none and one would be non-deterministic.
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: self._woken, timeout=delay)

    async def _wait_for_people(self) -> None:
        """Open with nothing planned (handed off to the legal partner): no timer at all; a
        person's Update (a payment, the partner's progress, a closure) wakes the loop."""
        self._woken = False
        await workflow.wait_condition(lambda: self._woken)

    def _history_is_long(self) -> bool:
        info = workflow.info()
        limit = self._input.history_limit
        return info.is_continue_as_new_suggested() or (
            bool(limit) and info.get_current_history_length() >= limit
        )

    async def _quiesce(self) -> None:
        """Before ending or continuing as new: handlers done, sends settled, notices out."""
        while True:
            await workflow.wait_condition(workflow.all_handlers_finished)
            running, self._running = self._running, []
            await asyncio.gather(*running)
            if not self._running:
                break
        notifications, self._notifications = self._notifications, []
        # A notification refused or expired is in the history; it never fails the invoice.
        await asyncio.gather(*notifications, return_exceptions=True)

    # ------------------------------------------------------------------ carrying out

    def _apply(self, command: Command) -> machine.Transition:
        """Apply a command the validator accepted (a refusal here is a bug: fail the Update)."""
        result = machine.apply(self._state, command, workflow.now())
        if isinstance(result, machine.Refusal):
            raise ApplicationError(result.message, type=result.type)
        self._take(result)
        return result

    def _take(self, transition: machine.Transition) -> list[machine.Effect]:
        """The machine's new state becomes the workflow's; its effects are the caller's."""
        self._state = transition.state
        self._woken = True
        self._upsert_search_attributes()
        return transition.effects

    def _carry(
        self, effects: list[machine.Effect], *, records_apart: bool = False
    ) -> asyncio.Task[None] | None:
        """Start the effects' activities (not awaited). The records go with the first message:
        one activity, one transaction; or `records_apart`, in their own activity, whose task
        is returned (a person's Update waits for it: the API then reads what it just did)."""
        self._running = [task for task in self._running if not task.done()]
        records = [e.event for e in effects if isinstance(e, machine.Record)]
        notices = [e for e in effects if isinstance(e, machine.Notify)]
        if not self._input.notify_backoffice:
            notices = []
        # Rules 2: notices go to the store's outbox with the records (no activity of their own).
        outboxed = self._state.rules >= 2
        snapshot = Snapshot(
            invoice_number=self._state.invoice.number,
            records=records,
            status=self.status(),
            notices=[self._event(n) for n in notices] if outboxed else [],
        )
        bare = snapshot.model_copy(update={"records": [], "notices": []})
        sends = [e for e in effects if isinstance(e, machine.Send)]
        recorded: asyncio.Task[None] | None = None
        if (records or snapshot.notices) and (records_apart or not sends):
            recorded = asyncio.create_task(self._record(snapshot))
            self._running.append(recorded)
            snapshot = bare
        for send in sends:
            self._running.append(asyncio.create_task(self._deliver(send, snapshot)))
            snapshot = bare
        for notice in [] if outboxed else notices:
            self._notify(notice)
        for effect in effects:
            if isinstance(effect, machine.ComputeLateCosts):
                self._running.append(asyncio.create_task(self._late_costs(effect)))
        return recorded

    async def _late_costs(self, ask: machine.ComputeLateCosts) -> None:
        invoice = self._state.invoice
        try:
            costs = await workflow.execute_activity_method(
                LawActivities.late_payment_costs,
                LateCostsRequest(
                    invoice_number=invoice.number,
                    amount=ask.owed or invoice.amount,
                    due_date=invoice.due_date,
                    payments=ask.payments,
                    country=invoice.country,
                    interest_clause=invoice.interest_clause,
                ),
                start_to_close_timeout=RECORD_TIMEOUT,
                retry_policy=LAW_RETRY,
            )
            computed = LateCostsComputed(costs=costs)
        except ActivityError as err:
            computed = LateCostsComputed(error=str(err.cause or err))
        async with self._lock:
            self._carry(self._take(self._apply(computed)))

    async def _record(self, snapshot: Snapshot) -> None:
        # Started, not awaited by the caller: an Update answers as soon as the state changed,
        # the record follows (durably: the run waits for it before it ends or continues).
        # A local activity: one short keyed write, recorded as one marker in the history
        # instead of an activity's three events and the workflow task that follows it.
        await workflow.execute_local_activity_method(
            DeliveryActivities.record,
            snapshot,
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=RECORD_RETRY,
        )

    async def _deliver(self, send: machine.Send, snapshot: Snapshot) -> None:
        request = DeliveryRequest(
            invoice_number=self._state.invoice.number,
            debtor_id=self._state.invoice.debtor_id,
            message=send.message,
            planned_at=send.planned_at,
            as_of=send.as_of,
            outstanding=send.outstanding,
            snapshot=snapshot,
            gather_seconds=self._state.clock.days(GATHER_DAYS).total_seconds(),
        )
        try:
            outcome: DeliveryOutcome = await workflow.execute_activity_method(
                DeliveryActivities.deliver,
                request,
                start_to_close_timeout=SEND_TIMEOUT,
                schedule_to_close_timeout=SEND_DEADLINE,
                retry_policy=SEND_RETRY,
            )
            settled = SendSettled(
                message=send.message,
                result=outcome.result,
                reason=outcome.reason,
                next_day=outcome.next_day,
            )
        except ActivityError as err:
            # A message that cannot go out must not stop the collection: it is recorded, and
            # the escalation carries on.
            cause = err.cause
            unknown = (
                isinstance(cause, ApplicationError) and cause.type == ErrorType.OUTCOME_UNKNOWN
            )
            settled = SendSettled(
                message=send.message,
                result=SendResult.UNKNOWN if unknown else SendResult.FAILED,
                reason=str(cause) if cause else str(err),
            )
        if settled.result in (SendResult.SENT, SendResult.INCLUDED, SendResult.NOT_WANTED):
            return
        async with self._lock:
            self._carry(self._take(self._apply(settled)))

    def _event(self, notice: machine.Notify) -> BackofficeEvent:
        invoice = self._state.invoice
        return BackofficeEvent(
            event_id=notice.event_id,
            kind=BackofficeEventKind(notice.kind),
            invoice_number=invoice.number,
            debtor_id=invoice.debtor_id,
            stage=notice.stage.value,
            outstanding=notice.outstanding,
            occurred_at=notice.at,
            data=notice.data,
        )

    def _notify(self, notice: machine.Notify) -> None:
        """Rules 1: the notice is an activity of its own, as those histories recorded it."""
        self._notifications.append(
            workflow.start_activity_method(
                NotifyActivities.notify_backoffice,
                self._event(notice),
                start_to_close_timeout=NOTIFY_TIMEOUT,
                schedule_to_close_timeout=NOTIFY_DEADLINE,
                retry_policy=NOTIFY_RETRY,
            )
        )

    async def _ask_calendar(self, question: CalendarQuestion) -> CalendarAnswer:
        invoice, clock = self._state.invoice, self._state.clock
        moment = await workflow.execute_local_activity(
            business_moment,
            BusinessMomentRequest(
                question=question,
                country=invoice.country,
                timezone=invoice.timezone,
                subdivision=invoice.subdivision,
            ),
            start_to_close_timeout=CALENDAR_TIMEOUT,
        )
        return CalendarAnswer(question=question, at=clock.compress(moment.at), note=moment.note)

    def _upsert_search_attributes(self) -> None:
        shown = (self._state.shown_stage, self._state.outstanding)
        if shown == self._shown:
            return
        self._shown = shown
        workflow.upsert_search_attributes(
            [
                contract.STAGE.value_set(shown[0].value),
                contract.OUTSTANDING.value_set(float(shown[1].amount)),
            ]
        )

    async def _command(self, command: Command, *, wait: bool = True) -> machine.Transition:
        """A person's command: applied under the lock, then whatever became due is done.

        With `wait`, the Update answers once its records are in the store (a collector who
        opened a dispute sees it listed). A payment does not wait: the API writes its answer to
        the store itself, and the timeline follows.
        """
        async with self._lock:
            transition = self._apply(command)
            effects = transition.effects + await self._advance()
            recorded = self._carry(effects, records_apart=wait)
        if recorded is not None:
            await recorded
        return transition

    def _validate(self, command: Command) -> None:
        refusal = machine.validate(self._state, command, workflow.now())
        if refusal is not None:
            raise ApplicationError(refusal.message, type=refusal.type)

    # ------------------------------------------------------------------ messages in

    @workflow.query
    def status(self) -> InvoiceStatus:
        if self._legacy is not None:
            return self._legacy.status()
        return machine.status(self._state, workflow.now())

    @workflow.update
    async def record_payment(self, payment: PaymentInput) -> PaymentResult:
        if self._legacy is not None:
            return await self._legacy.record_payment(payment)
        transition = await self._command(payment, wait=False)
        if transition.reply is None:  # the machine always answers a payment
            raise ApplicationError("payment not recorded", type=ErrorType.INVALID_AMOUNT)
        return transition.reply

    @record_payment.validator
    def _validate_payment(self, payment: PaymentInput) -> None:
        if self._legacy is not None:
            return self._legacy._validate_payment(payment)
        self._validate(payment)

    @workflow.update
    async def decide_escalation(self, decision: EscalationDecision) -> DecisionResult:
        if self._legacy is not None:
            return await self._legacy.decide_escalation(decision)
        await self._command(decision)
        return DecisionResult(
            approval_id=decision.approval_id, approved=decision.approve, status=self.status()
        )

    @decide_escalation.validator
    def _validate_decision(self, decision: EscalationDecision) -> None:
        if self._legacy is not None:
            return self._legacy._validate_decision(decision)
        self._validate(decision)

    @workflow.update
    async def open_dispute(self, request: DisputeOpen) -> InvoiceStatus:
        if self._legacy is not None:
            return await self._legacy.open_dispute(request)
        await self._command(request)
        return self.status()

    @open_dispute.validator
    def _validate_open_dispute(self, request: DisputeOpen) -> None:
        if self._legacy is not None:
            return self._legacy._validate_open_dispute(request)
        self._validate(request)

    @workflow.update
    async def resolve_dispute(self, resolution: DisputeResolution) -> InvoiceStatus:
        if self._legacy is not None:
            return await self._legacy.resolve_dispute(resolution)
        await self._command(resolution)
        return self.status()

    @resolve_dispute.validator
    def _validate_resolve_dispute(self, resolution: DisputeResolution) -> None:
        if self._legacy is not None:
            return self._legacy._validate_resolve_dispute(resolution)
        self._validate(resolution)

    @workflow.update
    async def propose_payment_plan(self, proposal: PlanProposal) -> InvoiceStatus:
        if self._legacy is not None:
            return await self._legacy.propose_payment_plan(proposal)
        await self._command(proposal)
        return self.status()

    @propose_payment_plan.validator
    def _validate_plan(self, proposal: PlanProposal) -> None:
        if self._legacy is not None:
            return self._legacy._validate_plan(proposal)
        self._validate(proposal)

    @workflow.update
    async def decide_payment_plan(self, decision: PlanDecision) -> InvoiceStatus:
        if self._legacy is not None:
            return await self._legacy.decide_payment_plan(decision)
        await self._command(decision)
        return self.status()

    @decide_payment_plan.validator
    def _validate_plan_decision(self, decision: PlanDecision) -> None:
        if self._legacy is not None:
            return self._legacy._validate_plan_decision(decision)
        self._validate(decision)

    @workflow.update
    async def record_promise(self, promise: PromiseToPay) -> InvoiceStatus:
        if self._legacy is not None:
            return await self._legacy.record_promise(promise)
        await self._command(promise)
        return self.status()

    @record_promise.validator
    def _validate_promise(self, promise: PromiseToPay) -> None:
        if self._legacy is not None:
            return self._legacy._validate_promise(promise)
        self._validate(promise)

    @workflow.update
    async def pause(self, request: HoldRequest) -> InvoiceStatus:
        if self._legacy is not None:
            return await self._legacy.pause(request)
        await self._command(request)
        return self.status()

    @pause.validator
    def _validate_pause(self, request: HoldRequest) -> None:
        if self._legacy is not None:
            return self._legacy._validate_pause(request)
        self._validate(request)

    @workflow.update
    async def resume(self, request: ResumeRequest) -> InvoiceStatus:
        if self._legacy is not None:
            return await self._legacy.resume(request)
        await self._command(request)
        return self.status()

    @resume.validator
    def _validate_resume(self, request: ResumeRequest) -> None:
        if self._legacy is not None:
            return self._legacy._validate_resume(request)
        self._validate(request)

    @workflow.update
    async def close(self, closure: Closure) -> InvoiceStatus:
        if self._legacy is not None:
            return await self._legacy.close(closure)
        await self._command(closure)
        return self.status()

    @close.validator
    def _validate_close(self, closure: Closure) -> None:
        if self._legacy is not None:
            return self._legacy._validate_close(closure)
        self._validate(closure)

    @workflow.update
    async def migrate_playbook(self, migration: PlaybookMigration) -> InvoiceStatus:
        if self._legacy is not None:
            return await self._legacy.migrate_playbook(migration)
        await self._command(migration)
        return self.status()

    @migrate_playbook.validator
    def _validate_migration(self, migration: PlaybookMigration) -> None:
        if self._legacy is not None:
            return self._legacy._validate_migration(migration)
        self._validate(migration)

    @workflow.signal
    async def delivery_event(self, event: DeliveryEvent) -> None:
        if self._legacy is not None:
            self._legacy.delivery_event(event)
            return
        await self._command(event, wait=False)

    @workflow.signal
    async def contact_corrected(self, correction: ContactCorrected) -> None:
        if self._legacy is not None:
            return  # the first shape has no use for it: its bounce stays until it moves over
        await self._command(correction)

    @workflow.signal
    async def letter_received(self, received: LetterReceived) -> None:
        if self._legacy is not None:
            return  # the first shape knows no receipts: its deadline ran from sending
        await self._command(received, wait=False)

    @workflow.update
    async def record_mediation(self, result: MediationResult) -> InvoiceStatus:
        await self._command(result)
        return self.status()

    @record_mediation.validator
    def _validate_mediation(self, result: MediationResult) -> None:
        self._new_only()
        self._validate(result)

    @workflow.update
    async def update_legal(self, update: LegalUpdate) -> InvoiceStatus:
        await self._command(update)
        return self.status()

    @update_legal.validator
    def _validate_legal(self, update: LegalUpdate) -> None:
        self._new_only()
        self._validate(update)

    def _new_only(self) -> None:
        if self._legacy is not None:
            raise ApplicationError(
                "this invoice runs the first collection shape: it has no mediation outcome or "
                "legal file until its next continue-as-new",
                type=ErrorType.NOT_SUPPORTED,
            )
