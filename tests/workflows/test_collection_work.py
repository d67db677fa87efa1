"""Disputes, payment plans, promises, holds and bounces: the escalation clock stops and
restarts where a credit controller expects it to (time-skipping server, real worker)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from domain.holds import (
    Closure,
    ClosureKind,
    DeliveryEvent,
    DisputeOpen,
    DisputeOutcome,
    DisputeResolution,
    HoldRequest,
    Installment,
    PlanDecision,
    PlanProposal,
    PromiseToPay,
    ResumeRequest,
)
from domain.lifecycle import Stage
from domain.money import Money
from domain.playbook import Channel, Playbook, Step, load_playbook_named
from store.engine import transaction
from store.tables import Dispute, PaymentPlan, Task
from tests.workflows.harness import Harness, running_worker
from workflows.invoice import InvoiceWorkflow


def eur(amount: str) -> Money:
    return Money.of(Decimal(amount), "EUR")


def failure_type(error: WorkflowUpdateFailedError) -> str | None:
    cause = error.cause
    return cause.type if isinstance(cause, ApplicationError) else None


async def sent_steps(h: Harness, number: str) -> list[str]:
    return [row.step_id for row in h.interactions(number) if row.status == "sent"]


async def test_a_rejected_dispute_resumes_after_the_grace_period_never_before(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    number = "INV-DISPUTE-1"
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        facts = await h.hand_over(number, due_in_days=5)
        await h.until_sent(facts, "reminder_1")
        reminder_2_at = (await h.status(number)).next_step
        assert reminder_2_at is not None and reminder_2_at.step_id == "reminder_2"

        # Opened two days before reminder_2 is due.
        await time_env.sleep(
            reminder_2_at.at - await time_env.get_current_time() - timedelta(days=2)
        )
        handle = h.handle(number)
        status = await handle.execute_update(
            InvoiceWorkflow.open_dispute,
            DisputeOpen(dispute_id="D-1", reason="goods damaged", opened_by="backoffice"),
        )
        assert status.stage == Stage.DISPUTED
        with transaction(engine) as session:
            dispute = session.get(Dispute, "D-1")
            task = session.get(Task, f"{number}:dispute:D-1")
        assert dispute is not None and dispute.status == "open"
        assert task is not None and task.kind == "dispute"

        # Ten days later, rejected: nothing was sent meanwhile (the dispute deadline is 10 days).
        await time_env.sleep(timedelta(days=10))
        assert "reminder_2" not in await sent_steps(h, number)
        status = await handle.execute_update(
            InvoiceWorkflow.resolve_dispute,
            DisputeResolution(
                dispute_id="D-1", outcome=DisputeOutcome.REJECTED, resolved_by="claire"
            ),
        )
        assert status.stage == Stage.OVERDUE
        rejected_at = await time_env.get_current_time()
        assert status.next_step is not None and status.next_step.step_id == "reminder_2"
        # Three days' grace (the playbook's), then the reminder: not before.
        assert status.next_step.at >= rejected_at + timedelta(days=3) - timedelta(minutes=1)
        await time_env.sleep(timedelta(days=2, hours=12))
        assert "reminder_2" not in await sent_steps(h, number)
        await h.until_sent(facts, "reminder_2")
        assert (await sent_steps(h, number)).count("reminder_2") == 1
        await handle.terminate("test over")


async def test_an_upheld_dispute_credits_or_cancels(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        await h.hand_over("INV-DISPUTE-2", due_in_days=-3)
        await h.hand_over("INV-DISPUTE-3", due_in_days=-3)
        for number in ("INV-DISPUTE-2", "INV-DISPUTE-3"):
            await h.handle(number).execute_update(
                InvoiceWorkflow.open_dispute,
                DisputeOpen(dispute_id="D-9", reason="price", opened_by="backoffice"),
            )
        partial = await h.handle("INV-DISPUTE-2").execute_update(
            InvoiceWorkflow.resolve_dispute,
            DisputeResolution(
                dispute_id="D-9",
                outcome=DisputeOutcome.UPHELD,
                credit=eur("200.00"),
                credit_note_reference="AV-17",
                resolved_by="claire",
            ),
        )
        assert (partial.stage, str(partial.outstanding)) == (Stage.OVERDUE, "1000.00 EUR")
        whole = await h.handle("INV-DISPUTE-3").execute_update(
            InvoiceWorkflow.resolve_dispute,
            DisputeResolution(
                dispute_id="D-9", outcome=DisputeOutcome.UPHELD, resolved_by="claire"
            ),
        )
        assert whole.stage == Stage.CANCELLED
        final = await h.handle("INV-DISPUTE-3").result()
        assert final.stage == Stage.CANCELLED
        assert "thank_you" not in await sent_steps(h, "INV-DISPUTE-3")
        await h.handle("INV-DISPUTE-2").terminate("test over")


async def test_payment_plan_reminds_matches_payments_and_completes(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    number = "INV-PLAN-1"
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        facts = await h.hand_over(number, due_in_days=-10)
        # Handed over late, it catches up its latest reminder first.
        await h.until_sent(facts, "reminder_2")
        today = await h.today()
        plan = PlanProposal(
            plan_id="P-1",
            installments=[
                Installment(due_date=today + timedelta(days=10), amount=eur("600.00")),
                Installment(due_date=today + timedelta(days=40), amount=eur("600.00")),
            ],
            proposed_by="claire",
        )
        status = await h.handle(number).execute_update(InvoiceWorkflow.propose_payment_plan, plan)
        assert status.stage == Stage.PAYMENT_PLAN  # small plan: no second approval needed
        before = set(await sent_steps(h, number))

        # A courtesy reminder 3 days before the first installment, then the payment.
        await time_env.sleep(timedelta(days=8))
        assert "plan_P-1_installment1" in await sent_steps(h, number)
        await h.pay(number, "VIR-P1", "600.00")
        await time_env.sleep(timedelta(days=30))
        assert "plan_P-1_installment2" in await sent_steps(h, number)
        # No escalation while the plan is kept.
        escalation = {"reminder_2", "reminder_3", "formal_notice"}
        assert not escalation & (set(await sent_steps(h, number)) - before)
        result = await h.pay(number, "VIR-P2", "600.00")
        assert result.stage == Stage.PAID
        final = await h.handle(number).result()
        assert final.stage == Stage.PAID
        assert (await sent_steps(h, number))[-1] == "thank_you"
        with transaction(engine) as session:
            stored = session.get(PaymentPlan, "P-1")
        assert stored is not None and stored.status == "completed"
        del facts


async def test_a_missed_installment_breaks_the_plan_after_grace(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    number = "INV-PLAN-2"
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        facts = await h.hand_over(number, due_in_days=-12)
        today = await h.today()
        await h.handle(number).execute_update(
            InvoiceWorkflow.propose_payment_plan,
            PlanProposal(
                plan_id="P-2",
                installments=[
                    Installment(due_date=today + timedelta(days=5), amount=eur("1000.00")),
                    Installment(due_date=today + timedelta(days=35), amount=eur("200.00")),
                ],
                proposed_by="claire",
            ),
        )
        # Due in 5 days, 5 days' grace: still a plan on day 9, broken by day 11.
        await time_env.sleep(timedelta(days=9))
        assert (await h.status(number)).stage == Stage.PAYMENT_PLAN
        await time_env.sleep(timedelta(days=2))
        status = await h.status(number)
        assert status.stage == Stage.OVERDUE
        kinds = [e.kind for e in h.events(number)]
        assert "plan_broken" in kinds
        # Escalation resumes where it stopped, one step at a time.
        await h.until_sent(facts, "reminder_3")
        await h.handle(number).terminate("test over")


async def test_four_eyes_on_large_plans(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    number = "INV-PLAN-3"
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        await h.hand_over(number, due_in_days=-5, amount="9000.00")
        today = await h.today()
        status = await h.handle(number).execute_update(
            InvoiceWorkflow.propose_payment_plan,
            PlanProposal(
                plan_id="P-3",
                installments=[
                    Installment(due_date=today + timedelta(days=30 * k), amount=eur("3000.00"))
                    for k in (1, 2, 3)
                ],
                proposed_by="claire",
            ),
        )
        assert status.stage == Stage.PAYMENT_PLAN
        with pytest.raises(WorkflowUpdateFailedError) as own:
            await h.handle(number).execute_update(
                InvoiceWorkflow.decide_payment_plan,
                PlanDecision(plan_id="P-3", approve=True, decided_by="claire"),
            )
        assert failure_type(own.value) == "FourEyes"
        approved = await h.handle(number).execute_update(
            InvoiceWorkflow.decide_payment_plan,
            PlanDecision(plan_id="P-3", approve=True, decided_by="marc"),
        )
        assert approved.stage == Stage.PAYMENT_PLAN
        with transaction(engine) as session:
            stored = session.get(PaymentPlan, "P-3")
        assert stored is not None
        assert (stored.status, stored.needs_approval, stored.decided_by) == ("active", True, "marc")
        await h.handle(number).terminate("test over")


async def test_a_broken_promise_resumes_escalation(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    number = "INV-PROMISE"
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        facts = await h.hand_over(number, due_in_days=-4)
        await h.until_sent(facts, "reminder_1")
        today = await h.today()
        status = await h.handle(number).execute_update(
            InvoiceWorkflow.record_promise,
            PromiseToPay(promise_id="T-1", until=today + timedelta(days=10), recorded_by="claire"),
        )
        assert status.stage == Stage.PROMISED
        await time_env.sleep(timedelta(days=11))
        assert (await h.status(number)).stage == Stage.PROMISED  # 2 days' grace
        await time_env.sleep(timedelta(days=2))
        assert (await h.status(number)).stage == Stage.OVERDUE
        assert "promise_broken" in [e.kind for e in h.events(number)]
        await h.handle(number).terminate("test over")


async def test_pause_resume_cancel_and_write_off(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        await h.hand_over("INV-HOLD", due_in_days=-4)
        handle = h.handle("INV-HOLD")
        paused = await handle.execute_update(
            InvoiceWorkflow.pause, HoldRequest(reason="key account review", by="ops")
        )
        assert paused.stage == Stage.PAUSED
        resumed = await handle.execute_update(InvoiceWorkflow.resume, ResumeRequest(by="ops"))
        assert resumed.stage == Stage.OVERDUE
        with pytest.raises(WorkflowUpdateFailedError) as not_paused:
            await handle.execute_update(InvoiceWorkflow.resume, ResumeRequest(by="ops"))
        assert failure_type(not_paused.value) == "NotPaused"

        cancelled = await handle.execute_update(
            InvoiceWorkflow.close,
            Closure(
                kind=ClosureKind.CANCEL,
                reason="credit note",
                by="erp",
                credit_note_reference="AV-1",
            ),
        )
        assert (cancelled.stage, str(cancelled.outstanding)) == (Stage.CANCELLED, "0.00 EUR")
        assert (await handle.result()).stage == Stage.CANCELLED

        await h.hand_over("INV-WO", due_in_days=-200)
        written = await h.handle("INV-WO").execute_update(
            InvoiceWorkflow.close,
            Closure(kind=ClosureKind.WRITE_OFF, reason="debtor liquidated", by="ops"),
        )
        assert (written.stage, str(written.outstanding)) == (Stage.WRITTEN_OFF, "1200.00 EUR")
        assert (await h.handle("INV-WO").result()).stage == Stage.WRITTEN_OFF


async def test_a_bounce_switches_to_the_fallback_channel(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    number = "INV-BOUNCE"
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        facts = await h.hand_over(number, due_in_days=-4)
        await h.until_sent(facts, "reminder_1")
        event = DeliveryEvent(
            event_id="sg-1",
            kind="bounce",
            step_id="reminder_1",
            occurred_at=await time_env.get_current_time(),
        )
        await h.handle(number).signal(InvoiceWorkflow.delivery_event, event)
        await h.handle(number).signal(InvoiceWorkflow.delivery_event, event)  # replayed

        async def letter_sent() -> bool:
            return any(r.channel == "letter" for r in h.interactions(number))

        await h.advance_until(letter_sent, max_days=2, step_hours=1)
        await h.until_sent(facts, "reminder_2")
        rows = [(r.step_id, r.channel) for r in h.interactions(number) if r.status == "sent"]
        assert ("reminder_1_fallback", "letter") in rows
        assert ("reminder_2", "letter") in rows
        assert ("reminder_2", "email") not in rows
        assert [e.kind for e in h.events(number)].count("fallback") == 1
        # The print queue: a PDF per letter, listed in the manifest for whoever posts them.
        assert list((h.outbox / "letters").glob("*.pdf"))
        assert (h.outbox / "letters" / "manifest.csv").is_file()
        await h.handle(number).terminate("test over")


async def test_a_phone_step_opens_a_call_task(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    base = load_playbook_named("default")
    steps = list(base.steps)
    steps.insert(
        2,
        Step(
            id="call_1",
            stage=Stage.OVERDUE,
            offset_days=6,
            channels=(Channel.PHONE,),
            template="reminder",
        ),
    )
    playbook = Playbook.model_validate({**base.model_dump(), "steps": steps})
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        facts = await h.hand_over("INV-CALL", due_in_days=-1, playbook=playbook)

        async def task_open() -> bool:
            with transaction(engine) as session:
                return session.get(Task, "INV-CALL:call_1:call") is not None

        await h.advance_until(task_open)
        with transaction(engine) as session:
            task = session.get(Task, "INV-CALL:call_1:call")
        assert task is not None and (task.kind, task.status) == ("call", "open")
        del facts
        await h.handle("INV-CALL").terminate("test over")


async def test_concurrent_payment_dispute_and_plan_stay_consistent(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    number = "INV-RACE"
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        await h.hand_over(number, due_in_days=-6)
        today = await h.today()
        handle = h.handle(number)
        results = await asyncio.gather(
            h.pay(number, "VIR-R1", "200.00"),
            handle.execute_update(
                InvoiceWorkflow.open_dispute,
                DisputeOpen(dispute_id="D-R", reason="late delivery", opened_by="erp"),
            ),
            handle.execute_update(
                InvoiceWorkflow.propose_payment_plan,
                PlanProposal(
                    plan_id="P-R",
                    installments=[
                        Installment(due_date=today + timedelta(days=20), amount=eur("1200.00"))
                    ],
                    proposed_by="claire",
                ),
            ),
            h.pay(number, "VIR-R2", "100.00"),
            return_exceptions=True,
        )
        status = await h.status(number)
        # Both payments count whatever happened to the rest.
        assert str(status.outstanding) == "900.00 EUR"
        assert not isinstance(results[0], BaseException)
        assert not isinstance(results[3], BaseException)
        # Dispute and plan cannot both hold the invoice: exactly one of them won.
        held = [r for r in results[1:3] if not isinstance(r, BaseException)]
        assert len(held) == 1 and status.stage in (Stage.DISPUTED, Stage.PAYMENT_PLAN)
        kinds = [e.kind for e in h.events(number)]
        assert kinds.count("payment") == 2
        assert kinds.count("dispute_opened") + kinds.count("plan_proposed") == 1
        await handle.terminate("test over")


async def test_a_long_plan_continues_as_new_and_loses_nothing(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    number = "INV-LONG-PLAN"
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        await h.hand_over(number, due_in_days=-5, history_limit=150)
        today = await h.today()
        installments = [
            Installment(due_date=today + timedelta(days=30 * k), amount=eur("100.00"))
            for k in range(1, 13)
        ]
        await h.handle(number).execute_update(
            InvoiceWorkflow.propose_payment_plan,
            PlanProposal(plan_id="P-12", installments=installments, proposed_by="claire"),
        )
        approved = await h.handle(number).execute_update(
            InvoiceWorkflow.decide_payment_plan,
            PlanDecision(plan_id="P-12", approve=True, decided_by="marc"),
        )
        assert approved.stage == Stage.PAYMENT_PLAN
        for k, item in enumerate(installments, start=1):
            await time_env.sleep(
                datetime.combine(item.due_date, time(8), tzinfo=UTC)
                - await time_env.get_current_time()
            )
            result = await h.pay(number, f"VIR-{k}", "100.00")
            # A replayed payment in a later run still gets the same answer.
            assert await h.pay(number, f"VIR-{k}", "100.00") == result
        assert result.stage == Stage.PAID
        final = await h.handle(number).result()
        assert (final.stage, str(final.outstanding)) == (Stage.PAID, "0.00 EUR")

        description = await h.handle(number).describe()
        first_run = description.raw_description.workflow_execution_info.first_run_id
        assert first_run and first_run != description.run_id  # it did continue as new
        steps = await sent_steps(h, number)
        assert [s for s in steps if s.startswith("plan_P-12_installment")] == [
            f"plan_P-12_installment{k}" for k in range(1, 13)
        ]
        assert steps.count("thank_you") == 1
        assert [e.kind for e in h.events(number)].count("payment") == 12
