"""The debtor portal's service: who the link is for, what their page shows, and what they do.

Every action goes through the same service as the REST API (collection, payments, debtors)
with the actor `debtor (portal)`, so the workflow applies the same rules as for a collector
and the invoice's history says who acted. Answers to the debtor are messages sent by a
workflow (api/portal/notices.py), never by the API itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import filetype
from anyio import to_thread
from email_validator import EmailNotValidError, validate_email
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.client import Client

from activities.payments import (
    Checkout,
    CheckoutLine,
    InvalidWebhook,
    PaymentProvider,
    ProviderError,
    StripeProvider,
)
from api.auth import Principal, Role
from api.collection_schemas import DisputeCreate, PlanCreate
from api.debtor_schemas import ContactCorrection
from api.errors import ApiError, Conflict, Invalid, NotFound, Unavailable
from api.portal.notices import send_notice
from api.schemas import PaymentCreate
from api.services import collection, debtors, invoices
from api.services.collection import apply, new_id
from api.services.legal_file import partner_reference_of
from config import Settings
from domain.holds import PromiseToPay
from domain.law import AmountDue
from domain.lifecycle import HOLD_STAGES, Stage
from domain.money import Money
from domain.playbook import Playbook
from domain.portal import (
    PORTAL_ACTOR,
    DisputeReason,
    PortalRules,
    equal_installments,
    personal_link,
    plan_refusal,
    promise_refusal,
    read_link_token,
    rf_reference,
)
from domain.rates import RateUnknownError
from store.engine import transaction
from store.invoices import payments_of
from store.portal import (
    PortalAttachment,
    PortalCheckout,
    key_version,
    open_invoices,
    record_portal_event,
    rotate_key,
)
from store.portfolio import open_numbers
from store.statements import statement_for
from store.tables import (
    Debtor,
    Dispute,
    InboundEvent,
    Interaction,
    InteractionStatus,
    Invoice,
    PaymentPlan,
    Task,
)
from workflows.invoice import InvoiceWorkflow

log = logging.getLogger("relance.portal")

# How the portal appears in audit fields: the same label the history shows.
PORTAL_PRINCIPAL = Principal(
    key_id=0, role=Role.COLLECTOR, prefix="portal", label=PORTAL_ACTOR, actor=PORTAL_ACTOR
)

# What a debtor may upload with a dispute, recognised by the file's bytes, not its name.
ALLOWED_MEDIA = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}
# Stages where the debtor may still act on an invoice (the workflow has the last word).
_ACTIONABLE_HOLDS = frozenset({Stage.PROMISED, Stage.PAUSED})
DATA_REQUEST_KINDS = ("access", "rectification", "erasure", "other")
# GDPR art. 12(3): a request about personal data is answered within one month.
DATA_REQUEST_DAYS = 30
_REF = re.compile(r"^[A-Z]{1,2}-[0-9A-F]{12}$")
DONE_KEYS = frozenset(
    {"dispute", "plan_active", "plan_proposed", "promise", "contact", "data", "paid"}
)


class BadSignature(ApiError):
    """A provider notification that does not verify: forged, altered, or too old (refused like
    an unsigned SendGrid or Twilio callback)."""

    status_code = 403


class InvalidLink(Exception):
    """Altered, expired, revoked, unknown or absent: all answered alike, on purpose."""


def today() -> date:
    return datetime.now(UTC).date()


# ------------------------------------------------------------------ the link


@dataclass(frozen=True)
class Visit:
    debtor_id: str
    language: str
    token: str


def _secret(settings: Settings) -> str:
    if settings.portal_secret is None:
        raise InvalidLink
    return settings.portal_secret.get_secret_value()


def resolve(engine: Engine, settings: Settings, token: str | None) -> Visit:
    if not token or len(token) > 512:
        raise InvalidLink
    claim = read_link_token(
        _secret(settings), token, max_age=timedelta(days=settings.portal_link_days)
    )
    if claim is None:
        raise InvalidLink
    with Session(engine) as session:
        debtor = session.get(Debtor, claim.debtor_id)
        if debtor is None or key_version(session, debtor.id) != claim.version:
            raise InvalidLink
        return Visit(debtor_id=debtor.id, language=debtor.language, token=token)


def rotate_link(engine: Engine, settings: Settings, debtor_id: str, by: str) -> dict[str, object]:
    """Void every link the debtor holds; the answer carries their new one."""
    with transaction(engine) as session:
        if session.get(Debtor, debtor_id) is None:
            raise NotFound(f"debtor {debtor_id} is unknown")
        version = rotate_key(session, debtor_id, by)
    log.info("portal key of debtor %s rotated to version %d by %s", debtor_id, version, by)
    link = None
    if settings.portal_secret is not None:
        secret = settings.portal_secret.get_secret_value()
        link = personal_link(settings.public_url, secret, debtor_id, version)
    return {"debtor_id": debtor_id, "version": version, "link": link}


# ------------------------------------------------------------------ the page


@dataclass
class InvoiceView:
    number: str
    issue_date: date
    due_date: date
    amount: Money
    outstanding: Money
    stage: str
    days_late: int
    rf: str
    rules: PortalRules
    statement: AmountDue | None = None
    dispute: Dispute | None = None
    plan: PaymentPlan | None = None
    # Handed off and still open: the legal partner has the file. Still due (and payable here),
    # but no plan, promise or complaint on the portal: those go through the partner.
    legal: bool = False
    partner_reference: str | None = None

    @property
    def actionable(self) -> bool:
        if self.legal:
            return False
        return self.stage not in HOLD_STAGES or self.stage in _ACTIONABLE_HOLDS

    @property
    def plan_last(self) -> date:
        return today() + timedelta(days=self.rules.plan_max_days)

    @property
    def promise_last(self) -> date:
        return today() + timedelta(days=self.rules.promise_max_days)


@dataclass
class SentView:
    at: datetime
    subject: str
    invoice_number: str


@dataclass
class PageView:
    debtor_name: str
    email: str
    language: str
    today: date
    invoices: list[InvoiceView]
    settled: list[Invoice]
    sent: list[SentView]
    payments_enabled: bool
    upload_max_mb: int
    reasons: tuple[str, ...] = tuple(reason.value for reason in DisputeReason)
    data_kinds: tuple[str, ...] = DATA_REQUEST_KINDS
    done: str | None = None
    ref: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


def _rf(number: str) -> str:
    try:
        return rf_reference(number)
    except ValueError:  # a number longer than an RF reference holds: quote it as it is
        return number


def _invoice_view(session: Session, settings: Settings, invoice: Invoice, day: date) -> InvoiceView:
    playbook: Playbook = debtors.playbook_named(settings, invoice.playbook)
    outstanding = Money.of(invoice.outstanding, invoice.currency)
    view = InvoiceView(
        number=invoice.number,
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        amount=Money.of(invoice.amount, invoice.currency),
        outstanding=outstanding,
        stage=invoice.stage,
        days_late=max(0, (day - invoice.due_date).days),
        rf=_rf(invoice.number),
        rules=playbook.portal,
    )
    if day > invoice.due_date and playbook.claim_late_fees and outstanding.is_positive:
        debtor = session.get(Debtor, invoice.debtor_id)
        payments = list(payments_of(session, invoice.number))
        # The same statement as the letters: payments on their dates, the contract's rate.
        with contextlib.suppress(RateUnknownError, ValueError):
            view.statement = statement_for(
                invoice,
                debtor.country if debtor else "FR",
                payments,
                outstanding,
                day,
                settings.interest_clause,
            )
    if invoice.stage == Stage.HANDED_OFF:  # (a closed one is not on the open list)
        view.legal = True
        view.partner_reference = partner_reference_of(session, invoice.number)
    view.dispute = session.exec(
        select(Dispute).where(Dispute.invoice_number == invoice.number, Dispute.status == "open")
    ).first()
    view.plan = session.exec(
        select(PaymentPlan).where(
            PaymentPlan.invoice_number == invoice.number,
            col(PaymentPlan.status).in_(["proposed", "active"]),
        )
    ).first()
    return view


def _sent(session: Session, numbers: list[str]) -> list[SentView]:
    rows = session.exec(
        select(Interaction)
        .where(
            col(Interaction.invoice_number).in_(numbers),
            Interaction.recipient == "debtor",
            Interaction.status == InteractionStatus.SENT,
        )
        .order_by(col(Interaction.sent_at).desc(), col(Interaction.id).desc())
    ).all()
    seen: set[str] = set()
    views: list[SentView] = []
    for row in rows:
        # A consolidated message lists several invoices: show it once.
        message = row.batch_key or row.idempotency_key
        if message in seen or row.sent_at is None:
            continue
        seen.add(message)
        views.append(
            SentView(at=row.sent_at, subject=row.subject or "", invoice_number=row.invoice_number)
        )
    return views


def page(
    engine: Engine, settings: Settings, visit: Visit, done: str | None, ref: str | None
) -> PageView:
    day = today()
    with Session(engine) as session:
        debtor = session.get(Debtor, visit.debtor_id)
        if debtor is None:
            raise InvalidLink
        every = session.exec(
            select(Invoice)
            .where(Invoice.debtor_id == debtor.id)
            .order_by(col(Invoice.due_date), col(Invoice.number))
        ).all()
        still = open_numbers(session, [invoice.number for invoice in every])
        open_ = [i for i in every if i.number in still]
        views = [_invoice_view(session, settings, invoice, day) for invoice in open_]
        sent = _sent(session, [invoice.number for invoice in every])
    return PageView(
        debtor_name=debtor.name,
        email=debtor.email,
        language=visit.language,
        today=day,
        invoices=views,
        settled=[i for i in every if i.number not in still],
        sent=sent,
        payments_enabled=settings.payments_enabled,
        upload_max_mb=max(1, settings.portal_upload_max_bytes // (1024 * 1024)),
        done=done if done in DONE_KEYS else None,
        ref=ref if ref and _REF.match(ref) else None,
    )


def _own_open_invoice(
    engine: Engine, visit: Visit, number: str, *, paying: bool = False
) -> Invoice:
    """The invoice, if it is this debtor's and still open. Another debtor's invoice is
    answered exactly like an unknown one. One with the legal partner may only be paid here:
    a plan, a promise or a complaint goes through the partner (the workflow refuses them)."""
    with Session(engine) as session:
        invoice = session.get(Invoice, number)
        still = invoice is not None and bool(open_numbers(session, [number]))
    if invoice is None or invoice.debtor_id != visit.debtor_id:
        raise NotFound(f"invoice {number} is not on this page")
    if not still:
        raise Conflict(f"invoice {number} is already closed ({invoice.stage})")
    if invoice.stage == Stage.HANDED_OFF and not paying:
        raise Conflict(
            f"invoice {number} is with our legal partner: it can still be paid here or by "
            "transfer; for a payment plan, a promise or a complaint, contact the partner"
        )
    return invoice


# ------------------------------------------------------------------ paying


def provider_of(settings: Settings) -> PaymentProvider | None:
    if not (settings.stripe_api_key and settings.stripe_webhook_secret):
        return None
    return StripeProvider(
        settings.stripe_api_key.get_secret_value(),
        settings.stripe_webhook_secret.get_secret_value(),
        api_base=settings.stripe_api_base,
        tolerance_seconds=settings.stripe_webhook_tolerance_seconds,
        payment_methods=settings.stripe_payment_methods,
    )


@dataclass(frozen=True)
class CheckoutView:
    url: str
    total: Money
    numbers: list[str]


def _checkout_lines(engine: Engine, visit: Visit, numbers: list[str]) -> list[CheckoutLine]:
    if not numbers:
        raise Invalid("invoices: tick at least one invoice to pay")
    lines = []
    for number in dict.fromkeys(numbers):
        invoice = _own_open_invoice(engine, visit, number, paying=True)
        outstanding = Money.of(invoice.outstanding, invoice.currency)
        if not outstanding.is_positive:
            raise Conflict(f"invoice {number} has nothing left to pay")
        lines.append(CheckoutLine(invoice_number=number, amount=outstanding))
    if len({line.amount.currency for line in lines}) != 1:
        raise Invalid("invoices: one payment covers invoices of one currency; pay them apart")
    return lines


def _store_checkout(engine: Engine, provider: str, visit: Visit, lines: list[CheckoutLine]) -> str:
    reference = f"chk-{uuid.uuid4().hex}"
    with transaction(engine) as session:
        session.add(
            PortalCheckout(
                id=reference,
                provider=provider,
                debtor_id=visit.debtor_id,
                lines=[
                    {
                        "invoice_number": line.invoice_number,
                        "amount": str(line.amount.amount),
                        "currency": line.amount.currency,
                    }
                    for line in lines
                ],
            )
        )
    return reference


def _opened(engine: Engine, reference: str, checkout: Checkout) -> None:
    with transaction(engine) as session:
        row = session.get(PortalCheckout, reference)
        assert row is not None
        row.session_id = checkout.id
        session.add(row)


async def start_checkout(
    engine: Engine, settings: Settings, visit: Visit, numbers: list[str]
) -> CheckoutView:
    provider = provider_of(settings)
    if provider is None:
        raise NotFound("online payment is not available")
    lines = await to_thread.run_sync(_checkout_lines, engine, visit, numbers)
    reference = await to_thread.run_sync(_store_checkout, engine, provider.name, visit, lines)
    base = settings.public_url.rstrip("/")
    try:
        checkout = await to_thread.run_sync(
            lambda: provider.create_checkout(
                lines,
                reference=reference,
                success_url=f"{base}/portal?done=paid",
                cancel_url=f"{base}/portal",
                locale=visit.language,
            )
        )
    except ProviderError as err:
        raise Unavailable(f"{err}; nothing was charged, try again in a moment") from err
    await to_thread.run_sync(_opened, engine, reference, checkout)
    total = lines[0].amount
    for line in lines[1:]:
        total = total + line.amount
    return CheckoutView(
        url=checkout.url, total=total, numbers=[line.invoice_number for line in lines]
    )


def _seen_event(engine: Engine, event_id: str) -> bool:
    with Session(engine) as session:
        return session.get(InboundEvent, event_id) is not None


def _checkout_by_session(engine: Engine, session_id: str) -> PortalCheckout | None:
    with Session(engine) as session:
        return session.exec(
            select(PortalCheckout).where(PortalCheckout.session_id == session_id)
        ).first()


def _mark_processed(engine: Engine, event_id: str, checkout: PortalCheckout) -> None:
    try:
        with transaction(engine) as session:
            session.add(InboundEvent(id=event_id, source="stripe", kind="checkout_paid"))
            row = session.get(PortalCheckout, checkout.id)
            if row is not None and row.completed_at is None:
                row.completed_at = datetime.now(UTC)
                row.completed_event_id = event_id
                session.add(row)
    except IntegrityError:
        pass  # the same event processed concurrently: its payments are idempotent anyway


def payment_reference(session_id: str) -> str:
    """The payment's reference on every invoice of a session: one session pays once, however
    many times Stripe (or anyone replaying its events) reports it."""
    return f"stripe:{session_id}"[:128]


async def stripe_webhook(
    engine: Engine, client: Client, settings: Settings, payload: bytes, signature: str | None
) -> dict[str, object]:
    provider = provider_of(settings)
    if provider is None:
        raise Unavailable("Stripe payments are not configured (RELANCE_STRIPE_API_KEY)")
    try:
        paid = provider.completed_checkout(payload, signature)
    except InvalidWebhook as err:
        raise BadSignature(str(err)) from err
    if paid is None:
        return {"received": True, "recorded": []}
    if await to_thread.run_sync(_seen_event, engine, paid.event_id):
        return {"received": True, "recorded": [], "duplicate": True}
    checkout = await to_thread.run_sync(_checkout_by_session, engine, paid.session_id)
    if checkout is None:
        # Not a session the portal opened (another integration on the same account).
        log.warning("Stripe event %s is about an unknown session", paid.event_id)
        return {"received": True, "recorded": []}
    recorded: list[str] = []
    for line in checkout.lines:
        body = PaymentCreate(
            reference=payment_reference(paid.session_id),
            currency=line["currency"],
            amount=Decimal(line["amount"]),
        )
        try:
            # The REST API's own path: the workflow dedupes on the reference.
            await invoices.record_payment(engine, client, settings, line["invoice_number"], body)
        except Conflict as err:
            # Closed meanwhile (paid by transfer, cancelled): the money needs a person.
            log.warning("Stripe payment for a closed invoice %s: %s", line["invoice_number"], err)
            continue
        recorded.append(line["invoice_number"])
    await to_thread.run_sync(_mark_processed, engine, paid.event_id, checkout)
    log.info("Stripe event %s recorded on %d invoice(s)", paid.event_id, len(recorded))
    return {"received": True, "recorded": recorded}


# ------------------------------------------------------------------ disputes


@dataclass(frozen=True)
class Upload:
    data: bytes
    # What the browser claimed; only logged as a mismatch, never trusted.
    claimed_type: str | None


def _amount(raw: str | None) -> Decimal | None:
    text = (raw or "").strip().replace(",", ".").replace(" ", "")
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Invalid(f"amount: {raw!r} is not an amount") from None
    if value <= 0:
        raise Invalid("amount: the disputed amount must be positive")
    return value


def check_upload(settings: Settings, upload: Upload) -> str:
    """The attachment's media type, from its bytes; refused when too large or not allowed."""
    if len(upload.data) > settings.portal_upload_max_bytes:
        raise TooLarge(
            f"attachment: at most {settings.portal_upload_max_bytes // (1024 * 1024)} MB"
        )
    kind = filetype.guess(upload.data)
    media = kind.mime if kind is not None else None
    if media not in ALLOWED_MEDIA:
        raise UnsupportedMedia("attachment: only PDF, PNG and JPEG files are accepted")
    return media


class TooLarge(ApiError):
    status_code = 413


class UnsupportedMedia(ApiError):
    status_code = 415


def _store_attachment(
    settings: Settings, engine: Engine, number: str, dispute_id: str, upload: Upload, media: str
) -> None:
    folder: Path = settings.resolved_portal_upload_dir
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    attachment_id = new_id("A")
    # An opaque name without extension: nothing the debtor chose reaches the file system.
    path = folder / attachment_id
    path.write_bytes(upload.data)
    path.chmod(0o600)
    with transaction(engine) as session:
        session.add(
            PortalAttachment(
                id=attachment_id,
                invoice_number=number,
                dispute_id=dispute_id,
                media_type=media,
                size=len(upload.data),
                sha256=hashlib.sha256(upload.data).hexdigest(),
            )
        )


async def open_dispute(
    engine: Engine,
    client: Client,
    settings: Settings,
    visit: Visit,
    number: str,
    reason: str,
    details: str,
    amount: str | None,
    upload: Upload | None,
) -> str:
    invoice = await to_thread.run_sync(_own_open_invoice, engine, visit, number)
    try:
        picked = DisputeReason(reason)
    except ValueError:
        raise Invalid(
            f"reason: choose one of {', '.join(r.value for r in DisputeReason)}"
        ) from None
    details = details.strip()
    if picked == DisputeReason.OTHER and not details:
        raise Invalid("details: say what is wrong when the reason is 'other'")
    media = check_upload(settings, upload) if upload is not None else None
    text = f"{picked.value}: {details}" if details else picked.value
    disputed = _amount(amount)
    try:
        body = DisputeCreate(
            reason=text[:2000],
            currency=invoice.currency if disputed is not None else None,
            amount=disputed,
        )
    except ValidationError as err:
        raise Invalid(f"amount: {err.errors()[0]['msg']}") from None
    opened = await collection.open_dispute(engine, client, settings, number, body, PORTAL_PRINCIPAL)
    if upload is not None and media is not None:
        await to_thread.run_sync(
            _store_attachment, settings, engine, number, opened.dispute_id, upload, media
        )
    await send_notice(client, settings, "dispute_acknowledgment", number, opened.dispute_id)
    return opened.dispute_id


# ------------------------------------------------------------------ plans and promises


def _parse_date(raw: str, what: str) -> date:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise Invalid(f"{what}: {raw!r} is not a date (YYYY-MM-DD)") from None


async def propose_plan(
    engine: Engine,
    client: Client,
    settings: Settings,
    visit: Visit,
    number: str,
    count: int,
    first: str,
) -> tuple[str, str]:
    invoice = await to_thread.run_sync(_own_open_invoice, engine, visit, number)
    rules = debtors.playbook_named(settings, invoice.playbook).portal
    outstanding = Money.of(invoice.outstanding, invoice.currency)
    try:
        schedule = equal_installments(
            outstanding, count, _parse_date(first, "first installment"), rules.plan_interval_days
        )
    except ValueError as err:
        raise Invalid(f"installments: {err}") from None
    refusal = plan_refusal(rules, schedule, today())
    if refusal:
        raise Invalid(f"installments: {refusal}")
    body = PlanCreate.model_validate(
        {
            "installments": [
                {"due_date": day.isoformat(), "amount": str(money.amount)}
                for day, money in schedule
            ],
            "comment": "proposed by the debtor on their portal",
        }
    )
    proposed = await collection.propose_plan(
        engine, client, settings, number, body, PORTAL_PRINCIPAL
    )
    await send_notice(
        client, settings, "plan_outcome", number, proposed.plan_id, proposed.plan_status
    )
    return proposed.plan_id, proposed.plan_status


async def promise(
    engine: Engine, client: Client, settings: Settings, visit: Visit, number: str, until: str
) -> None:
    invoice = await to_thread.run_sync(_own_open_invoice, engine, visit, number)
    rules = debtors.playbook_named(settings, invoice.playbook).portal
    day = _parse_date(until, "promised date")
    refusal = promise_refusal(rules, day, today())
    if refusal:
        raise Invalid(f"promised date: {refusal}")
    request = PromiseToPay(promise_id=new_id("PR"), until=day, recorded_by=PORTAL_ACTOR)
    # The same Update a collector's promise goes through (api/services/tasks.py).
    await apply(engine, client, settings, number, InvoiceWorkflow.record_promise, request)


# ------------------------------------------------------------------ contact and personal data


async def correct_contact(
    engine: Engine, client: Client, settings: Settings, visit: Visit, email: str
) -> None:
    try:
        checked = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as err:
        raise Invalid(f"email: {err}") from None
    # The same correction a collector makes: stored, and every running invoice told.
    correction = ContactCorrection(email=checked.normalized, reason="corrected by the debtor")
    await debtors.correct_debtor_contact(
        engine, client, settings, visit.debtor_id, correction, PORTAL_ACTOR
    )


def data_request(engine: Engine, visit: Visit, kind: str, message: str) -> str:
    """A request about personal data (GDPR art. 15-17) becomes a task for ops, due in a month,
    and an entry in the history of the debtor's open invoices."""
    if kind not in DATA_REQUEST_KINDS:
        raise Invalid(f"kind: choose one of {', '.join(DATA_REQUEST_KINDS)}")
    if len(message) > 2000:
        raise Invalid("message: at most 2000 characters")
    now = datetime.now(UTC)
    with transaction(engine) as session:
        invoices_ = open_invoices(session, visit.debtor_id) or list(
            session.exec(select(Invoice).where(Invoice.debtor_id == visit.debtor_id)).all()
        )
        if not invoices_:
            raise NotFound("no invoice to attach the request to")
        reference = new_id("R")
        task = Task(
            id=f"{invoices_[0].number}:data_request:{reference}",
            invoice_number=invoices_[0].number,
            kind="data_request",
            title=f"Personal-data request ({kind}) from debtor {visit.debtor_id} on the portal: "
            "answer within one month",
            due_at=now + timedelta(days=DATA_REQUEST_DAYS),
            created_at=now,
            notes=message.strip() or None,
        )
        session.add(task)
        for invoice in invoices_:
            record_portal_event(
                session,
                invoice,
                f"data_request:{reference}",
                "data_request",
                f"Personal-data request ({kind}) by {PORTAL_ACTOR}: task {reference} for ops",
                {"by": PORTAL_ACTOR, "kind": kind, "task": task.id},
            )
    log.info("data request %s (%s) from debtor %s", reference, kind, visit.debtor_id)
    return reference
