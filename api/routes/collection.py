"""`/v1/invoices/{number}/...`: the people's side of collection.

Disputes, payment plans, pauses, cancellation and write-off. Each action is one Update to the
invoice's workflow, recorded with the API key that asked for it.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.collection_schemas import (
    ActionDone,
    CancelCreate,
    DisputeCreate,
    DisputeOpened,
    DisputePublic,
    DisputeResolutionCreate,
    DisputeResolved,
    PauseCreate,
    PlanCreate,
    PlanDecided,
    PlanDecisionCreate,
    PlanProposed,
    PlanPublic,
    PlaybookChange,
    ResumeCreate,
)
from api.deps import Caller, ClientDep, EngineDep, SessionDep, SettingsDep
from api.idempotency import IdempotencyDep
from api.schemas import error_responses
from api.services import collection

router = APIRouter(prefix="/v1/invoices", tags=["collection"])

_ACTION_ERRORS = error_responses(401, 403, 404, 409, 503)


# ------------------------------------------------------------------ disputes


@router.post(
    "/{number}/disputes",
    status_code=201,
    responses=_ACTION_ERRORS,
    summary="Open a dispute: the escalation freezes at once",
)
async def open_dispute(
    number: str,
    body: DisputeCreate,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    principal: Caller,
    idem: IdempotencyDep,
) -> DisputeOpened:
    return await collection.open_dispute(engine, client, settings, number, body, principal, idem)


@router.get(
    "/{number}/disputes",
    responses=error_responses(401, 403, 404),
    summary="The invoice's disputes, oldest first",
)
def list_disputes(number: str, session: SessionDep, _: Caller) -> list[DisputePublic]:
    return collection.list_disputes(session, number)


@router.post(
    "/{number}/disputes/{dispute_id}/resolution",
    responses=_ACTION_ERRORS,
    summary="Resolve a dispute: upheld (credit note) or rejected (escalation resumes)",
)
async def resolve_dispute(
    number: str,
    dispute_id: str,
    body: DisputeResolutionCreate,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    principal: Caller,
    idem: IdempotencyDep,
) -> DisputeResolved:
    return await collection.resolve_dispute(
        engine, client, settings, number, dispute_id, body, principal, idem
    )


# ------------------------------------------------------------------ payment plans


@router.post(
    "/{number}/payment-plan",
    status_code=201,
    responses=_ACTION_ERRORS,
    summary="Propose a payment plan (installments adding up to the outstanding amount)",
)
async def propose_plan(
    number: str,
    body: PlanCreate,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    principal: Caller,
    idem: IdempotencyDep,
) -> PlanProposed:
    return await collection.propose_plan(engine, client, settings, number, body, principal, idem)


@router.post(
    "/{number}/payment-plan/{plan_id}/decision",
    responses=_ACTION_ERRORS,
    summary="Approve or reject a payment plan (not by the person who proposed it)",
)
async def decide_plan(
    number: str,
    plan_id: str,
    body: PlanDecisionCreate,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    principal: Caller,
    idem: IdempotencyDep,
) -> PlanDecided:
    return await collection.decide_plan(
        engine, client, settings, number, plan_id, body, principal, idem
    )


@router.get(
    "/{number}/payment-plan",
    responses=error_responses(401, 403, 404),
    summary="The invoice's payment plans, oldest first (the last is the current one)",
)
def list_plans(number: str, session: SessionDep, _: Caller) -> list[PlanPublic]:
    return collection.list_plans(session, number)


# ------------------------------------------------------------------ holds and closures


@router.post(
    "/{number}/pause",
    responses=_ACTION_ERRORS,
    summary="Pause the collection, until a date or until resumed",
)
async def pause(
    number: str,
    body: PauseCreate,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    principal: Caller,
    idem: IdempotencyDep,
) -> ActionDone:
    return await collection.pause(engine, client, settings, number, body, principal, idem)


@router.post("/{number}/resume", responses=_ACTION_ERRORS, summary="Resume a paused collection")
async def resume(
    number: str,
    body: ResumeCreate,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    principal: Caller,
    idem: IdempotencyDep,
) -> ActionDone:
    return await collection.resume(engine, client, settings, number, body, principal, idem)


@router.post(
    "/{number}/cancel",
    responses=_ACTION_ERRORS,
    summary="Cancel the invoice (credit note): the collection ends",
)
async def cancel(
    number: str,
    body: CancelCreate,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    principal: Caller,
    idem: IdempotencyDep,
) -> ActionDone:
    return await collection.cancel(engine, client, settings, number, body, principal, idem)


@router.post(
    "/{number}/playbook",
    responses=_ACTION_ERRORS,
    summary="Move a running invoice to another playbook (steps already done are not redone)",
)
async def migrate_playbook(
    number: str,
    body: PlaybookChange,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    principal: Caller,
    idem: IdempotencyDep,
) -> ActionDone:
    return await collection.migrate_playbook(
        engine, client, settings, number, body, principal, idem
    )
