"""One error shape for every error, as a client meets it: RFC 9457 problem details.

Also how Temporal's failures reach a client: each one a precise status, and never a claim that
"nothing was recorded" unless the server refused the request before admitting it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, cast

import httpx
import pytest
from temporalio import workflow
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, RetryState
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from api.auth import Role
from api.errors import from_temporal
from config import Settings
from contracts.errors import ErrorType
from tests.api.conftest import Api, field_errors, invoice_body, problem
from workflows.contract import workflow_id

# ------------------------------------------------------------------ the shape


async def test_an_unknown_route_is_a_404_problem(api: Api) -> None:
    body = problem(await api.get("/v1/nowhere"), 404)

    assert body["type"] == "urn:relance:problem:no-such-endpoint"
    assert body["instance"] == "/v1/nowhere"


async def test_a_wrong_method_is_a_405_whose_allow_lists_every_method_of_the_path(
    api: Api,
) -> None:
    # PUT and DELETE are two routes of one path: Starlette alone answered "Allow: PUT".
    response = await api.get("/v1/debtors/CUST-1/override", role=Role.COLLECTOR)

    body = problem(response, 405)
    assert body["type"] == "urn:relance:problem:method-not-allowed"
    assert set(response.headers["Allow"].split(", ")) == {"PUT", "DELETE"}
    response = await api.http.delete("/v1/invoices", headers=api.auth(Role.BACKOFFICE))
    # (GET lists the portfolio, POST hands an invoice over.)
    assert problem(response, 405) and response.headers["Allow"] == "GET, POST"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b'{"number": "INV-1",', "not valid JSON"),
        (b'{"number": "\xc3\x28"}', "could not be read"),
    ],
)
async def test_a_malformed_body_is_a_400_problem(api: Api, raw: bytes, says: str) -> None:
    headers = {**api.auth(Role.BACKOFFICE), "content-type": "application/json"}

    response = await api.http.post("/v1/invoices", content=raw, headers=headers)

    body = problem(response, 400)
    assert body["type"] == "urn:relance:problem:malformed-body"
    assert says in body["detail"]
    assert [e["location"] for e in body["errors"]] == ["body"]


async def test_a_missing_key_is_a_401_problem_naming_the_scheme(api: Api) -> None:
    response = await api.http.get("/v1/invoices/INV-1")

    assert problem(response, 401)["type"] == "urn:relance:problem:unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_422_lists_each_invalid_field_with_its_location(api: Api) -> None:
    body = {**invoice_body("INV-ERR-1"), "currency": "ABC", "amount": "1e3"}

    errors = field_errors(await api.hand_over(body))

    assert set(errors) == {"body.currency", "body.amount"}


async def test_a_bug_is_a_500_problem_not_a_plain_text_page() -> None:
    app = create_app(
        Settings(_env_file=None), client=cast(Any, object()), engine=cast(Any, object())
    )

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://relance.test") as http:
        response = await http.get("/boom")

    body = problem(response, 500)
    assert body["type"] == "urn:relance:problem:server-error"
    assert "a bug" not in body["detail"]  # internals stay in the server's log


# ------------------------------------------------------------------ the OpenAPI document


def _operations(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    ]


async def test_the_openapi_document_states_the_errors_and_the_rules(api: Api) -> None:
    schema = (await api.http.get("/openapi.json")).json()

    for name, operation in _operations(schema):
        for code, response in operation["responses"].items():
            if code.startswith(("4", "5")) and name != "GET /healthz":
                assert list(response["content"]) == ["application/problem+json"], (name, code)
        if "requestBody" in operation:
            assert "400" in operation["responses"], name
        if "422" in operation["responses"]:
            ref = operation["responses"]["422"]["content"]["application/problem+json"]["schema"]
            assert ref == {"$ref": "#/components/schemas/Problem"}, name
    components = schema["components"]["schemas"]
    assert "HTTPValidationError" not in components
    invoice = components["InvoiceCreate"]["properties"]
    assert invoice["number"]["pattern"] == r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
    assert invoice["amount"]["pattern"] == r"^[0-9]{1,12}(\.[0-9]{1,3})?$"
    assert "EUR" in invoice["currency"]["enum"] and "ABC" not in invoice["currency"]["enum"]
    assert "2015-01-01" in invoice["due_date"]["description"]
    debtor = components["DebtorIn"]["properties"]
    assert "FR" in debtor["country"]["enum"] and "XX" not in debtor["country"]["enum"]
    assert debtor["name"]["pattern"].startswith("^[^\\x00-\\x1f")
    [zone] = [branch for branch in debtor["timezone"]["anyOf"] if "enum" in branch]
    assert "Europe/Paris" in zone["enum"]


# ------------------------------------------------------------------ Temporal, end to end


@workflow.defn(name="BrokenInvoiceWorkflow", sandboxed=False)
class BrokenInvoiceWorkflow:
    """Stands for an invoice workflow with a bug: its task fails on every attempt."""

    @workflow.run
    async def run(self) -> None:
        raise RuntimeError("a bug in the workflow code")


async def test_a_stuck_workflow_is_a_503_that_knows_nothing_was_recorded(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    # "Workflow Task in failed state": 194 of the 206 500s once seen under load.
    queue = f"tq-broken-{uuid.uuid4().hex[:8]}"
    async with Worker(dev_env.client, task_queue=queue, workflows=[BrokenInvoiceWorkflow]):
        await dev_env.client.start_workflow(
            "BrokenInvoiceWorkflow", id=workflow_id("INV-ERR-STUCK"), task_queue=queue
        )
        # The hand-over finds the (broken) workflow already there and keeps it.
        assert (await api.hand_over(invoice_body("INV-ERR-STUCK"))).status_code == 201
        statuses = []
        for _ in range(20):
            response = await api.post(
                "/v1/invoices/INV-ERR-STUCK/payments",
                {"reference": "VIR-1", "amount": "10.00", "currency": "EUR"},
            )
            statuses.append(response.status_code)
            if response.status_code == 503:
                break

    body = problem(response, 503)
    assert body["type"] == "urn:relance:problem:workflow-stuck", statuses
    assert "stuck" in body["detail"] and "nothing was recorded" in body["detail"]
    assert response.headers["Retry-After"]
    assert set(statuses) <= {503, 504}, statuses


# ------------------------------------------------------------------ Temporal, each failure


def _rpc(status: RPCStatusCode) -> RPCError:
    return RPCError("from the server", status, b"")


def _update_failed(cause: BaseException) -> WorkflowUpdateFailedError:
    return WorkflowUpdateFailedError(cause)


_ACTIVITY_FAILED = ActivityError(
    "activity failed",
    scheduled_event_id=1,
    started_event_id=2,
    identity="worker",
    activity_type="send_message",
    activity_id="1",
    retry_state=RetryState.NON_RETRYABLE_FAILURE,
)


@pytest.mark.parametrize(
    ("error", "status", "kind", "recorded"),
    [
        # Refusals by the workflow's validators and handlers: the caller's request.
        (
            _update_failed(ApplicationError("stale", type=ErrorType.STALE_APPROVAL)),
            409,
            "stale-approval",
            "known",
        ),
        (
            _update_failed(ApplicationError("wrong", type=ErrorType.CURRENCY_MISMATCH)),
            422,
            "currency-mismatch",
            "known",
        ),
        (_update_failed(ApplicationError("4e", type=ErrorType.FOUR_EYES)), 403, "four-eyes", None),
        # Temporal's own outcomes.
        (
            _update_failed(ApplicationError("ended", type="AcceptedUpdateCompletedWorkflow")),
            409,
            "invoice-closed",
            None,
        ),
        (_update_failed(CancelledError("cancelled")), 409, "invoice-closed", None),
        (_update_failed(_ACTIVITY_FAILED), 502, "update-failed", "unknown"),
        (_update_failed(ApplicationError("?", type="SomethingNew")), 502, None, None),
        # The server refused before admitting the Update: nothing recorded, and said so.
        (_rpc(RPCStatusCode.FAILED_PRECONDITION), 503, "workflow-stuck", "nothing"),
        (_rpc(RPCStatusCode.RESOURCE_EXHAUSTED), 503, "temporal-busy", "nothing"),
        (_rpc(RPCStatusCode.NOT_FOUND), 404, "no-workflow", None),
        (_rpc(RPCStatusCode.PERMISSION_DENIED), 500, "temporal-refused", None),
        # The outcome is unknown: never "nothing was recorded".
        (WorkflowUpdateRPCTimeoutOrCancelledError(), 504, "outcome-unknown", "unknown"),
        (_rpc(RPCStatusCode.DEADLINE_EXCEEDED), 504, "outcome-unknown", "unknown"),
        (_rpc(RPCStatusCode.UNAVAILABLE), 503, "temporal-unreachable", "unknown"),
        (_rpc(RPCStatusCode.INTERNAL), 502, "temporal-error", "unknown"),
        (_rpc(RPCStatusCode.UNKNOWN), 502, "temporal-error", "unknown"),
    ],
)
def test_each_temporal_failure_maps_to_a_precise_status(
    error: BaseException, status: int, kind: str | None, recorded: str | None
) -> None:
    settings = Settings(_env_file=None, rpc_timeout_seconds=timedelta(seconds=5).total_seconds())

    mapped = from_temporal(error, settings, invoice="INV-1")

    assert mapped.status_code == status
    if kind is not None:
        assert mapped.problem_kind == kind
    said_nothing = "nothing was recorded" in mapped.detail.lower()
    if recorded == "unknown":
        assert not said_nothing and "Idempotency-Key" in mapped.detail, mapped.detail
    if recorded == "nothing":
        assert said_nothing, mapped.detail
