"""The collection machine's invariants, over thousands of generated lives of an invoice.

Random playbooks; random sequences of payments, decisions, disputes, plans, promises, pauses,
closures, migrations, bounces and send outcomes, at random moments. Whatever happens:
nothing is sent while held or after the end; each step's message goes out at most once; two
steps are never closer than the playbook's gap; every step goes out inside the send window on a
business day; the outstanding amount is the amount less payments and credits, never below
zero; an ended invoice never changes; and a refused command changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from domain.collection import machine
from domain.collection.commands import ContactCorrected, SendResult
from domain.collection.keys import message_key
from domain.collection.state import Disputed, OnPlan
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
from domain.lifecycle import EscalationDecision, PaymentInput, Stage
from domain.money import Money
from domain.playbook import Channel, Playbook, Step, Tone
from tests.domain.collection.driver import WINDOW_END, WINDOW_START, Run, start

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
STEP_MESSAGES = {"pre_reminder", "reminder", "formal_notice", "mediation", "legal_handoff"}
PEOPLE = ["alice", "bruno", "chloe"]


@st.composite
def playbooks(draw: st.DrawFn) -> Playbook:
    steps: list[Step] = []
    offset = draw(st.integers(-10, -1))
    if draw(st.booleans()):
        steps.append(
            Step(
                id="pre_reminder",
                stage=Stage.UPCOMING,
                offset_days=offset,
                template="pre_reminder",
                tone=Tone.COURTEOUS,
            )
        )
    offset = draw(st.integers(1, 5))
    for n in range(draw(st.integers(1, 4))):
        channels = draw(
            st.sampled_from([(Channel.EMAIL,), (Channel.EMAIL, Channel.LETTER), (Channel.PHONE,)])
        )
        steps.append(
            Step(
                id=f"reminder_{n + 1}",
                stage=Stage.OVERDUE,
                offset_days=offset,
                template="reminder",
                channels=channels,
            )
        )
        offset += draw(st.integers(0, 12))
    if draw(st.booleans()):
        steps.append(
            Step(
                id="formal_notice",
                stage=Stage.FORMAL_NOTICE,
                offset_days=offset,
                template="formal_notice",
                tone=Tone.FORMAL,
            )
        )
        offset += draw(st.integers(1, 15))
    if draw(st.booleans()):
        steps.append(
            Step(
                id="mediation",
                stage=Stage.MEDIATION,
                offset_days=offset,
                template="mediation",
                requires_approval=True,
            )
        )
        offset += draw(st.integers(1, 15))
    if draw(st.booleans()):
        steps.append(
            Step(
                id="legal",
                stage=Stage.LEGAL,
                offset_days=offset,
                template="legal_handoff",
                requires_approval=True,
            )
        )
    return Playbook(
        name="generated",
        version=draw(st.integers(1, 3)),
        min_gap_days=draw(st.sampled_from([0, 0.5, 1, 2, 5])),
        steps=tuple(steps),
    )


def _money(amount: str) -> Money:
    return Money.of(Decimal(amount), "EUR")


def _command(draw: Callable[..., Any], run: Run) -> object:
    """A command a person or a provider might send now: often sensible, sometimes not."""
    state = run.state
    today = run.now.date()
    kind = draw(
        st.sampled_from(
            [
                "wait",
                "wait",
                "wait",
                "pay",
                "decide",
                "dispute",
                "resolve",
                "plan",
                "decide_plan",
                "promise",
                "pause",
                "resume",
                "close",
                "migrate",
                "bounce",
                "correct",
                "settle",
                "mediation",
                "legal",
            ]
        )
    )
    who = draw(st.sampled_from(PEOPLE))
    match kind:
        case "wait":
            return timedelta(hours=draw(st.integers(1, 24 * 20)))
        case "pay":
            amount = draw(st.sampled_from(["0.00", "-5.00", "100.00", "400.00", "1200.00"]))
            currency = draw(st.sampled_from(["EUR", "EUR", "EUR", "USD"]))
            return PaymentInput(
                reference=f"P{draw(st.integers(0, 6))}", amount=Money.of(Decimal(amount), currency)
            )
        case "decide":
            pending = state.approval
            approval_id = pending.approval_id if pending and draw(st.booleans()) else "F-1:x:1"
            return EscalationDecision(
                approval_id=approval_id, approve=draw(st.booleans()), decided_by=who
            )
        case "dispute":
            return DisputeOpen(
                dispute_id=f"D{draw(st.integers(0, 2))}", reason="wrong", opened_by=who
            )
        case "resolve":
            hold = state.hold
            dispute_id = hold.dispute_id if isinstance(hold, Disputed) else "D9"
            credit = draw(st.sampled_from([None, _money("100.00"), _money("5000.00")]))
            return DisputeResolution(
                dispute_id=dispute_id,
                resolved_by=who,
                credit=credit,
                outcome=draw(st.sampled_from(list(DisputeOutcome))),
            )
        case "plan":
            count = draw(st.integers(1, 8))
            left = state.outstanding.amount
            if not left > 0:
                left = Decimal("100")
            share = (left / count).quantize(Decimal("0.01"))
            amounts = [share] * (count - 1) + [left - share * (count - 1)]
            if any(a <= 0 for a in amounts):
                amounts = [left]
            return PlanProposal(
                plan_id=f"PL{draw(st.integers(0, 2))}",
                proposed_by=who,
                installments=[
                    Installment(
                        due_date=today + timedelta(days=15 * (i + 1)), amount=_money(str(a))
                    )
                    for i, a in enumerate(amounts)
                ],
            )
        case "decide_plan":
            hold = state.hold
            plan_id = hold.plan_id if isinstance(hold, OnPlan) else "PL9"
            return PlanDecision(plan_id=plan_id, approve=draw(st.booleans()), decided_by=who)
        case "promise":
            return PromiseToPay(
                promise_id=f"PR{draw(st.integers(0, 3))}",
                recorded_by=who,
                until=today + timedelta(days=draw(st.integers(-2, 20))),
            )
        case "pause":
            until = draw(st.sampled_from([None, today + timedelta(days=7)]))
            return HoldRequest(
                reason="customer asked",
                by=who,
                until=until,
                key=draw(st.sampled_from([None, "k1", "k2"])),
            )
        case "resume":
            return ResumeRequest(by=who)
        case "close":
            return Closure(kind=draw(st.sampled_from(list(ClosureKind))), reason="r", by=who)
        case "migrate":
            return PlaybookMigration(playbook=draw(playbooks()), by=who)
        case "bounce":
            step = draw(st.sampled_from([s.id for s in state.playbook.steps]))
            return DeliveryEvent(
                event_id=f"E{draw(st.integers(0, 3))}",
                kind="bounce",
                step_id=step,
                occurred_at=run.now,
            )
        case "correct":
            return ContactCorrected(event_id=f"C{draw(st.integers(0, 3))}", by=who)
        case "mediation":
            outcome = draw(st.sampled_from(list(MediationOutcome)))
            left = state.outstanding.amount if state.outstanding.is_positive else Decimal(100)
            agreement = outcome == MediationOutcome.AGREEMENT
            return MediationResult(
                outcome=outcome,
                mediator_reference=f"M{draw(st.integers(0, 2))}",
                started_on=today - timedelta(days=5),
                ended_on=today,
                recorded_by=who,
                plan_id="PLM" if agreement else None,
                installments=(
                    [Installment(due_date=today + timedelta(days=30), amount=_money(str(left)))]
                    if agreement
                    else []
                ),
            )
        case "legal":
            return LegalUpdate(
                status=draw(st.sampled_from(list(LegalStatus))),
                costs=draw(st.sampled_from([None, _money("35.00")])),
                by=who,
            )
        case _:
            return (draw(st.integers(0, 10)), draw(st.sampled_from(list(SendResult))))


def _check(run: Run, before: Mapping[str, object]) -> None:
    state = run.state
    ledger = state.ledger
    expected = ledger.amount.amount - ledger.paid.amount - ledger.credited.amount
    assert state.outstanding.amount == max(expected, Decimal(0))
    assert state.outstanding.amount >= 0
    if before["ended"]:
        # (A hand-off under rules 2 is not an end: a payment still makes it paid.)
        assert state.stage == before["stage"], "an ended invoice changed stage"


@settings(
    max_examples=150,
    deadline=None,
    # A failure is reported as found: shrinking these long sequences takes minutes.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(playbook=playbooks(), due_in=st.integers(-30, 20), data=st.data())
def test_the_machine_keeps_its_invariants(playbook: Playbook, due_in: int, data: st.DataObject):
    due: date = (START + timedelta(days=due_in)).date()
    run = start(playbook, due, START)
    run.advance(timedelta(0))
    deferred: set[str] = set()
    ended_at: int | None = None
    gaps = {playbook.min_gap_days}
    for _ in range(data.draw(st.integers(5, 40))):
        before = {
            "stage": run.state.stage,
            "ended": machine.ended(run.state),
            "dump": run.state.model_dump(),
        }
        sent_before = len(run.sent)
        action = _command(data.draw, run)
        if isinstance(action, timedelta):
            run.advance(action)
        elif isinstance(action, tuple):
            index, result = action
            if run.in_flight:
                send = run.in_flight[index % len(run.in_flight)]
                if result == SendResult.DEFERRED:
                    m = send.message
                    deferred.add(message_key("F-1", m.step_id, m.channel, m.recipient))
            run.settle(index, result)
        else:
            state = run.state
            result = machine.apply(state, action, run.now)  # type: ignore[arg-type]
            # The machine never changes the state it is given.
            assert state.model_dump() == before["dump"]
            if isinstance(result, machine.Refusal):
                run.refused += 1
                assert run.state.model_dump() == before["dump"], "a refusal changed the state"
            else:
                run.command(action)  # type: ignore[arg-type]
                if isinstance(action, PlaybookMigration):
                    gaps.add(action.playbook.min_gap_days)
        _check(run, before)
        for sent in run.sent[sent_before:]:
            message = sent.send.message
            if message.template in STEP_MESSAGES:
                # Nothing is sent while held or after the end (but the legal step's own
                # messages, which go out as the file is handed off).
                assert run.state.stage not in {Stage.PAID, Stage.CANCELLED, Stage.WRITTEN_OFF}
                if run.state.stage == Stage.HANDED_OFF:
                    assert message.stage == Stage.LEGAL
        if machine.ended(run.state) and ended_at is None:
            ended_at = len(run.sent)
    run.advance(timedelta(days=400))

    # Each step's message at most once (a message put off to the next day goes out again).
    keys = [s.key for s in run.sent if s.send.message.template in STEP_MESSAGES]
    for key in set(keys):
        if keys.count(key) > 1:
            assert key in deferred, f"{key} sent {keys.count(key)} times"
    # Steps never closer than the playbook's gap (or the gap of the playbook migrated to).
    for a, b in zip(run.steps_done, run.steps_done[1:], strict=False):
        assert b - a >= timedelta(days=min(gaps))
    # Every step message goes out inside the send window, on a business day (a fallback
    # after a bounce goes at once: it replaces a message that did not arrive).
    for sent in run.sent:
        message = sent.send.message
        if message.template in STEP_MESSAGES and not message.step_id.endswith("_fallback"):
            assert sent.at.weekday() < 5, f"{message.step_id} sent on {sent.at:%A}"
            assert WINDOW_START <= sent.at.time() < WINDOW_END, f"{message.step_id} at {sent.at}"
    # After the end, nothing but a thank-you.
    if ended_at is not None:
        after = [s.send.message.template for s in run.sent[ended_at:]]
        assert set(after) <= {"thank_you"}


@settings(max_examples=60, deadline=None)
@given(playbook=playbooks(), data=st.data())
def test_steps_keep_the_gap_when_nothing_intervenes(playbook: Playbook, data: st.DataObject):
    """Left alone, a late hand-over catches up once, then keeps the playbook's gap."""
    due = (START - timedelta(days=data.draw(st.integers(0, 60)))).date()
    run = start(playbook, due, START)
    run.advance(timedelta(days=200))
    for a, b in zip(run.steps_done, run.steps_done[1:], strict=False):
        assert b - a >= timedelta(days=playbook.min_gap_days)
