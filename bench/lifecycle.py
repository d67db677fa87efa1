"""Lifecycles per second and CPU per lifecycle: Relance's worker against the bare ceiling.

Hands over N invoices on the default playbook (one debtor each, due in 3 days, on a compressed
clock). Half are paid once they reach the formal notice (the paid path); the others have every
escalation approved until the legal hand-off, whose file the partner then reports settled (the
legal path). Their histories say how many activities and timers a lifecycle of each path runs;
the bare workflows then do the same, path for path (as many of each as Relance ran, each with
that path's number of no-op activities and timers of the same total length), N at a time, on
the same server. Prints lifecycles/s, CPU per lifecycle (worker and server) and the
worker's memory for both.

Run: `.venv/bin/python -m bench.lifecycle --invoices 40` (`--day-seconds` sets the clock).
`bench.sendlag` and `bench.history` report the same run from other angles.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import partial
from typing import TypeVar

from sqlmodel import Session, col, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowUpdateFailedError

from bench.bare import TASK_QUEUE as BARE_QUEUE
from bench.bare import BareInput, BareWorkflow
from bench.harness import (
    Bench,
    CpuWindow,
    bench_stack,
    gather_limited,
    header,
    load,
    memory_bytes,
    progress,
    row,
)
from domain.legal import LegalStatus, LegalUpdate
from domain.lifecycle import EscalationDecision, InvoiceFacts, PaymentInput, Stage
from domain.money import Money
from domain.playbook import load_playbook_named
from store.engine import transaction
from store.invoices import add_invoice, upsert_debtor
from store.tables import Approval, Debtor, Interaction, Invoice
from workflows.client import invoice_handle, start_invoice
from workflows.contract import WORKFLOW_ID_PREFIX
from workflows.invoice import InvoiceWorkflow

# Starts in flight at once, like a back office handing over a portfolio.
START_CONCURRENCY = 8
# How often the driver looks at the store for escalations to approve and invoices to pay.
POLL_SECONDS = 0.1
PAY_AT = Stage.FORMAL_NOTICE
PAID_AMOUNT = Money.of(Decimal("1000"), "EUR")
_T = TypeVar("_T")


@dataclass
class Histories:
    """What the histories of the lifecycles hold, summed over every execution they caused."""

    lifecycles: int = 0
    executions: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    # Per path (the invoice's final stage): events and executions.
    events_by_path: Counter[str] = field(default_factory=Counter)
    lifecycles_by_path: Counter[str] = field(default_factory=Counter)
    # Per path: activities scheduled, timers fired and their seconds (sizes the bare yardstick).
    activities_by_path: Counter[str] = field(default_factory=Counter)
    timers_by_path: Counter[str] = field(default_factory=Counter)
    timer_seconds_by_path: dict[str, float] = field(default_factory=dict)

    def per_lifecycle(self, event: str) -> float:
        return self.events[event] / self.lifecycles if self.lifecycles else 0.0

    @property
    def activities(self) -> float:
        return self.per_lifecycle("ACTIVITY_TASK_SCHEDULED")

    @property
    def timers(self) -> float:
        return self.per_lifecycle("TIMER_FIRED")

    @property
    def fired_timer_seconds(self) -> float:
        return sum(self.timer_seconds_by_path.values())

    def bare_input(self, path: str) -> BareInput:
        """A bare lifecycle doing what one of `path`'s did on average (all paths' average when
        no history of that path was read)."""
        lifecycles = self.lifecycles_by_path.get(path, 0)
        if not lifecycles:
            activities, timers = self.activities, self.timers
            seconds = self.fired_timer_seconds / max(1, self.lifecycles)
        else:
            activities = self.activities_by_path[path] / lifecycles
            timers = self.timers_by_path[path] / lifecycles
            seconds = self.timer_seconds_by_path.get(path, 0.0) / lifecycles
        return BareInput(
            activities=round(activities),
            timers=round(timers),
            timer_seconds=seconds / max(1, round(timers)),
        )

    @property
    def total_events(self) -> float:
        return sum(self.events.values()) / self.lifecycles if self.lifecycles else 0.0

    @property
    def total_executions(self) -> float:
        return sum(self.executions.values()) / self.lifecycles if self.lifecycles else 0.0


@dataclass
class Run:
    """One side of the comparison."""

    lifecycles: int
    window: CpuWindow
    worker_rss: int
    worker_peak_rss: int
    # Send (or no-op activity start) time minus planned time, seconds.
    lags: list[float] = field(default_factory=list)
    stages: Counter[str] = field(default_factory=Counter)
    histories: Histories | None = None
    # The workflows' ids in start order (the bare run reads some of their histories).
    ids: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.lifecycles / self.window.wall

    def cpu_ms(self, process: str) -> float:
        return 1000 * self.window.cpu[process] / self.lifecycles


@dataclass
class Comparison:
    invoices: int
    day_seconds: float
    relance: Run
    bare: Run
    # Per path (the invoice's final stage): how many bare lifecycles ran, and what each did.
    bare_mix: dict[str, tuple[int, BareInput]]
    load_before: str
    load_after: str
    # Events per type in a bare lifecycle's history (the paths' mix, averaged).
    bare_history: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------ Relance


def _facts(count: int, today: date) -> list[InvoiceFacts]:
    return [
        InvoiceFacts(
            number=f"B-{i:05d}",
            debtor_id=f"D-{i:05d}",
            amount=PAID_AMOUNT,
            issue_date=today - timedelta(days=60),
            due_date=today + timedelta(days=3),
            country="FR",
            language="fr",
        )
        for i in range(count)
    ]


def _record(bench: Bench, facts: list[InvoiceFacts]) -> None:
    playbook = load_playbook_named("default")
    with transaction(bench.engine) as session:
        for f in facts:
            upsert_debtor(
                session,
                Debtor(
                    id=f.debtor_id,
                    name=f"Debtor {f.debtor_id}",
                    email=f"ap-{f.debtor_id.lower()}@example.com",
                    country="FR",
                    language="fr",
                ),
            )
            add_invoice(session, f, playbook)


def _store_view(bench: Bench, to_pay: set[str]) -> tuple[list[str], list[str], list[str]]:
    """Pending approval ids, the invoices to pay now (reached PAY_AT, still unpaid), and the
    invoices handed off to the legal partner (their file stays open until the partner ends it)."""
    with Session(bench.engine) as session:
        pending = session.exec(select(Approval.id).where(Approval.status == "pending")).all()
        ready = session.exec(
            select(Invoice.number).where(
                col(Invoice.number).in_(to_pay), Invoice.stage == PAY_AT.value
            )
        ).all()
        handed = session.exec(
            select(Invoice.number).where(Invoice.stage == Stage.HANDED_OFF.value)
        ).all()
    return list(pending), list(ready), list(handed)


async def _decide(client: Client, approval_id: str) -> None:
    number = approval_id.split(":", 1)[0]
    # A decision racing a newer approval is refused as stale: the next poll sees the new one.
    with contextlib.suppress(WorkflowUpdateFailedError):
        await invoice_handle(client, number).execute_update(
            InvoiceWorkflow.decide_escalation,
            EscalationDecision(approval_id=approval_id, approve=True, decided_by="bench"),
        )


async def _pay(client: Client, number: str) -> None:
    await invoice_handle(client, number).execute_update(
        InvoiceWorkflow.record_payment, PaymentInput(reference=f"PAY-{number}", amount=PAID_AMOUNT)
    )


async def _settle(client: Client, number: str) -> None:
    # The legal path ends when the partner reports the file settled (the run then completes).
    with contextlib.suppress(WorkflowUpdateFailedError):
        await invoice_handle(client, number).execute_update(
            InvoiceWorkflow.update_legal, LegalUpdate(status=LegalStatus.SETTLED, by="bench")
        )


async def _collector(bench: Bench, to_pay: set[str], done: asyncio.Event) -> None:
    """Approves every escalation, pays the chosen invoices when they reach PAY_AT, and settles
    the legal files of the others once handed off."""
    seen: set[str] = set()
    tasks: set[asyncio.Task[None]] = set()
    while not done.is_set():
        pending, ready, handed = await asyncio.to_thread(_store_view, bench, to_pay)
        for number in handed:
            if f"legal:{number}" not in seen:
                seen.add(f"legal:{number}")
                tasks.add(asyncio.create_task(_settle(bench.client, number)))
        for approval_id in pending:
            if approval_id not in seen:
                seen.add(approval_id)
                tasks.add(asyncio.create_task(_decide(bench.client, approval_id)))
        for number in ready:
            to_pay.discard(number)
            tasks.add(asyncio.create_task(_pay(bench.client, number)))
        tasks = {t for t in tasks if not t.done()}
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), POLL_SECONDS)
    for task in tasks:
        task.cancel()


def _send_lags(bench: Bench) -> list[float]:
    with Session(bench.engine) as session:
        rows = session.exec(
            select(Interaction.planned_at, Interaction.sent_at).where(
                Interaction.status == "sent", Interaction.recipient == "debtor"
            )
        ).all()
    return [(sent - planned).total_seconds() for planned, sent in rows if planned and sent]


async def run_relance(bench: Bench, invoices: int) -> Run:
    worker = await bench.start_worker("relance")
    facts = _facts(invoices, date.today())
    await asyncio.to_thread(_record, bench, facts)
    playbook = load_playbook_named("default")
    to_pay = {f.number for i, f in enumerate(facts) if i % 2 == 0}
    done = asyncio.Event()
    window = CpuWindow({"worker": worker.pid, "server": bench.server_pid}).start()
    collector = asyncio.create_task(_collector(bench, to_pay, done))
    await gather_limited(
        [
            partial(
                start_invoice,
                bench.client,
                f,
                playbook,
                task_queue=bench.settings.task_queue,
                day_seconds=bench.settings.day_seconds,
            )
            for f in facts
        ],
        START_CONCURRENCY,
        label="relance: invoices started",
    )
    results = await _await_all(
        [invoice_handle(bench.client, f.number).result for f in facts], "relance: lifecycles ended"
    )
    window.stop()
    done.set()
    await collector
    run = Run(
        invoices,
        window,
        memory_bytes(worker.pid),
        memory_bytes(worker.pid, "VmHWM"),
        lags=await asyncio.to_thread(_send_lags, bench),
        stages=Counter(r.stage.value for r in results),
    )
    bench.stop(worker)
    return run


async def _await_all(waits: Sequence[Callable[[], Awaitable[_T]]], label: str) -> list[_T]:
    """Wait for all, reporting how many have ended every few seconds."""
    started = time.monotonic()
    tasks = [asyncio.ensure_future(w()) for w in waits]
    while True:
        finished, _ = await asyncio.wait(tasks, timeout=5)
        if len(finished) == len(tasks):
            return [t.result() for t in tasks]
        progress(f"{label}: {len(finished)}/{len(tasks)} ({time.monotonic() - started:.0f} s)")


# ------------------------------------------------------------------ histories


async def read_histories(client: Client, numbers: list[str], stages: dict[str, str]) -> Histories:
    """Every execution the lifecycles of `numbers` caused (invoice runs, continue-as-new runs,
    other workflows they started such as debtor mailboxes), read from their histories."""
    wanted = {f"{WORKFLOW_ID_PREFIX}{n}" for n in numbers}
    debtors = {f"D-{n.removeprefix('B-')}" for n in numbers}
    out = Histories(lifecycles=len(numbers))
    async for execution in client.list_workflows():
        wid = execution.id
        if execution.workflow_type == "BenchBare":
            continue
        owner = wid.removeprefix(WORKFLOW_ID_PREFIX).removeprefix("B-")
        if wid not in wanted and not any(wid.endswith(d) for d in debtors):
            continue
        number = f"B-{owner}" if wid in wanted else f"B-{wid.rsplit('D-', 1)[-1]}"
        path = stages.get(number, "?")
        out.executions[execution.workflow_type] += 1
        handle = client.get_workflow_handle(wid, run_id=execution.run_id)
        history = await handle.fetch_history()
        timers: dict[int, float] = {}
        for event in history.events:
            name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
            out.events[name] += 1
            out.events_by_path[path] += 1
            if name == "ACTIVITY_TASK_SCHEDULED":
                out.activities_by_path[path] += 1
            if event.HasField("timer_started_event_attributes"):
                attrs = event.timer_started_event_attributes
                timers[event.event_id] = attrs.start_to_fire_timeout.ToTimedelta().total_seconds()
            elif event.HasField("timer_fired_event_attributes"):
                started = event.timer_fired_event_attributes.started_event_id
                seconds = timers.get(started, 0.0)
                out.timers_by_path[path] += 1
                out.timer_seconds_by_path[path] = out.timer_seconds_by_path.get(path, 0.0) + seconds
    for number in numbers:
        out.lifecycles_by_path[stages.get(number, "?")] += 1
    return out


# ------------------------------------------------------------------ bare


async def run_bare(bench: Bench, inputs: list[BareInput]) -> Run:
    worker = await bench.start_worker("bare")
    window = CpuWindow({"worker": worker.pid, "server": bench.server_pid}).start()
    stamp = time.time_ns()
    handles = await gather_limited(
        [
            partial(
                bench.client.start_workflow,
                BareWorkflow.run,
                input,
                id=f"bare-{stamp}-{i}",
                task_queue=BARE_QUEUE,
            )
            for i, input in enumerate(inputs)
        ],
        START_CONCURRENCY,
        label="bare: workflows started",
    )
    results = await _await_all([h.result for h in handles], "bare: workflows ended")
    window.stop()
    run = Run(
        len(inputs),
        window,
        memory_bytes(worker.pid),
        memory_bytes(worker.pid, "VmHWM"),
        lags=[lag for lags in results for lag in lags],
        ids=[h.id for h in handles],
    )
    bench.stop(worker)
    return run


# ------------------------------------------------------------------ the comparison


async def compare(invoices: int, day_seconds: float, *, histories: int = 20) -> Comparison:
    """Relance's lifecycles, then the bare ones sized from their histories, on one server.

    Histories are read for at most `histories` invoices (reading all of a large run would cost
    more than the run)."""
    before = load()
    async with bench_stack(day_seconds) as bench:
        progress(f"relance: {invoices} lifecycles, a day is {day_seconds} s")
        relance = await run_relance(bench, invoices)
        numbers = [f"B-{i:05d}" for i in range(invoices)][:histories]
        stages = await _final_stages(bench, numbers)
        progress(f"reading the histories of {len(numbers)} lifecycles")
        relance.histories = await read_histories(bench.client, numbers, stages)
        h = relance.histories
        # Path for path: a bare lifecycle per Relance one, doing what that path's did. (One
        # average for all would end the short paths late and the long ones early, and the
        # run's wall is its longest lifecycle.)
        mix = {path: (count, h.bare_input(path)) for path, count in sorted(relance.stages.items())}
        for path, (count, bare_input) in mix.items():
            progress(
                f"bare, {path}: {count} workflows of {bare_input.activities} no-op activities "
                f"and {bare_input.timers} timers of {bare_input.timer_seconds:.2f} s"
            )
        inputs = [bare_input for count, bare_input in mix.values() for _ in range(count)]
        bare = await run_bare(bench, inputs)
        bare_history = await _mixed_event_counts(bench.client, bare.ids, mix)
    return Comparison(invoices, day_seconds, relance, bare, mix, before, load(), bare_history)


async def _mixed_event_counts(
    client: Client, ids: list[str], mix: dict[str, tuple[int, BareInput]]
) -> dict[str, float]:
    """Events per type in a bare lifecycle: one history of each path, weighed by the mix
    (`ids` in the order `compare` started them: path after path, as the mix lists them)."""
    total: dict[str, float] = {}
    first = 0
    for count, _ in mix.values():
        history = await client.get_workflow_handle(ids[first]).fetch_history()
        for event in history.events:
            kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
            total[kind] = total.get(kind, 0.0) + count / len(ids)
        first += count
    return total


async def _final_stages(bench: Bench, numbers: list[str]) -> dict[str, str]:
    def read() -> dict[str, str]:
        with Session(bench.engine) as session:
            rows = session.exec(
                select(Invoice.number, Invoice.stage).where(col(Invoice.number).in_(numbers))
            ).all()
        return dict(rows)

    return await asyncio.to_thread(read)


def describe(c: Comparison) -> list[str]:
    return [
        f"{c.invoices} invoices on the default playbook, a day is {c.day_seconds} s; "
        f"final stages {dict(c.relance.stages)}",
        "bare, path for path (sized from Relance's histories): "
        + "; ".join(
            f"{path} ×{count}: {b.activities} no-op activities, {b.timers} timers of "
            f"{b.timer_seconds:.2f} s"
            for path, (count, b) in c.bare_mix.items()
        ),
        f"machine {c.load_before} before, {c.load_after} after",
    ]


def print_lifecycle(c: Comparison) -> None:
    r, b = c.relance, c.bare
    header(
        "Lifecycles: Relance's worker against a bare workflow of as many activities", describe(c)
    )
    row("lifecycles/s (wall)", r.rate, b.rate)
    row("worker CPU per lifecycle", r.cpu_ms("worker"), b.cpu_ms("worker"), "ms", better="low")
    row("server CPU per lifecycle", r.cpu_ms("server"), b.cpu_ms("server"), "ms", better="low")
    row("worker RSS at the end", r.worker_rss / 2**20, b.worker_rss / 2**20, "MiB", better="low")
    row(
        "worker peak RSS", r.worker_peak_rss / 2**20, b.worker_peak_rss / 2**20, "MiB", better="low"
    )
    mib = 2**20
    print(
        f"  (wall: relance {r.window.wall:.1f} s, bare {b.window.wall:.1f} s; ratios: >1× is "
        f"better than bare; peak RSS {r.worker_peak_rss / mib:.0f} MiB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=40)
    parser.add_argument("--day-seconds", type=float, default=0.05)
    args = parser.parse_args()
    print_lifecycle(asyncio.run(compare(args.invoices, args.day_seconds)))


if __name__ == "__main__":
    main()
