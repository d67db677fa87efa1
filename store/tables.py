"""SQL tables: the durable record and read model behind the API.

Workflows never import this module (SQLAlchemy does not belong in the sandbox): activities write
here and the API reads. Every write an activity makes is keyed by a stable id under a UNIQUE
constraint, so a retried activity finds its own earlier write instead of repeating it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import JSON, Column, Numeric, UniqueConstraint
from sqlmodel import Field, SQLModel

from domain.lifecycle import ApprovalStatus

AMOUNT = Numeric(18, 4)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Debtor(SQLModel, table=True):
    # The back office's own id: opaque, no personal data.
    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    email: str = Field(max_length=320)
    country: str = Field(max_length=2)
    language: str = Field(max_length=8)
    segment: str | None = Field(default=None, max_length=32)
    # For business days and the send window; None: the country's usual zone.
    timezone: str | None = Field(default=None, max_length=64)
    subdivision: str | None = Field(default=None, max_length=16)
    # Size bands derive the segment when the back office gives none.
    annual_revenue: Decimal | None = Field(default=None, sa_type=AMOUNT)
    headcount: int | None = None
    # Set by a bounce or drop: messages to this address use the playbook's fallback.
    email_invalid_at: datetime | None = None
    # Set when the retention ended and the contact data was pseudonymised (GDPR erasure).
    erased_at: datetime | None = None
    # E.164 (domain/phone.py). A STOP reply or a hard SMS failure sets the date: no more texts.
    phone: str | None = Field(default=None, max_length=20)
    sms_stopped_at: datetime | None = None
    # A collector found it was not the debtor's number.
    phone_invalid_at: datetime | None = None
    # domain.postal.PostalAddress as JSON, validated on the way in.
    postal_address: dict[str, object] | None = Field(default=None, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class DebtorOverride(SQLModel, table=True):
    """A finance decision about one debtor: a specific playbook, or no collection until a date."""

    __tablename__ = "debtor_override"

    debtor_id: str = Field(primary_key=True, foreign_key="debtor.id", max_length=64)
    playbook: str | None = Field(default=None, max_length=64)
    opt_out_reason: str | None = None
    opt_out_until: date | None = None
    set_by: str = Field(max_length=128)
    set_at: datetime = Field(default_factory=utcnow)


class Invoice(SQLModel, table=True):
    number: str = Field(primary_key=True, max_length=64)
    debtor_id: str = Field(foreign_key="debtor.id", index=True, max_length=64)
    amount: Decimal = Field(sa_type=AMOUNT)
    currency: str = Field(max_length=3)
    issue_date: date
    due_date: date = Field(index=True)
    # Fingerprint of what the back office handed over, to tell a replay from a conflict.
    fingerprint: str = Field(max_length=64)
    playbook: str = Field(max_length=64)
    playbook_version: int
    # The invoice's own contractual late-payment rate ("3x_legal", "12.50"); None: the
    # creditor's terms of sale (settings), else the legal default.
    interest_clause: str | None = Field(default=None, max_length=40)
    # Read model, kept current by the workflow's activities.
    stage: str = Field(default="upcoming", index=True, max_length=32)
    outstanding: Decimal = Field(sa_type=AMOUNT)
    overpayment: Decimal | None = Field(default=None, sa_type=AMOUNT)
    next_step: str | None = Field(default=None, max_length=64)
    next_step_at: datetime | None = None
    # The key the next step's email to the debtor goes out under: a debtor's message of the day
    # lists this invoice when its step falls due with another's.
    next_message_key: str | None = Field(default=None, max_length=200)
    # The workflow numbers its records; an older snapshot never overwrites a newer one.
    revision: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # The last day an action for payment can be brought (L110-4, restarted by the latest
    # acknowledgment); None once nothing is owed.
    limitation_date: date | None = None
    # domain.law.LatePaymentCosts as JSON, once an invoice paid late has them computed.
    late_payment_costs: dict[str, object] | None = Field(default=None, sa_column=Column(JSON))


class Payment(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("invoice_number", "reference"),)

    id: int | None = Field(default=None, primary_key=True)
    invoice_number: str = Field(foreign_key="invoice.number", index=True, max_length=64)
    reference: str = Field(max_length=128)
    amount: Decimal = Field(sa_type=AMOUNT)
    currency: str = Field(max_length=3)
    outstanding_after: Decimal = Field(sa_type=AMOUNT)
    overpayment: Decimal | None = Field(default=None, sa_type=AMOUNT)
    received_on: date | None = None
    recorded_at: datetime


class InteractionStatus(StrEnum):
    PENDING = "pending"
    # Reserved and handed to the provider: a crash now leaves the outcome unknown.
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    # A crash after the provider may have taken it: a person decides (never resent blindly).
    UNKNOWN = "unknown"
    # The invoice no longer wanted it when it was about to go out (paid, held, closed).
    CANCELLED = "cancelled"


class Interaction(SQLModel, table=True):
    """One message to one recipient on one channel: the evidence file of the collection."""

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True, max_length=200)
    invoice_number: str = Field(foreign_key="invoice.number", index=True, max_length=64)
    step_id: str = Field(max_length=64)
    channel: str = Field(max_length=16)
    # The debtor's one message of the day that carried it (`debtor:<id>:<channel>:<day>`):
    # shared by every invoice a consolidated message lists. None: sent on its own, directly.
    batch_key: str | None = Field(default=None, index=True, max_length=200)
    recipient: str = Field(max_length=32)
    template: str = Field(max_length=64)
    subject: str | None = Field(default=None, max_length=300)
    status: str = Field(default=InteractionStatus.PENDING, max_length=16)
    provider: str | None = Field(default=None, max_length=32)
    provider_message_id: str | None = Field(default=None, max_length=128)
    error: str | None = None
    attempts: int = 0
    planned_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    # The provider's later word on it (SendGrid Event Webhook): delivered, open, bounce...
    delivery_status: str | None = Field(default=None, max_length=16)
    delivery_at: datetime | None = None
    delivery_reason: str | None = None


class Approval(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=160)
    invoice_number: str = Field(foreign_key="invoice.number", index=True, max_length=64)
    step_id: str = Field(max_length=64)
    target_stage: str = Field(max_length=32)
    status: str = Field(default=ApprovalStatus.PENDING, index=True, max_length=16)
    requested_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = Field(default=None, max_length=128)
    comment: str | None = None
    reminders_sent: int = 0


class Event(SQLModel, table=True):
    """The invoice's timeline, as the workflow lived it (times are workflow times)."""

    __table_args__ = (UniqueConstraint("invoice_number", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    invoice_number: str = Field(foreign_key="invoice.number", index=True, max_length=64)
    key: str = Field(max_length=160)
    kind: str = Field(max_length=48)
    at: datetime
    stage: str = Field(max_length=32)
    summary: str
    detail: dict[str, object] = Field(default_factory=dict, sa_column=Column(JSON))


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    # The first characters, shown in listings; the secret itself is only kept hashed.
    prefix: str = Field(index=True, max_length=16)
    key_hash: str = Field(unique=True, max_length=128)
    role: str = Field(max_length=16)
    label: str | None = Field(default=None, max_length=120)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class Dispute(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=64)
    invoice_number: str = Field(foreign_key="invoice.number", index=True, max_length=64)
    reason: str
    amount: Decimal | None = Field(default=None, sa_type=AMOUNT)
    currency: str | None = Field(default=None, max_length=3)
    status: str = Field(default="open", index=True, max_length=16)
    opened_by: str = Field(max_length=128)
    opened_at: datetime
    deadline: datetime
    resolved_by: str | None = Field(default=None, max_length=128)
    resolved_at: datetime | None = None
    resolution: str | None = None
    credit: Decimal | None = Field(default=None, sa_type=AMOUNT)


class PaymentPlan(SQLModel, table=True):
    __tablename__ = "payment_plan"

    id: str = Field(primary_key=True, max_length=64)
    invoice_number: str = Field(foreign_key="invoice.number", index=True, max_length=64)
    # proposed, active, rejected, broken, completed
    status: str = Field(default="proposed", index=True, max_length=16)
    installments: list[dict[str, object]] = Field(default_factory=list, sa_column=Column(JSON))
    proposed_by: str = Field(max_length=128)
    proposed_at: datetime
    needs_approval: bool = False
    decided_by: str | None = Field(default=None, max_length=128)
    decided_at: datetime | None = None
    comment: str | None = None


class Task(SQLModel, table=True):
    """Work for a collector: a phone call, a dispute to resolve, a plan to approve."""

    id: str = Field(primary_key=True, max_length=160)
    invoice_number: str = Field(foreign_key="invoice.number", index=True, max_length=64)
    kind: str = Field(max_length=24)
    status: str = Field(default="open", index=True, max_length=16)
    title: str
    due_at: datetime
    created_at: datetime
    outcome: str | None = Field(default=None, max_length=32)
    notes: str | None = None
    promise_date: date | None = None
    closed_by: str | None = Field(default=None, max_length=128)
    closed_at: datetime | None = None
    # Calls: who places it (a collector's name), what to say, and which call of its step it is.
    assignee: str | None = Field(default=None, max_length=128, index=True)
    script: str | None = None
    attempt: int = 1


class InboundEvent(SQLModel, table=True):
    """Provider events already received (SendGrid's `sg_event_id`): a replay changes nothing."""

    __tablename__ = "inbound_event"

    id: str = Field(primary_key=True, max_length=128)
    source: str = Field(max_length=16)
    kind: str = Field(max_length=24)
    received_at: datetime = Field(default_factory=utcnow)
    invoice_number: str | None = Field(default=None, max_length=64)


class MessageDay(SQLModel, table=True):
    """A debtor's one message of the day on a channel: claimed under a UNIQUE key before it
    goes out, so two invoices of one debtor never both send on the same day."""

    __tablename__ = "message_day"

    key: str = Field(primary_key=True, max_length=200)
    debtor_id: str = Field(index=True, max_length=64)
    # The message key of the invoice whose send claimed the day.
    owner: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class SentMessage(SQLModel, table=True):
    """A message exactly as it went out, for the legal file: one row per invoice it spoke of.

    Keyed by the interaction's idempotency key, so a retried send records it once. The content
    hash (SHA-256 of subject, text and HTML) lets a lawyer show the copy was not altered.
    """

    __tablename__ = "sent_message"

    id: int | None = Field(default=None, primary_key=True)
    interaction_key: str = Field(unique=True, max_length=200)
    invoice_number: str = Field(foreign_key="invoice.number", index=True, max_length=64)
    channel: str = Field(max_length=16)
    recipient: str = Field(max_length=32)
    to_email: str = Field(max_length=320)
    to_name: str | None = Field(default=None, max_length=200)
    subject: str
    text: str
    html: str
    provider: str | None = Field(default=None, max_length=32)
    provider_message_id: str | None = Field(default=None, max_length=128)
    sent_at: datetime
    content_hash: str = Field(max_length=64)


class IdempotencyRecord(SQLModel, table=True):
    """A request made with an `Idempotency-Key`, and the first answer it got.

    Claimed (no status yet) when the request starts, completed with its answer before the
    answer leaves; UNIQUE per principal and key, so two concurrent requests cannot both claim.
    """

    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("principal", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    principal: str = Field(max_length=128)
    key: str = Field(max_length=255)
    # "POST /v1/invoices/F-1/disputes": the same key on another route is another request.
    operation: str = Field(max_length=300)
    # SHA-256 of the request body (canonical JSON when it is JSON).
    fingerprint: str = Field(max_length=64)
    # Who holds the claim while the request runs; a claim older than the lock is taken over.
    token: str = Field(max_length=32)
    locked_at: datetime
    status_code: int | None = None
    response_body: str | None = None
    response_headers: dict[str, str] | None = Field(default=None, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class WriteOffRequest(SQLModel, table=True):
    """A write-off above the four-eyes threshold, waiting for a second finance person.

    `pending_for` holds the invoice number while the request is pending and NULL after: its
    UNIQUE constraint keeps one pending request per invoice on SQLite and PostgreSQL alike.
    """

    __tablename__ = "write_off_request"

    id: str = Field(primary_key=True, max_length=64)
    invoice_number: str = Field(foreign_key="invoice.number", index=True, max_length=64)
    pending_for: str | None = Field(default=None, unique=True, max_length=64)
    reason: str
    outstanding: Decimal = Field(sa_type=AMOUNT)
    currency: str = Field(max_length=3)
    status: str = Field(default="pending", index=True, max_length=16)
    requested_by: str = Field(max_length=128)
    requested_at: datetime = Field(default_factory=utcnow)
    decided_by: str | None = Field(default=None, max_length=128)
    decided_at: datetime | None = None
    comment: str | None = None


class DebtorRestriction(SQLModel, table=True):
    """GDPR art. 18: processing of a debtor's contact data is restricted (e.g. a legal claim
    runs). While active, the contact data may be kept but not erased."""

    __tablename__ = "debtor_restriction"

    debtor_id: str = Field(primary_key=True, foreign_key="debtor.id", max_length=64)
    reason: str
    legal_claim: bool = True
    set_by: str = Field(max_length=128)
    set_at: datetime = Field(default_factory=utcnow)


class PrivacyAudit(SQLModel, table=True):
    """What was done with a debtor's personal data, by whom and when (never the data itself)."""

    __tablename__ = "privacy_audit"

    id: int | None = Field(default=None, primary_key=True)
    debtor_id: str = Field(index=True, max_length=64)
    # exported, restricted, restriction_lifted, erased, erasure_refused
    action: str = Field(max_length=32)
    by: str = Field(max_length=128)
    at: datetime = Field(default_factory=utcnow)
    detail: dict[str, object] = Field(default_factory=dict, sa_column=Column(JSON))


class BackofficeNotice(SQLModel, table=True):
    """A back-office notification waiting to be posted: the transactional outbox.

    Written in the same transaction as the records of the transition that decided it (so a
    notice exists exactly when its facts do), then posted by the worker's sender, which retries
    with backoff and keeps, per URL, whether it took or rejected the event.
    """

    __tablename__ = "backoffice_notice"

    id: int | None = Field(default=None, primary_key=True)
    # What receivers dedupe on; UNIQUE, so a retried activity writes its notice once.
    event_id: str = Field(unique=True, max_length=200)
    invoice_number: str = Field(index=True, max_length=64)
    # contracts.backoffice.BackofficeEvent as JSON.
    body: dict[str, object] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    attempts: int = 0
    delivered: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    rejected: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Set once no URL is left to try: every one took it or rejected it, or it expired.
    done_at: datetime | None = Field(default=None, index=True)
    failure: str | None = None
