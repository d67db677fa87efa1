"""The published rates the late-payment law refers to, as data.

Two series, each frozen per half-year (semester), kept in `rates.csv` next to this module with
each figure's source and the date of the decision that set it:

* `ecb_mro`: the ECB main refinancing operations rate ("taux refi") in force on 1 January /
  1 July. Code de commerce L441-10 II and Directive 2011/7/EU art. 2(7) both freeze it for the
  whole half-year rather than following every ECB decision, so one value per half-year is exact;
* `fr_legal_other`: the French legal interest rate ("taux de l'intérêt légal") for "tous les
  autres cas", i.e. creditors other than natural persons acting for non-professional needs,
  which is what a B2B creditor is (Code monétaire et financier L313-2, D313-1-A). The tables
  start in 2015-H1, the first semester with a separate "autres cas" rate (ordonnance 2014-947).

Ops add a new half-year's confirmed rates without a release: a file with the same columns,
named by `RELANCE_RATES_FILE`, is read at start (`load_rates`) and its rows replace or extend
the shipped ones. A bad row stops the start with the file, the line and the reason.

Lookups never guess backwards: a half-year before a table raises `RateUnknownError`. After the
end of a table the last value keeps applying, flagged `provisional`: the law refers to the rate
"in force", and the last published value is the best one known until someone adds the next row
— but a statement built on it must say so. Rows marked `confirmed=false` are provisional too.

Reading files happens in `load_rates` only; `RateTable` lookups are pure.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal

SHIPPED_RATES_FILE: Final = Path(__file__).resolve().parent / "rates.csv"
COLUMNS: Final = ("series", "half_year", "percent", "confirmed", "published", "source")

ECB_SERIES: Final = "ecb_mro"
LEGAL_SERIES: Final = "fr_legal_other"
SERIES_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        ECB_SERIES: "ECB main refinancing operations rate",
        LEGAL_SERIES: "French legal interest rate (autres cas)",
    }
)
_HALF_YEAR = re.compile(r"^(\d{4})-H([12])$")
_PERCENT = re.compile(r"^\d{1,2}(\.\d{1,4})?$")


@dataclass(frozen=True, order=True)
class HalfYear:
    """A calendar semester: H1 = 1 January–30 June, H2 = 1 July–31 December."""

    year: int
    half: Literal[1, 2]

    def __post_init__(self) -> None:
        if self.half not in (1, 2):
            raise ValueError(f"half must be 1 or 2, got {self.half!r}")

    @classmethod
    def containing(cls, day: date) -> HalfYear:
        return cls(day.year, 1 if day.month <= 6 else 2)

    @classmethod
    def parse(cls, text: str) -> HalfYear:
        match = _HALF_YEAR.match(text.strip())
        if match is None:
            raise ValueError(f"a half-year is written like 2026-H2, got {text!r}")
        return cls(int(match.group(1)), 1 if match.group(2) == "1" else 2)

    @property
    def start(self) -> date:
        return date(self.year, 1 if self.half == 1 else 7, 1)

    @property
    def end(self) -> date:
        return date(self.year, 6, 30) if self.half == 1 else date(self.year, 12, 31)

    def next(self) -> HalfYear:
        return HalfYear(self.year, 2) if self.half == 1 else HalfYear(self.year + 1, 1)

    def __str__(self) -> str:
        return f"{self.year}-H{self.half}"


class RateUnknownError(LookupError):
    """No published rate is recorded for that half-year (or that country); never guessed."""

    def __init__(self, series: str, half_year: HalfYear, first_known: HalfYear | None) -> None:
        self.series = series
        self.half_year = half_year
        where = f"the table starts at {first_known}" if first_known else "there is no table"
        super().__init__(
            f"no {SERIES_NAMES.get(series, series)} is recorded for {half_year} "
            f"({half_year.start.isoformat()} to {half_year.end.isoformat()}); {where}"
        )


class RatesFileError(ValueError):
    """A rates file that cannot be used, with the file, the line and the reason."""

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        self.path, self.line, self.reason = path, line, reason
        where = f"{path}" + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class PublishedRate:
    """One row: an annual rate in percent, where it comes from, and whether it was checked."""

    series: str
    half_year: HalfYear
    percent: Decimal
    confirmed: bool
    source: str
    published: date | None = None
    # Where the row was read: the shipped table or the operator's file, and its line.
    origin: str = ""


@dataclass(frozen=True)
class RateLookup:
    percent: Decimal
    half_year: HalfYear
    # True past the end of the table (last value reused) or for an unconfirmed row.
    provisional: bool


@dataclass(frozen=True)
class RateTable:
    """Every series' rows by half-year. Build it with `load_rates`; lookups are pure."""

    series: Mapping[str, Mapping[HalfYear, PublishedRate]] = field(default_factory=dict)

    def rows(self) -> list[PublishedRate]:
        return [row for name in sorted(self.series) for _, row in sorted(self.series[name].items())]

    def lookup(self, series: str, on: date) -> RateLookup:
        table = self.series.get(series, {})
        half_year = HalfYear.containing(on)
        if not table:
            raise RateUnknownError(series, half_year, None)
        first, last = min(table), max(table)
        if half_year < first:
            raise RateUnknownError(series, half_year, first)
        if half_year > last:
            return RateLookup(table[last].percent, half_year, provisional=True)
        row = table[half_year]
        return RateLookup(row.percent, half_year, provisional=not row.confirmed)

    def provisional_in(self, half_year: HalfYear) -> list[str]:
        """The series whose rate for `half_year` is not confirmed (or not recorded yet)."""
        names = []
        for name in sorted(self.series):
            try:
                found = self.lookup(name, half_year.start)
            except RateUnknownError:
                continue
            if found.provisional:
                names.append(name)
        return names


def _parse_rows(text: str, origin: Path | str) -> Iterable[PublishedRate]:
    # Lines starting with "#" are comments; they keep their place so line numbers stay true.
    lines = text.splitlines()
    data = [
        (n, line) for n, line in enumerate(lines, 1) if line.strip() and not line.startswith("#")
    ]
    if not data:
        raise RatesFileError(origin, None, "no header line; expected " + ",".join(COLUMNS))
    header_line, header = data[0]
    columns = next(csv.reader([header]))
    if tuple(c.strip() for c in columns) != COLUMNS:
        raise RatesFileError(
            origin, header_line, f"the header must be {','.join(COLUMNS)}, got {header!r}"
        )
    for number, line in data[1:]:
        cells = next(csv.reader(io.StringIO(line)))
        yield _parse_row(cells, origin, number)


def _parse_row(cells: list[str], origin: Path | str, line: int) -> PublishedRate:
    def fail(reason: str) -> RatesFileError:
        return RatesFileError(origin, line, reason)

    if len(cells) != len(COLUMNS):
        raise fail(f"expected {len(COLUMNS)} columns ({','.join(COLUMNS)}), got {len(cells)}")
    series, half_year_text, percent_text, confirmed_text, published_text, source = (
        cell.strip() for cell in cells
    )
    if series not in SERIES_NAMES:
        raise fail(f"unknown series {series!r} (known: {', '.join(sorted(SERIES_NAMES))})")
    try:
        half_year = HalfYear.parse(half_year_text)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if not _PERCENT.match(percent_text):
        raise fail(f"percent must be a decimal such as 2.15 (0 to 99.9999), got {percent_text!r}")
    try:
        percent = Decimal(percent_text)
    except InvalidOperation:  # pragma: no cover - the pattern already rules this out
        raise fail(f"percent {percent_text!r} is not a number") from None
    if confirmed_text not in ("true", "false"):
        raise fail(f"confirmed must be true or false, got {confirmed_text!r}")
    published = None
    if published_text:
        try:
            published = date.fromisoformat(published_text)
        except ValueError:
            raise fail(f"published must be a date YYYY-MM-DD, got {published_text!r}") from None
    if not source:
        raise fail("every figure needs its source (who published it, where)")
    return PublishedRate(
        series=series,
        half_year=half_year,
        percent=percent,
        confirmed=confirmed_text == "true",
        source=source,
        published=published,
        origin=f"{Path(origin).name}:{line}",
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RatesFileError(path, None, f"cannot be read ({exc.strerror or exc})") from None


def load_rates(extra: Path | None = None, shipped: Path = SHIPPED_RATES_FILE) -> RateTable:
    """The shipped table, with the rows of `extra` (the operator's file) replacing or adding.

    Raises RatesFileError naming the file and line of the first bad row, a row given twice in
    one file, or a gap between half-years once merged (a gap would make "the last known value"
    ambiguous: fail at start, not in a letter).
    """
    merged: dict[str, dict[HalfYear, PublishedRate]] = {name: {} for name in SERIES_NAMES}
    for path in (shipped, extra):
        if path is None:
            continue
        seen: dict[tuple[str, HalfYear], str] = {}
        for row in _parse_rows(_read(path), path):
            key = (row.series, row.half_year)
            if key in seen:
                line = int(row.origin.rsplit(":", 1)[1])
                raise RatesFileError(
                    path, line, f"{row.series} {row.half_year} is given twice (also {seen[key]})"
                )
            seen[key] = row.origin
            merged[row.series][row.half_year] = row
    for name, table in merged.items():
        for before, after in pairwise(sorted(table)):
            if before.next() != after:
                origin = extra if extra is not None else shipped
                raise RatesFileError(origin, None, f"{name} has a gap between {before} and {after}")
    return RateTable({name: MappingProxyType(table) for name, table in merged.items()})


# The table lookups use when the caller passes none: the shipped file until `use_rates`
# installs the one built at start (worker, API, CLI) from the settings.
_active: RateTable | None = None


def use_rates(table: RateTable) -> None:
    """Install the table built at start; later lookups without an explicit table use it."""
    global _active
    _active = table


def active_rates() -> RateTable:
    global _active
    if _active is None:
        _active = load_rates()
    return _active


def provisional_warning(table: RateTable, on: date) -> str | None:
    """What ops should hear when `on`'s half-year uses rates not confirmed yet, else None."""
    half_year = HalfYear.containing(on)
    names = table.provisional_in(half_year)
    if not names:
        return None
    series = ", ".join(SERIES_NAMES[name] for name in names)
    return (
        f"late-payment rates for the current half-year {half_year} are provisional ({series}): "
        "formal notices say so; add the confirmed rows to the file RELANCE_RATES_FILE names "
        "(columns as in domain/rates.csv)"
    )


def ecb_main_refinancing_rate(on: date, table: RateTable | None = None) -> RateLookup:
    """ECB main refinancing rate (percent) in force on the first day of `on`'s half-year."""
    return (table or active_rates()).lookup(ECB_SERIES, on)


def legal_interest_rate(on: date, table: RateTable | None = None) -> RateLookup:
    """French legal interest rate, "autres cas" (percent), for `on`'s half-year."""
    return (table or active_rates()).lookup(LEGAL_SERIES, on)
