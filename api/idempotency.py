"""`Idempotency-Key` on every state-changing request, with Stripe's semantics.

- The same key, from the same principal, on the same route with the same body gets the first
  answer (status and body, marked `Idempotent-Replayed: true`), even if the client gave up
  waiting for the first attempt.
- The same key with another body or on another route: 422 naming the reuse.
- While the first request with a key still runs, a second one gets 409 with `Retry-After`
  (we answer rather than hold a connection open; a client retries with the same key). A
  claim whose request died without answering is taken over after `idempotency_lock_seconds`.
- An answer of 5xx is not kept: the failure was ours, and the retry runs again. That is safe
  because what the key creates is named after it (`Idempotency.derive`) and the Temporal
  Update it sends carries an id made from it (`Idempotency.update_id`): Temporal runs an
  Update id once per workflow run.
- Keys are forgotten after `idempotency_ttl_hours` (24 h by default).

Two pieces, installed once for the whole app: the dependency `idempotency` (run on every
authenticated route after authorization; it claims the key) and `IdempotencyMiddleware`
(it records the answer before the answer leaves, or releases the claim).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from anyio import to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import Caller, EngineDep, SettingsDep
from api.errors import Conflict, Invalid
from store import idempotency as store

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_KEY_LENGTH = 255
# Response headers worth giving back on a replay.
_KEPT_HEADERS = ("content-type", "location", "retry-after")
_CLAIM = "idempotency_claim"


@dataclass(frozen=True)
class Idempotency:
    """The key a request was made with, as services use it to name what they create."""

    key: str
    principal: str
    operation: str

    def _digest(self, *parts: str) -> str:
        text = "\x1f".join((self.principal, self.key, self.operation, *parts))
        return hashlib.sha256(text.encode()).hexdigest()

    def derive(self, prefix: str) -> str:
        """A deterministic id for what this request creates (`D-…` for a dispute)."""
        return f"{prefix}-{self._digest('id').upper()[:12]}"

    def update_id(self) -> str:
        """The Temporal Update id: a retry of this request is the same Update."""
        return f"idem-{self._digest('update')[:32]}"


class _Replayed(Exception):
    def __init__(self, replay: store.Replay) -> None:
        super().__init__("replayed")
        self.replay = replay


def fingerprint(body: bytes) -> str:
    """The body's digest; JSON is canonicalised, so key order and spacing do not matter."""
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    except ValueError:
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


def _checked(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise Invalid(
            f"the {HEADER} header must be 1 to {MAX_KEY_LENGTH} printable ASCII characters "
            "(a UUID is a good key)"
        )
    return key


async def idempotency(
    request: Request, principal: Caller, engine: EngineDep, settings: SettingsDep
) -> Idempotency | None:
    """Claim the request's `Idempotency-Key`, or answer from it (replay, 409, 422)."""
    raw = request.headers.get(HEADER)
    if request.method not in STATE_CHANGING or raw is None:
        return None
    key = _checked(raw)
    # The query is part of the request (`?dry_run=true` is not the real thing).
    query = f"?{request.url.query}" if request.url.query else ""
    operation = f"{request.method} {request.url.path}{query}"
    digest = fingerprint(await request.body())
    result = await to_thread.run_sync(
        lambda: store.claim(
            engine,
            principal=principal.identity,
            key=key,
            operation=operation,
            fingerprint=digest,
            now=datetime.now(UTC),
            ttl=timedelta(hours=settings.idempotency_ttl_hours),
            lock=timedelta(seconds=settings.idempotency_lock_seconds),
        )
    )
    if isinstance(result, store.Replay):
        raise _Replayed(result)
    if isinstance(result, store.Mismatch):
        what = "another body" if result.same_operation else f"another request ({result.operation})"
        raise Invalid(
            f"the {HEADER} {key!r} was already used with {what}: a key stands for one "
            "request; use a new key for a new request"
        )
    if isinstance(result, store.InProgress):
        raise Conflict(
            f"a request with the {HEADER} {key!r} is still in progress: retry the same "
            "request in a moment to get its answer",
            headers={"Retry-After": "1"},
        )
    request.state.idempotency_claim = result
    return Idempotency(key=key, principal=principal.identity, operation=operation)


IdempotencyDep = Annotated[Idempotency | None, Depends(idempotency)]


async def _render_replay(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _Replayed)
    headers = {**exc.replay.headers, REPLAYED_HEADER: "true"}
    return Response(exc.replay.body, status_code=exc.replay.status_code, headers=headers)


class IdempotencyMiddleware:
    """Records the answer of a request that claimed a key, before the answer leaves."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self._state = state  # the FastAPI app's state: its engine is set by the lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in STATE_CHANGING:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            claimed: store.Claimed | None = scope.get("state", {}).get(_CLAIM)
            if claimed is None:
                await send(message)
                return
            if message["type"] == "http.response.start":
                start = message  # held until the body is complete and recorded
                return
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                assert start is not None
                await self._finish(claimed, start, b"".join(chunks))
                await send(start)
                await send({"type": "http.response.body", "body": b"".join(chunks)})
                return
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except BaseException:
            claimed = scope.get("state", {}).get(_CLAIM)
            if claimed is not None:
                await to_thread.run_sync(store.release, self._state.engine, claimed)
            raise

    async def _finish(self, claimed: store.Claimed, start: Message, body: bytes) -> None:
        engine = self._state.engine
        status = int(start["status"])
        if status >= 500:
            await to_thread.run_sync(store.release, engine, claimed)
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in start.get("headers", [])
            if name.decode("latin-1").lower() in _KEPT_HEADERS
        }
        text = body.decode("utf-8", errors="replace")
        await to_thread.run_sync(store.complete, engine, claimed, status, text, headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(_Replayed, _render_replay)
    app.add_middleware(IdempotencyMiddleware, state=app.state)
