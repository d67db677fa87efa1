"""The workflow as the machine's interpreter: what reached users before it, never again.

Each test stages, on the time-skipping server with a real worker and store, a path where the
first released workflow stranded an invoice, skipped a step, sent outside the send window or
kept a corrected address on paper.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from domain.calendar import is_business_day
from domain.collection.commands import ContactCorrected
from domain.holds import DeliveryEvent, HoldRequest, PlaybookMigration, ResumeRequest
from domain.lifecycle import PaymentInput, Stage
from domain.money import Money
from domain.playbook import load_playbook_named
from tests.workflows.harness import Harness, running_worker
from workflows.invoice import InvoiceWorkflow

PARIS = ZoneInfo("Europe/Paris")


def sent_rows(h: Harness, number: str) -> list[tuple[str, str, datetime]]:
    return [
        (row.step_id, row.channel, row.planned_at.astimezone(UTC))
        for row in h.interactions(number)
        if row.status == "sent" and row.planned_at is not None
    ]


async def test_a_pause_landing_while_the_next_step_is_placed_strands_nothing(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        facts = await h.hand_over("INV-STRAND", due_in_days=10)
        handle = h.handle("INV-STRAND")
        # At once: the workflow is asking the calendar where its first step goes. One day:
        # the courtesy reminder (due - 5) moved by the pause and then past a holiday weekend
        # (up to 3 days) still comes before the due date, or it would rightly be skipped.
        until = (await h.today()) + timedelta(days=1)
        await handle.execute_update(
            InvoiceWorkflow.pause,
            HoldRequest(reason="customer on holiday", by="claire", until=until),
        )
        # The pause ends by itself; the collection goes on where it was.
        await h.until_sent(facts, "reminder_1")
        described = await handle.describe()
        assert described.status == WorkflowExecutionStatus.RUNNING
        kinds = [e.kind for e in h.events("INV-STRAND")]
        assert "hold_started" in kinds and "hold_ended" in kinds
        assert [s for s, _, _ in h.sent(facts)][:2] == ["pre_reminder", "reminder_1"]


async def test_a_migration_as_a_step_goes_out_skips_no_step(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    v1 = load_playbook_named("default")
    v2 = v1.model_copy(update={"version": 2})
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        facts = await h.hand_over("INV-MIGRATE", due_in_days=-2, playbook=v1)
        await h.until_sent(facts, "reminder_1")
        # Moved while reminder_1's send may still be settling: reminder_2 is next, not 3.
        status = await h.handle("INV-MIGRATE").execute_update(
            InvoiceWorkflow.migrate_playbook, PlaybookMigration(playbook=v2, by="daf")
        )
        assert status.next_step is not None and status.next_step.step_id == "reminder_2"
        await h.until_sent(facts, "reminder_3")
        steps = [s for s, _, _ in h.sent(facts)]
        assert steps == ["reminder_1", "reminder_2", "reminder_3"]


async def test_a_step_moved_by_a_pause_still_goes_out_inside_the_send_window(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        facts = await h.hand_over("INV-WINDOW", due_in_days=5)
        handle = h.handle("INV-WINDOW")
        # A pause of a day and a half: the frozen time moves reminder_1 by 36 hours, which
        # would land it in the evening.
        await h.sleep_until_day(facts, 1)
        await handle.execute_update(
            InvoiceWorkflow.pause, HoldRequest(reason="call scheduled", by="claire")
        )
        await time_env.sleep(timedelta(hours=36))
        await handle.execute_update(InvoiceWorkflow.resume, ResumeRequest(by="claire"))
        await h.until_sent(facts, "reminder_1")
        (at,) = [at for step, _, at in sent_rows(h, "INV-WINDOW") if step == "reminder_1"]
        local = at.astimezone(PARIS)
        assert is_business_day(local.date(), "FR"), local
        assert 9 <= local.hour < 18, local
        # And later than the reminder's day plus the time frozen.
        assert at >= datetime.combine(facts.due_date, datetime.min.time(), PARIS) + timedelta(
            days=3, hours=9 + 36
        )


async def test_a_corrected_address_gets_email_again_and_the_history_says_so(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        facts = await h.hand_over("INV-BOUNCE", due_in_days=6)
        handle = h.handle("INV-BOUNCE")
        await h.until_sent(facts, "pre_reminder")
        now = await time_env.get_current_time()
        bounce = DeliveryEvent(
            event_id="sg-1", kind="bounce", step_id="pre_reminder", occurred_at=now
        )
        await handle.signal(InvoiceWorkflow.delivery_event, bounce)
        await h.until_sent(facts, "pre_reminder_fallback")
        await h.until_sent(facts, "reminder_1")
        await handle.signal(
            InvoiceWorkflow.contact_corrected,
            ContactCorrected(event_id="fix-1", by="claire", reason="new AP address"),
        )
        await h.until_sent(facts, "reminder_2")
        channels = {step: channel for step, channel, _ in sent_rows(h, "INV-BOUNCE")}
        assert channels == {
            "pre_reminder": "email",
            "pre_reminder_fallback": "letter",
            # While the address bounced: the playbook's fallback.
            "reminder_1": "letter",
            # Corrected: email again.
            "reminder_2": "email",
        }
        corrected = [e for e in h.events("INV-BOUNCE") if e.kind == "contact_corrected"]
        assert len(corrected) == 1 and "claire" in corrected[0].summary


async def test_after_a_bounce_the_thank_you_goes_by_letter(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        facts = await h.hand_over("INV-THANKS", due_in_days=6)
        handle = h.handle("INV-THANKS")
        await h.until_sent(facts, "pre_reminder")
        now = await time_env.get_current_time()
        await handle.signal(
            InvoiceWorkflow.delivery_event,
            DeliveryEvent(event_id="sg-2", kind="dropped", step_id="pre_reminder", occurred_at=now),
        )
        await h.until_sent(facts, "pre_reminder_fallback")
        result = await h.pay("INV-THANKS", "VIR-9", str(Decimal("1200.00")))
        assert result.stage == Stage.PAID
        await h.ended("INV-THANKS")
        thanks = [(s, c) for s, c, _ in sent_rows(h, "INV-THANKS") if s == "thank_you"]
        assert thanks == [("thank_you", "letter")]


async def test_paid_late_the_invoice_records_what_it_still_owes(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        facts = await h.hand_over("INV-LATE", due_in_days=-12)
        paid_on = facts.due_date + timedelta(days=10)
        await h.handle("INV-LATE").execute_update(
            InvoiceWorkflow.record_payment,
            PaymentInput(reference="VIR-L", amount=Money.of("1200.00", "EUR"), received_on=paid_on),
        )
        await h.ended("INV-LATE")
        (costs,) = [e for e in h.events("INV-LATE") if e.kind == "late_payment_costs"]
        # Hand-worked, Code de commerce L441-10 II: no contract rate, so the ECB main rate in
        # force on 1 July 2026 (2.15 %, provisional) + 10 points = 12.15 % a year, simple, on
        # actual days / 365: 1,200.00 × 12.15 % × 10 / 365 = 3.9945… → 3.99 €; plus the fixed
        # 40 € recovery indemnity (D441-5): 43.99 €.
        assert costs.detail["interest"] == "3.99"
        assert costs.detail["indemnity"] == "40.00"
        assert costs.detail["total"] == "43.99"
        assert costs.detail["days_late"] == "10"
