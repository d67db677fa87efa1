"""Approvals: the collectors' inbox of escalations, and their decisions.

The inbox is read from the store. A decision goes to the invoice's workflow as the
`decide_escalation` Update: the workflow, not the API, checks that the approval is still the
pending one and carries out the escalation.
"""

from __future__ import annotations

import logging

from anyio import to_thread
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowUpdateHandle,
    WorkflowUpdateStage,
)
from temporalio.service import RPCError, RPCStatusCode

from api.auth import Principal
from api.errors import Conflict, NotFound, from_temporal
from api.schemas import ApprovalPublic, DecisionCreate, DecisionPublic, MoneyPublic, NextStepPublic
from api.services.invoices import TEMPORAL_ERRORS, approval_public, read_invoice, rpc_timeout
from config import Settings
from domain.lifecycle import ApprovalStatus, DecisionResult, EscalationDecision
from store.invoices import approvals
from store.tables import Approval
from store.timeline import acknowledge
from workflows.client import invoice_handle
from workflows.invoice import InvoiceWorkflow

log = logging.getLogger("relance.api")


def list_approvals(session: Session, status: ApprovalStatus | None) -> list[ApprovalPublic]:
    return [approval_public(row) for row in approvals(session, status)]


def _pending_approval(engine: Engine, approval_id: str) -> Approval:
    with Session(engine) as session:
        row = session.get(Approval, approval_id)
    if row is None:
        raise NotFound(f"approval {approval_id} is unknown")
    if row.status != ApprovalStatus.PENDING:
        by = f" by {row.decided_by}" if row.decided_by else ""
        raise Conflict(f"approval {approval_id} is no longer pending: it was {row.status}{by}")
    return row


async def decide(
    engine: Engine,
    client: Client,
    settings: Settings,
    approval_id: str,
    body: DecisionCreate,
    principal: Principal,
) -> DecisionPublic:
    approval = await to_thread.run_sync(_pending_approval, engine, approval_id)
    number = approval.invoice_number
    decision = EscalationDecision(
        approval_id=approval_id,
        approve=body.approve,
        comment=body.comment,
        decided_by=principal.name,
    )
    handle = invoice_handle(client, number)
    try:
        # Accepted first: once the workflow's validator took the decision it will be carried
        # out, even if sending the escalation's messages outlasts this request.
        update: WorkflowUpdateHandle[DecisionResult] = await handle.start_update(
            InvoiceWorkflow.decide_escalation,
            decision,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            rpc_timeout=rpc_timeout(settings),
        )
    except TEMPORAL_ERRORS as err:
        if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
            raise Conflict(
                f"approval {approval_id} can no longer be decided: the collection of invoice "
                f"{number} has ended"
            ) from err
        mapped = from_temporal(err, settings, invoice=number)
        if mapped is None:
            raise
        raise mapped from err
    log.info("approval %s decided (approve=%s) by %s", approval_id, body.approve, principal.prefix)
    try:
        result = await update.result(rpc_timeout=rpc_timeout(settings))
    except RPCTimeoutOrCancelledError:
        invoice = await to_thread.run_sync(read_invoice, engine, settings, number)
        return DecisionPublic(
            approval_id=approval_id,
            approved=body.approve,
            decided_by=principal.name,
            applied=False,
            stage=invoice.stage,
            outstanding=invoice.outstanding,
            next_step=invoice.next_step,
        )
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
