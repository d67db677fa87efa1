"""`/v1/legal-files`: the legal file behind the signed link of a legal partner's hand-off
message. Public: the link's signature and expiry are the credential (api.roles.PUBLIC)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Query, Response

from api.deps import SessionDep, SettingsDep
from api.errors import Forbidden, Gone, NotFound
from api.routes.invoices import LEGAL_FILE, legal_file
from api.schemas import error_responses
from domain.dossier_link import LinkCheck, check_dossier_link

router = APIRouter(prefix="/v1/legal-files", tags=["invoices"])


@router.get(
    "/{number}",
    responses={**error_responses(403, 404, 410, 422), **LEGAL_FILE},
    response_class=Response,
    summary="The legal file, from the signed link a legal partner received (no API key)",
)
def get_legal_file(
    number: str,
    session: SessionDep,
    settings: SettingsDep,
    expires: int = Query(description="the link's expiry, Unix seconds"),
    signature: str = Query(max_length=128, description="the link's HMAC-SHA256, hex"),
) -> Response:
    secret = settings.dossier_link_secret
    if secret is None:
        raise NotFound("legal-file links are not enabled on this server")
    now = datetime.now(UTC)
    match check_dossier_link(secret.get_secret_value(), number, expires, signature, now=now):
        case LinkCheck.FORGED:
            raise Forbidden("this legal-file link is not valid: use the link exactly as received")
        case LinkCheck.EXPIRED:
            raise Gone(
                f"this legal-file link expired on {datetime.fromtimestamp(expires, UTC).date()}: "
                "ask the creditor for a new one"
            )
    return legal_file(session, settings, number)
