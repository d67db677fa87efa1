"""`relance worker` against a configured Temporal: it polls, serves metrics, stops cleanly."""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from config import Settings
from domain.rates import legal_interest_rate
from worker import install_rates, run_worker


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


def test_the_worker_warns_when_the_current_half_year_is_provisional(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # 2026-H2 ships unconfirmed (no public record of either rate was found).
    settings = Settings(_env_file=None, data_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="relance.worker"):
        install_rates(settings, date(2026, 9, 1))
    assert "rates for the current half-year 2026-H2 are provisional" in caplog.text
    assert "RELANCE_RATES_FILE" in caplog.text

    caplog.clear()
    confirmed = tmp_path / "rates.csv"
    confirmed.write_text(
        "series,half_year,percent,confirmed,published,source\n"
        'ecb_mro,2026-H2,2.15,true,,"ECB"\n'
        'fr_legal_other,2026-H2,2.40,true,,"arrêté"\n',
        encoding="utf-8",
    )
    ops = Settings(_env_file=None, data_dir=tmp_path, rates_file=confirmed)
    try:
        with caplog.at_level(logging.WARNING, logger="relance.worker"):
            install_rates(ops, date(2026, 9, 1))
        assert "provisional" not in caplog.text
        # Installed: computations without an explicit table use the operator's rows.
        assert legal_interest_rate(date(2026, 9, 1)).percent == Decimal("2.40")
    finally:
        settings.install_rates()  # back to the shipped table for the tests that follow
