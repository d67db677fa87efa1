"""Every channel's failure takes the playbook's fallback, on the time-skipping server with a
real worker and store: an email bounce, an SMS STOP, a registered letter not claimed and a
call never reached, each as its provider's seam tells the workflow; and a text that cannot go
out at all (no number)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from activities.email import OutboxSender
from activities.messaging import MessagingActivities
from config import Settings
from domain.collection.commands import ContactCorrected
from domain.holds import DeliveryEvent, DeliveryKind
from domain.lifecycle import Stage
from domain.playbook import Channel, Playbook, Step
from messages import Renderer
from store.engine import transaction
from store.tables import Debtor, Task
from tests.workflows.harness import CREDITOR_ADDRESS, Harness, running_worker
from worker import build_worker
from workflows.invoice import InvoiceWorkflow

# Texts go out inside the debtor's send window by the wall clock: pinned to a Tuesday morning.
OPEN = datetime(2026, 3, 3, 10, tzinfo=UTC)

PLAYBOOK = Playbook(
    name="every_channel",
    version=1,
    steps=(
        Step(id="by_email", stage=Stage.OVERDUE, offset_days=3, template="reminder",
             channels=(Channel.EMAIL,), fallback=(Channel.SMS,)),
        Step(id="by_sms", stage=Stage.OVERDUE, offset_days=10, template="reminder",
             channels=(Channel.SMS,), fallback=(Channel.LETTER,)),
        Step(id="formal_notice", stage=Stage.FORMAL_NOTICE, offset_days=20,
             template="formal_notice", channels=(Channel.LETTER,), fallback=(Channel.PHONE,)),
        Step(id="call", stage=Stage.FORMAL_NOTICE, offset_days=30, template="reminder",
             channels=(Channel.PHONE,), fallback=(Channel.LETTER,)),
    ),
)  # fmt: skip


@asynccontextmanager
async def texting_worker(
    env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> AsyncIterator[Harness]:
    """The usual worker, whose texts find the send window open."""
    settings = Settings(
        _env_file=None, data_dir=tmp_path, task_queue=task_queue, creditor_address=CREDITOR_ADDRESS
    )
    sender = OutboxSender(tmp_path / "outbox", settings.email_from)
    messaging = MessagingActivities(engine, sender, Renderer(), settings, clock=lambda: OPEN)
    worker = build_worker(env.client, settings, engine, task_queue=task_queue, messaging=messaging)
    async with running_worker(env, engine, tmp_path, task_queue, worker=worker) as h:
        yield h


def give_phone(h: Harness, debtor_id: str) -> None:
    with transaction(h.engine) as session:
        debtor = session.get(Debtor, debtor_id)
        assert debtor is not None
        debtor.phone = "+33612345678"
        session.add(debtor)


def sent_on(h: Harness, number: str) -> list[tuple[str, str]]:
    return [(row.step_id, row.channel) for row in h.interactions(number) if row.status == "sent"]


def call_tasks(h: Harness, number: str) -> list[str]:
    with transaction(h.engine) as session:
        tasks = session.exec(select(Task).where(Task.invoice_number == number)).all()
        return sorted(t.id for t in tasks if t.kind == "call")


async def tell(
    h: Harness, number: str, kind: DeliveryKind, step: str, channel: Channel, reason: str
) -> None:
    now = await h.env.get_current_time()
    await h.handle(number).signal(
        InvoiceWorkflow.delivery_event,
        DeliveryEvent(
            event_id=f"{channel.value}-{step}",
            kind=kind,
            step_id=step,
            channel=channel.value,
            occurred_at=now,
            reason=reason,
        ),
    )


async def test_a_bounce_a_stop_an_unclaimed_letter_and_an_unreached_call_each_fall_back(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    number = "INV-EVERY"
    async with texting_worker(time_env, engine, tmp_path, task_queue) as h:
        facts = await h.hand_over(number, due_in_days=1, playbook=PLAYBOOK)
        give_phone(h, facts.debtor_id)

        await h.until_sent(facts, "by_email")
        await tell(h, number, "bounce", "by_email", Channel.EMAIL, "mailbox unknown")
        await h.until_sent(facts, "by_email_fallback")

        await h.until_sent(facts, "by_sms")
        await tell(h, number, "dropped", "by_sms", Channel.SMS, "STOP reply")
        await h.until_sent(facts, "by_sms_fallback")

        await h.until_sent(facts, "formal_notice")
        await tell(h, number, "bounce", "formal_notice", Channel.LETTER, "not claimed")

        async def called() -> bool:
            return f"{number}:formal_notice:call" in call_tasks(h, number)

        await h.advance_until(called)
        # A new postal address: letters go out again.
        await h.handle(number).signal(
            InvoiceWorkflow.contact_corrected,
            ContactCorrected(event_id="fix-1", by="claire", channels=(Channel.LETTER,)),
        )

        async def called_again() -> bool:
            return f"{number}:call:call" in call_tasks(h, number)

        await h.advance_until(called_again)
        await tell(h, number, "bounce", "call", Channel.PHONE, "not reached 3 times in a row")
        await h.until_sent(facts, "call_fallback")

        assert sent_on(h, number) == [
            ("by_email", "email"),
            ("by_email_fallback", "sms"),
            ("by_sms", "sms"),
            ("by_sms_fallback", "letter"),
            ("formal_notice", "letter"),
            ("call_fallback", "letter"),
        ]
        events = h.events(number)
        fallbacks = [e.summary for e in events if e.kind in ("fallback", "channel_fallback")]
        assert fallbacks == [
            "Email for by_email undeliverable: sent again by sms",
            "SMS for by_sms did not reach the debtor: sent again by letter",
            "Letter for formal_notice did not reach the debtor: sent again by phone",
            "Phone for call did not reach the debtor: sent again by letter",
        ]
        invalid = [e.summary for e in events if e.kind == "channel_invalid"]
        assert [s.split(" (")[0] for s in invalid] == [
            "SMS cannot reach the debtor",
            "Letter cannot reach the debtor",
            "Phone cannot reach the debtor",
        ]


async def test_a_text_to_a_debtor_without_a_number_goes_by_the_fallback(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    number = "INV-NO-PHONE"
    async with texting_worker(time_env, engine, tmp_path, task_queue) as h:
        playbook = PLAYBOOK.model_copy(update={"steps": PLAYBOOK.steps[1:2]})
        facts = await h.hand_over(number, due_in_days=1, playbook=playbook)
        await h.until_sent(facts, "by_sms_fallback")
        assert sent_on(h, number) == [("by_sms_fallback", "letter")]
        (invalid,) = [e.summary for e in h.events(number) if e.kind == "channel_invalid"]
        assert "the debtor has no phone number" in invalid
        assert not [e for e in h.events(number) if e.kind == "message_failed"]


async def test_a_step_nothing_can_take_to_the_debtor_opens_a_task_to_correct_the_contact(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    number = "INV-NOBODY"
    async with texting_worker(time_env, engine, tmp_path, task_queue) as h:
        playbook = PLAYBOOK.model_copy(update={"steps": PLAYBOOK.steps[1:2]})
        facts = await h.hand_over(number, due_in_days=1, playbook=playbook)
        # No number for the text, no postal address for the letter it falls back to.
        with transaction(h.engine) as session:
            debtor = session.get(Debtor, facts.debtor_id)
            assert debtor is not None
            debtor.postal_address = None
            session.add(debtor)

        def contact_tasks() -> list[tuple[str, str]]:
            with transaction(h.engine) as session:
                rows = session.exec(select(Task).where(Task.invoice_number == number)).all()
                return [(t.id, t.title) for t in rows if t.kind == "contact"]

        async def told() -> bool:
            return bool(contact_tasks())

        await h.advance_until(told)
        assert contact_tasks() == [
            (
                f"{number}:by_sms:contact",
                f"No channel reaches the debtor of invoice {number}: correct the contact",
            )
        ]
        assert sent_on(h, number) == []

        # A new postal address: the task is done.
        await h.handle(number).signal(
            InvoiceWorkflow.contact_corrected,
            ContactCorrected(event_id="fix-1", by="claire", channels=(Channel.LETTER,)),
        )

        async def done() -> bool:
            with transaction(h.engine) as session:
                task = session.get(Task, f"{number}:by_sms:contact")
                return task is not None and task.status == "done"

        await h.advance_until(done)
