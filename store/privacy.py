"""Personal data held about a debtor's contact: read it all, restrict it, pseudonymise it.

Every action is written to the privacy audit trail in the same transaction as its effect.
The trail names who acted and what was done, never the data itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from domain.collection.records import EventKind
from domain.lifecycle import ENDED_STAGES, Stage
from domain.privacy import ERASED, pseudonym, pseudonymous_email, retention_ended, scrub
from store.tables import (
    Debtor,
    DebtorOverride,
    DebtorRestriction,
    Dispute,
    Event,
    Interaction,
    Invoice,
    PrivacyAudit,
    Task,
    WriteOffRequest,
    utcnow,
)


def audit(
    session: Session, debtor_id: str, action: str, by: str, detail: dict[str, object] | None = None
) -> None:
    session.add(PrivacyAudit(debtor_id=debtor_id, action=action, by=by, detail=detail or {}))


def trail(session: Session, debtor_id: str) -> Sequence[PrivacyAudit]:
    return session.exec(
        select(PrivacyAudit)
        .where(PrivacyAudit.debtor_id == debtor_id)
        .order_by(col(PrivacyAudit.at), col(PrivacyAudit.id))
    ).all()


def restriction_of(session: Session, debtor_id: str) -> DebtorRestriction | None:
    return session.get(DebtorRestriction, debtor_id)


def restrict(
    session: Session, debtor_id: str, *, reason: str, legal_claim: bool, by: str
) -> DebtorRestriction:
    row = session.get(DebtorRestriction, debtor_id) or DebtorRestriction(
        debtor_id=debtor_id, reason=reason, set_by=by
    )
    row.reason, row.legal_claim, row.set_by, row.set_at = reason, legal_claim, by, utcnow()
    session.add(row)
    audit(session, debtor_id, "restricted", by, {"legal_claim": legal_claim})
    return row


def lift(session: Session, debtor_id: str, by: str) -> bool:
    row = session.get(DebtorRestriction, debtor_id)
    if row is None:
        return False
    session.delete(row)
    audit(session, debtor_id, "restriction_lifted", by)
    return True


@dataclass
class Holdings:
    """Everything the store holds that is about, or may mention, the debtor's contact."""

    debtor: Debtor
    invoices: list[Invoice] = field(default_factory=list)
    interactions: list[Interaction] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    disputes: list[Dispute] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    override: DebtorOverride | None = None
    restriction: DebtorRestriction | None = None
    write_offs: list[WriteOffRequest] = field(default_factory=list)


def holdings(session: Session, debtor: Debtor) -> Holdings:
    invoices = list(
        session.exec(
            select(Invoice).where(Invoice.debtor_id == debtor.id).order_by(col(Invoice.number))
        ).all()
    )
    numbers = [invoice.number for invoice in invoices]

    def of(table: Any, order: Any) -> list[Any]:
        if not numbers:
            return []
        query = select(table).where(col(table.invoice_number).in_(numbers)).order_by(order)
        return list(session.exec(query).all())

    return Holdings(
        debtor=debtor,
        invoices=invoices,
        interactions=of(Interaction, col(Interaction.id)),
        tasks=of(Task, col(Task.created_at)),
        disputes=of(Dispute, col(Dispute.opened_at)),
        events=of(Event, col(Event.id)),
        override=session.get(DebtorOverride, debtor.id),
        restriction=session.get(DebtorRestriction, debtor.id),
        write_offs=of(WriteOffRequest, col(WriteOffRequest.requested_at)),
    )


def mentions(event: Event, needles: list[str]) -> bool:
    text = event.summary + json.dumps(event.detail, ensure_ascii=False, default=str)
    return any(needle and needle.casefold() in text.casefold() for needle in needles)


# ------------------------------------------------------------------ erasure


def last_closed(held: Holdings) -> datetime | None:
    """When the debtor's last invoice closed; None while one is still being collected."""
    # A handed-off invoice may still be open with the legal partner: it is closed once its
    # history says so (the first rules' edition recorded that at the hand-off itself).
    ended = {e.invoice_number for e in held.events if e.kind == EventKind.CLOSED.value}
    if any(
        invoice.stage not in ENDED_STAGES
        and not (invoice.stage == Stage.HANDED_OFF and invoice.number in ended)
        for invoice in held.invoices
    ):
        return None
    times = [invoice.updated_at for invoice in held.invoices] or [held.debtor.updated_at]
    latest = max(times)
    return latest if latest.tzinfo else latest.replace(tzinfo=UTC)


ALREADY_ERASED = "already erased"
RESTRICTED = "processing is restricted (a legal claim runs)"


@dataclass(frozen=True)
class Verdict:
    debtor_id: str
    erasable: bool
    why: str


def verdict(held: Holdings, now: datetime, retention_days: int) -> Verdict:
    debtor_id = held.debtor.id
    if held.debtor.erased_at is not None:
        return Verdict(debtor_id, False, ALREADY_ERASED)
    closed = last_closed(held)
    if closed is None:
        return Verdict(debtor_id, False, "an invoice is still being collected")
    if not retention_ended(closed, now, retention_days):
        return Verdict(debtor_id, False, "the retention period has not ended")
    if held.restriction is not None:
        return Verdict(debtor_id, False, RESTRICTED)
    return Verdict(debtor_id, True, "the retention period ended")


def defer(session: Session, debtor_id: str, by: str) -> None:
    """Record, once per restriction, that erasure was due but refused while it lasts."""
    last = session.exec(
        select(PrivacyAudit)
        .where(PrivacyAudit.debtor_id == debtor_id)
        .order_by(col(PrivacyAudit.at).desc(), col(PrivacyAudit.id).desc())
    ).first()
    if last is None or last.action != "erasure_refused":
        audit(session, debtor_id, "erasure_refused", by, {"why": RESTRICTED})


def candidates(session: Session) -> Sequence[Debtor]:
    return session.exec(
        select(Debtor).where(col(Debtor.erased_at).is_(None)).order_by(col(Debtor.id))
    ).all()


def pseudonymise(session: Session, held: Holdings, by: str) -> None:
    """Replace the contact's data with a pseudonym everywhere it is held; amounts stay."""
    debtor = held.debtor
    # Free text people wrote about the case (reasons, call notes) may name anyone: it goes
    # whole, and wherever the history quotes it, it goes too.
    free_text = [d.reason for d in held.disputes] + [d.resolution or "" for d in held.disputes]
    free_text += [t.notes or "" for t in held.tasks] + [w.reason for w in held.write_offs]
    if held.override is not None:
        free_text.append(held.override.opt_out_reason or "")
    if held.restriction is not None:
        free_text.append(held.restriction.reason)
    # Longest first, so a quote is replaced whole before a name inside it.
    secrets = sorted({debtor.name, debtor.email, *free_text} - {""}, key=len, reverse=True)
    debtor.name = pseudonym(debtor.id)
    debtor.email = pseudonymous_email(debtor.id)
    debtor.erased_at = utcnow()
    session.add(debtor)
    for interaction in held.interactions:
        interaction.subject = scrub(interaction.subject, secrets)
        interaction.error = scrub(interaction.error, secrets)
        interaction.delivery_reason = scrub(interaction.delivery_reason, secrets)
        session.add(interaction)
    for task in held.tasks:
        task.notes = ERASED if task.notes else None
        task.title = scrub(task.title, secrets) or task.title
        session.add(task)
    for dispute in held.disputes:
        dispute.reason = ERASED
        dispute.resolution = ERASED if dispute.resolution else None
        session.add(dispute)
    for write_off in held.write_offs:
        write_off.reason = ERASED
        session.add(write_off)
    for event in held.events:
        event.summary = scrub(event.summary, secrets) or event.summary
        event.detail = json.loads(
            scrub(json.dumps(event.detail, ensure_ascii=False, default=str), secrets) or "{}"
        )
        session.add(event)
    if held.override is not None and held.override.opt_out_reason:
        held.override.opt_out_reason = ERASED
        session.add(held.override)
    audit(session, debtor.id, "erased", by, {"invoices": len(held.invoices)})
