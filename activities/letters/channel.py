"""The letter path of the messaging activity: a PDF, posted once, with its proof on record.

After the messaging activity reserved `<invoice>:<step>:letter`, this module builds the letter
(the step's template: its subject as the "Objet", its text as the body, plus the statement of
amounts as a table and the deadline), writes a `letter` row, and hands the PDF to the postal
provider: the print queue, or Maileva for registered letters. The provider's id is on record
before the first call that could post anything, so a retry resumes instead of posting twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from activities.email.message import PermanentSendError, TransientSendError
from activities.letters.pdf import AmountLine, LetterContent, date_text, label, render_letter
from activities.letters.provider import LetterJob, PostalProvider
from contracts.errors import ErrorType
from domain.law import statement_of_amounts
from domain.money import Money
from domain.postal import InvalidAddress, PostalAddress, postal_address
from messages import RenderError, TemplateNotFound
from store.engine import transaction
from store.letters import Letter, LetterStatus
from store.tables import Debtor, InteractionStatus, Invoice, utcnow

if TYPE_CHECKING:
    from activities.messaging import MessagingActivities, SendOutcome, SendRequest

# Until the workflow passes it (SendRequest.registered), the formal notice is the registered one.
_REGISTERED_BY_DEFAULT = frozenset({"formal_notice"})


def is_registered(request: SendRequest) -> bool:
    if request.registered is not None:
        return request.registered
    return request.template in _REGISTERED_BY_DEFAULT


def send_letter(
    messaging: MessagingActivities,
    provider: PostalProvider,
    request: SendRequest,
    key: str,
) -> SendOutcome:
    from activities.messaging import notice_deadline

    with transaction(messaging.engine) as session:
        invoice = session.get(Invoice, request.invoice_number)
        debtor = session.get(Debtor, invoice.debtor_id) if invoice else None
    if invoice is None or debtor is None:
        raise ApplicationError(
            f"invoice {request.invoice_number} or its debtor is missing from the store",
            type=ErrorType.MISSING_INVOICE,
            non_retryable=True,
        )
    sender = creditor_address(messaging)
    if not debtor.postal_address:
        messaging.finish([key], InteractionStatus.FAILED, error="the debtor has no postal address")
        raise ApplicationError(
            "the debtor has no postal address", type=ErrorType.UNDELIVERABLE, non_retryable=True
        )
    recipient = PostalAddress.model_validate(debtor.postal_address)
    registered = is_registered(request)
    language = messaging.renderer.language_for(debtor.language)
    try:
        context = messaging.context_for(request, invoice, debtor, language)
        rendered = messaging.renderer.render(request.template, context)
    except (TemplateNotFound, RenderError) as exc:
        messaging.finish([key], InteractionStatus.FAILED, error=str(exc))
        raise ApplicationError(
            str(exc), type=ErrorType.TEMPLATE_NOT_FOUND, non_retryable=True
        ) from exc
    if registered and request.notice_days is None and request.deadline is None:
        # A registered letter states the formal notice's deadline as the playbook gives it.
        days, from_receipt = messaging.notice_rules(invoice)
        request = request.model_copy(
            update={"notice_days": days, "deadline_from_receipt": from_receipt}
        )
    deadline_note: str | None
    if request.deadline_from_receipt and request.notice_days:
        deadline_note = label(language, "deadline_receipt", days=request.notice_days)
    else:
        deadline = notice_deadline(request, debtor.country, debtor.subdivision)
        deadline_note = (
            label(language, "deadline", date=date_text(deadline, language)) if deadline else None
        )
    content = LetterContent(
        language=language,
        sender=sender,
        recipient=recipient,
        dated=request.as_of,
        reference=invoice.number,
        subject=rendered.subject,
        body=rendered.text,
        amounts=amount_lines(request, invoice, language),
        deadline_note=deadline_note,
        signature=messaging.settings.creditor_name,
        registered=registered,
    )
    pdf = render_letter(content)
    job = LetterJob(
        key=key,
        invoice_number=invoice.number,
        title=f"{invoice.number} {request.step_id}",
        registered=registered,
        pdf=pdf.pdf,
        pages=pdf.pages,
        sender=sender,
        recipient=recipient,
    )
    return post_letter(
        messaging, provider, job, step_id=request.step_id, keys=[key], subject=rendered.subject
    )


def post_letter(
    messaging: MessagingActivities,
    provider: PostalProvider,
    job: LetterJob,
    *,
    step_id: str,
    keys: Sequence[str],
    subject: str,
) -> SendOutcome:
    """Hand `job` to the postal provider once, with a `letter` row for its proof, and mark the
    messages reserved under `keys` (one per invoice the letter is about) with the outcome."""
    from activities.messaging import SendOutcome

    key = job.key
    with transaction(messaging.engine) as session:
        letter = session.get(Letter, key)
        if letter is None:
            session.add(
                Letter(
                    key=key,
                    invoice_number=job.invoice_number,
                    step_id=step_id,
                    registered=job.registered,
                    provider=provider.name,
                    pages=job.pages,
                    addresses={
                        "sender": job.sender.model_dump(mode="json"),
                        "recipient": job.recipient.model_dump(mode="json"),
                    },
                )
            )

    def remember(ref: str) -> None:
        with transaction(messaging.engine) as session:
            row = session.get(Letter, key)
            if row is not None:
                row.provider_ref = ref
                row.updated_at = utcnow()
                session.add(row)

    known = letter.provider_ref if letter is not None else None
    try:
        receipt = provider.post(job, known, remember)
    except PermanentSendError as exc:
        messaging.finish(keys, InteractionStatus.FAILED, error=str(exc), subject=subject)
        _set_status(messaging, key, LetterStatus.FAILED)
        raise ApplicationError(
            str(exc), type=ErrorType.PERMANENT_SEND_ERROR, non_retryable=True
        ) from exc
    except TransientSendError as exc:
        messaging.finish(keys, InteractionStatus.PENDING, error=str(exc), subject=subject)
        raise
    with transaction(messaging.engine) as session:
        row = session.get(Letter, key)
        if row is not None:
            row.provider_ref = receipt.provider_ref
            row.provider_recipient_ref = receipt.recipient_ref
            row.tracking_number = receipt.tracking_number or row.tracking_number
            if row.status == LetterStatus.PENDING:
                row.status = receipt.status
            row.posted_at = row.posted_at or utcnow()
            row.updated_at = utcnow()
            session.add(row)
    messaging.finish(
        keys,
        InteractionStatus.SENT,
        subject=subject,
        provider=receipt.provider,
        provider_message_id=receipt.tracking_number or receipt.provider_ref,
    )
    return SendOutcome(
        key=key, status=InteractionStatus.SENT, provider_message_id=receipt.provider_ref
    )


def creditor_address(messaging: MessagingActivities) -> PostalAddress:
    settings = messaging.settings
    raw = settings.creditor_address
    if not raw:
        raise ApplicationError(
            "letters need the creditor's address: set RELANCE_CREDITOR_ADDRESS",
            type=ErrorType.CHANNEL_UNAVAILABLE,
            non_retryable=True,
        )
    try:
        return postal_address(name=raw.get("name", settings.creditor_name), **_fields(raw))
    except (InvalidAddress, TypeError, ValidationError) as exc:
        raise ApplicationError(
            f"RELANCE_CREDITOR_ADDRESS is not a valid address: {exc}",
            type=ErrorType.CHANNEL_UNAVAILABLE,
            non_retryable=True,
        ) from exc


def _fields(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k != "name"}


def amount_lines(request: SendRequest, invoice: Invoice, language: str) -> list[AmountLine]:
    amount = Money.of(invoice.amount, invoice.currency)
    lines = [AmountLine(label(language, "invoice_amount", number=invoice.number), amount)]
    if request.outstanding != amount:
        lines.append(AmountLine(label(language, "paid"), amount - request.outstanding))
        lines.append(AmountLine(label(language, "outstanding"), request.outstanding))
    if request.as_of > invoice.due_date:
        statement = statement_of_amounts(request.outstanding, invoice.due_date, request.as_of)
        lines.append(AmountLine(label(language, "interest"), statement.interest))
        lines.append(AmountLine(label(language, "indemnity"), statement.indemnity))
        lines.append(AmountLine(label(language, "total"), statement.total, total=True))
    return lines


def _set_status(messaging: MessagingActivities, key: str, status: LetterStatus) -> None:
    with transaction(messaging.engine) as session:
        row = session.get(Letter, key)
        if row is not None:
            row.status = status
            row.updated_at = utcnow()
            session.add(row)
