"""Late-payment costs of an invoice partly credited: the credit note's part was never owed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from domain.collection import machine
from domain.holds import DisputeOpen, DisputeOutcome, DisputeResolution
from domain.lifecycle import PaymentInput
from domain.money import Money
from domain.playbook import load_playbook_named
from tests.domain.collection.driver import start

NOW = datetime(2026, 3, 2, 8, tzinfo=UTC)


def test_the_costs_are_asked_on_the_amount_less_its_credit_notes() -> None:
    # 1,200 € due 27 February 2026; a dispute upheld with a 200 € credit note (AV-18); the
    # debtor then pays the 1,000 € left, late: the costs run on 1,000 €, which the payment
    # settles (asked on 1,200 €, the law refuses: 1,000 € does not settle 1,200 €).
    run = start(load_playbook_named("default"), date(2026, 2, 27), NOW)
    run.command(DisputeOpen(dispute_id="D-1", reason="two units missing", opened_by="erp"))
    run.command(
        DisputeResolution(
            dispute_id="D-1",
            outcome=DisputeOutcome.UPHELD,
            credit=Money.of("200.00", "EUR"),
            credit_note_reference="AV-18",
            resolved_by="claire",
        )
    )
    run.advance(timedelta(days=10))
    paid = machine.apply(
        run.state,
        PaymentInput(
            reference="VIR-1", amount=Money.of("1000.00", "EUR"), received_on=date(2026, 3, 12)
        ),
        run.now,
    )

    assert isinstance(paid, machine.Transition)
    [ask] = [e for e in paid.effects if isinstance(e, machine.ComputeLateCosts)]
    assert ask.owed == Money.of("1000.00", "EUR")
    assert [p.amount for p in ask.payments] == [Money.of("1000.00", "EUR")]
