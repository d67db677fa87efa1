"""`relance demo` loads a portfolio into a running API, through the API, as a back office would."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

from typer.testing import CliRunner

from api.console import accounts
from cli.demo import DEBTORS, DEMO_PASSWORD, INVOICES_PER_DEBTOR, portfolio
from cli.main import app
from tests.console.conftest import Console


def test_the_demo_portfolio_is_a_few_hundred_invoices_of_every_segment() -> None:
    items = portfolio(date(2026, 6, 15))
    assert len(DEBTORS) == 12
    assert len(items) == 12 * INVOICES_PER_DEBTOR == 300
    assert {body["debtor"]["segment"] for body, _ in items} == {"tpe", "pme", "eti", "grand_compte"}
    # Some paid, some partly paid, many still open: something to show on every page.
    paid = [payments for _, payments in items if payments]
    assert 100 < len(paid) < 280
    assert any(len(payments) == 2 for payments in paid)
    assert len({body["number"] for body, _ in items}) == 300


async def test_relance_demo_loads_into_the_running_api(console: Console, tmp_path: Path) -> None:
    env = {"RELANCE_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    # The command blocks on HTTP: it runs beside the server, not in its event loop.
    result = await asyncio.to_thread(
        runner.invoke, app, ["demo", "--url", console.base, "--per-debtor", "2"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "loaded 24 invoices over 12 debtors" in result.output
    debtors = (await console.api.get("/v1/debtors?limit=100")).json()["items"]
    assert len(debtors) == 12
    assert {d["segment"] for d in debtors} == {"tpe", "pme", "eti", "grand_compte"}
    invoices = (await console.api.get("/v1/invoices?limit=100")).json()["items"]
    assert len(invoices) == 24
    # The demo people can sign in with the printed password.
    assert DEMO_PASSWORD in result.output
    assert accounts.sign_in(console.engine, "finance@demo.example", DEMO_PASSWORD)
