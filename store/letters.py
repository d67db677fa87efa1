"""Letters sent by post: what was posted, how, and what the post said of it.

One row per letter, keyed like its interaction (`<invoice>:<step>:letter`). A registered letter
with acknowledgment of receipt (lettre recommandée avec AR) carries the post's tracking number;
the provider's webhook, its API or a person (who read the returned AR card) records the outcome:
delivered, received on a date (the AR), not claimed at the post office, or returned.

The provider's own ids are written as soon as it gives them, so a retried send resumes where the
last attempt stopped (see activities/letters/maileva.py) instead of posting a second letter.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import JSON, Column
from sqlmodel import Field, Session, SQLModel, select

from store.tables import utcnow


class LetterStatus(StrEnum):
    # Reserved, not handed to a provider yet (or a retry is under way).
    PENDING = "pending"
    # In the print queue, waiting for a person to print and post it.
    QUEUED = "queued"
    # Accepted by the provider, which prints and posts it.
    SUBMITTED = "submitted"
    POSTED = "posted"
    DELIVERED = "delivered"
    # The acknowledgment of receipt came back signed: `received_on` is the legal date.
    RECEIVED = "received"
    # "Pli avisé et non réclamé": the debtor never fetched it from the post office.
    NOT_CLAIMED = "not_claimed"
    # Refused, address unknown, undeliverable: it came back.
    RETURNED = "returned"
    FAILED = "failed"


# Outcomes that end a letter's story; a later, lesser status never replaces them.
FINAL = frozenset(
    {LetterStatus.RECEIVED, LetterStatus.NOT_CLAIMED, LetterStatus.RETURNED, LetterStatus.FAILED}
)
# The outcomes that mean the debtor did not get it: the playbook's fallback takes over.
UNDELIVERED = frozenset({LetterStatus.NOT_CLAIMED, LetterStatus.RETURNED})


class LetterBase(SQLModel):
    invoice_number: str = Field(foreign_key="invoice.number", index=True, max_length=64)
    step_id: str = Field(max_length=64)
    registered: bool = False
    provider: str = Field(max_length=32)


class Letter(LetterBase, table=True):
    # The interaction's idempotency key.
    key: str = Field(primary_key=True, max_length=200)
    status: str = Field(default=LetterStatus.PENDING, index=True, max_length=16)
    # The provider's ids (Maileva: sending id, recipient id); the print queue's file name.
    provider_ref: str | None = Field(default=None, max_length=128)
    provider_recipient_ref: str | None = Field(default=None, max_length=128)
    # The post's tracking number of a registered letter (numéro de recommandé).
    tracking_number: str | None = Field(default=None, index=True, max_length=32)
    pages: int | None = None
    # What the provider said last, in its words (Maileva's delivery status code and label).
    last_event: str | None = Field(default=None, max_length=200)
    posted_at: datetime | None = None
    delivered_at: datetime | None = None
    received_on: date | None = None
    outcome_at: datetime | None = None
    outcome_by: str | None = Field(default=None, max_length=128)
    # The addresses as printed, for the evidence file (a later address change does not alter it).
    addresses: dict[str, object] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class LetterPublic(LetterBase):
    key: str
    status: LetterStatus
    tracking_number: str | None
    pages: int | None
    last_event: str | None
    posted_at: datetime | None
    delivered_at: datetime | None
    received_on: date | None
    outcome_at: datetime | None
    outcome_by: str | None


def letter_by_tracking(session: Session, tracking_number: str) -> Letter | None:
    return session.exec(select(Letter).where(Letter.tracking_number == tracking_number)).first()


def letter_by_provider_ref(session: Session, provider: str, ref: str) -> Letter | None:
    return session.exec(
        select(Letter).where(Letter.provider == provider, Letter.provider_ref == ref)
    ).first()
