"""Write-offs: finance ends a collection; above a threshold, two finance people must agree.

Below RELANCE_WRITE_OFF_APPROVAL_ABOVE the write-off is the workflow's `close` Update at once.
Above it the request is kept in the store, pending, and the collection goes on; the Update
is sent only when a second finance person (another identity, not another label) approves.
Its Update id is the request's, so however often the approval is retried the invoice is
closed once.
"""

from __future__ import annotations

import logging

from anyio import to_thread
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client

from api.actors import ActorNames
from api.auth import Principal
from api.collection_schemas import InvoiceState
from api.errors import ApiError, Conflict, Forbidden, NotFound, Unavailable
from api.idempotency import Idempotency
from api.schemas import MoneyPublic
from api.services.collection import after_end, apply, known_invoice, new_id, state_from_store
from api.write_off_schemas import (
    WriteOffCreate,
    WriteOffDecisionCreate,
    WriteOffOutcome,
    WriteOffRequestPublic,
)
from config import Settings
from domain.holds import Closure, ClosureKind
from domain.lifecycle import ENDED_STAGES
from store import write_offs as store
from store.tables import WriteOffRequest
from workflows.invoice import InvoiceWorkflow

log = logging.getLogger("relance.api")


def request_public(row: WriteOffRequest, names: ActorNames) -> WriteOffRequestPublic:
    return WriteOffRequestPublic(
        id=row.id,
        invoice_number=row.invoice_number,
        status=row.status,
        reason=row.reason,
        outstanding=MoneyPublic.of(row.outstanding, row.currency),
        requested_by=names.name(row.requested_by) or row.requested_by,
        requested_at=row.requested_at,
        decided_by=names.name(row.decided_by),
        decided_at=row.decided_at,
        comment=row.comment,
    )


def _public(engine: Engine, row: WriteOffRequest) -> WriteOffRequestPublic:
    with Session(engine) as session:
        return request_public(row, ActorNames(session))


def list_requests(session: Session, status: str | None) -> list[WriteOffRequestPublic]:
    names = ActorNames(session)
    return [request_public(row, names) for row in store.listed(session, status)]


async def _close(
    engine: Engine,
    client: Client,
    settings: Settings,
    number: str,
    closure: Closure,
    idem: Idempotency | None,
) -> tuple[InvoiceState, bool]:
    return await apply(engine, client, settings, number, InvoiceWorkflow.close, closure, idem)


async def write_off(
    engine: Engine,
    client: Client,
    settings: Settings,
    number: str,
    body: WriteOffCreate,
    principal: Principal,
    idem: Idempotency | None = None,
) -> WriteOffOutcome:
    invoice = await to_thread.run_sync(known_invoice, engine, number)
    if invoice.stage in ENDED_STAGES:
        raise await to_thread.run_sync(after_end, engine, number)
    if invoice.outstanding <= settings.write_off_approval_above:
        closure = Closure(kind=ClosureKind.WRITE_OFF, reason=body.reason, by=principal.identity)
        state, applied = await _close(engine, client, settings, number, closure, idem)
        log.info("invoice %s written off by %s", number, principal.prefix)
        return WriteOffOutcome(
            by=principal.name, needs_approval=False, applied=applied, status=state
        )
    row = WriteOffRequest(
        id=new_id("W", idem),
        invoice_number=number,
        reason=body.reason,
        outstanding=invoice.outstanding,
        currency=invoice.currency,
        requested_by=principal.identity,
    )
    stored = await to_thread.run_sync(store.add_pending, engine, row)
    if stored is None:
        waiting = await to_thread.run_sync(store.pending_of, engine, number)
        raise Conflict(
            f"a write-off of invoice {number} is already waiting for a second finance person"
            + (f": {waiting.id}" if waiting else "")
        )
    log.info("write-off %s of invoice %s requested by %s", row.id, number, principal.prefix)
    return WriteOffOutcome(
        by=principal.name,
        needs_approval=True,
        request=await to_thread.run_sync(_public, engine, stored),
        applied=False,
        status=await to_thread.run_sync(state_from_store, engine, settings, number),
    )


def _decidable(
    engine: Engine, number: str, request_id: str, principal: Principal
) -> WriteOffRequest:
    known_invoice(engine, number)
    row = store.get(engine, request_id)
    if row is None or row.invoice_number != number:
        raise NotFound(f"write-off request {request_id} is unknown on invoice {number}")
    if row.status not in (store.PENDING, store.APPROVING):
        raise Conflict(f"write-off request {request_id} was already {row.status}")
    if row.requested_by == principal.identity:
        raise Forbidden(
            f"you asked for write-off {request_id}: a second finance person must decide it "
            "(four-eyes)"
        )
    return row


async def decide(
    engine: Engine,
    client: Client,
    settings: Settings,
    number: str,
    request_id: str,
    body: WriteOffDecisionCreate,
    principal: Principal,
    idem: Idempotency | None = None,
) -> WriteOffOutcome:
    row = await to_thread.run_sync(_decidable, engine, number, request_id, principal)
    comment = body.comment or None
    if not body.approve:
        if not await to_thread.run_sync(
            lambda: store.decide(
                engine,
                request_id,
                to=store.REJECTED,
                from_=(store.PENDING,),
                by=principal.identity,
                comment=comment,
            )
        ):
            raise Conflict(f"write-off request {request_id} was decided meanwhile")
        log.info("write-off %s rejected by %s", request_id, principal.prefix)
        return await _outcome(engine, settings, number, request_id, principal, applied=False)
    claimed = await to_thread.run_sync(
        lambda: store.decide(
            engine,
            request_id,
            to=store.APPROVING,
            from_=(store.PENDING, store.APPROVING),
            by=principal.identity,
            comment=comment,
        )
    )
    if not claimed:
        raise Conflict(f"write-off request {request_id} was decided meanwhile")
    closure = Closure(
        kind=ClosureKind.WRITE_OFF,
        reason=f"{row.reason} (four-eyes: asked by {row.requested_by})",
        by=principal.identity,
    )
    try:
        # The request's own Update id: a retried or concurrent approval closes the invoice once.
        state, applied = await apply(
            engine,
            client,
            settings,
            number,
            InvoiceWorkflow.close,
            closure,
            Idempotency(key=request_id, principal="write-off", operation=number),
        )
    except Unavailable:
        # Unknown whether the Update got through: the request stays "approving", and the
        # same approval retried sends the same Update id, which Temporal runs once.
        raise
    except ApiError:
        # Refused by the workflow: nothing was closed, the request waits again for a decision.
        await to_thread.run_sync(
            lambda: store.decide(
                engine,
                request_id,
                to=store.PENDING,
                from_=(store.APPROVING,),
                by=principal.identity,
                comment=None,
            )
        )
        raise
    await to_thread.run_sync(
        lambda: store.decide(
            engine,
            request_id,
            to=store.APPROVED,
            from_=(store.APPROVING,),
            by=principal.identity,
            comment=comment,
        )
    )
    log.info("write-off %s approved by %s", request_id, principal.prefix)
    outcome = await _outcome(engine, settings, number, request_id, principal, applied=applied)
    return outcome.model_copy(update={"status": state})


async def _outcome(
    engine: Engine,
    settings: Settings,
    number: str,
    request_id: str,
    principal: Principal,
    *,
    applied: bool,
) -> WriteOffOutcome:
    row = await to_thread.run_sync(store.get, engine, request_id)
    assert row is not None
    return WriteOffOutcome(
        by=principal.name,
        needs_approval=True,
        request=await to_thread.run_sync(_public, engine, row),
        applied=applied,
        status=await to_thread.run_sync(state_from_store, engine, settings, number),
    )
