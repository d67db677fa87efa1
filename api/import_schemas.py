"""What onboarding a portfolio (`POST /v1/invoices:batch`, `relance import`) and previews
take in and give back."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from domain.playbook import Channel, Recipient, Tone

# One call stays well inside an HTTP timeout (each line is a store write and a workflow start);
# a bigger portfolio is several calls, or `relance import`, which has no limit.
MAX_BATCH = 1000

# Items are validated one by one, so one bad item rejects its line, not the whole batch: the
# model takes any JSON value. The schema says so (any value is accepted, and reported on) while
# naming what an item should be, an InvoiceCreate (whose schema the single hand-over route,
# POST /v1/invoices, puts in the OpenAPI components).
BatchItem = Annotated[
    Any,
    WithJsonSchema(
        {
            "anyOf": [{"$ref": "#/components/schemas/InvoiceCreate"}, {}],
            "description": "an InvoiceCreate; any other value is rejected on its own line",
        }
    ),
]


class InvoiceBatch(BaseModel):
    """Many invoices handed over at once, each exactly as `POST /v1/invoices` takes it."""

    model_config = ConfigDict(extra="forbid")

    invoices: list[BatchItem] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description=f"at most {MAX_BATCH} per call; each line is handled on its own",
    )


class LineResult(StrEnum):
    CREATED = "created"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"


class FieldError(BaseModel):
    field: str = Field(
        description="the request's name for it (debtor.email), or the CSV column (debtor_email)",
        examples=["currency"],
    )
    message: str


class LineReport(BaseModel):
    line: int = Field(
        description="the item's position in `invoices`, from 1; in a CSV file, its line number "
        "(the header is line 1)"
    )
    number: str | None = Field(description="the invoice number, when the line has one")
    result: LineResult
    reason: str | None = Field(
        default=None, description="why the line was rejected, in one sentence"
    )
    errors: list[FieldError] = Field(
        default=[], description="each invalid field of a rejected line, when it has some"
    )
    warnings: list[str] = Field(
        default=[], description="what the hand-over says the back office should know"
    )


class BatchReport(BaseModel):
    """Per line: created (recorded and its collection started), unchanged (already handed over
    with the same data: its collection is started if an earlier attempt could not), or rejected
    (invalid, or the same number with different data). Lines are independent."""

    dry_run: bool = Field(
        default=False, description="nothing was recorded: results say what would happen"
    )
    created: int = 0
    unchanged: int = 0
    rejected: int = 0
    lines: list[LineReport] = []

    def add(self, reports: list[LineReport]) -> None:
        for report in reports:
            match report.result:
                case LineResult.CREATED:
                    self.created += 1
                case LineResult.UNCHANGED:
                    self.unchanged += 1
                case LineResult.REJECTED:
                    self.rejected += 1
        self.lines = sorted([*self.lines, *reports], key=lambda r: r.line)


# ------------------------------------------------------------------ previews


class MessagePreview(BaseModel):
    """A message exactly as it would go out, rendered without sending or recording anything."""

    invoice_number: str
    step: str
    template: str
    tone: Tone
    as_of: date = Field(description="the day the message speaks of (interest, days late)")
    language: str
    to_role: Recipient
    channel: Channel = Field(description="email, or letter (posted from the print queue)")
    subject: str
    text: str
    html: str
    warnings: list[str] = []
