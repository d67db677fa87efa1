"""`/v1/approvals`: the collectors' inbox of escalations waiting for a decision."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Caller, ClientDep, EngineDep, SessionDep, SettingsDep
from api.idempotency import IdempotencyDep
from api.schemas import ApprovalPublic, DecisionCreate, DecisionPublic, error_responses
from api.services import approvals
from domain.lifecycle import ApprovalStatus

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])


@router.get("", responses=error_responses(401, 403), summary="Approvals, oldest first")
def list_approvals(
    session: SessionDep, _: Caller, status: ApprovalStatus | None = None
) -> list[ApprovalPublic]:
    return approvals.list_approvals(session, status)


@router.post(
    "/{approval_id}/decision",
    responses=error_responses(401, 403, 404, 409, 503),
    summary="Approve or reject an escalation",
)
async def decide(
    approval_id: str,
    body: DecisionCreate,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    principal: Caller,
    idem: IdempotencyDep,
) -> DecisionPublic:
    return await approvals.decide(engine, client, settings, approval_id, body, principal, idem)
