"""`relance roles matrix` and `relance privacy erase-expired`."""

from __future__ import annotations

from typing import Annotated

import typer

from api.roles import matrix
from api.services.privacy import erase_expired
from cli.common import explained, settings_from_env, store
from store.privacy import RESTRICTED

roles_app = typer.Typer(help="Who may call what (the role table).", no_args_is_help=True)
privacy_app = typer.Typer(help="Personal data of debtors' contacts (GDPR).", no_args_is_help=True)


@roles_app.command("matrix")
def roles_matrix() -> None:
    """Print the endpoint × role matrix (Markdown), generated from the role table."""
    typer.echo(matrix(), nl=False)


@privacy_app.command("erase-expired")
def privacy_erase_expired(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="say who would be erased, change nothing")
    ] = False,
) -> None:
    """Pseudonymise the contacts whose retention ended (RELANCE_PERSONAL_DATA_RETENTION_DAYS
    after their last invoice closed), unless processing is restricted. Run it daily."""
    settings = settings_from_env()
    with explained():
        engine = store(settings)
    try:
        report = erase_expired(engine, settings, dry_run=dry_run)
    finally:
        engine.dispose()
    verb = "would be pseudonymised" if dry_run else "pseudonymised"
    typer.echo(f"{len(report.erased)} debtor(s) {verb}: {', '.join(report.erased) or '-'}")
    restricted = [v.debtor_id for v in report.kept if v.why == RESTRICTED]
    if restricted:
        typer.echo(f"kept, processing restricted: {', '.join(restricted)}")
    if report.idempotency_keys_purged:
        typer.echo(f"{report.idempotency_keys_purged} expired idempotency key(s) purged")
