"""Delivering a message: never after a payment, never twice, and a person decides when a crash
left its outcome unknown. On SQLite and PostgreSQL, with the real sendgrid client against the
local fake of SendGrid's API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from threading import Barrier, Thread

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.delivery import DeliveryActivities
from activities.email import OutgoingEmail, SendGridSender, SendReceipt
from activities.messaging import MessagingActivities
from config import Settings
from contracts.errors import ErrorType
from contracts.invoice import DeliveryRequest, Snapshot
from domain.collection.commands import SendResult
from domain.collection.machine import ESCALATING
from domain.collection.state import Message
from domain.lifecycle import InvoiceStatus, NextStep, PaymentResult, Stage
from domain.money import Money
from domain.playbook import Channel, Tone
from messages import Renderer
from store.engine import transaction
from store.invoices import interactions_of
from store.messages import sent_messages_of
from store.tables import Invoice
from store.timeline import acknowledge_payment, apply_status
from tests.fakes import FakeSendGrid
from tests.store.test_store import seed

PLANNED = datetime(2026, 3, 4, 8, tzinfo=UTC)


@pytest.fixture
def sendgrid() -> Iterator[FakeSendGrid]:
    with FakeSendGrid(api_key="SG.test") as fake:
        yield fake


def activities(engine: Engine, sendgrid: FakeSendGrid, tmp_path: Path) -> DeliveryActivities:
    settings = Settings(
        _env_file=None, data_dir=tmp_path, sendgrid_api_key="SG.test", sendgrid_host=sendgrid.url
    )
    sender = SendGridSender("SG.test", sendgrid.url, settings.email_from, timeout=2)
    return DeliveryActivities(engine, MessagingActivities(engine, sender, Renderer(), settings))


def request(
    number: str = "F-1",
    *,
    step: str = "reminder_1",
    template: str = "reminder",
    stage: Stage = Stage.OVERDUE,
    revision: int = 3,
    next_step: NextStep | None = None,
) -> DeliveryRequest:
    return DeliveryRequest(
        invoice_number=number,
        debtor_id="C-1",
        message=Message(
            step_id=step,
            channel=Channel.EMAIL,
            template=template,
            tone=Tone.FIRM,
            wanted_in=ESCALATING,
            stage=stage,
        ),
        planned_at=PLANNED,
        as_of=date(2026, 3, 4),
        outstanding=Money.of("1500.50", "EUR"),
        snapshot=Snapshot(
            invoice_number=number,
            status=InvoiceStatus(
                number=number,
                stage=stage,
                outstanding=Money.of("1500.50", "EUR"),
                revision=revision,
                next_step=next_step,
            ),
        ),
    )


def rows(engine: Engine, number: str = "F-1") -> list[tuple[str, str]]:
    with transaction(engine) as session:
        return [(r.idempotency_key, r.status) for r in interactions_of(session, number)]


def test_a_retry_after_the_payment_was_acknowledged_sends_nothing(
    any_engine: Engine, sendgrid: FakeSendGrid, tmp_path: Path
) -> None:
    seed(any_engine)
    delivery = activities(any_engine, sendgrid, tmp_path)
    env = ActivityEnvironment()
    # The first attempt meets a SendGrid outage: Temporal will retry it.
    sendgrid.fail_next(503)
    with pytest.raises(Exception, match="503"):
        env.run(delivery.deliver, request())
    # Meanwhile the back office reports the payment, and the API acknowledges it.
    paid = PaymentResult(
        reference="VIR-1",
        amount=Money.of("1500.50", "EUR"),
        outstanding=Money.of("0", "EUR"),
        stage=Stage.PAID,
        revision=5,
    )
    acknowledge_payment(any_engine, "F-1", paid, None)

    outcome = env.run(delivery.deliver, request())

    assert outcome.result == SendResult.NOT_WANTED
    assert sendgrid.messages == []
    assert rows(any_engine) == [("F-1:reminder_1:email", "cancelled")]


def test_a_lost_completion_does_not_send_twice(
    any_engine: Engine, sendgrid: FakeSendGrid, tmp_path: Path
) -> None:
    seed(any_engine)
    delivery = activities(any_engine, sendgrid, tmp_path)
    env = ActivityEnvironment()
    first = env.run(delivery.deliver, request())
    again = env.run(delivery.deliver, request())  # what a retry would do

    assert (first.result, again.result) == (SendResult.SENT, SendResult.SENT)
    assert len(sendgrid.messages) == 1
    assert rows(any_engine) == [("F-1:reminder_1:email", "sent")]


def test_a_message_marked_sent_always_has_its_legal_copy(
    any_engine: Engine, sendgrid: FakeSendGrid, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mark and the copy commit together: the store failing while it keeps the copy leaves
    the reminder to go out again (better twice than never), never "sent" with no copy."""
    seed(any_engine)
    delivery = activities(any_engine, sendgrid, tmp_path)
    env = ActivityEnvironment()

    def store_fails(*args: object, **kwargs: object) -> None:
        raise OperationalError("INSERT INTO sent_message", {}, Exception("disk I/O error"))

    monkeypatch.setattr("activities.messaging.record_sent_message", store_fails)
    with pytest.raises(OperationalError):
        env.run(delivery.deliver, request())
    assert rows(any_engine) == [("F-1:reminder_1:email", "sending")]

    monkeypatch.undo()
    assert env.run(delivery.deliver, request()).result == SendResult.SENT
    assert rows(any_engine) == [("F-1:reminder_1:email", "sent")]
    with transaction(any_engine) as session:
        [copy] = sent_messages_of(session, "F-1")
    assert copy.to_email == "ap@acme.example"
    assert copy.subject == sendgrid.messages[-1].subject
    assert len(sendgrid.messages) == 2  # the reminder went out again: its first copy was lost


class DiesAfterHandingOver:
    """The provider takes the message, then the worker dies before hearing back."""

    name = "sendgrid"

    def __init__(self, inner: SendGridSender) -> None:
        self.inner = inner
        self.dead = True

    def send(self, email: OutgoingEmail) -> SendReceipt:
        receipt = self.inner.send(email)
        if self.dead:
            self.dead = False
            raise SystemExit("worker killed")
        return receipt


@pytest.mark.parametrize(
    ("step", "template", "stage", "copies"),
    [
        # A reminder whose outcome is unknown goes out again (better twice than never).
        ("reminder_1", "reminder", Stage.OVERDUE, 2),
        # A formal notice is never sent blindly a second time: a person checks first.
        ("formal_notice", "formal_notice", Stage.FORMAL_NOTICE, 1),
    ],
)
def test_a_crash_after_the_provider_took_it_follows_the_stated_rule(
    any_engine: Engine,
    sendgrid: FakeSendGrid,
    tmp_path: Path,
    step: str,
    template: str,
    stage: Stage,
    copies: int,
) -> None:
    seed(any_engine)
    delivery = activities(any_engine, sendgrid, tmp_path)
    messaging = delivery._messaging
    messaging._sender = DiesAfterHandingOver(messaging._sender)  # type: ignore[arg-type]
    env = ActivityEnvironment()
    wanted = request(step=step, template=template, stage=stage)
    with pytest.raises(SystemExit):
        env.run(delivery.deliver, wanted)
    assert rows(any_engine) == [(f"F-1:{step}:email", "sending")]

    if copies == 1:
        with pytest.raises(ApplicationError) as unknown:
            env.run(delivery.deliver, wanted)
        assert unknown.value.type == ErrorType.OUTCOME_UNKNOWN
        assert unknown.value.non_retryable
        assert rows(any_engine) == [(f"F-1:{step}:email", "unknown")]
    else:
        assert env.run(delivery.deliver, wanted).result == SendResult.SENT
        assert rows(any_engine) == [(f"F-1:{step}:email", "sent")]
    assert len(sendgrid.messages) == copies


def test_a_debtor_gets_one_email_a_day_listing_the_invoices_due_together(
    any_engine: Engine, sendgrid: FakeSendGrid, tmp_path: Path
) -> None:
    for number in ("F-1", "F-2", "F-3"):
        seed(any_engine, number)
    delivery = activities(any_engine, sendgrid, tmp_path)
    env = ActivityEnvironment()
    # F-2's step falls due with F-1's; F-3's not until the next day.
    due_together = NextStep(
        step_id="reminder_1", stage=Stage.OVERDUE, at=PLANNED, message_key="F-2:reminder_1:email"
    )
    later = NextStep(
        step_id="reminder_1",
        stage=Stage.OVERDUE,
        at=datetime(2026, 3, 5, 8, tzinfo=UTC),
        message_key="F-3:reminder_1:email",
    )
    with transaction(any_engine) as session:
        apply_status(session, request("F-2", next_step=due_together).snapshot.status)
        apply_status(session, request("F-3", next_step=later).snapshot.status)

    first = env.run(delivery.deliver, request("F-1"))
    second = env.run(delivery.deliver, request("F-2"))
    third = env.run(delivery.deliver, request("F-3"))

    assert (first.result, second.result, third.result) == (
        SendResult.SENT,
        SendResult.INCLUDED,
        SendResult.DEFERRED,
    )
    assert third.next_day == date(2026, 3, 5)
    (message,) = sendgrid.messages
    text = message.contents.get("text/plain", "")
    assert "F-1" in text and "F-2" in text and "F-3" not in text
    assert rows(any_engine, "F-2") == [("F-2:reminder_1:email", "sent")]
    assert rows(any_engine, "F-3") == []


def test_the_older_snapshot_never_overwrites_the_newer(any_engine: Engine) -> None:
    seed(any_engine)
    newer = request(stage=Stage.PAID, revision=7).snapshot.status
    older = request(stage=Stage.OVERDUE, revision=6).snapshot.status
    barrier = Barrier(2)

    def write(status: InvoiceStatus) -> None:
        barrier.wait()
        with transaction(any_engine) as session:
            apply_status(session, status)

    # Two writers at once (the API's acknowledgment and the workflow's record), both orders.
    for first, second in ((newer, older), (older, newer)):
        threads = [Thread(target=write, args=(s,)) for s in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with transaction(any_engine) as session:
            invoice = session.get(Invoice, "F-1")
            assert invoice is not None
            assert (invoice.stage, invoice.revision) == ("paid", 7)
