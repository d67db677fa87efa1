"""The API against a real Temporal dev server, with a real worker and a migrated SQLite store.

Requests go through the ASGI app in process (httpx's ASGITransport), lifespan included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from temporalio.testing import WorkflowEnvironment

from activities.email import OutboxSender
from api.app import create_app
from api.auth import Role, create_api_key
from config import Settings
from tests.workflows.harness import CREDITOR_ADDRESS
from worker import build_worker

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 20.0, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy (its value), or fail after `within` s."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not reached within {within} s (last: {last!r})")


@dataclass
class Api:
    http: httpx.AsyncClient
    engine: Engine
    settings: Settings
    outbox: Path
    keys: dict[Role, str] = field(default_factory=dict)

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    async def get(self, url: str, role: Role = Role.BACKOFFICE, **kw: Any) -> httpx.Response:
        return await self.http.get(url, headers=self.auth(role), **kw)

    async def post(
        self, url: str, body: Any, role: Role = Role.BACKOFFICE, **kw: Any
    ) -> httpx.Response:
        return await self.http.post(url, json=body, headers=self.auth(role), **kw)

    async def hand_over(self, body: dict[str, Any]) -> httpx.Response:
        return await self.post("/v1/invoices", body)

    async def invoice(self, number: str) -> dict[str, Any]:
        response = await self.get(f"/v1/invoices/{number}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The RFC 9457 problem a client receives, checked for the shape every error has."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"] and body["title"] and body["detail"], body
    return body


def field_errors(response: httpx.Response) -> dict[str, str]:
    """`{"body.debtor.email": "value is not a valid email address: ..."}` from a 422."""
    body = problem(response, 422)
    assert body["type"] == "urn:relance:problem:validation-error", body
    return {f"{e['location']}.{e['field']}": e["message"] for e in body["errors"]}


def invoice_body(number: str, *, due_in_days: int = 30, **changes: Any) -> dict[str, Any]:
    today = date.today()
    body: dict[str, Any] = {
        "number": number,
        "debtor": {
            "id": f"CUST-{number}",
            "name": "Dupont & Fils SARL",
            "email": "compta@dupont.example",
            "country": "FR",
            "language": "fr",
            "segment": "PME",
            # Where letters go (the formal notice is also a registered letter).
            "address_line1": "4 avenue des Tilleuls",
            "postal_code": "69003",
            "city": "Lyon",
        },
        "amount": "1200.00",
        "currency": "EUR",
        "issue_date": (today - timedelta(days=30)).isoformat(),
        "due_date": (today + timedelta(days=due_in_days)).isoformat(),
    }
    body.update(changes)
    return body


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for `app`, its lifespan running (as under uvicorn)."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://relance.test") as http,
    ):
        yield http


@pytest.fixture
def day_seconds() -> float:
    """Real days by default: nothing happens during a test unless a module shrinks them."""
    return 86400.0


@pytest.fixture
def settings(tmp_path: Path, task_queue: str, day_seconds: float) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_path,
        task_queue=task_queue,
        day_seconds=day_seconds,
        rpc_timeout_seconds=10,
        creditor_address=CREDITOR_ADDRESS,
    )


@pytest.fixture
async def api(
    dev_env: WorkflowEnvironment, engine: Engine, settings: Settings, tmp_path: Path
) -> AsyncIterator[Api]:
    outbox = tmp_path / "outbox"
    worker = build_worker(
        dev_env.client,
        settings,
        engine,
        sender=OutboxSender(outbox, settings.email_from),
        task_queue=settings.task_queue,
    )
    app = create_app(settings, client=dev_env.client, engine=engine)
    async with worker, serve(app) as http:
        keys = {role: create_api_key(engine, role, label=f"{role.value}-tester") for role in Role}
        yield Api(http=http, engine=engine, settings=settings, outbox=outbox, keys=keys)
