"""The portal's guards: security headers, rate limits, and the token kept out of logs.

The link's token is a bearer secret. It travels once in a URL (`/portal/l/<token>`, the link
in the message), is moved into an HttpOnly cookie at once, and every later page is plain
`/portal`: no token in the address bar, in referrers (no-referrer besides) or in access logs.
That one first request is logged with the token replaced (`RedactTokens`).
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from limits import RateLimitItemPerMinute, storage, strategies
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class PortalHeaders:
    """The portal's security headers, and its bound on a POST's declared size.

    A plain ASGI middleware: every other path passes straight through, at no cost to the API
    (a `BaseHTTPMiddleware` would stream every answer of the whole API through a task group).
    """

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PORTAL_PREFIX):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        refusal = self._refusal(scope)
        await (refusal or self.app)(scope, receive, with_headers)

    def _refusal(self, scope: Scope) -> Response | None:
        """A POST refused before its body is read: an upload is bounded by its declared size."""
        if scope["method"] != "POST":
            return None
        length = Headers(scope=scope).get("content-length")
        if length is None or not length.isdigit():
            return PlainTextResponse("Content-Length required", 411)
        if int(length) > self.max_body:
            return PlainTextResponse("attachment too large", 413)
        return None


def install_headers(app: FastAPI, settings: Settings) -> None:
    # Room for the form fields around the largest attachment.
    app.add_middleware(PortalHeaders, max_body=settings.portal_upload_max_bytes + 64 * 1024)
