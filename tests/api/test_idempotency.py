"""`Idempotency-Key`: a retried request gets the first answer and creates nothing twice."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import Engine
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.email import OutboxSender
from api.app import create_app
from api.auth import Role, create_api_key
from config import Settings
from tests.api.conftest import Api, invoice_body, serve
from worker import build_worker


async def _post(
    api: Api, url: str, body: dict[str, Any], key: str | None, role: Role = Role.COLLECTOR
) -> httpx.Response:
    headers = api.auth(role)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await api.http.post(url, json=body, headers=headers)


async def test_a_retried_dispute_is_the_same_dispute(api: Api) -> None:
    assert (await api.hand_over(invoice_body("INV-IDEM-1"))).status_code == 201
    url = "/v1/invoices/INV-IDEM-1/disputes"
    key = str(uuid.uuid4())
    body = {"reason": "goods arrived damaged", "amount": "300.00"}

    first = await _post(api, url, body, key)
    # The same request again, as a client does after a timeout (keys reordered: same body).
    again = await _post(api, url, dict(reversed(body.items())), key)

    assert first.status_code == 201, first.text
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    disputes = (await api.get(f"{url}", role=Role.OPS)).json()
    assert [d["id"] for d in disputes] == [first.json()["dispute_id"]]

    # The same key for another request is refused, and says why.
    other = await _post(api, url, {"reason": "wrong quantity"}, key)
    assert other.status_code == 422, other.text
    assert key in other.json()["detail"]
    assert "already used with another body" in other.json()["detail"]
    elsewhere = await _post(api, "/v1/invoices/INV-IDEM-1/pause", {"reason": "x"}, key)
    assert elsewhere.status_code == 422
    assert "POST /v1/invoices/INV-IDEM-1/disputes" in elsewhere.json()["detail"]
    assert len((await api.get(url)).json()) == 1


async def test_without_a_key_requests_work_as_before(api: Api) -> None:
    assert (await api.hand_over(invoice_body("INV-IDEM-2"))).status_code == 201
    url = "/v1/invoices/INV-IDEM-2/disputes"

    first = await _post(api, url, {"reason": "damaged"}, None)
    second = await _post(api, url, {"reason": "damaged"}, None)

    assert first.status_code == 201, first.text
    # Not a replay: a second dispute while one is open is refused by the workflow, as before.
    assert second.status_code == 409, second.text
    assert "Idempotent-Replayed" not in second.headers


async def test_keys_belong_to_one_principal(api: Api) -> None:
    assert (await api.hand_over(invoice_body("INV-IDEM-3"))).status_code == 201
    url = "/v1/invoices/INV-IDEM-3/disputes"
    key = "shared-key-1"
    other = create_api_key(api.engine, Role.COLLECTOR, label="collector-tester")

    mine = await _post(api, url, {"reason": "customer asked"}, key)
    theirs = await api.http.post(
        url,
        json={"reason": "customer asked"},
        headers={"Authorization": f"Bearer {other}", "Idempotency-Key": key},
    )

    assert mine.status_code == 201, mine.text
    # Another key's request, not a replay of mine: one dispute at a time.
    assert theirs.status_code == 409, theirs.text
    assert "Idempotent-Replayed" not in theirs.headers


async def test_a_replayed_hand_over_keeps_its_status_and_location(api: Api) -> None:
    body = invoice_body("INV-IDEM-4")
    headers = {**api.auth(Role.BACKOFFICE), "Idempotency-Key": "hand-over-4"}

    first = await api.http.post("/v1/invoices", json=body, headers=headers)
    again = await api.http.post("/v1/invoices", json=body, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.headers["Location"] == first.headers["Location"] == "/v1/invoices/INV-IDEM-4"
    assert again.json() == first.json()


async def test_a_bad_key_is_refused(api: Api) -> None:
    response = await _post(
        api, "/v1/invoices/INV-NOPE/pause", {"reason": "x"}, "x" * 300, Role.COLLECTOR
    )

    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["detail"]


async def test_errors_of_the_request_are_kept_but_a_failure_of_ours_is_not(api: Api) -> None:
    # A 404 is the answer to that request: replayed as it was.
    url = "/v1/invoices/INV-IDEM-NONE/pause"
    first = await _post(api, url, {"reason": "x"}, "k-404")
    assert first.status_code == 404
    assert (await _post(api, url, {"reason": "x"}, "k-404")).headers[
        "Idempotent-Replayed"
    ] == "true"


async def test_a_retry_after_a_timeout_finds_the_first_attempt(
    dev_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    """No worker answers the first attempt: the client gets a 504 (its timeout). Temporal
    still holds the Update; once a worker runs, the retry with the same key is that Update:
    one dispute, one pause."""
    settings = Settings(
        _env_file=None, data_dir=tmp_path, task_queue=task_queue, rpc_timeout_seconds=2
    )
    app = create_app(settings, client=dev_env.client, engine=engine)
    key = create_api_key(engine, Role.COLLECTOR, label="claire")
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "dispute-after-timeout"}
    backoffice = {"Authorization": f"Bearer {create_api_key(engine, Role.BACKOFFICE)}"}
    url = "/v1/invoices/INV-IDEM-T/disputes"
    body = {"reason": "goods arrived damaged"}
    async with serve(app) as http:
        created = await http.post(
            "/v1/invoices", json=invoice_body("INV-IDEM-T"), headers=backoffice
        )
        assert created.status_code == 201, created.text

        first = await http.post(url, json=body, headers=headers)
        assert first.status_code == 504, first.text

        pause_url = "/v1/invoices/INV-IDEM-T2/pause"
        pause_headers = {**headers, "Idempotency-Key": "pause-after-timeout"}
        second = invoice_body("INV-IDEM-T2")
        assert (await http.post("/v1/invoices", json=second, headers=backoffice)).is_success
        first_pause = await http.post(pause_url, json=body, headers=pause_headers)
        assert first_pause.status_code == 504, first_pause.text

        def worker() -> Worker:
            sender = OutboxSender(tmp_path / "outbox", settings.email_from)
            return build_worker(
                dev_env.client, settings, engine, sender=sender, task_queue=task_queue
            )

        async with worker():
            retry = await http.post(url, json=body, headers=headers)
            replay = await http.post(url, json=body, headers=headers)
            disputes = (await http.get(url, headers=backoffice)).json()
            paused = await http.post(pause_url, json=body, headers=pause_headers)
            history = (
                await http.get("/v1/invoices/INV-IDEM-T2/history", headers=backoffice)
            ).json()

    assert retry.status_code == 201, retry.text
    assert replay.json() == retry.json()
    assert [d["id"] for d in disputes] == [retry.json()["dispute_id"]]
    assert paused.status_code == 200, paused.text
    assert [e["summary"] for e in history if e["kind"] == "hold_started"] == [
        "Paused by claire: goods arrived damaged"
    ]


async def test_a_dry_run_is_not_replayed_as_the_real_import(api: Api) -> None:
    batch = {"invoices": [invoice_body("INV-IDEM-B1")]}
    headers = {**api.auth(Role.BACKOFFICE), "Idempotency-Key": "import-1"}

    dry = await api.http.post("/v1/invoices:batch?dry_run=true", json=batch, headers=headers)
    real = await api.http.post("/v1/invoices:batch", json=batch, headers=headers)

    assert dry.status_code == 200, dry.text
    assert real.status_code == 422, real.text
    assert "dry_run=true" in real.json()["detail"]
    # Nothing was handed over by the dry run, nor by the refused reuse of its key.
    assert (await api.get("/v1/invoices/INV-IDEM-B1")).status_code == 404
