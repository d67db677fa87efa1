"""Messages as sent and an invoice's contractual rate, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy.engine import Engine

from domain.collection.records import EventKind, EventRecord
from domain.law import InterestSegment, LatePaymentCosts, RateBasis
from domain.lifecycle import InvoiceFacts, InvoiceStatus, Stage
from domain.money import Money
from domain.playbook import load_playbook_named
from store.engine import transaction
from store.invoices import add_invoice, fingerprint
from store.messages import record_sent_message, sent_messages_of
from store.tables import Interaction, Invoice
from store.timeline import record_snapshot
from tests.store.test_store import seed


def test_a_message_as_sent_is_kept_once_per_interaction(any_engine: Engine) -> None:
    seed(any_engine)
    with transaction(any_engine) as session:
        session.add(
            Interaction(
                idempotency_key="F-1:formal_notice:email",
                invoice_number="F-1",
                step_id="formal_notice",
                channel="email",
                recipient="debtor",
                template="formal_notice",
            )
        )
    sent = {
        "interaction_keys": ["F-1:formal_notice:email"],
        "to_email": "ap@acme.example",
        "to_name": "ACME",
        "subject": "Mise en demeure",
        "text": "Madame, Monsieur, … 1 500,50 €",
        "html": "<p>Madame, Monsieur,</p>",
        "provider": "outbox",
        "provider_message_id": "m-1",
        "sent_at": datetime(2026, 4, 1, 9, 0, tzinfo=UTC),
    }
    for _ in range(2):  # a retried activity records it again: nothing changes
        with transaction(any_engine) as session:
            record_sent_message(session, **sent)  # type: ignore[arg-type]
    with transaction(any_engine) as session:
        [copy] = sent_messages_of(session, "F-1")
        assert (copy.channel, copy.recipient, copy.text) == ("email", "debtor", sent["text"])
        assert len(copy.content_hash) == 64


def test_an_invoice_keeps_its_contractual_rate_and_older_digests_do_not_change(
    any_engine: Engine,
) -> None:
    seed(any_engine)
    facts = InvoiceFacts(
        number="F-2",
        debtor_id="C-1",
        amount=Money.of("100", "EUR"),
        issue_date=date(2026, 1, 1),
        due_date=date(2026, 3, 1),
        interest_clause="3x_legal",
    )
    with transaction(any_engine) as session:
        add_invoice(session, facts, load_playbook_named("default"))
    with transaction(any_engine) as session:
        stored = session.get(Invoice, "F-2")
        assert stored is not None and stored.interest_clause == "3x_legal"
    # An invoice without a clause keeps the digest it had before the field existed, so a
    # replayed hand-over of an invoice recorded earlier is still recognised.
    without = facts.model_copy(update={"interest_clause": None})
    before = {k: v for k, v in without.model_dump(mode="json").items() if k != "interest_clause"}
    digest_before = hashlib.sha256(
        json.dumps(before, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert fingerprint(without) == digest_before
    assert fingerprint(facts) != digest_before


def test_the_read_model_keeps_the_limitation_date_and_the_late_payment_costs(
    any_engine: Engine,
) -> None:
    seed(any_engine)
    # 1 500,50 € due 31 March 2025, paid on 10 April 2025: 10 days at 13.15 % (2025-H1, ECB
    # 3.15 % + 10): 1 500.50 × 13.15 × 10 / 36 500 = 5.4059… → 5.41 €; + 40 € = 45.41 €.
    costs = LatePaymentCosts(
        due_date=date(2025, 3, 31),
        paid_on=date(2025, 4, 10),
        days_late=10,
        amount=Money.of("1500.50", "EUR"),
        segments=(
            InterestSegment(
                principal=Money.of("1500.50", "EUR"),
                start=date(2025, 4, 1),
                end=date(2025, 4, 10),
                days=10,
                rate=Decimal("13.15"),
                basis=RateBasis.ECB_PLUS_10,
                half_year="2025-H1",
                provisional=False,
            ),
        ),
        interest=Money.of("5.41", "EUR"),
        indemnity=Money.of("40.00", "EUR"),
        total=Money.of("45.41", "EUR"),
        indemnity_in_total=True,
        provisional=False,
    )
    record = EventRecord(
        key="late_costs",
        kind=EventKind.LATE_PAYMENT_COSTS,
        at=datetime(2025, 4, 10, 9, tzinfo=UTC),
        summary="Paid 10 days late",
        late_costs=costs,
    )
    status = InvoiceStatus(
        number="F-1",
        stage=Stage.OVERDUE,
        outstanding=Money.of("1500.50", "EUR"),
        revision=3,
        limitation_date=date(2030, 3, 31),
    )
    with transaction(any_engine) as session:
        record_snapshot(session, "F-1", [record], status)
    with transaction(any_engine) as session:
        invoice = session.get(Invoice, "F-1")
        assert invoice is not None
        assert invoice.limitation_date == date(2030, 3, 31)
        assert invoice.late_payment_costs is not None
        assert LatePaymentCosts.model_validate(invoice.late_payment_costs) == costs
