"""What a collector sees: the approval inbox, decisions, and the invoice's timeline.

Days last one second here, and invoices are handed over 50 days late: the workflow catches up
at once (one reminder, then the formal notice, two "days" apart) and asks for the mediation
approval within seconds.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from temporalio.testing import WorkflowEnvironment

from api.auth import Role
from domain.lifecycle import ApprovalStatus, InvoiceFacts
from domain.money import Money
from domain.playbook import load_playbook_named
from store.engine import transaction
from store.tables import Approval, IdempotencyRecord
from tests.api.conftest import Api, eventually, field_errors, invoice_body, problem
from workflows.client import invoice_handle, start_invoice


@pytest.fixture
def day_seconds() -> float:
    return 1.0


def late_invoice(number: str) -> dict[str, Any]:
    today = date.today()
    return invoice_body(
        number,
        issue_date=(today - timedelta(days=80)).isoformat(),
        due_date=(today - timedelta(days=50)).isoformat(),
    )


async def pending_approval(api: Api, number: str) -> dict[str, Any]:
    async def probe() -> Any:
        response = await api.get("/v1/approvals?status=pending", role=Role.COLLECTOR)
        assert response.status_code == 200, response.text
        mine = [a for a in response.json() if a["invoice_number"] == number]
        return mine[0] if mine else None

    approval: dict[str, Any] = await eventually(probe, within=30, what="a pending approval")
    return approval


async def decide(api: Api, approval_id: str, approve: bool, comment: str = "") -> Any:
    return await api.post(
        f"/v1/approvals/{approval_id}/decision",
        {"approve": approve, "comment": comment},
        role=Role.COLLECTOR,
    )


async def test_collector_approves_the_mediation_escalation(api: Api) -> None:
    assert (await api.hand_over(late_invoice("INV-APR-1"))).status_code == 201

    approval = await pending_approval(api, "INV-APR-1")
    assert approval["step_id"] == "mediation"
    assert approval["target_stage"] == "mediation"
    assert approval["status"] == "pending"
    assert approval["requested_at"]
    assert approval["reminders_sent"] >= 0

    invoice = await api.invoice("INV-APR-1")
    assert invoice["stage"] == "formal_notice"
    assert invoice["pending_approval"]["id"] == approval["id"]
    assert invoice["next_step"]["step_id"] == "mediation"
    assert invoice["next_step"]["stage"] == "mediation"
    assert invoice["next_step"]["needs_approval"] is True
    assert approval["id"] in invoice["next_step"]["note"]

    # The back office cannot decide escalations.
    refused = await api.post(
        f"/v1/approvals/{approval['id']}/decision", {"approve": True}, role=Role.BACKOFFICE
    )
    assert refused.status_code == 403

    response = await decide(api, approval["id"], approve=True, comment="no answer to calls")

    assert response.status_code == 200, response.text
    decided = response.json()
    assert decided["approval_id"] == approval["id"]
    assert decided["approved"] is True
    assert decided["applied"] is True
    assert decided["decided_by"] == "collector-tester"
    assert decided["stage"] == "mediation"
    assert decided["outstanding"] == {"amount": "1200.00", "currency": "EUR"}

    # Deciding again is a conflict; the inbox shows who decided.
    again = await decide(api, approval["id"], approve=False)
    assert again.status_code == 409
    assert "no longer pending" in again.json()["detail"]
    approved = (await api.get("/v1/approvals?status=approved", role=Role.OPS)).json()
    [row] = [a for a in approved if a["id"] == approval["id"]]
    assert row["decided_by"] == "collector-tester"
    assert row["comment"] == "no answer to calls"
    assert (await api.invoice("INV-APR-1"))["pending_approval"] is None


async def test_rejected_escalation_stays_at_the_current_stage(api: Api) -> None:
    assert (await api.hand_over(late_invoice("INV-APR-2"))).status_code == 201
    approval = await pending_approval(api, "INV-APR-2")

    # Nobody answers: the collectors are reminded (after two "days").
    async def reminded() -> Any:
        rows = (await api.get("/v1/approvals?status=pending", role=Role.COLLECTOR)).json()
        return [a for a in rows if a["id"] == approval["id"] and a["reminders_sent"] >= 1]

    await eventually(reminded, what="an approval reminder")

    response = await decide(api, approval["id"], approve=False, comment="paying next week")

    assert response.status_code == 200, response.text
    assert response.json()["approved"] is False
    assert response.json()["stage"] == "formal_notice"
    invoice = await api.invoice("INV-APR-2")
    assert invoice["stage"] == "formal_notice"
    assert invoice["pending_approval"] is None
    [row] = (await api.get("/v1/approvals?status=rejected", role=Role.COLLECTOR)).json()
    assert row["comment"] == "paying next week"
    history = (await api.get("/v1/invoices/INV-APR-2/history")).json()
    [entry] = [e for e in history if e["kind"] == "approval_decided"]
    assert "rejected by collector-tester" in entry["summary"]
    assert entry["detail"]["comment"] == "paying next week"


async def test_unknown_approval_is_a_404_and_bad_decision_a_422(api: Api) -> None:
    response = await decide(api, "INV-NOPE:mediation:1", approve=True)
    assert problem(response, 404)["detail"] == "approval INV-NOPE:mediation:1 is unknown"

    bad = await api.post(
        "/v1/approvals/INV-NOPE:mediation:1/decision", {"approve": "maybe"}, role=Role.COLLECTOR
    )
    assert list(field_errors(bad)) == ["body.approve"]

    status = await api.get("/v1/approvals?status=sleeping", role=Role.COLLECTOR)
    assert list(field_errors(status)) == ["query.status"]


def _timeline(history: list[dict[str, Any]]) -> list[str]:
    """Events by kind, messages as `message_<status>:<step>:<recipient>`; reminders left out
    (how many depends on how fast the test decides)."""
    out = []
    for entry in history:
        if entry["kind"] == "approval_reminder":
            continue
        if entry["kind"].startswith("message_"):
            detail = entry["detail"]
            if "_approval" in detail["step_id"]:
                continue
            out.append(f"{entry['kind']}:{detail['step_id']}:{detail['recipient']}")
        else:
            out.append(entry["kind"])
    return out


async def test_history_lists_steps_messages_and_decisions_in_order(api: Api) -> None:
    assert (await api.hand_over(late_invoice("INV-APR-3"))).status_code == 201
    approval = await pending_approval(api, "INV-APR-3")
    assert (await decide(api, approval["id"], approve=True)).status_code == 200

    # The debtor's messages leave through their mailbox, just after the step that asked.
    async def complete() -> httpx.Response | None:
        response = await api.get("/v1/invoices/INV-APR-3/history", role=Role.OPS)
        timeline = _timeline(response.json())
        # Both leave together, each in its own activity: wait for the two.
        done = {"message_sent:mediation:debtor", "message_sent:mediation:mediator"} <= set(timeline)
        return response if done else None

    response = await eventually(complete, what="the mediation messages in the history")

    assert response.status_code == 200
    history = response.json()
    assert [e["at"] for e in history] == sorted(e["at"] for e in history)
    timeline = _timeline(history)
    assert [e for e in timeline if not e.startswith("message_")] == [
        "opened",
        "step_skipped",  # pre_reminder: the due date has passed
        "stage_changed",  # overdue
        "step_skipped",  # reminder_1: reminder_2 is already due
        "step_skipped",  # reminder_2: reminder_3 is already due
        "step_done",  # reminder_3
        "step_done",  # formal_notice
        "approval_requested",
        "approval_decided",
        "step_done",  # mediation, once approved
    ]
    messages = [e for e in timeline if e.startswith("message_")]
    assert messages[0] == "message_sent:reminder_3:debtor"
    # The formal notice goes by email and by registered letter, in either order.
    assert messages[1:3] == ["message_sent:formal_notice:debtor"] * 2
    # The mediator's file and the debtor's letter leave together, in either order.
    assert sorted(messages[3:]) == [
        "message_sent:mediation:debtor",
        "message_sent:mediation:mediator",
    ]
    sent = [e for e in history if e["kind"] == "message_sent"]
    assert all(e["detail"]["sent_at"] for e in sent)
    assert [e["detail"]["channel"] for e in sent].count("letter") == 1
    assert all(e["detail"]["subject"] for e in sent)
    # No personal data in the timeline: recipients are roles, not addresses.
    assert "dupont.example" not in response.text


async def test_concurrent_decisions_one_wins_the_others_are_409(api: Api) -> None:
    # Three collectors click at once: one decision is applied, the others are told it was
    # already decided (once [200, 500, 500]).
    assert (await api.hand_over(late_invoice("INV-APR-RACE"))).status_code == 201
    approval = await pending_approval(api, "INV-APR-RACE")

    responses = await asyncio.gather(
        *(decide(api, approval["id"], approve=True, comment=f"collector {i}") for i in range(3))
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 409, 409], [r.text for r in responses]
    for refused in (r for r in responses if r.status_code == 409):
        assert problem(refused, 409)["type"] in (
            "urn:relance:problem:stale-approval",
            "urn:relance:problem:conflict",
        )


async def test_a_decision_retried_after_its_answer_was_lost_gets_its_outcome(api: Api) -> None:
    # The first attempt was applied, but its answer never reached the collector (the API, the
    # worker or the server killed meanwhile: the key's record released, not completed). The retry
    # with the same key is told the decision it made, never "no longer pending".
    assert (await api.hand_over(late_invoice("INV-APR-LOST"))).status_code == 201
    approval = await pending_approval(api, "INV-APR-LOST")
    url = f"/v1/approvals/{approval['id']}/decision"
    headers = {**api.auth(Role.COLLECTOR), "Idempotency-Key": "decide-lost-1"}
    body = {"approve": True, "comment": "no answer to calls"}

    first = await api.http.post(url, json=body, headers=headers)
    assert first.status_code == 200, first.text
    forget_answers(api.engine)

    # The read model shows the decision: the retry is answered from it.
    again = await api.http.post(url, json=body, headers=headers)
    assert again.status_code == 200, again.text
    assert (again.json()["approved"], again.json()["stage"]) == (True, "mediation")
    forget_answers(api.engine)

    # The opposite decision, or the same one without the key, is told it was taken.
    other = await api.http.post(url, json={"approve": False}, headers=headers)
    assert problem(other, 409)["detail"].endswith("it was approved by collector-tester")
    late = await decide(api, approval["id"], approve=True)
    assert problem(late, 409)["detail"].endswith("it was approved by collector-tester")
    history = (await api.get("/v1/invoices/INV-APR-LOST/history")).json()
    assert len([e for e in history if e["kind"] == "approval_decided"]) == 1


async def test_a_retried_decision_after_continue_as_new_waits_for_the_record(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    # A workflow that continued as new forgets the Update ids its earlier run ran, and calls the
    # retried decision stale. Until the read model says who decided, the outcome is unknown (503,
    # retry); once it does, the retry gets its outcome.
    number = "INV-APR-CAN"
    await start_with_short_history(api, dev_env, number)
    approval = await pending_approval(api, number)
    url = f"/v1/approvals/{approval['id']}/decision"
    headers = {**api.auth(Role.COLLECTOR), "Idempotency-Key": "decide-can-1"}
    body = {"approve": True}
    handle = invoice_handle(dev_env.client, number)
    decided_in = (await handle.describe()).run_id

    first = await api.http.post(url, json=body, headers=headers)
    assert first.status_code == 200, first.text

    async def continued() -> bool:
        return (await handle.describe()).run_id != decided_in

    await eventually(continued, what="a continue-as-new")
    forget_answers(api.engine)
    with transaction(api.engine) as session:
        row = session.get(Approval, approval["id"])
        assert row is not None and row.status == ApprovalStatus.APPROVED
        decided_by = row.decided_by
        row.status, row.decided_by = ApprovalStatus.PENDING, None  # not yet caught up
        session.add(row)

    unknown = await api.http.post(url, json=body, headers=headers)
    assert problem(unknown, 503)["detail"].startswith(
        f"approval {approval['id']} is no longer pending on its invoice, and the record of who "
        "decided it is not yet written"
    )
    assert unknown.headers["Retry-After"] == "2"

    with transaction(api.engine) as session:
        row = session.get(Approval, approval["id"])
        assert row is not None
        row.status, row.decided_by = ApprovalStatus.APPROVED, decided_by
        session.add(row)
    again = await api.http.post(url, json=body, headers=headers)
    assert again.status_code == 200, again.text
    assert again.json()["approved"] is True
    assert again.json()["stage"] in ("mediation", "legal")


async def start_with_short_history(api: Api, env: WorkflowEnvironment, number: str) -> None:
    """Hand the invoice over with its workflow started first, continuing as new every few dozen
    events (the hand-over finds it running and keeps it)."""
    body = late_invoice(number)
    facts = InvoiceFacts(
        number=number,
        debtor_id=body["debtor"]["id"],
        amount=Money.of(body["amount"], body["currency"]),
        issue_date=date.fromisoformat(body["issue_date"]),
        due_date=date.fromisoformat(body["due_date"]),
    )
    await start_invoice(
        env.client,
        facts,
        load_playbook_named("default"),
        task_queue=api.settings.task_queue,
        day_seconds=api.settings.day_seconds,
        history_limit=40,
    )
    assert (await api.hand_over(body)).status_code == 201


def forget_answers(engine: Engine) -> None:
    with transaction(engine) as session:
        session.execute(delete(IdempotencyRecord))
