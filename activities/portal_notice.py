"""Answers to what a debtor did on their page: the acknowledgment of a dispute (with its
reference and the date it will be answered by) and the outcome of a plan they proposed.

Sent by `send_message`, so exactly once and in the invoice's history like any message; the
figures come from the store rows the invoice's workflow wrote, which a retry waits for.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.messaging import MessagingActivities, SendOutcome, SendRequest
from domain.money import Money
from domain.playbook import Channel, Tone
from store.tables import Dispute, Invoice, PaymentPlan

NoticeKind = Literal["dispute_acknowledgment", "plan_outcome"]


class PortalNotice(BaseModel):
    kind: NoticeKind
    invoice_number: str
    # The dispute's or the plan's id.
    reference: str
    # Plans: the outcome to announce (active, proposed, rejected); None reads the store.
    outcome: str | None = None
    at: datetime


def notice_step(notice: PortalNotice) -> str:
    """The message's step id, unique per answer: one acknowledgment per dispute, one message
    per plan outcome."""
    suffix = f"_{notice.outcome}" if notice.outcome else ""
    return f"portal_{notice.kind}_{notice.reference}{suffix}"[:64]


class PortalNoticeActivities:
    def __init__(self, messaging: MessagingActivities) -> None:
        self._messaging = messaging

    @activity.defn(name="send_portal_notice")
    def send_portal_notice(self, notice: PortalNotice) -> SendOutcome:
        with Session(self._messaging.engine) as session:
            invoice = session.get(Invoice, notice.invoice_number)
            if invoice is None:
                raise ApplicationError(
                    f"invoice {notice.invoice_number} is unknown",
                    type="MissingInvoice",
                    non_retryable=True,
                )
            request = SendRequest(
                invoice_number=invoice.number,
                step_id=notice_step(notice),
                channel=Channel.EMAIL,
                template=notice.kind,
                tone=Tone.COURTEOUS,
                planned_at=notice.at,
                as_of=notice.at.astimezone(UTC).date(),
                outstanding=Money.of(invoice.outstanding, invoice.currency),
                reference=notice.reference,
            )
            if notice.kind == "dispute_acknowledgment":
                dispute = session.get(Dispute, notice.reference)
                if dispute is None:
                    # The workflow records it as it accepts it: a retry finds it.
                    raise ApplicationError(f"dispute {notice.reference} not recorded yet")
                request.deadline = dispute.deadline.date()
            else:
                plan = session.get(PaymentPlan, notice.reference)
                if plan is None:
                    raise ApplicationError(f"plan {notice.reference} not recorded yet")
                request.outcome = notice.outcome or plan.status
        return self._messaging.send_message(request)
