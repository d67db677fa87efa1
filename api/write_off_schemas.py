"""What the write-off endpoints take in and give back (four-eyes above a threshold)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from api.collection_schemas import InvoiceState
from api.schemas import MoneyPublic


class WriteOffCreate(BaseModel):
    """The debt is uncollectible: collection ends, the outstanding amount stays on record.

    Above RELANCE_WRITE_OFF_APPROVAL_ABOVE a second finance person must confirm it: the
    request then waits (202) and the collection goes on until they do."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class WriteOffDecisionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: StrictBool
    comment: Annotated[str, Field(max_length=2000)] = ""


class WriteOffRequestPublic(BaseModel):
    id: str
    invoice_number: str
    status: str = Field(description="pending, approving, approved or rejected")
    reason: str
    outstanding: MoneyPublic = Field(description="what was outstanding when it was asked")
    requested_by: str
    requested_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str | None = None


class WriteOffOutcome(BaseModel):
    """Written off (`request` is None below the threshold), or waiting for a second person."""

    by: str = Field(description="the API key's label: who acted")
    needs_approval: bool
    request: WriteOffRequestPublic | None = None
    # False when the invoice is not (yet) written off: waiting for approval, rejected, or
    # accepted by the workflow and still being recorded.
    applied: bool
    status: InvoiceState
