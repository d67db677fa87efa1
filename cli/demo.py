"""`relance demo`: a realistic portfolio handed over to a running `relance dev`, via its API.

A dozen debtors of every segment, a few hundred invoices issued over the last six months,
most of the older ones paid (some late), so the console's reports and work lists have something
to show at once. Run `relance dev` with a fast clock (`make demo` sets RELANCE_DAY_SECONDS) and
the escalations play out in minutes. Everything goes through the public API, as a back office
would, so the workflows run exactly as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any

import httpx
import typer

from api.auth import Role, create_api_key
from api.console import accounts
from api.errors import Conflict
from cli.common import Failure, explained, settings_from_env, store
from store.people import Language, PersonRole


@dataclass(frozen=True)
class DemoDebtor:
    id: str
    name: str
    segment: str
    language: str
    # How this customer pays: share of invoices paid, and days late when they pay.
    pays: float
    late_days: tuple[int, int]


DEBTORS = (
    DemoDebtor("D-ATELIER", "Atelier Morel", "tpe", "fr", 0.80, (0, 25)),
    DemoDebtor("D-BOULANGE", "Boulangerie Roux", "tpe", "fr", 0.60, (5, 60)),
    DemoDebtor("D-CABINET", "Cabinet Lefèvre", "tpe", "fr", 0.95, (0, 5)),
    DemoDebtor("D-DECOLLETAGE", "Décolletage Alpin", "pme", "fr", 0.85, (0, 20)),
    DemoDebtor("D-ELEC", "Électro Services Ouest", "pme", "fr", 0.55, (10, 90)),
    DemoDebtor("D-FROID", "Froid Industriel du Nord", "pme", "fr", 0.90, (0, 10)),
    DemoDebtor("D-GARAGE", "Garage des Deux Ponts", "pme", "fr", 0.70, (0, 45)),
    DemoDebtor("D-HYDRO", "HydroTech Europe", "eti", "en", 0.90, (0, 15)),
    DemoDebtor("D-IMPRIM", "Imprimerie Nationale Sud", "eti", "fr", 0.80, (5, 30)),
    DemoDebtor("D-JURA", "Jura Logistics", "eti", "en", 0.75, (0, 40)),
    DemoDebtor("D-KAPPA", "Kappa Retail Group", "grand_compte", "en", 0.95, (10, 45)),
    DemoDebtor("D-LUMEN", "Lumen Énergie", "grand_compte", "fr", 0.90, (15, 60)),
)
INVOICES_PER_DEBTOR = 25
AMOUNTS = {
    "tpe": (150, 2500),
    "pme": (800, 12000),
    "eti": (3000, 40000),
    "grand_compte": (8000, 90000),
}
DEMO_PASSWORD = "relance-demo-2026"


def portfolio(
    today: date, per_debtor: int = INVOICES_PER_DEBTOR, seed: int = 7
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Invoices (as POST /v1/invoices bodies) with the payments already received for each."""
    rng = random.Random(seed)
    items = []
    for debtor in DEBTORS:
        low, high = AMOUNTS[debtor.segment]
        for k in range(per_debtor):
            issued = today - timedelta(days=rng.randint(0, 180))
            due = issued + timedelta(days=rng.choice((30, 45, 60)))
            amount = Decimal(rng.randint(low * 100, high * 100)) / 100
            body = {
                "number": f"{debtor.id[2:5]}-{issued:%y%m}-{k:03d}",
                "debtor": {
                    "id": debtor.id,
                    "name": debtor.name,
                    "email": f"compta@{debtor.id[2:].lower()}.example",
                    "country": "FR",
                    "language": debtor.language,
                    "segment": debtor.segment,
                },
                "amount": str(amount),
                "currency": "EUR",
                "issue_date": issued.isoformat(),
                "due_date": due.isoformat(),
            }
            payments = []
            paid_on = due + timedelta(days=rng.randint(*debtor.late_days))
            if paid_on < today and rng.random() < debtor.pays:
                if rng.random() < 0.15:  # a part first, the rest later
                    part = (amount * Decimal("0.4")).quantize(Decimal("0.01"))
                    first = paid_on - timedelta(days=10)
                    payments.append(_payment(body, 1, part, max(first, issued)))
                    payments.append(_payment(body, 2, amount - part, paid_on))
                else:
                    payments.append(_payment(body, 1, amount, paid_on))
            items.append((body, payments))
    return items


def _payment(body: dict[str, Any], n: int, amount: Decimal, on: date) -> dict[str, Any]:
    return {
        "reference": f"VIR-{body['number']}-{n}",
        "currency": "EUR",
        "amount": str(amount),
        "received_on": on.isoformat(),
    }


def _people(engine: Any) -> list[str]:
    lines = []
    for role in (PersonRole.ADMIN, PersonRole.COLLECTOR, PersonRole.FINANCE, PersonRole.OPS):
        email = f"{role.value}@demo.example"
        # Loaded before: the demo accounts already exist.
        with contextlib.suppress(Conflict):
            accounts.add_user(engine, email, role, DEMO_PASSWORD, Language.FR)
        lines.append(email)
    return lines


def demo(
    url: Annotated[
        str | None, typer.Option("--url", help="the running API (default: from the settings)")
    ] = None,
    per_debtor: Annotated[
        int, typer.Option("--per-debtor", min=1, max=200, help="invoices for each debtor")
    ] = INVOICES_PER_DEBTOR,
) -> None:
    """Load a demo portfolio into a running `relance dev` (same store and settings)."""
    settings = settings_from_env()
    base = url or f"http://{settings.api_host}:{settings.api_port}"
    with explained():
        engine = store(settings)
        try:
            key = create_api_key(engine, Role.ADMIN, "relance demo")
            people = _people(engine)
        finally:
            engine.dispose()
        items = portfolio(date.today(), per_debtor)
        asyncio.run(_load(base, key, items))
    typer.echo(f"loaded {len(items)} invoices over {len(DEBTORS)} debtors into {base}")
    typer.echo(f"console: {base}/console — sign in as {', '.join(people)}")
    typer.echo(f"password (all demo accounts): {DEMO_PASSWORD}")


# Requests in flight at once: the workflows start and take payments in parallel.
CONCURRENCY = 8


async def _load(
    base: str, key: str, items: list[tuple[dict[str, Any], list[dict[str, Any]]]]
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    limit = asyncio.Semaphore(CONCURRENCY)
    done = 0

    async def one(
        http: httpx.AsyncClient, body: dict[str, Any], payments: list[dict[str, Any]]
    ) -> None:
        nonlocal done
        async with limit:
            await _post(http, "/v1/invoices", body)
            for payment in payments:
                await _post(http, f"/v1/invoices/{body['number']}/payments", payment)
        done += 1
        if done % 50 == 0:
            typer.echo(f"  {done}/{len(items)} invoices handed over…")

    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
        try:
            (await http.get("/healthz")).raise_for_status()
        except httpx.HTTPError as err:
            raise Failure(f"no API answers at {base} ({err}): start `relance dev`") from err
        try:
            async with asyncio.TaskGroup() as group:
                for body, payments in items:
                    group.create_task(one(http, body, payments))
        except* Failure as failed:
            raise failed.exceptions[0] from None


# A busy machine may keep a workflow from answering in time (503): the same request again is
# safe (hand-overs and payments are idempotent), so it is retried a few times.
RETRIES = 5


async def _post(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> None:
    for attempt in range(1, RETRIES + 1):
        response = await http.post(path, json=body)
        if response.status_code != 503 or attempt == RETRIES:
            break
        await asyncio.sleep(attempt)
    if response.status_code >= 400:
        raise Failure(f"POST {path}: {response.text}")
