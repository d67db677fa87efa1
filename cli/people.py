"""`relance user ...`: people who sign in to the console (API keys stay for machines)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from api.console import accounts
from api.errors import ApiError
from cli.common import Failure, explained, settings_from_env, store
from store.people import Language, PersonRole

app = typer.Typer(help="People who sign in to the console at /console.", no_args_is_help=True)


@app.command("add")
def add(
    email: Annotated[str, typer.Argument(help="the person's email: their sign-in name")],
    role: Annotated[
        PersonRole,
        typer.Option(
            "--role",
            case_sensitive=False,
            help="collector (approvals, calls, disputes), ops (pauses, write-offs), "
            "finance (portfolio, reports), admin (everything)",
        ),
    ],
    language: Annotated[Language, typer.Option("--language")] = Language.FR,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
) -> None:
    """Create a person's account; the password is asked for (at least 12 characters)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    settings = settings_from_env()
    with explained():
        engine = store(settings)
        try:
            user = accounts.add_user(engine, email, role, password, language)
        except ApiError as refused:
            raise Failure(refused.detail) from None
        finally:
            engine.dispose()
    typer.echo(f"created user:{user.id} {user.email} ({user.role})")


@app.command("unlock")
def unlock(email: str) -> None:
    """Unlock an account locked after repeated wrong passwords."""
    settings = settings_from_env()
    with explained():
        engine = store(settings)
        try:
            accounts.unlock(engine, email)
        except ApiError as refused:
            raise Failure(refused.detail) from None
        finally:
            engine.dispose()
    typer.echo(f"{email} is unlocked")
