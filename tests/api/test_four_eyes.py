"""Four-eyes compares identities, not labels: plans and large write-offs."""

from __future__ import annotations

from datetime import date, timedelta

import httpx

from api.auth import Role, create_api_key
from tests.api.conftest import Api, invoice_body


def _installments(*amounts: str) -> list[dict[str, str]]:
    first = date.today() + timedelta(days=30)
    return [
        {"due_date": (first + timedelta(days=30 * i)).isoformat(), "amount": amount}
        for i, amount in enumerate(amounts)
    ]


async def _as(api: Api, key: str, url: str, body: dict[str, object]) -> httpx.Response:
    return await api.http.post(url, json=body, headers={"Authorization": f"Bearer {key}"})


async def test_two_keys_with_the_same_label_are_two_people(api: Api) -> None:
    # Above the PME playbook's limit (5000 EUR): the plan needs a second person.
    assert (await api.hand_over(invoice_body("INV-4E-1", amount="6000.00"))).status_code == 201
    first = create_api_key(api.engine, Role.COLLECTOR, label="claire")
    second = create_api_key(api.engine, Role.COLLECTOR, label="claire")
    url = "/v1/invoices/INV-4E-1/payment-plan"
    proposed = await _as(api, first, url, {"installments": _installments("3000.00", "3000.00")})
    assert proposed.status_code == 201, proposed.text
    decision = f"{url}/{proposed.json()['plan_id']}/decision"

    own = await _as(api, first, decision, {"approve": True})

    assert own.status_code == 403, own.text
    assert "four-eyes" in own.json()["detail"]
    approved = await _as(api, second, decision, {"approve": True})
    assert approved.status_code == 200, approved.text
    [plan] = (await api.get(url)).json()
    # People read labels; the record keeps who, by identity.
    assert plan["proposed_by"] == plan["decided_by"] == "claire"
    assert plan["status"] == "active"


async def test_a_large_write_off_waits_for_a_second_finance_person(api: Api) -> None:
    # 6000 EUR outstanding, above RELANCE_WRITE_OFF_APPROVAL_ABOVE (5000).
    assert (await api.hand_over(invoice_body("INV-4E-2", amount="6000.00"))).status_code == 201
    asker = create_api_key(api.engine, Role.FINANCE, label="daf")
    other = create_api_key(api.engine, Role.FINANCE, label="daf")

    asked = await _as(api, asker, "/v1/invoices/INV-4E-2/write-off", {"reason": "liquidated"})

    assert asked.status_code == 202, asked.text
    request = asked.json()["request"]
    assert asked.json()["needs_approval"] is True
    assert request["status"] == "pending"
    assert request["outstanding"] == {"amount": "6000.00", "currency": "EUR"}
    # Nothing is written off yet: the collection goes on.
    assert (await api.invoice("INV-4E-2"))["stage"] == "upcoming"
    pending = (await api.get("/v1/write-offs?status=pending", role=Role.OPS)).json()
    assert [p["id"] for p in pending] == [request["id"]]
    twice = await _as(api, other, "/v1/invoices/INV-4E-2/write-off", {"reason": "again"})
    assert twice.status_code == 409
    assert request["id"] in twice.json()["detail"]

    decision = f"/v1/invoices/INV-4E-2/write-off/{request['id']}/decision"
    own = await _as(api, asker, decision, {"approve": True})
    assert own.status_code == 403, own.text
    assert "four-eyes" in own.json()["detail"]
    ops = await api.post(decision, {"approve": True}, role=Role.OPS)
    assert ops.status_code == 403
    assert (await api.invoice("INV-4E-2"))["stage"] == "upcoming"

    approved = await _as(api, other, decision, {"approve": True, "comment": "confirmed"})

    assert approved.status_code == 200, approved.text
    assert approved.json()["status"]["stage"] == "written_off"
    assert approved.json()["request"]["status"] == "approved"
    assert approved.json()["request"]["requested_by"] == "daf"
    assert (await api.invoice("INV-4E-2"))["stage"] == "written_off"
    assert (await api.get("/v1/write-offs?status=pending", role=Role.FINANCE)).json() == []
    again = await _as(api, other, decision, {"approve": True})
    assert again.status_code == 409


async def test_a_rejected_write_off_leaves_the_collection_running(api: Api) -> None:
    assert (await api.hand_over(invoice_body("INV-4E-3", amount="9000.00"))).status_code == 201
    asked = await api.post(
        "/v1/invoices/INV-4E-3/write-off", {"reason": "too small to chase"}, role=Role.FINANCE
    )
    assert asked.status_code == 202, asked.text
    other = create_api_key(api.engine, Role.FINANCE, label="controller")

    rejected = await _as(
        api,
        other,
        f"/v1/invoices/INV-4E-3/write-off/{asked.json()['request']['id']}/decision",
        {"approve": False, "comment": "customer is solvent"},
    )

    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["request"]["status"] == "rejected"
    assert rejected.json()["request"]["decided_by"] == "controller"
    assert (await api.invoice("INV-4E-3"))["stage"] == "upcoming"
    # A new request may be made after a rejection.
    anew = await api.post("/v1/invoices/INV-4E-3/write-off", {"reason": "now"}, role=Role.FINANCE)
    assert anew.status_code == 202, anew.text
