"""Carrying out the machine's effects in the store and with the providers: exactly once.

`deliver` sends one message. In ONE transaction it writes the records of the transition that
decided it, re-checks that the invoice still wants the message (a payment, a hold or a closure
acknowledged meanwhile means no), claims the debtor's message of the day (a debtor's email is
also the message of the day for their other invoices falling due with it), and reserves every
message key it stands for, marked `sending`. Then the provider gets it, and the keys are marked
`sent` at once, nothing in between.

A retry that finds its key `sent` sends nothing. One that finds it still `sending` does not know
whether the provider took it (the worker died in between): for a formal notice, a mediation or
a legal file a person decides (a task; never a second copy of a legal letter); a reminder is
sent again (a duplicate reminder is better than a missing one). The outbox resends safely
(it overwrites its own file).

`record` writes a transition's records that carry no message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import bindparam
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.email import OutgoingEmail
from activities.mailbox import consolidated_email, send_consolidated_letter
from activities.messaging import EmailFacts, MessagingActivities, SendOutcome, SendRequest
from contracts.errors import ErrorType
from contracts.invoice import DeliveryOutcome, DeliveryRequest, Snapshot
from domain.collection.commands import SendResult
from domain.collection.keys import day_key, message_key
from domain.collection.state import Message
from domain.lifecycle import ESCALATION_ORDER, Stage
from domain.money import Money
from domain.playbook import Channel, Recipient
from messages import RenderError, TemplateNotFound
from store.engine import transaction
from store.tables import Debtor, Interaction, InteractionStatus, Invoice, MessageDay
from store.timeline import record_snapshot

# A text or a letter that failed for good: recorded, and the collection goes on (one that
# cannot reach the debtor at all is UNDELIVERABLE: the step's fallback follows).
_FAILED_ON_CHANNEL = frozenset(
    {
        ErrorType.PERMANENT_SEND_ERROR,
        ErrorType.CHANNEL_UNAVAILABLE,
        ErrorType.TEMPLATE_NOT_FOUND,
    }
)

# Messages whose second copy would do harm: a person decides when their outcome is unknown.
NEVER_BLIND_RESEND = frozenset({Stage.FORMAL_NOTICE, Stage.MEDIATION, Stage.LEGAL})


class DeliveryActivities:
    def __init__(self, engine: Engine, messaging: MessagingActivities) -> None:
        self._engine = engine
        self._messaging = messaging

    @activity.defn(name="record")
    def record(self, snapshot: Snapshot) -> None:
        with transaction(self._engine) as session:
            record_snapshot(
                session,
                snapshot.invoice_number,
                snapshot.records,
                snapshot.status,
                snapshot.notices,
            )

    @activity.defn(name="deliver")
    def deliver(self, request: DeliveryRequest) -> DeliveryOutcome:
        message = request.message
        key = message_key(
            request.invoice_number, message.step_id, message.channel, message.recipient
        )
        try:
            plan = self._reserve(request, key)
        except IntegrityError:
            # Another invoice of the debtor claimed the day between our read and our write.
            plan = self._reserve(request, key)
        if plan.unknown:
            raise ApplicationError(
                f"{key}: an earlier attempt may have reached the provider",
                type=ErrorType.OUTCOME_UNKNOWN,
                non_retryable=True,
            )
        if plan.outcome is not None:
            return plan.outcome
        return self._send(request, key, plan)

    # ------------------------------------------------------------------ the transaction

    def _reserve(self, request: DeliveryRequest, key: str) -> _Plan:
        message = request.message
        with transaction(self._engine) as session:
            snapshot = request.snapshot
            record_snapshot(
                session,
                snapshot.invoice_number,
                snapshot.records,
                snapshot.status,
                snapshot.notices,
            )
            invoice = _locked_invoice(session, request.invoice_number)
            own = _row(session, key)
            listed = own is not None and _listed_by_other(session, own, key)
            if own is not None and own.status == InteractionStatus.SENT:
                return _Plan.done(key, SendResult.INCLUDED if listed else SendResult.SENT, own)
            if own is not None and own.status in (
                InteractionStatus.UNKNOWN,
                InteractionStatus.CANCELLED,
            ):
                return _Plan.done(key, SendResult.NOT_WANTED, own)
            # Held for the whole transaction: later reads of the debtor come from the session.
            debtor = session.get(Debtor, request.debtor_id)
            erased = _erased(debtor) and message.recipient == Recipient.DEBTOR
            if invoice is None or erased or Stage(invoice.stage) not in message.wanted_in:
                stage = "erased contact" if erased else (invoice.stage if invoice else "missing")
                if own is not None:
                    own.status = InteractionStatus.CANCELLED
                    own.error = f"not sent: invoice {stage}"
                    session.add(own)
                return _Plan.done(key, SendResult.NOT_WANTED, reason=f"invoice {stage}")
            if own is not None and own.status == InteractionStatus.SENDING:
                if listed:
                    # Listed in another invoice's message of the day, still going out.
                    return _Plan.done(key, SendResult.INCLUDED, own)
                if message.stage in NEVER_BLIND_RESEND and not self._resends_safely(message):
                    own.status = InteractionStatus.UNKNOWN
                    own.error = "the worker stopped after handing it to the provider"
                    session.add(own)
                    return _Plan(unknown=True)
            members: list[Invoice] = []
            day = None
            if message.consolidated and (own is None or own.batch_key is None):
                day = day_key(request.debtor_id, message.channel, request.as_of)
                claim = session.get(MessageDay, day)
                if claim is not None and claim.owner != key:
                    return _Plan.done(
                        key,
                        SendResult.DEFERRED,
                        reason=f"{day} already used",
                        next_day=request.as_of + timedelta(days=1),
                    )
                if claim is None:
                    session.add(MessageDay(key=day, debtor_id=request.debtor_id, owner=key))
                    session.flush()  # the UNIQUE key decides a race here
                members = _due_with(session, request, invoice)
            elif own is not None and own.batch_key is not None:
                # A retry of our own message of the day: the same invoices, still wanted.
                day = own.batch_key
                members = _listed_with(session, day, key)
            own = own or Interaction(
                idempotency_key=key,
                invoice_number=request.invoice_number,
                step_id=message.step_id,
                channel=message.channel,
                recipient=message.recipient,
                template=message.template,
                planned_at=request.planned_at,
            )
            own.status = InteractionStatus.SENDING
            own.batch_key = day
            session.add(own)
            fresh = [m for m in members if _row(session, m.next_message_key or "") is None]
            for other in fresh:
                session.add(
                    Interaction(
                        idempotency_key=other.next_message_key or "",
                        invoice_number=other.number,
                        step_id=(other.next_message_key or "").split(":")[-2],
                        channel=Channel.EMAIL,
                        recipient=Recipient.DEBTOR,
                        template="consolidated",
                        planned_at=request.planned_at,
                        batch_key=day,
                        status=InteractionStatus.SENDING,
                    )
                )
            facts = None
            if message.channel == Channel.EMAIL and not members:
                # Read with the reservation: the email is written from what it re-checked.
                facts = self._messaging.facts_for(session, _send_request(request))
            return _Plan(debtor=debtor, invoice=invoice, members=members, day=day, facts=facts)

    def _resends_safely(self, message: Message) -> bool:
        sender = self._messaging.provider_for(message.channel)
        return bool(getattr(sender, "idempotent", False))

    # ------------------------------------------------------------------ the provider

    def _send(self, request: DeliveryRequest, key: str, plan: _Plan) -> DeliveryOutcome:
        message = request.message
        keys = [key, *[m.next_message_key or "" for m in plan.members]]
        if message.channel == Channel.SMS or (
            message.channel == Channel.LETTER and not plan.members
        ):
            return self._send_on_channel(request, key)
        if message.channel == Channel.LETTER:
            return self._send_letter_of_the_day(request, key, plan, keys)
        if message.channel not in (Channel.EMAIL, Channel.LETTER):
            self._messaging.finish(keys, InteractionStatus.FAILED, error="channel not available")
            raise ApplicationError(
                f"channel {message.channel.value} is not available",
                type=ErrorType.CHANNEL_UNAVAILABLE,
                non_retryable=True,
            )
        try:
            email = self._compose(request, key, plan)
        except ApplicationError:
            self._messaging.finish(keys, InteractionStatus.FAILED, error="template error")
            raise
        try:
            receipt = self._messaging.deliver(self._messaging.sender, email, keys)
        except ApplicationError as err:
            if err.type == ErrorType.PERMANENT_SEND_ERROR:
                return DeliveryOutcome(key=key, result=SendResult.FAILED, reason=err.message)
            raise
        return DeliveryOutcome(
            key=key, result=SendResult.SENT, provider_message_id=receipt.provider_message_id
        )

    def _send_on_channel(self, request: DeliveryRequest, key: str) -> DeliveryOutcome:
        """A text, or a letter about one invoice (a PDF to the postal provider)."""
        single = _send_request(request)
        return _on_channel(key, lambda: self._messaging.send_on_channel(single, key))

    def _send_letter_of_the_day(
        self, request: DeliveryRequest, key: str, plan: _Plan, keys: list[str]
    ) -> DeliveryOutcome:
        """The debtor's letter listing several invoices: one PDF, posted once."""
        debtor, requests, invoices = self._listed(request, plan)
        messaging, day = self._messaging, request.as_of
        return _on_channel(
            key, lambda: send_consolidated_letter(messaging, debtor, day, requests, keys, invoices)
        )

    def _listed(
        self, request: DeliveryRequest, plan: _Plan
    ) -> tuple[Debtor, list[SendRequest], dict[str, Invoice]]:
        """The debtor, one request per invoice the message of the day lists (ours first), and
        those invoices."""
        if plan.debtor is None or plan.invoice is None or plan.day is None:
            raise ApplicationError(
                f"debtor {request.debtor_id} is missing from the store",
                type=ErrorType.MISSING_INVOICE,
                non_retryable=True,
            )
        single = _send_request(request)
        requests = [single] + [
            single.model_copy(
                update={
                    "invoice_number": other.number,
                    "outstanding": Money.of(other.outstanding, other.currency),
                }
            )
            for other in plan.members
        ]
        return plan.debtor, requests, {i.number: i for i in [plan.invoice, *plan.members]}

    def _compose(self, request: DeliveryRequest, key: str, plan: _Plan) -> OutgoingEmail:
        if not plan.members:
            try:
                return self._messaging.compose(_send_request(request), key, plan.facts)
            except (TemplateNotFound, RenderError) as exc:
                raise ApplicationError(
                    str(exc), type=ErrorType.TEMPLATE_NOT_FOUND, non_retryable=True
                ) from exc
        debtor, requests, invoices = self._listed(request, plan)
        return consolidated_email(
            self._messaging,
            debtor=debtor,
            channel=request.message.channel,
            day=request.as_of,
            key=plan.day or key,
            requests=requests,
            invoices=invoices,
        )


@dataclass
class _Plan:
    """What the reserving transaction decided: an outcome now, or what to send."""

    outcome: DeliveryOutcome | None = None
    # The row now says `unknown` (committed): the workflow asks a person.
    unknown: bool = False
    debtor: Debtor | None = None
    invoice: Invoice | None = None
    members: list[Invoice] = field(default_factory=list)
    day: str | None = None
    # An email about this invoice alone: what it is written from, read with the reservation.
    facts: EmailFacts | None = None

    @classmethod
    def done(
        cls,
        key: str,
        result: SendResult,
        row: Interaction | None = None,
        *,
        reason: str = "",
        next_day: date | None = None,
    ) -> _Plan:
        return cls(
            outcome=DeliveryOutcome(
                key=key,
                result=result,
                reason=reason,
                next_day=next_day,
                provider_message_id=row.provider_message_id if row is not None else None,
            )
        )


def _on_channel(key: str, send: Callable[[], SendOutcome]) -> DeliveryOutcome:
    """A text's or a letter's outcome, as the machine takes it."""
    try:
        sent = send()
    except ApplicationError as err:
        # Undeliverable (no number or address, a STOP, a number the provider refuses for
        # good): the machine takes the step's fallback.
        if err.type == ErrorType.UNDELIVERABLE:
            return DeliveryOutcome(key=key, result=SendResult.UNDELIVERABLE, reason=err.message)
        if err.type in _FAILED_ON_CHANNEL:
            reason = f"{err.type}: {err.message}"
            return DeliveryOutcome(key=key, result=SendResult.FAILED, reason=reason)
        raise
    return DeliveryOutcome(
        key=key, result=SendResult.SENT, provider_message_id=sent.provider_message_id
    )


def _listed_by_other(session: Session, row: Interaction, key: str) -> bool:
    """Whether `row` was reserved by another invoice's message of the day."""
    if row.batch_key is None:
        return False
    claim = session.get(MessageDay, row.batch_key)
    return claim is not None and claim.owner != key


# Built once (SQLAlchemy spends more building and keying a statement than running it here;
# bench/deliver.py measures it).
_LOCKED_INVOICE = select(Invoice).where(Invoice.number == bindparam("number")).with_for_update()
_INTERACTION = select(Interaction).where(Interaction.idempotency_key == bindparam("key"))
_DUE_WITH = (
    select(Invoice)
    .where(
        Invoice.debtor_id == bindparam("debtor"),
        Invoice.number != bindparam("own"),
        col(Invoice.next_message_key).is_not(None),
        col(Invoice.next_step_at) <= bindparam("until"),
        col(Invoice.stage).in_([s.value for s in ESCALATION_ORDER]),
    )
    .with_for_update()
)


def _locked_invoice(session: Session, number: str) -> Invoice | None:
    """The invoice row, locked until the reservation commits (PostgreSQL; SQLite serialises
    writers): a payment's read-model write waits for us, or we see it."""
    return session.exec(_LOCKED_INVOICE, params={"number": number}).first()


def _erased(debtor: Debtor | None) -> bool:
    """The debtor's contact data was erased (GDPR, retention ended): nobody to write to."""
    return debtor is not None and debtor.erased_at is not None


def _row(session: Session, key: str) -> Interaction | None:
    return session.exec(_INTERACTION, params={"key": key}).first()


def _due_with(session: Session, request: DeliveryRequest, own: Invoice) -> list[Invoice]:
    """The debtor's other invoices whose next step's email falls due within the gather window
    and has not gone out: listed in this message of the day."""
    until = request.planned_at + timedelta(seconds=request.gather_seconds)
    candidates = session.exec(
        _DUE_WITH, params={"debtor": request.debtor_id, "own": own.number, "until": until}
    ).all()
    keys = [c.next_message_key for c in candidates if c.next_message_key]
    if not keys:
        return []
    taken = set(
        session.exec(
            select(Interaction.idempotency_key).where(col(Interaction.idempotency_key).in_(keys))
        )
    )
    return sorted(
        (c for c in candidates if c.next_message_key not in taken), key=lambda c: c.number
    )


def _listed_with(session: Session, day: str, key: str) -> list[Invoice]:
    """The other invoices an earlier attempt listed in our message of the day, still due."""
    rows = session.exec(
        select(Interaction).where(
            Interaction.batch_key == day,
            Interaction.idempotency_key != key,
            col(Interaction.status).in_([InteractionStatus.SENDING, InteractionStatus.PENDING]),
        )
    ).all()
    invoices = []
    for row in rows:
        invoice = session.get(Invoice, row.invoice_number)
        if invoice is not None and invoice.stage in {s.value for s in ESCALATION_ORDER}:
            # The message lists it under the key it was reserved with (a detached copy: the
            # read model itself is not changed).
            session.expunge(invoice)
            invoice.next_message_key = row.idempotency_key
            invoices.append(invoice)
    return sorted(invoices, key=lambda i: i.number)


def _send_request(request: DeliveryRequest) -> SendRequest:
    message = request.message
    return SendRequest(
        invoice_number=request.invoice_number,
        step_id=message.step_id,
        channel=message.channel,
        recipient=message.recipient,
        template=message.template,
        tone=message.tone,
        planned_at=request.planned_at,
        as_of=request.as_of,
        outstanding=request.outstanding,
        paid=message.paid,
        approval_id=message.approval_id,
        target_stage=message.target_stage.value if message.target_stage else None,
        installment_amount=message.installment_amount,
        installment_due_date=message.installment_due_date,
    )
