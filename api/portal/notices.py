"""Starting the workflow that answers a debtor's action (the API never sends a message)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.portal_notice import NoticeKind, PortalNotice
from config import Settings
from workflows.portal_notice import PortalNoticeWorkflow, notice_workflow_id

log = logging.getLogger("relance.portal")


async def send_notice(
    client: Client,
    settings: Settings,
    kind: NoticeKind,
    invoice_number: str,
    reference: str,
    outcome: str | None = None,
) -> None:
    notice = PortalNotice(
        kind=kind,
        invoice_number=invoice_number,
        reference=reference,
        outcome=outcome,
        at=datetime.now(UTC),
    )
    try:
        await client.start_workflow(
            PortalNoticeWorkflow.run,
            notice,
            id=notice_workflow_id(notice),
            task_queue=settings.task_queue,
            # The same answer twice is one message, even after the first one finished.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        log.info("notice %s for %s already under way", kind, reference)
