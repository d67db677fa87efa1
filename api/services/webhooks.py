"""SendGrid's Event Webhook: what became of the emails we sent.

A request is trusted only if SendGrid signed it: an ECDSA (P-256, SHA-256) signature of the
timestamp header followed by the raw body, checked with the verification key SendGrid shows
(RELANCE_SENDGRID_WEBHOOK_PUBLIC_KEY) by the `sendgrid` package's own helper. The helper checks no
age, so the timestamp must also be within RELANCE_SENDGRID_WEBHOOK_TOLERANCE_SECONDS of now, or a
captured request could be replayed for ever. There is no unsigned mode, not even in development:
a key pair is one command away (see the tests), and an endpoint that changes the collection
process must not be open to whoever finds it.

Each event is then:
1. de-duplicated on SendGrid's `sg_event_id` (table `inbound_event`): SendGrid delivers at least
   once, and a replay must change nothing;
2. recorded on the interaction it is about, found by the opaque ids we sent as custom args
   (`invoice`, `step`) and by the recipient's address, through `activities.messaging.message_key`;
   for a debtor's consolidated message (custom arg `batch`), on each invoice's interaction in it.
   A status never goes back (`DELIVERY_RANK`): a late "delivered" after a "bounce" keeps the
   bounce, an "open" after "delivered" says more and replaces it;
3. for a bounce or a drop of the debtor's current address: the debtor's address is marked invalid
   and, after the store's transaction committed, each invoice's workflow gets the `delivery_event`
   signal, which makes it use the playbook's fallback.

Events about other mail (no custom args, an unknown invoice, an address that is no longer the
debtor's) are recorded as seen and otherwise ignored.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import cast

from anyio import to_thread
from pydantic import ValidationError
from sendgrid.helpers.eventwebhook import EventWebhook, EventWebhookHeader
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.client import Client, RPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from activities.messaging import message_key
from api.errors import ApiError, Forbidden, ServerMisconfigured, Unavailable
from api.services.invoices import rpc_timeout
from api.webhook_schemas import MAX_BATCH_KEY, MAX_NUMBER, SendGridEvent, WebhookReceipt
from config import Settings
from domain.collection.commands import LetterReceived
from domain.holds import UNDELIVERABLE, DeliveryEvent, DeliveryKind
from domain.playbook import Channel, Recipient
from store.engine import transaction
from store.tables import Debtor, InboundEvent, Interaction, Invoice, utcnow
from workflows.client import invoice_handle
from workflows.invoice import InvoiceWorkflow

log = logging.getLogger("relance.api")

SOURCE = "sendgrid"
# X-Twilio-Email-Event-Webhook-Signature and -Timestamp, as the sendgrid package names them.
SIGNATURE_HEADER: str = EventWebhookHeader.SIGNATURE
TIMESTAMP_HEADER: str = EventWebhookHeader.TIMESTAMP
# SendGrid batches events into posts far smaller than this; a bigger body is not from SendGrid.
MAX_BODY_BYTES = 4 * 1024 * 1024

# What an interaction's delivery status may become: a higher rank replaces a lower one, never the
# reverse (events arrive out of order: a "delivered" may come after the "bounce" of the same
# message). Failures rank highest: an address that bounced is the fact that matters. Equal ranks
# keep the first (the first open is the evidence of receipt).
DELIVERY_RANK: dict[str, int] = {
    "processed": 10,
    "deferred": 20,
    "delivered": 30,
    "open": 40,
    "click": 50,
    "unsubscribe": 60,
    "spamreport": 70,
    "dropped": 80,
    "bounce": 90,
}

# The events the workflow acts on (it switches to the fallback channel); the others are evidence,
# kept in the store, and would only grow the workflow's history.
SIGNALLED: frozenset[str] = UNDELIVERABLE

_MAX_REASON = 1000
# Addresses inside SMTP answers ("550 5.1.1 <x@y>: unknown user") stay in the store, which holds
# the address anyway, but not in workflow histories.
_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:@]+@[^\s<>()\[\]\"',;:@]+")


class MalformedBody(ApiError):
    status_code = 400


class PayloadTooLarge(ApiError):
    status_code = 413


# ------------------------------------------------------------------ the request


async def read_body(chunks: AsyncIterator[bytes], declared_length: str | None) -> bytes:
    """The raw body, exactly as sent (the signature covers these bytes), up to MAX_BODY_BYTES."""
    too_large = PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    if declared_length and declared_length.isdigit() and int(declared_length) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_large
    return bytes(body)


@lru_cache(maxsize=4)
def _verifier(public_key: str) -> EventWebhook:
    # SendGrid shows the key as base64 DER; someone may paste it as PEM, or wrapped.
    bare = re.sub(r"-----(BEGIN|END) PUBLIC KEY-----|\s", "", public_key)
    try:
        return EventWebhook(bare)
    except Exception as err:  # each sendgrid release's crypto backend raises its own errors
        raise ServerMisconfigured(
            "RELANCE_SENDGRID_WEBHOOK_PUBLIC_KEY is not a valid public key: paste the "
            "verification key SendGrid shows in its Event Webhook settings"
        ) from err


def verify_request(
    settings: Settings,
    *,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    now: float,
) -> str:
    """The body as text, if SendGrid signed it recently; otherwise the error that says why not."""
    if not settings.sendgrid_webhook_public_key:
        raise Unavailable(
            "webhook not configured: set RELANCE_SENDGRID_WEBHOOK_PUBLIC_KEY to the "
            "verification key of SendGrid's signed Event Webhook"
        )
    if not signature or not timestamp:
        raise Forbidden(f"a signed request needs the {SIGNATURE_HEADER} and {TIMESTAMP_HEADER}")
    try:
        signed_at = int(timestamp)
    except ValueError:
        raise Forbidden(f"{TIMESTAMP_HEADER} is not a unix time") from None
    tolerance = settings.sendgrid_webhook_tolerance_seconds
    if abs(now - signed_at) > tolerance:
        raise Forbidden(
            f"the request was signed {now - signed_at:+.0f} s from now, outside the tolerated "
            f"{tolerance} s: a stale or replayed request, or a clock far off"
        )
    verifier = _verifier(settings.sendgrid_webhook_public_key)
    try:
        # The helper takes text and signs its UTF-8 bytes: decoding is exact for any UTF-8
        # body, and a body that is not UTF-8 was not SendGrid's.
        text = body.decode("utf-8")
        valid = bool(verifier.verify_signature(text, signature, timestamp))
    except Exception:  # bad base64 or DER in the header: whatever the backend raises, refuse
        valid = False
    if not valid:
        raise Forbidden("the signature does not match the body and timestamp")
    return text


def parse_events(text: str) -> list[SendGridEvent | None]:
    """The events; None for an element that is not one (it is counted, then skipped).

    A malformed element does not fail the request: SendGrid would retry the whole batch, good
    events included, for a day.
    """
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as err:
        raise MalformedBody(
            f"the body is not JSON ({err.msg}): expected an array of events"
        ) from err
    if not isinstance(payload, list):
        raise MalformedBody(f"the body is a JSON {type(payload).__name__}, not an array of events")
    events: list[SendGridEvent | None] = []
    for item in payload:
        try:
            events.append(SendGridEvent.model_validate(item))
        except ValidationError:
            events.append(None)
    return events


# ------------------------------------------------------------------ the store


@dataclass
class RecordedBatch:
    new: int = 0
    # (invoice number, signal) for the workflows, once the transaction has committed.
    signals: list[tuple[str, DeliveryEvent]] = field(default_factory=list)


def apply_delivery(interaction: Interaction, kind: str, at: datetime, reason: str | None) -> bool:
    """Record `kind` unless the interaction already has a status that ranks as high."""
    current = DELIVERY_RANK.get(interaction.delivery_status or "", 0)
    if DELIVERY_RANK[kind] <= current:
        return False
    interaction.delivery_status = kind
    interaction.delivery_at = at
    interaction.delivery_reason = reason
    return True


def record_events(
    engine: Engine, settings: Settings, events: Sequence[SendGridEvent | None]
) -> RecordedBatch:
    """All of a batch's store writes, in one transaction."""
    try:
        with transaction(engine) as session:
            return _record(session, settings, events)
    except IntegrityError:
        # SendGrid retried while we were still on the first delivery, and that one committed
        # the same event ids first: once more, and they are replays now.
        with transaction(engine) as session:
            return _record(session, settings, events)


def _record(
    session: Session, settings: Settings, events: Sequence[SendGridEvent | None]
) -> RecordedBatch:
    batch = RecordedBatch()
    ids = {event.sg_event_id for event in events if event is not None}
    seen: set[str] = set()
    if ids:
        known = session.exec(select(InboundEvent.id).where(col(InboundEvent.id).in_(ids)))
        seen.update(known.all())
    now = utcnow()
    for event in events:
        if event is None:
            continue
        replay = event.sg_event_id in seen
        if not replay:
            seen.add(event.sg_event_id)
            batch.new += 1
            number = event.invoice if event.invoice and len(event.invoice) <= MAX_NUMBER else None
            session.add(
                InboundEvent(
                    id=event.sg_event_id,
                    source=SOURCE,
                    kind=event.event[:24],
                    received_at=now,
                    invoice_number=number,
                )
            )
        for interaction, debtor in _targets(session, settings, event):
            if not replay:
                apply_delivery(interaction, event.event, event.occurred_at, _reason(event))
                session.add(interaction)
                if (
                    debtor is not None
                    and event.event in UNDELIVERABLE
                    and not debtor.email_invalid_at
                ):
                    debtor.email_invalid_at = event.occurred_at
                    debtor.updated_at = now
                    session.add(debtor)
            # A replayed bounce is signalled again: if Temporal was unreachable the first time,
            # this is how the workflow still learns of it. Workflows ignore an id they have seen.
            if debtor is not None and event.event in SIGNALLED:
                batch.signals.append((interaction.invoice_number, _signal_of(event, interaction)))
    return batch


def _targets(
    session: Session, settings: Settings, event: SendGridEvent
) -> list[tuple[Interaction, Debtor | None]]:
    """The interactions the event is about, each with its debtor if the email went to the
    debtor's current address (None: it went to someone else)."""
    if event.event not in DELIVERY_RANK:
        return []
    if event.batch:
        return _batch_targets(session, event)
    if not event.invoice or not event.step or len(event.invoice) > MAX_NUMBER:
        return []
    invoice = session.get(Invoice, event.invoice)
    if invoice is None:
        return []
    debtor = session.get(Debtor, invoice.debtor_id)
    recipient = _recipient(event.email, debtor, settings)
    if recipient is None:
        return []
    key = message_key(invoice.number, event.step, Channel.EMAIL, recipient)
    interaction = session.exec(
        select(Interaction).where(Interaction.idempotency_key == key)
    ).first()
    if interaction is None:
        return []
    return [(interaction, debtor if recipient == Recipient.DEBTOR else None)]


def _batch_targets(
    session: Session, event: SendGridEvent
) -> list[tuple[Interaction, Debtor | None]]:
    """A consolidated message: one email, one interaction per invoice it listed."""
    if not event.batch or len(event.batch) > MAX_BATCH_KEY:
        return []
    rows = session.exec(
        select(Interaction).where(
            Interaction.batch_key == event.batch,
            Interaction.channel == Channel.EMAIL.value,
            Interaction.recipient == Recipient.DEBTOR.value,
        )
    ).all()
    if not rows:
        return []
    # The debtor comes from our own rows, not from the event's `debtor` argument.
    invoice = session.get(Invoice, rows[0].invoice_number)
    debtor = session.get(Debtor, invoice.debtor_id) if invoice else None
    if debtor is None or not _same_address(event.email, debtor.email):
        return []
    return [(row, debtor) for row in rows]


def _recipient(address: str | None, debtor: Debtor | None, settings: Settings) -> Recipient | None:
    """Whom a step's email went to, by its address.

    One step may email the debtor and, say, the mediator, with the same custom args: only the
    address tells them apart, and a mediator's bounce must not invalidate the debtor's address.
    An address that is none of them (the back office has changed the debtor's since) matches
    nothing: its bounce says nothing about the current address.
    """
    if debtor is not None and _same_address(address, debtor.email):
        return Recipient.DEBTOR
    others = {
        Recipient.MEDIATOR: settings.mediator_email,
        Recipient.LEGAL_PARTNER: settings.legal_partner_email,
        Recipient.COLLECTORS: settings.collectors_email,
    }
    for recipient, configured in others.items():
        if _same_address(address, configured):
            return recipient
    return None


def _same_address(reported: str | None, ours: str) -> bool:
    return reported is not None and reported.strip().casefold() == ours.strip().casefold()


def _reason(event: SendGridEvent) -> str | None:
    match event.event:
        case "bounce":
            text = event.reason or event.status or "bounced"
            text = f"blocked: {text}" if event.type == "blocked" else text
        case "dropped":
            text = event.reason or "dropped"
        case "deferred":
            text = event.response or event.reason or "deferred"
        case _:
            return None
    return text[:_MAX_REASON]


def _signal_of(event: SendGridEvent, interaction: Interaction) -> DeliveryEvent:
    reason = _reason(event)
    return DeliveryEvent(
        event_id=event.sg_event_id,
        kind=cast(DeliveryKind, event.event),
        step_id=interaction.step_id,
        channel=Channel.EMAIL.value,
        occurred_at=event.occurred_at,
        reason=_ADDRESS.sub("<address>", reason) if reason else None,
    )


# ------------------------------------------------------------------ the workflows


async def signal_workflows(
    client: Client,
    settings: Settings,
    signals: Sequence[tuple[str, DeliveryEvent | LetterReceived]],
) -> None:
    """Tell each invoice's workflow; a workflow that has ended needs telling no more."""
    failed: list[str] = []
    for number, event in signals:
        handle = invoice_handle(client, number)
        try:
            if isinstance(event, LetterReceived):
                await handle.signal(
                    InvoiceWorkflow.letter_received, event, rpc_timeout=rpc_timeout(settings)
                )
            else:
                await handle.signal(
                    InvoiceWorkflow.delivery_event, event, rpc_timeout=rpc_timeout(settings)
                )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                log.info(
                    "delivery event %s (%s): invoice %s has no running workflow; recorded only",
                    event.event_id,
                    getattr(event, "kind", "received"),
                    number,
                )
                continue
            failed.append(number)
            log.warning(
                "delivery event %s: signal to invoice %s failed: %s",
                event.event_id,
                number,
                err.status,
            )
        except RPCTimeoutOrCancelledError:
            failed.append(number)
            log.warning("delivery event %s: signal to invoice %s timed out", event.event_id, number)
    if failed:
        # The store has the events; a non-2xx makes SendGrid post them again, and the replayed
        # bounces are signalled again (see _record).
        raise Unavailable(
            f"events recorded, but the workflows of {len(failed)} invoice(s) could not be told: "
            "Temporal did not answer; retry the same request"
        )


async def receive_sendgrid(
    engine: Engine,
    client: Client,
    settings: Settings,
    *,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
) -> WebhookReceipt:
    text = verify_request(
        settings, signature=signature, timestamp=timestamp, body=body, now=time.time()
    )
    events = parse_events(text)
    batch = await to_thread.run_sync(record_events, engine, settings, events)
    await signal_workflows(client, settings, batch.signals)
    skipped = sum(event is None for event in events)
    log.info(
        "SendGrid: %d event(s), %d new, %d malformed, %d signalled",
        len(events),
        batch.new,
        skipped,
        len(batch.signals),
    )
    return WebhookReceipt(received=len(events), new=batch.new)
