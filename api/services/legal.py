"""After the amicable stages: a mediation's outcome, and the legal partner's progress.

Each is one Update to the invoice's workflow (its validators decide: the right stage, a schedule
adding up to what is outstanding, the invoice's currency), answered as the other collection
actions are (api/services/collection.py `apply`).
"""

from __future__ import annotations

import logging

from anyio import to_thread
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from temporalio.client import Client

from api.auth import Principal
from api.errors import Invalid
from api.idempotency import Idempotency
from api.legal_schemas import LegalCreate, LegalRecorded, MediationCreate, MediationRecorded
from api.services.collection import _amount, apply, known_invoice, new_id
from api.services.debtors import today
from config import Settings
from domain.holds import Installment
from domain.legal import LegalUpdate, MediationOutcome, MediationResult
from workflows.invoice import InvoiceWorkflow

log = logging.getLogger("relance.api")


async def record_mediation(
    engine: Engine,
    client: Client,
    settings: Settings,
    number: str,
    body: MediationCreate,
    principal: Principal,
    idem: Idempotency | None = None,
) -> MediationRecorded:
    invoice = await to_thread.run_sync(known_invoice, engine, number)
    if body.ended_on > today():
        raise Invalid(
            f"ended_on: {body.ended_on.isoformat()} is in the future; record the outcome once "
            "the mediation has ended",
            field="ended_on",
        )
    installments = [
        Installment(
            due_date=item.due_date,
            amount=_amount(item.amount, invoice.currency, f"installments.{index}.amount"),
        )
        for index, item in enumerate(body.installments)
    ]
    agreement = body.outcome == MediationOutcome.AGREEMENT
    try:
        result = MediationResult(
            outcome=body.outcome,
            mediator_reference=body.mediator_reference,
            started_on=body.started_on,
            ended_on=body.ended_on,
            note=body.note,
            recorded_by=principal.identity,
            plan_id=new_id("P", idem) if agreement else None,
            installments=installments,
        )
    except ValidationError as err:
        message = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in err.errors())
        raise Invalid(f"installments: {message}", field="installments") from None
    state, applied = await apply(
        engine, client, settings, number, InvoiceWorkflow.record_mediation, result, idem
    )
    log.info("mediation outcome %s on invoice %s by %s", body.outcome, number, principal.prefix)
    return MediationRecorded(
        outcome=body.outcome,
        plan_id=result.plan_id,
        by=principal.name,
        applied=applied,
        status=state,
    )


async def record_legal(
    engine: Engine,
    client: Client,
    settings: Settings,
    number: str,
    body: LegalCreate,
    principal: Principal,
    idem: Idempotency | None = None,
) -> LegalRecorded:
    invoice = await to_thread.run_sync(known_invoice, engine, number)
    update = LegalUpdate(
        status=body.status,
        partner_reference=body.partner_reference,
        costs=(
            _amount(body.costs, body.currency or invoice.currency, "costs")
            if body.costs is not None
            else None
        ),
        note=body.note,
        by=principal.identity,
    )
    state, applied = await apply(
        engine, client, settings, number, InvoiceWorkflow.update_legal, update, idem
    )
    log.info("legal file of invoice %s: %s, by %s", number, body.status, principal.prefix)
    return LegalRecorded(legal_status=body.status, by=principal.name, applied=applied, status=state)
