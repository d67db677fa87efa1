"""A retried activity never sends a second message."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.calendar import business_moment
from activities.delivery import DeliveryActivities
from activities.email import OutboxSender
from activities.law import LawActivities
from activities.messaging import MessagingActivities
from activities.notify import NotifyActivities
from config import Settings
from contracts.invoice import DeliveryOutcome, DeliveryRequest
from domain.lifecycle import Stage
from messages import Renderer
from tests.workflows.harness import running_worker
from workflows.invoice import InvoiceWorkflow


async def test_retry_after_a_successful_send_does_not_send_twice(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, task_queue=task_queue)
    outbox = OutboxSender(tmp_path / "outbox", settings.email_from)
    sends: Counter[str] = Counter()

    class CountingOutbox(OutboxSender):
        def send(self, email):
            sends[email.idempotency_key] += 1
            return outbox.send(email)

    real = MessagingActivities(
        engine, CountingOutbox(tmp_path / "outbox", settings.email_from), Renderer(), settings
    )
    delivery = DeliveryActivities(engine, real)

    # The real activity, registered under its real name, but the first attempt of each send
    # "crashes" after the message went out and was recorded (a lost completion, a worker
    # killed at the wrong moment): Temporal retries it.
    @activity.defn(name="deliver")
    def deliver_then_crash_once(request: DeliveryRequest) -> DeliveryOutcome:
        outcome = delivery.deliver(request)
        if activity.info().attempt == 1:
            raise RuntimeError("worker lost before reporting completion")
        return outcome

    worker = Worker(
        time_env.client,
        task_queue=task_queue,
        workflows=[InvoiceWorkflow],
        activities=[
            deliver_then_crash_once,
            delivery.record,
            business_moment,
            NotifyActivities(settings).notify_backoffice,
            LawActivities(settings).late_payment_costs,
        ],
        activity_executor=ThreadPoolExecutor(4),
        max_concurrent_activities=4,
    )
    async with running_worker(time_env, engine, tmp_path, task_queue, worker=worker) as h:
        facts = await h.hand_over("INV-ONCE", due_in_days=3)
        # Paid once reminder_1 went out (a weekend or a holiday may put it off a few days).
        await h.until_sent(facts, "reminder_1")
        result = await h.pay("INV-ONCE", "VIR-1", "1200.00")
        assert result.stage == Stage.PAID

        async def thanked() -> bool:
            return len(h.sent(facts)) >= 3

        # If the debtor had reminder_1 that day, the thank-you goes out the next business day
        # (four days later over Christmas).
        await h.advance_until(thanked, max_days=7, step_hours=6)
        await h.handle("INV-ONCE").result()

    assert [step for step, _, _ in h.sent(facts)] == ["pre_reminder", "reminder_1", "thank_you"]
    # Each message reached the provider once, although every send activity ran twice.
    assert sends == Counter(
        {
            "INV-ONCE:pre_reminder:email": 1,
            "INV-ONCE:reminder_1:email": 1,
            "INV-ONCE:thank_you:email": 1,
        }
    )
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 3
