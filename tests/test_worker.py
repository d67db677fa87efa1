"""`relance worker` against a configured Temporal: it polls, serves metrics, stops cleanly."""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from config import Settings
from store.engine import make_engine
from worker import build_worker, run_worker


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


async def test_worker_capacity_comes_from_the_settings(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELANCE_WORKER_MAX_CACHED_WORKFLOWS", "250")
    monkeypatch.setenv("RELANCE_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS", "7")
    monkeypatch.setenv("RELANCE_WORKER_MAX_CONCURRENT_ACTIVITIES", "5")
    settings = Settings(_env_file=None, data_dir=tmp_path)
    engine = make_engine(settings.resolved_database_url)

    worker = build_worker(dev_env.client, settings, engine, task_queue=task_queue)
    async with worker:  # started and shut down: a worker never run keeps a connection open
        config = worker.config()

    assert config["max_cached_workflows"] == 250
    assert config["max_concurrent_workflow_tasks"] == 7
    assert config["max_concurrent_activities"] == 5
    # Sync activities each hold a thread while they run: the pool is as large as the limit.
    executor = config["activity_executor"]
    assert isinstance(executor, ThreadPoolExecutor) and executor._max_workers == 5
    engine.dispose()
