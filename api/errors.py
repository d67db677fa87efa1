"""Domain errors that carry their HTTP status, and the one handler that renders them.

Services raise these; routes never build error responses. Temporal failures are translated by
their *type* (an `ApplicationError.type` set by the workflow, an RPC status code), never by
matching message text, so rewording a message can't change an HTTP status.
"""

from __future__ import annotations

from typing import ClassVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from temporalio.client import (
    RPCTimeoutOrCancelledError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from config import Settings
from contracts.errors import ErrorType


class ApiError(Exception):
    """An error a client can act on: its status code and a sentence saying what is wrong."""

    status_code: ClassVar[int] = 500

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class Unauthorized(ApiError):
    status_code = 401

    def __init__(self, detail: str) -> None:
        # RFC 6750: a 401 names the scheme the client should use.
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    status_code = 403


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class Invalid(ApiError):
    status_code = 422


class ServerMisconfigured(ApiError):
    """The server's own configuration (e.g. a playbook file) is broken: not the caller's fault."""

    status_code = 500


class Unavailable(ApiError):
    status_code = 503


# ApplicationError types raised by the invoice workflow's Update validators.
_UPDATE_FAILURES: dict[str, type[ApiError]] = {
    ErrorType.CURRENCY_MISMATCH: Invalid,
    ErrorType.INVALID_AMOUNT: Invalid,
    ErrorType.INVOICE_CLOSED: Conflict,
    ErrorType.STALE_APPROVAL: Conflict,
    # Collection work: disputes, plans, promises, holds.
    ErrorType.UNKNOWN_DISPUTE: Conflict,
    ErrorType.DISPUTE_OPEN: Conflict,
    ErrorType.PLAN_MISMATCH: Invalid,
    ErrorType.PLAN_CONFLICT: Conflict,
    ErrorType.UNKNOWN_PLAN: Conflict,
    ErrorType.FOUR_EYES: Forbidden,
    ErrorType.NOT_PAUSED: Conflict,
    ErrorType.HOLD_CONFLICT: Conflict,
    ErrorType.INVALID_PROMISE: Invalid,
}

_UNREACHABLE = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}
)


def temporal_unreachable(settings: Settings, reason: object | None = None) -> str:
    """The sentence that tells an operator which Temporal we tried and how to point elsewhere."""
    where = settings.temporal_target
    hint = (
        "check that it is running, or set RELANCE_TEMPORAL_ADDRESS"
        if settings.temporal_address
        else "start it with `relance dev`, or set RELANCE_TEMPORAL_ADDRESS to a running server"
    )
    text = f"Temporal is unreachable at {where} (namespace {settings.temporal_namespace!r}): {hint}"
    return f"{text} ({reason})" if reason else text


def from_temporal(err: BaseException, settings: Settings, *, invoice: str) -> ApiError | None:
    """The API error a Temporal failure stands for, or None if it is a genuine server bug."""
    if isinstance(err, WorkflowUpdateFailedError):
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type in _UPDATE_FAILURES:
            return _UPDATE_FAILURES[cause.type](cause.message)
        return None
    if isinstance(err, RPCTimeoutOrCancelledError):
        # Updates wait for a worker to pick them up: no answer usually means no worker runs.
        return Unavailable(
            f"the workflow of invoice {invoice} did not answer within "
            f"{settings.rpc_timeout_seconds:g} s: is a Relance worker running on task queue "
            f"{settings.task_queue!r}? Nothing was recorded; retry the same request."
        )
    if isinstance(err, RPCError):
        if err.status == RPCStatusCode.NOT_FOUND:
            return NotFound(f"invoice {invoice} has no collection workflow")
        if err.status in _UNREACHABLE:
            return Unavailable(temporal_unreachable(settings))
    return None


async def _render(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _render)
