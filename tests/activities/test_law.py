"""The `late_payment_costs` activity the workflow calls when an invoice is paid late."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.law import LateCostsRequest, LawActivities
from config import Settings
from contracts.errors import ErrorType
from domain.law import Paid
from domain.money import Money


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def request(**changes: object) -> LateCostsRequest:
    values: dict[str, object] = {
        "invoice_number": "F-1",
        "amount": eur("10000"),
        "due_date": date(2025, 3, 31),
        "payments": [
            Paid(received_on=date(2025, 4, 30), amount=eur("4000")),
            Paid(received_on=date(2025, 7, 30), amount=eur("6000")),
        ],
    }
    values.update(changes)
    return LateCostsRequest.model_validate(values)


def test_paid_late_in_two_parts(tmp_path: Path) -> None:
    # Worked in tests/domain/test_late_payment.py: 299.86 € interest + 40 € = 339.86 €.
    acts = LawActivities(Settings(_env_file=None, data_dir=tmp_path))
    costs = ActivityEnvironment().run(acts.late_payment_costs, request())
    assert costs is not None
    assert (costs.interest, costs.total) == (eur("299.86"), eur("339.86"))


def test_the_creditors_terms_of_sale_apply_when_the_invoice_states_none(tmp_path: Path) -> None:
    # 3 × legal rate: 3 × 3.71 = 11.13 % (2025-H1) for 1-30 April on 10 000, then
    # 3 × 2.76 = 8.28 % (2025-H2) does not arise: paid in full on 30 April.
    # 10 000 × 11.13 × 30 / 36 500 = 3 339 000 / 36 500 = 91.4794… → 91.48; + 40 = 131.48
    settings = Settings(_env_file=None, data_dir=tmp_path, contractual_interest_rate="3x_legal")
    paid = [Paid(received_on=date(2025, 4, 30), amount=eur("10000"))]
    costs = ActivityEnvironment().run(
        LawActivities(settings).late_payment_costs, request(payments=paid)
    )
    assert costs is not None and costs.total == eur("131.48")
    assert costs.segments[0].clause == "3x_legal"


def test_no_table_for_the_debtors_central_bank_is_a_final_refusal(tmp_path: Path) -> None:
    acts = LawActivities(Settings(_env_file=None, data_dir=tmp_path))
    with pytest.raises(ApplicationError) as refused:
        ActivityEnvironment().run(acts.late_payment_costs, request(country="PL"))
    assert refused.value.type == ErrorType.RATE_UNKNOWN
    assert refused.value.non_retryable
    assert "PL" in str(refused.value)
