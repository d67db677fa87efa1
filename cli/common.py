"""What every `relance` command shares: settings, the store, and one-line errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NoReturn

import typer
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from api.app import TemporalUnreachable
from cli.devserver import DevServerError, SearchAttributeError
from config import Settings
from store.engine import make_engine
from store.migrate import upgrade


class Failure(Exception):
    """A problem the user can fix: printed as one line, exit code 1, no traceback."""


def fail(message: str) -> NoReturn:
    typer.secho(f"relance: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


@contextlib.contextmanager
def explained() -> Iterator[None]:
    """Turn the errors we can explain into one clear line instead of a traceback."""
    try:
        yield
    except (Failure, TemporalUnreachable, DevServerError, SearchAttributeError) as err:
        fail(str(err))


def settings_from_env() -> Settings:
    # Not the cached get_settings(): each command reads the environment as it is now.
    try:
        settings = Settings()
    except ValidationError as err:
        problems = "; ".join(
            (f"RELANCE_{'_'.join(str(p) for p in e['loc']).upper()}: " if e["loc"] else "")
            + e["msg"].removeprefix("Value error, ")
            for e in err.errors()
        )
        fail(f"invalid configuration: {problems}")
    settings.install_rates()
    return settings


def store(settings: Settings) -> Engine:
    engine = make_engine(settings.resolved_database_url)
    try:
        upgrade(engine)
    except Exception as err:
        engine.dispose()
        where = engine.url.render_as_string(hide_password=True)
        raise Failure(
            f"cannot open the store at {where} ({type(err).__name__}: {err}); "
            "check RELANCE_DATABASE_URL / RELANCE_DATA_DIR"
        ) from err
    return engine
