"""What collectors, the back office and ops do to an invoice while it is collected: disputes,
payment plans, pauses, cancellation and write-off, through the API against a real workflow.

Days are real here: the invoices are due in a month, so nothing but these actions happens
during a test.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx

from api.auth import Role, create_api_key
from tests.api.conftest import Api, field_errors, invoice_body, problem


async def _handed_over(api: Api, number: str, **changes: Any) -> None:
    response = await api.hand_over(invoice_body(number, **changes))
    assert response.status_code == 201, response.text


async def _open_dispute(api: Api, number: str, **body: Any) -> dict[str, Any]:
    response = await api.post(
        f"/v1/invoices/{number}/disputes",
        {"reason": "goods arrived damaged", **body},
        role=Role.COLLECTOR,
    )
    assert response.status_code == 201, response.text
    opened: dict[str, Any] = response.json()
    return opened


async def _resolve(api: Api, number: str, dispute_id: str, body: dict[str, Any]) -> httpx.Response:
    return await api.post(
        f"/v1/invoices/{number}/disputes/{dispute_id}/resolution", body, role=Role.COLLECTOR
    )


def _installments(*amounts: str, start_in_days: int = 30) -> list[dict[str, str]]:
    first = date.today() + timedelta(days=start_in_days)
    return [
        {"due_date": (first + timedelta(days=30 * i)).isoformat(), "amount": amount}
        for i, amount in enumerate(amounts)
    ]


# ------------------------------------------------------------------ disputes


async def test_a_rejected_dispute_puts_the_invoice_back_where_it_was(api: Api) -> None:
    await _handed_over(api, "INV-DSP-1")

    opened = await _open_dispute(api, "INV-DSP-1", amount="300.00")

    assert opened["dispute_id"].startswith("D-")
    assert opened["by"] == "collector-tester"
    assert opened["applied"] is True
    assert opened["status"]["stage"] == "disputed"
    assert (await api.invoice("INV-DSP-1"))["stage"] == "disputed"
    [dispute] = (await api.get("/v1/invoices/INV-DSP-1/disputes", role=Role.OPS)).json()
    assert dispute["id"] == opened["dispute_id"]
    assert dispute["status"] == "open"
    assert dispute["reason"] == "goods arrived damaged"
    assert dispute["amount"] == {"amount": "300.00", "currency": "EUR"}
    assert dispute["opened_by"] == "collector-tester"
    # A collector has a task to resolve it by the deadline.
    tasks = (await api.get("/v1/tasks?kind=dispute&invoice=INV-DSP-1", role=Role.COLLECTOR)).json()
    [task] = tasks
    assert task["id"] == f"INV-DSP-1:dispute:{opened['dispute_id']}"
    assert task["status"] == "open"
    assert task["due_at"] == dispute["deadline"]

    # One dispute at a time.
    again = await api.post(
        "/v1/invoices/INV-DSP-1/disputes", {"reason": "also late"}, role=Role.BACKOFFICE
    )
    assert again.status_code == 409, again.text
    assert opened["dispute_id"] in again.json()["detail"]

    response = await _resolve(
        api,
        "INV-DSP-1",
        opened["dispute_id"],
        {"outcome": "rejected", "comment": "delivery note signed without reserve"},
    )

    assert response.status_code == 200, response.text
    resolved = response.json()
    assert resolved["outcome"] == "rejected"
    assert resolved["by"] == "collector-tester"
    assert resolved["status"]["stage"] == "upcoming"
    assert resolved["status"]["outstanding"] == {"amount": "1200.00", "currency": "EUR"}
    [dispute] = (await api.get("/v1/invoices/INV-DSP-1/disputes")).json()
    assert dispute["status"] == "rejected"
    assert dispute["resolved_by"] == "collector-tester"
    [task] = (await api.get("/v1/tasks?kind=dispute&invoice=INV-DSP-1", role=Role.OPS)).json()
    assert task["status"] == "done"
    # Resolved once: not again.
    twice = await _resolve(api, "INV-DSP-1", opened["dispute_id"], {"outcome": "upheld"})
    assert twice.status_code == 409
    assert "no longer open" in twice.json()["detail"]
    history = (await api.get("/v1/invoices/INV-DSP-1/history")).json()
    kinds = [e["kind"] for e in history]
    assert "dispute_opened" in kinds
    assert "dispute_resolved" in kinds


async def test_an_upheld_dispute_with_a_credit_note_reduces_the_outstanding(api: Api) -> None:
    await _handed_over(api, "INV-DSP-2")
    opened = await _open_dispute(api, "INV-DSP-2", amount="200.00", currency="EUR")

    response = await _resolve(
        api,
        "INV-DSP-2",
        opened["dispute_id"],
        {"outcome": "upheld", "credit": "200.00", "credit_note_reference": "AV-0042"},
    )

    assert response.status_code == 200, response.text
    status = response.json()["status"]
    assert status["outstanding"] == {"amount": "1000.00", "currency": "EUR"}
    assert status["stage"] == "upcoming"
    invoice = await api.invoice("INV-DSP-2")
    assert invoice["outstanding"] == {"amount": "1000.00", "currency": "EUR"}
    [dispute] = (await api.get("/v1/invoices/INV-DSP-2/disputes")).json()
    assert dispute["status"] == "upheld"
    assert dispute["credit"] == {"amount": "200.00", "currency": "EUR"}


async def test_an_upheld_dispute_without_a_credit_amount_cancels_the_invoice(api: Api) -> None:
    await _handed_over(api, "INV-DSP-3")
    opened = await _open_dispute(api, "INV-DSP-3")

    response = await _resolve(
        api, "INV-DSP-3", opened["dispute_id"], {"outcome": "upheld", "comment": "wrong order"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"]["stage"] == "cancelled"
    assert (await api.invoice("INV-DSP-3"))["stage"] == "cancelled"
    # The collection has ended: nothing more can be done to the invoice.
    late = await api.post(
        "/v1/invoices/INV-DSP-3/pause", {"reason": "customer asked"}, role=Role.COLLECTOR
    )
    assert late.status_code == 409, late.text
    assert "cancelled" in late.json()["detail"]


async def test_dispute_requests_are_checked(api: Api) -> None:
    await _handed_over(api, "INV-DSP-4")
    url = "/v1/invoices/INV-DSP-4/disputes"

    assert "body.amount" in field_errors(
        await api.post(
            url, {"reason": "x", "amount": "10.001", "currency": "EUR"}, role=Role.COLLECTOR
        )
    )
    # Without a currency, the invoice's decides how many decimals an amount may have.
    cents = await api.post(url, {"reason": "x", "amount": "10.001"}, role=Role.COLLECTOR)
    assert cents.status_code == 422
    assert field_errors(cents) == {"body.amount": "10.001 has more decimals than EUR allows (2)"}
    assert "body.amount" in field_errors(
        await api.post(url, {"reason": "x", "amount": 10.5}, role=Role.COLLECTOR)
    )
    assert "body.amount" in field_errors(
        await api.post(url, {"reason": "x", "currency": "EUR"}, role=Role.COLLECTOR)
    )
    assert "body.reason" in field_errors(await api.post(url, {"reason": ""}, role=Role.COLLECTOR))
    too_much = await api.post(url, {"reason": "x", "amount": "5000.00"}, role=Role.COLLECTOR)
    assert too_much.status_code == 422
    assert too_much.json()["detail"].startswith("amount:")
    wrong_currency = await api.post(
        url, {"reason": "x", "amount": "10.00", "currency": "USD"}, role=Role.COLLECTOR
    )
    assert wrong_currency.status_code == 422, wrong_currency.text

    # Ops inspect, they do not open disputes; nobody without a key does anything.
    assert (await api.post(url, {"reason": "x"}, role=Role.OPS)).status_code == 403
    assert (await api.http.post(url, json={"reason": "x"})).status_code == 401
    unknown = await api.post("/v1/invoices/INV-NOPE/disputes", {"reason": "x"})
    assert unknown.status_code == 404
    assert (await api.get("/v1/invoices/INV-NOPE/disputes")).status_code == 404
    assert (await api.invoice("INV-DSP-4"))["stage"] == "upcoming"

    opened = await _open_dispute(api, "INV-DSP-4")
    resolution = f"{url}/{opened['dispute_id']}/resolution"
    # The back office reports disputes; a collector resolves them.
    refused = await api.post(resolution, {"outcome": "rejected"}, role=Role.BACKOFFICE)
    assert refused.status_code == 403
    assert "body.credit" in field_errors(
        await _resolve(
            api, "INV-DSP-4", opened["dispute_id"], {"outcome": "rejected", "credit": "10.00"}
        )
    )
    assert "body.outcome" in field_errors(
        await _resolve(api, "INV-DSP-4", opened["dispute_id"], {"outcome": "maybe"})
    )
    unknown_dispute = await _resolve(api, "INV-DSP-4", "D-NOPE", {"outcome": "rejected"})
    assert unknown_dispute.status_code == 404
    assert (
        problem(unknown_dispute, 404)["detail"] == "dispute D-NOPE is unknown on invoice INV-DSP-4"
    )


# ------------------------------------------------------------------ payment plans


async def test_a_plan_must_add_up_to_the_outstanding_amount(api: Api) -> None:
    await _handed_over(api, "INV-PLAN-1")
    url = "/v1/invoices/INV-PLAN-1/payment-plan"

    wrong = await api.post(
        url, {"installments": _installments("400.00", "400.00")}, role=Role.COLLECTOR
    )

    assert wrong.status_code == 422, wrong.text
    assert "1200.00" in wrong.json()["detail"]
    assert (await api.get(url)).json() == []
    assert (await api.invoice("INV-PLAN-1"))["stage"] == "upcoming"
    unordered = {"installments": list(reversed(_installments("600.00", "600.00")))}
    assert "body.installments" in field_errors(await api.post(url, unordered))
    assert "body.installments" in field_errors(await api.post(url, {"installments": []}))
    assert "body.installments.0.amount" in field_errors(
        await api.post(url, {"installments": _installments("-1", "1201.00")})
    )
    assert "body.installments.0.due_date" in field_errors(
        await api.post(url, {"installments": [{"due_date": "soon", "amount": "1200.00"}]})
    )
    assert (
        await api.post(url, {"installments": _installments("1200.00")}, role=Role.OPS)
    ).status_code == 403
    assert (
        await api.post("/v1/invoices/INV-NOPE/payment-plan", {"installments": _installments("1")})
    ).status_code == 404


async def test_a_small_plan_runs_at_once(api: Api) -> None:
    await _handed_over(api, "INV-PLAN-2")
    url = "/v1/invoices/INV-PLAN-2/payment-plan"

    response = await api.post(
        url,
        {"installments": _installments("600.00", "600.00"), "comment": "cash-flow issue"},
        role=Role.BACKOFFICE,
    )

    assert response.status_code == 201, response.text
    proposed = response.json()
    assert proposed["plan_id"].startswith("P-")
    assert proposed["needs_approval"] is False
    assert proposed["plan_status"] == "active"
    assert proposed["by"] == "backoffice-tester"
    assert proposed["status"]["stage"] == "payment_plan"
    [plan] = (await api.get(url, role=Role.COLLECTOR)).json()
    assert plan["id"] == proposed["plan_id"]
    assert plan["status"] == "active"
    assert plan["proposed_by"] == "backoffice-tester"
    assert [i["amount"] for i in plan["installments"]] == [
        {"amount": "600.00", "currency": "EUR"},
        {"amount": "600.00", "currency": "EUR"},
    ]
    # One plan at a time.
    again = await api.post(url, {"installments": _installments("1200.00")}, role=Role.COLLECTOR)
    assert again.status_code == 409, again.text


async def test_a_large_plan_needs_a_second_person(api: Api) -> None:
    # The debtor is a PME: its playbook asks for a second person above 5000 EUR.
    await _handed_over(api, "INV-PLAN-3", amount="6000.00")
    url = "/v1/invoices/INV-PLAN-3/payment-plan"
    response = await api.post(
        url, {"installments": _installments("3000.00", "3000.00")}, role=Role.COLLECTOR
    )
    assert response.status_code == 201, response.text
    proposed = response.json()
    assert proposed["needs_approval"] is True
    assert proposed["plan_status"] == "proposed"
    decision = f"{url}/{proposed['plan_id']}/decision"
    [task] = (
        await api.get("/v1/tasks?kind=plan_approval&invoice=INV-PLAN-3", role=Role.COLLECTOR)
    ).json()
    assert task["status"] == "open"

    # The proposer cannot approve their own plan.
    own = await api.post(decision, {"approve": True}, role=Role.COLLECTOR)
    assert own.status_code == 403, own.text
    assert "four-eyes" in own.json()["detail"]
    assert (await api.post(decision, {"approve": True}, role=Role.BACKOFFICE)).status_code == 403
    assert "body.approve" in field_errors(
        await api.post(decision, {"approve": "yes"}, role=Role.COLLECTOR)
    )
    unknown = await api.post(f"{url}/P-NOPE/decision", {"approve": True}, role=Role.COLLECTOR)
    assert unknown.status_code == 404

    # Another collector (another key) approves it.
    second = create_api_key(api.engine, Role.COLLECTOR, label="second-collector")
    approved = await api.http.post(
        decision,
        json={"approve": True, "comment": "customer of 10 years"},
        headers={"Authorization": f"Bearer {second}"},
    )

    assert approved.status_code == 200, approved.text
    assert approved.json()["approved"] is True
    assert approved.json()["by"] == "second-collector"
    assert approved.json()["status"]["stage"] == "payment_plan"
    [plan] = (await api.get(url)).json()
    assert plan["status"] == "active"
    assert plan["decided_by"] == "second-collector"
    assert plan["needs_approval"] is True
    # Decided once: not again.
    twice = await api.post(decision, {"approve": False}, role=Role.ADMIN)
    assert twice.status_code == 409


async def test_a_rejected_plan_lets_the_escalation_go_on(api: Api) -> None:
    await _handed_over(api, "INV-PLAN-4", amount="6000.00")
    url = "/v1/invoices/INV-PLAN-4/payment-plan"
    proposed = (await api.post(url, {"installments": _installments("3000.00", "3000.00")})).json()

    response = await api.post(
        f"{url}/{proposed['plan_id']}/decision",
        {"approve": False, "comment": "too long"},
        role=Role.COLLECTOR,
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"]["stage"] == "upcoming"
    [plan] = (await api.get(url)).json()
    assert plan["status"] == "rejected"
    assert plan["decided_by"] == "collector-tester"


# ------------------------------------------------------------------ holds and closures


async def test_pause_and_resume(api: Api) -> None:
    await _handed_over(api, "INV-HOLD-1")
    until = (date.today() + timedelta(days=20)).isoformat()

    paused = await api.post(
        "/v1/invoices/INV-HOLD-1/pause",
        {"reason": "debtor in safeguard proceedings", "until": until},
        role=Role.COLLECTOR,
    )

    assert paused.status_code == 200, paused.text
    assert paused.json()["by"] == "collector-tester"
    assert paused.json()["status"]["stage"] == "paused"
    assert (await api.invoice("INV-HOLD-1"))["stage"] == "paused"

    resumed = await api.post(
        "/v1/invoices/INV-HOLD-1/resume", {"comment": "proceedings ended"}, role=Role.ADMIN
    )

    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"]["stage"] == "upcoming"
    again = await api.post("/v1/invoices/INV-HOLD-1/resume", {}, role=Role.COLLECTOR)
    assert again.status_code == 409, again.text
    assert "not paused" in again.json()["detail"]
    history = (await api.get("/v1/invoices/INV-HOLD-1/history")).json()
    # Recorded by identity, shown by label.
    assert any("collector-tester" in e["summary"] for e in history)
    assert any("admin-tester" in e["summary"] for e in history)
    assert not any("apikey:" in e["summary"] for e in history)

    # Holds are for collectors: the back office reports, ops only look.
    for role in (Role.BACKOFFICE, Role.OPS, Role.FINANCE):
        refused = await api.post("/v1/invoices/INV-HOLD-1/pause", {"reason": "x"}, role=role)
        assert refused.status_code == 403
    assert "body.until" in field_errors(
        await api.post(
            "/v1/invoices/INV-HOLD-1/pause",
            {"reason": "x", "until": "next week"},
            role=Role.COLLECTOR,
        )
    )
    assert "body.reason" in field_errors(
        await api.post("/v1/invoices/INV-HOLD-1/pause", {}, role=Role.COLLECTOR)
    )


async def test_the_back_office_cancels_with_a_credit_note(api: Api) -> None:
    await _handed_over(api, "INV-END-1")
    url = "/v1/invoices/INV-END-1/cancel"
    assert "body.credit_note_reference" in field_errors(
        await api.post(url, {"reason": "duplicate invoice"})
    )
    assert (
        await api.post(url, {"reason": "x", "credit_note_reference": "AV-1"}, role=Role.COLLECTOR)
    ).status_code == 403

    response = await api.post(
        url, {"reason": "duplicate invoice", "credit_note_reference": "AV-2026-0007"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["by"] == "backoffice-tester"
    assert response.json()["status"]["stage"] == "cancelled"
    assert (await api.invoice("INV-END-1"))["stage"] == "cancelled"
    # Ended: a write-off now is a conflict, not a second ending.
    late = await api.post("/v1/invoices/INV-END-1/write-off", {"reason": "x"}, role=Role.FINANCE)
    assert late.status_code == 409, late.text


async def test_finance_writes_off_an_uncollectible_invoice(api: Api) -> None:
    # 1200 EUR outstanding: below the four-eyes threshold (5000 by default).
    await _handed_over(api, "INV-END-2")
    url = "/v1/invoices/INV-END-2/write-off"
    for role in (Role.BACKOFFICE, Role.COLLECTOR, Role.OPS):
        assert (await api.post(url, {"reason": "debtor liquidated"}, role=role)).status_code == 403

    response = await api.post(url, {"reason": "debtor liquidated"}, role=Role.FINANCE)

    assert response.status_code == 200, response.text
    assert response.json()["by"] == "finance-tester"
    assert response.json()["needs_approval"] is False
    assert response.json()["status"]["stage"] == "written_off"
    # Written off, the debt is still on record.
    assert response.json()["status"]["outstanding"] == {"amount": "1200.00", "currency": "EUR"}
    assert (await api.invoice("INV-END-2"))["stage"] == "written_off"
    unknown = await api.post("/v1/invoices/INV-NOPE/write-off", {"reason": "x"}, role=Role.FINANCE)
    assert unknown.status_code == 404


# ------------------------------------------------------------------ playbook migration


async def test_an_admin_moves_a_running_invoice_to_another_playbook(api: Api) -> None:
    await _handed_over(api, "INV-MIG-1")
    before = await api.invoice("INV-MIG-1")

    refused = await api.post(
        "/v1/invoices/INV-MIG-1/playbook", {"playbook": "tpe"}, role=Role.COLLECTOR
    )
    assert refused.status_code == 403
    unknown = await api.post(
        "/v1/invoices/INV-MIG-1/playbook", {"playbook": "nope"}, role=Role.ADMIN
    )
    assert unknown.status_code == 422
    assert "no playbook named 'nope'" in unknown.json()["detail"]

    moved = await api.post(
        "/v1/invoices/INV-MIG-1/playbook",
        {"playbook": "tpe", "reason": "small customer after all"},
        role=Role.ADMIN,
    )
    assert moved.status_code == 200, moved.text
    after = await api.invoice("INV-MIG-1")
    assert (before["playbook"], after["playbook"]) == ("pme", "tpe")
    history = (await api.get("/v1/invoices/INV-MIG-1/history", role=Role.OPS)).json()
    assert any(e["kind"] == "playbook_migrated" for e in history)
