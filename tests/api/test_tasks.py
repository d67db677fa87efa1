"""The collectors' work list: call tasks opened by the workflow, and their outcomes.

The default playbook here calls the debtor three days after the due date; days last one second
and the invoice is handed over five days late, so the call task is opened within moments.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.auth import Role
from config import Settings
from store.engine import transaction
from store.tables import Task
from tests.api.conftest import Api, eventually, field_errors, invoice_body, problem

PHONE_PLAYBOOK = """
name: calls
version: 1
min_gap_days: 2
steps:
  - id: call_1
    stage: overdue
    offset_days: 3
    channels: [phone]
    template: reminder
  - id: formal_notice
    stage: formal_notice
    offset_days: 60
    template: formal_notice
    tone: formal
"""


@pytest.fixture
def day_seconds() -> float:
    return 1.0


@pytest.fixture
def settings(tmp_path: Path, task_queue: str, day_seconds: float) -> Settings:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "calls.yaml").write_text(PHONE_PLAYBOOK, encoding="utf-8")
    return Settings(
        _env_file=None,
        data_dir=tmp_path,
        task_queue=task_queue,
        day_seconds=day_seconds,
        rpc_timeout_seconds=10,
        playbooks_dir=playbooks,
        default_playbook="calls",
    )


def late_invoice(number: str) -> dict[str, Any]:
    today = date.today()
    body = invoice_body(
        number,
        issue_date=(today - timedelta(days=35)).isoformat(),
        due_date=(today - timedelta(days=5)).isoformat(),
    )
    # No segment and no size: the invoice runs the default playbook, the calling one above.
    del body["debtor"]["segment"]
    return body


async def call_task(api: Api, number: str) -> dict[str, Any]:
    assert (await api.hand_over(late_invoice(number))).status_code == 201

    async def probe() -> Any:
        response = await api.get("/v1/tasks?status=open&kind=call", role=Role.COLLECTOR)
        assert response.status_code == 200, response.text
        mine = [t for t in response.json() if t["invoice_number"] == number]
        return mine[0] if mine else None

    task: dict[str, Any] = await eventually(probe, what="a call task")
    return task


def _later(days: int) -> str:
    return (date.today() + timedelta(days=days)).isoformat()


async def test_a_promise_on_the_phone_freezes_the_escalation(api: Api) -> None:
    task = await call_task(api, "INV-TSK-1")
    assert task["id"] == "INV-TSK-1:call_1:call"
    assert task["kind"] == "call"
    assert task["status"] == "open"
    assert task["outcome"] is None
    assert (await api.invoice("INV-TSK-1"))["stage"] == "overdue"
    url = f"/v1/tasks/{task['id']}/outcome"

    response = await api.post(
        url,
        {"outcome": "promise", "notes": "will pay by transfer", "promise_date": _later(30)},
        role=Role.COLLECTOR,
    )

    assert response.status_code == 200, response.text
    closed = response.json()
    assert closed["task"]["status"] == "done"
    assert closed["task"]["outcome"] == "promise"
    assert closed["task"]["promise_date"] == _later(30)
    assert closed["task"]["notes"] == "will pay by transfer"
    assert closed["task"]["closed_by"] == "collector-tester"
    assert closed["task"]["closed_at"]
    assert closed["status"]["stage"] == "promised"
    assert (await api.invoice("INV-TSK-1"))["stage"] == "promised"
    history = (await api.get("/v1/invoices/INV-TSK-1/history")).json()
    [promise] = [e for e in history if e["kind"] == "promise_recorded"]
    assert "collector-tester" in promise["summary"]
    # The call notes stay on the task, out of the workflow's history.
    assert "transfer" not in str(history)
    # Closed once: not again; the list shows it done.
    again = await api.post(url, {"outcome": "reached"}, role=Role.COLLECTOR)
    assert again.status_code == 409
    assert "already closed by collector-tester" in again.json()["detail"]
    done = (await api.get("/v1/tasks?status=done&kind=call", role=Role.OPS)).json()
    assert task["id"] in [t["id"] for t in done]


async def test_a_promise_in_the_past_is_refused_and_the_task_stays_open(api: Api) -> None:
    task = await call_task(api, "INV-TSK-2")
    url = f"/v1/tasks/{task['id']}/outcome"

    response = await api.post(
        url, {"outcome": "promise", "promise_date": _later(-10)}, role=Role.COLLECTOR
    )

    assert response.status_code == 422, response.text
    assert "past" in response.json()["detail"]
    [row] = [
        t
        for t in (await api.get("/v1/tasks?status=open", role=Role.COLLECTOR)).json()
        if t["id"] == task["id"]
    ]
    assert row["outcome"] is None
    assert (await api.invoice("INV-TSK-2"))["stage"] == "overdue"
    # A promise needs its date, named on the field.
    missing = await api.post(url, {"outcome": "promise"}, role=Role.COLLECTOR)
    assert list(field_errors(missing)) == ["body.promise_date"]
    # The back office and ops do not close calls.
    assert (await api.post(url, {"outcome": "reached"}, role=Role.OPS)).status_code == 403
    assert (await api.post(url, {"outcome": "reached"})).status_code == 403


def _add_task(api: Api, number: str, task_id: str, due_in_hours: int) -> None:
    now = datetime.now(UTC)
    with transaction(api.engine) as session:
        session.add(
            Task(
                id=task_id,
                invoice_number=number,
                kind="call",
                title=f"Call about invoice {number}",
                due_at=now + timedelta(hours=due_in_hours),
                created_at=now,
            )
        )


async def test_the_work_list_is_sorted_by_due_time_and_filtered(api: Api) -> None:
    assert (await api.hand_over(invoice_body("INV-TSK-3"))).status_code == 201
    # Rows as the workflow's activities write them for phone steps.
    _add_task(api, "INV-TSK-3", "INV-TSK-3:later:call", due_in_hours=48)
    _add_task(api, "INV-TSK-3", "INV-TSK-3:sooner:call", due_in_hours=2)

    response = await api.get("/v1/tasks?status=open&kind=call&invoice=INV-TSK-3", role=Role.OPS)

    assert response.status_code == 200, response.text
    assert [t["id"] for t in response.json()] == ["INV-TSK-3:sooner:call", "INV-TSK-3:later:call"]
    assert (await api.get("/v1/tasks", role=Role.BACKOFFICE)).status_code == 403
    bad = await api.get("/v1/tasks?kind=email", role=Role.COLLECTOR)
    assert list(field_errors(bad)) == ["query.kind"]

    no_answer = await api.post(
        "/v1/tasks/INV-TSK-3:sooner:call/outcome",
        {"outcome": "no_answer", "notes": "voicemail"},
        role=Role.COLLECTOR,
    )

    assert no_answer.status_code == 200, no_answer.text
    assert no_answer.json()["task"]["outcome"] == "no_answer"
    assert no_answer.json()["status"] is None
    # Only a promise tells the workflow: the invoice is as it was.
    assert (await api.invoice("INV-TSK-3"))["stage"] == "upcoming"
    left = (await api.get("/v1/tasks?status=open&invoice=INV-TSK-3", role=Role.COLLECTOR)).json()
    # Not reached: called again the next business day (a task of its own), up to the limit.
    assert sorted(t["id"] for t in left) == ["INV-TSK-3:later:call", "INV-TSK-3:sooner:call:2"]
    assert "body.promise_date" in field_errors(
        await api.post(
            "/v1/tasks/INV-TSK-3:later:call/outcome",
            {"outcome": "reached", "promise_date": _later(5)},
            role=Role.COLLECTOR,
        )
    )
    unknown = await api.post("/v1/tasks/NOPE/outcome", {"outcome": "reached"}, role=Role.ADMIN)
    assert problem(unknown, 404)["detail"] == "task NOPE is unknown"
