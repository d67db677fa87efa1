"""The reports API on a store seeded row by row (no workflow needed to read the read model).

Requests go through the ASGI app without its lifespan: reports read the store only, so no
Temporal client is involved.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from api.app import create_app
from api.auth import Role, create_api_key
from config import Settings
from store.engine import transaction
from store.tables import Debtor, Dispute, Event, Interaction, Invoice, Payment, Task


@dataclass
class ReportsApi:
    http: httpx.AsyncClient
    engine: Engine
    key: str

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}", **kw.pop("headers", {})}
        return await self.http.get(url, headers=headers, **kw)

    async def json(self, url: str, **kw: Any) -> Any:
        response = await self.get(url, **kw)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def report_settings(tmp_path: Path) -> Settings:
    # Unit costs chosen for the worked example: 2 cents an email, 2 € a letter, 5 € a call.
    return Settings(
        _env_file=None,
        data_dir=tmp_path,
        cost_email=Decimal("0.02"),
        cost_sms=Decimal("0.10"),
        cost_letter=Decimal("2.00"),
        cost_phone=Decimal("5.00"),
    )


@pytest.fixture
async def reports_api(any_engine: Engine, report_settings: Settings) -> AsyncIterator[ReportsApi]:
    app = create_app(report_settings, engine=any_engine)
    key = create_api_key(any_engine, Role.OPS, "reports-tester")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://relance.test") as http:
        yield ReportsApi(http, any_engine, key)


def at(day: str, hour: int = 9) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


class Seed:
    """Rows as the workflow's activities would have written them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def debtor(self, debtor_id: str, segment: str | None, name: str | None = None) -> None:
        with transaction(self.engine) as s:
            s.add(
                Debtor(
                    id=debtor_id,
                    name=name or f"Debtor {debtor_id}",
                    email=f"{debtor_id.lower()}@example.com",
                    country="FR",
                    language="fr",
                    segment=segment,
                )
            )

    def invoice(
        self,
        number: str,
        debtor: str,
        amount: str,
        issued: date | str,
        due: date | str,
        *,
        stage: str = "overdue",
        outstanding: str | None = None,
        playbook: str = "pme",
        currency: str = "EUR",
        next_step: str | None = None,
        next_step_at: datetime | None = None,
    ) -> None:
        with transaction(self.engine) as s:
            s.add(
                Invoice(
                    number=number,
                    debtor_id=debtor,
                    amount=Decimal(amount),
                    currency=currency,
                    issue_date=date.fromisoformat(str(issued)),
                    due_date=date.fromisoformat(str(due)),
                    fingerprint="f" * 64,
                    playbook=playbook,
                    playbook_version=1,
                    stage=stage,
                    outstanding=Decimal(outstanding if outstanding is not None else amount),
                    next_step=next_step,
                    next_step_at=next_step_at,
                )
            )

    def payment(self, number: str, amount: str, on: str, outstanding_after: str) -> None:
        with transaction(self.engine) as s:
            s.add(
                Payment(
                    invoice_number=number,
                    reference=f"PAY-{number}-{on}",
                    amount=Decimal(amount),
                    currency="EUR",
                    outstanding_after=Decimal(outstanding_after),
                    received_on=date.fromisoformat(on),
                    recorded_at=at(on),
                )
            )

    def event(self, number: str, kind: str, on: str, stage: str = "handed_off") -> None:
        """A timeline entry (the hand-off, the end of the collection)."""
        row = Event(invoice_number=number, key=kind, kind=kind, at=at(on), stage=stage, summary="")
        with transaction(self.engine) as s:
            s.add(row)

    def sent(
        self,
        number: str,
        step: str,
        template: str,
        channel: str,
        on: str,
        recipient: str = "debtor",
    ) -> None:
        with transaction(self.engine) as s:
            s.add(
                Interaction(
                    idempotency_key=f"{number}:{step}:{channel}",
                    invoice_number=number,
                    step_id=step,
                    channel=channel,
                    recipient=recipient,
                    template=template,
                    status="sent",
                    sent_at=at(on),
                )
            )

    def call(self, number: str, closed_on: str, outcome: str = "reached") -> None:
        with transaction(self.engine) as s:
            s.add(
                Task(
                    id=f"{number}:call",
                    invoice_number=number,
                    kind="call",
                    status="done",
                    title=f"Call about {number}",
                    due_at=at(closed_on),
                    created_at=at(closed_on),
                    outcome=outcome,
                    closed_by="user:1",
                    closed_at=at(closed_on, 15),
                )
            )

    def dispute(
        self,
        dispute_id: str,
        number: str,
        reason: str,
        opened: datetime,
        deadline: datetime,
        resolved: datetime | None = None,
    ) -> None:
        with transaction(self.engine) as s:
            s.add(
                Dispute(
                    id=dispute_id,
                    invoice_number=number,
                    reason=reason,
                    status="resolved" if resolved else "open",
                    opened_by="user:1",
                    opened_at=opened,
                    deadline=deadline,
                    resolved_at=resolved,
                    resolved_by="user:1" if resolved else None,
                )
            )
