"""Approvals: the collectors' inbox of escalations, and their decisions.

The inbox is read from the store. A decision goes to the invoice's workflow as the
`decide_escalation` Update: the workflow, not the API, checks that the approval is still the
pending one and carries out the escalation.
"""

from __future__ import annotations

import logging

import anyio
from anyio import to_thread
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowUpdateFailedError,
    WorkflowUpdateHandle,
    WorkflowUpdateStage,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.actors import ActorNames, display
from api.auth import Principal
from api.errors import (
    MAY_HAVE_BEEN_RECORDED,
    Conflict,
    NotFound,
    Unavailable,
    from_temporal,
)
from api.idempotency import Idempotency
from api.schemas import ApprovalPublic, DecisionCreate, DecisionPublic, MoneyPublic, NextStepPublic
from api.services.invoices import TEMPORAL_ERRORS, approval_public, read_invoice, rpc_timeout
from config import Settings
from domain.errors import ErrorType
from domain.lifecycle import ApprovalStatus, DecisionResult, EscalationDecision
from store.invoices import approvals
from store.tables import Approval
from store.timeline import acknowledge
from workflows.client import invoice_handle
from workflows.invoice import InvoiceWorkflow

log = logging.getLogger("relance.api")

# How long a retried decision the workflow calls stale waits for the read model to say who took
# it: the workflow records the decision within seconds while its worker runs.
RETRY_READS = 10
RETRY_READ_SECONDS = 0.5


def _stale(err: BaseException) -> bool:
    cause = err.cause if isinstance(err, WorkflowUpdateFailedError) else None
    return isinstance(cause, ApplicationError) and cause.type == ErrorType.STALE_APPROVAL


def list_approvals(session: Session, status: ApprovalStatus | None) -> list[ApprovalPublic]:
    names = ActorNames(session)
    return [approval_public(row, names) for row in approvals(session, status)]


def _approval(engine: Engine, approval_id: str) -> Approval:
    with Session(engine) as session:
        row = session.get(Approval, approval_id)
    if row is None:
        raise NotFound(f"approval {approval_id} is unknown")
    return row


def _no_longer_pending(engine: Engine, row: Approval) -> Conflict:
    by = f" by {display(engine, row.decided_by)}" if row.decided_by else ""
    return Conflict(f"approval {row.id} is no longer pending: it was {row.status}{by}")


def _this_decision(row: Approval, body: DecisionCreate, principal: Principal) -> bool:
    """Whether the approval was decided as this request asks, by its caller: a retry of a
    decision whose first attempt was applied but never answered (a worker or server killed
    meanwhile, or the workflow continued as new, which forgets the Update ids it ran)."""
    wanted = ApprovalStatus.APPROVED if body.approve else ApprovalStatus.REJECTED
    return row.status == wanted and row.decided_by == principal.identity


async def _from_read_model(
    engine: Engine,
    settings: Settings,
    row: Approval,
    principal: Principal,
    *,
    approved: bool,
    applied: bool,
) -> DecisionPublic:
    """A decision's answer with the invoice as last recorded."""
    invoice = await to_thread.run_sync(read_invoice, engine, settings, row.invoice_number)
    return DecisionPublic(
        approval_id=row.id,
        approved=approved,
        decided_by=principal.name,
        applied=applied,
        stage=invoice.stage,
        outstanding=invoice.outstanding,
        next_step=invoice.next_step,
    )


async def _recorded(
    engine: Engine, settings: Settings, row: Approval, principal: Principal
) -> DecisionPublic:
    approved = row.status == ApprovalStatus.APPROVED
    return await _from_read_model(engine, settings, row, principal, approved=approved, applied=True)


async def _retried_outcome(
    engine: Engine,
    settings: Settings,
    approval_id: str,
    body: DecisionCreate,
    principal: Principal,
    stale: BaseException,
) -> DecisionPublic:
    """The workflow refused a retried decision as stale: its first attempt may be the one that
    took it. The read model says so once it has caught up (a few seconds, or once a killed worker
    is back); until then the outcome is unknown, and the caller retries with the same key."""
    for _ in range(RETRY_READS):
        row = await to_thread.run_sync(_approval, engine, approval_id)
        if row.status != ApprovalStatus.PENDING:
            if _this_decision(row, body, principal):
                return await _recorded(engine, settings, row, principal)
            raise _no_longer_pending(engine, row) from stale
        await anyio.sleep(RETRY_READ_SECONDS)
    raise Unavailable(
        f"approval {approval_id} is no longer pending on its invoice, and the record of who "
        f"decided it is not yet written: {MAY_HAVE_BEEN_RECORDED}",
        headers={"Retry-After": "2"},
    ) from stale


async def decide(
    engine: Engine,
    client: Client,
    settings: Settings,
    approval_id: str,
    body: DecisionCreate,
    principal: Principal,
    idem: Idempotency | None = None,
) -> DecisionPublic:
    approval = await to_thread.run_sync(_approval, engine, approval_id)
    if approval.status != ApprovalStatus.PENDING:
        if idem is not None and _this_decision(approval, body, principal):
            return await _recorded(engine, settings, approval, principal)
        raise _no_longer_pending(engine, approval)
    number = approval.invoice_number
    decision = EscalationDecision(
        approval_id=approval_id,
        approve=body.approve,
        comment=body.comment,
        decided_by=principal.identity,
    )
    handle = invoice_handle(client, number)
    try:
        # Accepted first: once the workflow's validator took the decision it will be carried
        # out, even if sending the escalation's messages outlasts this request.
        update: WorkflowUpdateHandle[DecisionResult] = await handle.start_update(
            InvoiceWorkflow.decide_escalation,
            decision,
            id=idem.update_id() if idem is not None else None,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            rpc_timeout=rpc_timeout(settings),
        )
    except TEMPORAL_ERRORS as err:
        if idem is not None and _stale(err):
            return await _retried_outcome(engine, settings, approval_id, body, principal, err)
        if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
            raise Conflict(
                f"approval {approval_id} can no longer be decided: the collection of invoice "
                f"{number} has ended"
            ) from err
        raise from_temporal(err, settings, invoice=number) from err
    log.info("approval %s decided (approve=%s) by %s", approval_id, body.approve, principal.prefix)
    try:
        result = await update.result(rpc_timeout=rpc_timeout(settings))
    except RPCTimeoutOrCancelledError:
        # Accepted, so it will be carried out: the state below is the last one recorded.
        return await _from_read_model(
            engine, settings, approval, principal, approved=body.approve, applied=False
        )
    except TEMPORAL_ERRORS as err:
        if idem is not None and _stale(err):
            return await _retried_outcome(engine, settings, approval_id, body, principal, err)
        # E.g. a concurrent decision on the same approval won the race after both were
        # accepted: the workflow refuses this one as stale (409), never a 500.
        raise from_temporal(err, settings, invoice=number) from err
    status = result.status
    await to_thread.run_sync(acknowledge, engine, status)
    return DecisionPublic(
        approval_id=approval_id,
        approved=result.approved,
        decided_by=principal.name,
        applied=True,
        stage=status.stage,
        outstanding=MoneyPublic.from_money(status.outstanding),
        next_step=(
            NextStepPublic.model_validate(status.next_step.model_dump())
            if status.next_step
            else None
        ),
    )
