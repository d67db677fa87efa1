"""Texts, letters and calls through the API: contact details on hand-over, the providers'
signed callbacks, letters' outcomes, and call tasks with their script and follow-ups.

The workflow learns of a channel that does not reach the debtor through the same
`delivery_event` signal as an email bounce: the tests read it in the workflow's history.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment
from twilio.request_validator import RequestValidator

from api.auth import Role
from config import Settings
from store.engine import transaction
from store.letters import Letter, LetterStatus
from store.tables import Debtor, Event, Interaction, Task
from tests.api.conftest import Api, eventually, invoice_body
from tests.fakes.maileva_api import FakeMaileva
from workflows.client import invoice_handle

PLAYBOOK = """
name: calls
version: 1
min_gap_days: 2
notice_deadline_from: receipt
steps:
  - id: call_1
    stage: overdue
    offset_days: 3
    channels: [phone]
    template: reminder
    fallback: [letter]
  - id: formal_notice
    stage: formal_notice
    offset_days: 60
    channels: [letter]
    template: formal_notice
    tone: formal
"""
TOKEN = "twilio-auth-token"
PUBLIC = "https://relance.example"


@pytest.fixture
def day_seconds() -> float:
    return 1.0


@pytest.fixture
def maileva() -> Any:
    with FakeMaileva() as fake:
        yield fake


@pytest.fixture
def settings(tmp_path: Path, task_queue: str, day_seconds: float, maileva: FakeMaileva) -> Settings:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "calls.yaml").write_text(PLAYBOOK, encoding="utf-8")
    return Settings(
        _env_file=None,
        data_dir=tmp_path,
        task_queue=task_queue,
        day_seconds=day_seconds,
        rpc_timeout_seconds=10,
        playbooks_dir=playbooks,
        default_playbook="calls",
        public_url=PUBLIC,
        twilio_account_sid="AC" + "1" * 32,
        twilio_auth_token=TOKEN,
        twilio_from="+33700000000",
        postal_backend="maileva",
        maileva_api_base=maileva.url,
        maileva_auth_url=f"{maileva.url}/token",
        maileva_client_id=maileva.client_id,
        maileva_client_secret=maileva.client_secret,
        maileva_username=maileva.username,
        maileva_password=maileva.password,
        maileva_webhook_user="maileva",
        maileva_webhook_password="webhook-secret",
    )


def late_invoice(number: str, **debtor: Any) -> dict[str, Any]:
    today = date.today()
    body = invoice_body(
        number,
        issue_date=(today - timedelta(days=35)).isoformat(),
        due_date=(today - timedelta(days=5)).isoformat(),
    )
    del body["debtor"]["segment"]
    body["debtor"].update(
        {
            "phone": "06 12 34 56 78",
            "address_line1": "4 avenue des Tilleuls",
            "postal_code": "69003",
            "city": "Lyon",
            "address_attention": "Service comptabilité",
            **debtor,
        }
    )
    return body


async def call_task(api: Api, number: str) -> dict[str, Any]:
    assert (await api.hand_over(late_invoice(number))).status_code == 201

    async def probe() -> Any:
        response = await api.get(f"/v1/tasks?kind=call&invoice={number}", role=Role.COLLECTOR)
        assert response.status_code == 200, response.text
        return response.json()[0] if response.json() else None

    task: dict[str, Any] = await eventually(probe, what="a call task")
    return task


async def delivery_signals(
    env: WorkflowEnvironment, number: str, name: str = "delivery_event"
) -> list[dict[str, Any]]:
    """The `delivery_event` (or `name`) signals in the invoice workflow's history, decoded."""
    history = await invoice_handle(env.client, number).fetch_history()
    found = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            continue
        attributes = event.workflow_execution_signaled_event_attributes
        if attributes.signal_name == name:
            found.append(json.loads(attributes.input.payloads[0].data))
    return found


# ------------------------------------------------------------------ hand-over


async def test_hand_over_keeps_the_number_in_e164_and_a_validated_address(api: Api) -> None:
    assert (await api.hand_over(late_invoice("INV-CH-1"))).status_code == 201

    with transaction(api.engine) as session:
        debtor = session.get(Debtor, "CUST-INV-CH-1")
    assert debtor is not None and debtor.phone == "+33612345678"
    assert debtor.postal_address is not None
    assert debtor.postal_address["postal_code"] == "69003"
    assert debtor.postal_address["city"] == "LYON"


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"postal_code": "96000"}, "no French postcode"),
        ({"postal_code": "6900"}, "not a postal code of FR"),
        ({"city": None}, "missing: city"),
        ({"phone": "12"}, "phone"),
        ({"address_line1": "x" * 39}, "address_line1"),
    ],
)
async def test_a_bad_address_or_number_is_refused_naming_it(
    api: Api, changes: dict[str, Any], said: str
) -> None:
    response = await api.hand_over(late_invoice("INV-CH-2", **changes))

    assert response.status_code == 422, response.text
    assert said in response.text


# ------------------------------------------------------------------ calls


async def test_a_call_task_shows_the_number_and_a_script_and_is_assigned(api: Api) -> None:
    task = await call_task(api, "INV-CH-3")

    shown = await api.get(f"/v1/tasks/{task['id']}", role=Role.COLLECTOR)
    assert shown.status_code == 200, shown.text
    detail = shown.json()
    assert detail["phone"] == "+33 6 12 34 56 78"
    assert "INV-CH-3" in detail["script"]
    assert "1 200,00" in detail["script"].replace("\u202f", " ").replace("\xa0", " ")
    assert "Contacts précédents" in detail["script"]

    assigned = await api.http.put(
        f"/v1/tasks/{task['id']}/assignment",
        json={"assignee": "Camille"},
        headers=api.auth(Role.COLLECTOR),
    )
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["assignee"] == "Camille"


async def test_not_reached_three_times_calls_for_the_fallback(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    task = await call_task(api, "INV-CH-4")
    paris = ZoneInfo("Europe/Paris")

    for attempt in (1, 2, 3):
        task_id = "INV-CH-4:call_1:call" + ("" if attempt == 1 else f":{attempt}")
        response = await api.post(
            f"/v1/tasks/{task_id}/outcome", {"outcome": "no_answer"}, role=Role.COLLECTOR
        )
        assert response.status_code == 200, response.text
        with transaction(api.engine) as session:
            following = session.get(Task, f"INV-CH-4:call_1:call:{attempt + 1}")
        if attempt < 3:
            # Called again, the next business day, during office hours in Paris.
            assert following is not None and following.attempt == attempt + 1
            local = following.due_at.replace(tzinfo=following.due_at.tzinfo or UTC).astimezone(
                paris
            )
            assert local.weekday() < 5 and (9, 30) <= (local.hour, local.minute) < (17, 30)
        else:
            assert following is None

    assert task["id"] == "INV-CH-4:call_1:call"
    signals = await eventually(
        lambda: delivery_signals(dev_env, "INV-CH-4"), what="a delivery event"
    )
    assert [(s["channel"], s["kind"], s["step_id"]) for s in signals] == [
        ("phone", "bounce", "call_1")
    ]
    assert "not reached 3 times" in signals[0]["reason"]


async def test_a_plan_asked_on_the_phone_opens_a_proposal_task(api: Api) -> None:
    task = await call_task(api, "INV-CH-5")

    response = await api.post(
        f"/v1/tasks/{task['id']}/outcome",
        {"outcome": "plan_requested", "notes": "three monthly payments"},
        role=Role.COLLECTOR,
    )

    assert response.status_code == 200, response.text
    proposals = (
        await api.get("/v1/tasks?kind=plan_proposal&invoice=INV-CH-5", role=Role.COLLECTOR)
    ).json()
    assert len(proposals) == 1 and proposals[0]["status"] == "open"
    # The script shown is kept on the closed task, as evidence of what was said.
    with transaction(api.engine) as session:
        closed = session.get(Task, task["id"])
    assert closed is not None and closed.script and "INV-CH-5" in closed.script


async def test_a_dispute_on_the_phone_opens_a_dispute(api: Api) -> None:
    task = await call_task(api, "INV-CH-6")

    response = await api.post(
        f"/v1/tasks/{task['id']}/outcome",
        {"outcome": "dispute", "notes": "goods never delivered"},
        role=Role.COLLECTOR,
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"]["stage"] == "disputed"
    assert (await api.invoice("INV-CH-6"))["stage"] == "disputed"
    disputes = (await api.get("/v1/invoices/INV-CH-6/disputes", role=Role.COLLECTOR)).json()
    # The call's notes stay on the task, out of the workflow's history.
    assert [d["reason"] for d in disputes] == [f"disputed on the phone (call task {task['id']})"]
    assert response.json()["task"]["notes"] == "goods never delivered"


# ------------------------------------------------------------------ Twilio


def signed(params: dict[str, str], token: str = TOKEN) -> tuple[bytes, dict[str, str]]:
    url = f"{PUBLIC}/v1/webhooks/twilio"
    signature = RequestValidator(token).compute_signature(url, params)
    headers = {
        "X-Twilio-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return urlencode(params).encode(), headers


def sms_sent(api: Api, number: str, sid: str) -> None:
    with transaction(api.engine) as session:
        session.add(
            Interaction(
                idempotency_key=f"{number}:call_1:sms",
                invoice_number=number,
                step_id="call_1",
                channel="sms",
                recipient="debtor",
                template="reminder_sms",
                status="sent",
                provider="twilio",
                provider_message_id=sid,
            )
        )


async def test_an_undelivered_text_stops_texts_and_calls_for_the_fallback(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    await call_task(api, "INV-CH-7")
    sms_sent(api, "INV-CH-7", "SM" + "a" * 32)
    params = {
        "MessageSid": "SM" + "a" * 32,
        "MessageStatus": "undelivered",
        "ErrorCode": "30006",  # landline or unreachable carrier
        "To": "+33612345678",
    }
    body, headers = signed(params)

    forged_headers = signed(params, token="a guess")[1]
    forged = await api.http.post("/v1/webhooks/twilio", content=body, headers=forged_headers)
    tampered = await api.http.post(
        "/v1/webhooks/twilio", content=body.replace(b"30006", b"30001"), headers=headers
    )
    response = await api.http.post("/v1/webhooks/twilio", content=body, headers=headers)

    assert forged.status_code == 403
    assert tampered.status_code == 403
    assert response.status_code == 200 and "<Response>" in response.text
    with transaction(api.engine) as session:
        debtor = session.get(Debtor, "CUST-INV-CH-7")
        (row,) = session.exec(select(Interaction).where(Interaction.channel == "sms")).all()
    assert debtor is not None and debtor.sms_stopped_at is not None
    assert row.delivery_status == "bounce" and row.delivery_reason == "Twilio error 30006"
    signals = await eventually(
        lambda: delivery_signals(dev_env, "INV-CH-7"), what="a delivery event"
    )
    assert {(s["channel"], s["kind"]) for s in signals} == {("sms", "bounce")}


async def test_a_stop_reply_stops_texts_to_that_number(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    await call_task(api, "INV-CH-8")
    sms_sent(api, "INV-CH-8", "SM" + "b" * 32)
    body, headers = signed({"MessageSid": "SM" + "c" * 32, "From": "+33612345678", "Body": "Stop"})

    response = await api.http.post("/v1/webhooks/twilio", content=body, headers=headers)

    assert response.status_code == 200, response.text
    with transaction(api.engine) as session:
        debtor = session.get(Debtor, "CUST-INV-CH-8")
    assert debtor is not None and debtor.sms_stopped_at is not None
    signals = await eventually(
        lambda: delivery_signals(dev_env, "INV-CH-8"), what="a delivery event"
    )
    assert [(s["channel"], s["kind"], s["reason"]) for s in signals] == [
        ("sms", "dropped", "STOP reply")
    ]


# ------------------------------------------------------------------ letters


def letter_posted(api: Api, number: str, ref: str | None = None) -> str:
    key = f"{number}:formal_notice:letter"
    with transaction(api.engine) as session:
        session.add(
            Letter(
                key=key,
                invoice_number=number,
                step_id="formal_notice",
                registered=True,
                provider="maileva",
                provider_ref=ref,
                status=LetterStatus.SUBMITTED,
                tracking_number="1A00000000001",
            )
        )
    return key


async def test_a_received_notice_gives_its_deadline_from_the_receipt(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    await call_task(api, "INV-CH-9")
    key = letter_posted(api, "INV-CH-9")

    response = await api.post(
        f"/v1/letters/{key}/events",
        {"outcome": "received", "on": "2026-04-02"},
        role=Role.COLLECTOR,
    )

    assert response.status_code == 200, response.text
    recorded = response.json()
    assert recorded["letter"]["status"] == "received"
    assert recorded["letter"]["received_on"] == "2026-04-02"
    # notice_deadline_from: receipt, 8 business days (the default) in France from Thursday
    # 2 April 2026: 3 April, then Easter Monday 6 April is a public holiday (Easter Sunday is
    # 5 April; Code du travail L3133-1), then 7, 8, 9, 10, 13, 14 and 15 April: 15 April 2026.
    assert recorded["deadline"] == "2026-04-15"
    assert recorded["fallback"] is False
    # The workflow is told of the receipt, with the deadline its next step waits for.
    received = await eventually(
        lambda: delivery_signals(dev_env, "INV-CH-9", "letter_received"), what="a receipt"
    )
    assert [(r["step_id"], r["received_on"], r["deadline"]) for r in received] == [
        ("formal_notice", "2026-04-02", "2026-04-15")
    ]
    listed = (await api.get("/v1/invoices/INV-CH-9/letters")).json()
    assert [(x["key"], x["tracking_number"]) for x in listed] == [(key, "1A00000000001")]


async def test_maileva_reports_a_letter_not_claimed_and_the_fallback_follows(
    api: Api, dev_env: WorkflowEnvironment, maileva: FakeMaileva
) -> None:
    await call_task(api, "INV-CH-10")
    # A sending as Maileva holds it once posted, then La Poste's "not claimed" (N03).
    sending = {"id": "S-1", "status": "PENDING", "documents": [], "recipients": [{"id": "R-1"}]}
    maileva.sendings["S-1"] = sending
    maileva.deliver("S-1", "N03", "2026-04-20T10:00:00Z")
    key = letter_posted(api, "INV-CH-10", ref="S-1")
    notification = {
        "source": "api.maileva.com",
        "event_type": "ON_STATUS_PROCESSED",
        "resource_type": "registered_mail/v2/sendings",
        "resource_id": "S-1",
        "event_date": "2026-04-20T10:00:00Z",
    }
    good = "Basic " + base64.b64encode(b"maileva:webhook-secret").decode()
    bad = "Basic " + base64.b64encode(b"maileva:guess").decode()

    refused = await api.http.post(
        "/v1/webhooks/maileva", json=notification, headers={"Authorization": bad}
    )
    response = await api.http.post(
        "/v1/webhooks/maileva", json=notification, headers={"Authorization": good}
    )

    assert refused.status_code == 403
    assert response.status_code == 201, response.text
    with transaction(api.engine) as session:
        letter = session.get(Letter, key)
    assert letter is not None and letter.status == LetterStatus.NOT_CLAIMED
    assert letter.last_event == "N03"
    signals = await eventually(
        lambda: delivery_signals(dev_env, "INV-CH-10"), what="a delivery event"
    )
    assert [(s["channel"], s["kind"], s["reason"]) for s in signals] == [
        ("letter", "bounce", "registered letter not claimed")
    ]
    # Maileva retries a notification until it gets a 201: a replay changes nothing.
    again = await api.http.post(
        "/v1/webhooks/maileva", json=notification, headers={"Authorization": good}
    )
    assert again.status_code == 201


async def test_a_new_number_at_hand_over_uses_texts_and_calls_again(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    assert (await api.hand_over(late_invoice("INV-CH-20"))).status_code == 201
    # The back office hands over the same invoice again, with the debtor's new number.
    again = late_invoice("INV-CH-20", phone="06 98 76 54 32")
    assert (await api.hand_over(again)).status_code in (200, 201)

    corrected = await eventually(
        lambda: delivery_signals(dev_env, "INV-CH-20", "contact_corrected"), what="a correction"
    )
    assert [c["channels"] for c in corrected] == [["sms", "phone"]]
    with transaction(api.engine) as session:
        debtor = session.get(Debtor, "CUST-INV-CH-20")
    assert debtor is not None and debtor.phone == "+33698765432"


# ------------------------------------------------------------------ contact correction


async def put_contact(
    api: Api, debtor_id: str, body: dict[str, Any], role: Role = Role.COLLECTOR
) -> Any:
    return await api.http.put(f"/v1/debtors/{debtor_id}/contact", json=body, headers=api.auth(role))


def two_invoices(prefix: str) -> list[dict[str, Any]]:
    """Two open invoices of one debtor."""
    bodies = [late_invoice(f"{prefix}-1"), late_invoice(f"{prefix}-2")]
    for body in bodies:
        body["debtor"]["id"] = f"CUST-{prefix}"
    return bodies


async def test_a_collector_corrects_the_number_and_the_address_and_every_open_invoice_is_told(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    for body in two_invoices("INV-CH-30"):
        assert (await api.hand_over(body)).status_code == 201
    with transaction(api.engine) as session:
        debtor = session.get(Debtor, "CUST-INV-CH-30")
        assert debtor is not None
        # The number was wrong (a collector said so on a call).
        debtor.phone_invalid_at = debtor.updated_at
        session.add(debtor)

    response = await put_contact(
        api,
        "CUST-INV-CH-30",
        {
            "phone": "06 98 76 54 32",
            "address_line1": "18 quai Claude Bernard",
            "postal_code": "69007",
            "city": "Lyon",
            "reason": "new premises",
        },
    )

    assert response.status_code == 200, response.text
    with transaction(api.engine) as session:
        debtor = session.get(Debtor, "CUST-INV-CH-30")
    assert debtor is not None and debtor.phone == "+33698765432"
    assert debtor.phone_invalid_at is None
    assert debtor.postal_address is not None
    assert debtor.postal_address["street"] == ["18 quai Claude Bernard"]
    assert debtor.postal_address["postal_code"] == "69007"
    # The email was not part of it: unchanged.
    assert debtor.email == "compta@dupont.example"
    for number in ("INV-CH-30-1", "INV-CH-30-2"):

        async def signalled(n: str = number) -> list[dict[str, Any]]:
            return await delivery_signals(dev_env, n, "contact_corrected")

        corrected = await eventually(signalled, what="a signal")
        assert [c["channels"] for c in corrected] == [["sms", "phone", "letter"]]
        # The workflow learns which channels, never the number or the address.
        told = json.dumps(corrected)
        assert "698765432" not in told and "Claude Bernard" not in told

        async def recorded(n: str = number) -> list[Any]:
            with transaction(api.engine) as session:
                rows = session.exec(
                    select(Event).where(
                        Event.invoice_number == n, Event.kind == "contact_corrected"
                    )
                ).all()
                return [(r.summary, r.detail) for r in rows]

        ((summary, detail),) = await eventually(recorded, what="the history")
        assert summary.startswith("Contact details corrected by ")
        assert summary.endswith(": new premises")
        assert detail["by"] and detail["channels"] == "sms,phone,letter"


async def test_the_same_number_after_a_stop_is_called_but_not_texted_again(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    assert (await api.hand_over(late_invoice("INV-CH-31"))).status_code == 201
    with transaction(api.engine) as session:
        debtor = session.get(Debtor, "CUST-INV-CH-31")
        assert debtor is not None
        debtor.sms_stopped_at = debtor.updated_at
        session.add(debtor)

    # The number the debtor said STOP from, entered again (in another form), and the
    # company's new name.
    response = await put_contact(
        api, "CUST-INV-CH-31", {"phone": "+33 6 12 34 56 78", "name": "Dupont Frères SARL"}
    )

    assert response.status_code == 200, response.text
    corrected = await eventually(
        lambda: delivery_signals(dev_env, "INV-CH-31", "contact_corrected"), what="a signal"
    )
    assert [c["channels"] for c in corrected] == [["phone"]]
    with transaction(api.engine) as session:
        debtor = session.get(Debtor, "CUST-INV-CH-31")
    assert debtor is not None and debtor.sms_stopped_at is not None
    # The envelope shows the new name above the address it already had.
    assert debtor.postal_address is not None
    assert debtor.postal_address["name"] == "Dupont Frères SARL"
    assert debtor.postal_address["postal_code"] == "69003"


@pytest.mark.parametrize(
    ("body", "fields", "said"),
    [
        ({}, [""], "give at least one of email, phone, or a postal address"),
        ({"reason": "typo"}, [""], "give at least one of email, phone"),
        ({"phone": "12"}, ["phone"], "'12' is not a valid number in FR"),
        ({"email": "not an address"}, ["email"], "email"),
        (
            {"address_line1": "1 rue Neuve", "postal_code": "96000", "city": "Lyon"},
            ["postal_code"],
            "no French postcode",
        ),
        ({"address_line1": "1 rue Neuve"}, ["postal_code", "city"], "missing: postal_code, city"),
        ({"city": " "}, ["address_line1", "postal_code", "city"], "a postal address needs"),
        ({"phone": "06 12 34 56 78", "fax": "x"}, ["fax"], "fax"),
    ],
)
async def test_a_bad_correction_is_refused_naming_the_field(
    api: Api, body: dict[str, Any], fields: list[str], said: str
) -> None:
    assert (await api.hand_over(late_invoice("INV-CH-32"))).status_code == 201

    response = await put_contact(api, "CUST-INV-CH-32", body)

    assert response.status_code == 422, response.text
    problem = response.json()
    assert said in problem["detail"]
    assert [e["field"] for e in problem["errors"]] == fields
    with transaction(api.engine) as session:
        debtor = session.get(Debtor, "CUST-INV-CH-32")
    assert debtor is not None and debtor.phone == "+33612345678"
    assert debtor.postal_address is not None and debtor.postal_address["postal_code"] == "69003"


async def test_correcting_an_unknown_debtor_is_a_404(api: Api) -> None:
    response = await put_contact(api, "CUST-NOBODY", {"phone": "06 12 34 56 78"})
    assert response.status_code == 404, response.text
    assert "CUST-NOBODY" in response.json()["detail"]
