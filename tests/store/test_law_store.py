"""Messages as sent and an invoice's contractual rate, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime

from sqlalchemy.engine import Engine

from domain.lifecycle import InvoiceFacts
from domain.money import Money
from domain.playbook import load_playbook_named
from store.engine import transaction
from store.invoices import add_invoice, fingerprint
from store.messages import record_sent_message, sent_messages_of
from store.tables import Interaction, Invoice
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
