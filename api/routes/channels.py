"""Texts, letters and calls: provider callbacks, letters' outcomes, call tasks' details."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response

from api.channel_schemas import AssignmentCreate, CallTaskPublic, LetterEventCreate, LetterRecorded
from api.deps import Caller, ClientDep, EngineDep, SessionDep, SettingsDep
from api.schemas import error_responses
from api.services import calls, channels, webhooks
from store.letters import LetterPublic

router = APIRouter(tags=["channels"])

# Who may call what is in api/roles.py (the webhooks authenticate by their signatures).
LetterWriter = Caller
TaskReader = Caller
Collector = Caller
InvoiceReader = Caller
# Twilio reads the answer as TwiML: an empty <Response/> sends no reply to the debtor.
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


@router.post(
    "/v1/webhooks/twilio",
    responses=error_responses(400, 403, 413, 503),
    summary="Twilio (signed): texts' delivery statuses and the debtor's replies (STOP)",
)
async def twilio_events(
    request: Request, engine: EngineDep, client: ClientDep, settings: SettingsDep
) -> Response:
    """No API key: Twilio's `X-Twilio-Signature` over RELANCE_PUBLIC_URL + this path and the
    form fields is the credential. Set this URL as the number's messaging webhook too, so a
    STOP reply switches the debtor's invoices to their playbook's fallback."""
    body = await webhooks.read_body(request.stream(), request.headers.get("content-length"))
    await channels.receive_twilio(
        engine, client, settings, request.headers.get(channels.TWILIO_SIGNATURE), body
    )
    return Response(EMPTY_TWIML, media_type="text/xml")


@router.post(
    "/v1/webhooks/maileva",
    status_code=201,
    responses=error_responses(403, 503),
    summary="Maileva notifications (HTTP Basic): registered letters' tracking and receipts",
)
async def maileva_events(
    request: Request,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    payload: Annotated[dict[str, Any], Body()],
) -> Response:
    """Maileva counts a notification delivered on a 201 only."""
    await channels.receive_maileva(
        engine, client, settings, request.headers.get("Authorization"), payload
    )
    return Response(status_code=201)


@router.get(
    "/v1/invoices/{number}/letters",
    responses=error_responses(401, 403),
    summary="The invoice's letters: registered or not, tracking number, receipt",
)
def list_letters(number: str, session: SessionDep, _: InvoiceReader) -> list[LetterPublic]:
    return channels.list_letters(session, number)


@router.post(
    "/v1/letters/{key}/events",
    responses=error_responses(401, 403, 404, 422, 503),
    summary="Record what the post said of a letter (posted, received on a date, not claimed...)",
)
async def letter_event(
    key: str,
    body: LetterEventCreate,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    principal: LetterWriter,
) -> LetterRecorded:
    return await channels.record_letter_event(engine, client, settings, key, body, principal.name)


@router.get(
    "/v1/tasks/{task_id}",
    responses=error_responses(401, 403, 404),
    summary="A task with the debtor's number, the call script and the contacts so far",
)
def get_task(
    task_id: str, engine: EngineDep, settings: SettingsDep, _: TaskReader
) -> CallTaskPublic:
    return calls.call_task(engine, settings, task_id)


@router.put(
    "/v1/tasks/{task_id}/assignment",
    responses=error_responses(401, 403, 404, 409),
    summary="Assign a task to a collector (null frees it)",
)
def assign_task(
    task_id: str,
    body: AssignmentCreate,
    engine: EngineDep,
    settings: SettingsDep,
    _: Collector,
) -> CallTaskPublic:
    return calls.assign(engine, settings, task_id, body.assignee)
