"""`POST /v1/invoices:batch`: the back office hands over a portfolio, reported line by line.

The path is the collection's custom method (`:batch`, as in Google's API design guide); it
cannot be taken for `/v1/invoices/{number}`, whose number comes after a slash.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Caller, ClientDep, EngineDep, SettingsDep
from api.import_schemas import MAX_BATCH, BatchReport, InvoiceBatch
from api.schemas import error_responses
from api.services import imports

router = APIRouter(tags=["invoices"])


@router.post(
    "/v1/invoices:batch",
    responses=error_responses(401, 403, 500, 503),
    summary=f"Hand over up to {MAX_BATCH} invoices (idempotent, line by line)",
)
async def hand_over_batch(
    body: InvoiceBatch,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    _: Caller,
    dry_run: bool = False,
) -> BatchReport:
    """Each item as `POST /v1/invoices` takes it, and each on its own: a bad item is rejected
    with its fields and the others go through; the same batch again reports them unchanged.

    An item is recorded, then its collection started. If Temporal cannot be reached the batch
    stops with a 503: send the same batch again, and the items recorded without a start are
    reported unchanged and started then. With `dry_run`, nothing is recorded: the report says
    what would happen."""
    return await imports.hand_over_batch(engine, client, settings, body, dry_run=dry_run)
