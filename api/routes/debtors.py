"""`/v1/debtors`: a debtor's segment, risk score and playbook, and finance overrides."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.debtor_schemas import ContactCorrection, DebtorPublic, OverrideSet
from api.deps import Caller, ClientDep, EngineDep, SessionDep, SettingsDep
from api.schemas import error_responses
from api.services import debtors

router = APIRouter(prefix="/v1/debtors", tags=["debtors"])


@router.get(
    "/{debtor_id}",
    responses=error_responses(401, 403, 404),
    summary="A debtor's segment, risk score (and why), override and next playbook",
)
def get_debtor(
    debtor_id: str, session: SessionDep, settings: SettingsDep, _: Caller
) -> DebtorPublic:
    return debtors.get_debtor(session, settings, debtor_id)


@router.put(
    "/{debtor_id}/contact",
    responses=error_responses(401, 403, 404, 422),
    summary="Correct the debtor's email, phone number or postal address: the debtor's open "
    "invoices use each corrected channel again",
)
async def correct_contact(
    debtor_id: str,
    body: ContactCorrection,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    principal: Caller,
) -> DebtorPublic:
    return await debtors.correct_debtor_contact(
        engine, client, settings, debtor_id, body, principal.identity
    )


@router.put(
    "/{debtor_id}/override",
    responses=error_responses(401, 403, 404, 422),
    summary="Set a finance decision: a specific playbook, or no collection until a date",
)
async def set_override(
    debtor_id: str,
    body: OverrideSet,
    engine: EngineDep,
    settings: SettingsDep,
    principal: Caller,
) -> DebtorPublic:
    """Applies to invoices handed over from now on; running ones keep their playbook."""
    return await debtors.set_override(engine, settings, debtor_id, body, principal)


@router.delete(
    "/{debtor_id}/override",
    status_code=204,
    responses=error_responses(401, 403, 404),
    summary="Remove the debtor's override (idempotent)",
)
async def clear_override(debtor_id: str, engine: EngineDep, principal: Caller) -> Response:
    await debtors.clear_override(engine, debtor_id, principal)
    return Response(status_code=204)
