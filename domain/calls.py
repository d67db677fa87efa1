"""Phone calls by a collector: what a call can end with, and what follows.

A `phone` step of a playbook opens a call task with a script. The collector closes it with an
outcome; a debtor not reached is called again, up to the playbook's limit, and then the
playbook's next channel takes over; a wrong number goes to the next channel at once (calling
it again reaches the same stranger).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from enum import StrEnum

from domain.calendar import SendWindow, next_send_time

# Calls are placed during office hours, a little narrower than the messages' send window:
# nobody answers an accounts-payable line at 08:55 or 17:55.
BUSINESS_HOURS = SendWindow(start=time(9, 30), end=time(17, 30))
# "Not reached three times -> the next channel."
DEFAULT_MAX_UNREACHED = 3


class CallOutcome(StrEnum):
    REACHED = "reached"
    # Not reached: no answer, voicemail, busy, the person is away.
    NO_ANSWER = "no_answer"
    WRONG_NUMBER = "wrong_number"
    PROMISE = "promise"
    DISPUTE = "dispute"
    PLAN_REQUESTED = "plan_requested"


class CallNext(StrEnum):
    """What the collection does after a call's outcome."""

    # Nothing more by phone on this step: the playbook goes on (a promise, a dispute and a
    # plan request have their own effects, opened by the API).
    DONE = "done"
    # Call again: another task, the next business day.
    RETRY = "retry"
    # Give up on the phone: the step's fallback channel(s) take over.
    FALLBACK = "fallback"


def unreached_streak(outcomes: Sequence[CallOutcome]) -> int:
    """How many calls in a row, counting back from the last one, reached nobody."""
    streak = 0
    for outcome in reversed(outcomes):
        if outcome != CallOutcome.NO_ANSWER:
            break
        streak += 1
    return streak


def after_call(
    outcomes: Sequence[CallOutcome], max_unreached: int = DEFAULT_MAX_UNREACHED
) -> CallNext:
    """The rule, from the outcomes of a step's calls so far (oldest first)."""
    if not outcomes:
        return CallNext.RETRY
    last = outcomes[-1]
    if last == CallOutcome.WRONG_NUMBER:
        return CallNext.FALLBACK
    if last == CallOutcome.NO_ANSWER:
        return CallNext.FALLBACK if unreached_streak(outcomes) >= max_unreached else CallNext.RETRY
    return CallNext.DONE


def call_due_at(
    opened_at: datetime,
    days: float,
    *,
    country: str,
    timezone: str | None = None,
    subdivision: str | None = None,
) -> datetime:
    """When a call task is due: `days` after it opened, moved into the debtor's business
    hours (their time zone, business days, public holidays)."""
    return next_send_time(
        opened_at + timedelta(days=days),
        country=country,
        timezone=timezone,
        window=BUSINESS_HOURS,
        subdivision=subdivision,
    )


def call_task_id(invoice_number: str, step_id: str, attempt: int) -> str:
    """`<invoice>:<step>:call` for the first call (as `domain.holds.task_id` builds it), then
    `<invoice>:<step>:call:<n>` for the n-th: each retry is a task of its own."""
    base = f"{invoice_number}:{step_id}:call"
    return base if attempt <= 1 else f"{base}:{attempt}"
