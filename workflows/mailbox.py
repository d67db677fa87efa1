"""Each debtor's mailbox: at most one message per debtor, channel and calendar day.

Invoices do not send their debtor-facing step messages themselves: they hand them to their
debtor's mailbox (`enqueue_debtor_message`, which signals it, starting it if needed). The
mailbox gathers what arrives for a short window, so the invoices whose steps fall due at the
same scheduled moment go out as ONE message listing them all (`send_batch`); a message for a
day whose message already went out on that channel waits for the next day. An idle mailbox
ends after a few days; the next message starts it again.

Small state, carried through continue-as-new: the groups waiting to go out and, per channel,
the last day a message went out.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.mailbox import (
        MailBatch,
        MailboxActivities,
        MailboxDelivery,
        MailboxInput,
        MailboxState,
        MailGroup,
        MailItem,
    )
    from activities.messaging import SendRequest
    from contracts.ids import ENQUEUE_SIGNAL, MAILBOX_WORKFLOW
    from domain.playbook import Recipient
    from domain.schedule import Clock
    from workflows.waiting import Wakeable

# Steps planned for the same moment reach the mailbox within seconds of each other (each
# invoice runs its own activities first): they are gathered for 10 minutes of a real day,
# scaled like every other duration when a day is shorter (demos, acceptance runs).
GATHER_WINDOW_DAYS = 10 / (24 * 60)
# A mailbox with nothing to send for this many days ends; its once-a-day memory is then
# older than any day a new message could stand for.
IDLE_DAYS = 3

ENQUEUE_TIMEOUT = timedelta(seconds=30)
# Signalling the mailbox only needs the Temporal server, which the calling workflow has too:
# retry without limit.
ENQUEUE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
# As for single messages: a provider outage is retried with backoff for up to a day.
BATCH_TIMEOUT = timedelta(minutes=2)
BATCH_DEADLINE = timedelta(days=1)
BATCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=[
        "PermanentSendError",
        "TemplateNotFound",
        "MissingInvoice",
        "ChannelUnavailable",
        "InvalidBatch",
        "DayAlreadyUsed",
    ],
)


async def enqueue_debtor_message(request: SendRequest, debtor_id: str, day_seconds: float) -> None:
    """Hand one debtor-facing step message to the debtor's mailbox; call it from a workflow.

    Returns once the mailbox has it, not once it is sent: the mailbox sends it, alone or
    listed with the debtor's other invoices of the day, and records it in the store.
    """
    if request.recipient != Recipient.DEBTOR:
        raise ValueError(f"only debtor messages go through the mailbox, not {request.recipient}")
    await workflow.execute_activity_method(
        MailboxActivities.enqueue_message,
        MailboxDelivery(
            item=MailItem(request=request, debtor_id=debtor_id, day=request.as_of),
            day_seconds=day_seconds,
        ),
        start_to_close_timeout=ENQUEUE_TIMEOUT,
        retry_policy=ENQUEUE_RETRY,
    )


@workflow.defn(name=MAILBOX_WORKFLOW)
class DebtorMailboxWorkflow:
    @workflow.init
    def __init__(self, input: MailboxInput) -> None:
        self._debtor_id = input.debtor_id
        self._day_seconds = input.day_seconds
        self._state = input.state or MailboxState()
        clock = Clock(workflow.now(), input.day_seconds)
        self._day = clock.days(1)
        self._window = clock.days(GATHER_WINDOW_DAYS)
        self._last_activity = workflow.now()
        self._alarm = Wakeable()

    @workflow.run
    async def run(self, input: MailboxInput) -> None:
        while True:
            group = self._next_group()
            if group is not None:
                if await self._alarm.sleep_until(group.due_at):
                    await self._flush(group)
            elif await self._alarm.sleep_until(self._last_activity + self._day * IDLE_DAYS):
                # Idle: end, unless a message came in while the handlers finished.
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._state.groups:
                    return
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    MailboxInput(
                        debtor_id=self._debtor_id, day_seconds=self._day_seconds, state=self._state
                    )
                )

    @workflow.signal(name=ENQUEUE_SIGNAL)
    def enqueue(self, item: MailItem) -> None:
        if item.debtor_id != self._debtor_id or item.request.recipient != Recipient.DEBTOR:
            # Raising would fail the workflow task over a caller's mistake: drop it, loudly.
            workflow.logger.error(
                "mailbox %s drops %s: not a message to this debtor",
                self._debtor_id,
                item.request.invoice_number,
            )
            return
        self._place(item)
        self._last_activity = workflow.now()
        self._alarm.wake()

    @workflow.query
    def pending(self) -> MailboxState:
        return self._state

    # ------------------------------------------------------------------ grouping

    def _place(self, item: MailItem) -> None:
        """Put an item in the group of its day, or of the next day still free on its channel."""
        channel = item.request.channel
        last = self._state.last_sent.get(channel)
        day = item.day if last is None or item.day > last else last + timedelta(days=1)
        group = next((g for g in self._state.groups if g.channel == channel and g.day == day), None)
        if group is None:
            start = workflow.now()
            if day > item.day:
                # Held: the same moment of the day it moves to.
                start = max(start, item.request.planned_at + self._day * (day - item.day).days)
            group = MailGroup(channel=channel, day=day, due_at=start + self._window)
            self._state.groups.append(group)
        number = item.request.invoice_number
        for index, known in enumerate(group.items):
            if known.request.invoice_number == number:
                # One line per invoice: its latest step says all (as a caught-up invoice
                # sends only its latest reminder); a repeated signal changes nothing.
                if known.request.planned_at <= item.request.planned_at:
                    group.items[index] = item
                return
        group.items.append(item)

    def _next_group(self) -> MailGroup | None:
        return min(self._state.groups, key=lambda g: g.due_at, default=None)

    async def _flush(self, group: MailGroup) -> None:
        self._state.groups = [g for g in self._state.groups if g is not group]
        channel = group.channel
        previous = self._state.last_sent.get(channel)
        if previous is not None and group.day <= previous:
            for item in group.items:
                self._place(item)
            return
        # Claimed before sending: what arrives for this day meanwhile waits for the next.
        self._state.last_sent[channel] = group.day
        batch = MailBatch(
            debtor_id=self._debtor_id,
            channel=channel,
            day=group.day,
            # A held message speaks of the day it goes out (days late, interest).
            requests=[item.request.model_copy(update={"as_of": group.day}) for item in group.items],
        )
        sent = False
        try:
            outcome = await workflow.execute_activity_method(
                MailboxActivities.send_batch,
                batch,
                start_to_close_timeout=BATCH_TIMEOUT,
                schedule_to_close_timeout=BATCH_DEADLINE,
                retry_policy=BATCH_RETRY,
            )
            sent = outcome.sent
        except ActivityError as err:
            # The store records the failure on every invoice's row; the mailbox goes on.
            workflow.logger.warning(
                "mailbox %s: %s message of %s failed: %s",
                self._debtor_id,
                channel.value,
                group.day,
                err.cause or err,
            )
        if not sent and self._state.last_sent.get(channel) == group.day:
            # Nothing went out: the day is free again.
            if previous is None:
                del self._state.last_sent[channel]
            else:
                self._state.last_sent[channel] = previous
        self._last_activity = workflow.now()

    # ------------------------------------------------------------------ time
