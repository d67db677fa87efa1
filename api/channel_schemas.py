"""What the channel endpoints take and give back: letters' outcomes, call tasks' details."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from store.letters import LetterPublic


class LetterOutcome(StrEnum):
    POSTED = "posted"
    DELIVERED = "delivered"
    RECEIVED = "received"
    NOT_CLAIMED = "not_claimed"
    RETURNED = "returned"


class LetterEventCreate(BaseModel):
    """What the post said of a letter, entered by a person (the returned AR card, the notice of
    a letter not claimed) or for a letter in the print queue once posted."""

    model_config = ConfigDict(extra="forbid")

    outcome: LetterOutcome
    on: date = Field(description="the day it happened (for `received`: the date on the AR card)")
    tracking_number: str | None = Field(
        default=None, min_length=6, max_length=32, description="the registered letter's number"
    )
    note: str = Field(default="", max_length=2000)


class LetterRecorded(BaseModel):
    letter: LetterPublic
    deadline: date | None = Field(
        default=None,
        description="the formal notice's deadline when it runs from receipt: known once received",
    )
    fallback: bool = Field(description="the playbook's fallback was asked for (not delivered)")


class PreviousContactPublic(BaseModel):
    day: date
    channel: str
    template: str
    outcome: str | None = None


class CallTaskPublic(BaseModel):
    """A call task with what the collector needs: the number, the script, the history."""

    id: str
    invoice_number: str
    status: str
    title: str
    due_at: datetime
    assignee: str | None
    attempt: int
    phone: str | None = Field(description="the debtor's number, international format")
    script: str | None = Field(description="what to say, in the debtor's language")
    previous_contacts: list[PreviousContactPublic]
    outcome: str | None = None
    notes: str | None = None


class AssignmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: str | None = Field(
        min_length=1, max_length=128, description="the collector who places the call; null frees it"
    )

    @model_validator(mode="before")
    @classmethod
    def _present(cls, value: object) -> object:
        if isinstance(value, dict) and "assignee" not in value:
            raise ValueError("give `assignee` (a collector's name, or null to free the task)")
        return value
