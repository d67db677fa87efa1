"""`relance import FILE.csv`: hand over a portfolio from a spreadsheet export.

The lines go through the same service as `POST /v1/invoices:batch` (api/services/imports.py),
in process: the store and the Temporal client come from the settings, as for every command.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import Engine

from api.app import connect_temporal
from api.import_schemas import BatchReport, LineResult
from api.services import imports
from cli.common import explained, fail, settings_from_env, store
from config import Settings

# Lines handed over between two progress lines on a long file.
CHUNK = 100


def import_invoices(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="the CSV file"),
    ],
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="check every line (and the store); record nothing"),
    ] = False,
    decimal_comma: Annotated[
        bool,
        typer.Option(
            "--decimal-comma", help='amounts written the French way: "1 234,56", "1234,56"'
        ),
    ] = False,
) -> None:

    settings = settings_from_env()
    try:
        source = imports.read_invoices_csv(file, decimal_comma=decimal_comma)
    except imports.CsvFileError as err:
        fail(str(err))
    with explained():
        engine = store(settings)
        try:
            report, stop = asyncio.run(_import(settings, engine, source, dry_run))
        finally:
            engine.dispose()
    _print(report)
    if stop is not None:
        fail(
            f"stopped at line {stop.line} ({stop.number}): {stop.error.detail} The lines "
            "handled are reported above; run the same import again: lines already handed "
            "over are left unchanged and their collection is started"
        )
    if report.rejected:
        raise typer.Exit(1)


# The help lists the columns from the model itself, so it follows the API's fields.
import_invoices.__doc__ = (
    "Hand over the invoices of a CSV file, reporting each line.\n\n"
    "One invoice per line; the first line names the columns, in any order. "
    f"{imports.csv_help()}\n\n"
    "UTF-8 with or without BOM; separated by ; or , or tabs (read from the first line). "
    'Dates are YYYY-MM-DD; amounts are written "1234.56" (a dot, no thousands separator) '
    'unless --decimal-comma, which reads "1 234,56".\n\n'
    "Each line is handed over on its own: a bad line is rejected with its column and reason "
    "and the others go through; the same file again reports them unchanged (and starts the "
    "collection of any whose start failed). Exit code 1 if a line was rejected."
)


async def _import(
    settings: Settings, engine: Engine, source: imports.CsvInvoices, dry_run: bool
) -> tuple[BatchReport, imports.BatchInterrupted | None]:
    client = None if dry_run else await connect_temporal(settings)
    importer = imports.Importer(engine, settings, client, dry_run=dry_run)
    report = BatchReport(dry_run=dry_run)
    chunk: list[imports.Checked] = []
    lines = source.lines()
    while True:
        chunk.clear()
        for item in lines:
            chunk.append(item)
            if len(chunk) == CHUNK:
                break
        if not chunk:
            return report, None
        try:
            report.add(await importer.run(chunk))
        except imports.BatchInterrupted as stop:
            report.add(stop.done)
            return report, stop
        if len(chunk) == CHUNK or len(report.lines) > CHUNK:
            typer.echo(f"… line {chunk[-1][0]}: {_counts(report)}", err=True)


def _counts(report: BatchReport) -> str:
    created = "would be created" if report.dry_run else "created"
    return f"{report.created} {created}, {report.unchanged} unchanged, {report.rejected} rejected"


def _print(report: BatchReport) -> None:
    for line in report.lines:
        number = f" {line.number}" if line.number else ""
        if line.result == LineResult.REJECTED:
            typer.echo(f"line {line.line}{number}: rejected: {line.reason}")
        for warning in line.warnings:
            typer.echo(f"line {line.line}{number}: {line.result}, but: {warning}")
    total = len(report.lines)
    prefix = "dry run, nothing recorded: " if report.dry_run else ""
    typer.echo(f"{prefix}{total} line{'s' if total != 1 else ''}: {_counts(report)}")
