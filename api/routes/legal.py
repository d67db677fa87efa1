"""`/v1/invoices/{number}/mediation` and `/legal`: after the amicable stages.

A collector records how the mediation ended, then the legal partner's progress once the file is
handed off. Each is one Update to the invoice's workflow, recorded with the API key that asked.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Caller, ClientDep, EngineDep, SettingsDep
from api.idempotency import IdempotencyDep
from api.legal_schemas import LegalCreate, LegalRecorded, MediationCreate, MediationRecorded
from api.schemas import error_responses
from api.services import legal

router = APIRouter(prefix="/v1/invoices", tags=["collection"])

_ACTION_ERRORS = error_responses(401, 403, 404, 409, 503)


@router.post(
    "/{number}/mediation",
    responses=_ACTION_ERRORS,
    summary="Record how the mediation ended: agreement (a payment plan), failure (on to the "
    "legal approval) or withdrawn",
)
async def record_mediation(
    number: str,
    body: MediationCreate,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    principal: Caller,
    idem: IdempotencyDep,
) -> MediationRecorded:
    return await legal.record_mediation(engine, client, settings, number, body, principal, idem)


@router.post(
    "/{number}/legal",
    responses=_ACTION_ERRORS,
    summary="Record the legal partner's progress on a handed-off invoice (settled or abandoned "
    "ends it)",
)
async def record_legal(
    number: str,
    body: LegalCreate,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    principal: Caller,
    idem: IdempotencyDep,
) -> LegalRecorded:
    return await legal.record_legal(engine, client, settings, number, body, principal, idem)
