"""The machine's `deliver` activity sends texts and letters through their providers, under its
own reservation: once each, with faults, and a formal notice's letter is resent after a worker
died only because its provider resumes instead of posting again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.testing import ActivityEnvironment

from activities.delivery import DeliveryActivities
from activities.email import OutboxSender, TransientSendError
from activities.letters.maileva import MailevaClient
from activities.messaging import MessagingActivities
from activities.sms import TwilioSmsSender
from config import Settings
from contracts.invoice import DeliveryRequest, Snapshot
from domain.collection.commands import SendResult
from domain.collection.machine import ESCALATING
from domain.collection.state import Message
from domain.lifecycle import InvoiceStatus, Stage
from domain.money import Money
from domain.playbook import Channel, Tone
from messages import Renderer
from store.engine import transaction
from store.invoices import interactions_of
from store.letters import Letter
from tests.activities.test_letters import CREDITOR, with_address
from tests.activities.test_sms import OPEN, with_phone
from tests.fakes.maileva_api import FakeMaileva
from tests.fakes.twilio_api import FakeTwilio


def request(channel: Channel, step: str, template: str, stage: Stage) -> DeliveryRequest:
    return DeliveryRequest(
        invoice_number="F-1",
        debtor_id="C-1",
        message=Message(
            step_id=step,
            channel=channel,
            template=template,
            tone=Tone.FIRM,
            wanted_in=ESCALATING,
            stage=stage,
        ),
        planned_at=datetime(2026, 3, 3, 9, tzinfo=UTC),
        as_of=date(2026, 3, 31),
        outstanding=Money.of("1500.50", "EUR"),
        snapshot=Snapshot(
            invoice_number="F-1",
            status=InvoiceStatus(
                number="F-1", stage=stage, outstanding=Money.of("1500.50", "EUR"), revision=3
            ),
        ),
    )


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def maileva() -> Iterator[FakeMaileva]:
    with FakeMaileva() as fake:
        yield fake


def delivery(
    engine: Engine, tmp_path: Path, twilio: FakeTwilio, maileva: FakeMaileva
) -> DeliveryActivities:
    settings = Settings(_env_file=None, data_dir=tmp_path, creditor_address=CREDITOR)
    messaging = MessagingActivities(
        engine,
        OutboxSender(tmp_path / "outbox", settings.email_from),
        Renderer(),
        settings,
        sms_sender=TwilioSmsSender(
            account_sid=twilio.account_sid,
            auth_token=twilio.auth_token,
            from_number="+33700000000",
            api_base=twilio.url,
            timeout=1,
        ),
        postal=MailevaClient(
            api_base=maileva.url,
            auth_url=f"{maileva.url}/token",
            client_id=maileva.client_id,
            client_secret=maileva.client_secret,
            username=maileva.username,
            password=maileva.password,
            timeout=1,
        ),
        clock=lambda: OPEN,
    )
    return DeliveryActivities(engine, messaging)


def test_a_text_goes_out_once_through_deliver_despite_a_lost_answer(
    engine: Engine, tmp_path: Path, twilio: FakeTwilio, maileva: FakeMaileva
) -> None:
    with_phone(engine)
    activities = delivery(engine, tmp_path, twilio, maileva)
    sms = request(Channel.SMS, "reminder_2", "reminder", Stage.OVERDUE)
    twilio.accept_then_hang(2)

    with pytest.raises(TransientSendError):
        ActivityEnvironment().run(activities.deliver, sms)
    outcome = ActivityEnvironment().run(activities.deliver, sms)

    assert outcome.result == SendResult.SENT
    assert len(twilio.messages) == 1
    with transaction(engine) as session:
        (row,) = interactions_of(session, "F-1")
    assert (row.idempotency_key, row.status) == ("F-1:reminder_2:sms", "sent")


def test_a_formal_notice_letter_is_posted_once_through_deliver(
    engine: Engine, tmp_path: Path, twilio: FakeTwilio, maileva: FakeMaileva
) -> None:
    with_address(engine)
    activities = delivery(engine, tmp_path, twilio, maileva)
    letter = request(Channel.LETTER, "formal_notice", "formal_notice", Stage.FORMAL_NOTICE)
    maileva.pass_next(5)
    maileva.act_then_hang(2)  # the submit's answer is lost: Maileva has posted it

    with pytest.raises(TransientSendError):
        ActivityEnvironment().run(activities.deliver, letter)
    # The formal notice is never resent blindly; Maileva's sending is resumed instead.
    outcome = ActivityEnvironment().run(activities.deliver, letter)

    assert outcome.result == SendResult.SENT
    assert len(maileva.posted) == 1 and len(maileva.sendings) == 1
    with transaction(engine) as session:
        row = session.get(Letter, "F-1:formal_notice:letter")
    assert row is not None and row.registered and row.tracking_number


def test_a_debtor_without_a_number_makes_the_text_undeliverable_not_the_collection(
    engine: Engine, tmp_path: Path, twilio: FakeTwilio, maileva: FakeMaileva
) -> None:
    with_phone(engine, phone=None)
    activities = delivery(engine, tmp_path, twilio, maileva)

    outcome = ActivityEnvironment().run(
        activities.deliver, request(Channel.SMS, "reminder_2", "reminder", Stage.OVERDUE)
    )

    # Undeliverable, not failed: the invoice takes the step's fallback channels.
    assert outcome.result == SendResult.UNDELIVERABLE
    assert outcome.reason == "the debtor has no phone number"
    assert twilio.requests == 0


def test_a_number_twilio_refuses_for_good_makes_the_text_undeliverable(
    engine: Engine, tmp_path: Path, twilio: FakeTwilio, maileva: FakeMaileva
) -> None:
    with_phone(engine)
    activities = delivery(engine, tmp_path, twilio, maileva)
    # Twilio's 21211: "Invalid 'To' phone number".
    twilio.fail_next(400, code=21211)

    outcome = ActivityEnvironment().run(
        activities.deliver, request(Channel.SMS, "reminder_2", "reminder", Stage.OVERDUE)
    )

    assert outcome.result == SendResult.UNDELIVERABLE
    assert "Twilio refuses the number" in outcome.reason


def test_a_letter_to_a_debtor_without_an_address_is_undeliverable(
    engine: Engine, tmp_path: Path, twilio: FakeTwilio, maileva: FakeMaileva
) -> None:
    with_phone(engine)  # a number, but no postal address
    activities = delivery(engine, tmp_path, twilio, maileva)

    outcome = ActivityEnvironment().run(
        activities.deliver, request(Channel.LETTER, "reminder_3", "reminder", Stage.OVERDUE)
    )

    assert outcome.result == SendResult.UNDELIVERABLE
    assert outcome.reason == "the debtor has no postal address"
    assert maileva.posted == []
