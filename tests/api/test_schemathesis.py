"""Property-based tests of the whole API from its own OpenAPI document (schemathesis).

Every operation, every built-in check (server errors, status codes, content types, response
schemas and headers, valid data accepted, invalid data rejected, auth not ignored, methods not
documented answered 405 with a true Allow...), positive and negative cases, against the real
app: served on loopback by uvicorn, with a migrated SQLite store, the real Temporal dev server
and a real worker, on a thread of its own so schemathesis' synchronous calls can block.

Kept small for CI: a fixed seed, derandomized, 25 examples per operation and phase (about two
minutes for the 26 operations on a 2-core machine). The rules a JSON schema cannot state are
answered 422 to schema-valid data: a due date after the issue date, an amount with no more
decimals than its currency, a date at most ten years from today (it moves), a subdivision of
the debtor's country, fields that go together (a currency with an amount, a promised date with
a promise, an opt-out's reason with its date, a credit note with an upheld dispute), a plan
adding up to what is outstanding, a playbook that exists in this deployment. That answer is the
one exception made to "valid data is accepted"; each rule has its own test.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.email import OutboxSender
from api.app import create_app
from api.auth import Role, create_api_key
from config import Settings
from store.engine import make_engine
from store.migrate import upgrade
from worker import build_worker

MAX_EXAMPLES = 25
SEED = 20261202

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            # The API key is sent by the test (an admin key): not generated, so not negated.
            "with-security-parameters": False,
        },
        # No stateful phase: links between operations are not declared.
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            "positive_data_acceptance": {
                # The defaults (2xx, 3xx, 401, 403, 404, 409, 429, 5xx, a 5xx failing the
                # not_a_server_error check anyway) and 422 for the cross-field rules above.
                "expected-statuses": ["2xx", "401", "403", "404", "409", "422"]
            }
        },
    }
)


@dataclass
class Served:
    base_url: str
    key: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _public_key() -> str:
    # SendGrid's webhook is configured (a P-256 key made here): unsigned requests are a 403.
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def _serve(
    target: str,
    namespace: str,
    settings: Settings,
    engine: Engine,
    port: int,
    ready: threading.Event,
    stop: threading.Event,
) -> None:
    async def main() -> None:
        client = await Client.connect(
            target, namespace=namespace, data_converter=pydantic_data_converter
        )
        worker = build_worker(
            client,
            settings,
            engine,
            sender=OutboxSender(settings.resolved_outbox_dir, settings.email_from),
            task_queue=settings.task_queue,
        )
        app = create_app(settings, client=client, engine=engine)
        server = uvicorn.Server(
            # log_config=None: uvicorn's default config would turn its loggers' propagation off
            # for every later test in this process.
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=None)
        )
        async with worker:
            serving = asyncio.create_task(server.serve())
            # Polled: the flags are set by uvicorn and by the test's thread, not awaitable here.
            while not server.started and not serving.done():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            ready.set()
            while not stop.is_set() and not serving.done():  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            server.should_exit = True
            await serving

    asyncio.run(main())


@pytest.fixture(scope="module")
def served(
    dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    data = Path(tmp_path_factory.mktemp("schemathesis"))
    engine = make_engine(f"sqlite:///{data / 'relance.db'}")
    upgrade(engine)
    settings = Settings(
        _env_file=None,
        data_dir=data,
        task_queue=f"tq-st-{uuid.uuid4().hex[:8]}",
        rpc_timeout_seconds=10,
        sendgrid_webhook_public_key=_public_key(),
        # The other providers' callbacks are configured too: unsigned requests are refused.
        stripe_api_key="sk_test_schemathesis",
        stripe_webhook_secret="whsec_schemathesis",
        twilio_auth_token="twilio-token-for-schemathesis",
        # Twilio signs the public https URL it posts to.
        public_url="https://relance.test",
        maileva_webhook_user="maileva",
        maileva_webhook_password="maileva-password-for-schemathesis",
    )
    port = _free_port()
    ready, stop = threading.Event(), threading.Event()
    config = dev_env.client.service_client.config
    thread = threading.Thread(
        target=_serve,
        args=(config.target_host, dev_env.client.namespace, settings, engine, port, ready, stop),
        daemon=True,
    )
    thread.start()
    assert ready.wait(30), "the API did not start"
    # Admin may call every operation: role refusals have tests of their own.
    key = create_api_key(engine, Role.ADMIN, label="schemathesis")
    yield Served(base_url=f"http://127.0.0.1:{port}", key=key)
    stop.set()
    thread.join(30)
    engine.dispose()


# The document the app serves at /openapi.json, read from the app itself (it needs no server):
# one test per operation, collected before anything runs.
schema = schemathesis.openapi.from_dict(
    create_app(Settings(_env_file=None)).openapi(), config=CONFIG
)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_keeps_its_contract(case: Any, served: Served) -> None:
    case.call_and_validate(
        base_url=served.base_url, headers={"Authorization": f"Bearer {served.key}"}
    )
