"""What a back-office integrator sees: hand-over, replays, conflicts, bad input, payments."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.email import OutboxSender
from api.app import create_app
from api.auth import Role, create_api_key
from config import Settings
from tests.api.conftest import Api, eventually, field_errors, invoice_body, problem, serve
from worker import build_worker
from workflows.contract import workflow_id


async def test_hand_over_answers_201_with_stage_and_outstanding(api: Api) -> None:
    response = await api.hand_over(invoice_body("INV-API-1"))

    assert response.status_code == 201, response.text
    assert response.headers["Location"] == "/v1/invoices/INV-API-1"
    body = response.json()
    assert body["number"] == "INV-API-1"
    assert body["stage"] == "upcoming"
    assert body["outstanding"] == {"amount": "1200.00", "currency": "EUR"}
    assert body["payments"] == []

    # The workflow has started and recorded it in the timeline.
    async def opened() -> Any:
        history = (await api.get("/v1/invoices/INV-API-1/history")).json()
        return [e for e in history if e["kind"] == "opened"]

    [entry] = await eventually(opened, what="the workflow's first event")
    assert entry["stage"] == "upcoming"


async def test_same_hand_over_again_gets_the_same_answer_and_one_workflow(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    body = invoice_body("INV-API-2")
    first = await api.hand_over(body)
    run_id = (await dev_env.client.get_workflow_handle(workflow_id("INV-API-2")).describe()).run_id

    again = await api.hand_over(body)

    assert again.status_code == 201, again.text
    assert again.json()["number"] == first.json()["number"]
    assert again.json()["outstanding"] == first.json()["outstanding"]
    # Same amount written differently is the same invoice.
    assert (await api.hand_over({**body, "amount": "1200"})).status_code == 201
    described = await dev_env.client.get_workflow_handle(workflow_id("INV-API-2")).describe()
    assert described.run_id == run_id


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "1300.00"}, "amount"),
        ({"due_date": "2031-01-31"}, "due_date"),
        ({"currency": "USD"}, "currency"),
    ],
)
async def test_same_number_with_other_data_is_a_409_naming_the_field(
    api: Api, change: dict[str, str], field: str
) -> None:
    number = f"INV-API-CONFLICT-{field}"
    assert (await api.hand_over(invoice_body(number))).status_code == 201

    response = await api.hand_over({**invoice_body(number), **change})

    assert response.status_code == 409
    detail = response.json()["detail"]
    assert f"invoice {number} was already handed over with different data" in detail
    assert field in detail
    # The stored invoice is untouched.
    assert (await api.invoice(number))["amount"] == {"amount": "1200.00", "currency": "EUR"}


def _debtor(**changes: Any) -> dict[str, Any]:
    return {**invoice_body("x")["debtor"], **changes}


@pytest.mark.parametrize(
    ("change", "loc", "says"),
    [
        ({"amount": 1200.5}, "body.amount", "decimal string"),
        ({"amount": "12,50"}, "body.amount", "decimal string"),
        ({"amount": "-5"}, "body.amount", "greater than 0"),
        ({"amount": "0"}, "body.amount", "greater than 0"),
        ({"amount": "10.001"}, "body.amount", "more decimals than EUR"),
        ({"currency": "eur"}, "body.currency", "ISO 4217"),
        ({"currency": "EURO"}, "body.currency", "ISO 4217"),
        ({"due_date": "2020-01-01"}, "body.due_date", "before issue_date"),
        ({"due_date": "2026-02-30"}, "body.due_date", "date"),
        ({"number": "INV/1"}, "body.number", "may only contain"),
        ({"debtor": _debtor(email="not-an-email")}, "body.debtor.email", "email"),
        ({"debtor": _debtor(country="XX")}, "body.debtor.country", "ISO 3166"),
        ({"debtor": _debtor(language="de")}, "body.debtor.language", "'fr' or 'en'"),
        ({"debtor": _debtor(id="")}, "body.debtor.id", "at least 1"),
        ({"amout": "5"}, "body.amout", "Extra inputs"),
        # Bounds from the domain (domain/money.py, domain/dates.py), each a 500 or a 201 once.
        ({"amount": "1" + "0" * 26}, "body.amount", "at most 12 before the point"),
        ({"amount": "1000000000000"}, "body.amount", "at most 12 before the point"),
        ({"amount": "١٢٠٠"}, "body.amount", "ASCII digits"),
        ({"amount": "1200.5", "currency": "JPY"}, "body.amount", "more decimals than JPY"),
        ({"currency": "ABC"}, "body.currency", "ISO 4217"),
        ({"currency": "XAU"}, "body.currency", "ISO 4217"),
        ({"due_date": "9999-12-31"}, "body.due_date", "between 2015-01-01"),
        ({"issue_date": "0001-01-01"}, "body.issue_date", "between 2015-01-01"),
        ({"issue_date": "2014-11-01", "due_date": "2014-12-31"}, "body.due_date", "2015-01-01"),
        ({"number": "F-NL\n"}, "body.number", "may only contain"),
        ({"debtor": _debtor(name="Evil\r\nBcc: spy@evil.example")}, "body.debtor.name", "control"),
        ({"debtor": _debtor(name="Nul\x00Corp")}, "body.debtor.name", "control"),
        ({"debtor": _debtor(id="C-1\n")}, "body.debtor.id", "may only contain"),
        ({"debtor": _debtor(timezone="Mars/Olympus")}, "body.debtor.timezone", "time zone"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    api: Api, change: dict[str, Any], loc: str, says: str
) -> None:
    response = await api.hand_over({**invoice_body("INV-API-BAD"), **change})

    errors = field_errors(response)
    assert loc in errors, errors
    assert says in errors[loc]
    # Nothing was stored.
    assert (await api.get("/v1/invoices/INV-API-BAD")).status_code == 404


async def test_unknown_invoice_is_a_404(api: Api) -> None:
    for response in [
        await api.get("/v1/invoices/NOPE-1"),
        await api.get("/v1/invoices/NOPE-1/history"),
        await api.post(
            "/v1/invoices/NOPE-1/payments",
            {"reference": "P1", "amount": "10.00", "currency": "EUR"},
        ),
    ]:
        body = problem(response, 404)
        assert body["detail"] == "invoice NOPE-1 is unknown: it was never handed over"


async def _pay(api: Api, number: str, reference: str, amount: str, currency: str = "EUR") -> Any:
    return await api.post(
        f"/v1/invoices/{number}/payments",
        {"reference": reference, "amount": amount, "currency": currency},
    )


async def test_partial_then_full_payment_ends_in_paid_with_a_thank_you(api: Api) -> None:
    assert (await api.hand_over(invoice_body("INV-API-PAY"))).status_code == 201

    partial = await _pay(api, "INV-API-PAY", "VIR-1", "200.00")
    assert partial.status_code == 200, partial.text
    assert partial.json() == {
        "reference": "VIR-1",
        "amount": {"amount": "200.00", "currency": "EUR"},
        "outstanding": {"amount": "1000.00", "currency": "EUR"},
        "stage": "upcoming",
        "overpayment": None,
    }

    full = await _pay(api, "INV-API-PAY", "VIR-2", "1000.00")
    assert full.status_code == 200, full.text
    assert full.json()["stage"] == "paid"
    assert full.json()["outstanding"] == {"amount": "0.00", "currency": "EUR"}

    async def paid() -> Any:
        invoice = await api.invoice("INV-API-PAY")
        return invoice if invoice["stage"] == "paid" else None

    invoice = await eventually(paid, what="stage paid in the read model")
    assert [p["reference"] for p in invoice["payments"]] == ["VIR-1", "VIR-2"]
    assert invoice["next_step"] is None

    async def thanked() -> Any:
        history = (await api.get("/v1/invoices/INV-API-PAY/history")).json()
        return [e for e in history if e["kind"] == "message_sent"]

    sent = await eventually(thanked, what="the thank-you message")
    assert [e["detail"]["step_id"] for e in sent] == ["thank_you"]


async def test_same_payment_reference_twice_gets_the_same_answer(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    assert (await api.hand_over(invoice_body("INV-API-DUP"))).status_code == 201

    first = await _pay(api, "INV-API-DUP", "VIR-DUP", "300.00")
    again = await _pay(api, "INV-API-DUP", "VIR-DUP", "300.00")

    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.json()["outstanding"]["amount"] == "900.00"

    # Also once the invoice is paid and its workflow has ended.
    closing = await _pay(api, "INV-API-DUP", "VIR-LAST", "900.00")
    assert closing.json()["stage"] == "paid"

    await dev_env.client.get_workflow_handle(workflow_id("INV-API-DUP")).result()
    replay = await _pay(api, "INV-API-DUP", "VIR-LAST", "900.00")
    assert replay.status_code == 200, replay.text
    assert replay.json() == closing.json()


async def test_payment_in_the_wrong_currency_is_a_422_saying_so(api: Api) -> None:
    assert (await api.hand_over(invoice_body("INV-API-CUR"))).status_code == 201

    response = await _pay(api, "INV-API-CUR", "VIR-USD", "100.00", currency="USD")

    body = problem(response, 422)
    assert body["type"] == "urn:relance:problem:currency-mismatch"
    assert body["detail"] == "payment currency USD does not match the invoice currency EUR"
    assert [(e["location"], e["field"]) for e in body["errors"]] == [("body", "currency")]
    assert (await api.invoice("INV-API-CUR"))["payments"] == []


async def test_bad_payment_input_is_a_422_naming_the_field(api: Api) -> None:
    assert (await api.hand_over(invoice_body("INV-API-BADPAY"))).status_code == 201

    errors = field_errors(await _pay(api, "INV-API-BADPAY", "VIR-X", "-3"))
    assert "greater than 0" in errors["body.amount"]
    errors = field_errors(await _pay(api, "INV-API-BADPAY", "VIR-X", "9" * 27))
    assert "at most 12 before the point" in errors["body.amount"]
    errors = field_errors(await _pay(api, "INV-API-BADPAY", "VIR-X", "10", currency="ABC"))
    assert "ISO 4217" in errors["body.currency"]
    errors = field_errors(await _pay(api, "INV-API-BADPAY", "VIR\r\nX", "10"))
    assert "control characters" in errors["body.reference"]
    errors = field_errors(
        await api.post("/v1/invoices/INV-API-BADPAY/payments", {"amount": "1", "currency": "EUR"})
    )
    assert "body.reference" in errors


async def test_overpayment_is_reported_and_a_closed_invoice_refuses_more(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    assert (await api.hand_over(invoice_body("INV-API-OVER"))).status_code == 201

    response = await _pay(api, "INV-API-OVER", "VIR-BIG", "1250.00")

    assert response.json()["stage"] == "paid"
    assert response.json()["overpayment"] == {"amount": "50.00", "currency": "EUR"}

    async def overpaid() -> Any:
        return (await api.invoice("INV-API-OVER"))["overpayment"]

    assert await eventually(overpaid, what="overpayment in the read model") == {
        "amount": "50.00",
        "currency": "EUR",
    }
    # Refused while the workflow winds down, and after it has ended.
    late = await _pay(api, "INV-API-OVER", "VIR-MORE", "10.00")
    assert late.status_code == 409
    assert "already paid" in late.json()["detail"]
    await dev_env.client.get_workflow_handle(workflow_id("INV-API-OVER")).result()
    later = await _pay(api, "INV-API-OVER", "VIR-MORE", "10.00")
    assert later.status_code == 409
    assert later.json()["detail"] == (
        "invoice INV-API-OVER is already paid: no payment can be recorded"
    )


async def test_ops_reads_but_cannot_hand_over(api: Api) -> None:
    assert (await api.hand_over(invoice_body("INV-API-OPS"))).status_code == 201

    assert (await api.get("/v1/invoices/INV-API-OPS", role=Role.OPS)).status_code == 200
    assert (await api.get("/v1/invoices/INV-API-OPS/history", role=Role.OPS)).status_code == 200
    refused = await api.post("/v1/invoices", invoice_body("INV-API-OPS2"), role=Role.OPS)
    assert refused.status_code == 403


async def test_healthz_needs_no_key_and_reports_ok(api: Api) -> None:
    response = await api.http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "store": "ok", "temporal": "ok"}


async def test_no_worker_is_a_504_that_never_claims_nothing_was_recorded(
    dev_env: WorkflowEnvironment, engine: Engine, tmp_path: Path
) -> None:
    # A task queue no worker polls yet: the Update is admitted, then waits for a worker.
    queue = f"tq-nobody-home-{uuid.uuid4().hex[:6]}"
    settings = Settings(_env_file=None, data_dir=tmp_path, task_queue=queue, rpc_timeout_seconds=1)
    key = create_api_key(engine, Role.BACKOFFICE)
    headers = {"Authorization": f"Bearer {key}"}
    payment = {"reference": "VIR-1", "amount": "10.00", "currency": "EUR"}
    async with serve(create_app(settings, client=dev_env.client, engine=engine)) as http:
        handed = await http.post(
            "/v1/invoices", json=invoice_body("INV-API-NOWORKER"), headers=headers
        )
        assert handed.status_code == 201

        response = await http.post(
            "/v1/invoices/INV-API-NOWORKER/payments", json=payment, headers=headers
        )

        body = problem(response, 504)
        assert body["type"] == "urn:relance:problem:outcome-unknown"
        assert f"is a Relance worker running on task queue '{queue}'" in body["detail"]
        # The payment may well be applied later: the answer must not say otherwise.
        assert "nothing was recorded" not in body["detail"].lower()
        assert "same Idempotency-Key" in body["detail"]
        assert response.headers["Retry-After"]

        # And indeed: once a worker runs, the admitted payment is applied, and the client's
        # retry with the same reference learns the outcome (applied once).
        worker = build_worker(
            dev_env.client,
            settings,
            engine,
            sender=OutboxSender(tmp_path / "outbox", settings.email_from),
            task_queue=queue,
        )
        async with worker:

            async def paid() -> Any:
                read = await http.get("/v1/invoices/INV-API-NOWORKER", headers=headers)
                return read.json()["payments"]

            [recorded] = await eventually(paid, what="the payment admitted before the worker")
            retry = await http.post(
                "/v1/invoices/INV-API-NOWORKER/payments", json=payment, headers=headers
            )
            assert retry.status_code == 200, retry.text
            assert retry.json()["outstanding"] == {"amount": "1190.00", "currency": "EUR"}
            assert (await paid()) == [recorded]


async def test_temporal_down_is_a_503_and_the_invoice_heals_on_retry(
    dev_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, task_queue=task_queue)
    key = create_api_key(engine, Role.BACKOFFICE)
    headers = {"Authorization": f"Bearer {key}"}
    # A Temporal server that goes away after the API connected to it.
    doomed = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
    )
    await doomed.shutdown()
    body = invoice_body("INV-API-DOWN")
    async with serve(create_app(settings, client=doomed.client, engine=engine)) as http:
        health = await http.get("/healthz")
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable"
        assert health.json()["store"] == "ok"
        assert health.json()["temporal"].startswith("down")

        response = await http.post("/v1/invoices", json=body, headers=headers)
        assert response.status_code == 503
        detail = response.json()["detail"]
        assert "INV-API-DOWN is recorded but its collection could not start" in detail
        assert "RELANCE_TEMPORAL_ADDRESS" in detail
        assert "Send the same request again" in detail

    # The back office retries once Temporal is back: the same request starts the workflow.
    async with serve(create_app(settings, client=dev_env.client, engine=engine)) as http:
        retry = await http.post("/v1/invoices", json=body, headers=headers)
        assert retry.status_code == 201
    await dev_env.client.get_workflow_handle(workflow_id("INV-API-DOWN")).describe()


async def test_the_app_opens_its_own_store_and_temporal_client(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        temporal_address=dev_env.client.service_client.config.target_host,
    )
    app = create_app(settings)
    async with serve(app) as http:
        response = await http.get("/healthz")
        assert response.json() == {"status": "ok", "store": "ok", "temporal": "ok"}
    # The lifespan migrated the store it created, and let go of both on the way out.
    assert (tmp_path / "relance.db").exists()
    assert app.state.engine is None and app.state.client is None
