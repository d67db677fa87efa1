"""Changing workflow code must not break invoices already running.

Every saved history of a real run (invoices and debtor mailboxes, from every release) is
replayed against the current code; a non-deterministic change fails here, before it strands a
running invoice. A behaviour change goes behind `workflow.patched`. To add histories of a new
release: `python -m tests.workflows.record_histories RELEASE` (see README.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.workflows.record_histories import HISTORIES
from workflows.invoice import InvoiceWorkflow
from workflows.mailbox import DebtorMailboxWorkflow


def saved_histories() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def workflow_type(history: WorkflowHistory) -> str:
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


def test_there_are_saved_histories_of_both_workflows() -> None:
    types = {
        workflow_type(WorkflowHistory.from_json(p.stem, json.loads(p.read_text())))
        for p in saved_histories()
    }
    assert types == {"InvoiceWorkflow", "DebtorMailboxWorkflow"}, types


@pytest.mark.parametrize("path", saved_histories(), ids=lambda p: p.stem)
async def test_saved_history_replays_on_current_code(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    replayer = Replayer(
        workflows=[InvoiceWorkflow, DebtorMailboxWorkflow],
        data_converter=pydantic_data_converter,
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
