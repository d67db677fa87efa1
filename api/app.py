"""The FastAPI application: back-office and collector API over the store and Temporal."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from anyio import to_thread
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy.engine import Engine
from temporalio.client import Client

from api import idempotency
from api.console.routes import install_console
from api.console.routes import router as console_router
from api.errors import document_problems, install_error_handlers, temporal_unreachable
from api.portal.routes import install_portal
from api.reports.routes import router as reports_router
from api.routes import router
from config import Settings, get_settings
from store.engine import make_engine
from store.migrate import upgrade
from workflows.client import connect

log = logging.getLogger("relance.api")

DESCRIPTION = """
Relance runs the collection of B2B invoices: each invoice handed over here is followed by a
durable workflow, from a courtesy reminder to a legal hand-off, until it is paid.

Authenticate with `Authorization: Bearer <key>` (`relance apikey create --role ROLE`).
Amounts are decimal strings (`"1200.00"`) with an ISO 4217 currency.

Every error is an RFC 9457 problem (`application/problem+json`): `type` names the kind of
problem (compare it, never the text), `detail` says what is wrong and what to do, and a 422
lists each invalid field in `errors` with its location.
"""


class TemporalUnreachable(RuntimeError):
    """Temporal could not be reached at start: the message says where and what to set."""


async def connect_temporal(settings: Settings) -> Client:
    try:
        return await connect(settings)
    except Exception as err:  # the SDK raises a bare RuntimeError for a failed connect
        raise TemporalUnreachable(temporal_unreachable(settings, err)) from err


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    async with AsyncExitStack() as stack:
        # What a caller injected (tests, `relance dev`) is theirs to close; what we create is ours.
        if app.state.engine is None:
            engine = make_engine(settings.resolved_database_url)
            stack.callback(engine.dispose)
            await to_thread.run_sync(upgrade, engine)
            app.state.engine = engine
            stack.callback(setattr, app.state, "engine", None)
        if app.state.client is None:
            app.state.client = await connect_temporal(settings)
            stack.callback(setattr, app.state, "client", None)
        log.info("API ready (Temporal %s)", settings.temporal_target)
        yield


def create_app(
    settings: Settings | None = None,
    *,
    client: Client | None = None,
    engine: Engine | None = None,
) -> FastAPI:
    # The docs pages' JavaScript and CSS are served by the app itself, not fetched from a CDN:
    # Relance runs on machines without Internet access.
    app = FastAPIOffline(
        title="Relance",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=_lifespan,
    )
    app.state.settings = settings or get_settings()
    app.state.settings.install_rates()
    app.state.client = client
    app.state.engine = engine
    install_error_handlers(app)
    idempotency.install(app)
    app.include_router(router)
    install_portal(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.include_router(reports_router)
    app.include_router(console_router)
    install_console(app)
    return app
