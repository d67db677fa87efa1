"""A debtor's history as the risk score reads it, its open invoices, and its override.

The figures come from the read model the workflow's activities keep (invoices, payments,
disputes, events), so computing a score never asks Temporal.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import BindParameter, Row, bindparam
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, func, select

from domain.selection import RiskInputs
from store.open_invoices import still_open
from store.tables import Debtor, DebtorOverride, Dispute, Event, Invoice, Payment, utcnow

# Event kinds (written by the workflow's progress activity) that mean a commitment to pay was
# not kept: a lapsed promise to pay, and a payment plan broken by a missed installment.
BROKEN_COMMITMENT_KINDS = ("promise_broken", "plan_broken")
# Stages whose invoice no longer counts: a credit note cancelled it (nothing was owed).
_NOT_OWED = frozenset({"cancelled"})
# Stages where nothing is left to pay.
_SETTLED = frozenset({"paid", "cancelled"})
_WRITTEN_OFF = "written_off"
# An upheld dispute was the creditor's mistake: it says nothing against the debtor.
_UPHELD = "upheld"


# The statements every hand-over runs (the risk score reads the debtor's history), built once:
# SQLAlchemy spends more building and keying a statement than SQLite spends running it.
_DEBTOR: BindParameter[str] = bindparam("debtor")
# Not ORM objects: a debtor may have thousands of invoices and every hand-over reads them; rows
# of the columns the figures below read cost a fraction of entities. (SQLAlchemy's select:
# SQLModel's is typed for at most four columns.)
_INVOICE_COLUMNS = (
    col(Invoice.number),
    col(Invoice.stage),
    col(Invoice.due_date),
    col(Invoice.amount),
    col(Invoice.outstanding),
    col(Invoice.currency),
    col(Invoice.updated_at),
)
_OWED = (col(Invoice.debtor_id) == _DEBTOR, col(Invoice.stage).not_in(_NOT_OWED))
_OWED_INVOICES = select_columns(*_INVOICE_COLUMNS).where(*_OWED)
_STILL_OWED_INVOICES = select_columns(*_INVOICE_COLUMNS).where(
    col(Invoice.debtor_id) == _DEBTOR,
    col(Invoice.stage).not_in((*_SETTLED, _WRITTEN_OFF)),
    col(Invoice.outstanding) > 0,
)
# Disputes not upheld and broken commitments on the debtor's invoices, in one query joined on
# the debtor (not a list of every invoice number).
_HELD_AGAINST = select_columns(
    select_columns(func.count())
    .select_from(Dispute)
    .join(Invoice, col(Invoice.number) == col(Dispute.invoice_number))
    .where(*_OWED, col(Dispute.status) != _UPHELD)
    .scalar_subquery(),
    select_columns(func.count())
    .select_from(Event)
    .join(Invoice, col(Invoice.number) == col(Event.invoice_number))
    .where(*_OWED, col(Event.kind).in_(BROKEN_COMMITMENT_KINDS))
    .scalar_subquery(),
)
# The payments that brought a paid invoice of the debtor's to zero, oldest first.
_SETTLING_PAYMENTS = (
    select_columns(col(Payment.invoice_number), col(Payment.received_on), col(Payment.recorded_at))
    .join(Invoice, col(Invoice.number) == col(Payment.invoice_number))
    .where(
        col(Invoice.debtor_id) == _DEBTOR,
        col(Invoice.stage) == "paid",
        col(Payment.outstanding_after) <= 0,
    )
    .order_by(col(Payment.id))
)


def _settled_on(session: Session, debtor_id: str) -> dict[str, date]:
    """For each paid invoice of the debtor, the day of the payment that brought its balance to
    zero."""
    rows = session.execute(_SETTLING_PAYMENTS, {"debtor": debtor_id}).all()
    settled: dict[str, date] = {}
    for number, received_on, recorded_at in rows:
        # The day the money arrived when the back office said so, else the day it was recorded.
        settled.setdefault(number, received_on or recorded_at.date())
    return settled


def risk_inputs(session: Session, debtor_id: str, as_of: date) -> RiskInputs:
    """What the debtor's own history says, for `domain.selection.risk_score`.

    - An invoice has a verdict once it is paid, or still unpaid after its due date (invoices
      not yet due, and invoices cancelled by a credit note, say nothing yet).
    - Days late: from the due date to the payment that settled the invoice (early = 0); for
      an invoice still unpaid, the days so far (a lower bound); for a written-off one, the
      days until it was written off.
    - Disputes: those not upheld (open or rejected).
    - Broken promises: events `promise_broken` and `plan_broken` on any of its invoices.
    - Outstanding ratio: what it owes now over its average invoice amount, in the currency
      where that ratio is highest (amounts in different currencies are never added).
    """
    invoices = session.execute(_OWED_INVOICES, {"debtor": debtor_id}).all()
    # Each query costs more than its rows here: none is made that cannot find anything.
    settled = _settled_on(session, debtor_id) if any(i.stage == "paid" for i in invoices) else {}
    days: list[int] = []
    for invoice in invoices:
        if invoice.stage == "paid":
            paid_on = settled.get(invoice.number)
            if paid_on is None:
                continue  # settled without a recorded payment (e.g. imported as paid)
            days.append(max(0, (paid_on - invoice.due_date).days))
        elif invoice.due_date < as_of:
            end = invoice.updated_at.date() if invoice.stage == _WRITTEN_OFF else as_of
            days.append(max(0, (end - invoice.due_date).days))
    disputes, broken = _held_against(session, debtor_id) if invoices else (0, 0)
    return RiskInputs(
        invoices=len(days),
        avg_days_late=sum(days) / len(days) if days else 0.0,
        late_share=sum(1 for d in days if d > 0) / len(days) if days else 0.0,
        disputes=disputes,
        broken_promises=broken,
        outstanding_ratio=_outstanding_ratio(invoices),
    )


def _held_against(session: Session, debtor_id: str) -> tuple[int, int]:
    """Disputes not upheld and broken commitments on the debtor's invoices."""
    row = session.execute(_HELD_AGAINST, {"debtor": debtor_id}).one()
    return int(row[0]), int(row[1])


def _outstanding_ratio(invoices: Sequence[Row[Any]]) -> float | None:
    amounts: dict[str, list[Decimal]] = defaultdict(list)
    owed: dict[str, Decimal] = defaultdict(Decimal)
    for invoice in invoices:
        amounts[invoice.currency].append(invoice.amount)
        if invoice.stage not in _SETTLED and invoice.stage != _WRITTEN_OFF:
            owed[invoice.currency] += max(invoice.outstanding, Decimal(0))
    ratios = []
    for currency, values in amounts.items():
        average = sum(values, Decimal(0)) / len(values)
        if average > 0:
            ratios.append(float(owed[currency] / average))
    return max(ratios) if ratios else None


@dataclass(frozen=True)
class OpenInvoices:
    """Invoices still owed (handed-off ones included: the legal partner is collecting them)."""

    count: int = 0
    outstanding: dict[str, Decimal] = field(default_factory=dict)


def open_invoices(session: Session, debtor_id: str) -> OpenInvoices:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    count = 0
    for invoice in session.execute(_STILL_OWED_INVOICES, {"debtor": debtor_id}):
        count += 1
        totals[invoice.currency] += invoice.outstanding
    return OpenInvoices(count=count, outstanding=dict(sorted(totals.items())))


def override_of(session: Session, debtor_id: str) -> DebtorOverride | None:
    return session.get(DebtorOverride, debtor_id)


def set_override(
    session: Session,
    debtor: Debtor,
    *,
    playbook: str | None,
    opt_out_reason: str | None,
    opt_out_until: date | None,
    set_by: str,
) -> DebtorOverride:
    """Replace the debtor's override (a PUT: fields left out are cleared)."""
    row = session.get(DebtorOverride, debtor.id) or DebtorOverride(debtor_id=debtor.id, set_by="")
    row.playbook = playbook
    row.opt_out_reason = opt_out_reason
    row.opt_out_until = opt_out_until
    row.set_by = set_by
    row.set_at = utcnow()
    session.add(row)
    return row


def clear_override(session: Session, debtor_id: str) -> bool:
    """Remove the override; False if there was none."""
    row = session.get(DebtorOverride, debtor_id)
    if row is None:
        return False
    session.delete(row)
    return True


def open_invoice_numbers(session: Session, debtor_id: str) -> list[str]:
    """The debtor's invoices still being collected (their workflows are running), an open
    hand-off included: a corrected contact serves the legal partner's file too."""
    return list(
        session.exec(select(Invoice.number).where(Invoice.debtor_id == debtor_id, still_open()))
    )


def correct_contact(
    session: Session,
    debtor_id: str,
    *,
    email: str | None = None,
    name: str | None = None,
    phone: str | None = None,
    postal_address: dict[str, object] | None = None,
) -> tuple[Debtor, list[str], bool] | None:
    """Corrected contact details (each one given replaces ours), what made them fail forgotten.
    Returns the debtor, its open invoices (to tell their workflows) and whether texts may go
    to its number again; None for an unknown debtor.

    A STOP is the debtor's own refusal of texts: a new number lifts it, the same number entered
    again does not (a wrong number does not stand: the collector says it is right)."""
    debtor = session.get(Debtor, debtor_id)
    if debtor is None:
        return None
    if email is not None:
        debtor.email = email
        debtor.email_invalid_at = None
    if name is not None:
        debtor.name = name
        if postal_address is None and debtor.postal_address:
            # The company's name heads the address on the envelope.
            debtor.postal_address = {**debtor.postal_address, "name": name}
    if phone is not None:
        if phone != debtor.phone:
            debtor.sms_stopped_at = None
        debtor.phone = phone
        debtor.phone_invalid_at = None
    if postal_address is not None:
        debtor.postal_address = postal_address
    debtor.updated_at = utcnow()
    session.add(debtor)
    texts = phone is not None and debtor.sms_stopped_at is None
    return debtor, open_invoice_numbers(session, debtor_id), texts
