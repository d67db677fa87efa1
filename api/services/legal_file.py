"""What GET /v1/invoices/{n} shows of the mediation and of the legal partner's file.

Read from the invoice's timeline (the workflow records each outcome and each report of the
partner as an event whose detail carries the figures), so the read model needs no table of its
own: the newest event of each kind is where things stand.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlmodel import Session, col, select

from api.actors import ActorNames
from api.schemas import LegalPublic, MediationPublic, MoneyPublic
from domain.collection.records import EventKind
from store.tables import Event


def _latest(session: Session, number: str, kind: EventKind) -> Event | None:
    return session.exec(
        select(Event)
        .where(Event.invoice_number == number, Event.kind == kind.value)
        .order_by(col(Event.at).desc(), col(Event.id).desc())
    ).first()


def _text(detail: dict[str, object], name: str) -> str:
    value = detail.get(name)
    return str(value) if value else ""


def mediation_of(session: Session, number: str, names: ActorNames) -> MediationPublic | None:
    event = _latest(session, number, EventKind.MEDIATION_ENDED)
    if event is None:
        return None
    detail = event.detail
    return MediationPublic(
        outcome=_text(detail, "outcome"),
        mediator_reference=_text(detail, "mediator_reference"),
        started_on=date.fromisoformat(_text(detail, "started_on")),
        ended_on=date.fromisoformat(_text(detail, "ended_on")),
        note=_text(detail, "note"),
        recorded_by=names.name(_text(detail, "by") or None),
        recorded_at=event.at,
        plan_id=_text(detail, "plan_id") or None,
    )


def legal_of(session: Session, number: str, names: ActorNames) -> LegalPublic | None:
    event = _latest(session, number, EventKind.LEGAL_UPDATED)
    if event is None:
        return None
    detail = event.detail
    costs = _text(detail, "costs")
    return LegalPublic(
        status=_text(detail, "status"),
        partner_reference=_text(detail, "partner_reference") or None,
        costs=MoneyPublic.of(Decimal(costs), _text(detail, "currency")) if costs else None,
        note=_text(detail, "note"),
        recorded_by=names.name(_text(detail, "by") or None),
        updated_at=event.at,
    )


def partner_reference_of(session: Session, number: str) -> str | None:
    """The legal partner's reference for the file, once a collector reported it."""
    event = _latest(session, number, EventKind.LEGAL_UPDATED)
    return _text(event.detail, "partner_reference") or None if event is not None else None
