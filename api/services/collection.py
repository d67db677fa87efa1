"""Collection work on one invoice: disputes, payment plans, holds, cancellation and write-off.

Each action goes to the invoice's workflow as an Update carrying the actor; the workflow
checks it (its validators decide what is allowed: four-eyes, plan sums, one dispute at a
time) and records it through its activities. The API only reads those records back, so the
workflow stays the one source of truth for the process.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import TypeVar

from anyio import to_thread
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowUpdateStage
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from api.auth import Principal
from api.collection_schemas import (
    ActionDone,
    CancelCreate,
    DisputeCreate,
    DisputeOpened,
    DisputePublic,
    DisputeResolutionCreate,
    DisputeResolved,
    InstallmentPublic,
    InvoiceState,
    PauseCreate,
    PlanCreate,
    PlanDecided,
    PlanDecisionCreate,
    PlanProposed,
    PlanPublic,
    PlaybookChange,
    ResumeCreate,
    WriteOffCreate,
    check_scale,
)
from api.errors import Conflict, Invalid, NotFound, Unavailable, from_temporal
from api.schemas import MoneyPublic
from api.services.debtors import playbook_library
from api.services.invoices import TEMPORAL_ERRORS, playbook_named, read_invoice, rpc_timeout
from config import Settings
from domain.holds import (
    Closure,
    ClosureKind,
    DisputeOpen,
    DisputeResolution,
    HoldRequest,
    Installment,
    PlanDecision,
    PlanProposal,
    PlaybookMigration,
    ResumeRequest,
)
from domain.lifecycle import TERMINAL_STAGES, InvoiceStatus
from domain.money import Money
from store.tables import Dispute, Invoice, PaymentPlan
from store.timeline import acknowledge
from workflows.client import invoice_handle
from workflows.invoice import InvoiceWorkflow

log = logging.getLogger("relance.api")

Request = TypeVar("Request", bound=BaseModel)


def new_id(prefix: str) -> str:
    """A short opaque id for a dispute or plan: no personal data, unique enough per invoice."""
    return f"{prefix}-{uuid.uuid4().hex[:12].upper()}"


# ------------------------------------------------------------------ the store


def invoice_or_404(session: Session, number: str) -> Invoice:
    invoice = session.get(Invoice, number)
    if invoice is None:
        raise NotFound(f"invoice {number} is unknown: it was never handed over")
    return invoice


def _known_invoice(engine: Engine, number: str) -> Invoice:
    with Session(engine) as session:
        return invoice_or_404(session, number)


def _amount(value: Decimal, currency: str, field: str) -> Money:
    try:
        check_scale(value, currency)
    except ValueError as err:
        raise Invalid(f"{field}: {err}") from None
    return Money.of(value, currency)


# ------------------------------------------------------------------ the workflow


def _after_end(engine: Engine, number: str) -> Conflict | Unavailable:
    """The answer for an action on an invoice whose workflow is not running."""
    invoice = _known_invoice(engine, number)
    if invoice.stage in TERMINAL_STAGES:
        return Conflict(f"invoice {number} is already {invoice.stage}: its collection has ended")
    return Unavailable(
        f"invoice {number} has no running collection: hand it over again (same request) to "
        "start it, then retry"
    )


def _from_store(engine: Engine, settings: Settings, number: str) -> InvoiceState:
    invoice = read_invoice(engine, settings, number)
    return InvoiceState(
        number=invoice.number,
        stage=invoice.stage,
        outstanding=invoice.outstanding,
        next_step=invoice.next_step,
    )


async def apply(
    engine: Engine,
    client: Client,
    settings: Settings,
    number: str,
    update: UpdateMethodMultiParam[[InvoiceWorkflow, Request], InvoiceStatus],
    request: Request,
) -> tuple[InvoiceState, bool]:
    """Send one Update to the invoice's workflow: its state afterwards, and whether it is done.

    Accepted first: once the workflow's validator took the action it will be carried out, even
    if recording it outlasts this request; the state is then the last one the store holds.
    """
    handle = invoice_handle(client, number)
    try:
        accepted = await handle.start_update(
            update,
            request,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            rpc_timeout=rpc_timeout(settings),
        )
    except TEMPORAL_ERRORS as err:
        if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
            raise await to_thread.run_sync(_after_end, engine, number) from err
        mapped = from_temporal(err, settings, invoice=number)
        if mapped is None:
            raise
        raise mapped from err
    try:
        status = await accepted.result(rpc_timeout=rpc_timeout(settings))
    except RPCTimeoutOrCancelledError:
        return await to_thread.run_sync(_from_store, engine, settings, number), False
    except TEMPORAL_ERRORS as err:
        mapped = from_temporal(err, settings, invoice=number)
        if mapped is None:
            raise
        raise mapped from err
    await to_thread.run_sync(acknowledge, engine, status)
    return InvoiceState.of(status), True


# ------------------------------------------------------------------ disputes


def _dispute_public(row: Dispute, invoice_currency: str) -> DisputePublic:
    currency = row.currency or invoice_currency
    return DisputePublic(
        id=row.id,
        invoice_number=row.invoice_number,
        status=row.status,
        reason=row.reason,
        amount=MoneyPublic.of(row.amount, currency) if row.amount is not None else None,
        opened_by=row.opened_by,
        opened_at=row.opened_at,
        deadline=row.deadline,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
        resolution=row.resolution,
        credit=MoneyPublic.of(row.credit, currency) if row.credit is not None else None,
    )


def list_disputes(session: Session, number: str) -> list[DisputePublic]:
    invoice = invoice_or_404(session, number)
    rows = session.exec(
        select(Dispute)
        .where(Dispute.invoice_number == number)
        .order_by(col(Dispute.opened_at), col(Dispute.id))
    ).all()
    return [_dispute_public(row, invoice.currency) for row in rows]


async def open_dispute(
    engine: Engine,
    client: Client,
    settings: Settings,
    number: str,
    body: DisputeCreate,
    principal: Principal,
) -> DisputeOpened:
    # The store first: an unknown invoice is a 404 without a round trip to Temporal.
    invoice = await to_thread.run_sync(_known_invoice, engine, number)
    amount: Money | None = None
    if body.amount is not None:
        amount = _amount(body.amount, body.currency or invoice.currency, "amount")
        if amount.currency == invoice.currency and amount.amount > invoice.amount:
            raise Invalid(
                f"amount: the disputed {amount} is more than the invoice's "
                f"{Money.of(invoice.amount, invoice.currency)}"
            )
    request = DisputeOpen(
        dispute_id=new_id("D"), reason=body.reason, amount=amount, opened_by=principal.name
    )
    state, applied = await apply(
        engine, client, settings, number, InvoiceWorkflow.open_dispute, request
    )
    log.info("dispute %s opened on invoice %s by %s", request.dispute_id, number, principal.prefix)
    return DisputeOpened(
        dispute_id=request.dispute_id, by=principal.name, applied=applied, status=state
    )


def _open_dispute_row(engine: Engine, number: str, dispute_id: str) -> Invoice:
    with Session(engine) as session:
        invoice = invoice_or_404(session, number)
        row = session.get(Dispute, dispute_id)
    if row is None or row.invoice_number != number:
        raise NotFound(f"dispute {dispute_id} is unknown on invoice {number}")
    if row.status != "open":
        by = f" by {row.resolved_by}" if row.resolved_by else ""
        raise Conflict(f"dispute {dispute_id} is no longer open: it was {row.status}{by}")
    return invoice


async def resolve_dispute(
    engine: Engine,
    client: Client,
    settings: Settings,
    number: str,
    dispute_id: str,
    body: DisputeResolutionCreate,
    principal: Principal,
) -> DisputeResolved:
    invoice = await to_thread.run_sync(_open_dispute_row, engine, number, dispute_id)
    credit = _amount(body.credit, invoice.currency, "credit") if body.credit else None
    resolution = DisputeResolution(
        dispute_id=dispute_id,
        outcome=body.outcome,
        credit=credit,
        credit_note_reference=body.credit_note_reference,
        comment=body.comment,
        resolved_by=principal.name,
    )
    state, applied = await apply(
        engine, client, settings, number, InvoiceWorkflow.resolve_dispute, resolution
    )
    log.info(
        "dispute %s on invoice %s %s by %s", dispute_id, number, body.outcome, principal.prefix
    )
    return DisputeResolved(
        dispute_id=dispute_id,
        outcome=body.outcome,
        by=principal.name,
        applied=applied,
        status=state,
    )


# ------------------------------------------------------------------ payment plans


def _plan_public(row: PaymentPlan) -> PlanPublic:
    installments = [Installment.model_validate(item) for item in row.installments]
    return PlanPublic(
        id=row.id,
        invoice_number=row.invoice_number,
        status=row.status,
        installments=[
            InstallmentPublic(due_date=i.due_date, amount=MoneyPublic.from_money(i.amount))
            for i in installments
        ],
        needs_approval=row.needs_approval,
        proposed_by=row.proposed_by,
        proposed_at=row.proposed_at,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        comment=row.comment,
    )


def _plans(session: Session, number: str) -> Sequence[PaymentPlan]:
    return session.exec(
        select(PaymentPlan)
        .where(PaymentPlan.invoice_number == number)
        .order_by(col(PaymentPlan.proposed_at), col(PaymentPlan.id))
    ).all()


def list_plans(session: Session, number: str) -> list[PlanPublic]:
    invoice_or_404(session, number)
    return [_plan_public(row) for row in _plans(session, number)]


def _stored_plan(engine: Engine, plan_id: str) -> PaymentPlan | None:
    with Session(engine) as session:
        return session.get(PaymentPlan, plan_id)


def _needs_approval(settings: Settings, invoice: Invoice, proposal: PlanProposal) -> bool:
    # Only when the workflow accepted the plan but has not recorded it yet: the playbook's
    # limits, as the workflow applies them.
    playbook = playbook_named(settings, invoice.playbook)
    return playbook.plan_needs_approval(proposal.total, len(proposal.installments))


async def propose_plan(
    engine: Engine,
    client: Client,
    settings: Settings,
    number: str,
    body: PlanCreate,
    principal: Principal,
) -> PlanProposed:
    invoice = await to_thread.run_sync(_known_invoice, engine, number)
    installments = [
        Installment(
            due_date=item.due_date,
            amount=_amount(item.amount, invoice.currency, f"installments.{index}.amount"),
        )
        for index, item in enumerate(body.installments)
    ]
    proposal = PlanProposal(
        plan_id=new_id("P"),
        installments=installments,
        proposed_by=principal.name,
        comment=body.comment,
    )
    state, applied = await apply(
        engine, client, settings, number, InvoiceWorkflow.propose_payment_plan, proposal
    )
    log.info("plan %s proposed on invoice %s by %s", proposal.plan_id, number, principal.prefix)
    stored = await to_thread.run_sync(_stored_plan, engine, proposal.plan_id)
    if stored is not None:
        needs_approval, plan_status = stored.needs_approval, stored.status
    else:
        needs_approval = _needs_approval(settings, invoice, proposal)
        plan_status = "proposed" if needs_approval else "active"
    return PlanProposed(
        plan_id=proposal.plan_id,
        needs_approval=needs_approval,
        plan_status=plan_status,
        by=principal.name,
        applied=applied,
        status=state,
    )


def _proposed_plan(engine: Engine, number: str, plan_id: str) -> None:
    with Session(engine) as session:
        invoice_or_404(session, number)
        row = session.get(PaymentPlan, plan_id)
    if row is None or row.invoice_number != number:
        raise NotFound(f"payment plan {plan_id} is unknown on invoice {number}")
    if row.status != "proposed":
        by = f" by {row.decided_by}" if row.decided_by else ""
        raise Conflict(f"payment plan {plan_id} is not awaiting a decision: it is {row.status}{by}")


async def decide_plan(
    engine: Engine,
    client: Client,
    settings: Settings,
    number: str,
    plan_id: str,
    body: PlanDecisionCreate,
    principal: Principal,
) -> PlanDecided:
    await to_thread.run_sync(_proposed_plan, engine, number, plan_id)
    # Four-eyes is the workflow's to enforce: it knows who proposed the plan.
    decision = PlanDecision(
        plan_id=plan_id, approve=body.approve, decided_by=principal.name, comment=body.comment
    )
    state, applied = await apply(
        engine, client, settings, number, InvoiceWorkflow.decide_payment_plan, decision
    )
    log.info(
        "plan %s on invoice %s decided (approve=%s) by %s",
        plan_id,
        number,
        body.approve,
        principal.prefix,
    )
    return PlanDecided(
        plan_id=plan_id, approved=body.approve, by=principal.name, applied=applied, status=state
    )


# ------------------------------------------------------------------ holds and closures


async def _act(
    engine: Engine,
    client: Client,
    settings: Settings,
    number: str,
    update: UpdateMethodMultiParam[[InvoiceWorkflow, Request], InvoiceStatus],
    request: Request,
    principal: Principal,
    what: str,
) -> ActionDone:
    await to_thread.run_sync(_known_invoice, engine, number)
    state, applied = await apply(engine, client, settings, number, update, request)
    log.info("invoice %s %s by %s", number, what, principal.prefix)
    return ActionDone(by=principal.name, applied=applied, status=state)


async def pause(
    engine: Engine,
    client: Client,
    settings: Settings,
    number: str,
    body: PauseCreate,
    principal: Principal,
) -> ActionDone:
    request = HoldRequest(reason=body.reason, until=body.until, by=principal.name)
    return await _act(
        engine, client, settings, number, InvoiceWorkflow.pause, request, principal, "paused"
    )


async def resume(
    engine: Engine,
    client: Client,
    settings: Settings,
    number: str,
    body: ResumeCreate,
    principal: Principal,
) -> ActionDone:
    request = ResumeRequest(by=principal.name, comment=body.comment)
    return await _act(
        engine, client, settings, number, InvoiceWorkflow.resume, request, principal, "resumed"
    )


async def cancel(
    engine: Engine,
    client: Client,
    settings: Settings,
    number: str,
    body: CancelCreate,
    principal: Principal,
) -> ActionDone:
    closure = Closure(
        kind=ClosureKind.CANCEL,
        reason=body.reason,
        by=principal.name,
        credit_note_reference=body.credit_note_reference,
    )
    return await _act(
        engine, client, settings, number, InvoiceWorkflow.close, closure, principal, "cancelled"
    )


async def write_off(
    engine: Engine,
    client: Client,
    settings: Settings,
    number: str,
    body: WriteOffCreate,
    principal: Principal,
) -> ActionDone:
    closure = Closure(kind=ClosureKind.WRITE_OFF, reason=body.reason, by=principal.name)
    return await _act(
        engine, client, settings, number, InvoiceWorkflow.close, closure, principal, "written off"
    )


async def migrate_playbook(
    engine: Engine,
    client: Client,
    settings: Settings,
    number: str,
    body: PlaybookChange,
    principal: Principal,
) -> ActionDone:
    """Running invoices keep the playbook they started with, unless an operator moves them."""
    if body.playbook not in playbook_library(settings).names():
        raise Invalid(
            f"no playbook named {body.playbook!r}; known: "
            + ", ".join(sorted(playbook_library(settings).names()))
        )
    migration = PlaybookMigration(
        playbook=playbook_named(settings, body.playbook), by=principal.name, reason=body.reason
    )
    return await _act(
        engine,
        client,
        settings,
        number,
        InvoiceWorkflow.migrate_playbook,
        migration,
        principal,
        f"moved to playbook {body.playbook}",
    )
