"""What finance sees of a debtor: segment, risk score and why, the playbook its invoices get,
and the overrides a collector sets (a specific playbook, or no collection until a date)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from temporalio.testing import WorkflowEnvironment

from api.auth import Role
from store.engine import transaction
from store.tables import Debtor, Dispute, Event, Invoice, Payment
from tests.api.conftest import Api, field_errors, invoice_body
from workflows.contract import SEGMENT, workflow_id

TODAY = datetime.now(UTC).date()


def stored_playbook(engine: Engine, number: str) -> tuple[str, int]:
    with transaction(engine) as session:
        invoice = session.get(Invoice, number)
        assert invoice is not None
        return invoice.playbook, invoice.playbook_version


def body_for(number: str, debtor_id: str, **debtor: Any) -> dict[str, Any]:
    body = invoice_body(number)
    body["debtor"] = {**body["debtor"], "id": debtor_id, **debtor}
    return body


async def debtor_view(api: Api, debtor_id: str, role: Role = Role.OPS) -> dict[str, Any]:
    response = await api.get(f"/v1/debtors/{debtor_id}", role=role)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def put_override(api: Api, debtor_id: str, body: Any, role: Role = Role.COLLECTOR) -> Any:
    return await api.http.put(
        f"/v1/debtors/{debtor_id}/override", json=body, headers=api.auth(role)
    )


# --- the hand-over picks the playbook ------------------------------------------------------


@pytest.mark.parametrize(
    ("debtor", "playbook"),
    [
        ({"segment": "PME"}, "pme"),
        ({"segment": "Grand compte"}, "grand_compte"),
        ({"segment": None, "annual_revenue": "900000", "headcount": 4}, "tpe"),
        ({"segment": None, "headcount": 1200}, "eti"),
        ({"segment": None}, "default"),
    ],
)
async def test_hand_over_picks_the_segment_playbook(
    api: Api, debtor: dict[str, Any], playbook: str
) -> None:
    number = f"INV-SEG-{playbook}"
    response = await api.hand_over(body_for(number, f"CUST-SEG-{playbook}", **debtor))

    assert response.status_code == 201, response.text
    assert response.json()["playbook"] == playbook
    assert response.json()["warnings"] == []
    assert stored_playbook(api.engine, number) == (playbook, 1)


async def test_size_location_and_derived_segment_are_kept_and_shown(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    debtor = {
        "segment": None,
        "annual_revenue": "1800000",
        "headcount": 7,
        "timezone": "Europe/Paris",
        "subdivision": "57",
    }
    assert (await api.hand_over(body_for("INV-SIZE-1", "CUST-SIZE", **debtor))).status_code == 201
    # A later hand-over that leaves the size out does not erase it.
    second = await api.hand_over(body_for("INV-SIZE-2", "CUST-SIZE", segment=None))
    assert second.json()["playbook"] == "tpe"

    view = await debtor_view(api, "CUST-SIZE", role=Role.BACKOFFICE)

    assert view["segment"] == {
        "value": "tpe",
        "source": "derived",
        "given": None,
        "annual_revenue": "1800000",
        "headcount": 7,
        "why": "derived from the size bands of décret 2008-1354 (7 staff and turnover 1 800 000 €)",
    }
    assert (view["timezone"], view["subdivision"]) == ("Europe/Paris", "57")
    assert view["open_invoices"] == 2
    assert view["outstanding"] == [{"amount": "2400.00", "currency": "EUR"}]
    # The workflow was told the segment it is filed under in Temporal.
    described = await dev_env.client.get_workflow_handle(workflow_id("INV-SIZE-1")).describe()
    assert described.typed_search_attributes.get(SEGMENT) == "tpe"


@pytest.mark.parametrize(
    ("change", "loc", "says"),
    [
        ({"timezone": "Mars/Olympus"}, "body.debtor.timezone", "unknown time zone"),
        ({"subdivision": "ZZ"}, "body.debtor.subdivision", "unknown subdivision 'ZZ'"),
        ({"headcount": "12"}, "body.debtor.headcount", "whole number"),
        ({"headcount": -1}, "body.debtor.headcount", "greater than or equal to 0"),
        ({"annual_revenue": 1.5e6}, "body.debtor.annual_revenue", "decimal string"),
        ({"annual_revenue": "-5"}, "body.debtor.annual_revenue", "cannot be negative"),
    ],
)
async def test_bad_debtor_size_or_location_is_a_422_naming_the_field(
    api: Api, change: dict[str, Any], loc: str, says: str
) -> None:
    response = await api.hand_over(body_for("INV-SIZE-BAD", "CUST-SIZE-BAD", **change))

    errors = field_errors(response)
    assert says in errors[loc], errors


# --- risk from the debtor's history --------------------------------------------------------


def _invoice(number: str, due: date, stage: str, outstanding: str) -> Invoice:
    return Invoice(
        number=number,
        debtor_id="CUST-RISKY",
        amount=Decimal("1000.00"),
        currency="EUR",
        issue_date=due - timedelta(days=30),
        due_date=due,
        fingerprint=number,
        playbook="pme",
        playbook_version=1,
        stage=stage,
        outstanding=Decimal(outstanding),
    )


def seed_history(engine: Engine) -> None:
    """Three invoices with a verdict: 30 days late, on time, and 20 days overdue so far;
    one more not yet due. One rejected dispute (and one upheld), one broken promise."""
    at = datetime.now(UTC)
    with transaction(engine) as session:
        session.add(
            Debtor(
                id="CUST-RISKY",
                name="Retard & Cie",
                email="compta@retard.example",
                country="FR",
                language="fr",
                segment="pme",
            )
        )
        session.flush()
        session.add(_invoice("INV-R1", TODAY - timedelta(days=100), "paid", "0"))
        session.add(_invoice("INV-R2", TODAY - timedelta(days=60), "paid", "0"))
        session.add(_invoice("INV-R3", TODAY - timedelta(days=20), "overdue", "1000"))
        session.add(_invoice("INV-R4", TODAY + timedelta(days=10), "upcoming", "1000"))
        session.flush()
        for number, paid_on in (("INV-R1", 70), ("INV-R2", 60)):
            session.add(
                Payment(
                    invoice_number=number,
                    reference=f"PAY-{number}",
                    amount=Decimal("1000"),
                    currency="EUR",
                    outstanding_after=Decimal(0),
                    received_on=TODAY - timedelta(days=paid_on),
                    recorded_at=at,
                )
            )
        for dispute_id, number, status in (
            ("D1", "INV-R3", "rejected"),
            ("D2", "INV-R1", "upheld"),
        ):
            session.add(
                Dispute(
                    id=dispute_id,
                    invoice_number=number,
                    reason="goods damaged",
                    status=status,
                    opened_by="back office",
                    opened_at=at,
                    deadline=at,
                )
            )
        session.add(
            Event(
                invoice_number="INV-R3",
                key="promise:P1:broken",
                kind="promise_broken",
                at=at,
                stage="promised",
                summary="Promise P1 not kept",
            )
        )


async def test_get_shows_score_and_reasons_after_some_history_and_the_next_invoice_follows(
    api: Api,
) -> None:
    seed_history(api.engine)

    view = await debtor_view(api, "CUST-RISKY")

    # Days late 30, 0, 20 → 16.7 avg → 16.7 pts; 2 of 3 late → 25 × 2/3 = 16.7; one dispute
    # not upheld → 5; one broken promise → 10; owes 2 000 € against a usual 1 000 € → ratio 2
    # → 2.5. Total 50.9 → 51: high.
    risk = view["risk"]
    assert (risk["score"], risk["band"]) == (51, "high")
    assert risk["reasons"] == [
        "average days late: 16.7 days → 16.7 of 30 points",
        "late invoices: 67% of 3 → 16.7 of 25 points",
        "disputes: 1 → 5 of 15 points",
        "broken promises: 1 → 10 of 20 points",
        "exposure: 2.0× the average invoice → 2.5 of 10 points",
        "score 51/100: high risk (low < 25 ≤ medium < 50 ≤ high)",
    ]
    assert risk["inputs"]["invoices"] == 3
    assert view["segment"]["value"] == "pme" and view["segment"]["source"] == "given"
    assert view["playbook"] == {
        "name": "pme_high",
        "why": "segment pme, high risk: playbook 'pme_high'",
        "opt_out": None,
    }
    assert view["open_invoices"] == 2
    assert view["outstanding"] == [{"amount": "2000.00", "currency": "EUR"}]

    response = await api.hand_over(body_for("INV-R5", "CUST-RISKY", segment="PME"))

    assert response.status_code == 201, response.text
    assert stored_playbook(api.engine, "INV-R5") == ("pme_high", 1)


async def test_unknown_debtor_is_a_404(api: Api) -> None:
    for response in [
        await api.get("/v1/debtors/NOPE"),
        await put_override(api, "NOPE", {"playbook": "eti"}),
        await api.http.delete("/v1/debtors/NOPE/override", headers=api.auth(Role.COLLECTOR)),
    ]:
        assert response.status_code == 404, response.text
        assert "debtor NOPE is unknown" in response.json()["detail"]


# --- overrides -----------------------------------------------------------------------------


async def test_override_is_validated_and_only_collectors_and_admins_set_it(api: Api) -> None:
    assert (await api.hand_over(body_for("INV-OVR-V", "CUST-OVR-V"))).status_code == 201
    tomorrow = (TODAY + timedelta(days=1)).isoformat()

    for role in (Role.BACKOFFICE, Role.OPS):
        response = await put_override(api, "CUST-OVR-V", {"playbook": "eti"}, role=role)
        assert response.status_code == 403, response.text

    unknown = await put_override(api, "CUST-OVR-V", {"playbook": "vip"})
    assert unknown.status_code == 422
    assert "no playbook named 'vip' (available: default, eti" in unknown.json()["detail"]

    past = await put_override(
        api, "CUST-OVR-V", {"opt_out_reason": "talks", "opt_out_until": TODAY.isoformat()}
    )
    assert past.status_code == 422
    assert "opt_out_until must be a day after today" in past.json()["detail"]

    for body in (
        {"opt_out_reason": "talks"},
        {"opt_out_until": tomorrow},
        {"opt_out_reason": "", "opt_out_until": tomorrow},
        {},
        {"playbook": "eti", "extra": 1},
    ):
        response = await put_override(api, "CUST-OVR-V", body)
        assert response.status_code == 422, (body, response.text)

    # Nothing was stored by the refusals.
    assert (await debtor_view(api, "CUST-OVR-V"))["override"] is None


async def test_override_playbook_then_opt_out_then_removal(api: Api) -> None:
    assert (await api.hand_over(body_for("INV-OVR-1", "CUST-OVR"))).status_code == 201

    # A finance decision: this PME is handled like a key account.
    response = await put_override(api, "CUST-OVR", {"playbook": "grand_compte"})
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["playbook"]["name"] == "grand_compte"
    assert view["playbook"]["why"] == "per-debtor override: playbook 'grand_compte'"
    assert view["override"]["set_by"] == "collector-tester"
    assert view["override"]["opt_out_active"] is False

    second = await api.hand_over(body_for("INV-OVR-2", "CUST-OVR"))
    assert second.json()["playbook"] == "grand_compte"
    assert stored_playbook(api.engine, "INV-OVR-2")[0] == "grand_compte"
    # The invoice already running keeps its playbook.
    assert stored_playbook(api.engine, "INV-OVR-1")[0] == "pme"

    # Then an opt-out (replacing the whole override): no collection for a month.
    until = (TODAY + timedelta(days=30)).isoformat()
    response = await put_override(
        api,
        "CUST-OVR",
        {"opt_out_reason": "renegotiating the contract", "opt_out_until": until},
        role=Role.ADMIN,
    )
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["override"]["playbook"] is None
    assert view["override"]["opt_out_active"] is True
    assert view["playbook"]["name"] == "pme"
    assert view["playbook"]["opt_out"].startswith(
        f"the debtor is opted out of collection until {until} (renegotiating the contract"
    )

    # The invoice is still recorded and started; the back office is told of the opt-out.
    third = await api.hand_over(body_for("INV-OVR-3", "CUST-OVR"))
    assert third.status_code == 201, third.text
    [warning] = third.json()["warnings"]
    assert f"opted out of collection until {until}" in warning
    # A replay of it says so too.
    assert (await api.hand_over(body_for("INV-OVR-3", "CUST-OVR"))).json()["warnings"] == [warning]

    delete = await api.http.delete(
        "/v1/debtors/CUST-OVR/override", headers=api.auth(Role.COLLECTOR)
    )
    assert delete.status_code == 204
    again = await api.http.delete("/v1/debtors/CUST-OVR/override", headers=api.auth(Role.COLLECTOR))
    assert again.status_code == 204  # idempotent
    view = await debtor_view(api, "CUST-OVR")
    assert view["override"] is None
    assert view["playbook"]["opt_out"] is None
    assert (await api.hand_over(body_for("INV-OVR-4", "CUST-OVR"))).json()["warnings"] == []
