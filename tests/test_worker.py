"""`relance worker` against a configured Temporal: it polls, serves metrics, stops cleanly."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from config import Settings
from tests.sandbox_probe import ReadsTheWallClock
from worker import WorkerFailed, run_worker, sandbox_runner


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_the_worker_serves_prometheus_metrics_and_stops_on_request(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str
) -> None:
    address = f"127.0.0.1:{free_port()}"
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        task_queue=task_queue,
        temporal_address=dev_env.client.service_client.config.target_host,
        metrics_bind_address=address,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(run_worker(settings, stop))
    try:
        text = ""
        async with httpx.AsyncClient() as http:
            for _ in range(100):
                try:
                    text = (await http.get(f"http://{address}/metrics")).text
                except httpx.TransportError:
                    text = ""
                if "temporal_" in text:
                    break
                await asyncio.sleep(0.1)
        assert "temporal_" in text, "no SDK metrics served"
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=30)
    assert (tmp_path / "relance.db").exists()  # it migrated its store before polling


async def test_a_worker_that_cannot_reach_temporal_says_so_and_fails(
    tmp_path: Path, task_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens there: as when the worker starts while Temporal restarts.
    target = f"127.0.0.1:{free_port()}"
    settings = Settings(
        _env_file=None, data_dir=tmp_path, task_queue=task_queue, temporal_address=target
    )

    with pytest.raises(WorkerFailed) as failed:
        await run_worker(settings, asyncio.Event())

    # One line for the operator; the process exits non-zero and its supervisor restarts it.
    assert f"cannot reach Temporal at {target}" in str(failed.value)
    assert "supervisor restarts it" in str(failed.value)
    assert [r.getMessage() for r in caplog.records if r.levelname == "CRITICAL"] == [
        str(failed.value)
    ]


async def _first_task_failure(client: Client, task_queue: str, passthrough_all: bool) -> str:
    settings = Settings(_env_file=None, worker_sandbox_passthrough_all=passthrough_all)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ReadsTheWallClock],
        workflow_runner=sandbox_runner(settings),
    ):
        handle = await client.start_workflow(
            ReadsTheWallClock.run, id=f"wall-clock-{task_queue}", task_queue=task_queue
        )
        for _ in range(100):
            if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                return ""
            async for event in handle.fetch_history_events():
                if event.HasField("workflow_task_failed_event_attributes"):
                    await handle.terminate()
                    return event.workflow_task_failed_event_attributes.failure.message
            await asyncio.sleep(0.1)
        await handle.terminate()
        return "no outcome"


async def test_the_strict_sandbox_refuses_a_wall_clock_read_in_workflow_code(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    # The workflow tests run the strict sandbox (tests/workflows/harness.py): a
    # non-deterministic call on any tested path of the invoice's workflow fails there.
    failure = await _first_task_failure(dev_env.client, task_queue, passthrough_all=False)
    assert "datetime.datetime.now" in failure, failure


async def test_the_lean_sandbox_does_not_check_workflow_code_which_is_why_tests_run_strict(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    # Production loads workflow modules once (README "Performance"); the price is this check,
    # which the strict tests keep. Should the SDK start checking here too, this test says so.
    failure = await _first_task_failure(dev_env.client, task_queue, passthrough_all=True)
    assert failure == ""
