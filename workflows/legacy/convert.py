"""Moving a run of the first released shape onto the collection machine at continue-as-new."""

from __future__ import annotations

from datetime import datetime

from contracts.invoice import InvoiceWorkflowInput
from contracts.legacy import CarriedState
from domain.collection.state import (
    Approval,
    CollectionState,
    Disputed,
    InstallmentState,
    Ledger,
    OnPlan,
    Paused,
    Promised,
    RecordedPayment,
)
from domain.lifecycle import HOLD_STAGES, Stage
from domain.money import Money
from domain.schedule import Clock


def from_carried_state(input: InvoiceWorkflowInput, now: datetime) -> CollectionState:
    """The machine's state for a v1 run's carried state (as faithful as v1 recorded it)."""
    carried = input.state
    if carried is None:
        raise ValueError("no carried state to convert")
    invoice, playbook = input.invoice, input.playbook
    clock = Clock(carried.anchor, input.day_seconds)
    ledger = Ledger(
        amount=invoice.amount,
        payments={ref: RecordedPayment(result=r) for ref, r in carried.payments.items()},
    )
    # v1 kept the outstanding amount only: what payments do not explain was credited.
    unexplained = ledger.outstanding.amount - carried.outstanding.amount
    if unexplained > 0:
        ledger.credits["v1"] = Money.of(unexplained, invoice.amount.currency)
    stage = carried.stage
    hold = carried.hold
    if hold is not None and stage in HOLD_STAGES:
        stage = hold.resume_stage
    state = CollectionState(
        invoice=invoice,
        playbook=playbook,
        day_seconds=input.day_seconds,
        anchor=carried.anchor,
        stage=stage,
        ledger=ledger,
        hold=_hold(carried, now),
        held_since=hold.since if hold is not None else None,
        approval_rounds=dict(carried.approval_rounds),
        step_index=carried.step_index,
        last_action_at=carried.last_action_at,
        shift_seconds=carried.shift_seconds,
        not_before=carried.not_before,
        retry_at=dict(carried.retry_at),
        rejection_note=carried.rejection_note,
        email_invalid=carried.email_invalid,
        fallback_due=list(carried.fallback_due),
        seen=list(carried.seen_events),
        closed_refs=dict(carried.closed_refs),
        revision=carried.revision,
        notified_stage=carried.notified_stage,
    )
    if carried.approval is not None:
        pending = carried.approval
        state.approval = Approval(
            approval_id=pending.approval_id,
            step_id=pending.step_id,
            target_stage=pending.target_stage,
            requested_at=pending.requested_at,
            remind_at=now + clock.days(playbook.approval_reminder_repeat_days),
        )
    return state


def _hold(carried: CarriedState, now: datetime) -> Paused | Promised | Disputed | OnPlan | None:
    hold = carried.hold
    if hold is None:
        return None
    if carried.plan is not None:
        plan = carried.plan
        return OnPlan(
            plan_id=plan.plan_id,
            status="active" if plan.status == "active" else "proposed",
            proposed_by=plan.proposed_by,
            installments=[
                InstallmentState(
                    due_date=i.due_date, amount=i.amount, paid=i.paid, reminded=i.reminded
                )
                for i in plan.installments
            ],
        )
    if carried.dispute is not None:
        return Disputed(
            dispute_id=carried.dispute.dispute_id,
            reason=hold.reason,
            by="relance",
            deadline=carried.dispute.deadline,
            reminders=carried.dispute.reminders,
        )
    if hold.stage == Stage.PROMISED:
        return Promised(
            promise_id=hold.ref,
            promised_for=(hold.until or now).date(),
            until=hold.until or now,
            by="relance",
            note=hold.reason,
        )
    return Paused(
        key=hold.ref or "v1", reason=hold.reason or "paused", by="relance", until=hold.until
    )
