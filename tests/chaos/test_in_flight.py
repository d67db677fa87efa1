"""A payment acknowledged while a reminder is at SendGrid: the answer waits for SendGrid's.

Found by the chaos run's rule "nothing after the acknowledgment": the delivery re-checks the
invoice before each send, but a reminder reserved just before the payment and slow at SendGrid
was accepted seconds after the back office heard "paid".
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy.engine import Engine
from temporalio.testing import WorkflowEnvironment

from activities.email import SendGridSender
from api.app import create_app
from api.auth import Role, create_api_key
from bench.chaos import THANK_YOU, invoice_body
from config import Settings
from tests.api.conftest import serve
from tests.fakes.sendgrid_api import FakeSendGrid
from tests.workflows.harness import CREDITOR_ADDRESS
from worker import build_worker


async def test_a_payment_is_acknowledged_after_the_reminder_sendgrid_was_taking(
    dev_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        task_queue=task_queue,
        day_seconds=1.0,
        creditor_address=CREDITOR_ADDRESS,
    )
    with FakeSendGrid() as sendgrid:
        # The first message (the catch-up reminder) is held at SendGrid for 3 s.
        sendgrid.delay_next(3.0)
        sender = SendGridSender("SG.test", sendgrid.url, settings.email_from)
        worker = build_worker(dev_env.client, settings, engine, sender=sender)
        app = create_app(settings, client=dev_env.client, engine=engine)
        async with worker, serve(app) as http:
            auth = {"Authorization": f"Bearer {create_api_key(engine, Role.BACKOFFICE)}"}
            created = await http.post("/v1/invoices", json=invoice_body("LATE-1"), headers=auth)
            assert created.status_code == 201, created.text
            for _ in range(600):
                if sendgrid.requests_count:
                    break
                await asyncio.sleep(0.05)
            assert sendgrid.requests_count, "no reminder went to SendGrid"

            paid = await http.post(
                "/v1/invoices/LATE-1/payments",
                json={"reference": "VIR-1", "amount": "1200.00", "currency": "EUR"},
                headers=auth,
            )
            acknowledged = time.time()

            assert paid.status_code == 200, paid.text
            assert paid.json()["stage"] == "paid"
            # SendGrid had taken the reminder when the back office heard "paid".
            taken = [m.custom_args["step"] for m in sendgrid.messages]
            assert [step for step in taken if step != THANK_YOU] == ["reminder_3"], taken
            for _ in range(600):  # the thank-you, which goes after the payment
                if THANK_YOU in {m.custom_args["step"] for m in sendgrid.messages}:
                    break
                await asyncio.sleep(0.05)
    late = [
        m.custom_args["step"]
        for m in sendgrid.messages
        if m.received_at > acknowledged and m.custom_args["step"] != THANK_YOU
    ]
    assert late == []
    assert sorted(m.custom_args["step"] for m in sendgrid.messages) == ["reminder_3", THANK_YOU]
