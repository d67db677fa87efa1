"""Onboarding a portfolio: many invoices handed over at once, reported line by line.

Each line goes through the single hand-over (`invoices.hand_over`): the same validation
(`InvoiceCreate`), the same idempotency and conflict rules, the same workflow start. Lines are
independent units, so "nothing half-done" holds per line:

- a rejected line records nothing;
- an accepted line is recorded, then its workflow is started; a line's invoice is never
  left recorded without that start being attempted;
- if the start fails (Temporal unreachable), the batch stops there with a 503 (the CLI says
  which line); the invoice stays recorded, and sending the same line again (the same batch,
  the same file) reports it "unchanged" and starts its collection then. A process killed
  between the two is repaired the same way.

"created" means the invoice was not in the store when its line was handled; "unchanged" that
it was, with the same data (the same number with other data is "rejected" with the fields that
differ). Lines of one invoice number or one debtor are handled in file order, so a repeated
line is "unchanged" and the newest contact details win; other lines run a few at a time.

CSV files (`relance import`) are read here too, so the command line stays a thin shell.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import anyio
from anyio import to_thread
from pydantic import BaseModel, ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client

from api.errors import ApiError, ServerMisconfigured, Unavailable
from api.import_schemas import BatchReport, FieldError, InvoiceBatch, LineReport, LineResult
from api.schemas import DebtorIn, InvoiceCreate
from api.services import invoices
from config import Settings
from store.invoices import fingerprint
from store.tables import Invoice

log = logging.getLogger("relance.api")

# Lines handed over at once. Each is a store write and a workflow start; a few in flight hide
# the round trips without flooding SQLite's single writer or the Temporal frontend.
PARALLEL_LINES = 8

# A line that passed validation, or the report of one that did not.
Checked = tuple[int, InvoiceCreate | LineReport]


class BatchInterrupted(Exception):
    """The server, not a line, failed (Temporal unreachable, a broken playbook): the lines
    already handled are in `done`; the others were not attempted (lines run side by side, so
    some after `line` may be done and some before it not)."""

    def __init__(self, error: ApiError, line: int, number: str, done: list[LineReport]) -> None:
        super().__init__(error.detail)
        self.error, self.line, self.number, self.done = error, line, number, done


# ------------------------------------------------------------------ validation


def _message(error: Any) -> str:
    return str(error["msg"]).removeprefix("Value error, ")


def validate_line(
    line: int, payload: object, *, field_name: dict[tuple[str, ...], str] | None = None
) -> InvoiceCreate | LineReport:
    """The line as an InvoiceCreate, or its rejection naming each bad field.

    `field_name` renames fields for the reader (CSV columns); by default they are the request's
    dotted names (`debtor.email`).
    """
    try:
        return InvoiceCreate.model_validate(payload)
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            path = tuple(str(part) for part in error["loc"])
            name = (field_name or {}).get(path) or ".".join(path) or "invoice"
            message = _message(error)
            if field_name is not None and error["type"] == "missing":
                message = "is empty"  # the column exists (checked up front): its cell is blank
            errors.append(FieldError(field=name, message=message))
    number = payload.get("number") if isinstance(payload, dict) else None
    return rejected(line, number if isinstance(number, str) else None, errors)


def rejected(line: int, number: str | None, errors: list[FieldError]) -> LineReport:
    reason = "; ".join(f"{e.field}: {e.message}" for e in errors)
    return LineReport(
        line=line, number=number, result=LineResult.REJECTED, reason=reason, errors=errors
    )


# ------------------------------------------------------------------ handing lines over


def _chains(lines: Sequence[tuple[int, InvoiceCreate]]) -> list[list[tuple[int, InvoiceCreate]]]:
    """Lines grouped so that lines sharing an invoice number or a debtor are in one chain, in
    line order: a chain runs in order, chains run side by side."""
    parent = list(range(len(lines)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, (_, body) in enumerate(lines):
        for key in (f"invoice:{body.number}", f"debtor:{body.debtor.id}"):
            if key in first:
                parent[root(i)] = root(first[key])
            else:
                first[key] = i
    chains: dict[int, list[tuple[int, InvoiceCreate]]] = {}
    for i, item in enumerate(lines):
        chains.setdefault(root(i), []).append(item)
    return list(chains.values())


def _recorded(engine: Engine, numbers: Iterable[str]) -> dict[str, str]:
    """The stored invoices among `numbers`: number -> fingerprint."""
    with Session(engine) as session:
        rows = session.exec(
            select(Invoice.number, Invoice.fingerprint).where(col(Invoice.number).in_(numbers))
        ).all()
    return dict(rows)


@dataclass
class Importer:
    """Hands lines over in order, batch after batch, with one state for a whole file.

    With `dry_run`, nothing is recorded or started (no Temporal client is needed): each line
    is compared with the store and with the lines before it, to say what would happen.
    """

    engine: Engine
    settings: Settings
    client: Client | None
    dry_run: bool = False
    # Dry run: the invoices the lines seen so far would have recorded (number -> fingerprint).
    _would_record: dict[str, str] = field(default_factory=dict)

    async def run(self, lines: Sequence[Checked]) -> list[LineReport]:
        """The report of each line, in line order. Raises BatchInterrupted if the server fails."""
        reports = [item for _, item in lines if isinstance(item, LineReport)]
        valid = [(line, item) for line, item in lines if isinstance(item, InvoiceCreate)]
        if self.dry_run:
            reports += await to_thread.run_sync(self._check, valid)
            return sorted(reports, key=lambda r: r.line)
        try:
            reports += await self._hand_over(valid)
        except BatchInterrupted as stop:
            # The invalid lines were dealt with all the same: they belong in the report.
            stop.done = sorted([*reports, *stop.done], key=lambda r: r.line)
            raise
        return sorted(reports, key=lambda r: r.line)

    def _check(self, lines: Sequence[tuple[int, InvoiceCreate]]) -> list[LineReport]:
        stored = _recorded(self.engine, {body.number for _, body in lines})
        reports = []
        for line, body in lines:
            # The same digest the hand-over compares (store.invoices.fingerprint of its facts).
            digest = fingerprint(invoices.facts_of(body))
            known = self._would_record.get(body.number) or stored.get(body.number)
            if known is None:
                self._would_record[body.number] = digest
                result, reason = LineResult.CREATED, None
            elif known == digest:
                result, reason = LineResult.UNCHANGED, None
            else:
                result = LineResult.REJECTED
                reason = (
                    f"invoice {body.number} was already handed over with different data "
                    "(in the store or an earlier line); an invoice cannot be changed by "
                    "handing it over again"
                )
            reports.append(LineReport(line=line, number=body.number, result=result, reason=reason))
        return reports

    async def _hand_over(self, lines: Sequence[tuple[int, InvoiceCreate]]) -> list[LineReport]:
        if self.client is None:
            raise ValueError("handing invoices over needs a Temporal client")
        client = self.client
        done: list[LineReport] = []
        failure: list[tuple[int, str, ApiError]] = []
        limiter = anyio.CapacityLimiter(PARALLEL_LINES)

        async def run_chain(chain: list[tuple[int, InvoiceCreate]]) -> None:
            for line, body in chain:
                # A server failure stops every chain at its next line: the rest would fail
                # the same way, each after a timeout.
                if failure:
                    return
                async with limiter:
                    try:
                        done.append(await self._one(client, line, body))
                    except ApiError as err:
                        failure.append((line, body.number, err))
                        return

        async with anyio.create_task_group() as group:
            for chain in _chains(lines):
                group.start_soon(run_chain, chain)
        done.sort(key=lambda r: r.line)
        if failure:
            line, number, err = min(failure, key=lambda f: f[0])
            raise BatchInterrupted(err, line, number, done)
        return done

    async def _one(self, client: Client, line: int, body: InvoiceCreate) -> LineReport:
        try:
            handed = await invoices.record_and_start(self.engine, client, self.settings, body)
        except ApiError as err:
            if err.status_code >= 500:
                raise
            # The caller's data (a conflict, or any other 4xx the hand-over may grow): this
            # line only.
            return LineReport(
                line=line, number=body.number, result=LineResult.REJECTED, reason=err.detail
            )
        result = LineResult.CREATED if handed.created else LineResult.UNCHANGED
        return LineReport(line=line, number=body.number, result=result, warnings=handed.warnings)


async def hand_over_batch(
    engine: Engine,
    client: Client,
    settings: Settings,
    batch: InvoiceBatch,
    *,
    dry_run: bool = False,
) -> BatchReport:
    """`POST /v1/invoices:batch`: every item validated and handed over on its own."""
    lines = [(i, validate_line(i, item)) for i, item in enumerate(batch.invoices, start=1)]
    importer = Importer(engine, settings, client, dry_run=dry_run)
    try:
        reports = await importer.run(lines)
    except BatchInterrupted as stop:
        raise _batch_error(stop) from stop.error
    report = BatchReport(dry_run=dry_run)
    report.add(reports)
    log.info(
        "batch of %d: %d created, %d unchanged, %d rejected%s",
        len(lines),
        report.created,
        report.unchanged,
        report.rejected,
        " (dry run)" if dry_run else "",
    )
    return report


def _batch_error(stop: BatchInterrupted) -> ApiError:
    detail = (
        f"stopped at invoice {stop.number} (item {stop.line}): {stop.error.detail} "
        f"{len(stop.done)} other item(s) were handled; send the same batch again: items "
        "already handed over are left unchanged and their collection is started"
    )
    if isinstance(stop.error, Unavailable):
        return Unavailable(detail)
    if isinstance(stop.error, ServerMisconfigured):
        return ServerMisconfigured(detail)
    return stop.error


# ------------------------------------------------------------------ CSV files


class CsvFileError(ValueError):
    """A file that cannot be imported at all (encoding, header): nothing was handed over."""


def _csv_columns() -> dict[str, tuple[str, ...]]:
    """CSV column -> the InvoiceCreate field it fills, derived from the model so that a field
    added to the API is importable at once: `debtor_<field>` for the debtor's fields, and the
    optional ones (segment, ...) also without the prefix, as a spreadsheet would name them."""
    columns: dict[str, tuple[str, ...]] = {}
    for name in InvoiceCreate.model_fields:
        if name != "debtor":
            columns[name] = (name,)
            continue
        for sub in DebtorIn.model_fields:
            columns[f"debtor_{sub}"] = ("debtor", sub)
    for name, info in DebtorIn.model_fields.items():
        if not info.is_required() and name not in columns:
            columns[name] = ("debtor", name)
    return columns


CSV_COLUMNS = _csv_columns()


def _required(path: tuple[str, ...]) -> bool:
    if path[0] == "debtor":
        return DebtorIn.model_fields[path[1]].is_required()
    return InvoiceCreate.model_fields[path[0]].is_required()


def _spellings() -> dict[tuple[str, ...], list[str]]:
    """Each field's column names, its main one first (the short one for optional fields)."""
    names: dict[tuple[str, ...], list[str]] = {}
    for column, path in CSV_COLUMNS.items():
        names.setdefault(path, []).append(column)
    return {
        path: columns if _required(path) else sorted(columns, key=len)
        for path, columns in names.items()
    }


def csv_help() -> str:
    """The columns, for the command's help."""
    required = [names[0] for path, names in _spellings().items() if _required(path)]
    optional = [
        names[0] + (f" (or {', '.join(names[1:])})" if names[1:] else "")
        for path, names in _spellings().items()
        if not _required(path)
    ]
    return f"Required columns: {', '.join(required)}. Optional: {', '.join(optional)}."


# Between digits only: thousands separators a French spreadsheet writes (space, no-break space,
# narrow no-break space).
_GROUPING = re.compile(r"(?<=\d)[ \u00a0\u202f](?=\d{3}\b)")
_DOT_AMOUNT = re.compile(r"^[+-]?\d+(\.\d+)?$")
_COMMA_AMOUNT = re.compile(r"^[+-]?\d+(,\d+)?$")


def _csv_amount(text: str, decimal_comma: bool) -> str:
    """The amount as InvoiceCreate reads it ("1234.56"), or raise ValueError saying why not.

    Amounts are written "1234.56" by default: a dot for decimals, no thousands separator, as
    the API takes them. "1 234,56" is refused rather than guessed ("1,234" is 1.234 in France
    and 1234 in England); `decimal_comma` reads the French way instead.
    """
    if decimal_comma:
        grouped = _GROUPING.sub("", text)
        if _COMMA_AMOUNT.match(grouped):
            return grouped.replace(",", ".")
        if "." in text:
            raise ValueError(
                f'with --decimal-comma, write amounts such as "1 234,56" or "1234,56", got {text!r}'
            )
        return text
    if not _DOT_AMOUNT.match(text) and ("," in text or any(c.isspace() for c in text)):
        raise ValueError(
            f'write amounts with a dot for decimals and no thousands separator, such as "1234.56"'
            f', got {text!r} (for amounts written "1 234,56", import with --decimal-comma)'
        )
    return text


def _types(annotation: object) -> set[object]:
    """The plain types a field's annotation admits (through Optional and Annotated)."""
    args = get_args(annotation)
    if not args:
        return {annotation}
    if get_origin(annotation) is Annotated:
        return _types(args[0])
    return set().union(*(_types(arg) for arg in args))


def _field_types(path: tuple[str, ...]) -> set[object]:
    model: type[BaseModel] = DebtorIn if path[0] == "debtor" else InvoiceCreate
    return _types(model.model_fields[path[-1]].annotation)


_WHOLE = re.compile(r"^[+-]?\d+$")


def _cell(path: tuple[str, ...], text: str, decimal_comma: bool) -> object:
    """A cell as the API's JSON would carry it: decimals stay strings, whole numbers become
    integers (the API takes a headcount as a JSON integer, never "42")."""
    kinds = _field_types(path)
    if Decimal in kinds:
        return _csv_amount(text, decimal_comma)
    if int in kinds and _WHOLE.match(text):
        return int(text)
    return text


def _delimiter(header: str) -> str:
    # The header holds column names only, so the separator is whichever one it uses most.
    counts = {d: header.count(d) for d in (";", ",", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


@dataclass
class CsvInvoices:
    """A CSV file of invoices, checked as a whole (encoding, header) before any line is read."""

    path: Path
    text: str
    delimiter: str
    columns: list[tuple[str, tuple[str, ...]]]
    decimal_comma: bool

    def lines(self) -> Iterator[Checked]:
        """Each data line, validated: (line number, InvoiceCreate or its rejection)."""
        reader = csv.reader(io.StringIO(self.text), delimiter=self.delimiter)
        next(reader)  # the header, checked when the file was opened
        names = {path: column for column, path in self.columns}
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue  # blank lines, often at the end of an exported file
            yield line, self._line(line, cells, names)

    def _line(
        self, line: int, cells: list[str], names: dict[tuple[str, ...], str]
    ) -> InvoiceCreate | LineReport:
        number_cell = next(
            (c.strip() for (_, p), c in zip(self.columns, cells, strict=False) if p == ("number",)),
            None,
        )
        if len(cells) != len(self.columns):
            # Refused rather than padded: a shifted cell would put a date where the amount is.
            return rejected(
                line,
                number_cell or None,
                [
                    FieldError(
                        field="line",
                        message=f"has {len(cells)} cells where the header has "
                        f"{len(self.columns)} columns (delimiter {self.delimiter!r})",
                    )
                ],
            )
        payload: dict[str, Any] = {"debtor": {}}
        cell_errors: list[FieldError] = []
        for (column, path), raw in zip(self.columns, cells, strict=True):
            value: object = raw.strip()
            if not value:
                continue  # an empty cell is an absent value: required ones are reported
            try:
                value = _cell(path, raw.strip(), self.decimal_comma)
            except ValueError as exc:
                cell_errors.append(FieldError(field=column, message=str(exc)))
            target = payload["debtor"] if path[0] == "debtor" else payload
            target[path[-1]] = value
        checked = validate_line(line, payload, field_name=names)
        if not cell_errors:
            return checked
        # The cell's own reason (how to write it) replaces the model's for the same column.
        others = checked.errors if isinstance(checked, LineReport) else []
        bad = {e.field for e in cell_errors}
        return rejected(
            line, number_cell or None, cell_errors + [e for e in others if e.field not in bad]
        )


def read_invoices_csv(path: Path, *, decimal_comma: bool = False) -> CsvInvoices:
    """Open a CSV of invoices: UTF-8 with or without BOM, `;`, `,` or tab separated."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CsvFileError(f"cannot read {path}: {err.strerror}") from err
    try:
        # utf-8-sig drops the BOM spreadsheets write ("CSV UTF-8" in Excel).
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise CsvFileError(
            f"{path} is not UTF-8 (line {line}, byte {raw[err.start]:#04x}): save it as "
            '"CSV UTF-8" and import it again'
        ) from err
    first = next((row for row in text.splitlines() if row.strip()), None)
    if first is None:
        raise CsvFileError(f"{path} is empty: the first line must name the columns")
    delimiter = _delimiter(first)
    header = next(csv.reader(io.StringIO(text), delimiter=delimiter))
    columns = _header(path, [name.strip().lower() for name in header])
    return CsvInvoices(path, text, delimiter, columns, decimal_comma)


def _header(path: Path, names: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    unknown = [n for n in names if n not in CSV_COLUMNS]
    if unknown:
        raise CsvFileError(
            f"{path}: unknown column(s) {', '.join(repr(n) for n in unknown)} in the first "
            f"line. {csv_help()}"
        )
    seen: dict[tuple[str, ...], str] = {}
    for name in names:
        path_ = CSV_COLUMNS[name]
        if path_ in seen:
            raise CsvFileError(f"{path}: columns {seen[path_]!r} and {name!r} say the same thing")
        seen[path_] = name
    missing = [names[0] for p, names in _spellings().items() if _required(p) and p not in seen]
    if missing:
        raise CsvFileError(f"{path}: missing column(s) {', '.join(missing)}. {csv_help()}")
    return [(name, CSV_COLUMNS[name]) for name in names]
