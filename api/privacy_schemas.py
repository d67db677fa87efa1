"""What the personal-data endpoints take in and give back (GDPR art. 15 and 18)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import MoneyPublic


class RestrictionCreate(BaseModel):
    """Processing of the debtor's contact data is restricted: it is kept, never erased, until
    the restriction is lifted (e.g. while a legal claim runs)."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=2000)]
    legal_claim: bool = Field(default=True, description="a legal claim is the reason")


class RestrictionPublic(BaseModel):
    debtor_id: str
    reason: str
    legal_claim: bool
    set_by: str
    set_at: datetime


class ContactData(BaseModel):
    id: str
    name: str
    email: str
    country: str
    language: str
    timezone: str | None = None
    subdivision: str | None = None
    segment: str | None = None
    email_invalid_at: datetime | None = None
    erased_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class InvoiceHeld(BaseModel):
    number: str
    amount: MoneyPublic
    due_date: date
    stage: str


class MessageHeld(BaseModel):
    invoice_number: str
    step_id: str
    channel: str
    recipient: str = Field(description="who it was for (debtor, mediator...)")
    subject: str | None = None
    status: str
    sent_at: datetime | None = None
    delivery_status: str | None = None


class NoteHeld(BaseModel):
    """A record people wrote about the debtor: call notes, dispute reasons, history entries."""

    kind: str
    invoice_number: str
    at: datetime
    text: str
    detail: dict[str, Any] = Field(default_factory=dict)


class AuditEntry(BaseModel):
    action: str
    by: str
    at: datetime
    detail: dict[str, Any] = Field(default_factory=dict)


class PersonalDataExport(BaseModel):
    """Everything the store holds about the debtor's contact, as of `exported_at`."""

    exported_at: datetime
    contact: ContactData
    restriction: RestrictionPublic | None = None
    opt_out_reason: str | None = None
    invoices: list[InvoiceHeld]
    messages: list[MessageHeld]
    notes: list[NoteHeld]
    audit: list[AuditEntry] = Field(description="what was done with this data, by whom")
