"""Write-off requests waiting for a second finance person: conditional writes only."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from store.engine import transaction
from store.tables import WriteOffRequest, utcnow

PENDING = "pending"
APPROVING = "approving"  # approved, the workflow's close Update on its way
APPROVED = "approved"
REJECTED = "rejected"


def add_pending(engine: Engine, row: WriteOffRequest) -> WriteOffRequest | None:
    """Store a pending request; None if the invoice already has one pending."""
    row.status = PENDING
    row.pending_for = row.invoice_number
    try:
        with transaction(engine) as session:
            session.add(row)
    except IntegrityError:
        return None
    return row


def pending_of(engine: Engine, invoice_number: str) -> WriteOffRequest | None:
    with Session(engine) as session:
        return session.exec(
            select(WriteOffRequest).where(WriteOffRequest.pending_for == invoice_number)
        ).first()


def get(engine: Engine, request_id: str) -> WriteOffRequest | None:
    with Session(engine) as session:
        return session.get(WriteOffRequest, request_id)


def decide(
    engine: Engine,
    request_id: str,
    *,
    to: str,
    from_: Sequence[str],
    by: str,
    comment: str | None,
) -> bool:
    """Move the request from one of `from_` to `to`; False if another decision came first."""
    values: dict[str, object] = {"status": to, "decided_by": by, "decided_at": utcnow()}
    if comment is not None:
        values["comment"] = comment
    with transaction(engine) as session:
        row = session.get(WriteOffRequest, request_id)
        if row is None:
            return False
        # While pending or on its way, it stays the invoice's one open request.
        values["pending_for"] = row.invoice_number if to in (PENDING, APPROVING) else None
        if to == PENDING:
            values.update(decided_by=None, decided_at=None)
        result = session.execute(
            update(WriteOffRequest)
            .where(col(WriteOffRequest.id) == request_id, col(WriteOffRequest.status).in_(from_))
            .values(**values)
            .returning(col(WriteOffRequest.id))
        )
        return result.first() is not None


def listed(session: Session, status: str | None) -> Sequence[WriteOffRequest]:
    query = select(WriteOffRequest).order_by(
        col(WriteOffRequest.requested_at), col(WriteOffRequest.id)
    )
    if status is not None:
        query = query.where(WriteOffRequest.status == status)
    return session.exec(query).all()
