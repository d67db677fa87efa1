"""The bare-Temporal yardstick: a workflow that only waits, runs no-op activities and answers.

Every benchmark compares Relance with this workflow on the same dev server in the same run, so
the ratio says how much Relance adds to Temporal's own cost. Its worker runs in a process of its
own (`python -m bench.bare`), configured like Relance's (same converter, same concurrency, a
thread pool for sync activities), so the two workers' CPU and memory compare directly.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import activity, workflow

# The sandbox runs this module again for every workflow instance: what only the worker needs
# comes from outside it, so the yardstick stays bare (re-importing the settings' pydantic
# models per instance would cost more than the workflow itself).
with workflow.unsafe.imports_passed_through():
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Worker

    from config import Settings

TASK_QUEUE = "bench-bare"


@dataclass
class BareInput:
    activities: int
    # Timers, one before each of the first `timers` activities (a lifecycle waits between steps).
    timers: int = 0
    timer_seconds: float = 0.0
    # Then wait for the `pay` Update before ending (an open invoice waiting for its payment).
    wait_for_update: bool = False


@activity.defn(name="bench_noop")
def noop(planned: datetime | None) -> float:
    """Nothing; returns how long after `planned` it started (seconds)."""
    if planned is None:
        return 0.0
    return time.time() - planned.timestamp()


@workflow.defn(name="BenchBare")
class BareWorkflow:
    def __init__(self) -> None:
        self._paid = False

    @workflow.run
    async def run(self, input: BareInput) -> list[float]:
        lags: list[float] = []
        for i in range(input.activities):
            planned = None
            if i < input.timers:
                await workflow.sleep(input.timer_seconds)
                # As Relance stamps a message: the time of the task that decided to send it.
                planned = workflow.now()
            lag = await workflow.execute_activity(
                noop, planned, start_to_close_timeout=timedelta(seconds=30)
            )
            if planned is not None:
                lags.append(lag)
        if input.wait_for_update:
            await workflow.wait_condition(lambda: self._paid)
        return lags

    @workflow.update
    async def pay(self) -> str:
        self._paid = True
        return "paid"


def build_bare_worker(client: Client, settings: Settings, task_queue: str = TASK_QUEUE) -> Worker:
    threads = settings.worker_max_concurrent_activities
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[BareWorkflow],
        activities=[noop],
        activity_executor=ThreadPoolExecutor(max_workers=threads),
        max_concurrent_activities=threads,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_cached_workflows=settings.worker_max_cached_workflows,
    )


async def _serve(task_queue: str) -> None:
    settings = Settings()
    client = await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with build_bare_worker(client, settings, task_queue):
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="a worker for the bare benchmark workflow")
    parser.add_argument("--task-queue", default=TASK_QUEUE)
    asyncio.run(_serve(parser.parse_args().task_queue))
