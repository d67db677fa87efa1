"""Texts through the real `twilio` client against a loopback fake of Twilio's Messages API."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.email import OutboxSender, TransientSendError
from activities.messaging import MessagingActivities, SendRequest
from activities.sms import TwilioSmsSender
from config import Settings
from contracts.errors import ErrorType
from domain.money import Money
from domain.playbook import Channel, Tone
from messages import Renderer
from store.engine import transaction
from store.invoices import interactions_of
from store.tables import Debtor
from tests.fakes.twilio_api import FakeTwilio
from tests.store.test_store import seed

MOBILE = "+33612345678"
# Tuesday 3 March 2026, 10:00 in Paris (09:00 UTC): inside the 09:00-18:00 send window.
OPEN = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
# The same day at 19:30 in Paris: the window opens again at 09:00 the next morning.
CLOSED = datetime(2026, 3, 3, 18, 30, tzinfo=UTC)


def request(step: str = "reminder_2") -> SendRequest:
    return SendRequest(
        invoice_number="F-1",
        step_id=step,
        channel=Channel.SMS,
        template="reminder",
        tone=Tone.FIRM,
        planned_at=OPEN,
        as_of=date(2026, 3, 3),
        outstanding=Money.of("1500.50", "EUR"),
    )


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


def with_phone(engine: Engine, phone: str | None = MOBILE) -> None:
    seed(engine)
    with transaction(engine) as session:
        debtor = session.get(Debtor, "C-1")
        assert debtor is not None
        debtor.phone = phone
        session.add(debtor)


def activities(
    engine: Engine, twilio: FakeTwilio, tmp_path: Path, now: datetime = OPEN
) -> MessagingActivities:
    settings = Settings(_env_file=None, data_dir=tmp_path, public_url="https://relance.example")
    sender = TwilioSmsSender(
        account_sid=twilio.account_sid,
        auth_token=twilio.auth_token,
        from_number="+33700000000",
        api_base=twilio.url,
        status_callback=settings.twilio_status_callback_url,
        timeout=1,
    )
    email = OutboxSender(tmp_path / "outbox", settings.email_from)
    return MessagingActivities(
        engine, email, Renderer(), settings, sms_sender=sender, clock=lambda: now
    )


def test_a_text_goes_to_the_debtors_number_once(
    any_engine: Engine, twilio: FakeTwilio, tmp_path: Path
) -> None:
    with_phone(any_engine)
    messaging = activities(any_engine, twilio, tmp_path)
    env = ActivityEnvironment()

    first = env.run(messaging.send_message, request())
    again = env.run(messaging.send_message, request())  # a retried activity

    (sent,) = twilio.messages
    assert sent["to"] == MOBILE
    assert "F-1" in sent["body"] and "1 500,50 €" in sent["body"]
    assert sent["status_callback"] == "https://relance.example/v1/webhooks/twilio"
    assert (first.provider_message_id, again.replayed) == (sent["sid"], True)
    with transaction(any_engine) as session:
        (row,) = interactions_of(session, "F-1")
    assert (row.idempotency_key, row.status, row.provider) == (
        "F-1:reminder_2:sms",
        "sent",
        "twilio",
    )


@pytest.mark.parametrize(
    "fault",
    ["429", "500", "503", "timeout before", "timeout after accepting"],
)
def test_faults_are_retried_and_the_text_is_still_sent_once(
    engine: Engine, twilio: FakeTwilio, tmp_path: Path, fault: str
) -> None:
    with_phone(engine)
    messaging = activities(engine, twilio, tmp_path)
    env = ActivityEnvironment()
    if fault == "timeout before":
        twilio.hang_next(2)
    elif fault == "timeout after accepting":
        # Twilio has the message, but its answer never comes back in time.
        twilio.accept_then_hang(2)
    else:
        twilio.fail_next(int(fault), code=20429 if fault == "429" else None)

    with pytest.raises(TransientSendError):
        env.run(messaging.send_message, request())  # Temporal would retry this attempt
    outcome = env.run(messaging.send_message, request())

    assert len(twilio.messages) == 1
    assert outcome.provider_message_id == twilio.messages[0]["sid"]
    with transaction(engine) as session:
        (row,) = interactions_of(session, "F-1")
    assert (row.status, row.attempts) == ("sent", 2)


def test_a_stopped_number_is_undeliverable_and_never_texted_again(
    engine: Engine, twilio: FakeTwilio, tmp_path: Path
) -> None:
    with_phone(engine)
    twilio.stopped.add(MOBILE)
    messaging = activities(engine, twilio, tmp_path)
    env = ActivityEnvironment()

    with pytest.raises(ApplicationError) as failure:
        env.run(messaging.send_message, request())
    assert failure.value.type == ErrorType.UNDELIVERABLE and failure.value.non_retryable
    with transaction(engine) as session:
        debtor = session.get(Debtor, "C-1")
        assert debtor is not None and debtor.sms_stopped_at is not None

    # The next step's text is refused before reaching Twilio.
    calls = twilio.requests
    with pytest.raises(ApplicationError) as second:
        env.run(messaging.send_message, request("reminder_3"))
    assert second.value.type == ErrorType.UNDELIVERABLE
    assert "STOP" in str(second.value) and twilio.requests == calls


def test_outside_the_send_window_it_waits_for_the_window_to_open(
    engine: Engine, twilio: FakeTwilio, tmp_path: Path
) -> None:
    with_phone(engine)
    messaging = activities(engine, twilio, tmp_path, now=CLOSED)

    with pytest.raises(ApplicationError) as failure:
        ActivityEnvironment().run(messaging.send_message, request())

    assert failure.value.type == ErrorType.OUTSIDE_SEND_WINDOW
    assert not failure.value.non_retryable
    # 19:30 in Paris to 09:00 the next morning (Wednesday 4 March 2026, a business day).
    assert failure.value.next_retry_delay is not None
    assert failure.value.next_retry_delay.total_seconds() == 13.5 * 3600
    assert twilio.messages == []


def test_a_debtor_without_a_number_is_undeliverable(
    engine: Engine, twilio: FakeTwilio, tmp_path: Path
) -> None:
    with_phone(engine, phone=None)
    with pytest.raises(ApplicationError) as failure:
        ActivityEnvironment().run(activities(engine, twilio, tmp_path).send_message, request())
    assert failure.value.type == ErrorType.UNDELIVERABLE
    assert "no phone number" in str(failure.value)


def test_a_worker_that_died_after_twilio_took_the_text_does_not_send_it_again(
    engine: Engine, twilio: FakeTwilio, tmp_path: Path
) -> None:
    with_phone(engine)
    messaging = activities(engine, twilio, tmp_path)
    ActivityEnvironment().run(messaging.send_message, request())
    # As if the worker had died between Twilio's answer and the store's mark.
    with transaction(engine) as session:
        (row,) = interactions_of(session, "F-1")
        row.status, row.attempts, row.provider_message_id = "pending", 0, None
        session.add(row)
    retried = ActivityEnvironment()
    retried.info = dataclasses.replace(retried.info, attempt=2)

    outcome = retried.run(messaging.send_message, request())

    assert len(twilio.messages) == 1
    assert outcome.replayed and outcome.provider_message_id == twilio.messages[0]["sid"]
