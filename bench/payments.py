"""Payment → escalation stopped, through the API, with N invoices open on one worker.

Opens N invoices through `POST /v1/invoices:batch` on a real-length day (they sit idle, waiting
for their first step, as an open portfolio does), then reports payments in full one after the
other through `POST /v1/invoices/{n}/payments` for invoices picked at random, and times each
answer (the stage is then `paid`: no further message). Bare: as many workflows waiting for an
Update, opened with raw starts, then as many Updates, one after the other, on random ones.
With N above the worker's cache (`RELANCE_WORKER_MAX_CACHED_WORKFLOWS`) most payments find
their invoice evicted and pay for a replay; both sides run with the same cache size.

Run: `.venv/bin/python -m bench.payments --open 10000` (opening 10k takes several minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

import httpx
from sqlalchemy import func
from sqlmodel import Session, select

from bench.bare import BareWorkflow
from bench.harness import (
    Bench,
    bench_stack,
    header,
    load,
    memory_bytes,
    percentile,
    progress,
    row,
    until_idle,
)
from bench.intake import invoice_body, post_batches, raw_starts
from config import Settings
from contracts.ids import workflow_id
from domain.lifecycle import PaymentInput
from domain.money import Money
from store.tables import Event
from workflows.invoice import InvoiceWorkflow

BATCH = 1000
MIB = 2**20


def _opened(bench: Bench) -> int:
    with Session(bench.engine) as session:
        return int(session.exec(select(func.count()).where(Event.kind == "opened")).one())


async def _relance(
    bench: Bench, open_: int, payments: int, seed: int
) -> tuple[list[float], list[float], int]:
    worker = await bench.start_worker("relance")
    api, base = await bench.start_api()
    headers = {"Authorization": f"Bearer {bench.api_key()}"}
    bodies = [invoice_body("P", i, 1) for i in range(open_)]
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
        progress(f"relance: opening {open_} invoices in batches of {BATCH}")
        await post_batches(http, bodies, BATCH, "relance: opened")
        while (opened := await asyncio.to_thread(_opened, bench)) < open_:
            progress(f"relance: {opened}/{open_} workflows have started")
            await asyncio.sleep(2)
        await until_idle(worker.pid, "relance worker")
        rss = memory_bytes(worker.pid)
        progress(f"relance: {payments} payments, one after the other")
        latencies: list[float] = []
        updates: list[float] = []
        numbers = random.Random(seed).sample([b["number"] for b in bodies], payments)
        for number in numbers:
            started = time.perf_counter()
            response = await http.post(
                f"/v1/invoices/{number}/payments",
                json={"reference": f"PAY-{number}", "amount": "1200.00", "currency": "EUR"},
            )
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
            if response.json()["stage"] != "paid":
                raise RuntimeError(f"{number}: payment answered {response.json()}")
        # The same Update sent straight to other invoices: what the workflow costs, apart from
        # the API's own work (auth, the store's checks and the answer written before replying).
        progress(f"relance: {payments} payments as bare Updates, no API")
        paid = {b["number"] for b in bodies} - set(numbers)
        for number in random.Random(seed + 1).sample(sorted(paid), payments):
            handle = bench.client.get_workflow_handle(workflow_id(number))
            payment = PaymentInput(reference=f"PAY-{number}", amount=Money.of("1200.00", "EUR"))
            started = time.perf_counter()
            await handle.execute_update(InvoiceWorkflow.record_payment, payment)
            updates.append(time.perf_counter() - started)
    bench.stop(api)
    bench.stop(worker)
    return latencies, updates, rss


async def _bare(bench: Bench, open_: int, payments: int, seed: int) -> tuple[list[float], int]:
    worker = await bench.start_worker("bare")
    progress(f"bare: opening {open_} workflows")
    stamp = await raw_starts(bench, open_, "bare: started")
    await until_idle(worker.pid, "bare worker")
    rss = memory_bytes(worker.pid)
    progress(f"bare: {payments} updates, one after the other")
    latencies = []
    for i in random.Random(seed).sample(range(open_), payments):
        handle = bench.client.get_workflow_handle(f"bare-{stamp}-{i}")
        started = time.perf_counter()
        await handle.execute_update(BareWorkflow.pay)
        latencies.append(time.perf_counter() - started)
    bench.stop(worker)
    return latencies, rss


async def run(open_: int, payments: int, seed: int, **worker: int) -> None:
    payments = min(payments, open_)
    before = load()
    async with bench_stack(86400.0, **worker) as bench:
        relance, updates, relance_rss = await _relance(bench, open_, payments, seed)
        bare, bare_rss = await _bare(bench, open_, payments, seed)
        server_rss = memory_bytes(bench.server_pid)
    cache = bench.settings.worker_max_cached_workflows
    header(
        f"Payments at {open_} open invoices: POST /v1/invoices/{{n}}/payments against an Update",
        [
            f"{payments} payments one after the other on random invoices; both workers cache "
            f"{cache} workflows and run {bench.settings.worker_max_concurrent_workflow_tasks} "
            f"workflow tasks at once; Temporal server RSS at the end {server_rss / MIB:.0f} MiB",
            f"machine {before} before, {load()} after",
        ],
    )
    for pct in (50, 99):
        row(
            f"p{pct} latency",
            1000 * percentile(relance, pct),
            1000 * percentile(bare, pct),
            "ms",
            better="low",
        )
    for pct in (50, 99):
        row(
            f"p{pct} Update alone, no API",
            1000 * percentile(updates, pct),
            1000 * percentile(bare, pct),
            "ms",
            better="low",
        )
    row("worker RSS with all open", relance_rss / MIB, bare_rss / MIB, "MiB", better="low")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--open", type=int, default=2000, dest="open_")
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument("--seed", type=int, default=13)
    defaults = Settings(_env_file=None)
    parser.add_argument("--cache", type=int, default=defaults.worker_max_cached_workflows)
    parser.add_argument(
        "--workflow-tasks", type=int, default=defaults.worker_max_concurrent_workflow_tasks
    )
    args = parser.parse_args()
    asyncio.run(
        run(
            args.open_,
            args.payments,
            args.seed,
            worker_max_cached_workflows=args.cache,
            worker_max_concurrent_workflow_tasks=args.workflow_tasks,
        )
    )


if __name__ == "__main__":
    main()
