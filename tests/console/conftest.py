"""The console in a real browser: Debian's chromium driven by Playwright, against the API
served by uvicorn on a loopback port, a real worker and the real Temporal dev server.

Days last one second, so invoices handed over weeks late reach their approval or call task
within seconds. People are created through the same function `relance user add` uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright
from sqlalchemy.engine import Engine
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.email import OutboxSender
from api.app import create_app
from api.auth import Role, create_api_key
from api.console import accounts
from config import Settings
from domain.playbook import DEFAULT_PLAYBOOKS_DIR
from store.people import Language, PersonRole
from tests.api.conftest import eventually, invoice_body
from tests.api.test_tasks import PHONE_PLAYBOOK
from tests.workflows.harness import installed_binary as _binary
from worker import build_worker
from workflows.contract import SEARCH_ATTRIBUTES

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery staple"
# Where the screenshots go: docs/ when asked (to refresh the README's), else the test's folder.
SCREENSHOTS = "RELANCE_SCREENSHOTS_DIR"


@dataclass
class Console:
    base: str
    engine: Engine
    browser: Browser
    api: httpx.AsyncClient
    shots: Path
    people: dict[PersonRole, int] = field(default_factory=dict)

    async def new_page(self) -> Page:
        context = await self.browser.new_context(viewport={"width": 1280, "height": 860})
        # A form's answer waits on a workflow Update: on a busy machine that can outlast
        # Playwright's default 30 s, though the API answers within two RPC timeouts.
        context.set_default_timeout(90_000)
        return await context.new_page()

    async def sign_in(self, role: PersonRole, language: Language = Language.EN) -> Page:
        page = await self.new_page()
        await page.goto(f"{self.base}/console/login")
        await page.fill("input[name=email]", f"{role.value}@relance.test")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/console/today")
        if language == Language.EN:
            # The person's choice, kept on their account.
            await page.select_option("select[name=language]", "en")
            await page.wait_for_selector("html[lang=en]")
        return page

    async def shot(self, page: Page, name: str) -> None:
        await page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    async def invoice(self, number: str) -> dict[str, Any]:
        response = await self.api.get(f"/v1/invoices/{number}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def stage_becomes(self, number: str, stage: str) -> None:
        async def probe() -> bool:
            return (await self.invoice(number))["stage"] == stage

        await eventually(probe, within=30, what=f"invoice {number} in stage {stage}")

    async def hand_over(self, body: dict[str, Any]) -> None:
        response = await self.api.post("/v1/invoices", json=body)
        assert response.status_code == 201, response.text


def late(number: str, days: int, *, segment: str | None = "PME") -> dict[str, Any]:
    today = date.today()
    body = invoice_body(
        number,
        issue_date=(today - timedelta(days=days + 30)).isoformat(),
        due_date=(today - timedelta(days=days)).isoformat(),
    )
    if segment is None:
        del body["debtor"]["segment"]  # the default playbook: the calling one
    return body


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: Ctrl-C stays pytest's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _stop(server: uvicorn.Server, serving: asyncio.Task[None]) -> None:
    server.should_exit = True
    await serving


@pytest.fixture(scope="module")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server of the console tests' own: workflows other tests left running on the shared
    one (a mailbox under a fixed id, its worker gone) must not hold these tests' invoices."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def console_settings(tmp_path: Path, task_queue: str) -> Settings:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    for source in DEFAULT_PLAYBOOKS_DIR.glob("*.yaml"):
        shutil.copy(source, folder / source.name)
    (folder / "calls.yaml").write_text(PHONE_PLAYBOOK, encoding="utf-8")
    return Settings(
        _env_file=None,
        data_dir=tmp_path,
        task_queue=task_queue,
        day_seconds=1.0,
        # Generous: a shared CI machine under load may take a while to run a workflow task.
        rpc_timeout_seconds=30,
        playbooks_dir=folder,
        default_playbook="calls",
    )


@pytest.fixture
async def console(
    dev_env: WorkflowEnvironment, engine: Engine, console_settings: Settings, tmp_path: Path
) -> AsyncIterator[Console]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed at /usr/bin/chromium (.ci/run installs it)")
    settings = console_settings
    worker = build_worker(
        dev_env.client,
        settings,
        engine,
        sender=OutboxSender(tmp_path / "outbox", settings.email_from),
        task_queue=settings.task_queue,
    )
    app = create_app(settings, client=dev_env.client, engine=engine)
    port = _free_port()
    server = _Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            # Leave the process's logging alone (uvicorn's default config would turn its
            # loggers' propagation off for every later test).
            log_config=None,
            lifespan="on",
            # A request still waiting on a workflow at the end must not hold the test forever.
            timeout_graceful_shutdown=5,
        )
    )
    serving = asyncio.create_task(server.serve())
    shots = Path(os.environ.get(SCREENSHOTS) or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    people = {
        role: accounts.add_user(engine, f"{role.value}@relance.test", role, PASSWORD, Language.FR)
        for role in PersonRole
    }
    key = create_api_key(engine, Role.ADMIN, "browser-tests")
    base = f"http://127.0.0.1:{port}"
    try:
        async with (
            worker,
            async_playwright() as playwright,
            httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30
            ) as api,
        ):
            for _ in range(200):
                if server.started:
                    break
                await asyncio.sleep(0.05)
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_FLAGS
            )
            try:
                yield Console(
                    base=base,
                    engine=engine,
                    browser=browser,
                    api=api,
                    shots=shots,
                    people={role: user.id or 0 for role, user in people.items()},
                )
            finally:
                await browser.close()
                # The API stops before the worker does: no request is left waiting on it.
                await _stop(server, serving)
    finally:
        await _stop(server, serving)
