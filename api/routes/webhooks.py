"""`/v1/webhooks`: events that providers push to us, authenticated by their own signatures."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import ClientDep, EngineDep, SettingsDep
from api.schemas import error_responses
from api.services import webhooks
from api.webhook_schemas import WebhookReceipt

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.post(
    "/sendgrid",
    responses=error_responses(400, 403, 413, 503),
    summary="SendGrid Event Webhook (signed): delivery events of the emails sent",
)
async def sendgrid_events(
    request: Request, engine: EngineDep, client: ClientDep, settings: SettingsDep
) -> WebhookReceipt:
    """No API key: SendGrid's ECDSA signature of the timestamp and raw body is the credential.

    Configure SendGrid's *signed* Event Webhook to post here, with the custom args kept, and
    set RELANCE_SENDGRID_WEBHOOK_PUBLIC_KEY to its verification key. Replayed events are
    recognised by their `sg_event_id` and change nothing.
    """
    # The raw bytes, never a parsed and re-serialised body: the signature covers these bytes.
    body = await webhooks.read_body(request.stream(), request.headers.get("content-length"))
    return await webhooks.receive_sendgrid(
        engine,
        client,
        settings,
        signature=request.headers.get(webhooks.SIGNATURE_HEADER),
        timestamp=request.headers.get(webhooks.TIMESTAMP_HEADER),
        body=body,
    )
