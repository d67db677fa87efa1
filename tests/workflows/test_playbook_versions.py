"""A running invoice keeps the playbook it started with; only an operator moves it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from domain.holds import PlaybookMigration
from domain.lifecycle import InvoiceFacts
from domain.playbook import Playbook, load_playbook_named
from store.engine import transaction
from store.tables import Invoice
from tests.workflows.harness import business_day, running_worker
from workflows.invoice import InvoiceWorkflow


def edited(playbook: Playbook) -> Playbook:
    """The finance director's edit: reminder_2 a week earlier, as version 2."""
    steps = [
        step.model_copy(update={"offset_days": 5}) if step.id == "reminder_2" else step
        for step in playbook.steps
    ]
    return Playbook.model_validate({**playbook.model_dump(), "version": 2, "steps": steps})


def _days_of_steps(sent: list[tuple[str, str, int]]) -> dict[str, int]:
    """Each step's day relative to the due date (one message per step in this scenario)."""
    days: dict[str, int] = {}
    for step, _, day in sent:
        if step in days:
            raise AssertionError(f"{step} sent twice")
        days[step] = day
    return days


async def test_editing_a_playbook_changes_new_invoices_only_until_migrated(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    v1 = load_playbook_named("default")
    v2 = edited(v1)
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        old = await h.hand_over("INV-V1", due_in_days=-1, playbook=v1)
        new = await h.hand_over("INV-V2", due_in_days=-1, playbook=v2)
        await h.until_sent(new, "reminder_2")
        await h.until_sent(old, "reminder_2")
        days = {f.number: _days_of_steps(h.sent(f)) for f in (old, new)}
        # Each reminder_2 at its playbook's offset, unless the first reminder was put off to
        # a business day too close to it: then at the playbook's gap after that one. (Put off
        # to reminder_2's own day, over Christmas, the first one is not sent: the latest says
        # all.)
        assert v2.min_gap_days == v1.min_gap_days == int(v1.min_gap_days)
        gap = int(v1.min_gap_days)

        def reminder_2_day(facts: InvoiceFacts, offset: int) -> int:
            first = days[facts.number].get("reminder_1")
            return business_day(facts, offset if first is None else max(offset, first + gap))

        expected = {"INV-V1": reminder_2_day(old, 10), "INV-V2": reminder_2_day(new, 5)}
        assert {number: d["reminder_2"] for number, d in days.items()} == expected

        # The old invoice's history replays on the current code: its input carries v1.
        history = await h.handle("INV-V1").fetch_history()
        replayer = Replayer(workflows=[InvoiceWorkflow], data_converter=pydantic_data_converter)
        await replayer.replay_workflow(history)

        # An operator moves it explicitly: the store and the timeline say so.
        await h.handle("INV-V1").execute_update(
            InvoiceWorkflow.migrate_playbook,
            PlaybookMigration(playbook=v2, by="daf", reason="new policy"),
        )
        with transaction(engine) as session:
            stored = session.get(Invoice, "INV-V1")
        assert stored is not None and (stored.playbook, stored.playbook_version) == ("default", 2)
        assert "playbook_migrated" in [e.kind for e in h.events("INV-V1")]
        # Steps already done are not done again.
        status = await h.status("INV-V1")
        assert status.next_step is not None and status.next_step.step_id == "reminder_3"
