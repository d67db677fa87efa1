"""What becomes of texts, letters and calls, and the fallback when they do not reach the debtor.

- Twilio posts each text's status (`StatusCallback`) and the debtor's replies (the number's
  messaging webhook) here. A request is trusted only with a valid `X-Twilio-Signature`: the
  HMAC-SHA1 of the full URL and the sorted form fields, keyed with the auth token, checked by
  the `twilio` package's own `RequestValidator`.
- Maileva posts a notification when a registered letter changes (accepted, deposit proof,
  acknowledgment of receipt received...), authenticated with the HTTP Basic credentials given in
  the notification subscription. The notification names the resource only: the letter's state
  is then read from Maileva's API (tracking number, La Poste's last delivery status code).
- A person records what the post said of a letter (the returned AR card, a "not claimed"
  notice) through `POST /v1/letters/{key}/events`.

Every outcome that means the debtor was not reached (a hard SMS failure, a STOP reply, a letter
returned or not claimed, a call that never got through) is recorded, then sent to the invoice's
workflow as the same `delivery_event` an email bounce produces ("bounce" or "dropped", with the
channel), so the playbook's fallback takes over. Each provider event is recorded once
(`inbound_event`): a replay changes nothing in the store and is signalled again (workflows
ignore an event id they have seen).

A registered letter's acknowledgment of receipt goes to the workflow as `letter_received`, with
the formal notice's deadline when the playbook runs it from receipt (domain/notice.py): the
invoice records it and its next step waits for that deadline.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from datetime import UTC, date, datetime
from typing import Any, cast
from urllib.parse import parse_qsl

from anyio import to_thread
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client
from twilio.request_validator import RequestValidator

from activities.letters.maileva import MailevaClient, status_of_code
from activities.letters.provider import build_postal_provider
from api.channel_schemas import LetterEventCreate, LetterOutcome, LetterRecorded
from api.errors import ApiError, Forbidden, NotFound, Unavailable
from api.services.debtors import playbook_named
from api.services.webhooks import apply_delivery, signal_workflows
from config import Settings
from domain.collection.commands import LetterReceived
from domain.holds import DeliveryEvent, DeliveryKind
from domain.notice import notice_deadline as deadline_of
from domain.playbook import Channel, Playbook
from store.engine import transaction
from store.letters import FINAL, UNDELIVERED, Letter, LetterPublic, LetterStatus
from store.tables import Debtor, InboundEvent, Interaction, Invoice, utcnow

log = logging.getLogger("relance.api")

TWILIO_SIGNATURE = "X-Twilio-Signature"
# Twilio's own opt-out keywords, and the French ones ("ARRET", the CNIL's usual "STOP" aside).
STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "ARRET", "ARRÊT"}
)
# Twilio error codes of a text that will never reach this number (unknown or unreachable
# destination, landline, blocked, opted out); others (30001 queue overflow...) are not the
# number's fault.
HARD_SMS_ERRORS = frozenset({"21610", "21211", "21614", "30003", "30005", "30006", "30004"})
# Twilio's statuses as the delivery statuses the store ranks (api/services/webhooks.py).
_SMS_STATUS_KIND: dict[str, str] = {
    "queued": "processed",
    "accepted": "processed",
    "sending": "processed",
    "sent": "processed",
    "delivered": "delivered",
    "read": "open",
    "undelivered": "bounce",
    "failed": "bounce",
}


class BadRequest(ApiError):
    status_code = 400


Signals = list[tuple[str, DeliveryEvent | LetterReceived]]


def _record_once(session: Session, event_id: str, source: str, kind: str, number: str) -> bool:
    """True if the event is new (and now recorded)."""
    if session.get(InboundEvent, event_id) is not None:
        return False
    session.add(
        InboundEvent(id=event_id, source=source, kind=kind[:24], invoice_number=number[:64])
    )
    return True


# ------------------------------------------------------------------ Twilio


def verify_twilio(settings: Settings, signature: str | None, params: dict[str, str]) -> None:
    url = settings.twilio_status_callback_url
    if not settings.twilio_auth_token or not url:
        raise Unavailable(
            "Twilio callbacks not configured: set RELANCE_TWILIO_AUTH_TOKEN and "
            "RELANCE_PUBLIC_URL (the URL Twilio posts to is part of what it signs)"
        )
    if not signature:
        raise Forbidden(f"a Twilio request carries {TWILIO_SIGNATURE}")
    validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
    if not validator.validate(url, params, signature):
        raise Forbidden("the Twilio signature does not match this URL and these fields")


def parse_form(body: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError as err:
        raise BadRequest("the body is not UTF-8 form data") from err


def record_twilio(engine: Engine, params: dict[str, str]) -> Signals:
    if params.get("MessageStatus") and params.get("MessageSid"):
        return _record_status(engine, params)
    if params.get("Body") is not None and params.get("From"):
        return _record_reply(engine, params)
    raise BadRequest("neither a message status nor an incoming message")


def _record_status(engine: Engine, params: dict[str, str]) -> Signals:
    sid, status = params["MessageSid"], params["MessageStatus"].lower()
    error = params.get("ErrorCode") or None
    kind = _SMS_STATUS_KIND.get(status)
    signals: Signals = []
    if kind is None:
        return signals
    now = utcnow()
    with transaction(engine) as session:
        interaction = session.exec(
            select(Interaction).where(
                Interaction.provider == "twilio", Interaction.provider_message_id == sid
            )
        ).first()
        if interaction is None:
            return signals  # not ours (another application's text on the same account)
        event_id = f"twilio:{sid}:{status}"
        new = _record_once(session, event_id, "twilio", status, interaction.invoice_number)
        if new and apply_delivery(
            interaction, kind, now, f"Twilio error {error}" if error else None
        ):
            session.add(interaction)
        if kind == "bounce" and error in HARD_SMS_ERRORS:
            invoice = session.get(Invoice, interaction.invoice_number)
            debtor = session.get(Debtor, invoice.debtor_id) if invoice else None
            if debtor is not None and not debtor.sms_stopped_at:
                debtor.sms_stopped_at = now
                session.add(debtor)
            signals.append(
                (
                    interaction.invoice_number,
                    _event(event_id, "bounce", interaction.step_id, Channel.SMS, error),
                )
            )
    return signals


def _record_reply(engine: Engine, params: dict[str, str]) -> Signals:
    words = params.get("Body", "").strip().upper().split()
    if not words or words[0] not in STOP_WORDS:
        return []  # a reply worth reading is on Twilio's console; we act on STOP only
    sender = params["From"]
    # The reply's own id, never the number (the event id travels into the workflow's history).
    reply_id = params.get("MessageSid") or hashlib.sha256(sender.encode()).hexdigest()[:16]
    event_id = f"twilio:{reply_id}:stop"
    signals: Signals = []
    with transaction(engine) as session:
        debtors = session.exec(select(Debtor).where(Debtor.phone == sender)).all()
        for debtor in debtors:
            if not debtor.sms_stopped_at:
                debtor.sms_stopped_at = utcnow()
                session.add(debtor)
            for number, step_id in _last_texts(session, debtor.id):
                signals.append(
                    (number, _event(event_id, "dropped", step_id, Channel.SMS, "STOP reply"))
                )
        if debtors and session.get(InboundEvent, event_id) is None:
            session.add(InboundEvent(id=event_id, source="twilio", kind="stop"))
    return signals


def _last_texts(session: Session, debtor_id: str) -> list[tuple[str, str]]:
    """(invoice, step) of the last text on each of the debtor's invoices still collected."""
    rows = session.exec(
        select(Interaction, Invoice)
        .join(Invoice, col(Invoice.number) == col(Interaction.invoice_number))
        .where(Invoice.debtor_id == debtor_id, Interaction.channel == Channel.SMS.value)
        .where(col(Invoice.stage).not_in(["paid", "cancelled", "written_off", "handed_off"]))
        .order_by(col(Interaction.id))
    ).all()
    last: dict[str, str] = {}
    for interaction, invoice in rows:
        last[invoice.number] = interaction.step_id
    return list(last.items())


def _event(
    event_id: str, kind: str, step_id: str, channel: Channel, reason: str | None
) -> DeliveryEvent:
    return DeliveryEvent(
        event_id=event_id,
        kind=cast(DeliveryKind, kind),
        step_id=step_id,
        channel=channel.value,
        occurred_at=datetime.now(UTC),
        reason=reason,
    )


async def receive_twilio(
    engine: Engine, client: Client, settings: Settings, signature: str | None, body: bytes
) -> None:
    params = parse_form(body)
    verify_twilio(settings, signature, params)
    signals = await to_thread.run_sync(record_twilio, engine, params)
    await signal_workflows(client, settings, signals)


# ------------------------------------------------------------------ letters


def apply_letter_outcome(
    session: Session,
    letter: Letter,
    outcome: LetterOutcome | LetterStatus,
    on: date,
    by: str,
    tracking_number: str | None = None,
    last_event: str | None = None,
) -> bool:
    """Record an outcome unless the letter's story has ended; True if it changed."""
    status = LetterStatus(outcome.value)
    if tracking_number:
        letter.tracking_number = tracking_number
    if last_event:
        letter.last_event = last_event[:200]
    changed = False
    if letter.status not in FINAL or letter.status == status:
        changed = letter.status != status
        letter.status = status
        moment = datetime(on.year, on.month, on.day, 12, tzinfo=UTC)
        if status == LetterStatus.POSTED:
            letter.posted_at = letter.posted_at or moment
        elif status == LetterStatus.DELIVERED:
            letter.delivered_at = moment
        elif status == LetterStatus.RECEIVED:
            letter.received_on = on
            letter.delivered_at = letter.delivered_at or moment
        if status in FINAL:
            letter.outcome_at = moment
            letter.outcome_by = by
    letter.updated_at = utcnow()
    session.add(letter)
    return changed


def _letter_signal(
    letter: Letter, event_id: str
) -> tuple[str, DeliveryEvent | LetterReceived] | None:
    if letter.status == LetterStatus.RECEIVED and letter.registered and letter.received_on:
        # The acknowledgment of receipt: the workflow records it (and, when the notice's
        # deadline runs from it, waits for that deadline; see `with_deadlines`).
        received = LetterReceived(
            event_id=event_id, step_id=letter.step_id, received_on=letter.received_on
        )
        return letter.invoice_number, received
    if letter.status not in UNDELIVERED:
        return None
    reason = (
        "registered letter not claimed"
        if letter.status == LetterStatus.NOT_CLAIMED
        else ("letter returned to sender")
    )
    return (
        letter.invoice_number,
        _event(event_id, "bounce", letter.step_id, Channel.LETTER, reason),
    )


def playbook_of(engine: Engine, settings: Settings, number: str) -> Playbook | None:
    with Session(engine) as session:
        invoice = session.get(Invoice, number)
    if invoice is None:
        return None
    try:
        return playbook_named(settings, invoice.playbook)
    except ApiError:
        return None


def receipt_deadline(engine: Engine, settings: Settings, letter: Letter) -> date | None:
    """A formal notice whose deadline runs from receipt: known once the AR came back."""
    if letter.received_on is None or not letter.registered:
        return None
    playbook = playbook_of(engine, settings, letter.invoice_number)
    if playbook is None or playbook.notice_deadline_from != "receipt":
        return None
    with Session(engine) as session:
        invoice = session.get(Invoice, letter.invoice_number)
        debtor = session.get(Debtor, invoice.debtor_id) if invoice else None
    if debtor is None:
        return None
    return deadline_of(
        playbook,
        sent_on=letter.received_on,
        received_on=letter.received_on,
        country=debtor.country,
        subdivision=debtor.subdivision,
    )


def with_deadlines(engine: Engine, settings: Settings, signals: Signals) -> Signals:
    """Receipts carry the notice's deadline when it runs from them (the business calendar is
    known here, not in the workflow)."""
    filled: Signals = []
    for number, event in signals:
        if isinstance(event, LetterReceived):
            with Session(engine) as session:
                letter = session.exec(
                    select(Letter).where(
                        Letter.invoice_number == number, Letter.step_id == event.step_id
                    )
                ).first()
            if letter is not None:
                event = event.model_copy(
                    update={"deadline": receipt_deadline(engine, settings, letter)}
                )
        filled.append((number, event))
    return filled


def _record_letter_event(
    engine: Engine, key: str, body: LetterEventCreate, by: str
) -> tuple[Letter, Signals, bool]:
    with transaction(engine) as session:
        letter = session.get(Letter, key)
        if letter is None:
            raise NotFound(f"no letter {key}")
        apply_letter_outcome(session, letter, body.outcome, body.on, by, body.tracking_number)
        signal = _letter_signal(letter, f"letter:{key}:{letter.status}")
        fallback = signal is not None and isinstance(signal[1], DeliveryEvent)
        return letter, [signal] if signal else [], fallback


async def record_letter_event(
    engine: Engine,
    client: Client,
    settings: Settings,
    key: str,
    body: LetterEventCreate,
    by: str,
) -> LetterRecorded:
    letter, signals, fallback = await to_thread.run_sync(
        _record_letter_event, engine, key, body, by
    )
    signals = await to_thread.run_sync(with_deadlines, engine, settings, signals)
    await signal_workflows(client, settings, signals)
    deadline = await to_thread.run_sync(receipt_deadline, engine, settings, letter)
    return LetterRecorded(
        letter=LetterPublic.model_validate(letter, from_attributes=True),
        deadline=deadline,
        fallback=fallback,
    )


def list_letters(session: Session, invoice: str) -> list[LetterPublic]:
    rows = session.exec(
        select(Letter).where(Letter.invoice_number == invoice).order_by(col(Letter.created_at))
    ).all()
    return [LetterPublic.model_validate(row, from_attributes=True) for row in rows]


# ------------------------------------------------------------------ Maileva


def verify_maileva(settings: Settings, authorization: str | None) -> None:
    user, password = settings.maileva_webhook_user, settings.maileva_webhook_password
    if not user or not password:
        raise Unavailable(
            "Maileva notifications not configured: set RELANCE_MAILEVA_WEBHOOK_USER and "
            "RELANCE_MAILEVA_WEBHOOK_PASSWORD (the Basic credentials of the subscription)"
        )
    expected = base64.b64encode(f"{user}:{password.get_secret_value()}".encode()).decode()
    if not authorization or not hmac.compare_digest(authorization, f"Basic {expected}"):
        raise Forbidden("the notification's credentials are not the subscription's")


def refresh_letter(engine: Engine, maileva: MailevaClient, payload: dict[str, Any]) -> Signals:
    """Read the letter's state from Maileva after a notification, and record it."""
    resource = str(payload.get("resource_id") or "")
    with transaction(engine) as session:
        letter = session.exec(
            select(Letter).where(
                Letter.provider == "maileva",
                (col(Letter.provider_ref) == resource)
                | (col(Letter.provider_recipient_ref) == resource),
            )
        ).first()
    if letter is None or letter.provider_ref is None:
        return []
    recipient = maileva.recipient(letter.provider_ref)
    code = str(recipient.get("last_delivery_status") or "")
    status = status_of_code(code)
    when = str(recipient.get("last_delivery_status_date") or payload.get("event_date") or "")
    try:
        on = datetime.fromisoformat(when.replace("Z", "+00:00")).date()
    except ValueError:
        on = utcnow().date()
    event_id = f"maileva:{resource}:{payload.get('event_type')}:{code}"
    with transaction(engine) as session:
        row = session.get(Letter, letter.key)
        if row is None:
            return []
        if not _record_once(
            session, event_id[:128], "maileva", code or "notice", row.invoice_number
        ):
            signal = _letter_signal(row, event_id)
            return [signal] if signal else []
        apply_letter_outcome(
            session,
            row,
            status or LetterStatus(row.status),
            on,
            "maileva",
            tracking_number=recipient.get("registered_number"),
            last_event=code or str(payload.get("event_type")),
        )
        signal = _letter_signal(row, event_id)
        return [signal] if signal else []


async def receive_maileva(
    engine: Engine,
    client: Client,
    settings: Settings,
    authorization: str | None,
    payload: dict[str, Any],
) -> None:
    verify_maileva(settings, authorization)
    maileva = build_postal_provider(settings)
    if not isinstance(maileva, MailevaClient):
        raise Unavailable("RELANCE_POSTAL_BACKEND is not maileva: its notifications are not read")
    signals = await to_thread.run_sync(refresh_letter, engine, maileva, payload)
    signals = await to_thread.run_sync(with_deadlines, engine, settings, signals)
    await signal_workflows(client, settings, signals)


def unreached_signals(number: str, step_id: str, task_id: str, reason: str) -> Signals:
    return [(number, _event(f"call:{task_id}", "bounce", step_id, Channel.PHONE, reason))]
