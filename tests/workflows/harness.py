"""Hands invoices to a real worker on a real Temporal server and reads what happened."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import os
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.email import EmailSender, OutboxSender
from activities.notice_sender import sending_notices
from config import Settings
from domain.calendar import DEFAULT_WINDOW, debtor_timezone, next_send_time
from domain.lifecycle import InvoiceFacts, InvoiceStatus, PaymentInput
from domain.money import Money
from domain.playbook import Playbook, load_playbook_named
from domain.postal import postal_address
from store import notices
from store.engine import transaction
from store.invoices import add_invoice, events_of, interactions_of, upsert_debtor
from store.tables import Debtor, Event, Interaction
from worker import build_worker
from workflows.client import invoice_handle, start_invoice
from workflows.contract import SEARCH_ATTRIBUTES
from workflows.invoice import InvoiceWorkflow

SEND_HOUR = time(9, 0, tzinfo=UTC)


def business_day(facts: InvoiceFacts, offset_days: int) -> int:
    """The day (relative to the due date) a step planned at `offset_days` really goes out."""
    nominal = datetime.combine(
        facts.due_date + timedelta(days=offset_days),
        DEFAULT_WINDOW.start,
        tzinfo=debtor_timezone(facts.country, facts.timezone),
    )
    actual = next_send_time(nominal, country=facts.country, timezone=facts.timezone)
    return (actual.date() - facts.due_date).days


def installed_binary(name: str) -> str:
    """A Temporal server binary installed next to this interpreter (nothing is downloaded)."""
    found = Path(sys.executable).parent / name
    path = str(found) if found.exists() else shutil.which(name)
    if not path:
        raise RuntimeError(f"{name} is not installed: run `make test`, which installs it")
    return path


async def start_time_skipping() -> WorkflowEnvironment:
    """The time-skipping test server, with our search attributes registered."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(key.indexed_value_type)
                for key in SEARCH_ATTRIBUTES
            },
        )
    )
    # The server starts at the real now: the day and hour a test runs decide which weekday
    # each step falls on. Shifting the start tries other days and hours without waiting for
    # them (e.g. `RELANCE_TEST_CLOCK_SHIFT_HOURS=60 pytest tests/workflows`).
    shift = float(os.environ.get("RELANCE_TEST_CLOCK_SHIFT_HOURS", "0") or 0)
    if shift < 0:
        # The server's clock only moves forward.
        raise ValueError(f"RELANCE_TEST_CLOCK_SHIFT_HOURS must be 0 or more, not {shift}")
    if shift > 0:
        await env.sleep(timedelta(hours=shift))
    return env


@dataclass
class Harness:
    env: WorkflowEnvironment
    engine: Engine
    outbox: Path
    task_queue: str
    settings: Settings
    started: list[str] = field(default_factory=list)

    async def today(self) -> date:
        return (await self.env.get_current_time()).date()

    async def hand_over(
        self,
        number: str,
        *,
        due_in_days: int,
        amount: str = "1200.00",
        currency: str = "EUR",
        playbook: Playbook | None = None,
        language: str = "fr",
        debtor_id: str | None = None,
        history_limit: int = 0,
    ) -> InvoiceFacts:
        today = await self.today()
        facts = InvoiceFacts(
            number=number,
            debtor_id=debtor_id or f"D-{number}",
            amount=Money.of(Decimal(amount), currency),
            issue_date=today - timedelta(days=30),
            due_date=today + timedelta(days=due_in_days),
            language=language,
        )
        playbook = playbook or load_playbook_named("default")
        with transaction(self.engine) as session:
            upsert_debtor(
                session,
                Debtor(
                    id=facts.debtor_id,
                    name="Dupont & Fils SARL",
                    email=f"compta+{number.lower()}@dupont.example",
                    country="FR",
                    language=language,
                    postal_address=DEBTOR_ADDRESS,
                ),
            )
            add_invoice(session, facts, playbook)
        self.started.append(number)
        await start_invoice(
            self.env.client,
            facts,
            playbook,
            task_queue=self.task_queue,
            day_seconds=self.settings.day_seconds,
            history_limit=history_limit,
        )
        return facts

    def handle(self, number: str) -> WorkflowHandle[InvoiceWorkflow, InvoiceStatus]:
        return invoice_handle(self.env.client, number)

    async def status(self, number: str) -> InvoiceStatus:
        return await self.handle(number).query(InvoiceWorkflow.status)

    async def pay(self, number: str, reference: str, amount: str, currency: str = "EUR") -> Any:
        return await self.handle(number).execute_update(
            InvoiceWorkflow.record_payment,
            PaymentInput(reference=reference, amount=Money.of(Decimal(amount), currency)),
        )

    async def sleep_until_day(self, facts: InvoiceFacts, offset_days: float) -> None:
        """Skip time to `offset_days` after the due date, 10:00 UTC (after the 09:00 sends)."""
        target = datetime.combine(facts.due_date, SEND_HOUR) + timedelta(days=offset_days, hours=1)
        now = await self.env.get_current_time()
        if target > now:
            await self.env.sleep(target - now)

    async def ended(self, number: str, *, max_days: int = 5) -> InvoiceStatus:
        """The workflow's result, skipping time until it ends: a thank-you waits for the next
        business day when the debtor already had a message the day of the payment."""

        async def done() -> bool:
            described = await self.handle(number).describe()
            return described.status != WorkflowExecutionStatus.RUNNING

        await self.advance_until(done, max_days=max_days, step_hours=6)
        return await self.handle(number).result()

    async def notices_posted(self, seconds: float = 60) -> None:
        """Wait (in real time: the sender runs on the wall clock) until the back-office outbox
        has posted everything it holds."""
        for _ in range(int(seconds * 10)):
            with Session(self.engine) as session:
                if notices.pending(session) == 0:
                    return
            await asyncio.sleep(0.1)
        raise AssertionError("back-office notices still waiting to be posted")

    async def advance_until(
        self, done: Callable[[], Awaitable[bool]], *, max_days: int = 120, step_hours: int = 6
    ) -> None:
        """Skip time in small steps until `done()` holds: steps move with the calendar."""
        for _ in range(max_days * 24 // step_hours):
            if await done():
                return
            await self.env.sleep(timedelta(hours=step_hours))
        raise AssertionError(f"still waiting after {max_days} days")

    async def until_pending_approval(self, number: str) -> None:
        async def pending() -> bool:
            return (await self.status(number)).pending_approval is not None

        await self.advance_until(pending)

    async def until_sent(self, facts: InvoiceFacts, step_id: str) -> None:
        async def sent() -> bool:
            return step_id in [step for step, _, _ in self.sent(facts)]

        await self.advance_until(sent)

    def interactions(self, number: str) -> Sequence[Interaction]:
        with transaction(self.engine) as session:
            return interactions_of(session, number)

    def events(self, number: str) -> Sequence[Event]:
        with transaction(self.engine) as session:
            return events_of(session, number)

    def sent(self, facts: InvoiceFacts) -> list[tuple[str, str, int]]:
        """(step, recipient, day relative to the due date) of each message sent, in order."""
        return [
            (
                row.step_id,
                row.recipient,
                (row.planned_at.astimezone(UTC).date() - facts.due_date).days,
            )
            for row in self.interactions(facts.number)
            if row.status == "sent" and row.planned_at is not None
        ]

    def outbox_messages(self) -> list[email.message.EmailMessage]:
        messages = []
        for path in sorted(self.outbox.glob("*.eml")):
            parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(parsed, email.message.EmailMessage)
            messages.append(parsed)
        return messages


# Letters need both ends' postal addresses (the print queue writes PDFs for them).
CREDITOR_ADDRESS = {
    "street": ["12 rue de la Paix"],
    "postal_code": "75002",
    "city": "Paris",
    "country": "FR",
}
DEBTOR_ADDRESS = postal_address(
    name="Dupont & Fils SARL",
    street=["4 avenue des Tilleuls"],
    postal_code="69003",
    city="Lyon",
    country="FR",
).model_dump(mode="json")


@asynccontextmanager
async def running_worker(
    env: WorkflowEnvironment,
    engine: Engine,
    tmp_path: Path,
    task_queue: str,
    *,
    sender: EmailSender | None = None,
    worker: Worker | None = None,
    **settings_changes: Any,
) -> AsyncIterator[Harness]:
    outbox = tmp_path / "outbox"
    settings_changes.setdefault("creditor_address", CREDITOR_ADDRESS)
    # The strict sandbox: a non-deterministic call on any tested path of workflow code fails
    # here, which production's lean sandbox (modules loaded once) would not notice.
    settings_changes.setdefault("worker_sandbox_passthrough_all", False)
    settings = Settings(
        _env_file=None, data_dir=tmp_path, task_queue=task_queue, **settings_changes
    )
    worker = worker or build_worker(
        env.client,
        settings,
        engine,
        sender=sender or OutboxSender(outbox, settings.email_from),
        task_queue=task_queue,
    )
    harness = Harness(env, engine, outbox, task_queue, settings)
    async with worker, sending_notices(engine, settings):
        try:
            yield harness
        finally:
            # Leave nothing running behind: on the time-skipping server, a workflow whose
            # worker is gone holds tasks that stall the clock for the tests that follow.
            for number in harness.started:
                handle = harness.handle(number)
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    # It may complete between the two calls: that is fine too.
                    with contextlib.suppress(RPCError):
                        await handle.terminate("test finished")
