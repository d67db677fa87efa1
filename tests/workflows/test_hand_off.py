"""After the amicable stages, on the time-skipping server: a mediation's outcome, and a file
handed off to the legal partner that stays open until it is paid or the partner ends it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from contracts.invoice import InvoiceWorkflowInput
from domain.errors import ErrorType
from domain.holds import Installment
from domain.legal import LegalStatus, LegalUpdate, MediationOutcome, MediationResult
from domain.lifecycle import InvoiceFacts, InvoiceStatus, Stage
from domain.money import Money
from store.engine import transaction
from store.tables import PaymentPlan
from tests.workflows.harness import Harness, running_worker
from tests.workflows.test_lifecycle import decide
from workflows.invoice import InvoiceWorkflow


async def in_mediation(h: Harness, number: str) -> InvoiceFacts:
    facts = await h.hand_over(number, due_in_days=10)
    await h.until_pending_approval(number)
    assert await decide(h, number, approve=True) == Stage.MEDIATION
    return facts


async def record(h: Harness, number: str, result: MediationResult) -> Stage:
    status = await h.handle(number).execute_update(InvoiceWorkflow.record_mediation, result)
    return status.stage


async def handed_off(h: Harness, number: str) -> InvoiceFacts:
    """Mediation, then the legal step, each approved: the file is with the legal partner."""
    facts = await in_mediation(h, number)
    await h.until_pending_approval(number)
    assert await decide(h, number, approve=True) == Stage.HANDED_OFF
    return facts


async def report(h: Harness, number: str, **update: object) -> InvoiceStatus:
    """A collector records the legal partner's progress."""
    values: dict[str, object] = {"by": "claire.collector"} | update
    return await h.handle(number).execute_update(
        InvoiceWorkflow.update_legal, LegalUpdate.model_validate(values)
    )


def outcome(kind: MediationOutcome, today: object, **extra: object) -> MediationResult:
    values: dict[str, object] = {
        "outcome": kind,
        "mediator_reference": "MED-42",
        "started_on": today,
        "ended_on": today,
        "recorded_by": "claire.collector",
    }
    return MediationResult.model_validate(values | extra)


async def test_a_failed_mediation_goes_on_to_the_legal_approval_at_once(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        facts = await in_mediation(h, "INV-MED-FAIL")
        today = await h.today()
        assert (today - facts.due_date).days < 55  # the legal step is due at J+60

        await record(h, "INV-MED-FAIL", outcome(MediationOutcome.FAILURE, today))
        await h.until_pending_approval("INV-MED-FAIL")

        status = await h.status("INV-MED-FAIL")
        assert status.pending_approval is not None
        assert status.pending_approval.target_stage == Stage.LEGAL
        assert (await h.today() - facts.due_date).days < 60
        ended = [e for e in h.events("INV-MED-FAIL") if e.kind == "mediation_ended"]
        assert len(ended) == 1 and ended[0].detail["mediator_reference"] == "MED-42"
        await h.handle("INV-MED-FAIL").terminate("test over")


async def test_a_mediation_agreement_becomes_a_payment_plan(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        await in_mediation(h, "INV-MED-AGREE")
        today = await h.today()
        schedule = [
            Installment(due_date=today + timedelta(days=30), amount=Money.of("700.00", "EUR")),
            Installment(due_date=today + timedelta(days=60), amount=Money.of("500.00", "EUR")),
        ]
        # The sum must be what is outstanding (1 200 €): the validator refuses anything else.
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await record(
                h,
                "INV-MED-AGREE",
                outcome(
                    MediationOutcome.AGREEMENT, today, plan_id="P-MED-1", installments=schedule[:1]
                ),
            )
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == ErrorType.PLAN_MISMATCH

        agreed = outcome(
            MediationOutcome.AGREEMENT, today, plan_id="P-MED-1", installments=schedule
        )
        assert await record(h, "INV-MED-AGREE", agreed) == Stage.PAYMENT_PLAN

        with transaction(engine) as session:
            plan = session.get(PaymentPlan, "P-MED-1")
            assert plan is not None
            assert (plan.status, plan.invoice_number) == ("active", "INV-MED-AGREE")
        await h.handle("INV-MED-AGREE").terminate("test over")


async def test_after_the_hand_off_the_partner_reports_until_the_file_is_settled(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    async with running_worker(time_env, engine, tmp_path, task_queue) as h:
        # A short history: the run continues as new on the way, and while handed off.
        await h.hand_over("INV-LEGAL", due_in_days=10, history_limit=40)
        await h.until_pending_approval("INV-LEGAL")
        assert await decide(h, "INV-LEGAL", approve=True) == Stage.MEDIATION
        await h.until_pending_approval("INV-LEGAL")
        assert await decide(h, "INV-LEGAL", approve=True) == Stage.HANDED_OFF
        # Weeks pass with nothing planned: no timer wakes it, it stays open.
        await time_env.sleep(timedelta(days=90))
        handle = h.handle("INV-LEGAL")
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

        filed = await report(
            h,
            "INV-LEGAL",
            status=LegalStatus.FILED,
            partner_reference="CAB-7",
            costs=Money.of("35.00", "EUR"),
        )
        assert filed.stage == Stage.HANDED_OFF
        # A part payment to the partner: still handed off, less outstanding.
        part = await h.pay("INV-LEGAL", "VIR-L1", "200.00")
        assert (part.stage, str(part.outstanding)) == (Stage.HANDED_OFF, "1000.00 EUR")

        await report(h, "INV-LEGAL", status=LegalStatus.SETTLED)
        final = await h.ended("INV-LEGAL")
        assert (final.stage, str(final.outstanding)) == (Stage.HANDED_OFF, "1000.00 EUR")
        description = await handle.describe()
        first_run = description.raw_description.workflow_execution_info.first_run_id
        assert first_run and first_run != description.run_id
        # The last run started while handed off: it continued as new with nothing planned.
        started = (await handle.fetch_history()).events[0]
        [carried] = pydantic_data_converter.payload_converter.from_payloads(
            started.workflow_execution_started_event_attributes.input.payloads,
            [InvoiceWorkflowInput],
        )
        assert carried.machine is not None and carried.machine.stage == Stage.HANDED_OFF
        kinds = [e.kind for e in h.events("INV-LEGAL")]
        assert kinds.count("legal_updated") == 2 and kinds[-1] == "closed"
