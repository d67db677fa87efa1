"""Changing workflow code must not break invoices already running.

Saved histories of real runs are replayed against the current code; a non-deterministic
change fails here, before it strands a running invoice. To add one, run the lifecycle tests
with RELANCE_RECORD_HISTORIES=1 and commit the new file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.invoice import InvoiceWorkflow

HISTORIES = Path(__file__).parent / "histories"


def saved_histories() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def test_there_are_saved_histories_to_replay() -> None:
    assert saved_histories(), f"no saved workflow history in {HISTORIES}"


@pytest.mark.parametrize("path", saved_histories(), ids=lambda p: p.stem)
async def test_saved_history_replays_on_current_code(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    replayer = Replayer(workflows=[InvoiceWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
