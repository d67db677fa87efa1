"""What a credit controller does after the amicable stages, through the API: record how the
mediation ended, then the legal partner's progress, and still take a payment after the hand-off.

Days last one second here, and invoices are handed over 50 days late: the workflow catches up
at once and asks for the mediation approval within seconds.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from api.auth import Role
from tests.api.conftest import Api, eventually, field_errors, problem
from tests.api.test_approvals import decide, late_invoice, pending_approval

TODAY = date.today()


@pytest.fixture
def day_seconds() -> float:
    return 1.0


def mediation(outcome: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "outcome": outcome,
        "mediator_reference": "MED-2026-0117",
        "started_on": (TODAY - timedelta(days=3)).isoformat(),
        "ended_on": TODAY.isoformat(),
        "note": "the debtor did not come to the second meeting",
    }
    body.update(changes)
    return body


async def in_mediation(api: Api, number: str) -> None:
    assert (await api.hand_over(late_invoice(number))).status_code == 201
    approval = await pending_approval(api, number)
    assert approval["target_stage"] == "mediation"
    assert (await decide(api, approval["id"], approve=True)).status_code == 200
    await stage(api, number, "mediation")


async def stage(api: Api, number: str, wanted: str) -> None:
    async def reached() -> Any:
        return (await api.invoice(number))["stage"] == wanted

    await eventually(reached, what=f"stage {wanted}")


async def test_a_failed_mediation_then_the_partner_then_a_payment(api: Api) -> None:
    number = "INV-MED-1"
    await in_mediation(api, number)

    recorded = await api.post(
        f"/v1/invoices/{number}/mediation", mediation("failure"), role=Role.COLLECTOR
    )
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["outcome"] == "failure"
    shown = (await api.invoice(number))["mediation"]
    assert shown["outcome"] == "failure"
    assert shown["mediator_reference"] == "MED-2026-0117"
    assert shown["started_on"] == (TODAY - timedelta(days=3)).isoformat()
    assert shown["ended_on"] == TODAY.isoformat()
    assert shown["recorded_by"] == "collector-tester"

    # The escalation goes on to the legal step, which asks for approval as it always does.
    approval = await pending_approval(api, number)
    assert approval["target_stage"] == "legal"
    assert (await decide(api, approval["id"], approve=True)).status_code == 200

    await stage(api, number, "handed_off")
    filed = await api.post(
        f"/v1/invoices/{number}/legal",
        {"status": "filed", "partner_reference": "CAB-88", "costs": "35.00"},
        role=Role.COLLECTOR,
    )
    assert filed.status_code == 200, filed.text
    assert filed.json()["status"]["stage"] == "handed_off"
    legal = (await api.invoice(number))["legal"]
    assert (legal["status"], legal["partner_reference"]) == ("filed", "CAB-88")
    assert legal["costs"] == {"amount": "35.00", "currency": "EUR"}

    # The debtor pays the partner; the back office reports it: the invoice ends paid.
    paid = await api.post(
        f"/v1/invoices/{number}/payments",
        {"reference": "VIR-MED-1", "currency": "EUR", "amount": "1200.00"},
    )
    assert paid.status_code in (200, 201), paid.text
    assert paid.json()["stage"] == "paid"
    assert (await api.invoice(number))["stage"] == "paid"
    # Afterwards the file is closed: the partner's progress is a conflict.
    late = await api.post(
        f"/v1/invoices/{number}/legal", {"status": "settled"}, role=Role.COLLECTOR
    )
    assert problem(late, 409)["detail"]


async def test_a_mediation_agreement_becomes_the_payment_plan(api: Api) -> None:
    number = "INV-MED-2"
    await in_mediation(api, number)
    schedule = [
        {"due_date": (TODAY + timedelta(days=30)).isoformat(), "amount": "600.00"},
        {"due_date": (TODAY + timedelta(days=60)).isoformat(), "amount": "600.00"},
    ]

    short = await api.post(
        f"/v1/invoices/{number}/mediation",
        mediation("agreement", installments=schedule[:1]),
        role=Role.COLLECTOR,
    )
    mismatch = problem(short, 422)
    assert mismatch["detail"] == "installments add up to 600.00 EUR, but 1200.00 EUR is outstanding"

    agreed = await api.post(
        f"/v1/invoices/{number}/mediation",
        mediation("agreement", installments=schedule),
        role=Role.COLLECTOR,
    )
    assert agreed.status_code == 200, agreed.text
    body = agreed.json()
    assert body["status"]["stage"] == "payment_plan"
    plans = (await api.get(f"/v1/invoices/{number}/payment-plan")).json()
    assert [(p["id"], p["status"]) for p in plans] == [(body["plan_id"], "active")]
    assert (await api.invoice(number))["mediation"]["plan_id"] == body["plan_id"]


async def test_bad_requests_are_named(api: Api) -> None:
    number = "INV-MED-3"
    assert (await api.hand_over(late_invoice(number))).status_code == 201
    url = f"/v1/invoices/{number}/mediation"

    no_schedule = await api.post(url, mediation("agreement"), role=Role.COLLECTOR)
    assert "an agreement carries the schedule it sets" in problem(no_schedule, 422)["detail"]
    backwards = mediation("failure", started_on=TODAY.isoformat(), ended_on="2026-01-01")
    assert (
        "cannot end before it started"
        in problem(await api.post(url, backwards, role=Role.COLLECTOR), 422)["detail"]
    )
    future = mediation("failure", ended_on=(TODAY + timedelta(days=2)).isoformat())
    errors = field_errors(await api.post(url, future, role=Role.COLLECTOR))
    assert "is in the future" in errors["body.ended_on"]
    unknown = await api.post(url, mediation("postponed"), role=Role.COLLECTOR)
    assert "body.outcome" in field_errors(unknown)

    # Not yet with a mediator: a conflict that says why.
    await pending_approval(api, number)
    early = await api.post(url, mediation("failure"), role=Role.COLLECTOR)
    assert "recorded once the mediator has the file" in problem(early, 409)["detail"]
    not_handed = await api.post(
        f"/v1/invoices/{number}/legal", {"status": "filed"}, role=Role.COLLECTOR
    )
    assert "once the file is handed off" in problem(not_handed, 409)["detail"]
    costs = await api.post(
        f"/v1/invoices/{number}/legal",
        {"status": "filed", "costs": "12.345"},
        role=Role.COLLECTOR,
    )
    assert "body.costs" in field_errors(costs)
    bad_status = await api.post(
        f"/v1/invoices/{number}/legal", {"status": "won"}, role=Role.COLLECTOR
    )
    assert "body.status" in field_errors(bad_status)

    # The back office does not record these; an unknown invoice is a 404.
    assert (await api.post(url, mediation("failure"))).status_code == 403
    missing = await api.post(
        "/v1/invoices/NOPE-9/mediation", mediation("failure"), role=Role.COLLECTOR
    )
    assert problem(missing, 404)["detail"] == "invoice NOPE-9 is unknown: it was never handed over"
