"""The `relance` command line: keys, migrations, clear errors, and `relance dev` end to end."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import inspect
from sqlmodel import Session, select
from typer.testing import CliRunner

from api.auth import hash_key
from cli.main import app
from store.engine import make_engine
from store.tables import ApiKey

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _keys(data_dir: str) -> list[ApiKey]:
    engine = make_engine(f"sqlite:///{data_dir}/relance.db")
    with Session(engine) as session:
        rows = list(session.exec(select(ApiKey)).all())
    engine.dispose()
    return rows


def test_apikey_create_prints_the_key_once_and_stores_its_hash(env: dict[str, str]) -> None:
    result = runner.invoke(
        app, ["apikey", "create", "--role", "collector", "--label", "claire"], env=env
    )

    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("rl_") and "\n" not in key
    assert "shown only this once" in result.stderr
    [row] = _keys(env["RELANCE_DATA_DIR"])
    assert row.role == "collector"
    assert row.label == "claire"
    assert row.key_hash == hash_key(key)


def test_apikey_create_refuses_an_unknown_role(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["apikey", "create", "--role", "wizard"], env=env)

    assert result.exit_code == 2
    assert "wizard" in result.output
    assert "backoffice" in result.output


def test_migrate_creates_the_schema_and_can_run_again(env: dict[str, str]) -> None:
    first = runner.invoke(app, ["migrate"], env=env)
    again = runner.invoke(app, ["migrate"], env=env)

    assert first.exit_code == 0, first.output
    assert again.exit_code == 0, again.output
    assert "up to date" in again.stdout
    engine = make_engine(f"sqlite:///{env['RELANCE_DATA_DIR']}/relance.db")
    assert {"invoice", "debtor", "api_key", "approval"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_bad_configuration_names_the_variable(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["migrate"], env={**env, "RELANCE_DAY_SECONDS": "-1"})

    assert result.exit_code == 1
    assert "RELANCE_DAY_SECONDS" in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_worker_says_where_temporal_was_expected(env: dict[str, str]) -> None:
    address = f"127.0.0.1:{_free_port()}"

    result = runner.invoke(app, ["worker"], env={**env, "RELANCE_TEMPORAL_ADDRESS": address})

    assert result.exit_code == 1
    assert f"Temporal is unreachable at {address}" in result.stderr
    assert "RELANCE_TEMPORAL_ADDRESS" in result.stderr


def test_api_refuses_a_busy_port_naming_the_setting(env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(app, ["api"], env={**env, "RELANCE_API_PORT": str(port)})

    assert result.exit_code == 1
    assert "RELANCE_API_PORT" in result.stderr


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout} s")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_dev_starts_everything_prints_where_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    api_port, temporal_port, ui_port = _free_port(), _free_port(), _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RELANCE_")},
        "RELANCE_DATA_DIR": str(tmp_path / "data"),
        "RELANCE_API_PORT": str(api_port),
        "RELANCE_TEMPORAL_PORT": str(temporal_port),
        "RELANCE_TEMPORAL_UI_PORT": str(ui_port),
        # As in many container images: Python writes no bytecode cache on import.
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    out = tmp_path / "out.txt"
    # The workflow's bytecode, which the worker's sandbox loads for every workflow instance:
    # `relance dev` writes it even where imports do not.
    bytecode = Path(importlib.util.cache_from_source(str(ROOT / "workflows" / "invoice.py")))
    bytecode.unlink(missing_ok=True)

    def run() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-c", "from cli.main import app; app(prog_name='relance')", "dev"],
            cwd=ROOT,
            env=env,
            stdout=out.open("wb"),
            stderr=subprocess.STDOUT,
        )

    process = run()
    try:
        _wait_for(lambda: b"Relance is running" in out.read_bytes(), 60, "the banner")
        text = out.read_text()
        assert f"http://127.0.0.1:{api_port}/docs" in text
        assert f"http://127.0.0.1:{ui_port}" in text
        assert str(tmp_path / "data" / "outbox") in text
        key = next(w for w in text.split() if w.startswith("rl_"))
        assert bytecode.is_file(), "relance dev did not compile the workflow's bytecode"
        health = httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=5)
        assert health.json() == {"status": "ok", "store": "ok", "temporal": "ok"}
        approvals = httpx.get(
            f"http://127.0.0.1:{api_port}/v1/approvals",
            headers={"Authorization": f"Bearer {key}"},
            timeout=5,
        )
        assert approvals.status_code == 200

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=40) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "Relance stopped." in out.read_text()
    # Nothing left behind: the API and the Temporal server are gone with it.
    assert not _listening(api_port)
    assert not _listening(temporal_port)

    # A second run keeps the data and does not print the key again (it cannot: it is hashed).
    out.write_bytes(b"")
    process = run()
    try:
        _wait_for(lambda: b"Relance is running" in out.read_bytes(), 60, "the banner")
        assert key not in out.read_text()
        assert key[:10] in out.read_text()
        assert "relance apikey create --role admin" in out.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_production_startup_refuses_demo_values_naming_each_variable(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["api"], env={**env, "RELANCE_ENV": "production"})

    assert result.exit_code == 1
    for variable in (
        "RELANCE_CREDITOR_NAME",
        "RELANCE_PAYMENT_INSTRUCTIONS",
        "RELANCE_MEDIATOR_EMAIL",
    ):
        assert variable in result.output
    assert "Traceback" not in result.output


def test_roles_matrix_prints_the_role_table(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["roles", "matrix"], env=env)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "| endpoint | backoffice | collector | finance | ops | admin |"
    assert "| `POST /v1/invoices/{number}/pause` | — | ✓ | — | — | ✓ |" in lines
    assert "| `POST /v1/invoices/{number}/write-off` | — | — | ✓ | — | ✓ |" in lines


def test_privacy_erase_expired_runs_on_the_configured_store(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["privacy", "erase-expired", "--dry-run"], env=env)

    assert result.exit_code == 0, result.output
    assert result.output.startswith("0 debtor(s) would be pseudonymised: -")
