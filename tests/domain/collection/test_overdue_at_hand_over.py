"""An invoice handed over already past its due date is overdue at once, whatever the hour.

Handed over on Wednesday 2 December 2026 at 19:30 UTC, after the driver's 09:00–18:00 send
window; due Sunday 29 November, three days before. The default playbook's courtesy reminder
(before the due date) can only be skipped.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from domain.collection import machine
from domain.collection.records import EventKind
from domain.lifecycle import Stage
from domain.playbook import load_playbook_named
from tests.domain.collection.driver import Run, start

EVENING = datetime(2026, 12, 2, 19, 30, tzinfo=UTC)
DUE = date(2026, 11, 29)


def handed_over(rules: int) -> Run:
    run = start(load_playbook_named("default"), DUE, EVENING)
    run.state = run.state.model_copy(update={"rules": rules})
    run.tick()
    return run


def test_overdue_at_once_and_the_courtesy_reminder_skipped_not_sent() -> None:
    run = handed_over(3)
    assert run.state.stage == Stage.OVERDUE
    kinds = [e.kind for e in run.recorded]
    assert EventKind.STEP_SKIPPED in kinds
    assert kinds.index(EventKind.STEP_SKIPPED) < kinds.index(EventKind.STAGE_CHANGED)
    assert run.sent == []
    # The first overdue reminder still waits for the send window: Thursday 3 December, 09:00.
    upcoming = machine.next_step(run.state, run.now)
    assert upcoming is not None and upcoming.stage == Stage.OVERDUE
    assert upcoming.at == datetime(2026, 12, 3, 9, tzinfo=UTC)


def test_earlier_editions_keep_their_recorded_behaviour() -> None:
    # Invoices started before edition 3 replay as recorded: "upcoming" until the next window.
    run = handed_over(2)
    assert run.state.stage == Stage.UPCOMING
    run.advance(datetime(2026, 12, 3, 9, 1, tzinfo=UTC) - run.now)
    assert run.state.stage == Stage.OVERDUE
