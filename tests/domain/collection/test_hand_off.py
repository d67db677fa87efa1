"""After the amicable stages: a mediation's outcome, and a hand-off that stays open with the
legal partner (rules 2) until the invoice is paid, closed, or the partner settles or abandons."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from domain.collection import machine
from domain.collection.commands import ContactCorrected, LateCostsComputed
from domain.collection.records import EventKind
from domain.collection.state import CollectionState, OnPlan
from domain.errors import ErrorType
from domain.holds import Closure, ClosureKind, DeliveryEvent, HoldRequest, Installment
from domain.legal import LegalStatus, LegalUpdate, MediationOutcome, MediationResult
from domain.lifecycle import EscalationDecision, PaymentInput, Stage
from domain.money import Money
from domain.playbook import Channel, Recipient, load_playbook_named
from tests.domain.collection.driver import Run, start

# Handed over on Monday 2 March 2026, 08:00 UTC; due Wednesday 1 April 2026. The default
# playbook asks for mediation at J+45 (Saturday 16 May: Monday 18 May) and for the legal step
# at J+60 (Sunday 31 May: Monday 1 June), each after a collector's approval.
NOW = datetime(2026, 3, 2, 8, tzinfo=UTC)
DUE = date(2026, 4, 1)
LEGAL_DAY = date(2026, 6, 1)


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def until(run: Run, done: Callable[[CollectionState], bool], days: int = 120) -> None:
    for _ in range(days * 4):
        if done(run.state):
            return
        run.advance(timedelta(hours=6))
    raise AssertionError("never happened")


def approve(run: Run, stage: Stage) -> None:
    until(run, lambda s: s.approval is not None and s.approval.target_stage == stage)
    assert run.state.approval is not None
    decision = EscalationDecision(
        approval_id=run.state.approval.approval_id, approve=True, decided_by="alice"
    )
    assert isinstance(run.command(decision), machine.Transition)
    until(run, lambda s: s.stage not in (Stage.FORMAL_NOTICE, Stage.OVERDUE) and s.stage == stage)


def in_mediation() -> Run:
    run = start(load_playbook_named("default"), DUE, NOW)
    approve(run, Stage.MEDIATION)
    return run


def handed_off() -> Run:
    run = in_mediation()
    until(run, lambda s: s.approval is not None and s.approval.target_stage == Stage.LEGAL)
    assert run.state.approval is not None
    run.command(
        EscalationDecision(
            approval_id=run.state.approval.approval_id, approve=True, decided_by="alice"
        )
    )
    until(run, lambda s: s.stage == Stage.HANDED_OFF)
    return run


def mediation(outcome: MediationOutcome, **extra: object) -> MediationResult:
    values: dict[str, object] = {
        "outcome": outcome,
        "mediator_reference": "MED-2026-17",
        "started_on": date(2026, 5, 19),
        "ended_on": date(2026, 5, 22),
        "recorded_by": "bob",
    }
    return MediationResult.model_validate(values | extra)


def refusal(run: Run, command: object) -> ErrorType:
    result = machine.apply(run.state, command, run.now)  # type: ignore[arg-type]
    assert isinstance(result, machine.Refusal), result
    return result.type


def kinds(run: Run) -> list[EventKind]:
    return [e.kind for e in run.recorded]


# ---------------------------------------------------------------------------------- mediation


def test_a_failed_mediation_asks_for_the_legal_approval_at_once() -> None:
    run = in_mediation()
    run.now = datetime(2026, 5, 22, 10, tzinfo=UTC)  # Friday, ten days before the legal step
    run.tick()

    run.command(mediation(MediationOutcome.FAILURE))
    run.advance(timedelta(hours=1))

    assert run.state.approval is not None
    assert run.state.approval.target_stage == Stage.LEGAL
    # Asked the day the failure is recorded, not on 1 June.
    assert run.state.approval.requested_at == datetime(2026, 5, 22, 10, tzinfo=UTC)
    event = next(e for e in run.recorded if e.kind == EventKind.MEDIATION_ENDED)
    assert event.detail["mediator_reference"] == "MED-2026-17"
    assert event.detail["started_on"] == "2026-05-19"
    assert "failed" in event.summary


def test_a_withdrawn_mediation_leaves_the_escalation_where_it_was() -> None:
    run = in_mediation()
    run.now = datetime(2026, 5, 22, 10, tzinfo=UTC)
    run.tick()

    run.command(mediation(MediationOutcome.WITHDRAWN))
    run.advance(timedelta(days=7))  # Friday 29 May: the legal step is still to come
    assert run.state.approval is None
    assert run.state.stage == Stage.MEDIATION
    until(run, lambda s: s.approval is not None)
    assert run.state.approval is not None
    assert run.state.approval.requested_at.date() == LEGAL_DAY


def test_an_agreement_becomes_a_payment_plan() -> None:
    run = in_mediation()
    until(run, lambda s: s.approval is not None)  # the legal approval is already asked
    schedule = [
        Installment(due_date=date(2026, 6, 30), amount=eur("600.00")),
        Installment(due_date=date(2026, 7, 31), amount=eur("600.00")),
    ]

    run.command(mediation(MediationOutcome.AGREEMENT, plan_id="P-MED", installments=schedule))

    plan = run.state.hold
    assert isinstance(plan, OnPlan)
    assert (plan.plan_id, plan.status) == ("P-MED", "active")  # 1 200 € ≤ 5 000 €: no 4-eyes
    assert run.state.shown_stage == Stage.PAYMENT_PLAN
    assert run.state.approval is None  # the legal approval is withdrawn
    # A signed agreement acknowledges the debt on the day it is signed (Civil code 2240).
    assert date(2026, 5, 22) in run.state.acknowledged_on
    assert kinds(run)[-3:] == [
        EventKind.MEDIATION_ENDED,
        EventKind.APPROVAL_CANCELLED,
        EventKind.PLAN_PROPOSED,
    ]


def test_a_mediation_outcome_is_refused_when_it_does_not_fit() -> None:
    early = start(load_playbook_named("default"), DUE, NOW)
    assert refusal(early, mediation(MediationOutcome.FAILURE)) == ErrorType.WRONG_STAGE

    run = in_mediation()
    short = [Installment(due_date=date(2026, 6, 30), amount=eur("1000.00"))]
    agreement = mediation(MediationOutcome.AGREEMENT, plan_id="P-1", installments=short)
    assert refusal(run, agreement) == ErrorType.PLAN_MISMATCH

    run.command(mediation(MediationOutcome.FAILURE))
    recorded = len(run.recorded)
    # The same outcome again is a replay; another one is refused.
    assert isinstance(run.command(mediation(MediationOutcome.FAILURE)), machine.Transition)
    assert len(run.recorded) == recorded
    assert refusal(run, mediation(MediationOutcome.WITHDRAWN)) == ErrorType.WRONG_STAGE


# ---------------------------------------------------------------------------------- hand-off


def test_a_hand_off_stays_open_without_timers() -> None:
    run = handed_off()

    assert not machine.ended(run.state)
    assert machine.wake_at(run.state, run.now) is None
    assert EventKind.CLOSED not in kinds(run)
    assert [n.kind for n in run.notices].count("handed_off") == 1
    status = machine.status(run.state, run.now)
    assert (status.stage, status.next_step) == (Stage.HANDED_OFF, None)


def test_a_payment_after_the_hand_off_ends_it_paid_and_tells_the_partner() -> None:
    run = handed_off()
    run.command(PaymentInput(reference="VIR-1", amount=eur("200.00")))
    assert run.state.stage == Stage.HANDED_OFF
    assert run.state.outstanding == eur("1000.00")

    run.command(PaymentInput(reference="VIR-2", amount=eur("1000.00")))

    assert run.state.stage == Stage.PAID
    assert machine.ended(run.state) and run.state.closed
    # Paid two months late: the `paid` notice waits for the late-payment costs (an activity's
    # answer; here no rate is known).
    assert "paid" not in [n.kind for n in run.notices]
    run.command(LateCostsComputed(error="no rate"))
    assert [n.kind for n in run.notices][-1] == "paid"
    partner = [
        s.send.message for s in run.sent if s.send.message.recipient == Recipient.LEGAL_PARTNER
    ]
    assert [m.template for m in partner] == ["legal_file", "legal_closed"]
    assert partner[-1].paid == eur("1200.00")
    assert partner[-1].wanted_in == (Stage.PAID,)
    assert "thank_you" in [s.send.message.template for s in run.sent]


def test_the_partner_reports_progress_until_the_file_is_settled() -> None:
    run = handed_off()
    run.command(
        LegalUpdate(
            status=LegalStatus.FILED, partner_reference="CAB-88", costs=eur("35.00"), by="bob"
        )
    )
    run.command(LegalUpdate(status=LegalStatus.ORDER_ISSUED, costs=eur("120.50"), by="bob"))

    assert run.state.legal is not None
    assert run.state.legal.partner_reference == "CAB-88"  # kept from the first report
    assert run.state.legal.costs == eur("120.50")
    assert not machine.ended(run.state)

    run.command(LegalUpdate(status=LegalStatus.SETTLED, by="bob"))

    assert machine.ended(run.state)
    assert run.state.stage == Stage.HANDED_OFF
    closed = next(e for e in run.recorded if e.kind == EventKind.CLOSED)
    assert closed.summary == "Collection ended: handed_off, legal file settled"
    # The back office heard of the hand-off once.
    assert [n.kind for n in run.notices].count("handed_off") == 1
    assert refusal(run, PaymentInput(reference="VIR-9", amount=eur("1.00"))) == (
        ErrorType.INVOICE_CLOSED
    )


def test_once_handed_off_holds_are_refused_but_a_write_off_ends_it() -> None:
    run = handed_off()
    assert refusal(run, HoldRequest(reason="call me", by="bob")) == ErrorType.WRONG_STAGE
    assert refusal(
        run, LegalUpdate(status=LegalStatus.FILED, costs=Money.of("3", "USD"), by="b")
    ) == (ErrorType.CURRENCY_MISMATCH)

    run.command(Closure(kind=ClosureKind.WRITE_OFF, reason="debtor liquidated", by="carol"))

    assert run.state.stage == Stage.WRITTEN_OFF and run.state.closed
    told = run.sent[-1].send.message
    assert (told.recipient, told.template, told.paid) == (
        Recipient.LEGAL_PARTNER,
        "legal_closed",
        None,
    )


def test_the_legal_progress_is_refused_before_the_hand_off() -> None:
    run = in_mediation()
    assert refusal(run, LegalUpdate(status=LegalStatus.FILED, by="bob")) == ErrorType.WRONG_STAGE


def test_an_old_rules_invoice_still_ends_at_the_hand_off() -> None:
    run = in_mediation()
    run.state = run.state.model_copy(update={"rules": 1})
    until(run, lambda s: s.approval is not None)
    assert run.state.approval is not None
    run.command(
        EscalationDecision(
            approval_id=run.state.approval.approval_id, approve=True, decided_by="alice"
        )
    )
    until(run, lambda s: s.stage == Stage.HANDED_OFF)

    assert machine.ended(run.state) and run.state.closed
    assert machine.wake_at(run.state, run.now) is None
    assert refusal(run, PaymentInput(reference="VIR-1", amount=eur("1.00"))) == (
        ErrorType.INVOICE_CLOSED
    )
    assert refusal(run, LegalUpdate(status=LegalStatus.FILED, by="bob")) == ErrorType.INVOICE_CLOSED


def test_a_bounced_hand_off_goes_by_letter_but_an_old_reminder_does_not() -> None:
    run = handed_off()
    run.command(
        DeliveryEvent(event_id="E-1", kind="bounce", step_id="reminder_1", occurred_at=run.now)
    )
    run.advance(timedelta(hours=1))
    assert not [s for s in run.sent if s.send.message.step_id == "reminder_1_fallback"]

    run.command(ContactCorrected(event_id="C-1", by="bob"))
    run.command(DeliveryEvent(event_id="E-2", kind="bounce", step_id="legal", occurred_at=run.now))
    run.advance(timedelta(hours=1))
    [letter] = [s.send.message for s in run.sent if s.send.message.step_id == "legal_fallback"]
    assert (letter.channel, letter.template) == (Channel.LETTER, "legal_handoff")
    assert machine.wake_at(run.state, run.now) is None


def test_the_back_office_hears_of_each_legal_report_and_of_the_files_end() -> None:
    run = handed_off()
    run.command(
        LegalUpdate(
            status=LegalStatus.FILED,
            partner_reference="CAB-88",
            costs=eur("35.00"),
            note="the debtor's manager is Mr Martin",
            by="bob",
        )
    )
    run.command(LegalUpdate(status=LegalStatus.ABANDONED, costs=eur("80.00"), by="bob"))

    legal = [n for n in run.notices if n.kind.startswith("legal_")]
    assert [(n.kind, n.stage) for n in legal] == [
        ("legal_updated", Stage.HANDED_OFF),
        ("legal_updated", Stage.HANDED_OFF),
        ("legal_abandoned", Stage.HANDED_OFF),
    ]
    filed, abandoned, ended = legal
    # The partner's figures, and neither the collector nor the note (personal data stays in).
    assert filed.data == {
        "status": "filed",
        "partner_reference": "CAB-88",
        "costs": "35.00",
        "currency": "EUR",
    }
    assert (
        abandoned.data
        == ended.data
        == {
            "status": "abandoned",
            "partner_reference": "CAB-88",  # kept from the first report
            "costs": "80.00",
            "currency": "EUR",
        }
    )
    assert ended.outstanding == eur("1200.00")
    assert len({n.event_id for n in run.notices}) == len(run.notices)
    # The end is told as the partner's, not as another closing notice.
    assert not {"handed_off", "paid", "cancelled", "written_off"} & {
        n.kind for n in run.notices[-2:]
    }


def test_a_settled_file_is_told_as_settled() -> None:
    run = handed_off()
    run.command(LegalUpdate(status=LegalStatus.SETTLED, partner_reference="CAB-9", by="bob"))

    assert [n.kind for n in run.notices][-2:] == ["legal_updated", "legal_settled"]
    assert run.notices[-1].data["status"] == "settled"
    assert run.notices[-1].data["costs"] == ""  # none reported
