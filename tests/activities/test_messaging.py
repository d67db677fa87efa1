"""The send activity against the real sendgrid client and a local fake of SendGrid's API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.email import SendGridSender, TransientSendError
from activities.messaging import MessagingActivities, SendRequest
from config import Settings
from domain.money import Money
from domain.playbook import Channel, Recipient, Tone
from messages import Renderer
from store.engine import transaction
from store.invoices import interactions_of
from tests.fakes import FakeSendGrid
from tests.store.test_store import seed


def request(step: str = "reminder_1", template: str = "reminder") -> SendRequest:
    return SendRequest(
        invoice_number="F-1",
        step_id=step,
        channel=Channel.EMAIL,
        template=template,
        tone=Tone.FIRM,
        planned_at=datetime(2026, 3, 4, 9, tzinfo=UTC),
        as_of=date(2026, 3, 31),
        outstanding=Money.of("1500.50", "EUR"),
    )


@pytest.fixture
def sendgrid() -> Iterator[FakeSendGrid]:
    with FakeSendGrid(api_key="SG.test") as fake:
        yield fake


def messaging(engine: Engine, sendgrid: FakeSendGrid, tmp_path: Path) -> MessagingActivities:
    settings = Settings(
        _env_file=None, data_dir=tmp_path, sendgrid_api_key="SG.test", sendgrid_host=sendgrid.url
    )
    sender = SendGridSender("SG.test", sendgrid.url, settings.email_from, timeout=2)
    return MessagingActivities(engine, sender, Renderer(), settings)


def test_a_message_reaches_sendgrid_once_with_opaque_custom_args(
    any_engine: Engine, sendgrid: FakeSendGrid, tmp_path: Path
) -> None:
    seed(any_engine)
    activities = messaging(any_engine, sendgrid, tmp_path)
    env = ActivityEnvironment()
    first = env.run(activities.send_message, request())
    again = env.run(activities.send_message, request())  # what a retry would do

    assert (first.replayed, again.replayed) == (False, True)
    assert again.provider_message_id == first.provider_message_id
    (message,) = sendgrid.messages
    assert message.to_emails == ["ap@acme.example"]
    assert "F-1" in (message.subject or "")
    # No personal data in custom args: SendGrid stores them and echoes them in its events.
    assert message.custom_args == {"invoice": "F-1", "step": "reminder_1"}
    with transaction(any_engine) as session:
        (row,) = interactions_of(session, "F-1")
    assert (row.status, row.provider, row.attempts) == ("sent", "sendgrid", 1)


def test_a_rejected_message_is_recorded_and_not_retried(
    any_engine: Engine, sendgrid: FakeSendGrid, tmp_path: Path
) -> None:
    seed(any_engine)
    activities = messaging(any_engine, sendgrid, tmp_path)
    sendgrid.fail_next(400, message="Does not contain a valid address.")
    with pytest.raises(ApplicationError) as failure:
        ActivityEnvironment().run(activities.send_message, request())
    assert failure.value.non_retryable
    assert failure.value.type == "PermanentSendError"
    with transaction(any_engine) as session:
        (row,) = interactions_of(session, "F-1")
    assert row.status == "failed"
    assert row.error and "valid address" in row.error


def test_an_outage_is_retried_and_then_sends_once(
    any_engine: Engine, sendgrid: FakeSendGrid, tmp_path: Path
) -> None:
    seed(any_engine)
    activities = messaging(any_engine, sendgrid, tmp_path)
    sendgrid.fail_next(503)
    with pytest.raises(TransientSendError):
        ActivityEnvironment().run(activities.send_message, request())
    assert sendgrid.messages == []
    outcome = ActivityEnvironment().run(activities.send_message, request())
    assert outcome.status == "sent"
    assert len(sendgrid.messages) == 1
    with transaction(any_engine) as session:
        (row,) = interactions_of(session, "F-1")
    assert (row.status, row.attempts) == ("sent", 2)


def test_the_formal_notice_states_interest_and_indemnity(
    engine: Engine, sendgrid: FakeSendGrid, tmp_path: Path
) -> None:
    seed(engine)
    activities = messaging(engine, sendgrid, tmp_path)
    ActivityEnvironment().run(activities.send_message, request("formal_notice", "formal_notice"))
    (message,) = sendgrid.messages
    text = message.contents["text/plain"]
    # 1500.50 € late 30 days (2 to 31 March 2026) at 12.15 %: 1500.50 × 0.1215 × 30 / 365.
    assert "14,98" in text
    assert "40,00" in text
    assert "L441-10" in text


def test_internal_recipients_get_their_own_message(
    engine: Engine, sendgrid: FakeSendGrid, tmp_path: Path
) -> None:
    seed(engine)
    activities = messaging(engine, sendgrid, tmp_path)
    mediator = request("mediation", "mediation_file").model_copy(
        update={"recipient": Recipient.MEDIATOR}
    )
    ActivityEnvironment().run(activities.send_message, mediator)
    (message,) = sendgrid.messages
    assert message.to_emails == ["mediation@example.com"]
    with transaction(engine) as session:
        (row,) = interactions_of(session, "F-1")
    assert row.idempotency_key == "F-1:mediation:email:mediator"
