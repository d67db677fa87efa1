"""Domain errors that carry their HTTP status, and the one place that renders every error.

Every error the API answers with is an RFC 9457 problem (`application/problem+json`): `type`
(a URI naming the kind of problem, stable for clients to branch on), `title`, `status`,
`detail` (one sentence saying what is wrong and what to do), `instance` (the request's path)
and `errors` (each invalid field with its location, for 422 and 400). Our own `ApiError`s,
FastAPI's validation errors, malformed JSON, unknown routes, wrong methods and unexpected bugs
all go through `problem_response`, so a client parses one shape.

Services raise these; routes never build error responses. Temporal failures are translated by
their *type* (an `ApplicationError.type` from `contracts.errors.ErrorType`, an RPC status code,
the SDK's exception class), never by matching message text, so rewording a message can't change
an HTTP status.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, ClassVar, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from temporalio.client import (
    RPCTimeoutOrCancelledError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    TimeoutError,
)
from temporalio.service import RPCError, RPCStatusCode

from config import Settings
from contracts.errors import ErrorType

log = logging.getLogger("relance.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
# Problem types are URNs: stable names a client compares, not pages to fetch.
_TYPE_PREFIX = "urn:relance:problem:"

Location = Literal["body", "query", "path", "header", "cookie"]


class FieldProblem(BaseModel):
    """One invalid part of the request."""

    location: Location = Field(description="where the field is: body, query, path or header")
    field: str = Field(
        description="its name; nested body fields are dotted (debtor.email), list items "
        "numbered (installments.0.amount); empty for the whole body",
        examples=["debtor.email"],
    )
    message: str = Field(examples=["value is not a valid email address"])


class Problem(BaseModel):
    """An error, as RFC 9457 problem details (`application/problem+json`)."""

    type: str = Field(
        description="names the kind of problem; compare it, never the detail's text",
        examples=["urn:relance:problem:validation-error"],
    )
    title: str = Field(description="the HTTP status' phrase", examples=["Unprocessable Content"])
    status: int = Field(ge=400, le=599, examples=[422])
    detail: str = Field(description="what is wrong, and what to do about it, in one sentence")
    instance: str | None = Field(default=None, description="the request's path")
    errors: list[FieldProblem] = Field(
        default=[], description="each invalid field (422, and a malformed body's 400)"
    )


def problem_type(kind: str) -> str:
    return _TYPE_PREFIX + kind


class ApiError(Exception):
    """An error a client can act on: its status code, its kind and a sentence saying what is
    wrong."""

    status_code: ClassVar[int] = 500
    kind: ClassVar[str] = "server-error"

    def __init__(
        self,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        kind: str | None = None,
        errors: Sequence[FieldProblem] = (),
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers
        # An instance may name its problem more precisely than its class (e.g. a 409 that is
        # a stale approval).
        self.problem_kind = kind or self.kind
        self.errors = list(errors)


class Unauthorized(ApiError):
    status_code = 401
    kind = "unauthorized"

    def __init__(self, detail: str) -> None:
        # RFC 6750: a 401 names the scheme the client should use.
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    status_code = 403
    kind = "forbidden"


class NotFound(ApiError):
    status_code = 404
    kind = "not-found"


class Conflict(ApiError):
    status_code = 409
    kind = "conflict"


class Gone(ApiError):
    """It existed, and is no more (a signed link past its expiry)."""

    status_code = 410
    kind = "gone"


class Invalid(ApiError):
    """A request that is well-formed but wrong: names the field (body unless said otherwise)."""

    status_code = 422
    kind = "validation-error"

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        location: Location = "body",
        kind: str | None = None,
        errors: Sequence[FieldProblem] = (),
    ) -> None:
        if field is not None and not errors:
            errors = [FieldProblem(location=location, field=field, message=detail)]
        super().__init__(detail, kind=kind, errors=errors)


class ServerMisconfigured(ApiError):
    """The server's own configuration (e.g. a playbook file) is broken: not the caller's fault."""

    status_code = 500
    kind = "server-misconfigured"


class BadGateway(ApiError):
    """Temporal answered, but with an error of its own: not the caller's fault."""

    status_code = 502
    kind = "temporal-error"


class Unavailable(ApiError):
    status_code = 503
    kind = "unavailable"


class GatewayTimeout(ApiError):
    """Temporal (or the invoice's workflow) did not answer in time: the outcome is unknown."""

    status_code = 504
    kind = "outcome-unknown"


# ------------------------------------------------------------------ Temporal

# ApplicationError types raised by the invoice workflow's Updates, and the field of the request
# each one is about (for the problem's `errors`).
_UPDATE_FAILURES: dict[str, tuple[type[ApiError], str | None]] = {
    ErrorType.CURRENCY_MISMATCH: (Invalid, "currency"),
    ErrorType.INVALID_AMOUNT: (Invalid, "amount"),
    ErrorType.INVOICE_CLOSED: (Conflict, None),
    ErrorType.STALE_APPROVAL: (Conflict, None),
    # Collection work: disputes, plans, promises, holds.
    ErrorType.UNKNOWN_DISPUTE: (Conflict, None),
    ErrorType.DISPUTE_OPEN: (Conflict, None),
    ErrorType.PLAN_MISMATCH: (Invalid, "installments"),
    ErrorType.PLAN_CONFLICT: (Conflict, None),
    ErrorType.UNKNOWN_PLAN: (Conflict, None),
    ErrorType.FOUR_EYES: (Forbidden, None),
    ErrorType.NOT_PAUSED: (Conflict, None),
    ErrorType.HOLD_CONFLICT: (Conflict, None),
    ErrorType.INVALID_PROMISE: (Invalid, "promise_date"),
    ErrorType.NOT_SUPPORTED: (Conflict, None),
}

# Temporal's own failure types (set by the server, not by our code).
# The workflow ended after it accepted the Update but before the Update finished.
_ACCEPTED_UPDATE_COMPLETED_WORKFLOW = "AcceptedUpdateCompletedWorkflow"
# No worker processed the Update (e.g. a worker of a version without that Update).
_UNPROCESSED_UPDATE = "UnprocessedUpdate"

_UNREACHABLE = frozenset({RPCStatusCode.UNAVAILABLE})
_TEMPORAL_FAULTS = frozenset(
    {
        RPCStatusCode.INTERNAL,
        RPCStatusCode.UNKNOWN,
        RPCStatusCode.DATA_LOSS,
        RPCStatusCode.ABORTED,
        RPCStatusCode.OUT_OF_RANGE,
    }
)
_OUR_CONFIGURATION = frozenset(
    {
        RPCStatusCode.UNAUTHENTICATED,
        RPCStatusCode.PERMISSION_DENIED,
        RPCStatusCode.UNIMPLEMENTED,
        RPCStatusCode.INVALID_ARGUMENT,
    }
)
# How long a client should wait before retrying what Temporal could not take now.
RETRY_AFTER_SECONDS = 5


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


# What a client must read when the change may or may not have happened: never "nothing was
# recorded" unless that is known.
MAY_HAVE_BEEN_RECORDED = (
    "it may have been recorded (or be recorded once the workflow runs again): send the same "
    "request again, with the same Idempotency-Key (and the same payment reference), to learn "
    "the outcome; it is never applied twice"
)
NOTHING_RECORDED = "nothing was recorded; retry the same request later"


def _retry_later() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}


def _update_failure(cause: BaseException, invoice: str) -> ApiError:
    """An Update the workflow accepted or rejected with a failure."""
    if isinstance(cause, ApplicationError):
        known = _UPDATE_FAILURES.get(cause.type or "")
        if known is not None:
            error_class, field = known
            errors = (
                [FieldProblem(location="body", field=field, message=cause.message)]
                if field is not None
                else []
            )
            return error_class(cause.message, kind=_kebab(cause.type or ""), errors=errors)
        if cause.type == _ACCEPTED_UPDATE_COMPLETED_WORKFLOW:
            return Conflict(
                f"the collection of invoice {invoice} ended while the request was being carried "
                "out: read the invoice to see its final state",
                kind="invoice-closed",
            )
        if cause.type == _UNPROCESSED_UPDATE:
            return BadGateway(
                f"no worker of invoice {invoice}'s workflow knows this request (a worker of "
                f"another Relance version?): {NOTHING_RECORDED}",
                kind="worker-mismatch",
                headers=_retry_later(),
            )
        return BadGateway(
            f"the workflow of invoice {invoice} refused the request with a failure the API does "
            f"not know (type {cause.type!r}): nothing was recorded; this is a bug to report",
            kind="workflow-refusal-unknown",
        )
    if isinstance(cause, CancelledError):
        return Conflict(
            f"the collection of invoice {invoice} was cancelled while the request was being "
            "carried out: read the invoice to see its state",
            kind="invoice-closed",
        )
    if isinstance(cause, ActivityError | ChildWorkflowError | TimeoutError):
        # The workflow accepted the request, then a step of carrying it out failed: part of it
        # may be done. The invoice's history says what.
        return BadGateway(
            f"the workflow of invoice {invoice} accepted the request but could not finish "
            f"carrying it out ({type(cause).__name__}); {MAY_HAVE_BEEN_RECORDED}",
            kind="update-failed",
        )
    return BadGateway(
        f"the workflow of invoice {invoice} failed the request ({type(cause).__name__}); "
        f"{MAY_HAVE_BEEN_RECORDED}",
        kind="update-failed",
    )


def _rpc_failure(err: RPCError, settings: Settings, invoice: str) -> ApiError:
    status = err.status
    if status == RPCStatusCode.NOT_FOUND:
        return NotFound(f"invoice {invoice} has no running collection workflow", kind="no-workflow")
    if status == RPCStatusCode.FAILED_PRECONDITION:
        # "Workflow Task in failed state" and its kin (Temporal's WorkflowNotReady): the server
        # refused the Update before admitting it, because the workflow's own task keeps failing.
        return Unavailable(
            f"the collection workflow of invoice {invoice} is stuck (its workflow task is "
            "failing, so it cannot take requests) and an operator must look at it in the "
            f"Temporal UI: the request was refused, {NOTHING_RECORDED}",
            kind="workflow-stuck",
            headers=_retry_later(),
        )
    if status == RPCStatusCode.RESOURCE_EXHAUSTED:
        # Rate limits, too many Updates in flight on one workflow: refused at admission.
        return Unavailable(
            f"Temporal is too busy to take requests for invoice {invoice} now: the request was "
            f"refused, {NOTHING_RECORDED}",
            kind="temporal-busy",
            headers=_retry_later(),
        )
    if status in _UNREACHABLE:
        # The SDK retried until its deadline: an earlier attempt may have reached the server.
        return Unavailable(
            f"{temporal_unreachable(settings)}; {MAY_HAVE_BEEN_RECORDED}",
            kind="temporal-unreachable",
            headers=_retry_later(),
        )
    if status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
        return _timed_out(settings, invoice)
    if status in _OUR_CONFIGURATION:
        return ServerMisconfigured(
            f"Temporal refused the API's request ({status.name}): check the API's Temporal "
            f"credentials, namespace {settings.temporal_namespace!r} and server version; "
            "nothing was recorded",
            kind="temporal-refused",
        )
    if status in _TEMPORAL_FAULTS:
        return BadGateway(
            f"Temporal failed while handling the request for invoice {invoice} "
            f"({status.name}); {MAY_HAVE_BEEN_RECORDED}",
            headers=_retry_later(),
        )
    return BadGateway(
        f"Temporal answered {status.name} for invoice {invoice}; {MAY_HAVE_BEEN_RECORDED}",
        headers=_retry_later(),
    )


def _timed_out(settings: Settings, invoice: str) -> ApiError:
    # An Update the server admitted is carried out whenever a worker takes it, so a timeout
    # says nothing about whether it happened.
    return GatewayTimeout(
        f"the workflow of invoice {invoice} did not answer within "
        f"{settings.rpc_timeout_seconds:g} s (is a Relance worker running on task queue "
        f"{settings.task_queue!r}?); {MAY_HAVE_BEEN_RECORDED}",
        headers=_retry_later(),
    )


def from_temporal(err: BaseException, settings: Settings, *, invoice: str) -> ApiError:
    """The API error a Temporal failure of an invoice's workflow stands for."""
    if isinstance(err, WorkflowUpdateFailedError):
        return _update_failure(err.cause, invoice)
    if isinstance(err, RPCTimeoutOrCancelledError):
        return _timed_out(settings, invoice)
    if isinstance(err, RPCError):
        return _rpc_failure(err, settings, invoice)
    return BadGateway(
        f"Temporal failed for invoice {invoice} ({type(err).__name__}); {MAY_HAVE_BEEN_RECORDED}"
    )


def _kebab(name: str) -> str:
    """`StaleApproval` -> `stale-approval`: a problem type from an ErrorType's value."""
    out = []
    for index, char in enumerate(name):
        if char.isupper() and index:
            out.append("-")
        out.append(char.lower())
    return "".join(out)


# ------------------------------------------------------------------ rendering


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    errors: Sequence[FieldProblem] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    phrase = HTTPStatus(status).phrase
    body = Problem(
        type=problem_type(kind) if kind else "about:blank",
        title=phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=list(errors),
    )
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return problem_response(
        request,
        exc.status_code,
        exc.detail,
        kind=exc.problem_kind,
        errors=exc.errors,
        headers=exc.headers,
    )


def _message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    # Our validators raise ValueError("must be ..."): pydantic prefixes "Value error, ".
    return message.removeprefix("Value error, ")


def field_problems(errors: Sequence[Any]) -> list[FieldProblem]:
    """Pydantic's errors (as FastAPI reports them) as problem fields."""
    problems = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        where = loc[0] if loc and loc[0] in ("body", "query", "path", "header", "cookie") else None
        problems.append(
            FieldProblem(
                location=where or "body",
                field=".".join(loc[1:] if where else loc),
                message=_message(error),
            )
        )
    return problems


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    malformed = [e for e in errors if e.get("type") == "json_invalid"]
    if malformed:
        reason = malformed[0].get("ctx", {}).get("error", "invalid JSON")
        position = malformed[0].get("loc", ("body", "?"))[-1]
        return problem_response(
            request,
            400,
            f"the body is not valid JSON: {reason} at character {position}",
            kind="malformed-body",
            errors=[FieldProblem(location="body", field="", message=f"{reason}")],
        )
    problems = field_problems(errors)
    listed = "; ".join(
        f"{p.location}.{p.field}: {p.message}" if p.field else f"{p.location}: {p.message}"
        for p in problems
    )
    count = len(problems)
    return problem_response(
        request,
        422,
        f"the request has {count} invalid field{'s' if count != 1 else ''}: {listed}",
        kind="validation-error",
        errors=problems,
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path answers to. Starlette's own 405 names only the
    methods of the first route whose path matches (PUT, when DELETE is there too)."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed on {request.url.path}; allowed: " + ", ".join(
            allowed
        )
        return problem_response(request, 405, detail, kind="method-not-allowed", headers=headers)
    if exc.status_code == 404:
        detail = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
        return problem_response(request, 404, detail, kind="no-such-endpoint", headers=headers)
    if exc.status_code == 400:
        return problem_response(
            request,
            400,
            "the body could not be read: send JSON encoded in UTF-8",
            kind="malformed-body",
            errors=[FieldProblem(location="body", field="", message=str(exc.detail))],
            headers=headers,
        )
    return problem_response(request, exc.status_code, str(exc.detail), headers=headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # A bug: logged with its traceback (by the server too), answered in the same shape.
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        request,
        500,
        "an unexpected error occurred in Relance; it is logged on the server",
        kind="server-error",
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


# ------------------------------------------------------------------ the OpenAPI document

_PROBLEM_REF = "#/components/schemas/Problem"
_BODY_ERRORS = {
    "description": "Malformed body: not JSON, or not UTF-8 (the problem's `errors` says where)",
    "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _PROBLEM_REF}}},
}
_UNEXPECTED = {
    "description": "A bug or a broken server configuration: nothing the client can fix",
    "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _PROBLEM_REF}}},
}


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Make the generated OpenAPI document say what the handlers above answer.

    Error responses are `application/problem+json` (FastAPI would write application/json);
    FastAPI's own 422 body (HTTPValidationError) is our Problem; every operation that takes a
    body documents the 400 of a malformed one; every operation documents the 500 of a bug.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, model in (("Problem", Problem), ("FieldProblem", FieldProblem)):
        components.setdefault(
            name, model.model_json_schema(ref_template="#/components/schemas/{model}")
        )
    components["Problem"].pop("$defs", None)
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code, response in responses.items():
                if code[:1] not in ("4", "5"):
                    continue
                content = response.get("content", {})
                json_schema = content.get("application/json", {}).get("schema", {})
                ref = json_schema.get("$ref", "")
                if ref.endswith(("/Problem", "/HTTPValidationError")):
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _PROBLEM_REF}}}
                if code == "422":
                    response["description"] = (
                        "Invalid fields: each one in `errors`, with its location"
                    )
            if "requestBody" in operation:
                responses.setdefault("400", _BODY_ERRORS)
            responses.setdefault("500", _UNEXPECTED)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema
