"""`relance`: run everything on one machine (`dev`), or each piece against configured services.

relance dev                              Temporal dev server + worker + API, Ctrl-C stops all
relance worker                           a worker against RELANCE_TEMPORAL_ADDRESS
relance api                              the API (uvicorn) against the same
relance apikey create --role ROLE        a new API key, printed once
relance migrate                          bring the store's schema up to date
relance rates show                       the late-payment rates in use and their sources
relance dossier NUMBER                   an invoice's legal file (zip)
relance roles matrix                     who may call what (the README's matrix)
relance privacy erase-expired            pseudonymise contacts whose retention ended
relance user add EMAIL --role R          a person who signs in to the console
relance demo                             load a demo portfolio into a running `relance dev`
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from typing import Annotated

import typer
import uvicorn
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client
from temporalio.service import RPCError

from api.app import connect_temporal, create_app
from api.auth import Role, active_keys, create_api_key
from cli import demo, dossier, imports, people, playbooks, preview, rates
from cli.access import privacy_app, roles_app
from cli.common import Failure, compile_bytecode, explained, settings_from_env, store
from cli.devserver import (
    STOP_GRACE_SECONDS,
    DevServer,
    WorkerSupervisor,
    ensure_search_attributes,
)
from config import Settings
from worker import WorkerFailed, run_worker

log = logging.getLogger("relance")

# The key `relance dev` creates for its user on first run, recognised on later runs.
DEV_KEY_LABEL = "relance dev"

app = typer.Typer(
    help="Relance: durable B2B receivables collection on Temporal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
apikey_app = typer.Typer(help="API keys (Authorization: Bearer <key>).", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")
app.add_typer(playbooks.app, name="playbooks")
app.add_typer(roles_app, name="roles")
app.add_typer(privacy_app, name="privacy")
app.command("import")(imports.import_invoices)
app.command("preview")(preview.preview)
app.add_typer(rates.app, name="rates")
app.command("dossier")(dossier.dossier)
app.add_typer(people.app, name="user")
app.command("demo")(demo.demo)


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _check_port(host: str, port: int, setting: str) -> None:
    # uvicorn would log the bind error and exit the process; we want to name the setting.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            raise Failure(
                f"cannot serve the API on {host}:{port} ({err.strerror}): set {setting} to a "
                "free port"
            ) from err


async def _ensure_attributes(client: Client, settings: Settings) -> None:
    try:
        added = await ensure_search_attributes(client, settings.temporal_namespace)
    except RPCError as err:
        # On a managed cluster the worker may not be allowed to call the operator service:
        # the attributes are then an operator's job, and the worker can still run.
        log.warning(
            "could not check Relance's search attributes in namespace %r (%s); make sure an "
            "operator registered them",
            settings.temporal_namespace,
            err.message,
        )
        return
    if added:
        log.info("registered search attributes: %s", ", ".join(added))


# ------------------------------------------------------------------ migrate, apikey


@app.command()
def migrate() -> None:
    """Bring the store's schema to the latest version (safe to run again)."""
    settings = settings_from_env()
    with explained():
        engine = store(settings)
    typer.echo(f"store {engine.url.render_as_string(hide_password=True)} is up to date")
    engine.dispose()


@apikey_app.command("create")
def apikey_create(
    role: Annotated[
        Role,
        typer.Option(
            "--role",
            case_sensitive=False,
            help="backoffice (invoices, payments, imports), collector (approvals, disputes, "
            "plans, tasks, pauses), finance (write-offs), ops (read-only), admin (everything)",
        ),
    ],
    label: Annotated[
        str | None, typer.Option("--label", help="who uses it; shown as the decider")
    ] = None,
) -> None:
    """Create an API key and print it. It is stored hashed: it cannot be shown again."""
    settings = settings_from_env()
    with explained():
        engine = store(settings)
    try:
        key = create_api_key(engine, role, label)
    finally:
        engine.dispose()
    # The key alone on stdout, so `KEY=$(relance apikey create --role ops)` works.
    typer.echo(key)
    typer.echo(
        f"created a {role.value} key{f' ({label})' if label else ''}; "
        "it is shown only this once: keep it",
        err=True,
    )


# ------------------------------------------------------------------ worker, api


@app.command()
def worker() -> None:
    """Run a worker against the configured Temporal (RELANCE_TEMPORAL_ADDRESS)."""
    settings = settings_from_env()
    _logging()
    compile_bytecode()
    with explained():
        asyncio.run(_worker(settings))


async def _worker(settings: Settings) -> None:
    client = await connect_temporal(settings)
    await _ensure_attributes(client, settings)
    try:
        await run_worker(settings)
    except WorkerFailed as err:
        raise Failure(str(err)) from err


@app.command()
def api() -> None:
    """Serve the API (RELANCE_API_HOST:RELANCE_API_PORT) against the configured Temporal."""
    settings = settings_from_env()
    _logging()
    with explained(), contextlib.suppress(KeyboardInterrupt):
        _check_port(settings.api_host, settings.api_port, "RELANCE_API_PORT")
        asyncio.run(_api(settings))


async def _api(settings: Settings) -> None:
    engine = await asyncio.to_thread(store, settings)
    try:
        client = await connect_temporal(settings)
        application = create_app(settings, client=client, engine=engine)
        server = uvicorn.Server(
            uvicorn.Config(application, host=settings.api_host, port=settings.api_port)
        )
        await server.serve()
    finally:
        engine.dispose()


# ------------------------------------------------------------------ dev


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: `relance dev` stops the worker on Ctrl-C too."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.ready.set()


def _dev_key(engine: Engine) -> str:
    """The line that tells the user which API key to use; creates one on the first run."""
    with Session(engine) as session:
        existing = [k for k in active_keys(session, role=Role.ADMIN) if k.label == DEV_KEY_LABEL]
    if existing:
        return (
            f"{existing[0].prefix}… (admin, created on the first run; keys are stored hashed, "
            "so it cannot be shown again: `relance apikey create --role admin` makes a new one)"
        )
    key = create_api_key(engine, Role.ADMIN, DEV_KEY_LABEL)
    return f"{key}   (admin; shown only this once: keep it)"


def _banner(settings: Settings, server: DevServer | None, key_line: str) -> str:
    base = f"http://{settings.api_host}:{settings.api_port}"
    if server is not None:
        temporal = f"{server.ui_url}   (Temporal Web UI; server at {server.target})"
    else:
        temporal = f"{settings.temporal_target} (external, RELANCE_TEMPORAL_ADDRESS)"
    if settings.email_backend == "outbox":
        email = f"{settings.resolved_outbox_dir.absolute()}   (one .eml per message)"
    else:
        email = f"SendGrid ({settings.sendgrid_host}) from {settings.email_from}"
    return "\n".join(
        [
            "",
            "Relance is running. Ctrl-C stops it.",
            f"  API          {base}   (docs: {base}/docs)",
            f"  Console      {base}/console   (people: `relance user add EMAIL --role R`)",
            f"  Temporal     {temporal}",
            f"  Email        {email}",
            f"  API key      {key_line}",
            f"  Try          curl -H 'Authorization: Bearer <key>' {base}/v1/approvals",
            "",
        ]
    )


@app.command()
def dev() -> None:
    """Everything on this machine: Temporal dev server, worker and API. Ctrl-C stops all."""
    settings = settings_from_env()
    _logging()
    compile_bytecode()
    server: DevServer | None = None
    with explained():
        engine = store(settings)
        try:
            _check_port(settings.api_host, settings.api_port, "RELANCE_API_PORT")
            key_line = _dev_key(engine)
            if settings.temporal_address is None:
                typer.echo(f"starting the Temporal dev server (data in {settings.data_dir})…")
                # In the main thread: the server is tied to it and dies with this process.
                server = DevServer(settings)
                server.start()
            asyncio.run(_dev(settings, engine, server, key_line))
        except KeyboardInterrupt:
            pass  # Ctrl-C before everything was up: the finally below still cleans up
        finally:
            if server is not None:
                server.stop()
            engine.dispose()
    typer.echo("Relance stopped.")


async def _dev(settings: Settings, engine: Engine, server: DevServer | None, key_line: str) -> None:
    client = await connect_temporal(settings)
    if server is None:  # the embedded server registers its attributes as it starts
        await _ensure_attributes(client, settings)
    stop = asyncio.Event()
    http = _EmbeddedServer(
        uvicorn.Config(
            create_app(settings, client=client, engine=engine),
            host=settings.api_host,
            port=settings.api_port,
            log_level="warning",
        )
    )

    def on_signal() -> None:
        if stop.is_set():
            http.force_exit = True  # a second Ctrl-C: stop waiting for open connections
        stop.set()
        http.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    tasks = {
        asyncio.create_task(_worker_process(settings).run(stop), name="worker"),
        asyncio.create_task(http.serve(), name="api"),
    }
    banner = asyncio.create_task(_announce(http, settings, server, key_line))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Whichever ends first (Ctrl-C, or a failure) ends the other: the worker then shuts
        # down gracefully, letting running activities finish, while Temporal is still up.
        stop.set()
        http.should_exit = True
        banner.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    for result in results:
        if isinstance(result, SystemExit):
            raise Failure("the API server could not start (see the log above)")
        if isinstance(result, BaseException):
            raise result


def _worker_process(settings: Settings) -> WorkerSupervisor:
    """`relance worker` in a child process, restarted if it dies, on the same Temporal."""
    command = [sys.executable, "-c", "from cli.main import app; app(prog_name='relance')", "worker"]
    env = {**os.environ, "RELANCE_TEMPORAL_ADDRESS": settings.temporal_target}
    # Its graceful shutdown lets running activities finish: wait for it, and then some.
    grace = settings.worker_graceful_shutdown_seconds + STOP_GRACE_SECONDS
    return WorkerSupervisor(command, env=env, stop_grace=grace)


async def _announce(
    http: _EmbeddedServer, settings: Settings, server: DevServer | None, key_line: str
) -> None:
    await http.ready.wait()
    typer.echo(_banner(settings, server, key_line))
