"""Collectors' tasks: phone calls, disputes to resolve, plans to approve.

The workflow opens and cancels tasks (through its activities); a collector closes a call with
its outcome here. A promise to pay goes to the workflow first, so that a promise the workflow
refuses (a date in the past, a closed invoice) leaves the task open for another try.
"""

from __future__ import annotations

import hashlib
import logging

from anyio import to_thread
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select, update
from temporalio.client import Client

from api.actors import ActorNames, display
from api.auth import Principal
from api.collection_schemas import (
    CallOutcome,
    InvoiceState,
    TaskClosed,
    TaskKind,
    TaskOutcomeCreate,
    TaskPublic,
    TaskStatus,
)
from api.errors import Conflict, NotFound
from api.idempotency import Idempotency
from api.services import calls
from api.services.channels import playbook_of
from api.services.collection import apply
from config import Settings
from domain.calls import DEFAULT_MAX_UNREACHED
from domain.holds import PromiseToPay
from store.engine import transaction
from store.tables import Task, utcnow
from workflows.invoice import InvoiceWorkflow

log = logging.getLogger("relance.api")

# PromiseToPay.promise_id's limit; a longer task id is replaced by a stable digest of it.
_PROMISE_ID_MAX = 64


def task_public(row: Task, names: ActorNames) -> TaskPublic:
    public = TaskPublic.model_validate(row, from_attributes=True)
    return public.model_copy(update={"closed_by": names.name(row.closed_by)})


def list_tasks(
    session: Session,
    status: TaskStatus | None,
    kind: TaskKind | None,
    invoice: str | None,
) -> list[TaskPublic]:
    """Tasks, the most urgent first."""
    query = select(Task).order_by(col(Task.due_at), col(Task.id))
    if status is not None:
        query = query.where(Task.status == status)
    if kind is not None:
        query = query.where(Task.kind == kind)
    if invoice is not None:
        query = query.where(Task.invoice_number == invoice)
    names = ActorNames(session)
    return [task_public(row, names) for row in session.exec(query).all()]


def promise_id(task_id: str) -> str:
    """The promise's id in the workflow: the task's, so the same call promises only once."""
    if len(task_id) <= _PROMISE_ID_MAX:
        return task_id
    return "T-" + hashlib.sha256(task_id.encode()).hexdigest()[:32]


def _open_task(engine: Engine, task_id: str) -> Task:
    with Session(engine) as session:
        row = session.get(Task, task_id)
    if row is None:
        raise NotFound(f"task {task_id} is unknown")
    _check_open(engine, row)
    return row


def _check_open(engine: Engine, row: Task) -> None:
    if row.status == TaskStatus.CANCELLED:
        raise Conflict(f"task {row.id} was cancelled: the invoice's collection no longer needs it")
    if row.outcome is not None or row.status != TaskStatus.OPEN:
        by = f" by {display(engine, row.closed_by)}" if row.closed_by else ""
        raise Conflict(f"task {row.id} is already closed{by}")


def _close(engine: Engine, task_id: str, body: TaskOutcomeCreate, principal: Principal) -> Task:
    with transaction(engine) as session:
        # Conditional, so two collectors closing the same call cannot both win. A task the
        # workflow itself marked done meanwhile (it has no outcome) still takes the collector's.
        closed = session.exec(
            update(Task)
            .where(
                col(Task.id) == task_id,
                col(Task.outcome).is_(None),
                col(Task.status) != TaskStatus.CANCELLED,
            )
            .values(
                status=TaskStatus.DONE,
                outcome=body.outcome,
                notes=body.notes or None,
                promise_date=body.promise_date,
                closed_by=principal.identity,
                closed_at=utcnow(),
            )
        )
        row = session.get(Task, task_id)
        if row is None:
            raise NotFound(f"task {task_id} is unknown")
        if closed.rowcount != 1:
            _check_open(engine, row)
        session.refresh(row)
        return row


async def record_outcome(
    engine: Engine,
    client: Client,
    settings: Settings,
    task_id: str,
    body: TaskOutcomeCreate,
    principal: Principal,
    idem: Idempotency | None = None,
) -> TaskClosed:
    task = await to_thread.run_sync(_open_task, engine, task_id)
    state: InvoiceState | None = None
    if body.outcome == CallOutcome.PROMISE:
        assert body.promise_date is not None  # the request model requires it
        # The call notes stay on the task: they may name people, and the workflow's history
        # must not hold personal data.
        promise = PromiseToPay(
            promise_id=promise_id(task.id),
            until=body.promise_date,
            recorded_by=principal.identity,
        )
        state, _ = await apply(
            engine,
            client,
            settings,
            task.invoice_number,
            InvoiceWorkflow.record_promise,
            promise,
            idem,
        )
    if body.outcome == CallOutcome.DISPUTE and task.kind == TaskKind.CALL:
        # Before closing, like a promise: a dispute the workflow refuses leaves the call open.
        state = (await calls.open_dispute(engine, client, settings, task, principal)).status
    await to_thread.run_sync(calls.keep_script, engine, settings, task_id)
    row = await to_thread.run_sync(_close, engine, task_id, body, principal)
    log.info("task %s closed (%s) by %s", task_id, body.outcome, principal.prefix)
    playbook = await to_thread.run_sync(playbook_of, engine, settings, task.invoice_number)
    await calls.follow_up(
        engine,
        client,
        settings,
        row,
        body.outcome,
        body.notes,
        principal,
        playbook.call_max_unreached if playbook else DEFAULT_MAX_UNREACHED,
    )
    with Session(engine) as session:
        task_closed = task_public(row, ActorNames(session))
    return TaskClosed(task=task_closed, status=state)
