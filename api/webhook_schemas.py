"""What SendGrid's Event Webhook posts, and what we answer.

SendGrid posts a JSON array of events. Each names its kind (`event`), carries SendGrid's own
unique id (`sg_event_id`), a unix `timestamp`, the recipient (`email`), kind-specific fields
(`reason`, `response`, `type`, `status`...) and, at the top level, the custom args we set when
sending: `invoice` and `step` for a message about one invoice (`activities.messaging`), `debtor`
and `batch` for a debtor's consolidated message of the day (`activities.mailbox`). Opaque ids.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

# The longest a stored id may be: `inbound_event.id`, `invoice.number`, `interaction.step_id`.
MAX_EVENT_ID = 128
MAX_NUMBER = 64
MAX_BATCH_KEY = 200


class SendGridEvent(BaseModel):
    """One event, as much of it as we use. Fields we do not know are ignored, not refused:
    SendGrid adds fields over time and a batch must not fail because of one."""

    # Custom args come back as given, but someone may have set a numeric one: take it as text.
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    sg_event_id: str = Field(min_length=1, max_length=MAX_EVENT_ID)
    event: str = Field(min_length=1, max_length=64)
    # Seconds since the epoch; bounded so that converting it cannot overflow.
    timestamp: int = Field(ge=0, le=253_402_300_799)
    email: str | None = None
    invoice: str | None = None
    step: str | None = None
    # A consolidated message: the batch key its invoices' interactions carry.
    debtor: str | None = None
    batch: str | None = None
    # bounce and dropped: why; deferred: the receiving server's answer.
    reason: str | None = None
    response: str | None = None
    # bounce: "bounce" (hard) or "blocked" (the receiving server refused it, for now).
    type: str | None = None
    # The SMTP enhanced status code of a bounce, e.g. "5.1.1".
    status: str | None = None

    @property
    def occurred_at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp, UTC)


class WebhookReceipt(BaseModel):
    """How many events the request held, and how many of them had not been seen before."""

    received: int
    new: int
