"""`/v1/debtors/{id}/personal-data` and `/restriction`: the contact's rights (GDPR)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import Caller, EngineDep
from api.privacy_schemas import PersonalDataExport, RestrictionCreate, RestrictionPublic
from api.schemas import error_responses
from api.services import privacy

router = APIRouter(prefix="/v1/debtors", tags=["personal data"])


@router.get(
    "/{debtor_id}/personal-data",
    responses=error_responses(401, 403, 404),
    summary="Everything held about the debtor's contact (recorded in the privacy trail)",
)
async def personal_data(debtor_id: str, engine: EngineDep, principal: Caller) -> PersonalDataExport:
    return await privacy.export(engine, debtor_id, principal)


@router.post(
    "/{debtor_id}/restriction",
    responses=error_responses(401, 403, 404),
    summary="Restrict processing (e.g. a legal claim runs): the data is kept, never erased",
)
async def restrict(
    debtor_id: str, body: RestrictionCreate, engine: EngineDep, principal: Caller
) -> RestrictionPublic:
    return await privacy.restrict(engine, debtor_id, body, principal)


@router.delete(
    "/{debtor_id}/restriction",
    status_code=204,
    responses=error_responses(401, 403, 404),
    summary="Lift the restriction (idempotent): erasure may then happen when retention ends",
)
async def lift(debtor_id: str, engine: EngineDep, principal: Caller) -> Response:
    await privacy.lift(engine, debtor_id, principal)
    return Response(status_code=204)
