"""Onboarding a portfolio through `POST /v1/invoices:batch`: a report per line, idempotent."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from api.auth import Role
from api.import_schemas import MAX_BATCH
from api.services import invoices as invoices_service
from tests.api.conftest import Api, field_errors, invoice_body
from workflows.contract import workflow_id

BATCH = "/v1/invoices:batch"


async def _workflow_status(env: WorkflowEnvironment, number: str) -> WorkflowExecutionStatus | None:
    try:
        described = await env.client.get_workflow_handle(workflow_id(number)).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return described.status


def _results(body: dict[str, Any]) -> list[tuple[int, str | None, str]]:
    return [(line["line"], line["number"], line["result"]) for line in body["lines"]]


async def test_a_batch_reports_each_line_and_starts_the_good_ones(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    # Handed over earlier: the batch brings it again with another amount.
    assert (await api.hand_over(invoice_body("IMP-A-KNOWN"))).status_code == 201
    good_1, good_2 = invoice_body("IMP-A-1"), invoice_body("IMP-A-2", amount="99.90")
    batch = [
        good_1,
        good_2,
        good_1,  # the same invoice twice in one batch
        {**invoice_body("IMP-A-KNOWN"), "amount": "1300.00"},
        invoice_body("IMP-A-CUR", currency="EURO"),
        invoice_body("IMP-A-DATE", due_date="31/12/2026"),
        invoice_body("IMP-A-NEG", amount="-10.00"),
        "not an invoice",
    ]

    response = await api.post(BATCH, {"invoices": batch})

    assert response.status_code == 200, response.text
    report = response.json()
    assert _results(report) == [
        (1, "IMP-A-1", "created"),
        (2, "IMP-A-2", "created"),
        (3, "IMP-A-1", "unchanged"),
        (4, "IMP-A-KNOWN", "rejected"),
        (5, "IMP-A-CUR", "rejected"),
        (6, "IMP-A-DATE", "rejected"),
        (7, "IMP-A-NEG", "rejected"),
        (8, None, "rejected"),
    ]
    assert (report["created"], report["unchanged"], report["rejected"]) == (2, 1, 5)
    assert report["dry_run"] is False
    lines = report["lines"]
    assert "already handed over with different data" in lines[3]["reason"]
    assert "amount" in lines[3]["reason"]
    assert [e["field"] for e in lines[4]["errors"]] == ["currency"]
    assert "ISO 4217" in lines[4]["errors"][0]["message"]
    assert [e["field"] for e in lines[5]["errors"]] == ["due_date"]
    assert "YYYY-MM-DD" in lines[5]["reason"]
    assert [e["field"] for e in lines[6]["errors"]] == ["amount"]
    assert "greater than 0" in lines[6]["reason"]
    assert lines[7]["reason"]

    # The good ones are recorded and followed by a workflow; the rejected ones are neither.
    for number in ("IMP-A-1", "IMP-A-2"):
        assert await _workflow_status(dev_env, number) == WorkflowExecutionStatus.RUNNING
        assert (await api.invoice(number))["stage"] == "upcoming"
    assert (await api.invoice("IMP-A-2"))["amount"] == {"amount": "99.90", "currency": "EUR"}
    assert (await api.invoice("IMP-A-KNOWN"))["amount"]["amount"] == "1200.00"
    for number in ("IMP-A-CUR", "IMP-A-DATE", "IMP-A-NEG"):
        assert await _workflow_status(dev_env, number) is None
        assert (await api.get(f"/v1/invoices/{number}")).status_code == 404

    # The same batch again: nothing new, the same rejections.
    again = (await api.post(BATCH, {"invoices": batch})).json()
    assert [r for _, _, r in _results(again)] == ["unchanged"] * 3 + ["rejected"] * 5
    assert (again["created"], again["unchanged"], again["rejected"]) == (0, 3, 5)


async def test_a_line_whose_collection_could_not_start_starts_on_the_next_send(
    api: Api, dev_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_start = invoices_service.start_invoice

    async def temporal_down_for_one(client: Any, facts: Any, *args: Any, **kwargs: Any) -> None:
        if facts.number == "IMP-B-2":
            raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")
        await real_start(client, facts, *args, **kwargs)

    monkeypatch.setattr(invoices_service, "start_invoice", temporal_down_for_one)
    batch = [invoice_body(f"IMP-B-{i}") for i in (1, 2, 3)]

    stopped = await api.post(BATCH, {"invoices": batch})

    assert stopped.status_code == 503, stopped.text
    detail = stopped.json()["detail"]
    assert "IMP-B-2 (item 2)" in detail
    assert "send the same batch again" in detail
    assert await _workflow_status(dev_env, "IMP-B-2") is None

    monkeypatch.setattr(invoices_service, "start_invoice", real_start)
    again = await api.post(BATCH, {"invoices": batch})

    assert again.status_code == 200, again.text
    # IMP-B-2 was recorded the first time: it is unchanged, and now it runs.
    assert _results(again.json())[1] == (2, "IMP-B-2", "unchanged")
    for number in ("IMP-B-1", "IMP-B-2", "IMP-B-3"):
        assert await _workflow_status(dev_env, number) == WorkflowExecutionStatus.RUNNING


async def test_a_dry_run_reports_what_would_happen_and_records_nothing(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    assert (await api.hand_over(invoice_body("IMP-C-KNOWN"))).status_code == 201
    batch = [
        invoice_body("IMP-C-NEW"),
        invoice_body("IMP-C-KNOWN"),
        invoice_body("IMP-C-KNOWN", amount="5.00"),
        invoice_body("IMP-C-NEW", amount="5.00"),
        invoice_body("IMP-C-BAD", currency="XXX1"),
    ]

    response = await api.post(f"{BATCH}?dry_run=true", {"invoices": batch})

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["dry_run"] is True
    assert [r for _, _, r in _results(report)] == [
        "created",
        "unchanged",
        "rejected",
        "rejected",
        "rejected",
    ]
    assert (await api.get("/v1/invoices/IMP-C-NEW")).status_code == 404
    assert await _workflow_status(dev_env, "IMP-C-NEW") is None


async def test_the_batch_route_is_not_taken_for_an_invoice_number(api: Api) -> None:
    # `/v1/invoices/{number}` needs a slash: `:batch` never reaches it, and vice versa.
    assert (await api.get(BATCH)).status_code == 405
    assert (await api.get("/v1/invoices/IMP-D-1")).status_code == 404
    response = await api.post(BATCH, {"invoices": [invoice_body("IMP-D-1")]})
    assert response.status_code == 200, response.text
    assert (await api.invoice("IMP-D-1"))["number"] == "IMP-D-1"


async def test_a_batch_over_the_limit_or_empty_is_refused_whole(api: Api) -> None:
    too_many = [invoice_body(f"IMP-E-{i}") for i in range(MAX_BATCH + 1)]

    response = await api.post(BATCH, {"invoices": too_many})

    [(field, message)] = field_errors(response).items()
    assert field == "body.invoices"
    assert str(MAX_BATCH) in message
    assert (await api.get("/v1/invoices/IMP-E-0")).status_code == 404
    assert (await api.post(BATCH, {"invoices": []})).status_code == 422


async def test_only_the_back_office_hands_over_a_batch(api: Api) -> None:
    body = {"invoices": [invoice_body("IMP-F-1")]}
    for role in (Role.COLLECTOR, Role.OPS):
        assert (await api.post(BATCH, body, role=role)).status_code == 403
    assert (await api.post(BATCH, body, role=Role.ADMIN)).status_code == 200
