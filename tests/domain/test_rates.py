"""Rate tables as data: the shipped file, and the operator's file that adds a half-year."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from domain.law import statement_of_amounts
from domain.money import Money
from domain.rates import (
    ECB_SERIES,
    LEGAL_SERIES,
    HalfYear,
    RatesFileError,
    load_rates,
)

HEADER = "series,half_year,percent,confirmed,published,source\n"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rates.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_an_ops_file_confirms_2026_h2_without_a_release(tmp_path: Path) -> None:
    extra = write(
        tmp_path,
        "# confirmed by ops\n"
        'ecb_mro,2026-H2,2.15,true,2026-06-10,"ECB press release"\n'
        'fr_legal_other,2026-H2,2.40,true,2026-06-20,"arrêté (JO)"\n',
    )
    table = load_rates(extra)
    assert table.provisional_in(HalfYear(2026, 2)) == []
    row = table.series[LEGAL_SERIES][HalfYear(2026, 2)]
    assert (row.percent, row.source, row.origin) == (Decimal("2.40"), "arrêté (JO)", "rates.csv:4")
    # The statement built on it is no longer provisional. 31 days of August 2026 at 12.15 %:
    # 10 000 × 12.15 × 31 / 36 500 = 3 766 500 / 36 500 = 103.1917… → 103.19
    statement = statement_of_amounts(
        Money.of("10000", "EUR"), date(2026, 7, 31), date(2026, 8, 31), table=table
    )
    assert statement.interest == Money.of("103.19", "EUR")
    assert not statement.provisional


def test_an_ops_file_can_add_the_next_half_year(tmp_path: Path) -> None:
    table = load_rates(write(tmp_path, 'ecb_mro,2027-H1,2.00,true,,"ECB"\n'))
    assert table.lookup(ECB_SERIES, date(2027, 2, 1)).percent == Decimal("2.00")
    assert not table.lookup(ECB_SERIES, date(2027, 2, 1)).provisional


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('ecb_mro,2026-H3,2.15,true,,"x"\n', "line 2: a half-year is written like 2026-H2"),
        ('euribor,2026-H2,2.15,true,,"x"\n', "line 2: unknown series 'euribor'"),
        ('ecb_mro,2026-H2,2,15,true,,"x"\n', "line 2: expected 6 columns"),
        ('ecb_mro,2026-H2,abc,true,,"x"\n', "line 2: percent must be a decimal"),
        ('ecb_mro,2026-H2,2.15,yes,,"x"\n', "line 2: confirmed must be true or false"),
        ('ecb_mro,2026-H2,2.15,true,30/06/2026,"x"\n', "line 2: published must be a date"),
        ("ecb_mro,2026-H2,2.15,true,,\n", "line 2: every figure needs its source"),
        ('ecb_mro,2028-H1,2.15,true,,"x"\n', "ecb_mro has a gap between 2026-H2 and 2028-H1"),
        (
            'ecb_mro,2026-H2,2.15,true,,"x"\necb_mro,2026-H2,2.10,true,,"y"\n',
            "line 3: ecb_mro 2026-H2 is given twice",
        ),
    ],
)
def test_a_bad_ops_file_names_the_file_and_line(tmp_path: Path, body: str, reason: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(RatesFileError) as caught:
        load_rates(path)
    assert str(path) in str(caught.value)
    assert reason in str(caught.value)


def test_a_missing_file_or_header_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RatesFileError, match="cannot be read"):
        load_rates(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("half_year,percent\n2026-H2,2.15\n", encoding="utf-8")
    with pytest.raises(RatesFileError, match="line 1: the header must be"):
        load_rates(bad)
