"""One message per debtor, channel and day: the debtor's mailbox on the time-skipping server.

Invoices are stood in for by a tiny workflow that does what the invoice workflow does when a
debtor-facing step falls due: it hands the step's message to `enqueue_debtor_message`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path

import pytest
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from temporalio import activity, workflow
from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.email import EmailSender, OutboxSender, OutgoingEmail, SendReceipt
from activities.mailbox import BatchOutcome, MailBatch, MailboxActivities, MailboxDelivery, MailItem
from activities.messaging import MessagingActivities, SendRequest, batch_key
from config import Settings
from domain.lifecycle import InvoiceFacts, Stage
from domain.money import Money
from domain.playbook import Channel, Tone, load_playbook_named
from messages import Renderer
from store.engine import transaction
from store.invoices import add_invoice, interactions_of, upsert_debtor
from store.tables import Debtor, Interaction, Invoice
from tests.workflows.harness import Harness, running_worker
from workflows import contract
from workflows.mailbox import IDLE_DAYS, DebtorMailboxWorkflow, enqueue_debtor_message

# A day lasts 10 minutes (as in demos): a test skips an hour, not weeks. The time-skipping
# server is shared by the session, and skipping far would reach the timers of workflows other
# tests left behind, whose tasks no worker polls any more.
DAY_SECONDS = 600.0


def days(count: float) -> timedelta:
    return timedelta(seconds=DAY_SECONDS * count)


# Past the gather window (10 minutes of a real day: about 4 seconds here).
AFTER_WINDOW = days(0.05)
PLACEHOLDER = datetime(2000, 1, 1, tzinfo=UTC)


class StepInput(BaseModel):
    request: SendRequest
    debtor_id: str


@pytest.fixture
def debtor(task_queue: str) -> str:
    """A debtor of its own per test: the server, and its mailboxes, outlive a test."""
    return f"D-{task_queue}"


# Not sandboxed: it lives in a test module, which imports the store.
@workflow.defn(sandboxed=False)
class InvoiceStepWorkflow:
    """An invoice reaching a debtor-facing step: its message goes to the debtor's mailbox."""

    @workflow.run
    async def run(self, input: StepInput) -> None:
        request = input.request.model_copy(update={"planned_at": workflow.now()})
        await enqueue_debtor_message(request, input.debtor_id, DAY_SECONDS)


class CountingOutbox(OutboxSender):
    """The real outbox, counting what reaches it per idempotency key."""

    def __init__(self, directory: Path, from_email: str) -> None:
        super().__init__(directory, from_email)
        self.sends: Counter[str] = Counter()

    def send(self, email: OutgoingEmail) -> SendReceipt:
        self.sends[email.idempotency_key] += 1
        return super().send(email)


def seed(engine: Engine, debtor: str, today: date, *numbers: str) -> None:
    with transaction(engine) as session:
        upsert_debtor(
            session,
            Debtor(
                id=debtor,
                name="Dupont & Fils SARL",
                email="compta@dupont.example",
                country="FR",
                language="fr",
            ),
        )
        for number in numbers:
            facts = InvoiceFacts(
                number=number,
                debtor_id=debtor,
                amount=Money.of(Decimal("1200.00"), "EUR"),
                issue_date=today - timedelta(days=60),
                due_date=today - timedelta(days=3),
            )
            add_invoice(session, facts, load_playbook_named("default"))


def step(
    debtor: str, number: str, day: date, step_id: str = "reminder_1", tone: Tone = Tone.FRIENDLY
) -> StepInput:
    request = SendRequest(
        invoice_number=number,
        step_id=step_id,
        channel=Channel.EMAIL,
        template="reminder",
        tone=tone,
        planned_at=PLACEHOLDER,  # the stand-in workflow sets it to its own now()
        as_of=day,
        outstanding=Money.of(Decimal("1200.00"), "EUR"),
    )
    return StepInput(request=request, debtor_id=debtor)


@contextmanager
def mailbox_worker(
    env: WorkflowEnvironment,
    engine: Engine,
    tmp_path: Path,
    task_queue: str,
    *,
    sender: EmailSender | None = None,
    send_batch: Callable[[MailBatch], BatchOutcome] | None = None,
) -> Iterator[Worker]:
    """What `build_worker` registers for the mailbox, plus the stand-in invoice workflow."""
    settings = Settings(_env_file=None, data_dir=tmp_path, task_queue=task_queue)
    messaging = MessagingActivities(
        engine,
        sender or OutboxSender(tmp_path / "outbox", settings.email_from),
        Renderer(),
        settings,
    )
    mailbox = MailboxActivities(env.client, messaging)
    with ThreadPoolExecutor(8) as pool:
        yield Worker(
            env.client,
            task_queue=task_queue,
            workflows=[DebtorMailboxWorkflow, InvoiceStepWorkflow],
            activities=[
                mailbox.enqueue_message,
                send_batch or mailbox.send_batch,
                messaging.send_message,
            ],
            activity_executor=pool,
            max_concurrent_activities=8,
        )


async def reach_step(h: Harness, *steps: StepInput) -> None:
    """Invoices whose step falls due at this same moment: all hand their message over."""
    handles = [
        await h.env.client.start_workflow(
            InvoiceStepWorkflow.run,
            s,
            id=f"step-{s.request.invoice_number}-{s.request.step_id}-{s.request.as_of}",
            task_queue=h.task_queue,
        )
        for s in steps
    ]
    # Not `result()`: waiting on a result lets the server skip time, through the mailbox's
    # own timers. Polling keeps the clock where the test put it.
    for handle in handles:
        for _ in range(200):
            if (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"{handle.id} did not hand its message over")


async def until_ended(env: WorkflowEnvironment, debtor: str) -> str:
    """Skip time a day at a time until the debtor's idle mailbox has ended; its run id."""
    handle = env.client.get_workflow_handle(contract.mailbox_workflow_id(debtor))
    for _ in range(IDLE_DAYS + 5):
        await env.sleep(days(1))
        description = await handle.describe()
        if description.status == WorkflowExecutionStatus.COMPLETED:
            return description.run_id or ""
    raise AssertionError(f"the mailbox of {debtor} is still running")


async def eventually(check: Callable[[], bool], what: str, seconds: float = 20) -> None:
    for _ in range(int(seconds * 10)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"still waiting for {what}")


def by_key(messages: list[EmailMessage]) -> dict[str, EmailMessage]:
    return {str(m["X-Relance-Key"]): m for m in messages}


def rows(engine: Engine, number: str) -> list[Interaction]:
    with transaction(engine) as session:
        return list(interactions_of(session, number))


def body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


async def today(env: WorkflowEnvironment) -> date:
    return (await env.get_current_time()).date()


# ---------------------------------------------------------------- consolidation


async def test_three_invoices_the_same_day_make_one_email_and_a_fourth_the_next_day_its_own(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str, debtor: str
) -> None:
    day = await today(time_env)
    seed(engine, debtor, day, "MB-1", "MB-2", "MB-3", "MB-4")
    with mailbox_worker(time_env, engine, tmp_path, task_queue) as worker:
        async with running_worker(time_env, engine, tmp_path, task_queue, worker=worker) as h:
            await reach_step(
                h,
                step(debtor, "MB-1", day),
                step(debtor, "MB-2", day, tone=Tone.FIRM),
                step(debtor, "MB-3", day, step_id="pre_reminder", tone=Tone.COURTEOUS),
            )
            assert h.outbox_messages() == []  # still gathering
            await time_env.sleep(AFTER_WINDOW)
            await eventually(lambda: len(h.outbox_messages()) == 1, "the consolidated email")

            [email] = h.outbox_messages()
            assert email["X-Relance-Key"] == batch_key(debtor, Channel.EMAIL, day)
            assert "compta@dupont.example" in email["To"]
            # Listed once each, in the strongest tone of the three (firm).
            assert email["Subject"] == "Factures MB-1, MB-2 et MB-3 impayées"
            text = body(email)
            for number in ("MB-1", "MB-2", "MB-3"):
                assert text.count(f"Facture n° {number} ") == 1
            assert "sans délai" in text
            assert "Modalités de règlement" in text

            # Each invoice's history records the one message that listed it.
            recorded = [rows(engine, n) for n in ("MB-1", "MB-2", "MB-3")]
            assert [len(r) for r in recorded] == [1, 1, 1]
            for (row,), step_id in zip(
                recorded, ("reminder_1", "reminder_1", "pre_reminder"), strict=True
            ):
                assert row.status == "sent"
                assert row.step_id == step_id
                assert row.template == "consolidated"
                assert row.subject == email["Subject"]
                assert row.batch_key == email["X-Relance-Key"]
            assert len({r[0].provider_message_id for r in recorded}) == 1

            # The next day, a fourth invoice alone: its own message, the usual template.
            await time_env.sleep(days(1))
            await reach_step(h, step(debtor, "MB-4", day + timedelta(days=1)))
            await time_env.sleep(AFTER_WINDOW)
            await eventually(lambda: len(h.outbox_messages()) == 2, "the fourth invoice's email")

            alone = by_key(h.outbox_messages())["MB-4:reminder_1:email"]
            assert alone["Subject"].startswith("Rappel : facture MB-4 arrivée à échéance le")
            assert "MB-1" not in body(alone)
            [row] = rows(engine, "MB-4")
            assert row.status == "sent" and row.template == "reminder"
            assert row.batch_key == batch_key(debtor, Channel.EMAIL, day + timedelta(days=1))
            await until_ended(time_env, debtor)


async def test_a_second_batch_the_same_day_waits_for_the_next_day(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str, debtor: str
) -> None:
    day = await today(time_env)
    seed(engine, debtor, day, "MH-1", "MH-2", "MH-3", "MH-4", "MH-5")
    with mailbox_worker(time_env, engine, tmp_path, task_queue) as worker:
        async with running_worker(time_env, engine, tmp_path, task_queue, worker=worker) as h:
            await reach_step(h, step(debtor, "MH-1", day), step(debtor, "MH-2", day))
            await time_env.sleep(AFTER_WINDOW)
            await eventually(lambda: len(h.outbox_messages()) == 1, "the morning's email")

            # Later the same day, three more invoices reach a step.
            await time_env.sleep(days(0.2))
            await reach_step(
                h, step(debtor, "MH-3", day), step(debtor, "MH-4", day), step(debtor, "MH-5", day)
            )
            await time_env.sleep(days(0.3))
            await asyncio.sleep(0.5)
            assert len(h.outbox_messages()) == 1, "a second message the same day"
            mailbox = time_env.client.get_workflow_handle(contract.mailbox_workflow_id(debtor))
            waiting = await mailbox.query(DebtorMailboxWorkflow.pending)
            [held] = waiting.groups
            assert held.day == day + timedelta(days=1)
            assert sorted(i.request.invoice_number for i in held.items) == ["MH-3", "MH-4", "MH-5"]

            # Meanwhile MH-5 is paid: the next day's message no longer mentions it.
            with transaction(engine) as session:
                invoice = session.get(Invoice, "MH-5")
                assert invoice is not None
                invoice.stage, invoice.outstanding = Stage.PAID, Decimal(0)
                session.add(invoice)

            # The same moment the next day, then the window.
            await time_env.sleep(days(0.8))
            await eventually(lambda: len(h.outbox_messages()) == 2, "the held email")
            next_day = by_key(h.outbox_messages())[
                batch_key(debtor, Channel.EMAIL, day + timedelta(days=1))
            ]
            assert next_day["Subject"] == "Rappel : factures MH-3 et MH-4 en attente de règlement"
            assert "MH-5" not in body(next_day)
            assert rows(engine, "MH-5") == []
            for number in ("MH-3", "MH-4"):
                [row] = rows(engine, number)
                assert row.status == "sent"
                assert row.batch_key == next_day["X-Relance-Key"]

            await until_ended(time_env, debtor)
            # Held, sent, idle, ended: the run replays deterministically on the current code.
            history = await mailbox.fetch_history()
            replayer = Replayer(
                workflows=[DebtorMailboxWorkflow], data_converter=pydantic_data_converter
            )
            await replayer.replay_workflow(history)


async def test_a_retried_batch_after_success_sends_nothing_more(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str, debtor: str
) -> None:
    day = await today(time_env)
    seed(engine, debtor, day, "MR-1", "MR-2", "MR-3")
    settings = Settings(_env_file=None, data_dir=tmp_path, task_queue=task_queue)
    outbox = CountingOutbox(tmp_path / "outbox", settings.email_from)
    real = MailboxActivities(
        time_env.client, MessagingActivities(engine, outbox, Renderer(), settings)
    )

    # The first attempt "crashes" after the message went out and was recorded (a lost
    # completion, a worker killed at the wrong moment): Temporal retries it.
    @activity.defn(name="send_batch")
    def send_then_crash_once(batch: MailBatch) -> BatchOutcome:
        outcome = real.send_batch(batch)
        if activity.info().attempt == 1:
            raise RuntimeError("worker lost before reporting completion")
        return outcome

    with mailbox_worker(
        time_env, engine, tmp_path, task_queue, sender=outbox, send_batch=send_then_crash_once
    ) as worker:
        async with running_worker(time_env, engine, tmp_path, task_queue, worker=worker) as h:
            await reach_step(
                h, step(debtor, "MR-1", day), step(debtor, "MR-2", day), step(debtor, "MR-3", day)
            )
            await until_ended(time_env, debtor)  # sent, retried, then idle until it ended

    key = batch_key(debtor, Channel.EMAIL, day)
    assert outbox.sends == Counter({key: 1})
    assert len(h.outbox_messages()) == 1
    for number in ("MR-1", "MR-2", "MR-3"):
        [row] = rows(engine, number)
        assert row.status == "sent" and row.attempts == 1 and row.batch_key == key


async def test_the_worker_serves_the_mailbox_that_enqueue_message_starts(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str, debtor: str
) -> None:
    day = await today(time_env)
    seed(engine, debtor, day, "MW-1", "MW-2")
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:  # build_worker
        settings = Settings(_env_file=None, data_dir=tmp_path, task_queue=task_queue)
        mailbox = MailboxActivities(
            h.env.client,
            MessagingActivities(
                engine, OutboxSender(h.outbox, settings.email_from), Renderer(), settings
            ),
        )
        env = ActivityEnvironment()
        env.info = dataclasses.replace(env.info, task_queue=task_queue)
        now = await time_env.get_current_time()
        for number in ("MW-1", "MW-2"):
            request = step(debtor, number, day).request.model_copy(update={"planned_at": now})
            item = MailItem(request=request, debtor_id=debtor, day=day)
            # Twice: a retried enqueue signals again, and changes nothing.
            for _ in range(2):
                await env.run(
                    mailbox.enqueue_message, MailboxDelivery(item=item, day_seconds=DAY_SECONDS)
                )
        await time_env.sleep(AFTER_WINDOW)
        await eventually(lambda: len(h.outbox_messages()) == 1, "the email")

        [email] = h.outbox_messages()
        assert email["X-Relance-Key"] == batch_key(debtor, Channel.EMAIL, day)
        assert [len(rows(engine, n)) for n in ("MW-1", "MW-2")] == [1, 1]
        await until_ended(time_env, debtor)


async def test_a_signal_to_an_ended_mailbox_starts_a_new_one(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str, debtor: str
) -> None:
    day = await today(time_env)
    seed(engine, debtor, day, "ME-1", "ME-2")
    with mailbox_worker(time_env, engine, tmp_path, task_queue) as worker:
        async with running_worker(time_env, engine, tmp_path, task_queue, worker=worker) as h:
            await reach_step(h, step(debtor, "ME-1", day))
            first_run = await until_ended(time_env, debtor)
            await reach_step(h, step(debtor, "ME-2", day + timedelta(days=IDLE_DAYS + 1)))
            await time_env.sleep(AFTER_WINDOW)
            await eventually(lambda: len(h.outbox_messages()) == 2, "the second email")
            assert set(by_key(h.outbox_messages())) == {
                "ME-1:reminder_1:email",
                "ME-2:reminder_1:email",
            }
            assert await until_ended(time_env, debtor) != first_run
