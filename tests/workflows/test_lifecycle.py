"""The whole collection lifecycle on the time-skipping server, as a credit controller sees it."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from domain.lifecycle import EscalationDecision, Stage
from tests.workflows.harness import Harness, business_day, running_worker
from workflows.invoice import InvoiceWorkflow


async def decide(h: Harness, number: str, approve: bool, comment: str = "") -> Stage:
    status = await h.status(number)
    assert status.pending_approval is not None, f"no approval pending on {number}: {status}"
    result = await h.handle(number).execute_update(
        InvoiceWorkflow.decide_escalation,
        EscalationDecision(
            approval_id=status.pending_approval.approval_id,
            approve=approve,
            comment=comment,
            decided_by="claire.collector",
        ),
    )
    return result.status.stage


async def test_full_lifecycle_from_pre_reminder_to_legal_handoff(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        facts = await h.hand_over("INV-LIFE-1", due_in_days=10)
        assert (await h.status("INV-LIFE-1")).stage == Stage.UPCOMING

        await h.sleep_until_day(facts, 1)
        assert (await h.status("INV-LIFE-1")).stage == Stage.OVERDUE

        await h.until_pending_approval("INV-LIFE-1")
        status = await h.status("INV-LIFE-1")
        assert status.stage == Stage.FORMAL_NOTICE
        assert status.pending_approval is not None
        assert status.pending_approval.target_stage == Stage.MEDIATION
        mediation_day = (await h.today() - facts.due_date).days
        assert mediation_day >= 45
        assert await decide(h, "INV-LIFE-1", approve=True) == Stage.MEDIATION

        await h.until_pending_approval("INV-LIFE-1")
        legal_day = (await h.today() - facts.due_date).days
        status = await h.status("INV-LIFE-1")
        assert status.pending_approval is not None
        assert status.pending_approval.target_stage == Stage.LEGAL
        assert await decide(h, "INV-LIFE-1", approve=True) == Stage.HANDED_OFF

        # The file is with the legal partner, and the invoice still open with nothing planned.
        handed = await h.status("INV-LIFE-1")
        assert (handed.stage, handed.outstanding, handed.next_step) == (
            Stage.HANDED_OFF,
            facts.amount,
            None,
        )
        described = await h.handle("INV-LIFE-1").describe()
        assert described.status == WorkflowExecutionStatus.RUNNING

        # The debtor's letters leave through their mailbox, a few minutes after the step.
        async def all_out() -> bool:
            return len(h.sent(facts)) == 10

        await h.advance_until(all_out, max_days=1, step_hours=1)

        # Each step on its day, moved to the next business day when it falls on a weekend or
        # a public holiday; mediation and legal go out the day a collector approves them.
        assert sorted(h.sent(facts), key=lambda s: (s[2], s[1] != "debtor")) == [
            ("pre_reminder", "debtor", business_day(facts, -5)),
            ("reminder_1", "debtor", business_day(facts, 3)),
            ("reminder_2", "debtor", business_day(facts, 10)),
            ("reminder_3", "debtor", business_day(facts, 20)),
            # By email, and by registered letter (to the print queue here).
            ("formal_notice", "debtor", business_day(facts, 30)),
            ("formal_notice", "debtor", business_day(facts, 30)),
            ("mediation", "debtor", mediation_day),
            ("mediation", "mediator", mediation_day),
            ("legal", "debtor", legal_day),
            ("legal", "legal_partner", legal_day),
        ]
        # Exactly once each: one file in the outbox per email, one PDF per letter, no more.
        keys = Counter(m["X-Relance-Key"] for m in h.outbox_messages())
        assert len(keys) == 9 and set(keys.values()) == {1}
        assert len(list((h.outbox / "letters").glob("*.pdf"))) == 1
        to = {m["X-Relance-Key"]: m["To"] for m in h.outbox_messages()}
        assert "mediation@example.com" in to["INV-LIFE-1:mediation:email:mediator"]
        assert "dupont.example" in to["INV-LIFE-1:formal_notice:email"]

        # The debtor pays the whole of it to the partner: paid, thanked, and the partner told.
        await h.pay("INV-LIFE-1", "VIR-LIFE-1", str(facts.amount.amount))
        final = await h.ended("INV-LIFE-1")
        assert (final.stage, final.outstanding.is_positive) == (Stage.PAID, False)
        sent = h.sent(facts)
        assert ("legal_paid", "legal_partner") in [(step, to) for step, to, _ in sent]
        assert ("thank_you", "debtor") in [(step, to) for step, to, _ in sent]

        # The run replays deterministically on the current code.
        history = await h.handle("INV-LIFE-1").fetch_history()
        replayer = Replayer(workflows=[InvoiceWorkflow], data_converter=pydantic_data_converter)
        await replayer.replay_workflow(history)


@pytest.mark.parametrize(
    ("pay_after", "stage_when_paid"),
    [
        ("pre_reminder", Stage.UPCOMING),
        ("reminder_2", Stage.OVERDUE),
        ("formal_notice", Stage.FORMAL_NOTICE),
        ("approval", Stage.FORMAL_NOTICE),  # while mediation awaits approval
    ],
)
async def test_payment_at_any_stage_stops_escalation_and_thanks(
    time_env: WorkflowEnvironment,
    engine: Engine,
    tmp_path: Path,
    task_queue: str,
    pay_after: str,
    stage_when_paid: Stage,
) -> None:
    number = f"INV-PAY-{pay_after}"
    last_step_before = "formal_notice" if pay_after == "approval" else pay_after
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        facts = await h.hand_over(number, due_in_days=10)
        if pay_after == "approval":
            await h.until_pending_approval(number)
        else:
            await h.until_sent(facts, pay_after)
        assert (await h.status(number)).stage == stage_when_paid

        result = await h.pay(number, "VIR-001", "1200.00")
        assert result.stage == Stage.PAID
        assert result.outstanding.amount == 0

        # Nothing but a thank-you after the payment, even weeks later (the debtor already had
        # a message the day of the payment, so the thank-you goes out the next business day).
        await h.sleep_until_day(facts, 70)
        final = await h.handle(number).result()
        assert final.stage == Stage.PAID
        steps = [step for step, _, _ in h.sent(facts)]
        assert steps[-1] == "thank_you"
        assert steps[-2] == last_step_before
        assert steps.count("thank_you") == 1
        if pay_after == "approval":
            assert [e.kind for e in h.events(number)].count("approval_cancelled") == 1


async def test_partial_payments_lower_the_balance_and_escalation_goes_on(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    number = "INV-PARTIAL"
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        facts = await h.hand_over(number, due_in_days=2)
        await h.sleep_until_day(facts, 4)
        first = await h.pay(number, "VIR-A", "200.00")
        assert (first.stage, str(first.outstanding)) == (Stage.OVERDUE, "1000.00 EUR")

        # The same reference twice changes nothing and gets the same answer.
        again = await h.pay(number, "VIR-A", "200.00")
        assert again == first
        assert str((await h.status(number)).outstanding) == "1000.00 EUR"

        await h.until_sent(facts, "reminder_2")

        # Overpayment is recorded and reported, not lost.
        last = await h.pay(number, "VIR-B", "1050.00")
        assert last.stage == Stage.PAID
        assert str(last.overpayment) == "50.00 EUR"
        final = await h.ended(number)
        assert str(final.overpayment) == "50.00 EUR"
        payments = [e.summary for e in h.events(number) if e.kind == "payment"]
        assert len(payments) == 2 and "overpaid by 50.00 EUR" in payments[1]


async def test_invalid_payments_are_refused_before_anything_is_written(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    number = "INV-BADPAY"
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        await h.hand_over(number, due_in_days=20)
        with pytest.raises(WorkflowUpdateFailedError) as wrong_currency:
            await h.pay(number, "VIR-USD", "100.00", currency="USD")
        assert "does not match the invoice currency EUR" in str(wrong_currency.value.cause)
        with pytest.raises(WorkflowUpdateFailedError):
            await h.pay(number, "VIR-NEG", "-5.00")
        status = await h.status(number)
        assert str(status.outstanding) == "1200.00 EUR"
        assert not [e for e in h.events(number) if e.kind == "payment"]
        await h.handle(number).terminate("test over")


async def test_rejected_escalation_stays_and_is_proposed_again(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    number = "INV-REJECT"
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        facts = await h.hand_over(number, due_in_days=1)
        await h.until_pending_approval(number)
        first = (await h.status(number)).pending_approval
        assert first is not None
        assert await decide(h, number, approve=False, comment="client called") == (
            Stage.FORMAL_NOTICE
        )
        status = await h.status(number)
        assert status.stage == Stage.FORMAL_NOTICE
        assert status.next_step is not None and status.next_step.step_id == "mediation"
        assert status.next_step.note and "rejected by claire.collector" in status.next_step.note
        rejected_on = await time_env.get_current_time()
        assert abs(status.next_step.at - rejected_on - timedelta(days=14)) < timedelta(minutes=1)

        # The old approval id is stale from now on.
        with pytest.raises(WorkflowUpdateFailedError):
            await h.handle(number).execute_update(
                InvoiceWorkflow.decide_escalation,
                EscalationDecision(
                    approval_id=first.approval_id, approve=True, decided_by="someone"
                ),
            )

        # Nobody answers the second proposal: the collectors get reminded, once then again.
        await time_env.sleep(timedelta(days=14 + 2 + 3, hours=12))
        second = (await h.status(number)).pending_approval
        assert second is not None and second.approval_id != first.approval_id
        reminders = [s for s, r, _ in h.sent(facts) if r == "collectors"]
        assert len(reminders) == 2
        assert [s for s, r, _ in h.sent(facts) if r == "mediator"] == []
        await h.handle(number).terminate("test over")
