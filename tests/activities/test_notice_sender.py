"""Back-office notices from the store's outbox: written once with their facts, posted signed,
retried on the activity's schedule, given up after three days with the reason kept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from activities.notice_sender import NoticeSender
from domain.signing import verify_signature
from store import notices
from store.engine import transaction
from store.tables import BackofficeNotice
from tests.activities.test_notify import SECRET, make_event, settings_for
from tests.fakes.backoffice import Receiver, running_receiver


class Clock:
    """The sender's clock, moved by the test (it starts at the real now: notices are written
    with the real time)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as state:
        yield state


def kept(engine: Engine) -> BackofficeNotice:
    with Session(engine) as session:
        [row] = session.exec(select(BackofficeNotice)).all()
        return row


def enqueue(engine: Engine) -> None:
    with transaction(engine) as session:
        notices.enqueue(session, [make_event()])


def sender(engine: Engine, clock: Clock, *urls: str) -> NoticeSender:
    return NoticeSender(engine, settings_for(*urls), clock=clock)


def test_a_notice_written_twice_by_a_retried_activity_is_kept_once(any_engine: Engine) -> None:
    enqueue(any_engine)
    enqueue(any_engine)
    with Session(any_engine) as session:
        assert notices.pending(session) == 1


def test_the_sender_posts_it_signed_and_marks_it_done(
    any_engine: Engine, receiver: Receiver
) -> None:
    enqueue(any_engine)
    clock = Clock()

    assert sender(any_engine, clock, receiver.url("/erp")).send_due() == 1

    [request] = receiver.to("/erp")
    assert json.loads(request.body)["event_id"] == make_event().event_id
    assert verify_signature(SECRET, request.headers["Relance-Signature"], request.body)
    row = kept(any_engine)
    assert row.done_at is not None and row.failure is None
    assert row.delivered == [receiver.url("/erp")]
    # Done: a later pass posts nothing again.
    assert sender(any_engine, clock, receiver.url("/erp")).send_due() == 0
    assert len(receiver.to("/erp")) == 1


def test_not_now_is_retried_after_ten_seconds_then_doubling_and_only_where_it_failed(
    any_engine: Engine, receiver: Receiver
) -> None:
    enqueue(any_engine)
    receiver.statuses["/down"] = [503, 503]
    clock = Clock()
    start = clock.now
    urls = (receiver.url("/up"), receiver.url("/down"))

    sender(any_engine, clock, *urls).send_due()
    row = kept(any_engine)
    assert row.done_at is None and row.attempts == 1
    assert "HTTP 503" in (row.failure or "")

    clock.now = start + timedelta(seconds=9)
    assert sender(any_engine, clock, *urls).send_due() == 0  # not due yet
    clock.now = start + timedelta(seconds=10)
    assert sender(any_engine, clock, *urls).send_due() == 1  # 503 again: next in 20 s
    clock.now += timedelta(seconds=19)
    assert sender(any_engine, clock, *urls).send_due() == 0
    clock.now += timedelta(seconds=1)
    assert sender(any_engine, clock, *urls).send_due() == 1

    # The receiver that took it the first time was never asked again.
    assert len(receiver.to("/up")) == 1
    assert len(receiver.to("/down")) == 3
    row = kept(any_engine)
    assert row.done_at is not None and row.failure is None
    assert sorted(row.delivered) == sorted(urls)


def test_a_rejection_ends_it_with_the_reason_kept(any_engine: Engine, receiver: Receiver) -> None:
    enqueue(any_engine)
    receiver.statuses["/erp"] = [400]

    sender(any_engine, Clock(), receiver.url("/erp")).send_due()

    row = kept(any_engine)
    assert row.done_at is not None
    assert row.failure is not None and "rejected" in row.failure and "HTTP 400" in row.failure


def test_a_receiver_down_for_three_days_is_given_up_with_the_reason_kept(
    any_engine: Engine, receiver: Receiver
) -> None:
    enqueue(any_engine)
    receiver.statuses["/erp"] = [503] * 200
    clock = Clock()
    created = kept(any_engine).created_at
    clock.now = created.replace(tzinfo=created.tzinfo or UTC)
    deadline = clock.now + timedelta(days=3)
    while clock.now < deadline:
        sender(any_engine, clock, receiver.url("/erp")).send_due()
        clock.now += timedelta(hours=1)  # the longest wait between two attempts
    sender(any_engine, clock, receiver.url("/erp")).send_due()

    row = kept(any_engine)
    assert row.done_at is not None
    assert row.failure is not None and row.failure.startswith("given up after 3 days")
    # 10 s, 20 s ... doubling to the hour, then hourly: about 80 attempts in three days.
    assert 60 <= row.attempts <= 90
