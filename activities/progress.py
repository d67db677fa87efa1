"""Store writes that record what the workflow did: timeline, read model, payments, approvals.

One activity, one transaction: the event row is keyed by (invoice, key) under a UNIQUE
constraint, so a retry that finds its event already written changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.engine import Engine
from temporalio import activity

from domain.collection.records import (
    ApprovalChange,
    DisputeChange,
    EventKind,
    EventRecord,
    PaymentChange,
    PlanChange,
    TaskChange,
)
from domain.lifecycle import InvoiceStatus
from store.engine import transaction
from store.tables import Invoice
from store.timeline import apply_status, write_events


class ProgressRecord(BaseModel):
    invoice_number: str
    key: str
    kind: EventKind
    at: datetime
    summary: str
    detail: dict[str, str] = {}
    status: InvoiceStatus
    payment: PaymentChange | None = None
    approval: ApprovalChange | None = None
    dispute: DisputeChange | None = None
    plan: PlanChange | None = None
    task: TaskChange | None = None
    # Set when an operator moved the invoice to another playbook.
    playbook: tuple[str, int] | None = None


class ProgressActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="record_progress")
    def record_progress(self, record: ProgressRecord) -> bool:
        """Returns False when a retry finds the record already written."""
        event = EventRecord.model_validate(record.model_dump(exclude={"invoice_number", "status"}))
        with transaction(self._engine) as session:
            if session.get(Invoice, record.invoice_number) is None:
                raise LookupError(f"invoice {record.invoice_number} is not in the store")
            apply_status(session, record.status)
            session.flush()
            written = write_events(session, record.invoice_number, [event], record.status.stage)
            return written == 1
