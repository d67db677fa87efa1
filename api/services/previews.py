"""Previews: a step's message rendered as it would go out, without sending or recording it.

The message is composed by the real send's own code (`MessagingActivities.compose`) from the
same `SendRequest` the workflow builds, so a preview cannot drift from what a debtor receives.
`compose` neither sends nor records anything; the sender here refuses to send all the same, and
the renderer may render in another language than the debtor's.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from activities.email import OutgoingEmail, SendReceipt
from activities.messaging import MessagingActivities, SendRequest, message_key
from api.errors import Invalid, NotFound, ServerMisconfigured
from api.import_schemas import MessagePreview
from api.services import invoices
from config import Settings
from domain.money import Money
from domain.playbook import Channel, Playbook, Recipient, Step, Tone
from messages import MessageContext, RenderedMessage, Renderer, RenderError, TemplateNotFound
from store.tables import Invoice

# Not a playbook step: the workflow sends it when the invoice is paid in full (template and
# tone as in InvoiceWorkflow._thank).
THANK_YOU = "thank_you"
_THANK_YOU_TONE = Tone.FRIENDLY


class _PreviewRenderer(Renderer):
    """The shipped templates, in the language asked for (and remembering which it used)."""

    def __init__(self, language: str | None) -> None:
        super().__init__()
        self._language = language
        self.language_used: str | None = None

    def render(self, template: str, context: MessageContext) -> RenderedMessage:
        if self._language is not None:
            context = context.model_copy(update={"language": self._language})
        self.language_used = context.language
        return super().render(template, context)


class _NoSender:
    name = "preview"

    def send(self, email: OutgoingEmail) -> SendReceipt:
        raise AssertionError("a preview never sends")  # compose does not call it


def _invoice(engine: Engine, number: str) -> Invoice:
    with Session(engine) as session:
        invoice = session.get(Invoice, number)
    if invoice is None:
        raise NotFound(f"invoice {number} is unknown: it was never handed over")
    return invoice


# The channels whose message `compose` renders (an email, or a letter for the print queue); a
# phone step opens a call task for a collector instead.
MESSAGE_CHANNELS = (Channel.EMAIL, Channel.LETTER)


def _message_channel(step: Step) -> Channel | None:
    return next((c for c in step.channels if c in MESSAGE_CHANNELS), None)


def _request(invoice: Invoice, playbook: Playbook, step_id: str, as_of: date) -> SendRequest:
    """The request the workflow would make for this step on `as_of`."""
    outstanding = Money.of(invoice.outstanding, invoice.currency)
    common = {
        "invoice_number": invoice.number,
        "step_id": step_id,
        "recipient": Recipient.DEBTOR,
        "planned_at": datetime.now(UTC),
        "as_of": as_of,
    }
    steps = {step.id: step for step in playbook.steps}
    step = steps.get(step_id)
    channel = _message_channel(step) if step is not None else None
    if step is not None and channel is not None:
        return SendRequest(
            **common,
            channel=channel,
            template=step.template,
            tone=step.tone,
            outstanding=outstanding,
        )
    if step is None and step_id == THANK_YOU:
        # The thanks go out once the invoice is settled: nothing outstanding, the whole amount
        # (and any overpayment) received.
        paid = Money.of(invoice.amount + (invoice.overpayment or 0), invoice.currency)
        return SendRequest(
            **common,
            channel=Channel.EMAIL,
            template=THANK_YOU,
            tone=_THANK_YOU_TONE,
            outstanding=Money.of(0, invoice.currency),
            paid=paid,
        )
    available = ", ".join([*(s.id for s in playbook.steps if _message_channel(s)), THANK_YOU])
    if step is not None:
        channels = ", ".join(c.value for c in step.channels)
        raise NotFound(
            f"step {step_id!r} of invoice {invoice.number} sends no email or letter (channels: "
            f"{channels}; a phone step is a call task for a collector); steps with a message: "
            f"{available}"
        )
    raise NotFound(
        f"invoice {invoice.number} (playbook {playbook.name}) has no step {step_id!r}; "
        f"steps: {available}"
    )


def preview(
    engine: Engine,
    settings: Settings,
    number: str,
    step_id: str,
    *,
    language: str | None = None,
    as_of: date | None = None,
) -> MessagePreview:
    """The debtor's message for `step_id`, as of today (or `as_of`) and the outstanding now."""
    invoice = _invoice(engine, number)
    playbook = invoices.playbook_named(settings, invoice.playbook)
    day = as_of or datetime.now(UTC).date()
    request = _request(invoice, playbook, step_id, day)
    renderer = _PreviewRenderer(language)
    composer = MessagingActivities(engine, _NoSender(), renderer, settings)
    # Not the message's real key: nothing may ever be recorded under it. Keys start with the
    # invoice number, which never starts with "~".
    key = "~preview:" + message_key(number, step_id, request.channel, request.recipient)
    try:
        email = composer.compose(request, key)
    except (TemplateNotFound, RenderError) as failed:
        if isinstance(failed, RenderError) and day <= invoice.due_date:
            # Templates of overdue steps need the interest and the indemnity, which only exist
            # once the invoice is late.
            raise Invalid(
                f"step {step_id!r} of invoice {number} cannot be rendered as of {day}, before "
                f"its due date {invoice.due_date} ({failed.reason}): preview it as of a "
                "later day",
                field="as_of",
                location="query",
            ) from failed
        raise ServerMisconfigured(
            f"step {step_id!r} of invoice {number} cannot be rendered: {failed}"
        ) from failed
    assert renderer.language_used is not None  # compose renders exactly once
    warnings = []
    if playbook.version != invoice.playbook_version:
        # The running invoice keeps the version it started with (in its workflow's input);
        # the store only knows its number, so the step is read from today's file.
        warnings.append(
            f"invoice {number} runs version {invoice.playbook_version} of playbook "
            f"{playbook.name}, whose file is now version {playbook.version}: the step's "
            "template or tone may have changed since"
        )
    return MessagePreview(
        invoice_number=number,
        step=step_id,
        template=request.template,
        tone=request.tone,
        as_of=day,
        language=renderer.language_used,
        to_role=request.recipient,
        channel=request.channel,
        subject=email.subject,
        text=email.text,
        html=email.html or "",
        warnings=warnings,
    )
