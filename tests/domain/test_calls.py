"""Calls: what follows an outcome, and when a call is due."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from domain.calls import CallNext, CallOutcome, after_call, call_due_at, unreached_streak

N, R, W = CallOutcome.NO_ANSWER, CallOutcome.REACHED, CallOutcome.WRONG_NUMBER


def test_not_reached_three_times_in_a_row_takes_the_fallback() -> None:
    assert after_call([N]) == CallNext.RETRY
    assert after_call([N, N]) == CallNext.RETRY
    assert after_call([N, N, N]) == CallNext.FALLBACK
    # A reached call in between starts the count again.
    assert unreached_streak([N, N, R, N]) == 1
    assert after_call([N, N, R, N]) == CallNext.RETRY
    # The limit is the playbook's.
    assert after_call([N, N], max_unreached=2) == CallNext.FALLBACK


def test_a_wrong_number_takes_the_fallback_at_once_and_other_outcomes_end_the_calls() -> None:
    assert after_call([W]) == CallNext.FALLBACK
    for outcome in (R, CallOutcome.PROMISE, CallOutcome.DISPUTE, CallOutcome.PLAN_REQUESTED):
        assert after_call([N, outcome]) == CallNext.DONE


def test_a_call_is_due_inside_the_debtors_business_hours() -> None:
    paris = ZoneInfo("Europe/Paris")
    # Friday 1 May 2026 is Labour Day in France; Saturday and Sunday follow: the call is due on
    # Monday 4 May at 09:30 in Paris (07:30 UTC, summer time).
    due = call_due_at(datetime(2026, 4, 30, 18, 0, tzinfo=UTC), 0.5, country="FR")
    assert due.astimezone(paris) == datetime(2026, 5, 4, 9, 30, tzinfo=paris)
    # Inside the hours on a business day, it stays as planned.
    inside = datetime(2026, 5, 5, 10, 0, tzinfo=UTC)
    assert call_due_at(inside, 0, country="FR") == inside
