"""`relance rates show`: the late-payment rates in use, each with its source and status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from cli.common import settings_from_env
from domain.law import FRANCE_MARGIN, LEGAL_RATE_FLOOR_MULTIPLE
from domain.rates import ECB_SERIES, LEGAL_SERIES, SERIES_NAMES, HalfYear, provisional_warning

app = typer.Typer(help="Late-payment rates (ECB, French legal rate).", no_args_is_help=True)


@app.command("show")
def show(
    since: Annotated[
        int | None, typer.Option("--since", help="only half-years from this year on")
    ] = None,
) -> None:
    """Print every half-year's rates, the default rate they give, and where each comes from.

    The shipped table plus the file RELANCE_RATES_FILE names (its rows win). "provisional"
    marks a figure not confirmed yet: formal notices using it say so.
    """
    settings = settings_from_env()
    table = settings.rate_table()
    rows = [r for r in table.rows() if since is None or r.half_year.year >= since]
    typer.echo(
        f"{'series':<16}{'half-year':<11}{'percent':>8}  {'status':<12}{'published':<12}"
        "source (origin)"
    )
    for row in rows:
        status = "confirmed" if row.confirmed else "provisional"
        published = row.published.isoformat() if row.published else "-"
        typer.echo(
            f"{row.series:<16}{row.half_year!s:<11}{row.percent:>8}  {status:<12}{published:<12}"
            f"{row.source} ({row.origin})"
        )
    # What the law makes of them: the default rate (ECB + 10) and the contractual minimum.
    typer.echo("")
    typer.echo(f"{'half-year':<11}{'ECB + 10':>10}{'3 × legal':>11}")
    half_years = sorted({r.half_year for r in rows})
    for half_year in half_years:
        ecb = table.lookup(ECB_SERIES, half_year.start)
        legal = table.lookup(LEGAL_SERIES, half_year.start)
        flag = "  provisional" if ecb.provisional or legal.provisional else ""
        typer.echo(
            f"{half_year!s:<11}{ecb.percent + FRANCE_MARGIN:>10}"
            f"{LEGAL_RATE_FLOOR_MULTIPLE * legal.percent:>11}{flag}"
        )
    today = datetime.now(UTC).date()
    warning = provisional_warning(table, today)
    current = HalfYear.containing(today)
    if warning:
        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
    else:
        names = " and ".join(SERIES_NAMES[s] for s in (ECB_SERIES, LEGAL_SERIES))
        typer.echo(f"\n{current}: {names} confirmed.")
