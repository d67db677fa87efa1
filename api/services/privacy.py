"""Personal data of a debtor's contact: export (art. 15), restriction (art. 18), erasure.

Erasure is not an endpoint: contact data is needed while an invoice is collected and, after
that, until the retention ends (`erase_expired`, run by `relance privacy erase-expired`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from anyio import to_thread
from sqlalchemy.engine import Engine
from sqlmodel import Session

from api.actors import ActorNames
from api.auth import Principal
from api.errors import NotFound
from api.privacy_schemas import (
    AuditEntry,
    ContactData,
    InvoiceHeld,
    MessageHeld,
    NoteHeld,
    PersonalDataExport,
    RestrictionCreate,
    RestrictionPublic,
)
from api.schemas import MoneyPublic
from config import Settings
from store import idempotency
from store import privacy as store
from store.engine import transaction
from store.tables import Debtor, DebtorRestriction

log = logging.getLogger("relance.api")

# Who erases when the retention ends: no person, the retention rule.
RETENTION_ACTOR = "system:retention"


def _debtor(session: Session, debtor_id: str) -> Debtor:
    debtor = session.get(Debtor, debtor_id)
    if debtor is None:
        raise NotFound(f"debtor {debtor_id} is unknown: no invoice of it was ever handed over")
    return debtor


def _restriction_public(row: DebtorRestriction, names: ActorNames) -> RestrictionPublic:
    return RestrictionPublic(
        debtor_id=row.debtor_id,
        reason=row.reason,
        legal_claim=row.legal_claim,
        set_by=names.name(row.set_by) or row.set_by,
        set_at=row.set_at,
    )


def _export(engine: Engine, debtor_id: str, principal: Principal) -> PersonalDataExport:
    with transaction(engine) as session:
        debtor = _debtor(session, debtor_id)
        held = store.holdings(session, debtor)
        needles = [debtor.name, debtor.email]
        names = ActorNames(session)
        notes = [
            NoteHeld(
                kind=f"task_{task.kind}",
                invoice_number=task.invoice_number,
                at=task.closed_at or task.created_at,
                text=task.notes,
            )
            for task in held.tasks
            if task.notes
        ]
        notes += [
            NoteHeld(kind="dispute", invoice_number=d.invoice_number, at=d.opened_at, text=d.reason)
            for d in held.disputes
        ]
        notes += [
            NoteHeld(
                kind=f"event_{e.kind}",
                invoice_number=e.invoice_number,
                at=e.at,
                text=names.text(e.summary),
                detail=e.detail,
            )
            for e in held.events
            if store.mentions(e, needles)
        ]
        # The export itself is an access to the data: on the trail, before it is read out.
        store.audit(session, debtor.id, "exported", principal.identity)
        session.flush()
        return PersonalDataExport(
            exported_at=datetime.now(UTC),
            contact=ContactData.model_validate(debtor, from_attributes=True),
            restriction=(
                _restriction_public(held.restriction, names) if held.restriction else None
            ),
            opt_out_reason=held.override.opt_out_reason if held.override else None,
            invoices=[
                InvoiceHeld(
                    number=i.number,
                    amount=MoneyPublic.of(i.amount, i.currency),
                    due_date=i.due_date,
                    stage=i.stage,
                )
                for i in held.invoices
            ],
            messages=[
                MessageHeld.model_validate(m, from_attributes=True) for m in held.interactions
            ],
            notes=notes,
            audit=[
                AuditEntry(action=a.action, by=names.name(a.by) or a.by, at=a.at, detail=a.detail)
                for a in store.trail(session, debtor.id)
            ],
        )


async def export(engine: Engine, debtor_id: str, principal: Principal) -> PersonalDataExport:
    result = await to_thread.run_sync(_export, engine, debtor_id, principal)
    log.info("personal data of debtor %s exported by %s", debtor_id, principal.prefix)
    return result


def _restrict(
    engine: Engine, debtor_id: str, body: RestrictionCreate, principal: Principal
) -> RestrictionPublic:
    with transaction(engine) as session:
        _debtor(session, debtor_id)
        row = store.restrict(
            session,
            debtor_id,
            reason=body.reason,
            legal_claim=body.legal_claim,
            by=principal.identity,
        )
        session.flush()
        return _restriction_public(row, ActorNames(session))


async def restrict(
    engine: Engine, debtor_id: str, body: RestrictionCreate, principal: Principal
) -> RestrictionPublic:
    result = await to_thread.run_sync(_restrict, engine, debtor_id, body, principal)
    log.info("processing of debtor %s restricted by %s", debtor_id, principal.prefix)
    return result


def _lift(engine: Engine, debtor_id: str, principal: Principal) -> None:
    with transaction(engine) as session:
        _debtor(session, debtor_id)
        if store.lift(session, debtor_id, principal.identity):
            log.info("restriction of debtor %s lifted by %s", debtor_id, principal.prefix)


async def lift(engine: Engine, debtor_id: str, principal: Principal) -> None:
    await to_thread.run_sync(_lift, engine, debtor_id, principal)


# ------------------------------------------------------------------ erasure


@dataclass(frozen=True)
class ErasureReport:
    erased: list[str]
    kept: list[store.Verdict]
    idempotency_keys_purged: int


def erase_expired(
    engine: Engine, settings: Settings, *, now: datetime | None = None, dry_run: bool = False
) -> ErasureReport:
    """Pseudonymise every debtor whose retention ended and whose processing is not restricted.

    Each debtor in its own transaction, re-checked inside it: a restriction set meanwhile wins.
    """
    now = now or datetime.now(UTC)
    with Session(engine) as session:
        ids = [debtor.id for debtor in store.candidates(session)]
    erased: list[str] = []
    kept: list[store.Verdict] = []
    for debtor_id in ids:
        with transaction(engine) as session:
            debtor = session.get(Debtor, debtor_id)
            if debtor is None:
                continue
            held = store.holdings(session, debtor)
            verdict = store.verdict(held, now, settings.personal_data_retention_days)
            if not verdict.erasable:
                kept.append(verdict)
                if verdict.why == store.RESTRICTED and not dry_run:
                    store.defer(session, debtor_id, RETENTION_ACTOR)
                continue
            if not dry_run:
                store.pseudonymise(session, held, RETENTION_ACTOR)
            erased.append(debtor_id)
    purged = 0
    if not dry_run:
        # Stored answers may quote what people wrote: they go when their key expires.
        purged = idempotency.purge_expired(
            engine, now - timedelta(hours=settings.idempotency_ttl_hours)
        )
    for debtor_id in erased:
        log.info("personal data of debtor %s pseudonymised (retention ended)", debtor_id)
    return ErasureReport(erased, kept, purged)
