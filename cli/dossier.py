"""`relance dossier NUMBER`: write an invoice's legal file (zip) for a lawyer."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from api.errors import ApiError
from api.services import dossier as service
from cli.common import explained, fail, settings_from_env, store


def dossier(
    number: Annotated[str, typer.Argument(help="the invoice number")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="where to write it; default NUMBER-dossier.zip"),
    ] = None,
) -> None:
    """Write the invoice's legal file: data, timeline, messages as sent, amounts, summary PDF."""
    settings = settings_from_env()
    with explained():
        engine = store(settings)
    now = datetime.now(UTC)
    try:
        with Session(engine) as session:
            body = service.dossier(session, settings, number, as_of=now.date(), created_at=now)
    except ApiError as err:
        fail(err.detail)
    finally:
        engine.dispose()
    target = output or Path(f"{number}-dossier.zip")
    try:
        target.write_bytes(body)
    except OSError as err:
        fail(f"cannot write {target}: {err.strerror or err}")
    typer.echo(str(target))
