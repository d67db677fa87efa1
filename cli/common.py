"""What every `relance` command shares: settings, the store, and one-line errors."""

from __future__ import annotations

import compileall
import contextlib
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import typer
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from api.app import TemporalUnreachable
from cli.devserver import DevServerError, SearchAttributeError
from config import Settings
from store.engine import make_engine
from store.migrate import upgrade

# What a worker imports: the workflow sandbox imports its modules again for every new (or
# evicted) workflow instance, from source when no bytecode cache exists beside it.
_WORKER_CODE = ("workflows", "activities", "domain", "contracts", "messages", "store")


def compile_bytecode() -> None:
    """Write the bytecode cache of Relance's own code, if it is missing or stale.

    Python writes it on first import, unless PYTHONDONTWRITEBYTECODE is set (as in many
    container images); without it the sandbox compiles `workflows/invoice.py` again for every
    workflow instance it creates. An unwritable install (a read-only image) is left as it is.
    """
    for name in _WORKER_CODE:
        folder = Path(importlib.import_module(name).__path__[0])
        with contextlib.suppress(OSError):
            compileall.compile_dir(folder, quiet=2)


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
