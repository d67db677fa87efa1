"""The debtor's mailbox, its side effects: hand it a message, and send one day's batch.

A debtor receives at most one message per channel and day. Invoices hand their debtor-facing
step messages to their debtor's mailbox workflow (`enqueue_message`); the mailbox gathers those
that fall due together and sends them with `send_batch`: one invoice is sent exactly as
`send_message` sends it; several go out as one consolidated message that lists them all.

Exactly once, as for single messages: every invoice keeps its own `message_key` row in the
store, reserved under its UNIQUE key before anything is sent, and the rows of one batch carry
the batch's key (`debtor:<id>:<channel>:<day>`), which is also the consolidated email's
idempotency key. A retried batch finds its rows and does not send again.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError

from activities.email import OutgoingEmail
from activities.letters.channel import creditor_address, is_registered, post_letter
from activities.letters.pdf import AmountLine, LetterContent, date_text, label, render_letter
from activities.letters.provider import LetterJob
from activities.messaging import (
    MessagingActivities,
    SendOutcome,
    SendRequest,
    batch_key,
    message_key,
)
from contracts import ids as contract
from contracts.errors import ErrorType
from domain.calendar import add_business_days
from domain.lifecycle import Stage
from domain.money import Money
from domain.playbook import Channel, Recipient, Tone
from domain.postal import PostalAddress
from messages import RenderError, TemplateNotFound
from messages.render import InvoiceLine, MessageContext, RenderedMessage
from store.engine import transaction
from store.invoices import payments_of
from store.tables import Debtor, Interaction, InteractionStatus, Invoice

CONSOLIDATED_TEMPLATE = "consolidated"
# The strongest tone among the invoices sets the consolidated message's tone.
TONE_ORDER = (Tone.COURTEOUS, Tone.FRIENDLY, Tone.FIRM, Tone.FORMAL)
# Collection stopped after the step asked for the message (a payment, a credit note): a held
# message about it would remind the debtor of nothing they owe.
STOPPED_STAGES = frozenset({Stage.PAID, Stage.CANCELLED, Stage.WRITTEN_OFF})


class MailItem(BaseModel):
    """One invoice's debtor-facing step message, handed to its debtor's mailbox."""

    request: SendRequest
    debtor_id: str
    # The calendar day the message stands for: the once-a-day rule counts these days.
    day: date


class MailboxDelivery(BaseModel):
    """What `enqueue_message` needs to signal the mailbox, starting it if it is not running."""

    item: MailItem
    # The mailbox's clock, like the invoice's ("length of a day").
    day_seconds: float


class MailBatch(BaseModel):
    """The debtor's one message of the day on a channel: one request per invoice."""

    debtor_id: str
    channel: Channel
    day: date
    requests: list[SendRequest]


class MailGroup(BaseModel):
    """What goes out together: one channel, one calendar day, at most one item per invoice."""

    channel: Channel
    day: date
    # The end of the gather window (for a group held to a later day: that day's window).
    due_at: datetime
    items: list[MailItem] = []


class MailboxState(BaseModel):
    groups: list[MailGroup] = []
    # Per channel, the last calendar day a message went out (or is going out).
    last_sent: dict[Channel, date] = {}


class MailboxInput(BaseModel):
    debtor_id: str
    day_seconds: float = 86400.0
    state: MailboxState | None = None


class BatchOutcome(BaseModel):
    # The sent email's idempotency key: the invoice's message key, or the batch key.
    key: str
    # Whether a message went out (now, or on an earlier attempt).
    sent: bool
    # The invoices the message is about, and those left out (collection stopped meanwhile,
    # already messaged on their own, or unknown to the store).
    invoices: list[str] = []
    skipped: list[str] = []
    provider_message_id: str | None = None
    # True when an earlier attempt had already sent it.
    replayed: bool = False


class MailboxActivities:
    def __init__(self, client: Client, messaging: MessagingActivities) -> None:
        self._client = client
        self._messaging = messaging

    @activity.defn(name="enqueue_message")
    async def enqueue_message(self, delivery: MailboxDelivery) -> None:
        """Signal the debtor's mailbox, starting it first if none is running."""
        debtor_id = delivery.item.debtor_id
        mailbox_id = contract.mailbox_workflow_id(debtor_id)
        try:
            await self._client.start_workflow(
                contract.MAILBOX_WORKFLOW,
                MailboxInput(debtor_id=debtor_id, day_seconds=delivery.day_seconds),
                id=mailbox_id,
                task_queue=activity.info().task_queue,
                start_signal=contract.ENQUEUE_SIGNAL,
                start_signal_args=[delivery.item],
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        except WorkflowAlreadyStartedError:
            # Two invoices of one debtor racing to start its mailbox: some servers answer the
            # loser with "already started" instead of signalling. Signal the winner.
            try:
                await self._client.get_workflow_handle(mailbox_id).signal(
                    contract.ENQUEUE_SIGNAL, delivery.item
                )
            except RPCError as err:
                # It ended meanwhile: the retry starts a new one. (A plain ApplicationError,
                # so every server accepts the failure report.)
                raise ApplicationError(f"mailbox {mailbox_id} not reachable: {err}") from None

    @activity.defn(name="send_batch")
    def send_batch(self, batch: MailBatch) -> BatchOutcome:
        self._check(batch)
        key = batch_key(batch.debtor_id, batch.channel, batch.day)
        try:
            members, skipped = self._reserve(batch, key)
        except IntegrityError:
            # A concurrent attempt reserved the same rows between our read and our insert.
            members, skipped = self._reserve(batch, key)
        if not members:
            return BatchOutcome(key=key, sent=False, skipped=skipped)
        if len(members) == 1:
            # One invoice: exactly the message `send_message` sends (its own key and template),
            # on the row reserved above.
            single = self._messaging.send_message(members[0])
            return BatchOutcome(
                key=single.key,
                sent=single.status == InteractionStatus.SENT,
                invoices=[members[0].invoice_number],
                skipped=skipped,
                provider_message_id=single.provider_message_id,
                replayed=single.replayed,
            )
        return self._send_consolidated(batch, key, members, skipped)

    # ------------------------------------------------------------------ reserving

    @staticmethod
    def _check(batch: MailBatch) -> None:
        numbers = [request.invoice_number for request in batch.requests]
        problem = None
        if len(set(numbers)) != len(numbers):
            problem = "an invoice appears twice"
        elif any(request.channel != batch.channel for request in batch.requests):
            problem = f"a request is not on channel {batch.channel.value}"
        elif any(request.recipient != Recipient.DEBTOR for request in batch.requests):
            problem = "a request is not for the debtor"
        if problem is not None:
            raise ApplicationError(
                f"batch for debtor {batch.debtor_id}: {problem}",
                type="InvalidBatch",
                non_retryable=True,
            )

    def _reserve(self, batch: MailBatch, key: str) -> tuple[list[SendRequest], list[str]]:
        """Reserve one row per invoice the message is about, in one transaction.

        Returns the requests the message covers and the invoices left out. Stable across
        retries: once reserved, a row carries the batch key and stays a member.
        """
        keys = {_key_of(request): request for request in batch.requests}
        with transaction(self._messaging.engine) as session:
            rows = {
                row.idempotency_key: row
                for row in session.exec(
                    select(Interaction).where(col(Interaction.idempotency_key).in_(list(keys)))
                )
            }
            _refuse_a_second_message(session, key, list(keys))
            invoices = _invoices(session, [request.invoice_number for request in batch.requests])
            members: list[SendRequest] = []
            fresh: list[SendRequest] = []
            skipped: list[str] = []
            for message, request in keys.items():
                row = rows.get(message)
                invoice = invoices.get(request.invoice_number)
                if row is not None and row.batch_key == key:
                    members.append(request)  # reserved by an earlier attempt of this batch
                elif row is not None:
                    # Messaged already, on its own or in another batch: not twice.
                    skipped.append(request.invoice_number)
                elif (
                    invoice is None
                    or invoice.debtor_id != batch.debtor_id
                    or invoice.stage in STOPPED_STAGES
                ):
                    skipped.append(request.invoice_number)
                else:
                    members.append(request)
                    fresh.append(request)
            template = members[0].template if len(members) == 1 else CONSOLIDATED_TEMPLATE
            for request in fresh:
                session.add(
                    Interaction(
                        idempotency_key=_key_of(request),
                        invoice_number=request.invoice_number,
                        step_id=request.step_id,
                        channel=request.channel,
                        recipient=request.recipient,
                        template=template,
                        planned_at=request.planned_at,
                        batch_key=key,
                    )
                )
        if skipped:
            activity.logger.info("batch %s leaves out invoices %s", key, ", ".join(skipped))
        return members, skipped

    # ------------------------------------------------------------------ consolidated

    def _send_consolidated(
        self, batch: MailBatch, key: str, members: list[SendRequest], skipped: list[str]
    ) -> BatchOutcome:
        keys = [_key_of(request) for request in members]
        numbers = [request.invoice_number for request in members]
        with transaction(self._messaging.engine) as session:
            rows = session.exec(
                select(Interaction).where(col(Interaction.idempotency_key).in_(keys))
            ).all()
            debtor = session.get(Debtor, batch.debtor_id)
            invoices = _invoices(session, numbers)
        if rows and all(row.status == InteractionStatus.SENT for row in rows):
            return BatchOutcome(
                key=key,
                sent=True,
                invoices=numbers,
                skipped=skipped,
                provider_message_id=rows[0].provider_message_id,
                replayed=True,
            )
        if batch.channel not in (Channel.EMAIL, Channel.LETTER):
            self._messaging.finish(
                keys, InteractionStatus.FAILED, error="channel not available yet"
            )
            raise ApplicationError(
                f"channel {batch.channel.value} is not available",
                type="ChannelUnavailable",
                non_retryable=True,
            )
        if debtor is None or len(invoices) != len(members):
            self._messaging.finish(
                keys, InteractionStatus.FAILED, error="debtor or invoice missing"
            )
            raise ApplicationError(
                f"debtor {batch.debtor_id} or one of its invoices is missing from the store",
                type="MissingInvoice",
                non_retryable=True,
            )
        if batch.channel == Channel.LETTER:
            sent_as = send_consolidated_letter(
                self._messaging, debtor, batch.day, members, keys, invoices
            ).provider_message_id
        else:
            email = self._compose(batch, key, members, debtor, invoices)
            receipt = self._messaging.deliver(self._messaging.sender, email, keys)
            sent_as = receipt.provider_message_id
        return BatchOutcome(
            key=key, sent=True, invoices=numbers, skipped=skipped, provider_message_id=sent_as
        )

    def _compose(
        self,
        batch: MailBatch,
        key: str,
        members: list[SendRequest],
        debtor: Debtor,
        invoices: dict[str, Invoice],
    ) -> OutgoingEmail:
        try:
            return consolidated_email(
                self._messaging,
                debtor=debtor,
                channel=batch.channel,
                day=batch.day,
                key=key,
                requests=members,
                invoices=invoices,
            )
        except ApplicationError:
            # A template bug is not fixed by retrying: record it and let the mailbox go on.
            self._messaging.finish(
                [_key_of(r) for r in members], InteractionStatus.FAILED, error="template error"
            )
            raise


def _consolidated(
    messaging: MessagingActivities,
    *,
    debtor: Debtor,
    day: date,
    requests: list[SendRequest],
    invoices: dict[str, Invoice],
    for_letter: bool = False,
) -> tuple[MessageContext, RenderedMessage]:
    """The debtor's one message of the day listing several invoices (`requests`, one each),
    rendered: for an email, or for a letter's layout (which prints its own header)."""
    renderer = messaging.renderer
    language = renderer.language_for(debtor.language)
    context = _consolidated_context(messaging, day, requests, debtor, invoices, language)
    with Session(messaging.engine) as session:
        portal_url = messaging.portal_url(session, debtor.id)
    if portal_url is not None:
        context = context.model_copy(update={"portal_url": portal_url})
    if for_letter:
        context = context.model_copy(update={"for_letter": True})
    try:
        return context, renderer.render(CONSOLIDATED_TEMPLATE, context)
    except (TemplateNotFound, RenderError) as exc:
        raise ApplicationError(
            str(exc), type=ErrorType.TEMPLATE_NOT_FOUND, non_retryable=True
        ) from exc


def consolidated_email(
    messaging: MessagingActivities,
    *,
    debtor: Debtor,
    channel: Channel,
    day: date,
    key: str,
    requests: list[SendRequest],
    invoices: dict[str, Invoice],
) -> OutgoingEmail:
    """The debtor's one email of the day listing several invoices (`requests`, one each)."""
    _, rendered = _consolidated(
        messaging, debtor=debtor, day=day, requests=requests, invoices=invoices
    )
    return OutgoingEmail(
        idempotency_key=key,
        to_email=debtor.email,
        to_name=debtor.name,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        # Opaque ids only; the day key finds every invoice's row again.
        custom_args={"debtor": debtor.id, "batch": key},
        categories=[CONSOLIDATED_TEMPLATE],
    )


def send_consolidated_letter(
    messaging: MessagingActivities,
    debtor: Debtor,
    day: date,
    requests: list[SendRequest],
    keys: list[str],
    invoices: dict[str, Invoice],
) -> SendOutcome:
    """The debtor's one letter of the day listing several invoices: a PDF like a single
    invoice's letter (activities/letters/), posted once under the first request's key, its
    statement table listing each invoice's amounts; `keys` (one per request) are marked."""
    if not debtor.postal_address:
        messaging.finish(keys, InteractionStatus.FAILED, error="the debtor has no postal address")
        raise ApplicationError(
            "the debtor has no postal address", type=ErrorType.UNDELIVERABLE, non_retryable=True
        )
    try:
        context, rendered = _consolidated(
            messaging, debtor=debtor, day=day, requests=requests, invoices=invoices, for_letter=True
        )
    except ApplicationError:
        # A template bug is not fixed by retrying: recorded, and the collection goes on.
        messaging.finish(keys, InteractionStatus.FAILED, error="template error")
        raise
    language = context.language
    lines = context.invoices or []
    numbers = tuple(line.invoice_number for line in lines)
    registered = any(is_registered(request) for request in requests)
    deadline_note = None
    if registered:
        # As a single registered letter: the formal notice's deadline, as the playbook runs it.
        days, from_receipt = messaging.notice_rules(invoices[numbers[0]])
        deadline_note = (
            label(language, "deadline_receipt", days=days)
            if from_receipt
            else label(language, "deadline", date=date_text(context.deadline, language))
            if context.deadline is not None
            else None
        )
    sender = creditor_address(messaging)
    pdf = render_letter(
        LetterContent(
            language=language,
            sender=sender,
            recipient=PostalAddress.model_validate(debtor.postal_address),
            dated=day,
            reference=", ".join(numbers),
            subject=rendered.subject,
            body=rendered.text,
            amounts=_letter_amounts(lines, language),
            deadline_note=deadline_note,
            signature=messaging.settings.creditor_name,
            registered=registered,
        )
    )
    first = requests[0]
    job = LetterJob(
        key=keys[0],
        invoice_number=first.invoice_number,
        invoices=numbers,
        title=f"{' '.join(numbers)} {first.step_id}",
        registered=registered,
        pdf=pdf.pdf,
        pages=pdf.pages,
        sender=sender,
        recipient=PostalAddress.model_validate(debtor.postal_address),
    )
    return post_letter(
        messaging, messaging.postal, job, step_id=first.step_id, keys=keys, subject=rendered.subject
    )


def _letter_amounts(lines: list[InvoiceLine], language: str) -> list[AmountLine]:
    """Each invoice's outstanding principal, and once late its interest and indemnity; then
    the total due in each currency."""
    amounts: list[AmountLine] = []
    totals: list[Money] = []
    for line in lines:
        number = line.invoice_number
        amounts.append(
            AmountLine(label(language, "invoice_outstanding", number=number), line.outstanding)
        )
        for name, amount in (("interest", line.interest), ("indemnity", line.indemnity)):
            if amount is not None:
                amounts.append(AmountLine(f"{number} – {label(language, name)}", amount))
        totals.append(line.total_due if line.total_due is not None else line.outstanding)
    for currency in dict.fromkeys(t.currency for t in totals):
        total = _sum([t for t in totals if t.currency == currency])
        amounts.append(AmountLine(label(language, "total"), total, total=True))
    return amounts


def _consolidated_context(
    messaging: MessagingActivities,
    day: date,
    members: list[SendRequest],
    debtor: Debtor,
    invoices: dict[str, Invoice],
    language: str,
) -> MessageContext:
    """The invoices as the store knows them now (a payment since the step counts), each
    with its statement of amounts to the batch's day once it is late."""
    ordered = sorted(
        (invoices[request.invoice_number] for request in members),
        key=lambda invoice: (invoice.due_date, invoice.number),
    )
    lines: list[InvoiceLine] = []
    rate = None
    for invoice in ordered:
        outstanding = Money.of(invoice.outstanding, invoice.currency)
        line = InvoiceLine(
            invoice_number=invoice.number,
            issue_date=invoice.issue_date,
            due_date=invoice.due_date,
            amount=Money.of(invoice.amount, invoice.currency),
            outstanding=outstanding,
            days_late=max(0, (day - invoice.due_date).days),
        )
        statement = None
        if day > invoice.due_date:
            with Session(messaging.engine) as session:
                payments = list(payments_of(session, invoice.number))
            # The same statement as a single message: payments, clause, debtor's law.
            statement = messaging.statement(invoice, debtor, payments, outstanding, day)
        if statement is not None:
            rate = statement.rate
            line = line.model_copy(
                update={
                    "interest": statement.interest,
                    "indemnity": statement.indemnity,
                    "total_due": statement.total,
                }
            )
        lines.append(line)
    # The single-invoice fields describe the whole: the oldest invoice's dates, and the
    # sums in its currency (the template itself lists every currency's total).
    currency = lines[0].amount.currency
    same = [line for line in lines if line.amount.currency == currency]
    # A consolidated formal notice gives the oldest invoice's playbook's business days.
    days = messaging.notice_days(ordered[0])
    return MessageContext(
        language=language,
        tone=max((request.tone for request in members), key=TONE_ORDER.index),
        invoice_number=", ".join(line.invoice_number for line in lines),
        issue_date=min(line.issue_date for line in lines),
        due_date=lines[0].due_date,
        amount=_sum([line.amount for line in same]),
        outstanding=_sum([line.outstanding for line in same]),
        as_of=day,
        days_late=max(line.days_late for line in lines),
        debtor_name=debtor.name,
        creditor_name=messaging.settings.creditor_name,
        payment_instructions=messaging.settings.payment_instructions,
        interest_rate=rate,
        invoices=lines,
        deadline=add_business_days(day, days, debtor.country, debtor.subdivision),
        deadline_business_days=days,
    )


def _key_of(request: SendRequest) -> str:
    return message_key(request.invoice_number, request.step_id, request.channel, request.recipient)


def _invoices(session: Session, numbers: list[str]) -> dict[str, Invoice]:
    found = session.exec(select(Invoice).where(col(Invoice.number).in_(numbers))).all()
    return {invoice.number: invoice for invoice in found}


def _refuse_a_second_message(session: Session, key: str, keys: list[str]) -> None:
    """The store's own guard of the once-a-day rule: another message already went out under
    this debtor, channel and day. The mailbox never asks for it; refuse rather than send."""
    other = session.exec(
        select(Interaction.idempotency_key).where(
            Interaction.batch_key == key,
            Interaction.status == InteractionStatus.SENT,
            col(Interaction.idempotency_key).not_in(keys),
        )
    ).first()
    if other is not None:
        raise ApplicationError(
            f"{key}: a message already went out that day (with {other})",
            type="DayAlreadyUsed",
            non_retryable=True,
        )


def _sum(amounts: list[Money]) -> Money:
    total = amounts[0]
    for money in amounts[1:]:
        total = total + money
    return total
