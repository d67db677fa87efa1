"""Personal data of a debtor's contact: export, restriction, erasure when retention ends, and
never a name or an address in the logs of the API or the worker."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from api.auth import Role
from api.services.privacy import erase_expired
from store.tables import Debtor, Dispute, Invoice, PrivacyAudit
from tests.api.conftest import Api, eventually, invoice_body

NAME = "Marchetti-Vasseur Rénovation SARL"
CONTACT = "Héloïse Marchetti"
EMAIL = "heloise.marchetti@marchetti-vasseur.example"
SEEDED = (NAME, CONTACT, EMAIL, "Marchetti", "heloise")


def _body(number: str) -> dict[str, object]:
    body = invoice_body(number)
    body["debtor"] = {**body["debtor"], "id": "CUST-GDPR", "name": NAME, "email": EMAIL}
    return body


async def test_a_lifecycle_logs_no_personal_data_and_ends_pseudonymised(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert (await api.hand_over(_body("INV-GDPR-1"))).status_code == 201
    opened = await api.post(
        "/v1/invoices/INV-GDPR-1/disputes",
        {"reason": f"{CONTACT} says the goods arrived damaged"},
        role=Role.COLLECTOR,
    )
    assert opened.status_code == 201, opened.text
    dispute_id = opened.json()["dispute_id"]
    resolved = await api.post(
        f"/v1/invoices/INV-GDPR-1/disputes/{dispute_id}/resolution",
        {"outcome": "rejected", "comment": f"{CONTACT} signed the delivery note"},
        role=Role.COLLECTOR,
    )
    assert resolved.status_code == 200, resolved.text
    paid = await api.post(
        "/v1/invoices/INV-GDPR-1/payments",
        {"reference": "VIR-GDPR", "amount": "1200.00", "currency": "EUR"},
    )
    assert paid.status_code == 200, paid.text
    # The thank-you message goes out through the worker: its logs count too.
    await eventually(
        lambda: _async(list(api.outbox.glob("*.eml")) if api.outbox.exists() else None),
        what="the thank-you message",
    )

    # Export: everything held, including the dispute that names the contact.
    export = await api.get("/v1/debtors/CUST-GDPR/personal-data", role=Role.ADMIN)
    assert export.status_code == 200, export.text
    data = export.json()
    assert data["contact"]["name"] == NAME
    assert data["contact"]["email"] == EMAIL
    assert [i["number"] for i in data["invoices"]] == ["INV-GDPR-1"]
    assert any(m["step_id"] == "thank_you" for m in data["messages"])
    assert any(CONTACT in n["text"] for n in data["notes"] if n["kind"] == "dispute")
    assert [a["action"] for a in data["audit"]] == ["exported"]
    assert data["audit"][0]["by"] == "admin-tester"
    refused = await api.get("/v1/debtors/CUST-GDPR/personal-data", role=Role.OPS)
    assert refused.status_code == 403

    # A legal claim runs: restricted, the contact data outlives its retention.
    restricted = await api.post(
        "/v1/debtors/CUST-GDPR/restriction",
        {"reason": "injonction de payer pending"},
        role=Role.COLLECTOR,
    )
    assert restricted.status_code == 200, restricted.text
    assert restricted.json()["set_by"] == "collector-tester"
    years_later = datetime.now(UTC) + timedelta(days=6 * 365)
    report = erase_expired(api.engine, api.settings, now=years_later)
    assert "CUST-GDPR" not in report.erased
    erase_expired(api.engine, api.settings, now=years_later)  # refused once on the trail
    with Session(api.engine) as session:
        assert session.get(Debtor, "CUST-GDPR").name == NAME  # type: ignore[union-attr]

    # Within the retention period nothing goes either.
    lifted = await api.http.delete(
        "/v1/debtors/CUST-GDPR/restriction", headers=api.auth(Role.ADMIN)
    )
    assert lifted.status_code == 204
    soon = erase_expired(api.engine, api.settings, now=datetime.now(UTC) + timedelta(days=30))
    assert "CUST-GDPR" not in soon.erased

    report = erase_expired(api.engine, api.settings, now=years_later)

    assert "CUST-GDPR" in report.erased
    with Session(api.engine) as session:
        debtor = session.get(Debtor, "CUST-GDPR")
        assert debtor is not None and debtor.erased_at is not None
        assert NAME not in debtor.name and debtor.email != EMAIL
        dispute = session.exec(select(Dispute).where(Dispute.id == dispute_id)).one()
        assert CONTACT not in dispute.reason
        # Amounts and ids stay: the accounts still add up.
        invoice = session.get(Invoice, "INV-GDPR-1")
        assert invoice is not None and str(invoice.amount) == "1200.0000"
        actions = [a.action for a in session.exec(select(PrivacyAudit)).all()]
    assert actions == [
        "exported",
        "restricted",
        "erasure_refused",
        "restriction_lifted",
        "erased",
    ]
    after = (await api.get("/v1/debtors/CUST-GDPR/personal-data", role=Role.ADMIN)).json()
    assert not any(seed in str(after) for seed in (NAME, CONTACT, EMAIL))

    logged = caplog.text
    assert logged, "the loggers captured nothing: the test would prove nothing"
    for seed in SEEDED:
        assert seed.casefold() not in logged.casefold(), f"{seed!r} appears in the logs"


async def _async(value: object) -> object:
    return value


async def test_erasure_waits_while_an_invoice_is_collected(api: Api) -> None:
    assert (await api.hand_over(_body("INV-GDPR-2"))).status_code == 201

    report = erase_expired(
        api.engine, api.settings, now=datetime.now(UTC) + timedelta(days=10 * 365)
    )

    assert "CUST-GDPR" not in report.erased
    [verdict] = [v for v in report.kept if v.debtor_id == "CUST-GDPR"]
    assert verdict.why == "an invoice is still being collected"
    unknown = await api.get("/v1/debtors/NOPE/personal-data", role=Role.ADMIN)
    assert unknown.status_code == 404
