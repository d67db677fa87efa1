"""CPU per message sent: the `deliver` activity alone, against the I/O it cannot avoid.

The lifecycle benchmark measures the worker as a whole; this one takes the activity that costs
it most and runs it in-process, without Temporal, N times: each on its own invoice and debtor,
a reminder email by the embedded default (the outbox), with a transition's event to record.
The floor beside it does what any sender must: one row written and committed per message in
the same kind of store, and the same message written to a file. The ratio is how much of the
activity is Relance's own work (the reservation, the re-check, rendering, the legal copy).

Run: `.venv/bin/python -m bench.deliver --messages 300` (`--profile` prints where it goes).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

from temporalio.testing import ActivityEnvironment

from activities.delivery import DeliveryActivities
from activities.email import build_sender
from activities.messaging import MessagingActivities
from bench.harness import Cost, header, load, profiled, progress, row
from config import Settings
from contracts.invoice import DeliveryRequest, Snapshot
from domain.collection.commands import SendResult
from domain.collection.machine import ESCALATING
from domain.collection.records import EventKind, EventRecord
from domain.collection.state import Message
from domain.lifecycle import InvoiceFacts, InvoiceStatus, Stage
from domain.money import Money
from domain.playbook import Channel, Tone, load_playbook_named
from messages import Renderer
from store.engine import make_engine, transaction
from store.invoices import add_invoice, upsert_debtor
from store.migrate import upgrade
from store.tables import Debtor

PLANNED = datetime(2026, 3, 4, 8, tzinfo=UTC)
AMOUNT = Money.of("1500.50", "EUR")


def seed(settings: Settings, count: int) -> None:
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    playbook = load_playbook_named("default")
    with transaction(engine) as session:
        for i in range(count):
            upsert_debtor(
                session,
                Debtor(
                    id=f"C-{i}",
                    name=f"Customer {i}",
                    email=f"ap{i}@customer.example",
                    country="FR",
                    language="fr",
                ),
            )
            facts = InvoiceFacts(
                number=f"F-{i}",
                debtor_id=f"C-{i}",
                amount=AMOUNT,
                issue_date=date(2026, 1, 1),
                due_date=date(2026, 3, 1),
            )
            add_invoice(session, facts, playbook)
    engine.dispose()


def request(i: int) -> DeliveryRequest:
    number = f"F-{i}"
    return DeliveryRequest(
        invoice_number=number,
        debtor_id=f"C-{i}",
        message=Message(
            step_id="reminder_1",
            channel=Channel.EMAIL,
            template="reminder",
            tone=Tone.FIRM,
            wanted_in=ESCALATING,
            stage=Stage.OVERDUE,
        ),
        planned_at=PLANNED,
        as_of=PLANNED.date(),
        outstanding=AMOUNT,
        snapshot=Snapshot(
            invoice_number=number,
            status=InvoiceStatus(
                number=number, stage=Stage.OVERDUE, outstanding=AMOUNT, revision=2
            ),
            records=[
                EventRecord(
                    key="step:reminder_1",
                    kind=EventKind.STEP_DONE,
                    at=PLANNED,
                    summary="reminder_1 planned",
                    detail={"step": "reminder_1"},
                )
            ],
        ),
    )


def relance(settings: Settings, count: int, profile: bool) -> tuple[Cost, int]:
    """What `count` deliveries cost; how many were sent."""
    engine = make_engine(settings.resolved_database_url)
    messaging = MessagingActivities(engine, build_sender(settings), Renderer(), settings)
    delivery = DeliveryActivities(engine, messaging)
    env = ActivityEnvironment()
    requests = [request(i) for i in range(count)]
    # The first send warms the renderer's caches and the pool, as a worker's first minute does.
    env.run(delivery.deliver, requests[0])
    sent = 0
    with profiled(profile):
        started = Cost.now()
        for each in requests[1:]:
            if env.run(delivery.deliver, each).result == SendResult.SENT:
                sent += 1
        cost = Cost.now() - started
    engine.dispose()
    return cost, sent


def floor(folder: Path, count: int, text: str) -> Cost:
    """What any sender must do per message: commit a row, write the message."""
    folder.mkdir()
    db = sqlite3.connect(folder / "floor.sqlite3")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE sent (key TEXT PRIMARY KEY, status TEXT, body TEXT, at TEXT)")
    started = Cost.now()
    for i in range(count):
        key = f"F-{i}:reminder_1:email"
        with db:
            db.execute(
                "INSERT INTO sent VALUES (?, ?, ?, ?)",
                (key, "sent", text, datetime.now(UTC).isoformat()),
            )
        (folder / f"{key}.eml").write_text(text)
    cost = Cost.now() - started
    db.close()
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile")
    args = parser.parse_args()
    count = max(2, args.messages)
    with tempfile.TemporaryDirectory(prefix="relance-bench-") as tmp:
        data = Path(tmp)
        settings = Settings(_env_file=None, data_dir=data / "relance")
        progress(f"seeding {count} invoices, one debtor each")
        seed(settings, count)
        progress(f"delivering {count} reminders")
        cost, sent = relance(settings, count, args.profile)
        sample = next(settings.resolved_outbox_dir.glob("*.eml")).read_text()
        progress("the floor: a committed row and a written file per message")
        bare = floor(data / "floor", count - 1, sample)
    per = 1000 / (count - 1)
    header(
        f"deliver: {count - 1} reminder emails, in-process, SQLite + outbox",
        [f"load {load()}", f"sent {sent} of {count - 1}"],
    )
    # "bare" here is the floor: the ratio reads as the share of the activity that I/O needs.
    row("CPU per message", cost.cpu * per, bare.cpu * per, "ms", better="low")
    row("  of which user (Python)", cost.user * per, bare.user * per, "ms", better="low")
    row("  of which system (I/O calls)", cost.system * per, bare.system * per, "ms", better="low")
    row("wall per message", cost.wall * per, bare.wall * per, "ms", better="low")


if __name__ == "__main__":
    main()
