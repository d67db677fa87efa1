"""Sending a message, exactly once.

Temporal runs an activity at least once; the store makes the effect happen once. Before
sending, the activity reserves the message's idempotency key under a UNIQUE constraint; once
the provider accepted it, the row is marked sent. A retry that finds a sent row returns without
sending. (A crash in the instant between the provider's acceptance and the mark is the one
window where a retry sends again; the outbox is immune, since it overwrites its own file. Texts
and registered letters close it: a retried text first asks Twilio whether it already went out
(activities/sms/twilio_sender.py), and a letter resumes its Maileva sending, whose id is on
record before anything can be posted (activities/letters/maileva.py).)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.email import (
    EmailSender,
    OutgoingEmail,
    PermanentSendError,
    SendReceipt,
    TransientSendError,
)
from activities.letters.channel import send_letter
from activities.letters.provider import PostalProvider, build_postal_provider
from activities.sms.channel import send_sms
from activities.sms.message import SmsSender, build_sms_sender
from config import Settings
from domain.dossier_link import dossier_link
from domain.law import AmountDue, LatePaymentCosts
from domain.money import Money
from domain.notice import deadline_after
from domain.playbook import (
    LATE_PAYMENT_STATEMENT_TEMPLATE,
    Channel,
    Playbook,
    PlaybookError,
    PlaybookLibrary,
    Recipient,
    Tone,
    playbook_directories,
)
from domain.portal import personal_link
from domain.rates import RateUnknownError
from messages import MessageContext, Renderer, RenderError, TemplateNotFound
from store.engine import transaction
from store.invoices import payments_of
from store.messages import interactions_under, record_sent_message
from store.portal import key_version
from store.statements import late_costs_for, statement_for
from store.tables import Debtor, Interaction, InteractionStatus, Invoice, Payment, utcnow

# Business days a formal notice gives when the invoice's playbook cannot be read.
DEFAULT_NOTICE_DAYS = 8


def message_key(invoice_number: str, step_id: str, channel: Channel, recipient: Recipient) -> str:
    """The one builder of idempotency keys: `<invoice>:<step>:<channel>[:<recipient>]`."""
    key = f"{invoice_number}:{step_id}:{channel.value}"
    return key if recipient == Recipient.DEBTOR else f"{key}:{recipient.value}"


def batch_key(debtor_id: str, channel: Channel, day: date) -> str:
    """The key of a debtor's one message of the day on a channel: `debtor:<id>:<channel>:<day>`.

    A consolidated message is sent under it; every invoice it lists keeps its own
    `message_key` row in the store, and those rows carry this key as their `batch_key`.
    """
    return f"debtor:{debtor_id}:{channel.value}:{day.isoformat()}"


class SendRequest(BaseModel):
    invoice_number: str
    step_id: str
    channel: Channel
    recipient: Recipient = Recipient.DEBTOR
    template: str
    tone: Tone
    planned_at: datetime
    # The calendar day the message speaks of (interest and days late are counted to it).
    as_of: date
    outstanding: Money
    paid: Money | None = None
    approval_id: str | None = None
    target_stage: str | None = None
    installment_amount: Money | None = None
    installment_due_date: date | None = None
    # Answers to the debtor's own actions on their page (activities/portal_notice.py).
    reference: str | None = None
    deadline: date | None = None
    outcome: str | None = None
    # Letters: registered with acknowledgment of receipt (None: the formal notice is), and the
    # formal notice's deadline (a date, or `notice_days` from sending or from receipt).
    registered: bool | None = None
    notice_days: int | None = None
    deadline_from_receipt: bool = False


class SendOutcome(BaseModel):
    key: str
    status: InteractionStatus
    provider_message_id: str | None = None
    # True when an earlier attempt had already sent it.
    replayed: bool = False


def notice_deadline(
    request: SendRequest, country: str, subdivision: str | None = None
) -> date | None:
    """The formal notice's deadline as a date: given, or `notice_days` business days after the
    day it is sent; None when it runs from the debtor's receipt of the letter (not known yet)."""
    if request.deadline is not None:
        return request.deadline
    if request.notice_days and not request.deadline_from_receipt:
        return deadline_after(request.as_of, request.notice_days, country, subdivision)
    return None


@dataclass(frozen=True)
class EmailFacts:
    """The store's side of one invoice's email: the rows it is written from."""

    invoice: Invoice
    debtor: Debtor
    payments: list[Payment]
    # The debtor's personal page, signed; None for other recipients or without a portal.
    portal_url: str | None


class MessagingActivities:
    def __init__(
        self,
        engine: Engine,
        sender: EmailSender,
        renderer: Renderer,
        settings: Settings,
        *,
        sms_sender: SmsSender | None = None,
        postal: PostalProvider | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        # The wall clock, for the SMS send window (tests pin it).
        self.clock = clock
        self._engine = engine
        self._sender = sender
        self._renderer = renderer
        self._settings = settings
        # Texts and letters go through their own providers, behind the same reservation.
        self._sms = sms_sender if sms_sender is not None else build_sms_sender(settings)
        self._postal = postal if postal is not None else build_postal_provider(settings)

    # The debtor's mailbox sends consolidated messages with the same store, sender, templates
    # and settings (activities/mailbox.py).
    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def sender(self) -> EmailSender:
        return self._sender

    @property
    def renderer(self) -> Renderer:
        return self._renderer

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def postal(self) -> PostalProvider:
        """Who posts letters: one invoice's (`send_on_channel`) or a debtor's consolidated one
        (activities/mailbox.py), each a PDF."""
        return self._postal

    def provider_for(self, channel: Channel) -> object:
        """Who sends on `channel` (its `idempotent` says whether a blind resend is safe)."""
        match channel:
            case Channel.SMS:
                return self._sms
            case Channel.LETTER:
                return self._postal
            case _:
                return self._sender

    def send_on_channel(self, request: SendRequest, key: str) -> SendOutcome:
        """Send a text or a letter whose key the caller has reserved (activities/sms/channel.py,
        activities/letters/channel.py)."""
        if request.channel == Channel.SMS:
            return send_sms(self, self._sms, request, key)
        return send_letter(self, self._postal, request, key)

    @activity.defn(name="send_message")
    def send_message(self, request: SendRequest) -> SendOutcome:
        key = message_key(
            request.invoice_number, request.step_id, request.channel, request.recipient
        )
        interaction = self._reserve(request, key)
        if interaction.status == InteractionStatus.SENT:
            return SendOutcome(
                key=key,
                status=InteractionStatus.SENT,
                provider_message_id=interaction.provider_message_id,
                replayed=True,
            )
        if request.channel in (Channel.SMS, Channel.LETTER):
            return self.send_on_channel(request, key)
        if request.channel != Channel.EMAIL:
            # Phone steps are call tasks (the workflow opens them), never a message.
            self.finish([key], InteractionStatus.FAILED, error="not a message channel")
            raise ApplicationError(
                f"channel {request.channel.value} sends no message",
                type="ChannelUnavailable",
                non_retryable=True,
            )
        try:
            email = self.compose(request, key)
        except (TemplateNotFound, RenderError) as exc:
            # A template bug is not fixed by retrying: record it and let the workflow go on.
            self.finish([key], InteractionStatus.FAILED, error=str(exc))
            raise ApplicationError(str(exc), type="TemplateNotFound", non_retryable=True) from exc
        receipt = self.deliver(self._sender, email, [key])
        return SendOutcome(
            key=key, status=InteractionStatus.SENT, provider_message_id=receipt.provider_message_id
        )

    def _reserve(self, request: SendRequest, key: str) -> Interaction:
        try:
            with transaction(self._engine) as session:
                found = session.exec(
                    select(Interaction).where(Interaction.idempotency_key == key)
                ).first()
                if found is not None:
                    return found
                row = Interaction(
                    idempotency_key=key,
                    invoice_number=request.invoice_number,
                    step_id=request.step_id,
                    channel=request.channel,
                    recipient=request.recipient,
                    template=request.template,
                    planned_at=request.planned_at,
                )
                session.add(row)
                return row
        except IntegrityError:
            # Another attempt reserved it between our read and our insert: use theirs.
            with transaction(self._engine) as session:
                return session.exec(
                    select(Interaction).where(Interaction.idempotency_key == key)
                ).one()

    def deliver(
        self, sender: EmailSender, email: OutgoingEmail, keys: Sequence[str]
    ) -> SendReceipt:
        """Hand `email` to `sender` and record the outcome on every interaction it stands for
        (one, or each invoice of a consolidated message)."""
        try:
            receipt = sender.send(email)
        except PermanentSendError as exc:
            self.finish(keys, InteractionStatus.FAILED, error=str(exc), subject=email.subject)
            raise ApplicationError(str(exc), type="PermanentSendError", non_retryable=True) from exc
        except TransientSendError as exc:
            self.finish(keys, InteractionStatus.PENDING, error=str(exc), subject=email.subject)
            raise
        # One transaction: the interactions say sent, and the legal file keeps the message
        # exactly as it went out, once per invoice.
        with transaction(self._engine) as session:
            rows = _mark(
                session,
                keys,
                InteractionStatus.SENT,
                subject=email.subject,
                provider=receipt.provider,
                provider_message_id=receipt.provider_message_id,
            )
            record_sent_message(
                session,
                interaction_keys=keys,
                reserved=rows,
                to_email=email.to_email,
                to_name=email.to_name,
                subject=email.subject,
                text=email.text,
                html=email.html or "",
                provider=receipt.provider,
                provider_message_id=receipt.provider_message_id,
                sent_at=utcnow(),
            )
        return receipt

    def finish(
        self,
        keys: Sequence[str],
        status: InteractionStatus,
        *,
        error: str | None = None,
        subject: str | None = None,
        provider: str | None = None,
        provider_message_id: str | None = None,
    ) -> None:
        """Record an attempt's outcome on the interactions reserved under `keys`."""
        with transaction(self._engine) as session:
            _mark(
                session,
                keys,
                status,
                error=error,
                subject=subject,
                provider=provider,
                provider_message_id=provider_message_id,
            )

    def facts_for(self, session: Session, request: SendRequest) -> EmailFacts | None:
        """What an email about `request` is written from, read in the caller's transaction
        (a send reads it in the one that reserves it); None when the invoice or its debtor is
        missing."""
        invoice = session.get(Invoice, request.invoice_number)
        debtor = session.get(Debtor, invoice.debtor_id) if invoice else None
        if invoice is None or debtor is None:
            return None
        payments = list(payments_of(session, request.invoice_number))
        portal_url = (
            self.portal_url(session, debtor.id) if request.recipient == Recipient.DEBTOR else None
        )
        return EmailFacts(invoice, debtor, payments, portal_url)

    def compose(
        self, request: SendRequest, key: str, facts: EmailFacts | None = None
    ) -> OutgoingEmail:
        """Render the message a request stands for, without sending or recording anything
        (previews use it), from `facts` or from the store. Raises TemplateNotFound or
        RenderError for a template bug."""
        if facts is None:
            with transaction(self._engine) as session:
                facts = self.facts_for(session, request)
        if facts is None:
            raise ApplicationError(
                f"invoice {request.invoice_number} or its debtor is missing from the store",
                type="MissingInvoice",
                non_retryable=True,
            )
        invoice, debtor = facts.invoice, facts.debtor
        language = self._renderer.language_for(debtor.language)
        context = self._context(request, invoice, debtor, facts.payments, language)
        if facts.portal_url is not None:
            context = context.model_copy(update={"portal_url": facts.portal_url})
        if request.recipient == Recipient.LEGAL_PARTNER:
            context = context.model_copy(update=self.dossier_link(invoice.number))
        # Template errors go to the caller: a send records them, a preview reports them.
        rendered = self._renderer.render(request.template, context)
        to_email, to_name = self._address(request.recipient, debtor)
        return OutgoingEmail(
            idempotency_key=key,
            to_email=to_email,
            to_name=to_name,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            # Opaque ids only: SendGrid keeps custom args, and they come back in its events.
            custom_args={"invoice": request.invoice_number, "step": request.step_id},
            categories=[request.template],
        )

    def portal_url(self, session: Session, debtor_id: str) -> str | None:
        """The debtor's personal page, signed now; None while the portal is not configured."""
        secret = self._settings.portal_secret
        if secret is None:
            return None
        version = key_version(session, debtor_id)
        return personal_link(
            self._settings.public_url, secret.get_secret_value(), debtor_id, version
        )

    def dossier_link(self, number: str) -> dict[str, object]:
        """The legal file's signed link and its expiry, for the legal partner (none while
        RELANCE_DOSSIER_LINK_SECRET is unset: the message then offers the file on request)."""
        secret = self._settings.dossier_link_secret
        if secret is None:
            return {}
        url, expires = dossier_link(
            self._settings.public_url,
            secret.get_secret_value(),
            number,
            now=datetime.now(UTC),
            valid_for=timedelta(days=self._settings.dossier_link_days),
        )
        return {"dossier_url": url, "dossier_expires": expires.date()}

    def _address(self, recipient: Recipient, debtor: Debtor) -> tuple[str, str | None]:
        match recipient:
            case Recipient.DEBTOR:
                return debtor.email, debtor.name
            case Recipient.MEDIATOR:
                return self._settings.mediator_email, None
            case Recipient.LEGAL_PARTNER:
                return self._settings.legal_partner_email, None
            case Recipient.COLLECTORS:
                return self._settings.collectors_email, None

    def statement(
        self,
        invoice: Invoice,
        debtor: Debtor,
        payments: list[Payment],
        outstanding: Money,
        day: date,
    ) -> AmountDue | None:
        """The statement of amounts of `invoice` to `day` (None: no rate is known)."""
        try:
            return statement_for(
                invoice, debtor.country, payments, outstanding, day, self._settings.interest_clause
            )
        except RateUnknownError:
            return None

    def notice_days(self, invoice: Invoice) -> int:
        return _notice_days(self._settings, invoice)

    def notice_rules(self, invoice: Invoice) -> tuple[int, bool]:
        """The formal notice's business days, and whether they run from receipt."""
        playbook = _playbook_of(self._settings, invoice)
        if playbook is None:
            return DEFAULT_NOTICE_DAYS, False
        return playbook.notice_deadline_business_days, playbook.notice_deadline_from == "receipt"

    def context_for(
        self, request: SendRequest, invoice: Invoice, debtor: Debtor, language: str
    ) -> MessageContext:
        """What the templates of `request` may use (every channel renders from it)."""
        with Session(self._engine) as session:
            payments = list(payments_of(session, request.invoice_number))
        return self.build_context(self._settings, request, invoice, debtor, language, payments)

    def _context(
        self,
        request: SendRequest,
        invoice: Invoice,
        debtor: Debtor,
        payments: list[Payment],
        language: str,
    ) -> MessageContext:
        return self.build_context(self._settings, request, invoice, debtor, language, payments)

    @staticmethod
    def build_context(
        settings: Settings,
        request: SendRequest,
        invoice: Invoice,
        debtor: Debtor,
        language: str,
        payments: Sequence[Payment] = (),
    ) -> MessageContext:
        """What templates see of an invoice (call scripts use it too, outside an activity)."""
        amount = Money.of(invoice.amount, invoice.currency)
        found = _statement(settings, invoice, debtor, list(payments), request)
        statement = found if request.as_of > invoice.due_date else None
        days = _notice_days(settings, invoice)
        costs: LatePaymentCosts | None = None
        if request.template == LATE_PAYMENT_STATEMENT_TEMPLATE:
            # The statement of late-payment costs speaks of the settled invoice's costs, not of
            # a balance: on time or without a known rate it has nothing to say, and its render
            # fails (the send is recorded as failed) rather than state a guess.
            with contextlib.suppress(RateUnknownError, ValueError):
                costs = late_costs_for(
                    invoice, debtor.country, list(payments), settings.interest_clause
                )
            statement = None
        context = MessageContext(
            language=language,
            tone=request.tone,
            invoice_number=invoice.number,
            issue_date=invoice.issue_date,
            due_date=invoice.due_date,
            amount=amount,
            outstanding=request.outstanding,
            as_of=request.as_of,
            days_late=max(0, (request.as_of - invoice.due_date).days),
            debtor_name=debtor.name,
            creditor_name=settings.creditor_name,
            payment_instructions=settings.payment_instructions,
            interest=statement.interest if statement else None,
            interest_rate=statement.rate if statement else None,
            indemnity=statement.indemnity if statement else None,
            total_due=statement.total if statement else None,
            segments=list(statement.segments) if statement else None,
            provisional=statement.provisional if statement else None,
            # A portal acknowledgment names its own answer date; a notice counts business days.
            deadline=request.deadline
            or deadline_after(request.as_of, days, debtor.country, debtor.subdivision),
            deadline_business_days=days,
            paid=request.paid,
            approval_id=request.approval_id,
            target_stage=request.target_stage,
            installment_amount=request.installment_amount,
            installment_due_date=request.installment_due_date,
            reference=request.reference,
            outcome=request.outcome,
            notice_deadline=notice_deadline(request, debtor.country, debtor.subdivision),
            for_letter=True if request.channel == Channel.LETTER else None,
        )
        if costs is None:
            return context
        return context.model_copy(
            update={
                "interest": costs.interest,
                "indemnity": costs.indemnity,
                "total_due": costs.total,
                "segments": list(costs.segments),
                "provisional": costs.provisional,
                "paid_on": costs.paid_on,
            }
        )


def _mark(
    session: Session,
    keys: Sequence[str],
    status: InteractionStatus,
    *,
    error: str | None = None,
    subject: str | None = None,
    provider: str | None = None,
    provider_message_id: str | None = None,
) -> Sequence[Interaction]:
    """An attempt's outcome on the interactions reserved under `keys` (the caller commits)."""
    rows = interactions_under(session, keys)
    for row in rows:
        row.status = status
        row.attempts += 1
        row.error = error
        row.subject = subject or row.subject
        if status == InteractionStatus.SENT:
            row.provider = provider
            row.provider_message_id = provider_message_id
            row.sent_at = utcnow()
        session.add(row)
    return rows


def _statement(
    settings: Settings,
    invoice: Invoice,
    debtor: Debtor,
    payments: list[Payment],
    request: SendRequest,
) -> AmountDue | None:
    """The statement of amounts to the message's day, or None where no rate is known (a debtor
    outside the euro area without a contract rate): a formal notice then fails to render,
    loudly, rather than state a guessed figure; other messages go without the interest."""
    try:
        return statement_for(
            invoice,
            debtor.country,
            payments,
            request.outstanding,
            request.as_of,
            settings.interest_clause,
        )
    except RateUnknownError:
        return None


def _notice_days(settings: Settings, invoice: Invoice) -> int:
    """The formal notice's business days to pay, from the invoice's playbook."""
    playbook = _playbook_of(settings, invoice)
    return playbook.notice_deadline_business_days if playbook else DEFAULT_NOTICE_DAYS


def _playbook_of(settings: Settings, invoice: Invoice) -> Playbook | None:
    library = PlaybookLibrary(playbook_directories(settings.playbooks_dir))
    try:
        return library.get(invoice.playbook)
    except (PlaybookError, OSError):
        return None
