"""`relance rates show`, an operator's rates file, and `relance dossier NUMBER`."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
from pypdf import PdfReader
from typer.testing import CliRunner

from cli.main import app
from store.engine import make_engine
from store.migrate import upgrade
from tests.stored import add_invoice

runner = CliRunner()
HEADER = "series,half_year,percent,confirmed,published,source\n"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("RELANCE_"):
            monkeypatch.delenv(name)
    return {"RELANCE_DATA_DIR": str(tmp_path / "data")}


def lines_of(output: str, start: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(start)]


def test_rates_show_lists_each_figure_with_its_source_and_what_the_law_makes_of_it(
    env: dict[str, str],
) -> None:
    result = runner.invoke(app, ["rates", "show", "--since", "2024"], env=env)
    assert result.exit_code == 0, result.output
    [ecb] = [line for line in lines_of(result.output, "ecb_mro") if "2024-H1" in line]
    assert "4.50" in ecb and "confirmed" in ecb and "2023-09-20" in ecb and "rates.csv:" in ecb
    [unconfirmed] = [line for line in lines_of(result.output, "ecb_mro") if "2026-H2" in line]
    assert "provisional" in unconfirmed and "NOT CONFIRMED" in unconfirmed
    # The default is ECB + 10 with no floor: 2024-H1 is 14.50 (3 × 5.07 = 15.21 binds contracts).
    [derived] = lines_of(result.output, "2024-H1 ")
    assert derived.split() == ["2024-H1", "14.50", "15.21"]
    assert not lines_of(result.output, "ecb_mro        2023")


def test_an_operators_file_confirms_a_half_year(env: dict[str, str], tmp_path: Path) -> None:
    extra = tmp_path / "ops-rates.csv"
    extra.write_text(
        HEADER
        + 'ecb_mro,2026-H2,2.15,true,2026-06-10,"ECB press release"\n'
        + 'fr_legal_other,2026-H2,2.40,true,2026-06-20,"arrêté (JO)"\n',
        encoding="utf-8",
    )
    result = runner.invoke(
        app, ["rates", "show", "--since", "2026"], env={**env, "RELANCE_RATES_FILE": str(extra)}
    )
    assert result.exit_code == 0, result.output
    [legal] = [line for line in lines_of(result.output, "fr_legal_other") if "2026-H2" in line]
    assert "2.40" in legal and "confirmed" in legal and "ops-rates.csv:3" in legal
    [derived] = lines_of(result.output, "2026-H2 ")
    assert derived.split() == ["2026-H2", "12.15", "7.20"]


def test_a_bad_rates_file_stops_the_start_naming_file_and_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    extra = tmp_path / "ops-rates.csv"
    extra.write_text(HEADER + 'ecb_mro,2026-H2,2.15,true,,"ok"\necb_mro,2027-H1,two,true,,"x"\n')
    result = runner.invoke(app, ["migrate"], env={**env, "RELANCE_RATES_FILE": str(extra)})
    assert result.exit_code == 1
    assert "RELANCE_RATES_FILE" in result.output
    assert f"{extra}, line 3: percent must be a decimal" in result.output


def test_dossier_writes_the_legal_file(env: dict[str, str], tmp_path: Path) -> None:
    assert runner.invoke(app, ["migrate"], env=env).exit_code == 0
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'relance.db'}")
    upgrade(engine)
    add_invoice(engine, "F-1", amount="100.00", outstanding="100.00")
    engine.dispose()

    result = runner.invoke(app, ["dossier", "F-1", "-o", "out.zip"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "out.zip"
    archive = zipfile.ZipFile(tmp_path / "out.zip")
    assert "statement.json" in archive.namelist()
    assert PdfReader(io.BytesIO(archive.read("summary.pdf"))).pages

    missing = runner.invoke(app, ["dossier", "F-404"], env=env)
    assert missing.exit_code == 1
    assert "invoice F-404 is unknown" in missing.output


def test_terms_of_sale_below_three_times_the_legal_rate_stop_the_start(
    env: dict[str, str],
) -> None:
    result = runner.invoke(
        app, ["migrate"], env={**env, "RELANCE_CONTRACTUAL_INTEREST_RATE": "2x_legal"}
    )
    assert result.exit_code == 1
    assert "RELANCE_CONTRACTUAL_INTEREST_RATE" in result.output
    assert "below 3 × the legal interest rate" in result.output
