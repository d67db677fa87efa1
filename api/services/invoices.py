"""Invoices: hand-over, the read model, payments, the timeline.

Reads come from the store (the read model the workflow's activities keep current), so listing
and inspecting never load Temporal. Changes go to the workflow (start, Updates); the API never
sends a message itself. Store calls are blocking, so async services run them on a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import date, timedelta

from anyio import to_thread
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.actors import ActorNames
from api.contact_fields import ContactFields, address_of
from api.errors import (
    ApiError,
    Conflict,
    NotFound,
    Unavailable,
    from_temporal,
    temporal_unreachable,
)
from api.idempotency import Idempotency
from api.schemas import (
    ApprovalPublic,
    HistoryEntry,
    InterestSegmentPublic,
    InvoiceCreate,
    InvoicePublic,
    LatePaymentCostsPublic,
    MoneyPublic,
    NextStepPublic,
    PaymentCreate,
    PaymentPublic,
    PaymentRecorded,
)
from api.services import debtors
from api.services.legal_file import legal_of, mediation_of
from config import Settings
from domain.holds import HoldRequest
from domain.law import LatePaymentCosts
from domain.lifecycle import TERMINAL_STAGES, ApprovalStatus, InvoiceFacts, PaymentInput, Stage
from domain.money import Money
from domain.playbook import Channel, Playbook, Recipient
from domain.selection import resolve_segment
from store.debtors import open_invoice_numbers, override_of
from store.engine import transaction
from store.invoices import (
    add_invoice,
    events_of,
    fingerprint,
    interactions_of,
    payments_of,
    upsert_debtor,
)
from store.tables import (
    Approval,
    Debtor,
    Event,
    Interaction,
    InteractionStatus,
    Invoice,
    Payment,
)
from store.timeline import acknowledge_payment
from workflows import contract
from workflows.client import invoice_handle, start_invoice
from workflows.invoice import InvoiceWorkflow

log = logging.getLogger("relance.api")

# The workflow's own "next step" before the first playbook step after the due date.

# Temporal errors a service translates (anything else is a bug and surfaces as a 500).
TEMPORAL_ERRORS = (WorkflowUpdateFailedError, RPCError, RPCTimeoutOrCancelledError)
# How long a payment's answer may wait for a message already at its provider: a provider
# call's timeout (SendGridSender's 10 s), and some.
IN_FLIGHT_WAIT = timedelta(seconds=12)
# What the end of a collection itself sends (domain/collection/machine.py): not waited for.
SENT_AFTER_PAYMENT = ("thank_you", "late_payment_statement")


# ------------------------------------------------------------------ playbooks

# Loading (user folder first, then the shipped one; template names checked) lives with the
# selection; importable from here as before.
playbook_named = debtors.playbook_named


def rpc_timeout(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.rpc_timeout_seconds)


# ------------------------------------------------------------------ hand-over


def facts_of(body: InvoiceCreate) -> InvoiceFacts:
    """What the workflow gets, from the request alone (its digest tells a replay apart).

    The segment is the one playbooks are chosen by ("PME" -> "pme", or derived from the size
    bands when none is given), so the RelanceSegment search attribute filters consistently.
    """
    d = body.debtor
    resolved = resolve_segment(d.segment, d.annual_revenue, d.headcount).segment
    return InvoiceFacts(
        number=body.number,
        debtor_id=d.id,
        amount=Money.of(body.amount, body.currency),
        issue_date=body.issue_date,
        due_date=body.due_date,
        language=d.language,
        country=d.country,
        segment=resolved.value if resolved is not None else d.segment,
        timezone=d.timezone,
        subdivision=d.subdivision,
        interest_clause=body.late_interest_rate,
    )


def _debtor_of(body: InvoiceCreate) -> Debtor:
    d = body.debtor
    given = resolve_segment(d.segment, None, None).segment
    return Debtor(
        id=d.id,
        name=d.name,
        email=str(d.email),
        country=d.country,
        language=d.language,
        # Stored as we name it when we recognise it ("Grand compte" -> "grand_compte").
        segment=given.value if given is not None else d.segment,
        annual_revenue=d.annual_revenue,
        headcount=d.headcount,
        timezone=d.timezone,
        subdivision=d.subdivision,
        phone=d.phone,
        postal_address=_address_json(d),
    )


def _address_json(d: ContactFields) -> dict[str, object] | None:
    address = address_of(d)
    return address.model_dump(mode="json") if address is not None else None


# What a hand-over may leave out without erasing what an earlier one said.
_KEPT_WHEN_OMITTED = ("segment", "annual_revenue", "headcount", "timezone", "subdivision")


def _merge_debtor(session: Session, incoming: Debtor) -> tuple[Debtor, tuple[Channel, ...]]:
    """Contact details: the newest hand-over wins. Segment, size and location: the newest
    one that gives them (a back office that sends no size does not erase the known one).
    Also says which channels a changed detail corrected (a bounced address, a number that said
    STOP or was never reached, a postal address whose letter came back)."""
    existing = session.get(Debtor, incoming.id)
    channels: list[Channel] = []
    if existing is not None:
        if existing.email != incoming.email:
            channels.append(Channel.EMAIL)
        if incoming.phone is not None and incoming.phone != existing.phone:
            channels += [Channel.SMS, Channel.PHONE]
        if incoming.postal_address is not None and incoming.postal_address != (
            existing.postal_address
        ):
            channels.append(Channel.LETTER)
    corrected = Channel.EMAIL in channels
    if existing is not None:
        for name in _KEPT_WHEN_OMITTED:
            if getattr(incoming, name) is None:
                setattr(incoming, name, getattr(existing, name))
    stored = upsert_debtor(session, incoming)
    for name in _KEPT_WHEN_OMITTED:
        setattr(stored, name, getattr(incoming, name))
    if corrected:
        stored.email_invalid_at = None
    session.add(stored)
    return stored, tuple(channels)


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
    if existing.interest_clause != facts.interest_clause:
        fields.append("late_interest_rate")
    debtor = session.get(Debtor, existing.debtor_id)
    if debtor is not None and not fields:
        for name in ("language", "country", "timezone", "subdivision"):
            if getattr(debtor, name) != getattr(facts, name):
                fields.append(f"debtor.{name}")
        stored = resolve_segment(debtor.segment, debtor.annual_revenue, debtor.headcount).segment
        if (stored.value if stored else debtor.segment) != facts.segment:
            fields.append("debtor.segment (or the size it is derived from)")
    return fields or [
        "debtor.language",
        "debtor.country",
        "debtor.segment",
        "debtor.annual_revenue",
        "debtor.headcount",
        "debtor.timezone",
        "debtor.subdivision",
    ]


@dataclass(frozen=True)
class Recorded:
    """What the hand-over stored: the playbook the invoice runs, and what to tell the caller."""

    playbook: Playbook
    warnings: list[str]
    # The invoice as the answer shows it, read in the same transaction: nothing reads it again
    # after the start (the workflow's first records land moments later, whenever they do).
    invoice: InvoicePublic
    # Whether this hand-over recorded it (False: the same invoice again).
    created: bool
    # An opted-out debtor's new invoice starts on hold until the opt-out ends.
    hold: HoldRequest | None = None
    # The debtor's contact details changed: these running invoices use these channels again.
    corrected: tuple[str, ...] = ()
    corrected_channels: tuple[Channel, ...] = ()


def record_hand_over(
    session: Session, settings: Settings, facts: InvoiceFacts, debtor: Debtor, as_of: date
) -> Recorded:
    """Record the invoice in `session` (or recognise a replay), choosing its playbook.

    No commit here: the caller's transaction decides (one invoice, or a whole batch).
    """
    existing = session.get(Invoice, facts.number)
    if existing is not None and existing.fingerprint != fingerprint(facts):
        fields = _differences(session, existing, facts)
        raise Conflict(
            f"invoice {facts.number} was already handed over with different "
            f"data (field(s) {', '.join(fields)}); an invoice cannot be changed "
            "by handing it over again"
        )
    # Contact details are not part of the invoice: the newest ones win, even on a replay.
    stored, channels = _merge_debtor(session, debtor)
    corrected = tuple(open_invoice_numbers(session, stored.id)) if channels else ()
    if existing is not None:
        # A replay keeps the playbook the invoice was recorded with.
        note = debtors.opt_out_note(override_of(session, stored.id), as_of, ActorNames(session))
        return Recorded(
            playbook_named(settings, existing.playbook),
            [note] if note else [],
            invoice_public(session, settings, existing),
            created=False,
            corrected=corrected,
            corrected_channels=channels,
        )
    # The choice reads the debtor's history *before* this invoice joins it.
    selection = debtors.select_playbook(session, settings, stored, as_of)
    playbook = playbook_named(settings, selection.choice.playbook)
    invoice = add_invoice(session, facts, playbook)
    log.info("invoice %s: playbook %s (%s)", facts.number, playbook.name, selection.choice.why)
    hold = debtors.opt_out_hold(selection.override, as_of)
    return Recorded(
        playbook,
        [selection.opt_out] if selection.opt_out else [],
        invoice_public(session, settings, invoice, fresh=True),
        created=True,
        hold=hold,
        corrected=corrected,
        corrected_channels=channels,
    )


def _store_hand_over(
    engine: Engine, settings: Settings, facts: InvoiceFacts, debtor: Debtor, as_of: date
) -> Recorded:
    for attempt in (1, 2):
        try:
            with transaction(engine) as session:
                return record_hand_over(session, settings, facts, debtor, as_of)
        except IntegrityError:
            # The same invoice (or debtor) handed over concurrently won the insert: look again.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def hand_over(
    engine: Engine, client: Client, settings: Settings, body: InvoiceCreate
) -> InvoicePublic:
    """Store the invoice, then start its workflow; the same hand-over again is a no-op.

    The playbook follows the debtor's segment, risk and override (`debtors.select_playbook`).
    An opted-out debtor's invoice is recorded and started paused until the opt-out ends; the
    answer carries the opt-out as a warning.
    """
    recorded = await record_and_start(engine, client, settings, body)
    return recorded.invoice.model_copy(update={"warnings": recorded.warnings})


async def record_and_start(
    engine: Engine, client: Client, settings: Settings, body: InvoiceCreate
) -> Recorded:
    """`hand_over`, answering what was recorded (a batch reports each line from it)."""
    facts = facts_of(body)
    recorded = await to_thread.run_sync(
        _store_hand_over, engine, settings, facts, _debtor_of(body), debtors.today()
    )
    try:
        # Always, even on a replay: if a crash came between the commit and the start, the
        # back office's retry is what starts the collection. A finished workflow is never
        # started again (see start_invoice).
        await start_invoice(
            client,
            facts,
            recorded.playbook,
            task_queue=settings.task_queue,
            day_seconds=settings.day_seconds,
            hold=recorded.hold,
            notify_backoffice=bool(settings.backoffice_webhook_urls),
        )
    except (RPCError, RPCTimeoutOrCancelledError) as err:
        raise Unavailable(
            f"invoice {facts.number} is recorded but its collection could not start: "
            f"{temporal_unreachable(settings)}. Send the same request again to start it."
        ) from err
    if recorded.corrected:
        await debtors.contact_corrected(
            client,
            settings,
            recorded.corrected,
            facts.debtor_id,
            by="back office (hand-over)",
            channels=recorded.corrected_channels,
        )
    log.info("invoice %s handed over", facts.number)
    return recorded


# ------------------------------------------------------------------ read model


def _invoice_or_404(session: Session, number: str) -> Invoice:
    invoice = session.get(Invoice, number)
    if invoice is None:
        raise NotFound(f"invoice {number} is unknown: it was never handed over")
    return invoice


def approval_public(row: Approval, names: ActorNames) -> ApprovalPublic:
    public = ApprovalPublic.model_validate(row, from_attributes=True)
    return public.model_copy(update={"decided_by": names.name(row.decided_by)})


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


def invoice_public(
    session: Session, settings: Settings, invoice: Invoice, *, fresh: bool = False
) -> InvoicePublic:
    """The invoice as the API shows it. `fresh`: just recorded, so it has no approval, payment
    or planned step yet, and nothing needs looking up."""
    pending = None
    if not fresh:
        pending = session.exec(
            select(Approval).where(
                Approval.invoice_number == invoice.number,
                Approval.status == ApprovalStatus.PENDING,
            )
        ).first()
    currency = invoice.currency
    names = ActorNames(session)
    return InvoicePublic(
        number=invoice.number,
        debtor_id=invoice.debtor_id,
        amount=MoneyPublic.of(invoice.amount, currency),
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        stage=invoice.stage,
        outstanding=MoneyPublic.of(invoice.outstanding, currency),
        overpayment=MoneyPublic.of(invoice.overpayment, currency) if invoice.overpayment else None,
        next_step=None if fresh else _next_step(settings, invoice, pending, session),
        pending_approval=approval_public(pending, names) if pending else None,
        payments=[]
        if fresh
        else [_payment_public(p) for p in payments_of(session, invoice.number)],
        playbook=invoice.playbook,
        playbook_version=invoice.playbook_version,
        limitation_date=invoice.limitation_date,
        late_payment_costs=_late_costs_public(invoice),
        mediation=None if fresh else mediation_of(session, invoice.number, names),
        legal=None if fresh else legal_of(session, invoice.number, names),
    )


def _late_costs_public(invoice: Invoice) -> LatePaymentCostsPublic | None:
    if invoice.late_payment_costs is None:
        return None
    costs = LatePaymentCosts.model_validate(invoice.late_payment_costs)
    return LatePaymentCostsPublic(
        interest=MoneyPublic.from_money(costs.interest),
        indemnity=MoneyPublic.from_money(costs.indemnity),
        total=MoneyPublic.from_money(costs.total),
        indemnity_in_total=costs.indemnity_in_total,
        currency=costs.total.currency,
        paid_on=costs.paid_on,
        days_late=costs.days_late,
        provisional=costs.provisional,
        segments=[
            InterestSegmentPublic(
                principal=MoneyPublic.from_money(segment.principal),
                start=segment.start,
                end=segment.end,
                days=segment.days,
                rate=str(segment.rate),
                basis=segment.basis.value,
                clause=segment.clause,
                half_year=segment.half_year,
                provisional=segment.provisional,
            )
            for segment in costs.segments
        ],
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
    engine: Engine,
    client: Client,
    settings: Settings,
    number: str,
    body: PaymentCreate,
    idem: Idempotency | None = None,
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
            InvoiceWorkflow.record_payment,
            payment,
            id=idem.update_id() if idem is not None else None,
            rpc_timeout=rpc_timeout(settings),
        )
    except TEMPORAL_ERRORS as err:
        if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
            # The store knows the invoice, so its workflow has ended (or never started).
            return await to_thread.run_sync(_after_close, engine, number, body)
        raise from_temporal(err, settings, invoice=number) from err
    await to_thread.run_sync(acknowledge_payment, engine, number, result, body.received_on)
    if result.stage in TERMINAL_STAGES:
        await _until_handed_over_messages_answered(engine, number)
    log.info("payment %s recorded on invoice %s", body.reference, number)
    return PaymentRecorded(
        reference=result.reference,
        amount=MoneyPublic.from_money(result.amount),
        outstanding=MoneyPublic.from_money(result.outstanding),
        stage=result.stage,
        overpayment=MoneyPublic.from_money(result.overpayment) if result.overpayment else None,
    )


async def _until_handed_over_messages_answered(engine: Engine, number: str) -> None:
    """Wait until no message to the debtor is being handed to its provider.

    Once the store says the invoice is paid, no send starts (the reservation re-checks it),
    but one reserved just before may be at SendGrid right now: it cannot be called back, and
    the debtor would get it after the back office heard "paid". Answering once it is answered
    keeps "nothing after the acknowledgment" true. A provider call lasts at most its timeout;
    a row left `sending` by a worker that died is waited for that long in vain (its retry finds
    the invoice paid and sends nothing).
    """
    deadline = time.monotonic() + IN_FLIGHT_WAIT.total_seconds()
    while True:
        if not await to_thread.run_sync(_sending_to_debtor, engine, number):
            return
        if time.monotonic() >= deadline:
            log.warning("invoice %s: a message still marked sending after the payment", number)
            return
        await asyncio.sleep(0.05)


def _sending_to_debtor(engine: Engine, number: str) -> bool:
    with Session(engine) as session:
        row = session.exec(
            select(Interaction.id).where(
                Interaction.invoice_number == number,
                Interaction.status == InteractionStatus.SENDING,
                Interaction.recipient == Recipient.DEBTOR,
                col(Interaction.step_id).not_in(SENT_AFTER_PAYMENT),
            )
        ).first()
    return row is not None


# ------------------------------------------------------------------ history


def _event_entry(event: Event, names: ActorNames) -> HistoryEntry:
    # The workflow names actors by identity; people read their labels.
    return HistoryEntry(
        at=event.at,
        kind=event.kind,
        summary=names.text(event.summary),
        stage=event.stage,
        detail=event.detail,
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
    names = ActorNames(session)
    entries = [(_event_entry(e, names), 1, e.id or 0) for e in events_of(session, number)]
    entries += [(_message_entry(i), 0, i.id or 0) for i in interactions_of(session, number)]
    # At equal times a message comes before the event that reports its step as done.
    entries.sort(key=lambda item: (item[0].at, item[1], item[2]))
    return [entry for entry, _, _ in entries]
