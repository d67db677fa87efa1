"""The Temporal client side of the invoice workflow: connect, start, address one invoice."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, time
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.runtime import Runtime

from config import Settings
from contracts.invoice import InvoiceWorkflowInput
from domain.collection.state import RULES_LATEST
from domain.holds import HoldRequest
from domain.lifecycle import InvoiceFacts, InvoiceStatus, Stage
from domain.playbook import Playbook
from workflows import contract
from workflows.invoice import InvoiceWorkflow


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    return await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )


def initial_search_attributes(invoice: InvoiceFacts) -> TypedSearchAttributes:
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(contract.STAGE, Stage.UPCOMING.value),
        SearchAttributePair(contract.OUTSTANDING, float(invoice.amount.amount)),
        SearchAttributePair(
            contract.DUE_DATE, datetime.combine(invoice.due_date, time(0), tzinfo=UTC)
        ),
        SearchAttributePair(contract.DEBTOR_ID, invoice.debtor_id),
    ]
    if invoice.segment:
        pairs.append(SearchAttributePair(contract.SEGMENT, invoice.segment))
    return TypedSearchAttributes(pairs)


async def start_invoice(
    client: Client,
    invoice: InvoiceFacts,
    playbook: Playbook,
    *,
    task_queue: str,
    day_seconds: float,
    search_attributes: bool = True,
    hold: HoldRequest | None = None,
    history_limit: int = 0,
    notify_backoffice: bool = True,
) -> None:
    """Start the invoice's workflow unless one exists or has existed.

    The same invoice handed over twice never gets a second process: a running workflow is
    reused, and a finished one is never started again.
    """
    # A finished workflow is not started again: a paid invoice handed over again stays paid.
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            InvoiceWorkflow.run,
            InvoiceWorkflowInput(
                invoice=invoice,
                playbook=playbook,
                day_seconds=day_seconds,
                hold=hold,
                history_limit=history_limit,
                notify_backoffice=notify_backoffice,
                rules=RULES_LATEST,
            ),
            id=contract.workflow_id(invoice.number),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=initial_search_attributes(invoice) if search_attributes else None,
        )


def invoice_handle(client: Client, number: str) -> WorkflowHandle[InvoiceWorkflow, InvoiceStatus]:
    return client.get_workflow_handle_for(InvoiceWorkflow.run, contract.workflow_id(number))
