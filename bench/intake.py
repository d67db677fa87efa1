"""Hand-overs per second through the real API, against raw `start_workflow` calls.

Three runs on one dev server, each of N new invoices (several per debtor, as a portfolio has):
`POST /v1/invoices` with a few requests in flight, `POST /v1/invoices:batch` in batches, and
the bare yardstick: `client.start_workflow` of a bare workflow as many times, as many at once.
No worker polls during the runs: this measures the hand-over (store write, start), not the
lifecycles it starts. Prints rates and the CPU per invoice of the client side (the API
process; for raw starts, the process that starts them) and of the server, and the ratios.

A second yardstick starts the invoice workflow itself as many times, straight from this
process: the same input (the invoice with its playbook) and the same search attributes as a
hand-over's start, without the API or the store. What the server spends on those starts is what
Temporal costs Relance's start; the rest of the gap is Relance's own (the API and the store).

Run: `.venv/bin/python -m bench.intake --invoices 300`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from typing import Any

import httpx

from api.schemas import InvoiceCreate
from api.services.invoices import facts_of
from bench.bare import TASK_QUEUE as BARE_QUEUE
from bench.bare import BareInput, BareWorkflow
from bench.harness import (
    Bench,
    CpuWindow,
    bench_stack,
    gather_limited,
    header,
    load,
    progress,
    row,
)
from domain.playbook import load_playbook_named
from workflows.client import start_invoice

CONCURRENCY = 8


@dataclass
class Measured:
    count: int
    window: CpuWindow

    @property
    def rate(self) -> float:
        return self.count / self.window.wall

    def cpu_ms(self, process: str) -> float:
        return 1000 * self.window.cpu.get(process, 0.0) / self.count


def invoice_body(prefix: str, i: int, per_debtor: int, due: date | None = None) -> dict[str, Any]:
    """A hand-over as a back office sends it; `per_debtor` invoices share a debtor."""
    today = date.today()
    debtor = i // per_debtor
    return {
        "number": f"{prefix}-{i:06d}",
        "amount": "1200.00",
        "currency": "EUR",
        "issue_date": (today - timedelta(days=30)).isoformat(),
        "due_date": (due or today + timedelta(days=30)).isoformat(),
        "debtor": {
            "id": f"{prefix}-D{debtor:05d}",
            "name": f"Debtor {debtor} SARL",
            "email": f"ap{debtor}@example.com",
            "country": "FR",
            "language": "fr",
        },
    }


async def post_batches(
    http: httpx.AsyncClient, bodies: list[dict[str, Any]], size: int, label: str
) -> None:
    batches = [bodies[i : i + size] for i in range(0, len(bodies), size)]
    for n, batch in enumerate(batches, start=1):
        response = await http.post("/v1/invoices:batch", json={"invoices": batch}, timeout=600)
        response.raise_for_status()
        report = response.json()
        if report["rejected"]:
            raise RuntimeError(f"batch rejected lines: {report}")
        if len(batches) > 1:
            progress(f"{label}: batch {n}/{len(batches)} ({n * size} invoices)")


async def _singles(http: httpx.AsyncClient, bodies: list[dict[str, Any]]) -> None:
    async def post(body: dict[str, Any]) -> None:
        response = await http.post("/v1/invoices", json=body, timeout=60)
        response.raise_for_status()

    await gather_limited([partial(post, b) for b in bodies], CONCURRENCY, label="POST /v1/invoices")


async def raw_starts(bench: Bench, count: int, label: str, *, at_once: int = CONCURRENCY) -> int:
    """Start `count` bare workflows waiting for an Update (ids `bare-<stamp>-<i>`), `at_once`
    at a time; the stamp."""
    stamp = time.time_ns()
    await gather_limited(
        [
            partial(
                bench.client.start_workflow,
                BareWorkflow.run,
                BareInput(activities=1, wait_for_update=True),
                id=f"bare-{stamp}-{i}",
                task_queue=BARE_QUEUE,
            )
            for i in range(count)
        ],
        at_once,
        label=label,
    )
    return stamp


async def same_starts(bench: Bench, count: int, per_debtor: int) -> None:
    """Start `count` invoice workflows as a hand-over does (input, search attributes), with
    neither the API nor the store: Temporal's part of Relance's start."""
    playbook = load_playbook_named("default")
    settings = bench.settings
    facts = [
        facts_of(InvoiceCreate.model_validate(invoice_body("T", i, per_debtor)))
        for i in range(count)
    ]
    await gather_limited(
        [
            partial(
                start_invoice,
                bench.client,
                f,
                playbook,
                task_queue=settings.task_queue,
                day_seconds=settings.day_seconds,
                notify_backoffice=False,
            )
            for f in facts
        ],
        CONCURRENCY,
        label="same starts",
    )


async def run(invoices: int, per_debtor: int, batch: int) -> None:
    before = load()
    async with bench_stack(86400.0) as bench:
        api, base = await bench.start_api()
        headers = {"Authorization": f"Bearer {bench.api_key()}"}
        pids = {"api": api.pid, "server": bench.server_pid}
        async with httpx.AsyncClient(base_url=base, headers=headers) as http:
            # One hand-over first: imports and caches warm, as on a server that has been up.
            await post_batches(http, [invoice_body("W", 0, 1)], 1, "warm-up")
            progress(f"POST /v1/invoices: {invoices} invoices, {CONCURRENCY} at a time")
            window = CpuWindow(pids).start()
            await _singles(http, [invoice_body("S", i, per_debtor) for i in range(invoices)])
            single = Measured(invoices, window.stop())
            progress(f"POST /v1/invoices:batch: {invoices} invoices in batches of {batch}")
            window = CpuWindow(pids).start()
            bodies = [invoice_body("B", i, per_debtor) for i in range(invoices)]
            await post_batches(http, bodies, batch, "batch")
            batched = Measured(invoices, window.stop())
        progress(f"raw start_workflow: {invoices} starts, {CONCURRENCY} at a time")
        # The starting process is this one: its CPU is the client's share, as the API's is.
        window = CpuWindow({"client": os.getpid(), "server": bench.server_pid}).start()
        await raw_starts(bench, invoices, "raw starts")
        raw = Measured(invoices, window.stop())
        progress(f"the invoice workflow's own start: {invoices} starts, {CONCURRENCY} at a time")
        window = CpuWindow({"client": os.getpid(), "server": bench.server_pid}).start()
        await same_starts(bench, invoices, per_debtor)
        same = Measured(invoices, window.stop())
    header(
        "Intake: hand-overs through the API against raw start_workflow",
        [
            f"{invoices} invoices per run, {per_debtor} per debtor, {CONCURRENCY} requests or "
            f"starts in flight, batches of {batch}; no worker polling",
            f"machine {before} before, {load()} after",
        ],
    )
    row("POST /v1/invoices (invoices/s)", single.rate, raw.rate)
    row(":batch (invoices/s)", batched.rate, raw.rate)
    # Client side: the API process for Relance, the process calling start_workflow for bare.
    row(
        "client CPU per invoice, single",
        single.cpu_ms("api"),
        raw.cpu_ms("client"),
        "ms",
        better="low",
    )
    row(
        "client CPU per invoice, batch",
        batched.cpu_ms("api"),
        raw.cpu_ms("client"),
        "ms",
        better="low",
    )
    row(
        "server CPU per invoice, single",
        single.cpu_ms("server"),
        raw.cpu_ms("server"),
        "ms",
        better="low",
    )
    row(
        "server CPU per invoice, batch",
        batched.cpu_ms("server"),
        raw.cpu_ms("server"),
        "ms",
        better="low",
    )
    # The same start as a hand-over's (input, search attributes): what is left is the API's.
    row("single vs same start (invoices/s)", single.rate, same.rate)
    row("batch vs same start (invoices/s)", batched.rate, same.rate)
    row(
        "server CPU, batch, same start",
        batched.cpu_ms("server"),
        same.cpu_ms("server"),
        "ms",
        better="low",
    )
    row(
        "client CPU, batch, same start",
        batched.cpu_ms("api"),
        same.cpu_ms("client"),
        "ms",
        better="low",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=300)
    parser.add_argument("--per-debtor", type=int, default=20)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(run(args.invoices, args.per_debtor, args.batch))


if __name__ == "__main__":
    main()
