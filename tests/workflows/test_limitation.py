"""Six months before a claim becomes time-barred, a collector is given a task: the workflow
wakes for it, and the read model shows the limitation date."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from domain.playbook import load_playbook_named
from store.tables import Invoice, Task
from tests.workflows.harness import running_worker

# One reminder, 20 years after the due date: the invoice only goes overdue, so nothing but
# limitation happens to it.
_DEFAULT = load_playbook_named("default")
QUIET = _DEFAULT.model_copy(
    update={"steps": (_DEFAULT.steps[1].model_copy(update={"offset_days": 7300}),)}
)


def plus_months(day: date, months: int) -> date:
    # Only ever called on the 1st of a month: no month-end to clamp.
    index = day.month - 1 + months
    return day.replace(year=day.year + index // 12, month=index % 12 + 1)


async def test_the_workflow_wakes_to_warn_of_limitation_six_months_before(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        today = await h.today()
        # The warning day W: the 1st of the month after next week, so dates need no clamping.
        # Limitation date L = W + 6 months; due date D = L - 5 years (L110-4).
        warn = plus_months(date(today.year, today.month, 1), 1)
        if (warn - today).days < 7:
            warn = plus_months(warn, 1)
        limitation = plus_months(warn, 6)
        due = limitation.replace(year=limitation.year - 5)
        facts = await h.hand_over("INV-LIM", due_in_days=(due - today).days, playbook=QUIET)

        def tasks() -> list[Task]:
            with Session(engine) as session:
                return list(session.exec(select(Task).where(Task.kind == "limitation")).all())

        def shown_limitation() -> date | None:
            with Session(engine) as session:
                invoice = session.get(Invoice, facts.number)
                return invoice.limitation_date if invoice else None

        async def overdue() -> bool:
            return shown_limitation() is not None

        await h.advance_until(overdue, max_days=1, step_hours=1)
        assert shown_limitation() == limitation
        assert (await h.status(facts.number)).limitation_date == limitation

        # The day before W: no task yet.
        eve = datetime.combine(warn - timedelta(days=1), datetime.min.time(), UTC)
        await time_env.sleep(eve + timedelta(hours=12) - await time_env.get_current_time())
        assert tasks() == []

        async def warned() -> bool:
            return bool(tasks())

        await h.advance_until(warned, max_days=2, step_hours=3)
        [task] = tasks()
        assert task.title == (
            f"Invoice INV-LIM: limitation on {limitation.isoformat()}: act or acknowledge"
        )
        assert task.status == "open"
        assert task.created_at.date() == warn
        assert task.due_at.date() == limitation


def _tasks(engine: Engine) -> list[Task]:
    with Session(engine) as session:
        return list(session.exec(select(Task).where(Task.kind == "limitation")).all())


def _shown_limitation(engine: Engine, number: str) -> date | None:
    with Session(engine) as session:
        invoice = session.get(Invoice, number)
        return invoice.limitation_date if invoice else None


async def test_a_time_barred_claim_is_handed_over_and_gets_no_formal_notice(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        today = await h.today()
        # Due 40 days before the 1st of this month, five years ago: the claim was time-barred
        # (L110-4: 5 years from the due date) 40-odd days before today, and nothing ever
        # acknowledged it.
        due = date(today.year - 5, today.month, 1) - timedelta(days=40)
        facts = await h.hand_over("INV-BARRED", due_in_days=(due - today).days)

        async def placed() -> bool:
            return any(e.key == "skip:formal_notice" for e in h.events(facts.number))

        await h.advance_until(placed, max_days=10, step_hours=6)

    [skipped] = [e for e in h.events(facts.number) if e.key == "skip:formal_notice"]
    # The last day to act was the due date's anniversary five years on.
    last_day = date(due.year + 5, due.month, due.day)
    assert f"time-barred: the last day to act on it was {last_day.isoformat()}" in skipped.summary
    assert "formal_notice" not in [row.step_id for row in h.interactions(facts.number)]
    assert "legal" not in [row.step_id for row in h.interactions(facts.number)]


async def test_a_part_payment_acknowledges_the_debt_and_starts_the_five_years_afresh(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        today = await h.today()
        # Due 60 days after the 1st of this month, five years ago: limitation falls in about
        # two months, inside the six months' warning, so collectors are warned at once.
        due = date(today.year - 5, today.month, 1) + timedelta(days=60)
        limitation = date(due.year + 5, due.month, due.day)
        facts = await h.hand_over("INV-ACK", due_in_days=(due - today).days, playbook=QUIET)

        async def warned() -> bool:
            return bool(_tasks(engine))

        await h.advance_until(warned, max_days=2, step_hours=3)
        [task] = _tasks(engine)
        assert task.status == "open" and limitation.isoformat() in task.title
        assert _shown_limitation(engine, facts.number) == limitation

        # 100 € paid: a part payment acknowledges the whole debt (Civil code 2240), so the
        # five years run again from the day it was received.
        await h.pay(facts.number, "VIR-ACK", "100.00")
        paid_on = await h.today()
        afresh = date(paid_on.year + 5, paid_on.month, paid_on.day)

        async def answered() -> bool:
            return [t.status for t in _tasks(engine)] == ["done"]

        await h.advance_until(answered, max_days=1, step_hours=1)
        assert _shown_limitation(engine, facts.number) == afresh
        assert (await h.status(facts.number)).limitation_date == afresh
