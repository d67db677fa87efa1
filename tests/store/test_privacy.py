"""Pseudonymising a debtor's contact in the store, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from domain.lifecycle import InvoiceFacts
from domain.money import Money
from domain.playbook import load_playbook_named
from store import privacy
from store.engine import transaction
from store.invoices import add_invoice, upsert_debtor
from store.tables import Debtor, Dispute, Event, Invoice, PrivacyAudit

NAME = "Boulangerie Lefèvre"
EMAIL = "anne.lefevre@boulangerie-lefevre.example"
REASON = "Mme Anne Lefèvre conteste la livraison"


def _seed(engine: Engine, stage: str) -> None:
    facts = InvoiceFacts(
        number="F-P1",
        debtor_id="C-P1",
        amount=Money.of("980.40", "EUR"),
        issue_date=date(2020, 1, 1),
        due_date=date(2020, 3, 1),
    )
    closed_at = datetime(2020, 6, 1, tzinfo=UTC)
    with transaction(engine) as session:
        upsert_debtor(
            session, Debtor(id="C-P1", name=NAME, email=EMAIL, country="FR", language="fr")
        )
        add_invoice(session, facts, load_playbook_named("default"))
        session.flush()
        invoice = session.get(Invoice, "F-P1")
        assert invoice is not None
        invoice.stage, invoice.updated_at = stage, closed_at
        session.add(
            Dispute(
                id="D-1",
                invoice_number="F-P1",
                reason=REASON,
                opened_by="apikey:1",
                opened_at=closed_at,
                deadline=closed_at,
            )
        )
        session.add(
            Event(
                invoice_number="F-P1",
                key="dispute:D-1",
                kind="dispute_opened",
                at=closed_at,
                stage="disputed",
                summary=f"Dispute D-1 opened: {REASON}",
                detail={"reason": REASON, "contact": EMAIL},
            )
        )


def _erase(engine: Engine, now: datetime) -> privacy.Verdict:
    with transaction(engine) as session:
        debtor = session.get(Debtor, "C-P1")
        assert debtor is not None
        held = privacy.holdings(session, debtor)
        verdict = privacy.verdict(held, now, retention_days=5 * 365 + 1)
        if verdict.erasable:
            privacy.pseudonymise(session, held, "system:retention")
        return verdict


def test_a_closed_debtor_is_pseudonymised_when_its_retention_ends(any_engine: Engine) -> None:
    _seed(any_engine, "paid")
    # Paid on 2020-06-01: 1826 days (five years, 2024 a leap year: 4 x 365 + 366) end on
    # 2025-06-01 at the same hour.
    assert not _erase(any_engine, datetime(2025, 5, 31, 23, 59, tzinfo=UTC)).erasable

    assert _erase(any_engine, datetime(2025, 6, 1, tzinfo=UTC)).erasable

    with Session(any_engine) as session:
        debtor = session.get(Debtor, "C-P1")
        assert debtor is not None and debtor.erased_at is not None
        assert debtor.name.startswith("P-") and debtor.email.endswith("@erased.invalid")
        event = session.exec(select(Event).where(Event.key == "dispute:D-1")).one()
        dispute = session.get(Dispute, "D-1")
        invoice = session.get(Invoice, "F-P1")
        actions = [a.action for a in session.exec(select(PrivacyAudit)).all()]
    held = f"{event.summary} {event.detail} {dispute}"
    assert "Lefèvre" not in held and EMAIL not in held
    assert event.summary.startswith("Dispute D-1 opened: ")
    assert invoice is not None and str(invoice.amount) == "980.4000"
    assert actions == ["erased"]
    # Erased once: never again.
    assert _erase(any_engine, datetime(2030, 1, 1, tzinfo=UTC)).why == privacy.ALREADY_ERASED


def test_nothing_is_erased_while_restricted_or_still_collected(any_engine: Engine) -> None:
    _seed(any_engine, "formal_notice")
    later = datetime(2040, 1, 1, tzinfo=UTC)
    assert _erase(any_engine, later).why == "an invoice is still being collected"
    with transaction(any_engine) as session:
        invoice = session.get(Invoice, "F-P1")
        assert invoice is not None
        invoice.stage = "handed_off"
        session.add(invoice)
    # Handed off, the file is still with the legal partner until its end is recorded.
    assert _erase(any_engine, later).why == "an invoice is still being collected"
    with transaction(any_engine) as session:
        session.add(
            Event(
                invoice_number="F-P1",
                key="closed",
                kind="closed",
                at=datetime(2020, 6, 1, tzinfo=UTC),
                stage="handed_off",
                summary="Collection ended: handed_off, legal file settled",
            )
        )
        privacy.restrict(
            session, "C-P1", reason="injonction de payer", legal_claim=True, by="apikey:2"
        )

    assert _erase(any_engine, later).why == privacy.RESTRICTED
    with transaction(any_engine) as session:
        assert privacy.lift(session, "C-P1", "apikey:3")
    assert _erase(any_engine, later + timedelta(days=1)).erasable
