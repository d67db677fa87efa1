"""`/healthz`: is this API able to serve? For load balancers and docker-compose healthchecks."""

from __future__ import annotations

from datetime import timedelta

import anyio
from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.engine import Engine
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from api.schemas import Health

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_SECONDS = 3.0


def _ping_store(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


async def _store_state(engine: Engine | None) -> str:
    if engine is None:
        return "down: not initialised"
    try:
        with anyio.fail_after(CHECK_TIMEOUT_SECONDS):
            # abandon_on_cancel: a hung connect must not hold the health check itself.
            await to_thread.run_sync(_ping_store, engine, abandon_on_cancel=True)
    except TimeoutError:
        return f"down: no answer within {CHECK_TIMEOUT_SECONDS:g} s"
    except Exception as err:
        # The class only: a driver message may include the database URL.
        return f"down: {type(err).__name__}"
    return "ok"


async def _temporal_state(client: Client | None) -> str:
    if client is None:
        return "down: not initialised"
    try:
        # Describing our namespace proves both that the server answers and that the namespace
        # the workflows live in exists.
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=client.namespace),
            timeout=timedelta(seconds=CHECK_TIMEOUT_SECONDS),
        )
    except Exception as err:
        return f"down: {err}"
    return "ok"


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "the store or Temporal is down"}},
    summary="Store and Temporal reachability (no auth)",
)
async def healthz(request: Request) -> JSONResponse:
    state = request.app.state
    health = Health(
        status="ok",
        store=await _store_state(state.engine),
        temporal=await _temporal_state(state.client),
    )
    if health.store != "ok" or health.temporal != "ok":
        health.status = "unavailable"
    code = 200 if health.status == "ok" else 503
    return JSONResponse(health.model_dump(), status_code=code)
