"""Chaos: invoices collected while the worker is SIGKILLed and Temporal is killed under it.

    python -m bench.chaos --invoices 100 --kills 12

Everything runs as in production, on one machine: the Temporal dev server `relance dev` runs
(a SQLite file, so it survives being killed), the worker and the API as processes of their
own, and the real `sendgrid` client talking to the loopback SendGrid fake, which answers about
one request in five with a 5xx or a 429 and holds one in ten for 1.5 s. Days last
`--day-seconds`. Each invoice follows a scenario drawn from a seeded generator (paid at once,
after a reminder, after the formal notice, while an escalation waits, after the mediation;
escalations approved or rejected; left unpaid), while the worker is killed `--kills` times at
seeded moments and restarted, and the Temporal server is killed once and restarted on the
same file.

Then it checks what a debtor and the back office would notice:
- no message for an invoice reached SendGrid after the API acknowledged its payment (the
  thank-you excepted);
- no message went twice, except what README's "Never after a payment, never twice" allows: a
  second copy of a message that may be resent blindly (not a formal notice, mediation or
  legal file), and only when a worker was killed between the two copies;
- every acknowledged payment is on its invoice (`GET /v1/invoices/{n}`);
- every invoice ends where its scenario leads: `paid`, and thanked; `handed_off` (the legal
  file sent) once both escalations were approved; `formal_notice` when the mediation was
  rejected or not decided.

`tests/chaos/test_chaos.py` runs a small one in the test suite. Linux only (SIGKILL, /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

import httpx

from bench.harness import Bench, bench_stack, progress
from domain.lifecycle import Stage
from tests.api.conftest import invoice_body as handed_over
from tests.fakes.sendgrid_api import FakeSendGrid, ReceivedMessage
from tests.workflows.harness import CREDITOR_ADDRESS

SENDGRID_KEY = "SG.chaos"
# Late enough that every step up to the mediation is due: the workflow catches up with a
# reminder, then the formal notice, then asks for the mediation approval.
DAYS_LATE = 50
# The steps whose second copy would do harm (activities/delivery.py NEVER_BLIND_RESEND).
NEVER_TWICE = frozenset({"formal_notice", "mediation", "legal"})
THANK_YOU = "thank_you"


class Plan(StrEnum):
    PAID_AT_ONCE = "paid at once"
    PAID_AFTER_REMINDER = "paid after the reminder"
    PAID_IN_TWO = "half after the reminder, the rest after the formal notice"
    PAID_AFTER_NOTICE = "paid after the formal notice"
    PAID_WHILE_PENDING = "paid while the mediation waits for approval"
    PAID_AFTER_MEDIATION = "mediation approved, then paid"
    LEGAL = "mediation and legal hand-off approved"
    REJECTED = "mediation rejected"
    UNDECIDED = "left unpaid, nobody decides"


# What each scenario ends as, seen on GET /v1/invoices/{n}, and the last message the debtor
# gets (none more while an escalation waits for a person).
END_STAGE = {plan: Stage.PAID for plan in Plan} | {
    Plan.LEGAL: Stage.HANDED_OFF,
    Plan.REJECTED: Stage.FORMAL_NOTICE,
    Plan.UNDECIDED: Stage.FORMAL_NOTICE,
}
LAST_MESSAGE = {plan: THANK_YOU for plan in Plan if END_STAGE[plan] == Stage.PAID} | {
    Plan.LEGAL: "legal"
}


@dataclass(frozen=True)
class ChaosConfig:
    invoices: int = 30
    worker_kills: int = 5
    server_kills: int = 1
    seed: int = 12
    day_seconds: float = 1.0
    failure_ratio: float = 0.2
    slow_ratio: float = 0.1
    slow_seconds: float = 1.5
    # The kills fall within this many seconds from the first hand-over.
    chaos_seconds: float = 45.0
    # How long the invoices may take to settle once the chaos is over (a slow machine).
    settle_seconds: float = 300.0


@dataclass
class Ledger:
    """What the back office was told, with when (time.time(), the fake's clock)."""

    paid_at: dict[str, float] = field(default_factory=dict)
    payments: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    worker_kills: list[float] = field(default_factory=list)
    server_kills: list[float] = field(default_factory=list)
    # A worker that died without being killed by us (a crash, a fatal error): its exit code.
    worker_exits: list[int] = field(default_factory=list)


@dataclass
class ChaosResult:
    config: ChaosConfig
    plans: dict[str, Plan]
    ledger: Ledger
    messages: list[ReceivedMessage]
    requests: int
    failures_injected: int
    after_payment: list[str]
    duplicates: list[str]
    resent: list[str]
    lost_payments: list[str]
    wrong_end: list[str]
    wall: float

    @property
    def problems(self) -> list[str]:
        return self.after_payment + self.duplicates + self.lost_payments + self.wrong_end

    def figures(self) -> list[str]:
        c = self.config
        return [
            f"invoices                {len(self.plans)} (seed {c.seed}, day {c.day_seconds} s)",
            f"worker SIGKILLs         {len(self.ledger.worker_kills)}",
            f"server SIGKILLs         {len(self.ledger.server_kills)}",
            f"worker deaths unasked   {len(self.ledger.worker_exits)} {self.ledger.worker_exits}",
            f"SendGrid requests       {self.requests} ({self.failures_injected} answered 5xx/429)",
            f"messages accepted       {len(self.messages)}",
            f"payments acknowledged   {sum(len(p) for p in self.ledger.payments.values())}",
            f"resent after a kill     {len(self.resent)} (allowed: outcome unknown)",
            f"duplicates              {len(self.duplicates)}",
            f"after-payment messages  {len(self.after_payment)}",
            f"lost payments           {len(self.lost_payments)}",
            f"wrong end state         {len(self.wrong_end)}",
            f"wall time               {self.wall:.1f} s",
        ]


def plans_for(config: ChaosConfig) -> dict[str, Plan]:
    draw = random.Random(config.seed)
    kinds = list(Plan)
    # Every scenario at least once when there is room, the rest drawn.
    chosen = kinds[: config.invoices] + [
        draw.choice(kinds) for _ in range(config.invoices - len(kinds))
    ]
    draw.shuffle(chosen)
    return {f"CHAOS-{i:04d}": plan for i, plan in enumerate(chosen, start=1)}


def debtor_email(number: str) -> str:
    return f"{number.lower()}@debtor.example"


def invoice_body(number: str) -> dict[str, Any]:
    """The test suite's invoice (1200 EUR, a PME in Lyon), DAYS_LATE days late."""
    today = date.today()
    body = handed_over(
        number,
        issue_date=(today - timedelta(days=DAYS_LATE + 30)).isoformat(),
        due_date=(today - timedelta(days=DAYS_LATE)).isoformat(),
    )
    # One debtor per invoice: each message stands for one invoice (no message of the day
    # listing several), so every copy can be told apart.
    body["debtor"].update(id=f"D-{number}", email=debtor_email(number))
    return body


def steps_received(messages: list[ReceivedMessage], number: str) -> list[str]:
    return [m.custom_args.get("step", "") for m in messages if debtor_email(number) in m.to_emails]


class Api:
    """The back office and a collector, retrying through outages as a careful client does:
    the same Idempotency-Key until an answer that is not a 5xx, a 409 "in progress" or a
    timeout."""

    def __init__(self, http: httpx.AsyncClient, key: str) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {key}"}

    async def change(self, path: str, body: dict[str, Any], key: str) -> httpx.Response:
        headers = {**self.headers, "Idempotency-Key": key}
        while True:
            try:
                response = await self.http.post(path, json=body, headers=headers)
            except httpx.TransportError:
                await asyncio.sleep(1)
                continue
            if response.status_code >= 500 or (
                response.status_code == 409 and "Retry-After" in response.headers
            ):
                await asyncio.sleep(1)
                continue
            return response

    async def get(self, path: str) -> Any:
        while True:
            with contextlib.suppress(httpx.TransportError):
                response = await self.http.get(path, headers=self.headers)
                if response.status_code < 500:
                    response.raise_for_status()
                    return response.json()
            await asyncio.sleep(1)

    async def approval(self, number: str, step: str) -> str:
        """The id of the invoice's pending approval for `step`, once it is asked for."""
        while True:
            pending = await self.get("/v1/approvals?status=pending")
            for row in pending:
                if row["invoice_number"] == number and row["step_id"] == step:
                    return str(row["id"])
            await asyncio.sleep(0.5)


class Chaos:
    def __init__(self, config: ChaosConfig, bench: Bench, sendgrid: FakeSendGrid) -> None:
        self.config = config
        self.bench = bench
        self.sendgrid = sendgrid
        self.ledger = Ledger()
        self.draw = random.Random(config.seed + 1)
        self.worker: subprocess.Popen[bytes] | None = None
        # One of us at a time replaces the worker: never two running, never a kill missed.
        self._replacing = asyncio.Lock()

    # ------------------------------------------------------------------ processes

    def env(self) -> dict[str, str]:
        return {
            "RELANCE_EMAIL_BACKEND": "sendgrid",
            "RELANCE_SENDGRID_API_KEY": SENDGRID_KEY,
            "RELANCE_SENDGRID_HOST": self.sendgrid.url,
            "RELANCE_CREDITOR_ADDRESS": json.dumps(CREDITOR_ADDRESS),
        }

    def start_worker(self) -> None:
        if self.worker in self.bench.processes:
            self.bench.processes.remove(self.worker)
        self.worker = self.bench.spawn(["-m", "worker"], "worker", **self.env())

    async def supervise(self) -> None:
        """Restart a worker that died on its own, as its supervisor would, noting its code."""
        while True:
            await asyncio.sleep(0.2)
            async with self._replacing:
                worker = self.worker
                if worker is None or worker.poll() is None:
                    continue
                code = worker.returncode
                self.ledger.worker_exits.append(code)
                progress(f"the worker exited by itself with code {code}: restarting it")
                await asyncio.sleep(1)
                self.start_worker()

    async def kill_worker(self) -> None:
        pause = self.draw.uniform(0.2, 2.0)
        async with self._replacing:
            assert self.worker is not None
            self.worker.send_signal(signal.SIGKILL)
            self.worker.wait()
            # Once it is dead: a copy SendGrid took before this moment came from it.
            self.ledger.worker_kills.append(time.time())
            await asyncio.sleep(pause)
            self.start_worker()

    async def kill_server(self) -> None:
        server = self.bench.server
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)
        await asyncio.to_thread(server.stop)  # reaps it
        self.ledger.server_kills.append(time.time())
        progress("Temporal server killed")
        await asyncio.sleep(self.draw.uniform(0.5, 3.0))
        await asyncio.to_thread(server.start)
        progress("Temporal server restarted on the same file")

    async def havoc(self, started: float) -> None:
        kills: list[tuple[float, Callable[[], Awaitable[None]]]] = [
            (self.draw.uniform(3, self.config.chaos_seconds), self.kill_worker)
            for _ in range(self.config.worker_kills)
        ]
        kills += [
            (self.draw.uniform(5, self.config.chaos_seconds), self.kill_server)
            for _ in range(self.config.server_kills)
        ]
        for at, kill in sorted(kills, key=lambda k: k[0]):
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            await kill()
        progress("chaos over")

    # ------------------------------------------------------------------ the back office

    async def pay(
        self, api: Api, number: str, reference: str, amount: str, *, last: bool = True
    ) -> None:
        response = await api.change(
            f"/v1/invoices/{number}/payments",
            {"reference": reference, "amount": amount, "currency": "EUR"},
            key=f"pay-{number}-{reference}",
        )
        if response.status_code not in (200, 201):
            raise AssertionError(f"payment {reference} on {number}: {response.text}")
        if last:
            # Acknowledged in full: from here on, nothing but the thank-you may reach the debtor.
            self.ledger.paid_at[number] = time.time()
        self.ledger.payments[number].append(reference)

    async def decide(self, api: Api, number: str, step: str, approve: bool) -> None:
        approval = await api.approval(number, step)
        response = await api.change(
            f"/v1/approvals/{approval}/decision",
            {"approve": approve, "comment": "chaos"},
            key=f"decide-{approval}",
        )
        if response.status_code != 200:
            raise AssertionError(f"decision on {approval}: {response.text}")

    async def received(self, api: Api, number: str, prefix: str) -> None:
        """Until the debtor has received a message of a step starting with `prefix`, or its
        outcome is unknown: a kill between SendGrid's answer and the mark leaves a formal
        notice, a mediation or a legal file to a person's check, never resent (README)."""
        while True:
            if await self.reached(api, number, prefix):
                return
            await asyncio.sleep(0.3)  # polling the fake: it signals nothing

    async def reached(self, api: Api, number: str, prefix: str) -> bool:
        if any(step.startswith(prefix) for step in self.steps(number)):
            return True
        history = await api.get(f"/v1/invoices/{number}/history")
        return any(
            entry["kind"] == "message_unknown" and f" for {prefix}" in entry["summary"]
            for entry in history
        )

    def steps(self, number: str) -> list[str]:
        return steps_received(self.sendgrid.messages, number)

    async def play(self, api: Api, number: str, plan: Plan) -> None:
        response = await api.change("/v1/invoices", invoice_body(number), key=f"new-{number}")
        if response.status_code not in (200, 201):
            raise AssertionError(f"hand-over of {number}: {response.text}")
        if plan == Plan.PAID_AT_ONCE:
            await self.pay(api, number, "VIR-1", "1200.00")
        elif plan == Plan.PAID_AFTER_REMINDER:
            await self.received(api, number, "reminder")
            await self.pay(api, number, "VIR-1", "1200.00")
        elif plan == Plan.PAID_IN_TWO:
            await self.received(api, number, "reminder")
            await self.pay(api, number, "VIR-1", "600.00", last=False)
            await self.received(api, number, "formal_notice")
            await self.pay(api, number, "VIR-2", "600.00")
        elif plan == Plan.PAID_AFTER_NOTICE:
            await self.received(api, number, "formal_notice")
            await self.pay(api, number, "VIR-1", "1200.00")
        elif plan == Plan.PAID_WHILE_PENDING:
            await api.approval(number, "mediation")
            await self.pay(api, number, "VIR-1", "1200.00")
        elif plan == Plan.PAID_AFTER_MEDIATION:
            await self.decide(api, number, "mediation", approve=True)
            await self.received(api, number, "mediation")
            await self.pay(api, number, "VIR-1", "1200.00")
        elif plan == Plan.LEGAL:
            await self.decide(api, number, "mediation", approve=True)
            await self.decide(api, number, "legal", approve=True)
        elif plan == Plan.REJECTED:
            await self.decide(api, number, "mediation", approve=False)
        elif plan == Plan.UNDECIDED:
            await api.approval(number, "mediation")

    async def settled(self, api: Api, number: str, plan: Plan) -> None:
        """Until the invoice is where its scenario ends, its last message received."""
        while True:
            invoice = await api.get(f"/v1/invoices/{number}")
            last = LAST_MESSAGE.get(plan)
            if invoice["stage"] == END_STAGE[plan] and (
                last is None or await self.reached(api, number, last)
            ):
                return
            await asyncio.sleep(1)


# ------------------------------------------------------------------ the checks


def check(
    plans: dict[str, Plan],
    ledger: Ledger,
    messages: list[ReceivedMessage],
    invoices: dict[str, dict[str, Any]],
) -> tuple[list[str], list[str], list[str], list[str], list[str]]:
    """(after payment, duplicates, allowed resends, lost payments, wrong end states)."""
    after_payment: list[str] = []
    # One message is one (invoice, step, recipient): the debtor, or the mediator or lawyer a
    # step also notifies.
    copies: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for message in messages:
        number = message.custom_args.get("invoice", "")
        step = message.custom_args.get("step", "")
        copies[(number, step, ",".join(message.to_emails))].append(message.received_at)
        paid_at = ledger.paid_at.get(number)
        to_debtor = debtor_email(number) in message.to_emails
        if to_debtor and step != THANK_YOU and paid_at and message.received_at > paid_at:
            late = message.received_at - paid_at
            after_payment.append(f"{number}: {step} reached SendGrid {late:.3f} s after payment")
    duplicates: list[str] = []
    resent: list[str] = []
    for (number, step, _), times in sorted(copies.items()):
        if len(times) == 1:
            continue
        first, second = sorted(times)[:2]
        straddles = any(first < kill < second for kill in ledger.worker_kills)
        if step not in NEVER_TWICE and len(times) == 2 and straddles:
            resent.append(f"{number}: {step}")
        else:
            duplicates.append(f"{number}: {step} sent {len(times)} times")
    lost: list[str] = []
    wrong: list[str] = []
    for number, plan in plans.items():
        invoice = invoices[number]
        listed = {p["reference"] for p in invoice["payments"]}
        lost += [
            f"{number}: payment {r} missing" for r in ledger.payments[number] if r not in listed
        ]
        expected = END_STAGE[plan]
        if invoice["stage"] != expected:
            wrong.append(f"{number} ({plan}): {invoice['stage']}, expected {expected}")
        last = LAST_MESSAGE.get(plan)
        if last is not None and last not in steps_received(messages, number):
            wrong.append(f"{number} ({plan}): no {last} message")
    return after_payment, duplicates, resent, lost, wrong


async def run(config: ChaosConfig) -> ChaosResult:
    began = time.perf_counter()
    plans = plans_for(config)
    with FakeSendGrid(api_key=SENDGRID_KEY) as sendgrid:
        sendgrid.fail_randomly(config.failure_ratio, seed=config.seed)
        # Now and then a slow answer: a payment may come while a message is at SendGrid.
        sendgrid.delay_randomly(config.slow_ratio, config.slow_seconds, seed=config.seed)
        async with bench_stack(config.day_seconds, creditor_address=CREDITOR_ADDRESS) as bench:
            chaos = Chaos(config, bench, sendgrid)
            chaos.start_worker()
            _, base = await bench.start_api()
            supervisor = asyncio.create_task(chaos.supervise())
            try:
                async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                    api = Api(http, bench.api_key())
                    started = time.monotonic()
                    progress(f"{len(plans)} invoices, {config.worker_kills} worker kills")
                    havoc = asyncio.create_task(chaos.havoc(started))
                    await asyncio.wait_for(
                        asyncio.gather(havoc, *(chaos.play(api, n, p) for n, p in plans.items())),
                        timeout=config.chaos_seconds + config.settle_seconds,
                    )
                    progress("every scenario played: waiting for the invoices to settle")
                    # What has not settled by then is reported by the checks below.
                    waiting = [
                        asyncio.create_task(chaos.settled(api, n, p)) for n, p in plans.items()
                    ]
                    await asyncio.wait(waiting, timeout=config.settle_seconds)
                    for task in waiting:
                        task.cancel()
                    invoices = {n: await api.get(f"/v1/invoices/{n}") for n in plans}
            finally:
                supervisor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await supervisor
        messages = sendgrid.messages
        after, duplicates, resent, lost, wrong = check(plans, chaos.ledger, messages, invoices)
        return ChaosResult(
            config=config,
            plans=plans,
            ledger=chaos.ledger,
            messages=messages,
            requests=sendgrid.requests_count,
            failures_injected=sendgrid.failures_injected,
            after_payment=after,
            duplicates=duplicates,
            resent=resent,
            lost_payments=lost,
            wrong_end=wrong,
            wall=time.perf_counter() - began,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=100)
    parser.add_argument("--kills", type=int, default=12, help="worker SIGKILLs")
    parser.add_argument("--server-kills", type=int, default=1)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--day-seconds", type=float, default=1.0)
    parser.add_argument("--failure-ratio", type=float, default=0.2)
    parser.add_argument("--chaos-seconds", type=float, default=90.0)
    args = parser.parse_args()
    config = ChaosConfig(
        invoices=args.invoices,
        worker_kills=args.kills,
        server_kills=args.server_kills,
        seed=args.seed,
        day_seconds=args.day_seconds,
        failure_ratio=args.failure_ratio,
        chaos_seconds=args.chaos_seconds,
    )
    result = asyncio.run(run(config))
    print("\nchaos")
    for line in result.figures():
        print(f"  {line}")
    for problem in result.problems:
        print(f"  ! {problem}")
    raise SystemExit(1 if result.problems else 0)


if __name__ == "__main__":
    main()
