"""What the back office is told: the event a webhook POSTs, shared by the workflow that decides
it, the store's outbox that keeps it and the sender that signs and posts it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.money import Money


class BackofficeEventKind(StrEnum):
    STAGE_CHANGED = "stage_changed"
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_RESOLVED = "dispute_resolved"
    PLAN_PROPOSED = "plan_proposed"
    PLAN_ACTIVATED = "plan_activated"
    PLAN_REJECTED = "plan_rejected"
    PLAN_BROKEN = "plan_broken"
    PLAN_COMPLETED = "plan_completed"
    PROMISE_RECORDED = "promise_recorded"
    PROMISE_BROKEN = "promise_broken"
    PAUSED = "paused"
    RESUMED = "resumed"
    EMAIL_UNDELIVERABLE = "email_undeliverable"
    HANDED_OFF = "handed_off"
    # Paid after its due date: sent once the late-payment costs are known, with them in data.
    PAID = "paid"
    CANCELLED = "cancelled"
    WRITTEN_OFF = "written_off"
    # Paid after its due date: the interest and the 40 € it still owes (data: the amounts).
    LATE_PAYMENT_COSTS = "late_payment_costs"
    # A text, letter or call did not reach the debtor: the playbook's fallback took over.
    CONTACT_UNDELIVERABLE = "contact_undeliverable"
    # Rules 2, a handed-off invoice: the legal partner's file was updated (data: `status`,
    # `partner_reference`, `costs`, `currency`), and the partner settled or abandoned it, which
    # ends the collection (same data).
    LEGAL_UPDATED = "legal_updated"
    LEGAL_SETTLED = "legal_settled"
    LEGAL_ABANDONED = "legal_abandoned"


def backoffice_event_id(invoice_number: str, kind: BackofficeEventKind, key: str | int) -> str:
    """The stable id `<invoice>:<kind>:<revision or key>` receivers dedupe on.

    Pure and deterministic, so a workflow may call it: the same fact always gets the same id,
    in a retry, a replay or after continue-as-new.
    """
    return f"{invoice_number}:{kind.value}:{key}"


class BackofficeEvent(BaseModel):
    """What the back office receives, as the JSON body (amounts are decimal strings)."""

    event_id: str = Field(min_length=1, max_length=200)
    kind: BackofficeEventKind
    invoice_number: str
    # The back office's own opaque id: no personal data goes out in notifications.
    debtor_id: str
    stage: str
    outstanding: Money
    occurred_at: datetime
    # Kind-specific details (dispute id, plan id, who decided...), flat strings for any ERP.
    data: dict[str, str] = Field(default_factory=dict)
