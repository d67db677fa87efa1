"""The portal's guards: security headers, rate limits, and the token kept out of logs.

The link's token is a bearer secret. It travels once in a URL (`/portal/l/<token>`, the link
in the message), is moved into an HttpOnly cookie at once, and every later page is plain
`/portal`: no token in the address bar, in referrers (no-referrer besides) or in access logs.
That one first request is logged with the token replaced (`RedactTokens`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from limits import RateLimitItemPerMinute, storage, strategies

from config import Settings

COOKIE = "relance_portal"
PORTAL_PREFIX = "/portal"
_TOKEN_IN_PATH = re.compile(r"(/portal/l/)[^\s?\"/]+")
REDACTED = r"\1[token]"

# No inline script anywhere (there is no script at all); styles from our own file only;
# forms post to ourselves; nobody may frame the page (clickjacking).
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def redact(text: str) -> str:
    return _TOKEN_IN_PATH.sub(REDACTED, text)


class RedactTokens(logging.Filter):
    """Rewrites a portal link's token out of a log record (uvicorn's access log passes the
    path as an argument; other loggers as the message)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


_FILTER = RedactTokens()


def install_log_redaction() -> None:
    """On the loggers a request path reaches: uvicorn's access and error logs, and ours."""
    for name in ("uvicorn.access", "uvicorn.error", "relance"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    # Handlers see records propagated from child loggers, whose own filters may be missing.
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


class RateLimiter:
    """Per link and per client address, a moving window of one minute (`limits`). In memory:
    each API process counts its own requests, which bounds a guesser all the same."""

    def __init__(self, per_token: int, per_address: int) -> None:
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
        self._token = RateLimitItemPerMinute(per_token)
        self._address = RateLimitItemPerMinute(per_address)

    def allow(self, token_key: str | None, address: str) -> bool:
        if not self._limiter.hit(self._address, "address", address):
            return False
        return token_key is None or self._limiter.hit(self._token, "token", token_key)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def install_headers(app: FastAPI, settings: Settings) -> None:
    # Room for the form fields around the largest attachment.
    max_body = settings.portal_upload_max_bytes + 64 * 1024

    @app.middleware("http")
    async def _portal_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path.startswith(PORTAL_PREFIX) and request.method == "POST":
            # Refused before the body is read: an upload is bounded by its declared size.
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                response: Response = PlainTextResponse("Content-Length required", 411)
            elif int(length) > max_body:
                response = PlainTextResponse("attachment too large", 413)
            else:
                response = await call_next(request)
        else:
            response = await call_next(request)
        if request.url.path.startswith(PORTAL_PREFIX):
            for name, value in HEADERS.items():
                response.headers.setdefault(name, value)
        return response
