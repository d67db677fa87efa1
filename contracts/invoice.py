"""What the invoice workflow takes, and what it hands its activities."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from contracts.backoffice import BackofficeEvent
from contracts.legacy import CarriedState
from domain.collection.commands import SendResult
from domain.collection.records import EventRecord
from domain.collection.state import CollectionState, Message
from domain.holds import HoldRequest
from domain.lifecycle import InvoiceFacts, InvoiceStatus
from domain.money import Money
from domain.playbook import Playbook

# The workflow's code runs the collection machine from this marker on; histories without it
# were recorded by the first released shape (workflows/legacy/invoice_v1.py).
MACHINE_PATCH = "collection-machine"


class InvoiceWorkflowInput(BaseModel):
    invoice: InvoiceFacts
    playbook: Playbook
    day_seconds: float = 86400.0
    # The first shape's carried state (continue-as-new of a run started before the machine).
    state: CarriedState | None = None
    # Start on hold (a debtor opted out of collection until a date).
    hold: HoldRequest | None = None
    # Continue as new past this many history events (0: when the server suggests it). A long
    # payment plan then never grows one history without bound.
    history_limit: int = Field(default=0, ge=0)
    # The machine's state, carried through continue-as-new.
    machine: CollectionState | None = None
    # Tell the back office (webhooks configured): no notification activity runs otherwise.
    notify_backoffice: bool = True
    # The rules' edition a new invoice starts on (domain/collection/state.py). Inputs saved
    # before editions existed carry none: their histories replay on edition 1. Set by the
    # caller rather than decided in the workflow, so it costs no history event.
    rules: int = Field(default=1, ge=1)


class Snapshot(BaseModel):
    """What the store records of a transition: its timeline events and the status after it."""

    invoice_number: str
    records: list[EventRecord] = []
    status: InvoiceStatus
    # Back-office notices the transition decided (rules edition 2): kept in the store's outbox
    # in the same transaction as the records, posted by the worker's sender.
    notices: list[BackofficeEvent] = []


class DeliveryRequest(BaseModel):
    """One message to send, with the records of the transition that decided it: one activity,
    one transaction for both."""

    invoice_number: str
    debtor_id: str
    message: Message
    planned_at: datetime
    as_of: date
    outstanding: Money
    snapshot: Snapshot
    # A debtor's message of the day also lists their invoices whose step falls due within this
    # window (workflow time): ten minutes of a real day, scaled with short demo days.
    gather_seconds: float = 600.0


class DeliveryOutcome(BaseModel):
    key: str
    result: SendResult
    reason: str = ""
    next_day: date | None = None
    provider_message_id: str | None = None
