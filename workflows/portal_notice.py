"""One answer to a debtor's action on their page, sent durably: the API starts this workflow
(it never sends a message itself) and a worker sends the message, retrying until it is out."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.messaging import SendOutcome
    from activities.portal_notice import PortalNotice, PortalNoticeActivities, notice_step

ID_PREFIX = "portal-notice-"


def notice_workflow_id(notice: PortalNotice) -> str:
    """Ids carry invoice numbers and opaque references only, never personal data."""
    return f"{ID_PREFIX}{notice.invoice_number}:{notice_step(notice)}"


@workflow.defn
class PortalNoticeWorkflow:
    @workflow.run
    async def run(self, notice: PortalNotice) -> SendOutcome:
        return await workflow.execute_activity_method(
            PortalNoticeActivities.send_portal_notice,
            notice,
            start_to_close_timeout=timedelta(seconds=60),
            # "Within the minute": retry quickly, and for a day at most.
            schedule_to_close_timeout=timedelta(days=1),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
            ),
        )
