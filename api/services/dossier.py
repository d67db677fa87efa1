"""The legal file of an invoice: read everything the store holds, build one archive."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlmodel import Session, SQLModel, col, select

from api.errors import Invalid, NotFound
from api.services.invoices import history
from config import Settings
from domain.law import (
    Acknowledgment,
    AcknowledgmentKind,
    LimitationStatus,
    limitation_as_of,
    limitation_status,
)
from domain.money import Money
from domain.rates import RateUnknownError
from messages.dossier import DossierData, Party, SentCopy, build_dossier
from store.invoices import interactions_of, payments_of
from store.messages import sent_messages_of
from store.statements import received_on, statement_for
from store.tables import (
    Approval,
    Debtor,
    Dispute,
    Invoice,
    PaymentPlan,
    Task,
)


def _rows(session: Session, table: type[SQLModel], number: str, order: Any) -> list[dict[str, Any]]:
    found = session.exec(
        select(table).where(table.invoice_number == number).order_by(order)  # type: ignore[attr-defined]
    ).all()
    return [row.model_dump(mode="json") for row in found]


def _acknowledgments(session: Session, invoice: Invoice) -> list[Acknowledgment]:
    """Acknowledgments of the debt the store knows: payments and signed (active) plans."""
    found = [
        Acknowledgment(on=received_on(p), kind=AcknowledgmentKind.PAYMENT)
        for p in payments_of(session, invoice.number)
    ]
    plans = session.exec(
        select(PaymentPlan).where(
            PaymentPlan.invoice_number == invoice.number,
            col(PaymentPlan.status).in_(["active", "completed", "broken"]),
        )
    ).all()
    found += [
        Acknowledgment(
            on=(p.decided_at or p.proposed_at).date(), kind=AcknowledgmentKind.SIGNED_PLAN
        )
        for p in plans
    ]
    return found


def _limitation(session: Session, invoice: Invoice, as_of: date) -> LimitationStatus:
    """The limitation date the invoice shows: the workflow's, which counts every acknowledgment
    it recorded (promises too, which the store keeps no trace of as such), so the file never
    states an earlier date than the invoice. Without one (nothing owed, or a row written before
    the read model carried it), the acknowledgments the store itself holds."""
    if invoice.limitation_date is not None:
        return limitation_as_of(invoice.limitation_date, as_of)
    return limitation_status(invoice.due_date, _acknowledgments(session, invoice), as_of)


def dossier_data(session: Session, settings: Settings, number: str, as_of: date) -> DossierData:
    invoice = session.get(Invoice, number)
    if invoice is None:
        raise NotFound(f"invoice {number} is unknown: it was never handed over")
    debtor = session.get(Debtor, invoice.debtor_id)
    assert debtor is not None  # a foreign key
    payments = list(payments_of(session, number))
    outstanding = Money.of(invoice.outstanding, invoice.currency)
    try:
        statement = statement_for(
            invoice, debtor.country, payments, outstanding, as_of, settings.interest_clause
        )
    except RateUnknownError as exc:
        raise Invalid(
            f"the legal file of invoice {number} cannot state its interest: {exc}"
        ) from exc
    by_key = {row.idempotency_key: row for row in interactions_of(session, number)}
    sent = []
    for message in sent_messages_of(session, number):
        interaction = by_key.get(message.interaction_key)
        sent.append(
            SentCopy(
                step_id=interaction.step_id if interaction else "",
                channel=message.channel,
                recipient=message.recipient,
                to_email=message.to_email,
                to_name=message.to_name,
                subject=message.subject,
                text=message.text,
                html=message.html,
                sent_at=message.sent_at,
                provider=message.provider,
                provider_message_id=message.provider_message_id,
                content_hash=message.content_hash,
                delivery_status=interaction.delivery_status if interaction else None,
                delivery_at=interaction.delivery_at if interaction else None,
                delivery_reason=interaction.delivery_reason if interaction else None,
            )
        )
    recorded = {m.interaction_key for m in sent_messages_of(session, number)}
    attempts = [
        row.model_dump(mode="json", exclude={"id"})
        for row in by_key.values()
        if row.idempotency_key not in recorded
    ]
    invoice_data = invoice.model_dump(mode="json", exclude={"fingerprint", "revision"})
    return DossierData(
        as_of=as_of,
        creditor=Party(name=settings.creditor_name),
        debtor=Party(name=debtor.name, id=debtor.id, email=debtor.email, country=debtor.country),
        invoice=invoice_data,
        timeline=[entry.model_dump(mode="json") for entry in history(session, number)],
        messages=sent,
        attempts=attempts,
        payments=[p.model_dump(mode="json", exclude={"id"}) for p in payments],
        disputes=_rows(session, Dispute, number, col(Dispute.opened_at)),
        payment_plans=_rows(session, PaymentPlan, number, col(PaymentPlan.proposed_at)),
        decisions=_rows(session, Approval, number, col(Approval.requested_at)),
        tasks=_rows(session, Task, number, col(Task.created_at)),
        statement=statement,
        limitation=_limitation(session, invoice, as_of),
        interest_clause=invoice.interest_clause or settings.contractual_interest_rate,
    )


def dossier(
    session: Session, settings: Settings, number: str, *, as_of: date, created_at: datetime
) -> bytes:
    """The invoice's legal file as zip bytes (see messages.dossier for what it holds)."""
    return build_dossier(dossier_data(session, settings, number, as_of), created_at)
