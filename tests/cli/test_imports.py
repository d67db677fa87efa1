"""`relance import FILE.csv` (and `relance preview`) against a real Temporal dev server, a real
worker and a store of their own, as an operator would run them."""

from __future__ import annotations

import asyncio
import csv
import io
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from activities.email import OutboxSender
from api.services import invoices as invoices_service
from cli.main import app
from config import Settings
from store.tables import Invoice
from worker import build_worker
from workflows.contract import workflow_id

runner = CliRunner()

HEADER = [
    "number",
    "debtor_id",
    "debtor_name",
    "debtor_email",
    "debtor_country",
    "debtor_language",
    "amount",
    "currency",
    "issue_date",
    "due_date",
    "segment",
]
ISSUED = date.today() - timedelta(days=10)
DUE = date.today() + timedelta(days=30)


def row(number: str, *, amount: str = "1200.00", currency: str = "EUR", due: str = "") -> list[str]:
    return [
        number,
        f"C-{number}",
        "Durand, Martin & Cie",
        "compta@durand.example",
        "FR",
        "fr",
        amount,
        currency,
        ISSUED.isoformat(),
        due or DUE.isoformat(),
        "PME",
    ]


def csv_text(rows: list[list[str]], delimiter: str = ",") -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue()


@dataclass
class Relance:
    """The `relance` command with RELANCE_* pointing at the test's server, queue and store."""

    env: dict[str, str]
    engine: Engine
    client: WorkflowEnvironment
    folder: Path

    async def run(self, *args: str) -> Result:
        # In a thread: the command runs its own event loop (asyncio.run) while the worker
        # polls on this one.
        return await asyncio.to_thread(lambda: runner.invoke(app, list(args), env=self.env))

    def csv(
        self, name: str, rows: list[list[str]], *, delimiter: str = ",", bom: bool = False
    ) -> Path:
        path = self.folder / name
        path.write_text(csv_text(rows, delimiter), encoding="utf-8-sig" if bom else "utf-8")
        return path

    def stored(self, number: str) -> Invoice | None:
        with Session(self.engine) as session:
            return session.get(Invoice, number)

    async def workflow(self, number: str) -> WorkflowExecutionStatus | None:
        try:
            handle = self.client.client.get_workflow_handle(workflow_id(number))
            return (await handle.describe()).status
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise


@pytest.fixture
async def relance(
    dev_env: WorkflowEnvironment,
    engine: Engine,
    task_queue: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Relance]:
    # No `.env` or RELANCE_* from the machine running the tests.
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("RELANCE_"):
            monkeypatch.delenv(name)
    env = {
        # The `engine` fixture's store is relance.db in tmp_path: the command opens the same.
        "RELANCE_DATA_DIR": str(tmp_path),
        "RELANCE_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "RELANCE_TASK_QUEUE": task_queue,
    }
    settings = Settings(_env_file=None, data_dir=tmp_path, task_queue=task_queue)
    worker = build_worker(
        dev_env.client,
        settings,
        engine,
        sender=OutboxSender(tmp_path / "outbox", settings.email_from),
        task_queue=task_queue,
    )
    async with worker:
        yield Relance(env=env, engine=engine, client=dev_env, folder=tmp_path)


async def test_import_reports_good_duplicate_and_bad_lines(relance: Relance) -> None:
    path = relance.csv(
        "invoices.csv",
        [
            HEADER,
            row("CSV-A-1"),
            row("CSV-A-2", amount="99.90"),
            row("CSV-A-1"),  # the same line again
            row("CSV-A-CUR", currency="EURO"),
            row("CSV-A-DATE", due="31/12/2026"),
            row("CSV-A-NEG", amount="-10.00"),
            row("CSV-A-FR", amount="1 234,56"),
            row("CSV-A-1", amount="1300.00"),  # same number, other amount
        ],
    )

    result = await relance.run("import", str(path))

    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "line 5 CSV-A-CUR: rejected: currency: " in out
    assert "line 6 CSV-A-DATE: rejected: due_date: must be a date written YYYY-MM-DD" in out
    assert "line 7 CSV-A-NEG: rejected: amount: must be greater than 0" in out
    assert "line 8 CSV-A-FR: rejected: amount: write amounts with a dot" in out
    assert "--decimal-comma" in out
    assert "line 9 CSV-A-1: rejected: invoice CSV-A-1 was already handed over" in out
    assert "line 2 " not in out and "line 4 " not in out  # only rejections are listed
    assert out.strip().endswith("8 lines: 2 created, 1 unchanged, 5 rejected")

    for number in ("CSV-A-1", "CSV-A-2"):
        assert await relance.workflow(number) == WorkflowExecutionStatus.RUNNING
    stored = relance.stored("CSV-A-2")
    assert stored is not None and stored.amount == Decimal("99.90")
    for number in ("CSV-A-CUR", "CSV-A-DATE", "CSV-A-NEG", "CSV-A-FR"):
        assert relance.stored(number) is None
        assert await relance.workflow(number) is None

    again = await relance.run("import", str(path))

    assert again.exit_code == 1
    assert again.stdout.strip().endswith("8 lines: 0 created, 3 unchanged, 5 rejected")


async def test_a_semicolon_file_with_bom_and_french_amounts(relance: Relance) -> None:
    path = relance.csv(
        "export-excel.csv",
        [HEADER, row("CSV-B-1", amount="1 234,56"), row("CSV-B-2", amount="80")],
        delimiter=";",
        bom=True,
    )

    plain = await relance.run("import", str(path))
    french = await relance.run("import", "--decimal-comma", str(path))

    assert plain.exit_code == 1
    assert "line 2 CSV-B-1: rejected: amount:" in plain.stdout
    assert french.exit_code == 0, french.output
    assert french.stdout.strip().endswith("2 lines: 1 created, 1 unchanged, 0 rejected")
    stored = relance.stored("CSV-B-1")
    assert stored is not None and stored.amount == Decimal("1234.56")
    assert await relance.workflow("CSV-B-1") == WorkflowExecutionStatus.RUNNING


async def test_a_dry_run_creates_nothing(relance: Relance) -> None:
    path = relance.csv(
        "invoices.csv", [HEADER, row("CSV-C-1"), row("CSV-C-1"), row("CSV-C-BAD", currency="E")]
    )

    result = await relance.run("import", "--dry-run", str(path))

    assert result.exit_code == 1, result.output
    assert "line 4 CSV-C-BAD: rejected: currency:" in result.stdout
    assert "dry run, nothing recorded: 3 lines: 1 would be created, 1 unchanged, 1 rejected" in (
        result.stdout
    )
    assert relance.stored("CSV-C-1") is None
    assert await relance.workflow("CSV-C-1") is None

    clean = relance.csv("clean.csv", [HEADER, row("CSV-C-2")])
    assert (await relance.run("import", "--dry-run", str(clean))).exit_code == 0
    assert relance.stored("CSV-C-2") is None


async def test_a_long_file_shows_progress(relance: Relance) -> None:
    path = relance.csv("long.csv", [HEADER, *(row(f"CSV-D-{i}") for i in range(250))])

    result = await relance.run("import", "--dry-run", str(path))

    assert result.exit_code == 0, result.output
    progress = [line for line in result.stderr.splitlines() if line.startswith("…")]
    assert progress == [
        "… line 101: 100 would be created, 0 unchanged, 0 rejected",
        "… line 201: 200 would be created, 0 unchanged, 0 rejected",
        "… line 251: 250 would be created, 0 unchanged, 0 rejected",
    ]


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ([*HEADER, "notes"], "unknown column(s) 'notes'"),
        (["number", "debtor_id", "amount"], "missing column(s) debtor_name"),
        ([*HEADER, "debtor_segment"], "say the same thing"),
        ([], "is empty"),
    ],
)
async def test_a_file_that_cannot_be_read_is_refused_whole(
    relance: Relance, header: list[str], says: str
) -> None:
    path = relance.folder / "bad.csv"
    path.write_text(csv_text([header, row("CSV-E-1")]) if header else "", encoding="utf-8")

    result = await relance.run("import", str(path))

    assert result.exit_code == 1
    assert says in result.stderr
    assert relance.stored("CSV-E-1") is None


async def test_a_file_not_in_utf8_is_refused_whole(relance: Relance) -> None:
    path = relance.folder / "latin1.csv"
    latin = row("CSV-F-1")
    latin[2] = "Durançon SARL"
    path.write_bytes(csv_text([HEADER, latin]).encode("latin-1"))

    result = await relance.run("import", str(path))

    assert result.exit_code == 1
    assert "is not UTF-8 (line 2" in result.stderr
    assert relance.stored("CSV-F-1") is None


async def test_preview_prints_an_imported_invoice_s_message_without_sending_it(
    relance: Relance,
) -> None:
    path = relance.csv("invoices.csv", [HEADER, row("CSV-G-1")])
    assert (await relance.run("import", str(path))).exit_code == 0
    late = (DUE + timedelta(days=3)).isoformat()

    text = await relance.run("preview", "CSV-G-1", "reminder_1", "--as-of", late)
    html = await relance.run("preview", "CSV-G-1", "reminder_1", "--as-of", late, "--html")
    english = await relance.run("preview", "CSV-G-1", "reminder_1", "--language", "en")
    unknown = await relance.run("preview", "CSV-G-1", "nope")

    assert text.exit_code == 0, text.output
    assert text.stdout.startswith("Subject: ") and "CSV-G-1" in text.stdout.splitlines()[0]
    assert "Durand, Martin & Cie" in text.stdout
    assert "reminder (friendly, fr) to the debtor of invoice CSV-G-1" in text.stderr
    assert html.exit_code == 0
    assert "Durand, Martin &amp; Cie" in html.stdout
    assert english.exit_code == 0
    assert "Dear Sir or Madam" in english.stdout
    assert unknown.exit_code == 1
    assert "has no step 'nope'" in unknown.stderr
    assert not (relance.folder / "outbox").exists() or not any(
        (relance.folder / "outbox").iterdir()
    )


async def test_an_import_stopped_by_temporal_resumes_when_run_again(
    relance: Relance, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_start = invoices_service.start_invoice

    async def down_for_one(client: Any, facts: Any, *args: Any, **kwargs: Any) -> None:
        if facts.number == "CSV-H-2":
            raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")
        await real_start(client, facts, *args, **kwargs)

    monkeypatch.setattr(invoices_service, "start_invoice", down_for_one)
    path = relance.csv("invoices.csv", [HEADER, row("CSV-H-1"), row("CSV-H-2")])

    stopped = await relance.run("import", str(path))

    assert stopped.exit_code == 1
    assert "stopped at line 3 (CSV-H-2)" in stopped.stderr
    assert "run the same import again" in stopped.stderr
    assert await relance.workflow("CSV-H-2") is None

    monkeypatch.setattr(invoices_service, "start_invoice", real_start)
    again = await relance.run("import", str(path))

    assert again.exit_code == 0, again.output
    assert again.stdout.strip().endswith("2 lines: 0 created, 2 unchanged, 0 rejected")
    assert await relance.workflow("CSV-H-2") == WorkflowExecutionStatus.RUNNING


async def test_an_import_without_temporal_says_where_it_was_expected(relance: Relance) -> None:
    path = relance.csv("invoices.csv", [HEADER, row("CSV-I-1")])
    env = {**relance.env, "RELANCE_TEMPORAL_ADDRESS": "127.0.0.1:1"}

    result = await asyncio.to_thread(lambda: runner.invoke(app, ["import", str(path)], env=env))

    assert result.exit_code == 1
    assert "Temporal is unreachable at 127.0.0.1:1" in result.stderr
    assert relance.stored("CSV-I-1") is None
