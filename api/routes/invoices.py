"""`/v1/invoices`: the back office hands over invoices and reports payments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Response

from api.deps import Caller, ClientDep, EngineDep, SessionDep, SettingsDep
from api.idempotency import IdempotencyDep
from api.schemas import (
    HistoryEntry,
    InvoiceCreate,
    InvoicePublic,
    PaymentCreate,
    PaymentRecorded,
    error_responses,
)
from api.services import dossier, invoices

router = APIRouter(prefix="/v1/invoices", tags=["invoices"])


@router.post(
    "",
    status_code=201,
    responses=error_responses(401, 403, 409, 503),
    summary="Hand over an invoice for collection (idempotent)",
)
async def hand_over(
    body: InvoiceCreate,
    response: Response,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    _: Caller,
) -> InvoicePublic:
    """The same invoice again gets the same answer; the same number with other data, 409."""
    response.headers["Location"] = f"/v1/invoices/{body.number}"
    return await invoices.hand_over(engine, client, settings, body)


@router.get("/{number}", responses=error_responses(401, 403, 404), summary="An invoice's state")
def get_invoice(
    number: str, session: SessionDep, settings: SettingsDep, _: Caller
) -> InvoicePublic:
    return invoices.get_invoice(session, settings, number)


@router.post(
    "/{number}/payments",
    responses=error_responses(401, 403, 404, 409, 503),
    summary="Report a payment (idempotent on its reference)",
)
async def record_payment(
    number: str,
    body: PaymentCreate,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    _: Caller,
    idem: IdempotencyDep,
) -> PaymentRecorded:
    return await invoices.record_payment(engine, client, settings, number, body, idem)


@router.get(
    "/{number}/history",
    responses=error_responses(401, 403, 404),
    summary="The invoice's timeline: steps, messages, payments, decisions",
)
def history(number: str, session: SessionDep, _: Caller) -> list[HistoryEntry]:
    return invoices.history(session, number)


# The legal file's answer, here and behind its signed link (api/routes/legal_files.py).
LEGAL_FILE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/zip": {}}, "description": "the legal file (zip)"}
}


def legal_file(session: SessionDep, settings: SettingsDep, number: str) -> Response:
    now = datetime.now(UTC)
    body = dossier.dossier(session, settings, number, as_of=now.date(), created_at=now)
    return Response(
        body,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{number}-dossier.zip"'},
    )


@router.get(
    "/{number}/dossier",
    responses={**error_responses(401, 403, 404, 422), **LEGAL_FILE},
    response_class=Response,
    summary="The legal file: invoice, timeline, messages as sent, amounts, summary PDF (zip)",
)
def get_dossier(number: str, session: SessionDep, settings: SettingsDep, _: Caller) -> Response:
    return legal_file(session, settings, number)
