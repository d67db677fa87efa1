"""Limitation (Code de commerce L110-4): 5 years between traders, from the due date, started
afresh by an acknowledgment of the debt (Civil code 2240), never by a formal notice."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from domain.collection.records import EventKind
from domain.collection.state import RULES_LATEST, CollectionState
from domain.lifecycle import PaymentInput
from domain.money import Money
from domain.playbook import load_playbook_named
from tests.domain.collection.driver import Run, start

# Handed over on Monday 2 March 2026, 08:00 UTC.
NOW = datetime(2026, 3, 2, 8, tzinfo=UTC)


def skipped(run: Run) -> dict[str, str]:
    events = [e for e in run.recorded if e.kind == EventKind.STEP_SKIPPED]
    return {e.key.removeprefix("skip:"): e.summary for e in events}


def test_a_time_barred_claim_gets_no_formal_notice() -> None:
    # Due 1 February 2021: limitation date 1 February 2026 (+5 years), barred from the 2nd,
    # before this hand-over. Nothing acknowledged the debt since.
    run = start(load_playbook_named("default"), date(2021, 2, 1), NOW)
    run.advance(timedelta(days=60))
    templates = [s.send.message.template for s in run.sent]
    assert "formal_notice" not in templates
    assert "the last day to act on it was 2026-02-01" in skipped(run)["formal_notice"]


def test_an_acknowledgment_starts_the_five_years_again() -> None:
    # The same invoice, but the debtor paid 100 € on 10 June 2022: a part payment
    # acknowledges the whole debt, so limitation runs to 10 June 2027.
    run = start(load_playbook_named("default"), date(2021, 2, 1), NOW)
    run.command(
        PaymentInput(
            reference="VIR-2022", amount=Money.of("100.00", "EUR"), received_on=date(2022, 6, 10)
        )
    )
    run.advance(timedelta(days=60))
    templates = [s.send.message.template for s in run.sent]
    assert "formal_notice" in templates
    assert "formal_notice" not in skipped(run)


def test_a_new_invoice_starts_on_the_newest_rules_and_an_old_state_keeps_its_own() -> None:
    # Histories recorded before the edition existed carry no `rules`: they replay on edition 1.
    state = start(load_playbook_named("default"), date(2026, 4, 1), NOW).state
    assert state.rules == RULES_LATEST
    carried = state.model_dump(mode="json")
    del carried["rules"]
    assert CollectionState.model_validate(carried).rules == 1
