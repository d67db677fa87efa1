"""The store keeps each fact once, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from activities.progress import (
    ApprovalChange,
    EventKind,
    PaymentChange,
    ProgressActivities,
    ProgressRecord,
)
from domain.lifecycle import (
    ApprovalStatus,
    InvoiceFacts,
    InvoiceStatus,
    PaymentResult,
    Stage,
)
from domain.money import Money
from domain.playbook import load_playbook_named
from store.debtors import open_invoice_numbers
from store.engine import transaction
from store.invoices import add_invoice, approvals, events_of, payments_of, upsert_debtor
from store.migrate import upgrade
from store.tables import Debtor, Event, Interaction, Invoice

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)


def seed(engine: Engine, number: str = "F-1") -> InvoiceFacts:
    facts = InvoiceFacts(
        number=number,
        debtor_id="C-1",
        amount=Money.of("1500.50", "EUR"),
        issue_date=date(2026, 1, 1),
        due_date=date(2026, 3, 1),
    )
    with transaction(engine) as session:
        upsert_debtor(
            session,
            Debtor(id="C-1", name="ACME", email="ap@acme.example", country="FR", language="fr"),
        )
        add_invoice(session, facts, load_playbook_named("default"))
    return facts


def status(facts: InvoiceFacts, revision: int, stage: Stage, outstanding: str) -> InvoiceStatus:
    return InvoiceStatus(
        number=facts.number,
        stage=stage,
        outstanding=Money.of(outstanding, "EUR"),
        revision=revision,
    )


def test_migrations_create_every_table_and_run_twice(any_engine: Engine) -> None:
    upgrade(any_engine)  # a second upgrade is a no-op, as at every start
    tables = set(inspect(any_engine).get_table_names())
    assert {"debtor", "invoice", "payment", "interaction", "approval", "event", "api_key"} <= tables


def test_amounts_keep_their_cents_exactly(any_engine: Engine) -> None:
    seed(any_engine)
    with transaction(any_engine) as session:
        invoice = session.get(Invoice, "F-1")
        assert invoice is not None
        assert invoice.amount == Decimal("1500.50")
        assert invoice.outstanding == Decimal("1500.50")


def test_idempotency_key_is_unique(any_engine: Engine) -> None:
    seed(any_engine)

    def row() -> Interaction:
        return Interaction(
            idempotency_key="F-1:reminder_1:email",
            invoice_number="F-1",
            step_id="reminder_1",
            channel="email",
            recipient="debtor",
            template="reminder",
        )

    with transaction(any_engine) as session:
        session.add(row())
    with pytest.raises(IntegrityError), transaction(any_engine) as session:
        session.add(row())


def test_a_retried_progress_record_changes_nothing(any_engine: Engine) -> None:
    facts = seed(any_engine)
    activities = ProgressActivities(any_engine)
    result = PaymentResult(
        reference="VIR-9",
        amount=Money.of("500.50", "EUR"),
        outstanding=Money.of("1000.00", "EUR"),
        stage=Stage.OVERDUE,
    )
    record = ProgressRecord(
        invoice_number="F-1",
        key="payment:VIR-9",
        kind=EventKind.PAYMENT,
        at=T0,
        summary="Payment VIR-9",
        status=status(facts, 3, Stage.OVERDUE, "1000.00"),
        payment=PaymentChange(result=result),
    )
    assert activities.record_progress(record) is True
    assert activities.record_progress(record) is False  # the retry
    with transaction(any_engine) as session:
        assert [p.reference for p in payments_of(session, "F-1")] == ["VIR-9"]
        assert len(events_of(session, "F-1")) == 1
        invoice = session.get(Invoice, "F-1")
        assert invoice is not None and invoice.outstanding == Decimal("1000.00")


def test_an_older_snapshot_never_overwrites_a_newer_one(any_engine: Engine) -> None:
    facts = seed(any_engine)
    activities = ProgressActivities(any_engine)

    def record(key: str, revision: int, stage: Stage, outstanding: str) -> ProgressRecord:
        return ProgressRecord(
            invoice_number="F-1",
            key=key,
            kind=EventKind.STEP_DONE,
            at=T0,
            summary=key,
            status=status(facts, revision, stage, outstanding),
        )

    activities.record_progress(record("paid", 7, Stage.PAID, "0"))
    # A slower activity scheduled before the payment completes after it.
    activities.record_progress(record("step", 6, Stage.OVERDUE, "1500.50"))
    with transaction(any_engine) as session:
        invoice = session.get(Invoice, "F-1")
        assert invoice is not None
        assert (invoice.stage, invoice.outstanding) == ("paid", Decimal("0"))


def test_approval_lifecycle_is_recorded(any_engine: Engine) -> None:
    facts = seed(any_engine)
    activities = ProgressActivities(any_engine)
    change = ApprovalChange(
        approval_id="F-1:mediation:1",
        step_id="mediation",
        target_stage="mediation",
        status=ApprovalStatus.PENDING,
        at=T0,
    )
    activities.record_progress(
        ProgressRecord(
            invoice_number="F-1",
            key="approval:F-1:mediation:1",
            kind=EventKind.APPROVAL_REQUESTED,
            at=T0,
            summary="asked",
            status=status(facts, 1, Stage.FORMAL_NOTICE, "1500.50"),
            approval=change,
        )
    )
    activities.record_progress(
        ProgressRecord(
            invoice_number="F-1",
            key="approval:F-1:mediation:1:reminder1",
            kind=EventKind.APPROVAL_REMINDER,
            at=T0 + timedelta(days=2),
            summary="reminded",
            status=status(facts, 2, Stage.FORMAL_NOTICE, "1500.50"),
            approval=change,
        )
    )
    with transaction(any_engine) as session:
        (pending,) = approvals(session, "pending")
        assert pending.reminders_sent == 1
    activities.record_progress(
        ProgressRecord(
            invoice_number="F-1",
            key="approval:F-1:mediation:1:decided",
            kind=EventKind.APPROVAL_DECIDED,
            at=T0 + timedelta(days=3),
            summary="approved",
            status=status(facts, 3, Stage.MEDIATION, "1500.50"),
            approval=change.model_copy(
                update={
                    "status": ApprovalStatus.APPROVED,
                    "decided_by": "claire",
                    "comment": "go",
                    "at": T0 + timedelta(days=3),
                }
            ),
        )
    )
    with transaction(any_engine) as session:
        assert approvals(session, "pending") == []
        (decided,) = approvals(session, "approved")
        assert (decided.decided_by, decided.comment) == ("claire", "go")
        assert decided.requested_at == T0


def test_a_corrected_contact_reaches_an_open_hand_off_but_no_ended_invoice(
    any_engine: Engine,
) -> None:
    # F-1 is with the legal partner (rules 2: no `closed` event yet), F-2 was handed off and
    # its file settled (`closed` recorded), F-3 is paid, F-4 is still being reminded.
    for number in ("F-1", "F-2", "F-3", "F-4"):
        seed(any_engine, number)
    stages = {"F-1": "handed_off", "F-2": "handed_off", "F-3": "paid", "F-4": "overdue"}
    with transaction(any_engine) as session:
        for number, stage in stages.items():
            invoice = session.get(Invoice, number)
            assert invoice is not None
            invoice.stage = stage
        session.add(
            Event(
                invoice_number="F-2",
                key="closed",
                kind=EventKind.CLOSED.value,
                stage="handed_off",
                summary="Collection ended: handed_off, legal file settled",
                at=T0,
            )
        )
    with transaction(any_engine) as session:
        assert sorted(open_invoice_numbers(session, "C-1")) == ["F-1", "F-4"]
