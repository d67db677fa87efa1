"""`/v1/tasks`: the collectors' work list (calls, disputes, plans to approve) and call outcomes."""

from __future__ import annotations

from fastapi import APIRouter

from api.collection_schemas import TaskClosed, TaskKind, TaskOutcomeCreate, TaskPublic, TaskStatus
from api.deps import Caller, ClientDep, EngineDep, SessionDep, SettingsDep
from api.idempotency import IdempotencyDep
from api.schemas import error_responses
from api.services import tasks

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


@router.get("", responses=error_responses(401, 403), summary="Tasks, the most urgent first")
def list_tasks(
    session: SessionDep,
    _: Caller,
    status: TaskStatus | None = None,
    kind: TaskKind | None = None,
    invoice: str | None = None,
) -> list[TaskPublic]:
    return tasks.list_tasks(session, status, kind, invoice)


@router.post(
    "/{task_id}/outcome",
    responses=error_responses(401, 403, 404, 409, 503),
    summary="Close a task with its outcome (a promise to pay freezes the escalation)",
)
async def record_outcome(
    task_id: str,
    body: TaskOutcomeCreate,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    principal: Caller,
    idem: IdempotencyDep,
) -> TaskClosed:
    return await tasks.record_outcome(engine, client, settings, task_id, body, principal, idem)
