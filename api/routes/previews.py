"""`/v1/invoices/{number}/preview/{step}`: a step's message as the debtor would receive it."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Caller, EngineDep, SettingsDep
from api.import_schemas import MessagePreview
from api.schemas import IsoDate, Language, error_responses
from api.services import previews

router = APIRouter(prefix="/v1/invoices", tags=["invoices"])


@router.get(
    "/{number}/preview/{step}",
    responses=error_responses(401, 403, 404, 422, 500),
    summary="Render a step's message without sending it",
)
def preview(
    number: str,
    step: str,
    engine: EngineDep,
    settings: SettingsDep,
    _: Caller,
    language: Language | None = None,
    as_of: IsoDate | None = None,
) -> MessagePreview:
    """As it would go out today with the amount outstanding now (`as_of` for another day; the
    debtor's language unless `language`). `step` is a step of the invoice's playbook, or
    `thank_you`. Nothing is sent or recorded."""
    return previews.preview(engine, settings, number, step, language=language, as_of=as_of)
