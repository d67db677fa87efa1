"""Invoices: hand-over, the read model, payments, the timeline.

Reads come from the store (the read model the workflow's activities keep current), so listing
and inspecting never load Temporal. Changes go to the workflow (start, Updates); the API never
sends a message itself. Store calls are blocking, so async services run them on a thread.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from anyio import to_thread
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import (
    ApiError,
    Conflict,
    NotFound,
    ServerMisconfigured,
    Unavailable,
    from_temporal,
    temporal_unreachable,
)
from api.schemas import (
    ApprovalPublic,
    HistoryEntry,
    InvoiceCreate,
    InvoicePublic,
    MoneyPublic,
    NextStepPublic,
    PaymentCreate,
    PaymentPublic,
    PaymentRecorded,
)
from config import Settings
from domain.lifecycle import TERMINAL_STAGES, ApprovalStatus, InvoiceFacts, PaymentInput, Stage
from domain.money import Money
from domain.playbook import DEFAULT_PLAYBOOKS_DIR, Playbook, PlaybookError, load_playbook_named
from store.engine import transaction
from store.invoices import (
    add_invoice,
    events_of,
    fingerprint,
    interactions_of,
    payments_of,
    upsert_debtor,
)
from store.tables import Approval, Debtor, Event, Interaction, Invoice, Payment
from workflows import contract
from workflows.client import invoice_handle, start_invoice
from workflows.invoice import InvoiceWorkflow

log = logging.getLogger("relance.api")

# The workflow's own "next step" before the first playbook step after the due date.

# Temporal errors a service translates (anything else is a bug and surfaces as a 500).
TEMPORAL_ERRORS = (WorkflowUpdateFailedError, RPCError, RPCTimeoutOrCancelledError)


# ------------------------------------------------------------------ playbooks


@lru_cache(maxsize=32)
def _load_playbook(directory: str, name: str, _mtime_ns: int) -> Playbook:
    # Keyed on the file's mtime: an edited playbook is picked up without a restart.
    return load_playbook_named(name, Path(directory))


def playbook_named(settings: Settings, name: str) -> Playbook:
    directory = settings.playbooks_dir or DEFAULT_PLAYBOOKS_DIR
    try:
        mtime = (directory / f"{name}.yaml").stat().st_mtime_ns
    except OSError:
        mtime = 0
    try:
        return _load_playbook(str(directory), name, mtime)
    except PlaybookError as err:
        # The server's configuration is broken, not the request: say where.
        raise ServerMisconfigured(f"the playbook {name!r} cannot be used: {err}") from err


def rpc_timeout(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.rpc_timeout_seconds)


# ------------------------------------------------------------------ hand-over


def facts_of(body: InvoiceCreate) -> InvoiceFacts:
    return InvoiceFacts(
        number=body.number,
        debtor_id=body.debtor.id,
        amount=Money.of(body.amount, body.currency),
        issue_date=body.issue_date,
        due_date=body.due_date,
        language=body.debtor.language,
        country=body.debtor.country,
        segment=body.debtor.segment,
    )


def _debtor_of(body: InvoiceCreate) -> Debtor:
    d = body.debtor
    return Debtor(
        id=d.id,
        name=d.name,
        email=str(d.email),
        country=d.country,
        language=d.language,
        segment=d.segment,
    )


def _differences(session: Session, existing: Invoice, facts: InvoiceFacts) -> list[str]:
    """Which handed-over fields differ from the stored invoice, in the request's own names."""
    fields = []
    if existing.debtor_id != facts.debtor_id:
        fields.append("debtor.id")
    if existing.currency != facts.amount.currency:
        fields.append("currency")
    elif Money.of(existing.amount, existing.currency) != facts.amount:
        fields.append("amount")
    if existing.issue_date != facts.issue_date:
        fields.append("issue_date")
    if existing.due_date != facts.due_date:
        fields.append("due_date")
    debtor = session.get(Debtor, existing.debtor_id)
    if debtor is not None and not fields:
        for name in ("language", "country", "segment"):
            if getattr(debtor, name) != getattr(facts, name):
                fields.append(f"debtor.{name}")
    return fields or ["debtor.language", "debtor.country", "debtor.segment"]


def _store_hand_over(
    engine: Engine, facts: InvoiceFacts, debtor: Debtor, playbook: Playbook
) -> str:
    """Record the invoice (or recognise a replay); return the playbook it runs under."""
    digest = fingerprint(facts)
    for attempt in (1, 2):
        try:
            with transaction(engine) as session:
                existing = session.get(Invoice, facts.number)
                if existing is not None:
                    if existing.fingerprint != digest:
                        fields = _differences(session, existing, facts)
                        raise Conflict(
                            f"invoice {facts.number} was already handed over with different "
                            f"data (field(s) {', '.join(fields)}); an invoice cannot be changed "
                            "by handing it over again"
                        )
                    # Contact details are not part of the invoice: the newest ones win.
                    upsert_debtor(session, debtor)
                    return existing.playbook
                upsert_debtor(session, debtor)
                add_invoice(session, facts, playbook)
                return playbook.name
        except IntegrityError:
            # The same invoice (or debtor) handed over concurrently won the insert: look again.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def hand_over(
    engine: Engine, client: Client, settings: Settings, body: InvoiceCreate
) -> InvoicePublic:
    """Store the invoice, then start its workflow; the same hand-over again is a no-op."""
    facts = facts_of(body)
    playbook = playbook_named(settings, settings.default_playbook)
    used = await to_thread.run_sync(_store_hand_over, engine, facts, _debtor_of(body), playbook)
    if used != playbook.name:
        playbook = playbook_named(settings, used)
    try:
        # Always, even on a replay: if a crash came between the commit and the start, the
        # back office's retry is what starts the collection. A finished workflow is never
        # started again (see start_invoice).
        await start_invoice(
            client,
            facts,
            playbook,
            task_queue=settings.task_queue,
            day_seconds=settings.day_seconds,
        )
    except (RPCError, RPCTimeoutOrCancelledError) as err:
        raise Unavailable(
            f"invoice {facts.number} is recorded but its collection could not start: "
            f"{temporal_unreachable(settings)}. Send the same request again to start it."
        ) from err
    log.info("invoice %s handed over", facts.number)
    return await to_thread.run_sync(read_invoice, engine, settings, facts.number)


# ------------------------------------------------------------------ read model


def _invoice_or_404(session: Session, number: str) -> Invoice:
    invoice = session.get(Invoice, number)
    if invoice is None:
        raise NotFound(f"invoice {number} is unknown: it was never handed over")
    return invoice


def approval_public(row: Approval) -> ApprovalPublic:
    return ApprovalPublic.model_validate(row, from_attributes=True)


def _payment_public(row: Payment) -> PaymentPublic:
    return PaymentPublic(
        reference=row.reference,
        amount=MoneyPublic.of(row.amount, row.currency),
        outstanding_after=MoneyPublic.of(row.outstanding_after, row.currency),
        overpayment=MoneyPublic.of(row.overpayment, row.currency) if row.overpayment else None,
        received_on=row.received_on,
        recorded_at=row.recorded_at,
    )


def _next_step(
    settings: Settings, invoice: Invoice, pending: Approval | None, session: Session
) -> NextStepPublic | None:
    if invoice.next_step is None or invoice.next_step_at is None:
        return None
    if invoice.stage in TERMINAL_STAGES:
        return None
    if invoice.next_step == contract.DUE_DATE_PASSES:
        return NextStepPublic(
            step_id=invoice.next_step,
            stage=Stage.OVERDUE,
            at=invoice.next_step_at,
            note="the due date passes: the invoice becomes overdue",
        )
    # The store keeps the step's id and time; its stage and approval need come from the
    # playbook the invoice runs under (steps keep their meaning across playbook versions).
    stage: Stage | None = None
    needs_approval = False
    try:
        playbook = playbook_named(settings, invoice.playbook)
        step = playbook.steps[playbook.index_of(invoice.next_step)]
        stage, needs_approval = step.stage, step.requires_approval
    except (ApiError, KeyError):
        pass
    note = None
    if pending is not None and pending.step_id == invoice.next_step:
        note = f"awaiting a collector's decision on approval {pending.id}"
    else:
        rejected = session.exec(
            select(Approval)
            .where(
                Approval.invoice_number == invoice.number,
                Approval.step_id == invoice.next_step,
                Approval.status == ApprovalStatus.REJECTED,
            )
            .order_by(col(Approval.requested_at).desc())
        ).first()
        if rejected is not None:
            note = (
                f"escalation to {rejected.target_stage} was rejected by {rejected.decided_by}"
                + (f" ({rejected.comment})" if rejected.comment else "")
                + f"; the invoice stays {invoice.stage} and it is proposed again then"
            )
    return NextStepPublic(
        step_id=invoice.next_step,
        stage=stage,
        at=invoice.next_step_at,
        needs_approval=needs_approval,
        note=note,
    )


def invoice_public(session: Session, settings: Settings, invoice: Invoice) -> InvoicePublic:
    pending = session.exec(
        select(Approval).where(
            Approval.invoice_number == invoice.number,
            Approval.status == ApprovalStatus.PENDING,
        )
    ).first()
    currency = invoice.currency
    return InvoicePublic(
        number=invoice.number,
        debtor_id=invoice.debtor_id,
        amount=MoneyPublic.of(invoice.amount, currency),
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        stage=invoice.stage,
        outstanding=MoneyPublic.of(invoice.outstanding, currency),
        overpayment=MoneyPublic.of(invoice.overpayment, currency) if invoice.overpayment else None,
        next_step=_next_step(settings, invoice, pending, session),
        pending_approval=approval_public(pending) if pending else None,
        payments=[_payment_public(p) for p in payments_of(session, invoice.number)],
    )


def get_invoice(session: Session, settings: Settings, number: str) -> InvoicePublic:
    return invoice_public(session, settings, _invoice_or_404(session, number))


def read_invoice(engine: Engine, settings: Settings, number: str) -> InvoicePublic:
    with Session(engine) as session:
        return get_invoice(session, settings, number)


# ------------------------------------------------------------------ payments


def _recorded(row: Payment, stage: str) -> PaymentRecorded:
    return PaymentRecorded(
        reference=row.reference,
        amount=MoneyPublic.of(row.amount, row.currency),
        outstanding=MoneyPublic.of(row.outstanding_after, row.currency),
        stage=stage,
        overpayment=MoneyPublic.of(row.overpayment, row.currency) if row.overpayment else None,
    )


def _known_invoice(engine: Engine, number: str) -> Invoice:
    with Session(engine) as session:
        return _invoice_or_404(session, number)


def _after_close(engine: Engine, number: str, body: PaymentCreate) -> PaymentRecorded:
    """A payment for an invoice whose workflow has ended: a replay, or a refusal."""
    with Session(engine) as session:
        invoice = _invoice_or_404(session, number)
        known = session.exec(
            select(Payment).where(
                Payment.invoice_number == number, Payment.reference == body.reference
            )
        ).first()
        if known is not None:
            # The same reference again: the same answer, even after the invoice closed.
            return _recorded(known, invoice.stage)
    if invoice.stage in TERMINAL_STAGES:
        raise Conflict(f"invoice {number} is already {invoice.stage}: no payment can be recorded")
    raise Unavailable(
        f"invoice {number} has no running collection: hand it over again (same request) to "
        "start it, then report the payment"
    )


async def record_payment(
    engine: Engine, client: Client, settings: Settings, number: str, body: PaymentCreate
) -> PaymentRecorded:
    # The store first: an unknown invoice is a 404 without a round trip to Temporal.
    await to_thread.run_sync(_known_invoice, engine, number)
    payment = PaymentInput(
        reference=body.reference,
        amount=Money.of(body.amount, body.currency),
        received_on=body.received_on,
    )
    try:
        result = await invoice_handle(client, number).execute_update(
            InvoiceWorkflow.record_payment, payment, rpc_timeout=rpc_timeout(settings)
        )
    except TEMPORAL_ERRORS as err:
        if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
            # The store knows the invoice, so its workflow has ended (or never started).
            return await to_thread.run_sync(_after_close, engine, number, body)
        mapped = from_temporal(err, settings, invoice=number)
        if mapped is None:
            raise
        raise mapped from err
    log.info("payment %s recorded on invoice %s", body.reference, number)
    return PaymentRecorded(
        reference=result.reference,
        amount=MoneyPublic.from_money(result.amount),
        outstanding=MoneyPublic.from_money(result.outstanding),
        stage=result.stage,
        overpayment=MoneyPublic.from_money(result.overpayment) if result.overpayment else None,
    )


# ------------------------------------------------------------------ history


def _event_entry(event: Event) -> HistoryEntry:
    return HistoryEntry(
        at=event.at, kind=event.kind, summary=event.summary, stage=event.stage, detail=event.detail
    )


def _message_entry(row: Interaction) -> HistoryEntry:
    # Recipients are roles (debtor, mediator...), never addresses: the timeline holds no
    # personal data beyond what the back office already has.
    status = row.status
    what = f"{row.channel} to {row.recipient} for {row.step_id}"
    summary = f"{what}: {row.subject}" if row.subject else what
    if status != "sent":
        summary += f" ({status}{': ' + row.error if row.error else ''})"
    return HistoryEntry(
        # Workflow time, like the events: the moment the step asked for the message.
        at=row.planned_at or row.created_at,
        kind=f"message_{status}",
        summary=summary,
        detail={
            "step_id": row.step_id,
            "channel": row.channel,
            "recipient": row.recipient,
            "template": row.template,
            "subject": row.subject,
            "status": status,
            "planned_at": row.planned_at.isoformat() if row.planned_at else None,
            "sent_at": row.sent_at.isoformat() if row.sent_at else None,
            "attempts": row.attempts,
            "error": row.error,
        },
    )


def history(session: Session, number: str) -> list[HistoryEntry]:
    """Every step, message, payment and decision of the invoice, oldest first."""
    _invoice_or_404(session, number)
    entries = [(_event_entry(e), 1, e.id or 0) for e in events_of(session, number)]
    entries += [(_message_entry(i), 0, i.id or 0) for i in interactions_of(session, number)]
    # At equal times a message comes before the event that reports its step as done.
    entries.sort(key=lambda item: (item[0].at, item[1], item[2]))
    return [entry for entry, _, _ in entries]
