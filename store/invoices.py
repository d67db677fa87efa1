"""Reading and writing invoices and debtors: the queries the API and activities share."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from domain.lifecycle import InvoiceFacts
from domain.playbook import Playbook
from store.tables import Approval, Debtor, Event, Interaction, Invoice, Payment, utcnow


def fingerprint(facts: InvoiceFacts) -> str:
    """A stable digest of what the back office handed over, to tell a replay from a conflict."""
    data = facts.model_dump(mode="json")
    # Fields added later count only when set, so invoices recorded before keep their digest.
    if data.get("interest_clause") is None:
        data.pop("interest_clause", None)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def upsert_debtor(session: Session, debtor: Debtor) -> Debtor:
    existing = session.get(Debtor, debtor.id)
    if existing is None:
        session.add(debtor)
        return debtor
    # Contact details change (a new accounts-payable address): the newest hand-over wins.
    for field in ("name", "email", "country", "language", "segment"):
        setattr(existing, field, getattr(debtor, field))
    # A number or an address the back office sends replaces ours; one it leaves out stays. A
    # new number is worth trying again after a STOP was for the old one or it was wrong.
    if debtor.phone is not None and debtor.phone != existing.phone:
        existing.phone = debtor.phone
        existing.sms_stopped_at = existing.phone_invalid_at = None
    if debtor.postal_address is not None:
        existing.postal_address = debtor.postal_address
    existing.updated_at = utcnow()
    session.add(existing)
    return existing


def add_invoice(session: Session, facts: InvoiceFacts, playbook: Playbook) -> Invoice:
    invoice = Invoice(
        number=facts.number,
        debtor_id=facts.debtor_id,
        amount=facts.amount.amount,
        currency=facts.amount.currency,
        issue_date=facts.issue_date,
        due_date=facts.due_date,
        fingerprint=fingerprint(facts),
        playbook=playbook.name,
        playbook_version=playbook.version,
        interest_clause=facts.interest_clause,
        outstanding=facts.amount.amount,
    )
    session.add(invoice)
    return invoice


# Built once: every email reads it (SQLAlchemy spends more building a statement than running it).
_PAYMENTS = (
    select(Payment).where(Payment.invoice_number == bindparam("number")).order_by(col(Payment.id))
)


def payments_of(session: Session, number: str) -> Sequence[Payment]:
    return session.exec(_PAYMENTS, params={"number": number}).all()


def interactions_of(session: Session, number: str) -> Sequence[Interaction]:
    return session.exec(
        select(Interaction)
        .where(Interaction.invoice_number == number)
        .order_by(col(Interaction.created_at), col(Interaction.id))
    ).all()


def events_of(session: Session, number: str) -> Sequence[Event]:
    return session.exec(
        select(Event).where(Event.invoice_number == number).order_by(col(Event.id))
    ).all()


def approvals(session: Session, status: str | None = None) -> Sequence[Approval]:
    query = select(Approval).order_by(col(Approval.requested_at))
    if status is not None:
        query = query.where(Approval.status == status)
    return session.exec(query).all()
