"""How long the portfolio and report queries take on a book of N invoices.

Seeds a SQLite store (in a temp dir) with N invoices over N/25 debtors, a payment on half of
them and two reminders each, then times each report as the API computes it and prints the
figures. Run: `.venv/bin/python -m bench.reports --invoices 5000`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlmodel import Session

from api.reports import service
from api.reports.schemas import SortKey
from config import Settings
from store.engine import make_engine, transaction
from store.migrate import upgrade
from store.tables import Debtor, Interaction, Invoice, Payment

SEGMENTS = ("tpe", "pme", "eti", "grand_compte")


def seed(path: Path, invoices: int) -> Settings:
    engine = make_engine(f"sqlite:///{path / 'relance.db'}")
    upgrade(engine)
    rng = random.Random(1)
    today = date.today()
    debtors = max(1, invoices // 25)
    with transaction(engine) as session:
        for d in range(debtors):
            session.add(
                Debtor(
                    id=f"D{d}",
                    name=f"Debtor {d}",
                    email=f"d{d}@example.com",
                    country="FR",
                    language="fr",
                    segment=SEGMENTS[d % 4],
                )
            )
        session.flush()
        for n in range(invoices):
            issued = today - timedelta(days=rng.randint(0, 360))
            due = issued + timedelta(days=45)
            amount = Decimal(rng.randint(10000, 900000)) / 100
            paid = n % 2 == 0 and due < today
            number = f"INV-{n:06d}"
            session.add(
                Invoice(
                    number=number,
                    debtor_id=f"D{n % debtors}",
                    amount=amount,
                    currency="EUR",
                    issue_date=issued,
                    due_date=due,
                    fingerprint="f" * 64,
                    playbook="pme",
                    playbook_version=1,
                    stage="paid" if paid else ("overdue" if due < today else "upcoming"),
                    outstanding=Decimal(0) if paid else amount,
                )
            )
            session.flush()
            if paid:
                on = due + timedelta(days=rng.randint(-5, 40))
                session.add(
                    Payment(
                        invoice_number=number,
                        reference=f"P{n}",
                        amount=amount,
                        currency="EUR",
                        outstanding_after=Decimal(0),
                        received_on=on,
                        recorded_at=datetime.combine(on, datetime.min.time(), UTC),
                    )
                )
            for step, offset in (("reminder_1", 3), ("reminder_2", 15)):
                sent = datetime.combine(due + timedelta(days=offset), datetime.min.time(), UTC)
                session.add(
                    Interaction(
                        idempotency_key=f"{number}:{step}:email",
                        invoice_number=number,
                        step_id=step,
                        channel="email",
                        recipient="debtor",
                        template="reminder",
                        status="sent",
                        sent_at=sent,
                    )
                )
    engine.dispose()
    return Settings(_env_file=None, data_dir=path)


def timed(what: str, run: Callable[[], object], repeat: int) -> None:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    print(f"  {what:<38} median {statistics.median(times) * 1000:8.1f} ms  (n={repeat})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invoices", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        settings = seed(Path(folder), args.invoices)
        print(f"seeded {args.invoices} invoices in {time.perf_counter() - start:.1f} s")
        engine = make_engine(settings.resolved_database_url)
        today = date.today()
        with Session(engine) as session:
            r = args.repeat
            timed(
                "GET /v1/invoices (page of 50)",
                lambda: service.list_invoices(session, {}, sort=SortKey.DUE_DATE),
                r,
            )
            timed(
                "GET /v1/invoices?risk_band=high",
                lambda: service.list_invoices(session, {"risk_band": "high"}),
                r,
            )
            timed(
                "GET /v1/debtors (page of 50)", lambda: service.list_debtors(session, None, 50), r
            )
            timed("GET /v1/reports/aging", lambda: service.aging(session, "EUR", None), r)
            timed(
                "GET /v1/reports/kpis (a year)",
                lambda: service.kpi_report(
                    session, settings, "EUR", today - timedelta(days=365), today, 7
                ),
                r,
            )
            timed("GET /v1/reports/forecast", lambda: service.forecast(session, "EUR"), r)
            timed("DSO trend (12 months)", lambda: service.dso_trend(session, "EUR"), r)
        engine.dispose()


if __name__ == "__main__":
    main()
