"""Record real histories of every kind of invoice lifecycle, for the replay test.

    python -m tests.workflows.record_histories RELEASE [KIND ...]

Each kind plays on its own time-skipping server with a real worker and a real SQLite store,
then its workflow histories are saved as `histories/<RELEASE>_<kind>.json` (a run that
continued as new gives one file per run: `<kind>_run1`, `<kind>_run2`...; a debtor mailbox is
saved as `<RELEASE>_mailbox_<kind>`) and their hashes are appended to `MANIFEST.sha256`.

Saved histories are append-only: a file that exists is never written again, so a release
records under its own name (`v2`, `v3`...) and every older history keeps being replayed
against the newest code (tests/workflows/test_replay.py).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import col, select
from temporalio.client import WorkflowExecutionStatus, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.notify import BackofficeEvent
from contracts.invoice import InvoiceWorkflowInput
from domain.collection.commands import ContactCorrected, LetterReceived
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
    PlaybookMigration,
    PromiseToPay,
    ResumeRequest,
)
from domain.legal import LegalStatus, LegalUpdate, MediationOutcome, MediationResult
from domain.lifecycle import EscalationDecision, InvoiceFacts, Stage
from domain.money import Money
from domain.notice import notice_deadline
from domain.playbook import Channel, Playbook, Recipient, load_playbook_named
from store.engine import make_engine, transaction
from store.migrate import upgrade
from store.tables import BackofficeNotice, Task
from tests.workflows.harness import Harness, running_worker, start_time_skipping
from tests.workflows.test_every_channel import PLAYBOOK as EVERY_CHANNEL
from tests.workflows.test_every_channel import call_tasks, give_phone, sent_on, tell, texting_worker
from workflows import contract
from workflows.invoice import InvoiceWorkflow
from workflows.mailbox import IDLE_DAYS, DebtorMailboxWorkflow

HISTORIES = Path(__file__).parent / "histories"
MANIFEST = HISTORIES / "MANIFEST.sha256"

# kind (the file name after the release) -> history
Recorded = dict[str, WorkflowHistory]
Scenario = Callable[[Harness], Awaitable[Recorded]]


def eur(amount: str) -> Money:
    return Money.of(Decimal(amount), "EUR")


async def history(h: Harness, workflow_id: str, run_id: str | None = None) -> WorkflowHistory:
    return await h.env.client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()


async def every_run(h: Harness, workflow_id: str) -> list[WorkflowHistory]:
    """The history of each run of a workflow that continued as new, first run first."""
    description = await h.env.client.get_workflow_handle(workflow_id).describe()
    run_id: str | None = description.raw_description.workflow_execution_info.first_run_id
    runs = []
    while run_id:
        run = await history(h, workflow_id, run_id)
        runs.append(run)
        last = run.events[-1]
        continued = last.HasField("workflow_execution_continued_as_new_event_attributes")
        attributes = last.workflow_execution_continued_as_new_event_attributes
        run_id = attributes.new_execution_run_id if continued else None
    return runs


async def finished(h: Harness, number: str, stage: Stage) -> WorkflowHistory:
    """Waits for the invoice's workflow to end in `stage`; its history."""
    # A thank-you may wait for the next business day (one message a day): skip time until then.
    final = await h.ended(number, max_days=10)
    assert final.stage == stage, f"{number} ended {final.stage}, not {stage}"
    return await h.handle(number).fetch_history()


async def settled_after(h: Harness, facts: InvoiceFacts, step_id: str) -> WorkflowHistory:
    """Once `step_id` is sent, the outstanding balance is paid: thank-you, ended; its history."""
    await h.until_sent(facts, step_id)
    outstanding = (await h.status(facts.number)).outstanding
    await h.pay(facts.number, "VIR-LAST", str(outstanding.amount))
    return await finished(h, facts.number, Stage.PAID)


async def mailbox_ended(h: Harness, debtor_id: str) -> WorkflowHistory:
    """Waits for the debtor's mailbox to go idle and end; its history."""
    handle = h.env.client.get_workflow_handle(contract.mailbox_workflow_id(debtor_id))

    async def ended() -> bool:
        return (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

    await h.advance_until(ended, max_days=IDLE_DAYS + 2)
    return await handle.fetch_history()


async def decide(h: Harness, number: str, approve: bool) -> Stage:
    pending = (await h.status(number)).pending_approval
    assert pending is not None, f"no approval pending on {number}"
    result = await h.handle(number).execute_update(
        InvoiceWorkflow.decide_escalation,
        EscalationDecision(
            approval_id=pending.approval_id, approve=approve, decided_by="claire.collector"
        ),
    )
    return result.status.stage


# ---------------------------------------------------------------- the lifecycles


async def paid(h: Harness) -> Recorded:
    """A pre-reminder and a reminder, then the whole amount: thank-you, ended."""
    facts = await h.hand_over("HIST-PAID", due_in_days=2)
    return {"paid": await settled_after(h, facts, "reminder_1")}


async def paid_after_partial(h: Harness) -> Recorded:
    facts = await h.hand_over("HIST-PARTIAL", due_in_days=2)
    await h.sleep_until_day(facts, 4)
    await h.pay(facts.number, "VIR-A", "200.00")
    await h.pay(facts.number, "VIR-A", "200.00")  # replayed: same answer, counted once
    return {"paid_after_partial": await settled_after(h, facts, "reminder_2")}


async def disputed_rejected(h: Harness) -> Recorded:
    """Disputed, rejected ten days later, escalation resumes after the grace period."""
    facts = await h.hand_over("HIST-DISPUTE-REJ", due_in_days=5)
    await h.until_sent(facts, "reminder_1")
    handle = h.handle(facts.number)
    await handle.execute_update(
        InvoiceWorkflow.open_dispute,
        DisputeOpen(dispute_id="D-1", reason="goods damaged", opened_by="backoffice"),
    )
    await h.env.sleep(timedelta(days=10))
    await handle.execute_update(
        InvoiceWorkflow.resolve_dispute,
        DisputeResolution(dispute_id="D-1", outcome=DisputeOutcome.REJECTED, resolved_by="claire"),
    )
    return {"disputed_rejected_resumed": await settled_after(h, facts, "reminder_2")}


async def disputed_upheld(h: Harness) -> Recorded:
    """Upheld for all of it (cancelled by a credit note), and for part of it (then paid)."""
    whole = await h.hand_over("HIST-DISPUTE-ALL", due_in_days=-3)
    part = await h.hand_over("HIST-DISPUTE-PART", due_in_days=-3)
    for facts in (whole, part):
        await h.handle(facts.number).execute_update(
            InvoiceWorkflow.open_dispute,
            DisputeOpen(dispute_id="D-9", reason="price", opened_by="backoffice"),
        )
    await h.handle(whole.number).execute_update(
        InvoiceWorkflow.resolve_dispute,
        DisputeResolution(
            dispute_id="D-9",
            outcome=DisputeOutcome.UPHELD,
            credit_note_reference="AV-17",
            resolved_by="claire",
        ),
    )
    await h.handle(part.number).execute_update(
        InvoiceWorkflow.resolve_dispute,
        DisputeResolution(
            dispute_id="D-9",
            outcome=DisputeOutcome.UPHELD,
            credit=eur("200.00"),
            credit_note_reference="AV-18",
            resolved_by="claire",
        ),
    )
    return {
        "disputed_upheld_cancelled": await finished(h, whole.number, Stage.CANCELLED),
        "disputed_upheld_credited_then_paid": await settled_after(h, part, "reminder_2"),
    }


async def plan(h: Harness) -> Recorded:
    """A twelve-month plan (four-eyes) paid installment by installment, across continue-as-new."""
    number = "HIST-PLAN"
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
    await h.handle(number).execute_update(
        InvoiceWorkflow.decide_payment_plan,
        PlanDecision(plan_id="P-12", approve=True, decided_by="marc"),
    )
    for k, item in enumerate(installments, start=1):
        await h.env.sleep(
            datetime.combine(item.due_date, time(8), tzinfo=UTC) - await h.env.get_current_time()
        )
        await h.pay(number, f"VIR-{k}", "100.00")
        await h.pay(number, f"VIR-{k}", "100.00")  # replayed in a later run: same answer
    await finished(h, number, Stage.PAID)
    runs = await every_run(h, contract.workflow_id(number))
    assert len(runs) >= 3, f"the plan continued as new only {len(runs) - 1} times"
    return {f"plan_run{k}": run for k, run in enumerate(runs, start=1)}


async def plan_broken(h: Harness) -> Recorded:
    """An installment missed past its grace: the plan breaks and escalation resumes."""
    facts = await h.hand_over("HIST-PLAN-BROKEN", due_in_days=-12)
    today = await h.today()
    await h.handle(facts.number).execute_update(
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
    return {"plan_broken": await settled_after(h, facts, "reminder_3")}


async def paused_resumed(h: Harness) -> Recorded:
    facts = await h.hand_over("HIST-PAUSE", due_in_days=-4)
    await h.until_sent(facts, "reminder_1")
    handle = h.handle(facts.number)
    await handle.execute_update(
        InvoiceWorkflow.pause, HoldRequest(reason="key account review", by="ops")
    )
    await h.env.sleep(timedelta(days=9))
    await handle.execute_update(InvoiceWorkflow.resume, ResumeRequest(by="ops"))
    return {"paused_resumed": await settled_after(h, facts, "reminder_2")}


async def promise_broken(h: Harness) -> Recorded:
    facts = await h.hand_over("HIST-PROMISE", due_in_days=-4)
    await h.until_sent(facts, "reminder_1")
    await h.handle(facts.number).execute_update(
        InvoiceWorkflow.record_promise,
        PromiseToPay(
            promise_id="T-1", until=await h.today() + timedelta(days=10), recorded_by="claire"
        ),
    )

    async def broken() -> bool:
        return (await h.status(facts.number)).stage == Stage.OVERDUE

    await h.advance_until(broken, max_days=20)
    return {"promise_broken": await settled_after(h, facts, "reminder_2")}


async def bounce(h: Harness) -> Recorded:
    """A bounced reminder: a letter instead, and letters from then on."""
    facts = await h.hand_over("HIST-BOUNCE", due_in_days=-4)
    await h.until_sent(facts, "reminder_1")
    event = DeliveryEvent(
        event_id="sg-1",
        kind="bounce",
        step_id="reminder_1",
        occurred_at=await h.env.get_current_time(),
    )
    await h.handle(facts.number).signal(InvoiceWorkflow.delivery_event, event)
    await h.handle(facts.number).signal(InvoiceWorkflow.delivery_event, event)  # replayed
    await h.until_sent(facts, "reminder_2")
    rows = {(r.step_id, r.channel) for r in h.interactions(facts.number) if r.status == "sent"}
    assert {("reminder_1_fallback", "letter"), ("reminder_2", "letter")} <= rows, rows
    return {"bounce_fallback_letter": await settled_after(h, facts, "reminder_2")}


async def escalation(h: Harness) -> Recorded:
    """Mediation rejected, proposed again and approved; then legal approved: handed off."""
    number = "HIST-ESCALATION"
    await h.hand_over(number, due_in_days=1)
    await h.until_pending_approval(number)
    assert await decide(h, number, approve=False) == Stage.FORMAL_NOTICE
    await h.until_pending_approval(number)
    assert await decide(h, number, approve=True) == Stage.MEDIATION
    await h.until_pending_approval(number)
    assert await decide(h, number, approve=True) == Stage.HANDED_OFF
    # The hand-off stays open with the legal partner (rules 2) until they report its end.
    await h.handle(number).execute_update(
        InvoiceWorkflow.update_legal, LegalUpdate(status=LegalStatus.SETTLED, by="claire")
    )
    return {"escalation_rejected_then_handed_off": await finished(h, number, Stage.HANDED_OFF)}


async def cancelled(h: Harness) -> Recorded:
    facts = await h.hand_over("HIST-CANCEL", due_in_days=-4)
    await h.until_sent(facts, "reminder_1")
    await h.handle(facts.number).execute_update(
        InvoiceWorkflow.close,
        Closure(
            kind=ClosureKind.CANCEL, reason="credit note", by="erp", credit_note_reference="AV-1"
        ),
    )
    return {"cancelled": await finished(h, facts.number, Stage.CANCELLED)}


async def written_off(h: Harness) -> Recorded:
    facts = await h.hand_over("HIST-WRITE-OFF", due_in_days=-200)
    await h.env.sleep(timedelta(days=2))  # caught up with its latest step first
    await h.handle(facts.number).execute_update(
        InvoiceWorkflow.close,
        Closure(kind=ClosureKind.WRITE_OFF, reason="debtor liquidated", by="ops"),
    )
    return {"written_off": await finished(h, facts.number, Stage.WRITTEN_OFF)}


async def playbook_migrated(h: Harness) -> Recorded:
    """An operator moves a running invoice to version 2 of its playbook (reminder_3 sooner)."""
    v1 = load_playbook_named("default")
    steps = [
        s.model_copy(update={"offset_days": 15}) if s.id == "reminder_3" else s for s in v1.steps
    ]
    v2 = Playbook.model_validate({**v1.model_dump(), "version": 2, "steps": steps})
    facts = await h.hand_over("HIST-MIGRATE", due_in_days=-1, playbook=v1)
    await h.until_sent(facts, "reminder_1")
    await h.handle(facts.number).execute_update(
        InvoiceWorkflow.migrate_playbook,
        PlaybookMigration(playbook=v2, by="daf", reason="new policy"),
    )
    return {"playbook_migrated": await settled_after(h, facts, "reminder_3")}


async def consolidated_day(h: Harness) -> Recorded:
    """Two invoices of one debtor reach a reminder the same day: one email lists both; a
    third invoice's reminder a day later: an email of its own from the same mailbox."""
    debtor = "D-HIST-SHARED"
    first = await h.hand_over("HIST-MB-1", due_in_days=-4, debtor_id=debtor)
    second = await h.hand_over("HIST-MB-2", due_in_days=-4, debtor_id=debtor, amount="800.00")
    await h.until_sent(first, "reminder_1")
    await h.until_sent(second, "reminder_1")
    [message] = h.outbox_messages()
    assert "HIST-MB-1" in str(message["Subject"]) and "HIST-MB-2" in str(message["Subject"])
    await h.env.sleep(timedelta(days=1))
    third = await h.hand_over("HIST-MB-3", due_in_days=-4, debtor_id=debtor, amount="300.00")
    await h.until_sent(third, "reminder_1")
    assert len(h.outbox_messages()) == 2
    for facts in (first, second, third):
        await h.pay(facts.number, f"VIR-{facts.number}", str(facts.amount.amount))
        await finished(h, facts.number, Stage.PAID)
    return {"mailbox_consolidated_day": await mailbox_ended(h, debtor)}


# ---------------------------------------------------------------- rules edition 2
# Invoices started on this build follow the newest rules (`rules=RULES_LATEST`): every
# channel's failure takes the fallback, a deadline may run from a letter's receipt, mediation
# has outcomes, a hand-off stays open until the end, a late payment's costs reach the back
# office with its `paid`, and limitation is watched.


def sms_playbook() -> Playbook:
    """The default playbook whose second reminder is a text, a letter when it cannot reach."""
    default = load_playbook_named("default")
    steps = [
        s.model_copy(update={"channels": (Channel.SMS,), "fallback": (Channel.LETTER,)})
        if s.id == "reminder_2"
        else s
        for s in default.steps
    ]
    return default.model_copy(update={"name": "sms", "steps": tuple(steps)})


def notices(h: Harness, number: str) -> list[BackofficeEvent]:
    """What the invoice told the back office, in the order it told it: the store's outbox
    keeps each notice with the records that decided it."""
    with transaction(h.engine) as session:
        query = (
            select(BackofficeNotice)
            .where(BackofficeNotice.invoice_number == number)
            .order_by(col(BackofficeNotice.id))
        )
        return [BackofficeEvent.model_validate(n.body) for n in session.exec(query).all()]


def started_input(run: WorkflowHistory) -> InvoiceWorkflowInput:
    started = run.events[0].workflow_execution_started_event_attributes
    converter = pydantic_data_converter.payload_converter
    [carried] = converter.from_payloads(started.input.payloads, [InvoiceWorkflowInput])
    return carried


def tasks_of(h: Harness, number: str, kind: str) -> list[Task]:
    with transaction(h.engine) as session:
        query = select(Task).where(Task.invoice_number == number, Task.kind == kind)
        return list(session.exec(query).all())


async def handed_off(h: Harness, number: str, **hand_over: Any) -> InvoiceFacts:
    """Mediation and legal approved as they come: the file is with the legal partner."""
    facts = await h.hand_over(number, due_in_days=10, **hand_over)
    for stage in (Stage.MEDIATION, Stage.HANDED_OFF):
        await h.until_pending_approval(number)
        assert await decide(h, number, approve=True) == stage
    return facts


async def in_mediation(h: Harness, number: str) -> date:
    """Mediation approved when it falls due; the day it started."""
    await h.until_pending_approval(number)
    assert await decide(h, number, approve=True) == Stage.MEDIATION
    return await h.today()


async def mediation_ended(h: Harness, number: str, result: MediationResult) -> Stage:
    status = await h.handle(number).execute_update(InvoiceWorkflow.record_mediation, result)
    return status.stage


async def handed_off_then_paid(h: Harness) -> Recorded:
    """Handed off, the partner's progress recorded for months (a short history: the run
    continues as new while handed off, with nothing planned), then the debtor pays the lot:
    paid, and the legal partner is told to stop."""
    number = "HIST-LEGAL-PAID"
    await handed_off(h, number, history_limit=40)
    handle = h.handle(number)
    await h.env.sleep(timedelta(days=30))
    await handle.execute_update(
        InvoiceWorkflow.update_legal,
        LegalUpdate(
            status=LegalStatus.FILED, partner_reference="CAB-7", costs=eur("35.00"), by="claire"
        ),
    )
    await h.env.sleep(timedelta(days=45))
    await handle.execute_update(
        InvoiceWorkflow.update_legal,
        LegalUpdate(status=LegalStatus.ORDER_ISSUED, costs=eur("120.00"), by="claire"),
    )
    part = await h.pay(number, "VIR-L1", "200.00")
    assert part.stage == Stage.HANDED_OFF, part
    await h.env.sleep(timedelta(days=20))
    await h.pay(number, "VIR-L2", "1000.00")
    await finished(h, number, Stage.PAID)
    told = [(r.step_id, r.recipient) for r in h.interactions(number) if r.status == "sent"]
    assert ("legal_paid", Recipient.LEGAL_PARTNER.value) in told, told
    runs = await every_run(h, contract.workflow_id(number))
    carried = [started_input(run).machine for run in runs]
    assert any(m is not None and m.stage == Stage.HANDED_OFF for m in carried), "never carried"
    return {f"handed_off_then_paid_run{k}": run for k, run in enumerate(runs, start=1)}


async def mediation_failed(h: Harness) -> Recorded:
    """The mediation fails after a week: the legal approval is asked at once (before the legal
    step's own day, J+60), and the debtor pays the lot meanwhile."""
    number = "HIST-MED-FAIL"
    facts = await h.hand_over(number, due_in_days=10)
    started = await in_mediation(h, number)
    await h.env.sleep(timedelta(days=7))
    failure = MediationResult(
        outcome=MediationOutcome.FAILURE,
        mediator_reference="MED-42",
        started_on=started,
        ended_on=await h.today(),
        recorded_by="claire",
    )
    await mediation_ended(h, number, failure)
    await h.until_pending_approval(number)
    pending = (await h.status(number)).pending_approval
    assert pending is not None and pending.target_stage == Stage.LEGAL, pending
    assert (await h.today() - facts.due_date).days < 60
    await h.pay(number, "VIR-MED", "1200.00")
    return {"mediation_failed": await finished(h, number, Stage.PAID)}


async def mediation_agreement(h: Harness) -> Recorded:
    """The mediation ends in an agreement: its schedule becomes a payment plan, kept to."""
    number = "HIST-MED-AGREE"
    await h.hand_over(number, due_in_days=10)
    started = await in_mediation(h, number)
    await h.env.sleep(timedelta(days=10))
    today = await h.today()
    installments = [
        Installment(due_date=today + timedelta(days=30), amount=eur("700.00")),
        Installment(due_date=today + timedelta(days=60), amount=eur("500.00")),
    ]
    agreement = MediationResult(
        outcome=MediationOutcome.AGREEMENT,
        mediator_reference="MED-43",
        started_on=started,
        ended_on=today,
        recorded_by="claire",
        plan_id="P-MED",
        installments=installments,
    )
    assert await mediation_ended(h, number, agreement) == Stage.PAYMENT_PLAN
    for k, item in enumerate(installments, start=1):
        await h.env.sleep(
            datetime.combine(item.due_date, time(8), tzinfo=UTC) - await h.env.get_current_time()
        )
        await h.pay(number, f"VIR-MED-{k}", str(item.amount.amount))
    return {"mediation_agreement": await finished(h, number, Stage.PAID)}


async def sms_stop_fallback(h: Harness) -> Recorded:
    """The debtor answers STOP to the text reminder: it goes again by letter."""
    facts = await h.hand_over("HIST-SMS-STOP", due_in_days=1, playbook=sms_playbook())
    give_phone(h, facts.debtor_id)
    await h.until_sent(facts, "reminder_2")
    await tell(h, facts.number, "dropped", "reminder_2", Channel.SMS, "STOP reply")
    await h.until_sent(facts, "reminder_2_fallback")
    assert ("reminder_2_fallback", "letter") in sent_on(h, facts.number), sent_on(h, facts.number)
    return {"sms_stop_fallback": await settled_after(h, facts, "reminder_3")}


async def sms_without_phone(h: Harness) -> Recorded:
    """A text to a debtor without a phone number cannot go at all: a letter at once."""
    facts = await h.hand_over("HIST-SMS-NONE", due_in_days=1, playbook=sms_playbook())
    await h.until_sent(facts, "reminder_2_fallback")
    assert ("reminder_2", "sms") not in sent_on(h, facts.number)
    return {"sms_without_phone": await settled_after(h, facts, "reminder_3")}


async def every_channel_fails(h: Harness) -> Recorded:
    """A bounce, a STOP, a registered letter not claimed (a call instead), a new address,
    and a call never reached (a letter instead); then paid."""
    facts = await h.hand_over("HIST-EVERY", due_in_days=1, playbook=EVERY_CHANNEL)
    number = facts.number
    give_phone(h, facts.debtor_id)
    await h.until_sent(facts, "by_email")
    await tell(h, number, "bounce", "by_email", Channel.EMAIL, "mailbox unknown")
    await h.until_sent(facts, "by_sms")
    await tell(h, number, "dropped", "by_sms", Channel.SMS, "STOP reply")
    await h.until_sent(facts, "formal_notice")
    await tell(h, number, "bounce", "formal_notice", Channel.LETTER, "not claimed")

    async def called(step: str) -> bool:
        return f"{number}:{step}:call" in call_tasks(h, number)

    await h.advance_until(lambda: called("formal_notice"))
    await h.handle(number).signal(
        InvoiceWorkflow.contact_corrected,
        ContactCorrected(event_id="fix-1", by="claire", channels=(Channel.LETTER,)),
    )
    await h.advance_until(lambda: called("call"))
    await tell(h, number, "bounce", "call", Channel.PHONE, "not reached 3 times in a row")
    await h.until_sent(facts, "call_fallback")
    fallbacks = {sent for sent in sent_on(h, number) if sent[0].endswith("_fallback")}
    expected = {("by_email_fallback", "sms"), ("by_sms_fallback", "letter")}
    assert fallbacks == expected | {("call_fallback", "letter")}, fallbacks
    await h.pay(number, "VIR-EVERY", "1200.00")
    return {"every_channel_fails": await finished(h, number, Stage.PAID)}


async def letter_received(h: Harness) -> Recorded:
    """The formal notice's deadline runs from its receipt: the registered letter is claimed at
    the post office ten days after sending, and mediation waits for the deadline it sets."""
    playbook = load_playbook_named("default").model_copy(
        update={"name": "receipt", "notice_deadline_from": "receipt"}
    )
    facts = await h.hand_over("HIST-RECEIPT", due_in_days=-25, playbook=playbook)
    await h.until_sent(facts, "formal_notice")
    await h.env.sleep(timedelta(days=10))
    received_on = await h.today()
    # Computed where the API computes it (the workflow has no business calendar).
    deadline = notice_deadline(
        playbook, sent_on=received_on, received_on=received_on, country=facts.country
    )
    # Later than mediation's own day (J+45): the receipt is what makes it wait.
    assert deadline is not None and deadline > facts.due_date + timedelta(days=45), deadline
    await h.handle(facts.number).signal(
        InvoiceWorkflow.letter_received,
        LetterReceived(
            event_id="ar-1", step_id="formal_notice", received_on=received_on, deadline=deadline
        ),
    )
    await h.until_pending_approval(facts.number)
    assert await h.today() > deadline, f"mediation asked on {await h.today()}, before {deadline}"
    [receipt] = [e for e in h.events(facts.number) if e.kind == "letter_received"]
    assert receipt.detail["deadline"] == deadline.isoformat(), receipt.detail
    await h.pay(facts.number, "VIR-AR", "1200.00")
    return {"letter_received": await finished(h, facts.number, Stage.PAID)}


async def paid_late_with_costs(h: Harness) -> Recorded:
    """Paid after two reminders: the interest and the 40 € are computed, and the back office's
    `paid` notice waits for them and carries them."""
    facts = await h.hand_over("HIST-LATE-COSTS", due_in_days=-4)
    run = await settled_after(h, facts, "reminder_2")
    [costs] = [e for e in h.events(facts.number) if e.kind == "late_payment_costs"]
    [paid_notice] = [n for n in notices(h, facts.number) if n.kind == "paid"]
    assert paid_notice.data == costs.detail, (paid_notice.data, costs.detail)
    assert paid_notice.data["indemnity"] == "40.00", paid_notice.data
    return {"paid_late_with_costs": run}


async def limitation_warning(h: Harness) -> Recorded:
    """Handed over four years and eight months after its due date: collectors are warned of
    limitation at once; a part payment acknowledges the debt (the warning is answered), the
    rest pays it."""
    # L110-4: 5 years from the due date; the warning comes 6 months before. Due about 1 705
    # days ago, the limitation date is about 120 days away: inside the warning's six months.
    facts = await h.hand_over("HIST-LIMITATION", due_in_days=-(5 * 365 - 120))
    number = facts.number

    async def warned() -> bool:
        return bool(tasks_of(h, number, "limitation"))

    await h.advance_until(warned, max_days=2, step_hours=3)
    await h.env.sleep(timedelta(days=10))
    await h.pay(number, "VIR-LIM-1", "300.00")

    async def answered() -> bool:
        return [t.status for t in tasks_of(h, number, "limitation")] == ["done"]

    await h.advance_until(answered, max_days=2, step_hours=3)
    await h.env.sleep(timedelta(days=10))
    await h.pay(number, "VIR-LIM-2", "900.00")
    return {"limitation_warning": await finished(h, number, Stage.PAID)}


SCENARIOS: dict[str, Scenario] = {
    "paid": paid,
    "paid_after_partial": paid_after_partial,
    "disputed_rejected": disputed_rejected,
    "disputed_upheld": disputed_upheld,
    "plan": plan,
    "plan_broken": plan_broken,
    "paused_resumed": paused_resumed,
    "promise_broken": promise_broken,
    "bounce": bounce,
    "escalation": escalation,
    "cancelled": cancelled,
    "written_off": written_off,
    "playbook_migrated": playbook_migrated,
    "consolidated_day": consolidated_day,
    "handed_off_then_paid": handed_off_then_paid,
    "mediation_failed": mediation_failed,
    "mediation_agreement": mediation_agreement,
    "sms_stop_fallback": sms_stop_fallback,
    "sms_without_phone": sms_without_phone,
    "every_channel_fails": every_channel_fails,
    "letter_received": letter_received,
    "paid_late_with_costs": paid_late_with_costs,
    "limitation_warning": limitation_warning,
}

# The worker each kind runs on (by default the tests' usual one). Texts go out inside the
# debtor's send window by the wall clock: these find it open whatever the hour of recording.
Worker = Callable[[WorkflowEnvironment, Engine, Path, str], AbstractAsyncContextManager[Harness]]
WORKERS: dict[str, Worker] = {
    "sms_stop_fallback": texting_worker,
    "sms_without_phone": texting_worker,
    "every_channel_fails": texting_worker,
}

# Invoices now send their own messages (one a day, claimed in the store) and start no debtor
# mailbox: a build has no such history left to record. The saved ones still replay, and the
# scenario that made them stays, for the record.
MAILBOX_ONLY = frozenset({"consolidated_day"})


# ---------------------------------------------------------------- recording


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest() -> dict[str, str]:
    """file name -> sha256, as committed in MANIFEST.sha256 (sha256sum's format)."""
    if not MANIFEST.exists():
        return {}
    entries = {}
    for line in MANIFEST.read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        entries[name.lstrip("*")] = digest
    return entries


async def record(scenario: Scenario, worker: Worker = running_worker) -> Recorded:
    """Plays one scenario on a fresh server and store; checks what it recorded replays."""
    env = await start_time_skipping()
    try:
        with tempfile.TemporaryDirectory() as directory:
            tmp_path = Path(directory)
            engine = make_engine(f"sqlite:///{tmp_path / 'relance.db'}")
            upgrade(engine)
            try:
                queue = f"tq-{uuid.uuid4().hex[:12]}"
                async with worker(env, engine, tmp_path, queue) as h:
                    recorded = await scenario(h)
            finally:
                engine.dispose()
    finally:
        await env.shutdown()
    replayer = Replayer(
        workflows=[InvoiceWorkflow, DebtorMailboxWorkflow],
        data_converter=pydantic_data_converter,
    )
    for run in recorded.values():
        await replayer.replay_workflow(run)
    return recorded


def paths_for(release: str, recorded: Recorded) -> dict[Path, WorkflowHistory]:
    return {HISTORIES / f"{release}_{kind}.json": run for kind, run in recorded.items()}


def save(release: str, recorded: Recorded) -> list[Path]:
    """Writes new files only and appends their hashes to the manifest."""
    targets = paths_for(release, recorded)
    taken = [p.name for p in targets if p.exists() or p.name in manifest()]
    if taken:
        raise SystemExit(f"already saved, never re-recorded: {', '.join(taken)}")
    lines = []
    for path, run in targets.items():
        path.write_text(json.dumps(json.loads(run.to_json()), indent=1) + "\n")
        lines.append(f"{sha256(path)}  {path.name}\n")
    with MANIFEST.open("a") as out:
        out.writelines(lines)
    return list(targets)


async def main(release: str, kinds: list[str]) -> None:
    for kind in kinds:
        if kind in MAILBOX_ONLY:
            print(f"skipping {kind}: invoices no longer go through a debtor mailbox", flush=True)
            continue
        print(f"recording {kind}...", flush=True)
        recorded = await record(SCENARIOS[kind], WORKERS.get(kind, running_worker))
        for path in save(release, recorded):
            print(f"  {path.name}")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.workflows.record_histories", description=__doc__.split("\n")[0]
    )
    parser.add_argument("release", help="a name for this build, e.g. v2 (files: v2_<kind>.json)")
    parser.add_argument("kinds", nargs="*", help=f"default: all of {', '.join(SCENARIOS)}")
    args = parser.parse_args(argv)
    unknown = [kind for kind in args.kinds if kind not in SCENARIOS]
    if unknown:
        parser.error(f"unknown kinds {unknown}: choose among {', '.join(SCENARIOS)}")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", args.release):
        parser.error(f"release {args.release!r}: lower-case letters, digits, dots and dashes only")
    return args


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    asyncio.run(main(arguments.release, arguments.kinds or list(SCENARIOS)))
