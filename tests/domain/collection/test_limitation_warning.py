"""Limitation in what people see, and the collectors' warning six months before it passes.

Dates worked by hand: L110-4 gives 5 years from the due date; an acknowledgment of the debt
(Civil code 2240: a part payment, a promise, a signed plan) starts 5 new years from its day; a
formal notice does not. Collectors are warned 6 months before the limitation date.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from domain.collection import machine
from domain.collection.commands import LateCostsComputed
from domain.collection.records import EventKind, EventRecord
from domain.holds import DisputeOpen, PromiseToPay
from domain.law import InterestSegment, LatePaymentCosts, RateBasis
from domain.lifecycle import PaymentInput
from domain.money import Money
from domain.playbook import load_playbook_named
from tests.domain.collection.driver import Run, start

# Handed over on Monday 2 March 2026, 08:00 UTC.
NOW = datetime(2026, 3, 2, 8, tzinfo=UTC)
# Due 15 October 2021: limitation date 15 October 2026 (+5 years), collectors warned from
# 15 April 2026 (6 months before).
DUE = date(2021, 10, 15)
# One reminder, 20 years after the due date: the invoice only goes overdue, so nothing but
# limitation happens to it.
_DEFAULT = load_playbook_named("default")
QUIET = _DEFAULT.model_copy(
    update={"steps": (_DEFAULT.steps[1].model_copy(update={"offset_days": 7300}),)}
)


def limitation_tasks(run: Run) -> list[EventRecord]:
    return [e for e in run.recorded if e.task is not None and e.task.kind == "limitation"]


def test_the_status_shows_the_limitation_date_and_a_formal_notice_does_not_move_it() -> None:
    run = start(load_playbook_named("default"), DUE, NOW)
    assert machine.status(run.state, run.now).limitation_date == date(2026, 10, 15)
    # Every step of the default playbook is due at once: reminders, then the formal notice.
    run.advance(timedelta(days=20))
    assert "formal_notice" in [s.send.message.template for s in run.sent]
    assert machine.status(run.state, run.now).limitation_date == date(2026, 10, 15)


def test_a_promise_to_pay_acknowledges_the_debt_and_moves_the_date() -> None:
    run = start(QUIET, DUE, NOW)
    run.advance(timedelta(days=1))
    # Recorded on Tuesday 3 March 2026: 5 years from it → 3 March 2031.
    run.command(PromiseToPay(promise_id="P-1", until=date(2026, 3, 20), recorded_by="claire"))
    assert machine.status(run.state, run.now).limitation_date == date(2031, 3, 3)


def test_collectors_are_warned_once_six_months_before_the_limitation_date() -> None:
    run = start(QUIET, DUE, NOW)
    # To Tuesday 14 April 2026, 23:00: the day before the warning.
    run.advance(datetime(2026, 4, 14, 23, tzinfo=UTC) - NOW)
    assert limitation_tasks(run) == []

    run.advance(timedelta(days=1))
    [warning] = limitation_tasks(run)
    assert warning.task is not None
    assert warning.task.title == "Invoice F-1: limitation on 2026-10-15: act or acknowledge"
    assert warning.task.status == "open"
    # Opened on 15 April 2026 (at the day's send time, 09:00 UTC), due on the last day.
    assert warning.at == datetime(2026, 4, 15, 9, tzinfo=UTC)
    assert warning.task.due_at == datetime(2026, 10, 15, 9, tzinfo=UTC)

    # Once per limitation date: months later, still the one task.
    run.advance(timedelta(days=120))
    assert len(limitation_tasks(run)) == 1


def test_an_acknowledgment_answers_the_warning_and_a_new_one_comes_before_the_new_date() -> None:
    run = start(QUIET, DUE, NOW)
    run.advance(datetime(2026, 4, 16, tzinfo=UTC) - NOW)
    assert len(limitation_tasks(run)) == 1
    # A part payment of 100 € received on Monday 4 May 2026 acknowledges the debt: limitation
    # runs to 4 May 2031, and collectors are warned again from 4 November 2030.
    run.now = datetime(2026, 5, 4, 10, tzinfo=UTC)
    run.command(
        PaymentInput(
            reference="VIR-1", amount=Money.of("100.00", "EUR"), received_on=date(2026, 5, 4)
        )
    )
    answered = limitation_tasks(run)[-1]
    assert answered.task is not None and answered.task.status == "done"
    assert answered.task.task_id == "F-1:limitation:2026-10-15"
    assert machine.status(run.state, run.now).limitation_date == date(2031, 5, 4)

    run.advance(datetime(2030, 11, 3, 23, tzinfo=UTC) - run.now)
    assert len(limitation_tasks(run)) == 2
    run.advance(timedelta(days=1))
    newest = limitation_tasks(run)[-1]
    assert newest.task is not None and newest.task.status == "open"
    assert newest.task.title == "Invoice F-1: limitation on 2031-05-04: act or acknowledge"
    assert newest.at == datetime(2030, 11, 4, 9, tzinfo=UTC)


def test_the_warning_is_cancelled_when_the_invoice_is_paid() -> None:
    run = start(QUIET, DUE, NOW)
    run.advance(datetime(2026, 4, 16, tzinfo=UTC) - NOW)
    run.command(PaymentInput(reference="VIR-ALL", amount=Money.of("1200.00", "EUR")))
    cancelled = limitation_tasks(run)[-1]
    assert cancelled.task is not None and cancelled.task.status == "cancelled"
    assert machine.status(run.state, run.now).limitation_date is None


def test_a_dispute_does_not_stop_the_warning() -> None:
    # Limitation runs during a dispute (only an acknowledgment or a court action interrupts
    # it): opened on 2 April 2026, the warning still comes on 15 April 2026.
    run = start(QUIET, DUE, NOW)
    run.advance(datetime(2026, 4, 2, 10, tzinfo=UTC) - NOW)
    run.command(DisputeOpen(dispute_id="D-1", reason="quantity", opened_by="erp"))
    run.advance(timedelta(days=14))
    [warning] = limitation_tasks(run)
    assert warning.at == datetime(2026, 4, 15, 9, tzinfo=UTC)


def test_a_claim_already_time_barred_gets_no_warning() -> None:
    # Due 1 February 2021: barred since 2 February 2026, before this hand-over.
    run = start(QUIET, date(2021, 2, 1), NOW)
    run.advance(timedelta(days=60))
    assert limitation_tasks(run) == []
    assert machine.status(run.state, run.now).limitation_date == date(2026, 2, 1)


def test_an_invoice_on_the_first_rules_is_not_warned() -> None:
    # Histories recorded before the warning existed must replay: edition 1 never warns.
    run = start(QUIET, DUE, NOW)
    run.state = run.state.model_copy(update={"rules": 1})
    run.advance(timedelta(days=60))
    assert limitation_tasks(run) == []
    assert machine.wake_at(run.state, run.now) == run.now + timedelta(days=30)


def test_the_machine_wakes_for_the_warning() -> None:
    run = start(QUIET, DUE, NOW)
    # Ticked on 10 April 2026: the warning (15 April, 09:00) comes before the idle tick.
    run.advance(datetime(2026, 4, 10, 12, tzinfo=UTC) - NOW)
    assert machine.wake_at(run.state, run.now) == datetime(2026, 4, 15, 9, tzinfo=UTC)


# Invoice of 1 200,00 € due 31 March 2025, paid on 30 April 2025: 1-30 April = 30 days at
# 13.15 % (2025-H1: ECB 3.15 % + 10, L441-10 II): 1 200 × 13.15 × 30 / 36 500 = 12.9698…
# → 12.97 €; + 40 € (D441-5) = 52.97 €.
COSTS = LatePaymentCosts(
    due_date=date(2025, 3, 31),
    paid_on=date(2025, 4, 30),
    days_late=30,
    amount=Money.of("1200.00", "EUR"),
    segments=(
        InterestSegment(
            principal=Money.of("1200.00", "EUR"),
            start=date(2025, 4, 1),
            end=date(2025, 4, 30),
            days=30,
            rate=Decimal("13.15"),
            basis=RateBasis.ECB_PLUS_10,
            half_year="2025-H1",
            provisional=False,
        ),
    ),
    interest=Money.of("12.97", "EUR"),
    indemnity=Money.of("40.00", "EUR"),
    total=Money.of("52.97", "EUR"),
    indemnity_in_total=True,
    provisional=False,
)
PAID_LATE = datetime(2025, 4, 30, 10, tzinfo=UTC)


def notices(transition: machine.Transition) -> list[machine.Notify]:
    return [e for e in transition.effects if isinstance(e, machine.Notify)]


def test_paid_late_the_paid_notice_waits_for_the_costs_and_carries_them() -> None:
    run = start(QUIET, date(2025, 3, 31), datetime(2025, 3, 2, 8, tzinfo=UTC))
    run.advance(PAID_LATE - run.now)
    paid = run.command(PaymentInput(reference="VIR-1", amount=Money.of("1200.00", "EUR")))
    assert isinstance(paid, machine.Transition)
    assert any(isinstance(e, machine.ComputeLateCosts) for e in paid.effects)
    assert [n.kind for n in notices(paid)] == []

    computed = machine.apply(run.state, LateCostsComputed(costs=COSTS), run.now)
    assert isinstance(computed, machine.Transition)
    by_kind = {n.kind: n for n in notices(computed)}
    assert sorted(by_kind) == ["late_payment_costs", "paid"]
    notice = by_kind["paid"]
    assert notice.event_id == "F-1:paid:closed"
    assert notice.outstanding == Money.of("0.00", "EUR")
    assert notice.data["interest"] == "12.97"
    assert notice.data["indemnity"] == "40.00"
    assert notice.data["total"] == "52.97"
    assert notice.data["currency"] == "EUR"
    assert notice.data["days_late"] == "30"
    assert notice.data["paid_on"] == "2025-04-30"
    assert notice.data["provisional"] == "false"
    [record] = [
        e.event
        for e in computed.effects
        if isinstance(e, machine.Record) and e.event.kind == EventKind.LATE_PAYMENT_COSTS
    ]
    assert record.late_costs == COSTS


def test_paid_late_without_a_known_rate_the_paid_notice_says_why() -> None:
    run = start(QUIET, date(2025, 3, 31), datetime(2025, 3, 2, 8, tzinfo=UTC))
    run.advance(PAID_LATE - run.now)
    run.command(PaymentInput(reference="VIR-1", amount=Money.of("1200.00", "EUR")))
    computed = machine.apply(run.state, LateCostsComputed(error="no rate for 2025-H1"), run.now)
    assert isinstance(computed, machine.Transition)
    [notice] = [n for n in notices(computed) if n.kind == "paid"]
    assert notice.data == {"late_payment_costs_error": "no rate for 2025-H1"}


def test_on_the_first_rules_paid_goes_out_at_once_as_before() -> None:
    run = start(QUIET, date(2025, 3, 31), datetime(2025, 3, 2, 8, tzinfo=UTC))
    run.advance(PAID_LATE - run.now)
    run.state = run.state.model_copy(update={"rules": 1})
    paid = run.command(PaymentInput(reference="VIR-1", amount=Money.of("1200.00", "EUR")))
    assert isinstance(paid, machine.Transition)
    assert [n.kind for n in notices(paid)] == ["paid"]
    computed = machine.apply(run.state, LateCostsComputed(costs=COSTS), run.now)
    assert isinstance(computed, machine.Transition)
    assert [n.kind for n in notices(computed)] == ["late_payment_costs"]


def test_paid_on_time_the_paid_notice_goes_out_at_once() -> None:
    run = start(QUIET, date(2025, 3, 31), datetime(2025, 3, 2, 8, tzinfo=UTC))
    paid = run.command(PaymentInput(reference="VIR-1", amount=Money.of("1200.00", "EUR")))
    assert isinstance(paid, machine.Transition)
    assert not any(isinstance(e, machine.ComputeLateCosts) for e in paid.effects)
    [notice] = notices(paid)
    assert notice.kind == "paid" and notice.data == {}
