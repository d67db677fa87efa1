"""The debtor portal through the API app, against a real worker on the Temporal dev server and
the real `stripe` client pointed at a loopback fake of Stripe's API."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.auth import Role
from config import Settings
from domain.portal import LINK_PATH, personal_link
from store.engine import transaction
from store.tables import Debtor, Event, Payment, Task
from tests.api.conftest import Api, eventually, invoice_body, serve
from tests.fakes.stripe_api import FakeStripe, sign
from tests.stored import add_invoice

SECRET = "portal-secret-for-tests-0123456789abcdef"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture(scope="module")
def stripe_fake() -> Iterator[FakeStripe]:
    with FakeStripe() as fake:
        yield fake


@pytest.fixture
def settings(settings: Settings, stripe_fake: FakeStripe) -> Settings:
    return settings.model_copy(
        update={
            "portal_secret": SecretStr(SECRET),
            "public_url": "http://relance.test",
            "stripe_api_key": SecretStr(stripe_fake.api_key),
            "stripe_webhook_secret": SecretStr(stripe_fake.webhook_secret),
            "stripe_api_base": stripe_fake.url,
        }
    )


def late_invoice(number: str, debtor: str, amount: str = "1200.00") -> dict[str, Any]:
    today = date.today()
    body = invoice_body(
        number,
        amount=amount,
        issue_date=(today - timedelta(days=80)).isoformat(),
        due_date=(today - timedelta(days=50)).isoformat(),
    )
    body["debtor"]["id"] = debtor
    return body


def link(debtor: str, version: int = 0, now: datetime | None = None) -> str:
    return personal_link("http://relance.test", SECRET, debtor, version, now=now)


async def open_page(api: Api, url: str) -> httpx.Response:
    """Follow a personal link as a browser does: the cookie it sets, then the page."""
    api.http.cookies.clear()
    first = await api.http.get(url.removeprefix("http://relance.test"))
    if first.status_code != 303:
        return first
    assert first.headers["location"] == "/portal"
    return await api.http.get("/portal")


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found, "the page has no form"
    return found.group(1)


async def handed_over(api: Api, *bodies: dict[str, Any]) -> None:
    for body in bodies:
        response = await api.hand_over(body)
        assert response.status_code == 201, response.text


# ------------------------------------------------------------------ links


async def test_only_a_valid_current_link_opens_the_debtors_own_page(api: Api) -> None:
    await handed_over(api, late_invoice("PL-A1", "DEB-A"), late_invoice("PL-B1", "DEB-B"))

    page = await open_page(api, link("DEB-A"))
    assert page.status_code == 200
    assert "PL-A1" in page.text and "PL-B1" not in page.text
    # What the debtor owes today, with the late-payment statement the playbook claims.
    assert "1\u202f200,00\xa0€" in page.text
    # The fixed recovery indemnity: 40 € per late invoice (Code de commerce D441-5).
    assert "Indemnité forfaitaire" in page.text and "40,00\xa0€" in page.text
    assert "RF" in page.text  # a structured reference for transfers

    other = await open_page(api, link("DEB-B"))
    assert "PL-B1" in other.text and "PL-A1" not in other.text

    # Expired (issued 61 days ago, links last 60), altered, guessed, unknown debtor: one answer.
    expired = await open_page(api, link("DEB-A", now=datetime.now(UTC) - timedelta(days=61)))
    token = link("DEB-A").rsplit("/", 1)[1]
    altered = await open_page(api, LINK_PATH + token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
    guessed = await open_page(api, LINK_PATH + "eyJkIjoiREVCLUEiLCJ2IjowfQ.Zz9.abc")
    nobody = await open_page(api, link("DEB-NOBODY"))
    answers = {(r.status_code, r.text) for r in (expired, altered, guessed, nobody)}
    assert len(answers) == 1
    status, text = answers.pop()
    assert status == 404 and "PL-A1" not in text

    # Revoked: an admin rotates the debtor's key; the old link then gets the same answer.
    old = link("DEB-A")
    refused = await api.post("/v1/debtors/DEB-A/portal/rotate", {}, role=Role.BACKOFFICE)
    assert refused.status_code == 403
    rotated = await api.post("/v1/debtors/DEB-A/portal/rotate", {}, role=Role.ADMIN)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["version"] == 1
    revoked = await open_page(api, old)
    assert (revoked.status_code, revoked.text) == (404, text)
    fresh = await open_page(api, rotated.json()["link"])
    assert fresh.status_code == 200 and "PL-A1" in fresh.text


async def test_the_page_is_locked_down_and_the_token_stays_out_of_logs(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    await handed_over(api, late_invoice("PL-H1", "DEB-H"))
    url = link("DEB-H")
    token = url.rsplit("/", 1)[1]
    # A server started earlier in this process may have set uvicorn's loggers' level or turned
    # their propagation off: as `relance api` runs them, they log at INFO and propagate.
    access = logging.getLogger("uvicorn.access")
    access.propagate, access.disabled = True, False
    access.setLevel(logging.INFO)
    with caplog.at_level(logging.DEBUG):
        first = await api.http.get(url.removeprefix("http://relance.test"))
        page = await api.http.get("/portal")
        # Uvicorn's access log line for the link, as uvicorn formats it.
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"{LINK_PATH}{token}", "1.1", 303
        )
    assert first.status_code == 303
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/portal" in cookie
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src" not in csp
    assert "'unsafe-inline'" not in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script" not in page.text and "style=" not in page.text
    server_side = [r for r in caplog.records if r.name.startswith(("relance", "uvicorn"))]
    assert server_side, "the access log line was captured"
    assert all(token not in r.getMessage() for r in server_side)
    assert any(f"{LINK_PATH}[token]" in r.getMessage() for r in server_side)


async def test_forms_need_the_csrf_token_and_the_debtors_own_invoice(api: Api) -> None:
    await handed_over(api, late_invoice("PL-C1", "DEB-C"), late_invoice("PL-C2", "DEB-C2"))
    page = await open_page(api, link("DEB-C"))
    csrf = csrf_of(page)
    today = date.today().isoformat()
    url = "/portal/invoices/PL-C1/promise"
    forged = await api.http.post(url, data={"csrf": "0" * 64, "until": today})
    assert forged.status_code == 403

    # Another debtor's invoice is not on this page, whatever the form says.
    theirs = await api.http.post(
        "/portal/invoices/PL-C2/promise", data={"csrf": csrf, "until": today}
    )
    assert theirs.status_code == 404 and "PL-C2 is not on this page" in theirs.text

    too_far = (date.today() + timedelta(days=31)).isoformat()
    late = await api.http.post(
        "/portal/invoices/PL-C1/promise", data={"csrf": csrf, "until": too_far}
    )
    assert late.status_code == 422 and "up to" in late.text

    # Within the playbook's limit: the same promise a collector records; escalation waits.
    soon = (date.today() + timedelta(days=10)).isoformat()
    kept = await api.http.post(url, data={"csrf": csrf, "until": soon})
    assert kept.status_code == 303 and kept.headers["location"] == "/portal?done=promise"
    assert (await api.invoice("PL-C1"))["stage"] == "promised"
    history = (await api.get("/v1/invoices/PL-C1/history")).json()
    assert any(
        e["kind"] == "promise_recorded" and f"by {soon} recorded by debtor (portal)" in e["summary"]
        for e in history
    ), history


# ------------------------------------------------------------------ paying


async def checkout_for(api: Api, stripe_fake: FakeStripe, debtor: str, *numbers: str) -> str:
    page = await open_page(api, link(debtor))
    assert 'id="pay"' in page.text
    response = await api.http.post(
        "/portal/pay", data={"csrf": csrf_of(page), "invoices": list(numbers)}
    )
    assert response.status_code == 200, response.text
    found = re.search(r'href="([^"]+/c/pay/(cs_test_[0-9a-f]+))"', response.text)
    assert found, response.text
    assert found.group(2) in stripe_fake.sessions
    return found.group(2)


def payments(api: Api, number: str) -> list[Payment]:
    with Session(api.engine) as session:
        return list(session.exec(select(Payment).where(Payment.invoice_number == number)).all())


async def test_a_paid_checkout_pays_each_invoice_once_however_often_reported(
    api: Api, stripe_fake: FakeStripe
) -> None:
    await handed_over(
        api, late_invoice("PL-P1", "DEB-P"), late_invoice("PL-P2", "DEB-P", amount="300.50")
    )
    session_id = await checkout_for(api, stripe_fake, "DEB-P", "PL-P1", "PL-P2")
    session = stripe_fake.sessions[session_id]
    assert session["amount_total"] == 150050  # 1200.00 + 300.50, in cents
    assert session["currency"] == "eur"

    delivery = stripe_fake.complete(session_id)
    first = await api.http.post(
        "/v1/webhooks/stripe", content=delivery.payload, headers=delivery.headers
    )
    assert first.status_code == 200, first.text
    assert sorted(first.json()["recorded"]) == ["PL-P1", "PL-P2"]
    assert (await api.invoice("PL-P1"))["stage"] == "paid"
    assert (await api.invoice("PL-P2"))["stage"] == "paid"

    # The same event again (Stripe retries), and another event about the same session.
    again = await api.http.post(
        "/v1/webhooks/stripe", content=delivery.payload, headers=delivery.headers
    )
    assert again.status_code == 200 and again.json()["recorded"] == []
    other = stripe_fake.complete(session_id)
    third = await api.http.post("/v1/webhooks/stripe", content=other.payload, headers=other.headers)
    assert third.status_code == 200
    for number, amount in (("PL-P1", "1200.00"), ("PL-P2", "300.50")):
        rows = payments(api, number)
        assert [(r.reference, r.amount) for r in rows] == [
            (f"stripe:{session_id}", Decimal(amount))
        ]

    # The thank-you goes out (the next business day, when the debtor already had a message
    # today: one message a day), and the page shows the invoices settled.
    async def thanked() -> bool:
        if any("PL-P1" in p.read_text() for p in api.outbox.glob("*thank*")):
            return True
        with Session(api.engine) as session:
            keys = session.exec(select(Event.key).where(Event.invoice_number == "PL-P1")).all()
        return any(key.startswith("deferred:PL-P1:thank_you") for key in keys)

    page = await open_page(api, link("DEB-P"))
    assert 'id="settled-PL-P1"' in page.text
    await eventually(thanked, within=30, what="the thank-you")


async def test_a_file_with_the_legal_partner_is_still_due_and_payable_only(
    api: Api, stripe_fake: FakeStripe
) -> None:
    # Two invoices handed off to the legal partner (as the read model holds them): PL-J1 still
    # open, 700 € of 900 € left, the partner's reference reported; PL-J2's file was abandoned
    # by the partner, which closed it.
    today = date.today()
    issued, due = today - timedelta(days=120), today - timedelta(days=90)
    for number, amount, outstanding in (("PL-J1", "900.00", "700.00"), ("PL-J2", "400.00", "")):
        add_invoice(
            api.engine, number, amount=amount, outstanding=outstanding or amount,
            stage="handed_off", debtor_id="DEB-J", new_debtor=number == "PL-J1",
            issue_date=issued, due_date=due,
        )  # fmt: skip
    now = datetime.now(UTC)
    with transaction(api.engine) as session:
        reported: dict[str, object] = {"status": "filed", "partner_reference": "CAB-77"}
        session.add(
            Event(invoice_number="PL-J1", key="legal:9", kind="legal_updated", at=now,
                  stage="handed_off", summary="Legal file CAB-77: filed", detail=reported)
        )  # fmt: skip
        session.add(
            Event(invoice_number="PL-J2", key="closed", kind="closed", at=now,
                  stage="handed_off", summary="Collection ended: handed_off, legal file abandoned")
        )  # fmt: skip

    page = await open_page(api, link("DEB-J"))
    invoices = page.text.split('id="invoices"')[1].split('id="transfer"')[0]
    # Still due, at the legal stage, with the partner's reference; ticked for payment.
    assert 'id="invoice-PL-J1"' in invoices and "PL-J2" not in invoices
    assert "transmise à notre partenaire juridique" in invoices
    assert "700,00 €" in invoices
    notice = invoices.split('id="legal-PL-J1"')[1].split("</p>")[0]
    assert "partenaire juridique (référence CAB-77)" in notice
    assert 'name="invoices" value="PL-J1"' in invoices
    # No plan, promise or complaint of one's own: those go through the partner.
    assert 'id="actions-PL-J1"' not in page.text
    # The abandoned file is closed: listed apart, not payable.
    assert 'id="settled-PL-J2"' in page.text

    csrf = csrf_of(page)
    first = (today + timedelta(days=5)).isoformat()
    plan = await api.http.post(
        "/portal/invoices/PL-J1/plan", data={"csrf": csrf, "count": "2", "first": first}
    )
    assert plan.status_code == 409 and "legal partner" in plan.text
    promised = await api.http.post(
        "/portal/invoices/PL-J1/promise", data={"csrf": csrf, "until": first}
    )
    assert promised.status_code == 409 and "legal partner" in promised.text
    closed = await api.http.post("/portal/pay", data={"csrf": csrf, "invoices": ["PL-J2"]})
    assert closed.status_code == 409 and "already closed" in closed.text

    session_id = await checkout_for(api, stripe_fake, "DEB-J", "PL-J1")
    assert stripe_fake.sessions[session_id]["amount_total"] == 70000  # 700.00 €, in cents


async def test_a_forged_or_stale_stripe_signature_is_refused(
    api: Api, stripe_fake: FakeStripe
) -> None:
    await handed_over(api, late_invoice("PL-F1", "DEB-F"))
    session_id = await checkout_for(api, stripe_fake, "DEB-F", "PL-F1")
    delivery = stripe_fake.complete(session_id)

    forged = sign(delivery.payload, "whsec_someone_else")
    stale = sign(
        delivery.payload,
        stripe_fake.webhook_secret,
        timestamp=int(datetime.now(UTC).timestamp()) - 3600,
    )
    for header in (forged, stale, ""):
        response = await api.http.post(
            "/v1/webhooks/stripe",
            content=delivery.payload,
            headers={"Content-Type": "application/json", "Stripe-Signature": header},
        )
        assert response.status_code == 403, response.text
    assert payments(api, "PL-F1") == []
    assert (await api.invoice("PL-F1"))["stage"] != "paid"


async def test_without_provider_settings_there_is_no_pay_button(
    api: Api, settings: Settings, dev_env: WorkflowEnvironment
) -> None:
    await handed_over(api, late_invoice("PL-N1", "DEB-N"))
    plain = settings.model_copy(update={"stripe_api_key": None, "stripe_webhook_secret": None})
    app = create_app(plain, client=dev_env.client, engine=api.engine)
    async with serve(app) as http:
        without = Api(http=http, engine=api.engine, settings=plain, outbox=api.outbox)
        page = await open_page(without, link("DEB-N"))
        webhook = await http.post("/v1/webhooks/stripe", content=b"{}")
    assert page.status_code == 200 and "PL-N1" in page.text
    assert 'id="pay"' not in page.text and "/portal/pay" not in page.text
    # Bank transfer details with the structured reference remain.
    assert "FR76 3000 6000 0112 3456 7890 189" in page.text
    assert webhook.status_code == 503


# ------------------------------------------------------------------ disputes, contact, data


async def test_attachments_are_bounded_and_typed_by_content(api: Api, settings: Settings) -> None:
    await handed_over(api, late_invoice("PL-D1", "DEB-D"))
    page = await open_page(api, link("DEB-D"))
    csrf = csrf_of(page)
    url = "/portal/invoices/PL-D1/dispute"
    fields = {"csrf": csrf, "reason": "defective", "details": "broken on arrival"}

    # A text file named like a PDF is not a PDF.
    fake_pdf = await api.http.post(
        url, data=fields, files={"attachment": ("invoice.pdf", b"just text", "application/pdf")}
    )
    assert fake_pdf.status_code == 415 and "PDF, PNG and JPEG" in fake_pdf.text
    big = PDF + b"0" * settings.portal_upload_max_bytes
    too_big = await api.http.post(
        url, data=fields, files={"attachment": ("a.pdf", big, "application/pdf")}
    )
    assert too_big.status_code == 413
    assert too_big.headers["x-frame-options"] == "DENY"
    # Nothing was opened by the refused attempts.
    assert (await api.invoice("PL-D1"))["stage"] != "disputed"

    ok = await api.http.post(url, data=fields, files={"attachment": ("scan.bin", PDF, "x/y")})
    assert ok.status_code == 303, ok.text
    ref = ok.headers["location"].rsplit("ref=", 1)[1]
    stored = list(settings.resolved_portal_upload_dir.iterdir())
    assert [p.read_bytes() for p in stored] == [PDF]
    assert stored[0].suffix == ""  # an opaque name, never the debtor's
    history = (await api.get("/v1/invoices/PL-D1/history")).json()
    assert any(
        e["kind"] == "dispute_opened" and "debtor (portal)" in e["summary"] and ref in e["summary"]
        for e in history
    )


async def test_a_corrected_email_clears_the_bounce_and_a_data_request_reaches_ops(
    api: Api,
) -> None:
    await handed_over(api, late_invoice("PL-E1", "DEB-E"))
    with transaction(api.engine) as session:
        debtor = session.get(Debtor, "DEB-E")
        assert debtor is not None
        debtor.email_invalid_at = datetime.now(UTC)
        session.add(debtor)
    page = await open_page(api, link("DEB-E"))
    csrf = csrf_of(page)

    bad = await api.http.post("/portal/contact", data={"csrf": csrf, "email": "not an address"})
    assert bad.status_code == 422 and "email" in bad.text
    done = await api.http.post("/portal/contact", data={"csrf": csrf, "email": "ap@dupont.example"})
    assert done.status_code == 303
    with Session(api.engine) as session:
        debtor = session.get(Debtor, "DEB-E")
        assert debtor is not None
        assert (debtor.email, debtor.email_invalid_at) == ("ap@dupont.example", None)

    # The invoice's workflow is told, and its history says who corrected it.
    async def recorded() -> list[Event] | None:
        with Session(api.engine) as session:
            events = session.exec(select(Event).where(Event.invoice_number == "PL-E1")).all()
        found = [e for e in events if e.kind == "contact_corrected"]
        return found or None

    corrected = await eventually(recorded, what="the correction in the invoice's history")
    assert "debtor (portal)" in corrected[0].summary
    assert "ap@dupont.example" not in corrected[0].summary  # no address in the timeline

    asked = await api.http.post(
        "/portal/data-request", data={"csrf": csrf, "kind": "access", "message": "copy please"}
    )
    assert asked.status_code == 303
    tasks = (await api.get("/v1/tasks?invoice=PL-E1", role=Role.OPS)).json()
    data_tasks = [t for t in tasks if t["kind"] == "data_request"]
    assert len(data_tasks) == 1 and "access" in data_tasks[0]["title"]
    with Session(api.engine) as session:
        task = session.get(Task, data_tasks[0]["id"])
        assert task is not None and task.notes == "copy please"


async def test_a_plan_within_the_limits_is_active_at_once_and_the_debtor_told(api: Api) -> None:
    await handed_over(api, late_invoice("PL-L1", "DEB-L"))
    page = await open_page(api, link("DEB-L"))
    csrf = csrf_of(page)
    url = "/portal/invoices/PL-L1/plan"
    first = (date.today() + timedelta(days=5)).isoformat()

    # The default playbook lets a debtor propose up to 12 installments.
    too_many = await api.http.post(url, data={"csrf": csrf, "count": "13", "first": first})
    assert too_many.status_code == 422 and "at most 12 installments" in too_many.text

    # 3 x 400 € is under the four-eyes limits (5 000 €, 6 installments): active at once.
    done = await api.http.post(url, data={"csrf": csrf, "count": "3", "first": first})
    assert done.status_code == 303, done.text
    assert "done=plan_active" in done.headers["location"]
    plan_id = done.headers["location"].rsplit("ref=", 1)[1]
    plans = (await api.get("/v1/invoices/PL-L1/payment-plan", role=Role.COLLECTOR)).json()
    active = [p for p in plans if p["id"] == plan_id]
    assert active and active[0]["status"] == "active"
    assert [i["amount"]["amount"] for i in active[0]["installments"]] == ["400.00"] * 3

    async def told() -> bool:
        return any(plan_id in str(m) for m in api.outbox.glob("*.eml") if "plan_outcome" in m.name)

    await eventually(told, within=30, what="the plan's confirmation")


async def test_requests_are_rate_limited_per_link(
    api: Api, settings: Settings, dev_env: WorkflowEnvironment
) -> None:
    await handed_over(api, late_invoice("PL-R1", "DEB-R"))
    strict = settings.model_copy(update={"portal_rate_per_token": 3})
    app = create_app(strict, client=dev_env.client, engine=api.engine)
    async with serve(app) as http:
        limited = Api(http=http, engine=api.engine, settings=strict, outbox=api.outbox)
        first = await open_page(limited, link("DEB-R"))  # the link, then the page: 2 hits
        assert first.status_code == 200
        assert (await http.get("/portal")).status_code == 200
        refused = await http.get("/portal")
        assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
        assert "PL-R1" not in refused.text
        # Another debtor's link, from the same address, is counted apart.
        assert (await open_page(limited, link("DEB-A-OTHER"))).status_code == 404
