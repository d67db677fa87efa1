"""What routes receive: settings, the store, the Temporal client and the calling principal.

Everything reaches a route through an `Annotated[..., Depends(...)]` alias, built from what the
app's lifespan put on `app.state` (so tests can inject their own engine and client).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client

from api.auth import Principal, authenticate
from api.errors import Forbidden, Unavailable
from api.roles import allowed_roles
from config import Settings

# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` one on the thread
# pool, a thread hop per dependency per request for reading an attribute.
#
# (`current_principal` reads the store, so it stays a plain `def` on the pool.)


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> Engine:
    engine: Engine | None = request.app.state.engine
    if engine is None:
        raise Unavailable("the store is not ready yet")
    return engine


async def get_client(request: Request) -> Client:
    client: Client | None = request.app.state.client
    if client is None:
        raise Unavailable("the Temporal client is not ready yet")
    return client


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    """A read session. Writes go through `store.engine.transaction` inside the services."""
    with Session(engine) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ClientDep = Annotated[Client, Depends(get_client)]
SessionDep = Annotated[Session, Depends(get_session)]

# auto_error=False: a missing header is our 401 (with WWW-Authenticate), not FastAPI's 403.
# Declaring the scheme also puts the "Authorize" button in /docs.
_bearer = HTTPBearer(auto_error=False, description="An API key: `relance apikey create`")


def current_principal(
    engine: EngineDep,
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # The raw header, so a malformed one gets our explanation rather than a generic error.
    return authenticate(engine, request.headers.get("Authorization"))


PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def authorize(request: Request, principal: PrincipalDep) -> Principal:
    """Let the call through if the role table (`api.roles.RULES`) allows the key's role."""
    route = request.scope.get("route")
    # The route's template ("/v1/invoices/{number}"); the URL is only built when there is none.
    path = getattr(route, "path", None) or request.url.path
    roles = allowed_roles((request.method, path))
    if roles is None:
        # Fail closed: an endpoint nobody put in the table is open to nobody.
        raise Forbidden(f"{request.method} {path} has no role rule: nobody may call it")
    if principal.role not in roles:
        names = " or ".join(role.value for role in roles)
        raise Forbidden(
            f"this needs an API key with the role {names}; "
            f"this key has the role {principal.role.value}"
        )
    return principal


# The caller, authenticated and authorized for this endpoint by the role table.
Caller = Annotated[Principal, Depends(authorize)]
