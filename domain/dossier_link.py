"""Signed, expiring links to an invoice's legal file, for the legal partner's hand-off message.

A lawyer gets the whole file (the archive of `GET /v1/invoices/{n}/dossier`) from one link,
without an API key: the link itself is the credential. It names the invoice and the moment it
expires, and carries an HMAC-SHA256 of both under RELANCE_DOSSIER_LINK_SECRET, so neither can be
changed; a link past its moment is refused as expired. Pure: callers pass the time.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final
from urllib.parse import quote, urlencode

# The public endpoint that serves the archive to a link's holder.
DOSSIER_LINK_PATH: Final = "/v1/legal-files/{number}"
# Separates these signatures from any other use of the same secret.
_CONTEXT: Final = "relance.dossier.link.v1"


class LinkCheck(StrEnum):
    VALID = "valid"
    FORGED = "forged"  # not signed by us: changed, truncated or made up
    EXPIRED = "expired"  # ours, but past its moment


def signature(secret: str, number: str, expires: int) -> str:
    message = f"{_CONTEXT}|{number}|{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def dossier_link(
    public_url: str, secret: str, number: str, *, now: datetime, valid_for: timedelta
) -> tuple[str, datetime]:
    """The link to `number`'s legal file, and the moment it expires (whole seconds)."""
    expires = int((now + valid_for).timestamp())
    query = urlencode({"expires": expires, "signature": signature(secret, number, expires)})
    path = DOSSIER_LINK_PATH.format(number=quote(number, safe=""))
    return f"{public_url.rstrip('/')}{path}?{query}", datetime.fromtimestamp(expires, now.tzinfo)


def check_dossier_link(
    secret: str, number: str, expires: int, given: str, *, now: datetime
) -> LinkCheck:
    """Whether a link's parts are ours, and still valid at `now`. The signature is checked
    first: an expiry moved forward is a forgery, not a valid link."""
    if not hmac.compare_digest(signature(secret, number, expires), given):
        return LinkCheck.FORGED
    if now.timestamp() > expires:
        return LinkCheck.EXPIRED
    return LinkCheck.VALID
