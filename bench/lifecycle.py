"""How fast Relance drives invoices through their lifecycle on the real dev server.

Starts a Temporal dev server (WAL SQLite in a temp dir), a worker on a SQLite store and the
file outbox, hands over N invoices already 70 days overdue on a compressed clock, pays half of
them, approves every escalation, and prints what it measured. Run: `.venv/bin/python -m
bench.lifecycle --invoices 50`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from temporalio.client import WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.email import OutboxSender
from config import Settings
from domain.lifecycle import EscalationDecision, InvoiceFacts, PaymentInput, Stage
from domain.money import Money
from domain.playbook import load_playbook_named
from store.engine import make_engine, transaction
from store.invoices import add_invoice, upsert_debtor
from store.migrate import upgrade
from store.tables import Debtor
from tests.workflows.harness import installed_binary
from worker import build_worker
from workflows.client import invoice_handle, start_invoice
from workflows.contract import SEARCH_ATTRIBUTES
from workflows.invoice import InvoiceWorkflow


async def drive(number: str, client, pay: bool) -> tuple[float, Stage]:
    handle = invoice_handle(client, number)
    started = time.perf_counter()
    if pay:
        await asyncio.sleep(0.2)
        await handle.execute_update(
            InvoiceWorkflow.record_payment,
            PaymentInput(reference="B-1", amount=Money.of("1000", "EUR")),
        )
    while True:
        desc = await handle.describe()
        if desc.status is not None and desc.status.name != "RUNNING":
            break
        status = await handle.query(InvoiceWorkflow.status)
        if status.pending_approval is not None:
            # A decision racing the next poll is refused as stale: poll again.
            with contextlib.suppress(WorkflowUpdateFailedError):
                await handle.execute_update(
                    InvoiceWorkflow.decide_escalation,
                    EscalationDecision(
                        approval_id=status.pending_approval.approval_id,
                        approve=True,
                        decided_by="bench",
                    ),
                )
        await asyncio.sleep(0.05)
    final = await handle.result()
    return time.perf_counter() - started, final.stage


async def main(invoices: int, day_seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=installed_binary("temporal"),
            data_converter=pydantic_data_converter,
            search_attributes=SEARCH_ATTRIBUTES,
            dev_server_database_filename=str(data / "temporal.db"),
            dev_server_extra_args=[
                "--sqlite-pragma",
                "journal_mode=wal",
                "--sqlite-pragma",
                "synchronous=normal",
            ],
        )
        settings = Settings(_env_file=None, data_dir=data, day_seconds=day_seconds)
        engine = make_engine(settings.resolved_database_url)
        upgrade(engine)
        playbook = load_playbook_named("default")
        worker = build_worker(
            env.client, settings, engine, sender=OutboxSender(data / "outbox", settings.email_from)
        )
        async with worker:
            today = date.today()
            facts = [
                InvoiceFacts(
                    number=f"B-{i:05d}",
                    debtor_id=f"D-{i % 10}",
                    amount=Money.of(Decimal("1000"), "EUR"),
                    issue_date=today - timedelta(days=60),
                    due_date=today + timedelta(days=3),
                )
                for i in range(invoices)
            ]
            with transaction(engine) as session:
                for i in range(10):
                    upsert_debtor(
                        session,
                        Debtor(
                            id=f"D-{i}",
                            name=f"Debtor {i}",
                            email=f"ap{i}@example.com",
                            country="FR",
                            language="fr",
                        ),
                    )
                for f in facts:
                    add_invoice(session, f, playbook)
            t0 = time.perf_counter()
            for f in facts:
                await start_invoice(
                    env.client, f, playbook, task_queue=settings.task_queue, day_seconds=day_seconds
                )
            t_start = time.perf_counter() - t0
            results = await asyncio.gather(
                *(drive(f.number, env.client, pay=i % 2 == 0) for i, f in enumerate(facts))
            )
            total = time.perf_counter() - t0
        await env.shutdown()
        durations = [d for d, _ in results]
        stages = {s: sum(1 for _, x in results if x == s) for s in {x for _, x in results}}
        sent = len(list((data / "outbox").glob("*.eml")))
        print(f"invoices                 {invoices}")
        print(f"day length               {day_seconds} s")
        print(f"hand-over (start) rate   {invoices / t_start:.1f} invoices/s")
        print(f"whole run                {total:.1f} s")
        print(f"final stages             {stages}")
        print(f"messages sent            {sent} ({sent / total:.1f}/s)")
        print(
            f"lifecycle p50 / max      {statistics.median(durations):.1f} s / "
            f"{max(durations):.1f} s"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invoices", type=int, default=40)
    parser.add_argument("--day-seconds", type=float, default=0.05)
    args = parser.parse_args()
    asyncio.run(main(args.invoices, args.day_seconds))
