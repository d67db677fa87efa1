"""The SMS path of the messaging activity: reserved like an email, sent once, in the window.

The messaging activity reserves `<invoice>:<step>:sms` in the store before anything else (see
activities/messaging.py); this module does the rest: the debtor's number (E.164, validated on
the way in) and consent (no STOP on record), the send window in the debtor's time zone, the text
(the step's template with `_sms` appended, its `text` block), and the provider's answer.

Outside the window the activity fails with `OutsideSendWindow` and a retry delay that lands
when the window opens: the text is never sent at 22:00 because a retry happened to run then.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlmodel import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.email.message import PermanentSendError, TransientSendError
from activities.sms.message import OutgoingSms, SmsSender
from activities.sms.twilio_sender import UnreachableNumber
from contracts.errors import ErrorType
from domain.calendar import next_send_time
from domain.playbook import sms_template
from domain.sms_text import sms_text
from messages import RenderError, TemplateNotFound
from store.engine import transaction
from store.tables import Debtor, Interaction, InteractionStatus, Invoice

if TYPE_CHECKING:
    from activities.messaging import MessagingActivities, SendOutcome, SendRequest

# A send planned a few seconds before the window opens is not worth a retry.
_WINDOW_SLACK = timedelta(minutes=1)


def send_sms(
    messaging: MessagingActivities, sender: SmsSender, request: SendRequest, key: str
) -> SendOutcome:
    from activities.messaging import SendOutcome

    with transaction(messaging.engine) as session:
        invoice = session.get(Invoice, request.invoice_number)
        debtor = session.get(Debtor, invoice.debtor_id) if invoice else None
    if invoice is None or debtor is None:
        raise ApplicationError(
            f"invoice {request.invoice_number} or its debtor is missing from the store",
            type=ErrorType.MISSING_INVOICE,
            non_retryable=True,
        )
    if not debtor.phone or debtor.sms_stopped_at or debtor.phone_invalid_at:
        why = (
            "the debtor has no phone number"
            if not debtor.phone
            else "the debtor replied STOP"
            if debtor.sms_stopped_at
            else "the debtor's number is wrong"
        )
        messaging.finish([key], InteractionStatus.FAILED, error=why)
        raise ApplicationError(why, type=ErrorType.UNDELIVERABLE, non_retryable=True)
    now = messaging.clock()
    opens = next_send_time(
        now, country=debtor.country, timezone=debtor.timezone, subdivision=debtor.subdivision
    )
    if opens - now > _WINDOW_SLACK:
        raise ApplicationError(
            f"outside the debtor's send window; retrying at {opens:%Y-%m-%d %H:%M} UTC",
            type=ErrorType.OUTSIDE_SEND_WINDOW,
            next_retry_delay=opens - now,
        )
    language = messaging.renderer.language_for(debtor.language)
    template = sms_template(request.template)
    try:
        context = messaging.context_for(request, invoice, debtor, language)
        body = sms_text(messaging.renderer.render(template, context).text)
    except (TemplateNotFound, RenderError) as exc:
        messaging.finish([key], InteractionStatus.FAILED, error=str(exc))
        raise ApplicationError(
            str(exc), type=ErrorType.TEMPLATE_NOT_FOUND, non_retryable=True
        ) from exc
    # An earlier attempt may have been taken by the provider: one that ended without an answer
    # (recorded as pending), or one whose worker died before recording anything (Temporal's
    # attempt count says so). The sender then looks before sending.
    with transaction(messaging.engine) as session:
        earlier = session.exec(
            select(Interaction).where(Interaction.idempotency_key == key)
        ).first()
    retry = (earlier is not None and earlier.attempts > 0) or activity.info().attempt > 1
    sms = OutgoingSms(idempotency_key=key, to=debtor.phone, body=body, retry=retry)
    try:
        receipt = sender.send(sms)
    except UnreachableNumber as exc:
        messaging.finish([key], InteractionStatus.FAILED, error=str(exc))
        with transaction(messaging.engine) as session:
            row = session.get(Debtor, debtor.id)
            if row is not None and row.phone == debtor.phone and not row.sms_stopped_at:
                row.sms_stopped_at = now
                session.add(row)
        raise ApplicationError(str(exc), type=ErrorType.UNDELIVERABLE, non_retryable=True) from exc
    except PermanentSendError as exc:
        messaging.finish([key], InteractionStatus.FAILED, error=str(exc))
        raise ApplicationError(
            str(exc), type=ErrorType.PERMANENT_SEND_ERROR, non_retryable=True
        ) from exc
    except TransientSendError as exc:
        messaging.finish([key], InteractionStatus.PENDING, error=str(exc))
        raise
    messaging.finish(
        [key],
        InteractionStatus.SENT,
        subject=body[:300],
        provider=receipt.provider,
        provider_message_id=receipt.provider_message_id,
    )
    return SendOutcome(
        key=key,
        status=InteractionStatus.SENT,
        provider_message_id=receipt.provider_message_id,
        replayed=receipt.recovered,
    )
