"""What every benchmark shares: the dev server, worker and API processes, and how to read them.

- The Temporal dev server is the one `relance dev` runs (`cli.devserver.DevServer`: a SQLite
  file with WAL pragmas), headless, on free ports, in a temporary data dir.
- Workers run in processes of their own, so their CPU time and memory are theirs alone (read
  from /proc): Relance's (`python -m worker`) and the bare yardstick's (`python -m bench.bare`).
- The API runs under uvicorn in its own process too (`uvicorn --factory api.app:create_app`).
- Every figure is printed next to the bare-Temporal one measured in the same run, and the ratio.

Linux only (/proc). Progress goes to stderr; figures to stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import math
import os
import pstats
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy.engine import Engine
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from api.auth import Role, create_api_key
from cli.devserver import DevServer
from config import Settings
from store.engine import make_engine
from store.migrate import upgrade
from workflows.client import connect

REPO = Path(__file__).resolve().parent.parent
_TICKS = os.sysconf("SC_CLK_TCK")
_T = TypeVar("_T")


# ------------------------------------------------------------------ reading a process


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, proc(5)).
    return (int(fields[11]) + int(fields[12])) / _TICKS


def memory_bytes(pid: int, key: str = "VmRSS") -> int:
    """Resident memory now (`VmRSS`) or at its peak (`VmHWM`)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    return 0


def load() -> str:
    """The machine's load (1, 5, 15 min): other work on a shared machine skews every figure."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


@dataclass(frozen=True)
class Cost:
    """CPU seconds, user and system apart (Python's own work is user time; the store's and the
    file's system calls mostly system time, which varies more on a shared machine), and wall."""

    user: float
    system: float
    wall: float

    @property
    def cpu(self) -> float:
        return self.user + self.system

    @classmethod
    def now(cls) -> Cost:
        # getrusage counts in microseconds (os.times in clock ticks, 10 ms here: a short run's
        # floor would read as nothing).
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(usage.ru_utime, usage.ru_stime, time.perf_counter())

    def __sub__(self, other: Cost) -> Cost:
        return Cost(self.user - other.user, self.system - other.system, self.wall - other.wall)


@contextlib.contextmanager
def profiled(enabled: bool, top: int = 40) -> Iterator[None]:
    """A benchmark's `--profile`: a cProfile of the block, its top printed after it."""
    if not enabled:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(top)


@dataclass
class CpuWindow:
    """CPU time of some processes between `start()` and `stop()`, with the wall time."""

    pids: dict[str, int]
    _cpu: dict[str, float] = field(default_factory=dict)
    _wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0

    def start(self) -> CpuWindow:
        self._cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._wall = time.perf_counter()
        return self

    def stop(self) -> CpuWindow:
        self.wall = time.perf_counter() - self._wall
        self.cpu = {name: cpu_seconds(pid) - self._cpu[name] for name, pid in self.pids.items()}
        return self


# ------------------------------------------------------------------ printing


def progress(text: str) -> None:
    print(f"  … {text}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 100 values is the 99th smallest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def ratio(relance: float, bare: float) -> str:
    if not bare or math.isnan(relance) or math.isnan(bare):
        return "—"
    return f"{relance / bare:.2f}×"


def header(title: str, lines: Iterable[str] = ()) -> None:
    print(f"\n{title}")
    for line in lines:
        print(f"  {line}")
    print(f"  {'':34} {'relance':>12} {'bare':>12} {'ratio':>8}")


def row(
    name: str, relance: float, bare: float | None, unit: str = "", *, better: str = "high"
) -> None:
    """One figure. The ratio always reads "Relance against bare", so above 1× is better:
    relance/bare for rates (`better="high"`), bare/relance for costs and latencies."""
    label = name + (f" ({unit})" if unit else "")
    if bare is None:
        print(f"  {label:34} {relance:12.2f} {'—':>12} {'—':>8}")
        return
    shown = ratio(relance, bare) if better == "high" else ratio(bare, relance)
    print(f"  {label:34} {relance:12.2f} {bare:12.2f} {shown:>8}")


# ------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Bench:
    """One dev server and what runs on it; `async with bench_stack(...) as bench:`."""

    data: Path
    settings: Settings
    server: DevServer
    client: Client
    engine: Engine
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def server_pid(self) -> int:
        pid = self.server.pid
        assert pid is not None
        return pid

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a Relance process reads its settings from (RELANCE_*)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELANCE_")}
        s = self.settings
        env.update(
            RELANCE_DATA_DIR=str(s.data_dir),
            RELANCE_TEMPORAL_ADDRESS=s.temporal_target,
            RELANCE_TASK_QUEUE=s.task_queue,
            RELANCE_DAY_SECONDS=repr(s.day_seconds),
            RELANCE_WORKER_MAX_CONCURRENT_ACTIVITIES=str(s.worker_max_concurrent_activities),
            RELANCE_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS=str(
                s.worker_max_concurrent_workflow_tasks
            ),
            RELANCE_WORKER_MAX_CACHED_WORKFLOWS=str(s.worker_max_cached_workflows),
            PYTHONPATH=str(REPO),
        )
        env.update(extra)
        return env

    def spawn(self, args: list[str], name: str, **extra: str) -> subprocess.Popen[bytes]:
        log = (self.data / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, *args],
            # Not the repository: a developer's .env there must not change the benchmark.
            cwd=self.data,
            env=self.env(**extra),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    async def start_worker(self, kind: str) -> subprocess.Popen[bytes]:
        """Relance's worker (`kind="relance"`) or the bare one, once it polls its queue."""
        if kind == "relance":
            process = self.spawn(["-m", "worker"], "worker-relance")
            queue = self.settings.task_queue
        else:
            from bench.bare import TASK_QUEUE

            process = self.spawn(["-m", "bench.bare", "--task-queue", TASK_QUEUE], "worker-bare")
            queue = TASK_QUEUE
        await self._until_polled(process, queue, f"{kind} worker")
        return process

    async def start_api(self) -> tuple[subprocess.Popen[bytes], str]:
        """The API under uvicorn, once it answers; returns the process and its base URL."""
        port = free_port()
        process = self.spawn(
            [
                "-m",
                "uvicorn",
                "--factory",
                "api.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            "api",
        )
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as http:
            for _ in range(600):
                self._alive(process, "API")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{base}/healthz")).status_code == 200:
                        return process, base
                await asyncio.sleep(0.1)
        raise RuntimeError(f"the API did not answer; see {self.data / 'api.log'}")

    def api_key(self) -> str:
        return create_api_key(self.engine, Role.ADMIN, label="bench")

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process in self.processes:
            self.processes.remove(process)

    def _alive(self, process: subprocess.Popen[bytes], what: str) -> None:
        if process.poll() is not None:
            logs = sorted(self.data.glob("*.log"))
            tail = "\n".join(p.read_text(errors="replace")[-3000:] for p in logs)
            raise RuntimeError(f"the {what} exited with code {process.returncode}:\n{tail}")

    async def _until_polled(self, process: subprocess.Popen[bytes], queue: str, what: str) -> None:
        request = DescribeTaskQueueRequest(
            namespace=self.client.namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        for _ in range(1200):
            self._alive(process, what)
            described = await self.client.workflow_service.describe_task_queue(request)
            if described.pollers:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"the {what} never polled {queue!r}")


@contextlib.asynccontextmanager
async def bench_stack(day_seconds: float, **settings: Any) -> AsyncIterator[Bench]:
    """A dev server in a temporary data dir, a migrated store beside it, and a client."""
    with tempfile.TemporaryDirectory(prefix="relance-bench-") as tmp:
        data = Path(tmp)
        config = Settings(
            _env_file=None,
            data_dir=data,
            temporal_port=free_port(),
            day_seconds=day_seconds,
            **settings,
        )
        server = DevServer(config, ui=False)
        progress("starting the Temporal dev server (SQLite, WAL)")
        await asyncio.to_thread(server.start)
        config = config.model_copy(update={"temporal_address": server.target})
        engine = make_engine(config.resolved_database_url)
        upgrade(engine)
        client = await connect(config)
        bench = Bench(data, config, server, client, engine)
        try:
            yield bench
        finally:
            for process in list(bench.processes):
                bench.stop(process)
            engine.dispose()
            await asyncio.to_thread(server.stop)


async def until_idle(
    pid: int, what: str, *, busy_below: float = 0.03, calm: float = 2.0, limit: float = 600.0
) -> None:
    """Wait until the process uses less than `busy_below` of a core for `calm` seconds in a
    row: the work handed to it (workflows opening) is done. Gives up after `limit` seconds,
    saying so: a starved worker can retry timed-out tasks for a long time."""
    step = 0.5
    quiet = 0.0
    waited = 0.0
    while quiet < calm:
        if waited >= limit:
            progress(f"the {what} is still busy after {limit:.0f} s: measuring anyway")
            return
        before = cpu_seconds(pid)
        await asyncio.sleep(step)
        waited += step
        busy = (cpu_seconds(pid) - before) / step
        quiet = quiet + step if busy < busy_below else 0.0
        if waited % 10 == 0:
            progress(f"waiting for the {what} to settle ({waited:.0f} s)")


async def gather_limited(
    jobs: Sequence[Callable[[], Awaitable[_T]]],
    limit: int,
    *,
    label: str = "",
    every: float = 5.0,
) -> list[_T]:
    """Run `jobs` at most `limit` at a time, in order, reporting progress every few seconds."""
    results: list[Any] = [None] * len(jobs)
    next_job = 0
    done = 0
    last = time.monotonic()

    async def lane() -> None:
        nonlocal next_job, done, last
        while next_job < len(jobs):
            i = next_job
            next_job += 1
            results[i] = await jobs[i]()
            done += 1
            if label and time.monotonic() - last > every:
                last = time.monotonic()
                progress(f"{label}: {done}/{len(jobs)}")

    await asyncio.gather(*(lane() for _ in range(min(limit, len(jobs)))))
    return results


def timeout(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)
