"""One message per debtor per channel per day, through real invoice workflows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from temporalio.testing import WorkflowEnvironment

from domain.calendar import is_business_day
from tests.workflows.harness import running_worker


async def test_three_invoices_due_together_get_one_email_and_a_fourth_its_own(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        today = await h.today()
        # Pre-reminders (J-5) on two consecutive business days.
        due = next(
            d
            for d in range(8, 30)
            if is_business_day(today + timedelta(days=d - 5), "FR")
            and is_business_day(today + timedelta(days=d - 4), "FR")
        )
        together = [
            await h.hand_over(f"INV-C{i}", due_in_days=due, debtor_id="D-SHARED") for i in (1, 2, 3)
        ]
        later = await h.hand_over("INV-C4", due_in_days=due + 1, debtor_id="D-SHARED")
        # Every pre-reminder is out: three the same day, the fourth the next day.
        for facts in [*together, later]:
            await h.until_sent(facts, "pre_reminder")

        messages = h.outbox_messages()
        assert len(messages) == 2
        first, second = messages if "INV-C1" in str(messages[0].get_body()) else messages[::-1]
        body = first.get_body(preferencelist=("plain",))
        assert body is not None
        text = body.get_content()
        assert all(number in text for number in ("INV-C1", "INV-C2", "INV-C3"))
        assert "INV-C4" not in text
        assert "INV-C4" in str(second["Subject"])
        # Each invoice's history records the message it was part of.
        for facts in together:
            rows = [r for r in h.interactions(facts.number) if r.status == "sent"]
            assert [(r.step_id, r.channel) for r in rows] == [("pre_reminder", "email")]
