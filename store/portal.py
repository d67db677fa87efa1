"""The debtor portal's records: link keys, checkout sessions, dispute attachments.

A debtor's personal links are signed with their key's `version`: rotating it (one UPDATE)
voids every link issued before. A debtor without a row is at version 0, so composing a
message never has to write here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, update
from sqlmodel import Field, Session, SQLModel, col, select

from store.portfolio import still_open
from store.tables import Event, Invoice, utcnow


class PortalKey(SQLModel, table=True):
    __tablename__ = "portal_key"

    debtor_id: str = Field(primary_key=True, foreign_key="debtor.id", max_length=64)
    version: int = 0
    rotated_at: datetime = Field(default_factory=utcnow)
    rotated_by: str = Field(max_length=128)


class PortalCheckout(SQLModel, table=True):
    """A payment session the portal opened with a provider: which invoices, for how much. The
    provider's completion event is matched against this, never trusted for amounts alone."""

    __tablename__ = "portal_checkout"

    # Ours (`chk-...`): also the provider request's idempotency key.
    id: str = Field(primary_key=True, max_length=64)
    provider: str = Field(max_length=16)
    # The provider's session id, set once it opened the session.
    session_id: str | None = Field(default=None, unique=True, max_length=255)
    debtor_id: str = Field(foreign_key="debtor.id", index=True, max_length=64)
    lines: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None
    completed_event_id: str | None = Field(default=None, max_length=128)


class PortalAttachment(SQLModel, table=True):
    """A file a debtor sent with a dispute. Kept under an opaque name outside any served
    folder; the type is the one its bytes show, not the one its name claims."""

    __tablename__ = "portal_attachment"

    id: str = Field(primary_key=True, max_length=64)
    invoice_number: str = Field(foreign_key="invoice.number", index=True, max_length=64)
    dispute_id: str = Field(index=True, max_length=64)
    media_type: str = Field(max_length=64)
    size: int
    sha256: str = Field(max_length=64)
    uploaded_at: datetime = Field(default_factory=utcnow)


def key_version(session: Session, debtor_id: str) -> int:
    row = session.get(PortalKey, debtor_id)
    return row.version if row is not None else 0


def rotate_key(session: Session, debtor_id: str, by: str) -> int:
    """Bump the debtor's key version (conditional UPDATE, so two rotations both count)."""
    changed = session.exec(
        update(PortalKey)
        .where(col(PortalKey.debtor_id) == debtor_id)
        .values(version=PortalKey.version + 1, rotated_at=utcnow(), rotated_by=by)
    )
    if changed.rowcount == 0:
        session.add(PortalKey(debtor_id=debtor_id, version=1, rotated_by=by))
        session.flush()
    row = session.get(PortalKey, debtor_id)
    assert row is not None
    session.refresh(row)
    return row.version


def open_invoices(session: Session, debtor_id: str) -> list[Invoice]:
    """The debtor's invoices still open, open hand-offs included."""
    return list(
        session.exec(
            select(Invoice)
            .where(Invoice.debtor_id == debtor_id, still_open())
            .order_by(col(Invoice.due_date), col(Invoice.number))
        ).all()
    )


def record_portal_event(
    session: Session, invoice: Invoice, key: str, kind: str, summary: str, detail: dict[str, object]
) -> None:
    """An entry in the invoice's history for a portal action the workflow does not carry
    (contact details, a personal-data request). Keyed, so a repeated request adds nothing."""
    known = session.exec(
        select(Event).where(Event.invoice_number == invoice.number, Event.key == key)
    ).first()
    if known is None:
        session.add(
            Event(
                invoice_number=invoice.number,
                key=key,
                kind=kind,
                at=utcnow(),
                stage=invoice.stage,
                summary=summary,
                detail=detail,
            )
        )
