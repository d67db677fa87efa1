"""Rows for tests that read the store directly (legal file, late-payment costs)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy.engine import Engine

from store.engine import transaction
from store.tables import Debtor, Invoice


def add_invoice(
    engine: Engine,
    number: str,
    *,
    amount: str,
    outstanding: str,
    stage: str = "overdue",
    debtor_id: str = "C-1",
    debtor_name: str = "Dupont & Fils SARL",
    issue_date: date = date(2025, 1, 30),
    due_date: date = date(2025, 3, 31),
    new_debtor: bool = True,
) -> None:
    """A French debtor (unless `new_debtor` is False: it is already stored) and its invoice in
    EUR, as a hand-over would have stored them."""
    with transaction(engine) as session:
        if new_debtor:
            session.add(
                Debtor(
                    id=debtor_id,
                    name=debtor_name,
                    email="compta@dupont.example",
                    country="FR",
                    language="fr",
                )
            )
            session.flush()
        session.add(
            Invoice(
                number=number,
                debtor_id=debtor_id,
                amount=Decimal(amount),
                currency="EUR",
                issue_date=issue_date,
                due_date=due_date,
                fingerprint="f",
                playbook="default",
                playbook_version=1,
                stage=stage,
                outstanding=Decimal(outstanding),
            )
        )
