"""SendGrid's signed Event Webhook, as SendGrid posts it: a real P-256 key pair made here signs
the timestamp and the raw body; the app verifies with the public key in its settings, records
the events on the interactions the worker really sent, and signals the real workflow.

Days last one second and the invoices are handed over 50 days late, so the worker sends its
first reminders within seconds (through the outbox, with the custom args SendGrid would echo).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal
from email import policy
from email.parser import BytesParser
from typing import Any, get_args

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.errors import Forbidden, Unavailable
from api.services.webhooks import (
    DELIVERY_RANK,
    MalformedBody,
    apply_delivery,
    parse_events,
    record_events,
    verify_request,
)
from config import Settings
from domain.holds import DeliveryKind
from store.engine import transaction
from store.tables import Debtor, InboundEvent, Interaction, Invoice
from tests.api.conftest import Api, eventually, invoice_body, serve
from workflows import contract

URL = "/v1/webhooks/sendgrid"
SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
DEBTOR_EMAIL = "compta@dupont.example"


class SendGridSigner:
    """What SendGrid does: ECDSA P-256 / SHA-256 over timestamp + body, base64 DER."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())

    @property
    def public_key(self) -> str:
        # As SendGrid shows it: base64 of the DER SubjectPublicKeyInfo, no PEM armour.
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def headers(self, body: bytes, at: int | None = None) -> dict[str, str]:
        timestamp = str(int(time.time()) if at is None else at)
        signature = self.key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            SIGNATURE: base64.b64encode(signature).decode(),
            TIMESTAMP: timestamp,
            "Content-Type": "application/json",
        }


@pytest.fixture(scope="module")
def signer() -> SendGridSigner:
    return SendGridSigner()


@pytest.fixture
def day_seconds() -> float:
    return 1.0


@pytest.fixture
def settings(settings: Settings, signer: SendGridSigner) -> Settings:
    return settings.model_copy(update={"sendgrid_webhook_public_key": signer.public_key})


def sg_event(kind: str, invoice: str, step: str, **extra: Any) -> dict[str, Any]:
    return {
        "email": DEBTOR_EMAIL,
        "timestamp": int(time.time()),
        "event": kind,
        "sg_event_id": f"sg-{uuid.uuid4().hex}",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "invoice": invoice,
        "step": step,
        **extra,
    }


async def post_events(
    api: Api, signer: SendGridSigner, events: list[Any], at: int | None = None
) -> Any:
    body = json.dumps(events).encode()
    return await api.http.post(URL, content=body, headers=signer.headers(body, at))


def late_invoice(number: str) -> dict[str, Any]:
    today = date.today()
    return invoice_body(
        number,
        issue_date=(today - timedelta(days=80)).isoformat(),
        due_date=(today - timedelta(days=50)).isoformat(),
    )


async def sent_email(api: Api, number: str) -> tuple[str, str]:
    """The (invoice, step) custom args of the first email the worker sent to the debtor."""

    async def probe() -> tuple[str, str] | None:
        for path in sorted(api.outbox.glob("*.eml")):
            message = BytesParser(policy=policy.default).parse(path.open("rb"))
            if message["X-Relance-Arg-invoice"] == number and DEBTOR_EMAIL in str(message["To"]):
                return str(message["X-Relance-Arg-invoice"]), str(message["X-Relance-Arg-step"])
        return None

    return await eventually(probe, within=30, what=f"an email for {number}")


def interaction(api: Api, number: str, step: str) -> Interaction:
    with Session(api.engine) as session:
        return session.exec(
            select(Interaction).where(
                Interaction.invoice_number == number,
                Interaction.step_id == step,
                Interaction.channel == "email",
                Interaction.recipient == "debtor",
            )
        ).one()


def debtor(api: Api, number: str) -> Debtor:
    with Session(api.engine) as session:
        found = session.get(Debtor, f"CUST-{number}")
        assert found is not None
        return found


async def signalled(client: Client, number: str) -> list[dict[str, Any]]:
    """The `delivery_event` signals in the invoice's workflow history."""
    handle = client.get_workflow_handle(contract.workflow_id(number))
    found = []
    async for event in handle.fetch_history_events():
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            continue
        attributes = event.workflow_execution_signaled_event_attributes
        if attributes.signal_name == "delivery_event":
            found.append(json.loads(attributes.input.payloads[0].data))
    return found


# ------------------------------------------------------------------ recorded and signalled


async def test_delivered_is_recorded_on_the_interaction(api: Api, signer: SendGridSigner) -> None:
    assert (await api.hand_over(late_invoice("INV-SG-1"))).status_code == 201
    number, step = await sent_email(api, "INV-SG-1")

    response = await post_events(
        api,
        signer,
        [sg_event("processed", number, step), sg_event("delivered", number, step)],
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"received": 2, "new": 2}
    row = interaction(api, number, step)
    assert row.delivery_status == "delivered"
    assert row.delivery_at is not None
    assert debtor(api, number).email_invalid_at is None


async def test_a_bounce_invalidates_the_address_and_signals_the_workflow(
    api: Api, signer: SendGridSigner, dev_env: WorkflowEnvironment
) -> None:
    assert (await api.hand_over(late_invoice("INV-SG-2"))).status_code == 201
    number, step = await sent_email(api, "INV-SG-2")
    bounce = sg_event(
        "bounce",
        number,
        step,
        type="bounce",
        status="5.1.1",
        reason=f"550 5.1.1 <{DEBTOR_EMAIL}>: Recipient address rejected: User unknown",
    )

    response = await post_events(api, signer, [bounce])

    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1, "new": 1}
    row = interaction(api, number, step)
    assert row.delivery_status == "bounce"
    assert row.delivery_reason is not None and "User unknown" in row.delivery_reason
    assert debtor(api, number).email_invalid_at is not None

    signals = await signalled(dev_env.client, number)
    assert [(s["event_id"], s["kind"], s["step_id"]) for s in signals] == [
        (bounce["sg_event_id"], "bounce", step)
    ]
    # The workflow's history gets no personal data: the address in the SMTP answer is masked.
    assert DEBTOR_EMAIL not in signals[0]["reason"]

    # A late "delivered" for the same message does not undo the bounce.
    late = await post_events(api, signer, [sg_event("delivered", number, step)])
    assert late.json() == {"received": 1, "new": 1}
    assert interaction(api, number, step).delivery_status == "bounce"


async def test_a_bounce_switches_the_workflow_to_the_fallback_channel(
    api: Api, signer: SendGridSigner
) -> None:
    assert (await api.hand_over(late_invoice("INV-SG-6"))).status_code == 201
    number, step = await sent_email(api, "INV-SG-6")

    response = await post_events(api, signer, [sg_event("dropped", number, step)])
    assert response.json() == {"received": 1, "new": 1}

    # The playbook's fallback (a letter by default) replaces email for this step and later ones.
    async def other_channels() -> set[str]:
        with Session(api.engine) as session:
            rows = session.exec(
                select(Interaction.channel).where(
                    Interaction.invoice_number == number, Interaction.channel != "email"
                )
            ).all()
        return set(rows)

    channels = await eventually(other_channels, within=30, what="a message on the fallback")
    assert channels <= {"letter", "phone", "sms"}


async def test_a_replayed_event_changes_nothing(
    api: Api, signer: SendGridSigner, dev_env: WorkflowEnvironment
) -> None:
    assert (await api.hand_over(late_invoice("INV-SG-3"))).status_code == 201
    number, step = await sent_email(api, "INV-SG-3")
    events = [sg_event("delivered", number, step), sg_event("open", number, step)]
    first = await post_events(api, signer, events)
    assert first.json() == {"received": 2, "new": 2}
    before = interaction(api, number, step)
    assert before.delivery_status == "open"

    # SendGrid retries the same batch (newly signed); one event is new.
    again = await post_events(api, signer, [*events, sg_event("click", number, step)])

    assert again.status_code == 200, again.text
    assert again.json() == {"received": 3, "new": 1}
    after = interaction(api, number, step)
    assert after.delivery_status == "click"
    with Session(api.engine) as session:
        ids = session.exec(
            select(InboundEvent.id).where(InboundEvent.invoice_number == number)
        ).all()
    assert len(ids) == 3
    # Neither an open nor a click is the workflow's business: nothing was signalled.
    assert await signalled(dev_env.client, number) == []


async def test_a_bounce_at_another_recipient_leaves_the_debtor_alone(
    api: Api, signer: SendGridSigner, dev_env: WorkflowEnvironment
) -> None:
    assert (await api.hand_over(late_invoice("INV-SG-4"))).status_code == 201
    number, step = await sent_email(api, "INV-SG-4")

    # The same custom args, but the collectors' inbox (or an address the debtor no longer has).
    response = await post_events(
        api,
        signer,
        [
            sg_event("bounce", number, step, email=api.settings.collectors_email),
            sg_event("dropped", number, step, email="old-address@dupont.example"),
        ],
    )

    assert response.json() == {"received": 2, "new": 2}
    assert interaction(api, number, step).delivery_status is None
    assert debtor(api, number).email_invalid_at is None
    assert await signalled(dev_env.client, number) == []


async def test_events_for_other_mail_are_recorded_and_ignored(
    api: Api, signer: SendGridSigner
) -> None:
    unknown = sg_event("bounce", "NOT-OURS-1", "reminder_1")
    no_args = sg_event("delivered", "x", "y")
    del no_args["invoice"], no_args["step"]
    odd_kind = sg_event("group_resubscribe", "NOT-OURS-1", "reminder_1")

    response = await post_events(api, signer, [unknown, no_args, odd_kind, {"no": "id"}, 42])

    assert response.status_code == 200, response.text
    assert response.json() == {"received": 5, "new": 3}
    with Session(api.engine) as session:
        rows = session.exec(
            select(InboundEvent).where(
                col(InboundEvent.id).in_(
                    [unknown["sg_event_id"], no_args["sg_event_id"], odd_kind["sg_event_id"]]
                )
            )
        ).all()
    assert {(r.kind, r.invoice_number) for r in rows} == {
        ("bounce", "NOT-OURS-1"),
        ("delivered", None),
        ("group_resubscribe", "NOT-OURS-1"),
    }


async def test_a_bounce_after_the_collection_ended_is_still_recorded(
    api: Api, signer: SendGridSigner, dev_env: WorkflowEnvironment
) -> None:
    assert (await api.hand_over(late_invoice("INV-SG-5"))).status_code == 201
    number, step = await sent_email(api, "INV-SG-5")
    paid = await api.post(
        f"/v1/invoices/{number}/payments",
        {"reference": "VIR-SG-5", "amount": "1200.00", "currency": "EUR"},
    )
    assert paid.status_code == 200, paid.text
    handle = dev_env.client.get_workflow_handle(contract.workflow_id(number))

    async def closed() -> bool:
        return (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

    await eventually(closed, within=30, what="the workflow's end")

    # Signalling an ended workflow fails; that is no reason to make SendGrid retry.
    response = await post_events(api, signer, [sg_event("bounce", number, step)])

    assert response.status_code == 200, response.text
    assert interaction(api, number, step).delivery_status == "bounce"
    assert debtor(api, number).email_invalid_at is not None


# ------------------------------------------------------------------ refused


async def test_a_signature_by_another_key_is_403(api: Api) -> None:
    body = json.dumps([sg_event("delivered", "INV-X", "reminder_1")]).encode()
    response = await api.http.post(URL, content=body, headers=SendGridSigner().headers(body))
    assert response.status_code == 403
    assert "signature" in response.json()["detail"]


async def test_missing_or_garbled_signature_headers_are_403(
    api: Api, signer: SendGridSigner
) -> None:
    body = json.dumps([sg_event("delivered", "INV-X", "reminder_1")]).encode()
    good = signer.headers(body)

    unsigned = await api.http.post(URL, content=body, headers={"Content-Type": "application/json"})
    garbled = await api.http.post(URL, content=body, headers={**good, SIGNATURE: "not base64!"})
    not_a_time = await api.http.post(URL, content=body, headers={**good, TIMESTAMP: "yesterday"})

    assert unsigned.status_code == 403
    assert SIGNATURE in unsigned.json()["detail"]
    assert garbled.status_code == 403
    assert not_a_time.status_code == 403


async def test_a_stale_or_future_timestamp_is_403_even_when_signed(
    api: Api, signer: SendGridSigner
) -> None:
    tolerance = api.settings.sendgrid_webhook_tolerance_seconds
    now = int(time.time())
    events = [sg_event("bounce", "INV-X", "reminder_1")]

    stale = await post_events(api, signer, events, at=now - tolerance - 60)
    future = await post_events(api, signer, events, at=now + tolerance + 60)
    recent = await post_events(api, signer, events, at=now - tolerance + 60)

    assert stale.status_code == 403
    assert "stale" in stale.json()["detail"]
    assert future.status_code == 403
    assert recent.status_code == 200


async def test_a_body_changed_after_signing_is_403(api: Api, signer: SendGridSigner) -> None:
    body = json.dumps([sg_event("delivered", "INV-X", "reminder_1")]).encode()
    headers = signer.headers(body)
    tampered = body.replace(b"delivered", b"bounce")

    response = await api.http.post(URL, content=tampered, headers=headers)
    # The same JSON, re-serialised with other spacing, is not what was signed either.
    reformatted = json.dumps(json.loads(body), indent=2).encode()
    respaced = await api.http.post(URL, content=reformatted, headers=headers)

    assert response.status_code == 403
    assert respaced.status_code == 403


async def test_a_signed_body_that_is_not_an_array_of_events_is_400(
    api: Api, signer: SendGridSigner
) -> None:
    for body, says in [(b"{not json", "not JSON"), (b'{"event": "open"}', "not an array")]:
        response = await api.http.post(URL, content=body, headers=signer.headers(body))
        assert response.status_code == 400
        assert says in response.json()["detail"]


async def test_without_a_key_the_webhook_is_503(
    dev_env: WorkflowEnvironment, engine: Engine, settings: Settings, signer: SendGridSigner
) -> None:
    unconfigured = settings.model_copy(update={"sendgrid_webhook_public_key": None})
    app = create_app(unconfigured, client=dev_env.client, engine=engine)
    body = json.dumps([sg_event("delivered", "INV-X", "reminder_1")]).encode()
    async with serve(app) as http:
        response = await http.post(URL, content=body, headers=signer.headers(body))
    assert response.status_code == 503
    assert "not configured" in response.json()["detail"]


# ------------------------------------------------------------------ the rules, without servers


def test_every_delivery_kind_has_a_rank() -> None:
    assert set(DELIVERY_RANK) == set(get_args(DeliveryKind))


@pytest.mark.parametrize(
    ("first", "then", "kept"),
    [
        ("delivered", "bounce", "bounce"),
        ("bounce", "delivered", "bounce"),
        ("dropped", "processed", "dropped"),
        ("deferred", "delivered", "delivered"),
        ("delivered", "deferred", "delivered"),
        ("open", "delivered", "open"),
        ("delivered", "open", "open"),
    ],
)
def test_a_delivery_status_never_goes_back(first: str, then: str, kept: str) -> None:
    from datetime import UTC, datetime

    row = Interaction(
        idempotency_key="I:s:email", invoice_number="I", step_id="s", channel="email",
        recipient="debtor", template="t",
    )  # fmt: skip
    apply_delivery(row, first, datetime(2026, 1, 1, tzinfo=UTC), None)
    apply_delivery(row, then, datetime(2026, 1, 2, tzinfo=UTC), None)
    assert row.delivery_status == kept


def test_verify_request_explains_each_refusal(signer: SendGridSigner) -> None:
    settings = Settings(_env_file=None, sendgrid_webhook_public_key=signer.public_key)
    body = b"[]"
    headers = signer.headers(body, at=1_767_225_600)
    signature, timestamp = headers[SIGNATURE], headers[TIMESTAMP]

    assert (
        verify_request(
            settings, signature=signature, timestamp=timestamp, body=body, now=1_767_225_600
        )
        == "[]"
    )
    with pytest.raises(Forbidden, match="outside the tolerated 300 s"):
        verify_request(
            settings, signature=signature, timestamp=timestamp, body=body, now=1_767_225_901
        )
    with pytest.raises(Forbidden, match="does not match"):
        verify_request(
            settings, signature=signature, timestamp=timestamp, body=b"[ ]", now=1_767_225_600
        )
    with pytest.raises(Forbidden, match="does not match"):
        verify_request(
            settings, signature=signature, timestamp=timestamp, body=b"\xff", now=1_767_225_600
        )
    with pytest.raises(Unavailable, match="not configured"):
        verify_request(
            Settings(_env_file=None),
            signature=signature,
            timestamp=timestamp,
            body=body,
            now=1_767_225_600,
        )


def test_a_key_pasted_as_pem_is_accepted(signer: SendGridSigner) -> None:
    pem = signer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = Settings(_env_file=None, sendgrid_webhook_public_key=pem.decode())
    headers = signer.headers(b"[]", at=1_767_225_600)
    assert verify_request(
        settings,
        signature=headers[SIGNATURE],
        timestamp=headers[TIMESTAMP],
        body=b"[]",
        now=1_767_225_600,
    )


def test_a_consolidated_message_is_recorded_on_each_invoice_it_listed(engine: Engine) -> None:
    """One email for several invoices (the debtor's mailbox): custom args `debtor` and `batch`."""
    batch_key = "debtor:CUST-B:email:2026-03-02"
    with transaction(engine) as session:
        session.add(
            Debtor(id="CUST-B", name="B SARL", email=DEBTOR_EMAIL, country="FR", language="fr")
        )
        for number in ("INV-B1", "INV-B2", "INV-B3"):
            session.add(
                Invoice(
                    number=number, debtor_id="CUST-B", amount=Decimal("100"), currency="EUR",
                    issue_date=date(2026, 1, 1), due_date=date(2026, 2, 1), fingerprint="f",
                    playbook="default", playbook_version=1, outstanding=Decimal("100"),
                )
            )  # fmt: skip
        session.flush()
        for number, batch in (("INV-B1", batch_key), ("INV-B2", batch_key), ("INV-B3", None)):
            session.add(
                Interaction(
                    idempotency_key=f"{number}:reminder_1:email", invoice_number=number,
                    step_id="reminder_1", channel="email", recipient="debtor",
                    template="consolidated", batch_key=batch,
                )
            )  # fmt: skip
    bounce = sg_event("bounce", "x", "y", debtor="CUST-B", batch=batch_key)
    del bounce["invoice"], bounce["step"]
    settings = Settings(_env_file=None)

    recorded = record_events(engine, settings, parse_events(json.dumps([bounce])))

    assert recorded.new == 1
    assert sorted((number, s.step_id) for number, s in recorded.signals) == [
        ("INV-B1", "reminder_1"),
        ("INV-B2", "reminder_1"),
    ]
    with Session(engine) as session:
        statuses = {
            row.invoice_number: row.delivery_status for row in session.exec(select(Interaction))
        }
        marked = session.get(Debtor, "CUST-B")
    assert statuses == {"INV-B1": "bounce", "INV-B2": "bounce", "INV-B3": None}
    assert marked is not None and marked.email_invalid_at is not None

    # Replayed: the store is left alone, and the bounce is told to the workflows again.
    again = record_events(engine, settings, parse_events(json.dumps([bounce])))
    assert again.new == 0
    assert len(again.signals) == 2


def test_parse_events_skips_what_is_not_an_event() -> None:
    events = parse_events(json.dumps([sg_event("open", "I", "s"), "x", {"event": "open"}]))
    assert [e is not None for e in events] == [True, False, False]
    with pytest.raises(MalformedBody, match="not an array"):
        parse_events('"hello"')
