"""The debtor portal in a real Chromium, against the whole system: the API under uvicorn, a
worker on the Temporal dev server, the file outbox, and the real `stripe` client pointed at a
loopback fake of Stripe (its hosted checkout page included).

The debtor starts where a real one does: the link in an email of the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, Locator, Page, async_playwright
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from temporalio.testing import WorkflowEnvironment

from activities.email import OutboxSender
from api.app import create_app
from api.auth import Role, create_api_key
from config import Settings
from tests.api.conftest import eventually
from tests.api.test_portal import late_invoice
from tests.fakes.stripe_api import FakeStripe
from worker import build_worker

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "portal.png"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Live:
    url: str
    http: httpx.AsyncClient
    outbox: Path
    keys: dict[Role, str]
    stripe: FakeStripe
    browser: Browser

    async def post(self, path: str, body: Any, role: Role = Role.BACKOFFICE) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[role]}"}
        return await self.http.post(path, json=body, headers=headers)

    async def get(self, path: str, role: Role = Role.BACKOFFICE) -> httpx.Response:
        return await self.http.get(path, headers={"Authorization": f"Bearer {self.keys[role]}"})

    def emails_to(self, address: str) -> list[EmailMessage]:
        found = []
        for path in sorted(self.outbox.glob("*.eml")):
            message = BytesParser(policy=policy.default).parse(path.open("rb"))
            assert isinstance(message, EmailMessage)
            if address in str(message["To"]):
                found.append(message)
        return found

    async def email(self, address: str, subject: str, within: float = 40) -> EmailMessage:
        async def probe() -> EmailMessage | None:
            for message in self.emails_to(address):
                if re.search(subject, str(message["Subject"])):
                    return message
            return None

        return await eventually(probe, within=within, what=f"an email {subject!r} to {address}")

    async def portal_link(self, address: str) -> str:
        """The personal link in the first message the debtor received."""

        async def probe() -> str | None:
            for message in self.emails_to(address):
                body = message.get_body(preferencelist=("plain",))
                assert body is not None
                found = re.search(r"(http://\S+/portal/l/\S+)", body.get_content())
                if found:
                    return found.group(1)
            return None

        return await eventually(probe, within=40, what=f"a personal link in a message to {address}")

    async def hand_over(self, number: str, email: str, amount: str = "1200.00") -> None:
        body = late_invoice(number, f"B-{number}", amount)
        body["debtor"]["email"] = email
        response = await self.post("/v1/invoices", body)
        assert response.status_code == 201, response.text


@pytest.fixture
async def live(
    dev_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> AsyncIterator[Live]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with FakeStripe() as stripe_fake:
        stripe_fake.webhook_url = f"{url}/v1/webhooks/stripe"
        settings = Settings(
            _env_file=None,
            data_dir=tmp_path,
            task_queue=task_queue,
            # Short days: the late invoice's catch-up message goes out within seconds.
            day_seconds=1.0,
            rpc_timeout_seconds=10,
            public_url=url,
            portal_secret=SecretStr("a-portal-secret-for-browser-tests-0123456789"),
            stripe_api_key=SecretStr(stripe_fake.api_key),
            stripe_webhook_secret=SecretStr(stripe_fake.webhook_secret),
            stripe_api_base=stripe_fake.url,
        )
        outbox = tmp_path / "outbox"
        worker = build_worker(
            dev_env.client,
            settings,
            engine,
            sender=OutboxSender(outbox, settings.email_from),
            task_queue=task_queue,
        )
        app = create_app(settings, client=dev_env.client, engine=engine)
        # log_config=None: uvicorn's loggers propagate, so caplog sees its access log (and an
        # earlier server in this process configured with uvicorn's defaults may have turned
        # propagation off: turn it back on).
        access = logging.getLogger("uvicorn.access")
        access.propagate, access.disabled = True, False
        access.setLevel(logging.INFO)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=True)
        )
        serving = asyncio.create_task(server.serve())
        async with (
            worker,
            async_playwright() as playwright,
            httpx.AsyncClient(base_url=url) as http,
        ):
            await eventually(_started(server), within=10, what="uvicorn")
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            keys = {role: create_api_key(engine, role, label=f"{role.value}-b") for role in Role}
            try:
                yield Live(url, http, outbox, keys, stripe_fake, browser)
            finally:
                await browser.close()
                server.should_exit = True
                await serving


def _started(server: uvicorn.Server) -> Any:
    async def probe() -> bool:
        return bool(server.started)

    return probe


async def new_page(live: Live) -> Page:
    context = await live.browser.new_context(
        locale="fr-FR", viewport={"width": 900, "height": 1200}
    )
    return await context.new_page()


async def open_form(
    live: Live, link: str, number: str, summary: str, form_class: str
) -> tuple[Page, Locator]:
    """The debtor follows their link and unfolds one of an invoice's forms."""
    page = await new_page(live)
    await page.goto(link)
    actions = page.locator(f"#actions-{number}")
    await actions.locator("summary", has_text=summary).click()
    return page, actions.locator(f"form.{form_class}")


async def test_pay_from_the_link_in_an_email(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    await live.hand_over("BR-PAY-1", "pay@dupont.example")
    link = await live.portal_link("pay@dupont.example")
    token = link.rsplit("/", 1)[1]

    page = await new_page(live)
    await page.goto(link)
    # The token left the address bar at once.
    assert page.url == f"{live.url}/portal"
    invoice = page.locator("#invoice-BR-PAY-1")
    await invoice.wait_for()
    assert "1 200,00" in (await invoice.inner_text()).replace("\u202f", " ")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOT), full_page=True)

    await page.click("#pay")
    await page.click("#continue-payment")
    # Stripe's hosted page (the fake's): the amount asked is the invoice's balance.
    assert await page.inner_text("#amount") == "1200.00 EUR"
    await page.click("#submit")
    await page.wait_for_url(re.compile(r"/portal\?done=paid$"))
    assert "Merci" in await page.inner_text("#notice")

    async def settled() -> bool:
        await page.goto(f"{live.url}/portal")
        return await page.locator("#settled-BR-PAY-1").count() == 1

    await eventually(settled, within=30, what="the invoice shown paid")
    assert "réglée" in await page.inner_text("#settled-BR-PAY-1")
    thanks = await live.email("pay@dupont.example", "^Merci pour votre règlement.*BR-PAY-1")
    text = thanks.get_body(preferencelist=("plain",))
    assert text is not None and "1 200,00" in text.get_content().replace("\u202f", " ")

    access = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert any("/portal/l/[token]" in line for line in access), access
    assert all(token not in r.getMessage() for r in caplog.records)


async def test_dispute_with_an_attachment_is_acknowledged(live: Live, tmp_path: Path) -> None:
    await live.hand_over("BR-DSP-1", "dispute@dupont.example")
    link = await live.portal_link("dispute@dupont.example")
    scan = tmp_path / "bon-de-livraison.pdf"
    scan.write_bytes(PDF)

    page, form = await open_form(live, link, "BR-DSP-1", "désaccord", "dispute-form")
    await form.locator("select[name=reason]").select_option("not_received")
    await form.locator("textarea[name=details]").fill("Livraison jamais reçue")
    await form.locator("input[name=amount]").fill("200.00")
    await form.locator("input[name=attachment]").set_input_files(str(scan))
    await form.locator("button").click()

    notice = await page.inner_text("#notice")
    ref = re.search(r"D-[0-9A-F]{12}", notice)
    assert ref, notice
    ack = await live.email("dispute@dupont.example", ref.group(0), within=60)
    body = ack.get_body(preferencelist=("plain",))
    assert body is not None
    assert "au plus tard le" in body.get_content()
    # The page now shows the complaint and when it will be answered.
    assert ref.group(0) in await page.inner_text("#invoice-BR-DSP-1")


async def test_a_plan_above_the_limits_reaches_a_collector(live: Live) -> None:
    # 6 000 € is above the default playbook's four-eyes amount (5 000 €): a collector decides.
    await live.hand_over("BR-PLN-1", "plan@dupont.example", amount="6000.00")
    link = await live.portal_link("plan@dupont.example")

    page, form = await open_form(live, link, "BR-PLN-1", "échéancier", "plan-form")
    await form.locator("select[name=count]").select_option("3")
    await form.locator("input[name=first]").fill((date.today() + timedelta(days=7)).isoformat())
    await form.locator("button").click()
    notice = await page.inner_text("#notice")
    ref = re.search(r"P-[0-9A-F]{12}", notice)
    assert ref and "notre équipe" in notice, notice

    tasks = (await live.get("/v1/tasks?kind=plan_approval&invoice=BR-PLN-1", Role.COLLECTOR)).json()
    assert len(tasks) == 1 and tasks[0]["status"] == "open"
    assert "debtor (portal)" in tasks[0]["title"]
    await live.email("plan@dupont.example", f"{ref.group(0)}.*étude")

    # The collector approves; the debtor is told.
    decided = await live.post(
        f"/v1/invoices/BR-PLN-1/payment-plan/{ref.group(0)}/decision",
        {"approve": True, "comment": "ok"},
        Role.COLLECTOR,
    )
    assert decided.status_code == 200, decided.text
    await live.email("plan@dupont.example", f"{ref.group(0)}.*accepté")
