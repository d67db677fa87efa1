"""Write-offs: `POST /v1/invoices/{number}/write-off`, its four-eyes decision, and the inbox."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response

from api.deps import Caller, ClientDep, EngineDep, SessionDep, SettingsDep
from api.idempotency import IdempotencyDep
from api.schemas import error_responses
from api.services import write_offs
from api.write_off_schemas import (
    WriteOffCreate,
    WriteOffDecisionCreate,
    WriteOffOutcome,
    WriteOffRequestPublic,
)

router = APIRouter(tags=["collection"])

WriteOffStatus = Literal["pending", "approving", "approved", "rejected"]
_ACTION_ERRORS = error_responses(401, 403, 404, 409, 503)


@router.post(
    "/v1/invoices/{number}/write-off",
    responses={**_ACTION_ERRORS, 202: {"model": WriteOffOutcome}},
    summary="Write the invoice off (above the threshold, a second finance person confirms)",
)
async def write_off(
    number: str,
    body: WriteOffCreate,
    response: Response,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    principal: Caller,
    idem: IdempotencyDep,
) -> WriteOffOutcome:
    """200: written off. 202: above RELANCE_WRITE_OFF_APPROVAL_ABOVE, the request waits for
    another finance person's decision (`.../write-off/{request_id}/decision`)."""
    outcome = await write_offs.write_off(engine, client, settings, number, body, principal, idem)
    response.status_code = 202 if outcome.request is not None else 200
    return outcome


@router.post(
    "/v1/invoices/{number}/write-off/{request_id}/decision",
    responses=_ACTION_ERRORS,
    summary="Approve or reject a pending write-off (not by the person who asked for it)",
)
async def decide_write_off(
    number: str,
    request_id: str,
    body: WriteOffDecisionCreate,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    principal: Caller,
    idem: IdempotencyDep,
) -> WriteOffOutcome:
    return await write_offs.decide(
        engine, client, settings, number, request_id, body, principal, idem
    )


@router.get(
    "/v1/write-offs",
    responses=error_responses(401, 403),
    summary="Write-off requests, oldest first (status=pending: what waits for a decision)",
)
def list_write_offs(
    session: SessionDep, _: Caller, status: WriteOffStatus | None = None
) -> list[WriteOffRequestPublic]:
    return write_offs.list_requests(session, status)
