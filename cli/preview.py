"""`relance preview NUMBER STEP`: a step's message as the debtor would receive it, unsent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, get_args

import typer

from api.errors import ApiError
from api.schemas import Language
from api.services import previews
from cli.common import explained, fail, settings_from_env, store

LANGUAGES: tuple[str, ...] = get_args(Language)


def _language(value: str | None) -> str | None:
    if value is not None and value not in LANGUAGES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(LANGUAGES)}")
    return value


def preview(
    number: Annotated[str, typer.Argument(help="the invoice number")],
    step: Annotated[str, typer.Argument(help="a step of its playbook, or thank_you")],
    language: Annotated[
        str | None,
        typer.Option(
            "--language",
            callback=_language,
            help=f"instead of the debtor's language: {', '.join(LANGUAGES)}",
        ),
    ] = None,
    html: Annotated[bool, typer.Option("--html", help="print the HTML body")] = False,
    as_of: Annotated[
        datetime | None,
        typer.Option("--as-of", formats=["%Y-%m-%d"], help="the day it speaks of; default today"),
    ] = None,
) -> None:
    """Print a step's message as it would go out today: nothing is sent or recorded."""

    settings = settings_from_env()
    with explained():
        engine = store(settings)
    try:
        message = previews.preview(
            engine,
            settings,
            number,
            step,
            language=language,
            as_of=as_of.date() if as_of else None,
        )
    except ApiError as err:
        fail(err.detail)
    finally:
        engine.dispose()
    # The description on stderr: stdout is the message alone (`> reminder.html`).
    typer.echo(
        f"{message.template} ({message.tone}, {message.language}) to the {message.to_role} "
        f"of invoice {number}, as of {message.as_of}",
        err=True,
    )
    for warning in message.warnings:
        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
    if html:
        typer.echo(message.html, nl=False)
    else:
        typer.echo(f"Subject: {message.subject}\n\n{message.text}", nl=False)
