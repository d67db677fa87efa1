"""Segments, payments, contractual rates, late-but-paid and limitation, worked by hand.

Every expected figure is computed in the comment next to it; none comes from the code under
test. Rates (percent; sources in tests/domain/test_law.py and domain/rates.csv):

    half-year  ECB refi  legal "autres cas"  ECB + 10  3 × legal
    2023-H1    2.50      2.06                12.50      6.18
    2023-H2    4.00      4.22                14.00     12.66
    2024-H1    4.50      5.07                14.50     15.21
    2024-H2    4.25      4.92                14.25     14.76
    2025-H1    3.15      3.71                13.15     11.13
    2025-H2    2.15      2.76                12.15      8.28

Interest = Σ principal × rate × days / 36 500 (actual/365), rounded once, half-up.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from domain.law import (
    Acknowledgment,
    AcknowledgmentKind,
    InterestClause,
    InterestRegime,
    NoRateTableError,
    Paid,
    RateBasis,
    RateBelowFloorError,
    check_contractual_rate,
    interest_regime,
    interest_segments,
    late_payment_costs,
    late_payment_interest,
    limitation_status,
    statement_of_amounts,
)
from domain.money import Money


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def paid(day: date, amount: str) -> Paid:
    return Paid(received_on=day, amount=eur(amount))


# --- Segments ---------------------------------------------------------------------------


def test_one_half_year_is_one_segment_with_its_basis() -> None:
    # Due 31 Mar 2025, until 30 Apr 2025: 1-30 April = 30 days at 3.15 + 10 = 13.15 %.
    # 10 000 × 13.15 × 30 / 36 500 = 3 945 000 / 36 500 = 108.0821… → 108.08
    segments = interest_segments(eur("10000"), date(2025, 3, 31), date(2025, 4, 30))
    assert len(segments) == 1
    only = segments[0]
    assert (only.start, only.end, only.days, only.rate) == (
        date(2025, 4, 1),
        date(2025, 4, 30),
        30,
        Decimal("13.15"),
    )
    assert only.basis is RateBasis.ECB_PLUS_10 and only.clause is None
    assert late_payment_interest(eur("10000"), date(2025, 3, 31), date(2025, 4, 30)) == eur(
        "108.08"
    )


def test_across_two_boundaries_three_segments() -> None:
    # Due 15 Jun 2024, until 15 Jan 2025:
    #   16-30 Jun 2024 = 15 days at 14.50; 1 Jul-31 Dec 2024 = 184 days at 14.25;
    #   1-15 Jan 2025 = 15 days at 13.15.
    #   14.50 × 15 = 217.50; 14.25 × 184 = 2 622.00; 13.15 × 15 = 197.25; Σ = 3 036.75
    #   10 000 × 3 036.75 / 36 500 = 30 367 500 / 36 500 = 831.9863… → 831.99
    segments = interest_segments(eur("10000"), date(2024, 6, 15), date(2025, 1, 15))
    assert [(s.start, s.end, s.days, s.rate, s.half_year) for s in segments] == [
        (date(2024, 6, 16), date(2024, 6, 30), 15, Decimal("14.50"), "2024-H1"),
        (date(2024, 7, 1), date(2024, 12, 31), 184, Decimal("14.25"), "2024-H2"),
        (date(2025, 1, 1), date(2025, 1, 15), 15, Decimal("13.15"), "2025-H1"),
    ]
    assert late_payment_interest(eur("10000"), date(2024, 6, 15), date(2025, 1, 15)) == eur(
        "831.99"
    )


def test_partial_payments_end_the_interest_on_their_part_on_their_day() -> None:
    # 10 000 due 31 Mar 2025; 4 000 received 30 Apr 2025, 6 000 received 30 Jul 2025.
    #   10 000 from 1 Apr to 30 Apr = 30 days at 13.15 → 10 000 × 13.15 × 30 = 3 945 000
    #    6 000 from 1 May to 30 Jun = 61 days at 13.15 →  6 000 × 13.15 × 61 = 4 812 900
    #    6 000 from 1 Jul to 30 Jul = 30 days at 12.15 →  6 000 × 12.15 × 30 = 2 187 000
    #   Σ = 10 944 900 / 36 500 = 299.8603… → 299.86
    payments = [paid(date(2025, 7, 30), "6000"), paid(date(2025, 4, 30), "4000")]
    segments = interest_segments(
        eur("10000"), date(2025, 3, 31), date(2025, 12, 31), payments=payments
    )
    assert [(s.principal, s.start, s.end, s.days) for s in segments] == [
        (eur("10000"), date(2025, 4, 1), date(2025, 4, 30), 30),
        (eur("6000"), date(2025, 5, 1), date(2025, 6, 30), 61),
        (eur("6000"), date(2025, 7, 1), date(2025, 7, 30), 30),
    ]
    statement = statement_of_amounts(
        eur("10000"), date(2025, 3, 31), date(2025, 12, 31), payments=payments
    )
    assert statement.interest == eur("299.86")
    assert statement.principal == eur("0")
    # 0 + 299.86 + 40 = 339.86: the paid principal no longer counts, the indemnity does.
    assert statement.total == eur("339.86")


def test_a_payment_before_the_due_date_lowers_the_principal_from_the_start() -> None:
    # 1 000 due 31 Mar 2025, 400 paid 15 Mar: 600 late for 1-30 April at 13.15 %.
    # 600 × 13.15 × 30 / 36 500 = 236 700 / 36 500 = 6.4849… → 6.48
    interest = late_payment_interest(
        eur("1000"), date(2025, 3, 31), date(2025, 4, 30), payments=[paid(date(2025, 3, 15), "400")]
    )
    assert interest == eur("6.48")


# --- Contractual rates (L441-10 II) ------------------------------------------------------


def test_contract_at_three_times_the_legal_rate() -> None:
    # "3 × taux légal", 30 days in 2025-H1: 3 × 3.71 = 11.13 %.
    # 10 000 × 11.13 × 30 / 36 500 = 3 339 000 / 36 500 = 91.4794… → 91.48
    clause = InterestClause.parse("3 × taux légal")
    segments = interest_segments(eur("10000"), date(2025, 3, 31), date(2025, 4, 30), clause=clause)
    assert segments[0].rate == Decimal("11.13")
    assert segments[0].basis is RateBasis.CONTRACT
    assert segments[0].clause == "3x_legal"
    assert late_payment_interest(
        eur("10000"), date(2025, 3, 31), date(2025, 4, 30), clause=clause
    ) == eur("91.48")


def test_fixed_contract_rate_and_the_floor_when_the_legal_rate_rises() -> None:
    # 12 % fixed, due 31 Dec 2022: accepted (2023-H1 floor 3 × 2.06 = 6.18). Until 31 Jul 2023:
    #   1 Jan-30 Jun 2023 = 181 days at 12.00 (the contract)
    #   1-31 Jul 2023 = 31 days at 12.66 (3 × 4.22: the clause cannot go below it)
    #   12 × 181 = 2 172.00; 12.66 × 31 = 392.46; Σ = 2 564.46
    #   10 000 × 2 564.46 / 36 500 = 25 644 600 / 36 500 = 702.5917… → 702.59
    clause = InterestClause.parse("12.00")
    check_contractual_rate(clause, date(2022, 12, 31))
    segments = interest_segments(eur("10000"), date(2022, 12, 31), date(2023, 7, 31), clause=clause)
    assert [(s.days, s.rate, s.basis) for s in segments] == [
        (181, Decimal("12.00"), RateBasis.CONTRACT),
        (31, Decimal("12.66"), RateBasis.LEGAL_FLOOR),
    ]
    assert late_payment_interest(
        eur("10000"), date(2022, 12, 31), date(2023, 7, 31), clause=clause
    ) == eur("702.59")


def test_a_fixed_rate_under_the_floor_is_refused_saying_why() -> None:
    # Interest would start 1 Feb 2024 (2024-H1): 3 × 5.07 = 15.21 % > 10 %.
    with pytest.raises(RateBelowFloorError, match=r"10\.00 % is below .*2024-H1.*15\.21 %"):
        check_contractual_rate(InterestClause.parse("10.00"), date(2024, 1, 31))
    with pytest.raises(RateBelowFloorError, match="2 × the legal interest rate"):
        check_contractual_rate(InterestClause.parse("2x_legal"), date(2025, 3, 31))
    # 3 × 3.71 = 11.13 ≤ 11.13: exactly the floor is allowed.
    check_contractual_rate(InterestClause.parse("11.13"), date(2025, 3, 31))


@pytest.mark.parametrize("text", ["three times", "3x", "-5", "120", "3 x euribor"])
def test_unreadable_clauses_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="contractual rate"):
        InterestClause.parse(text)


# --- Indemnity, edges, amounts ----------------------------------------------------------


def test_the_indemnity_is_40_euros_once_per_invoice_whatever_the_reminders() -> None:
    # Day 30: 108.08 interest (first test); day 61 (to 31 May): 10 000 × 13.15 × 61 / 36 500
    # = 8 021 500 / 36 500 = 219.7671… → 219.77. The indemnity stays 40, never 80.
    first = statement_of_amounts(eur("10000"), date(2025, 3, 31), date(2025, 4, 30))
    later = statement_of_amounts(eur("10000"), date(2025, 3, 31), date(2025, 5, 31))
    assert first.indemnity == later.indemnity == eur("40")
    assert first.total == eur("10148.08")  # 10 000 + 108.08 + 40
    assert later.total == eur("10259.77")  # 10 000 + 219.77 + 40


def test_zero_and_one_day() -> None:
    # On the due date: nothing. One day: 10 000 × 13.15 / 36 500 = 3.6027 → 3.60.
    on_time = statement_of_amounts(eur("10000"), date(2025, 3, 31), date(2025, 3, 31))
    assert (on_time.interest, on_time.indemnity, on_time.segments) == (eur("0"), eur("0"), ())
    one = statement_of_amounts(eur("10000"), date(2025, 3, 31), date(2025, 4, 1))
    assert one.interest == eur("3.60") and one.segments[0].days == 1


def test_a_million_euros() -> None:
    # 1 000 000.00 × 13.15 × 30 / 36 500 = 394 500 000 / 36 500 = 10 808.2191… → 10 808.22
    interest = late_payment_interest(eur("1000000.00"), date(2025, 3, 31), date(2025, 4, 30))
    assert interest == eur("10808.22")


def test_one_cent() -> None:
    # 0.01 × 13.15 × 30 / 36 500 = 3.945 / 36 500 = 0.000108… → 0.00; total 0.01 + 40 = 40.01
    statement = statement_of_amounts(eur("0.01"), date(2025, 3, 31), date(2025, 4, 30))
    assert statement.interest == eur("0.00")
    assert statement.total == eur("40.01")


# --- EU debtors (Directive 2011/7/EU) -----------------------------------------------------


def test_regime_follows_the_debtor_country() -> None:
    assert interest_regime("FR") is InterestRegime.FRANCE
    assert interest_regime("US") is InterestRegime.FRANCE  # French law of the creditor
    assert interest_regime("DE") is InterestRegime.EU_DIRECTIVE
    assert interest_regime("PL") is InterestRegime.EU_DIRECTIVE


def test_a_german_debtor_owes_the_ecb_rate_plus_8() -> None:
    # 30 days in 2025-H1 at 3.15 + 8 = 11.15 %: 10 000 × 11.15 × 30 / 36 500
    # = 3 345 000 / 36 500 = 91.6438… → 91.64
    statement = statement_of_amounts(
        eur("10000"),
        date(2025, 3, 31),
        date(2025, 4, 30),
        InterestRegime.EU_DIRECTIVE,
        country="DE",
    )
    assert statement.interest == eur("91.64")
    assert statement.segments[0].basis is RateBasis.EU_REFERENCE_PLUS_8


def test_outside_the_euro_area_there_is_no_table_and_no_guess() -> None:
    with pytest.raises(NoRateTableError, match=r"PL.*national central bank"):
        statement_of_amounts(
            eur("1000"),
            date(2025, 3, 31),
            date(2025, 4, 30),
            InterestRegime.EU_DIRECTIVE,
            country="PL",
        )
    # Bulgaria joined the euro on 1 Jan 2026: 2025 is refused, 2026 uses 2.15 + 8 = 10.15.
    with pytest.raises(NoRateTableError, match="BG"):
        interest_segments(
            eur("1000"),
            date(2025, 11, 30),
            date(2025, 12, 31),
            InterestRegime.EU_DIRECTIVE,
            country="BG",
        )
    segments = interest_segments(
        eur("1000"), date(2026, 1, 31), date(2026, 2, 28), InterestRegime.EU_DIRECTIVE, country="BG"
    )
    assert segments[0].rate == Decimal("10.15")


# --- Late but paid ---------------------------------------------------------------------------


def test_paid_late_in_two_parts_owes_interest_to_each_payment_and_40_euros() -> None:
    # Same payments as above: interest 299.86; + 40 = 339.86; last payment 30 Jul 2025,
    # 30 (Apr) + 31 (May) + 30 (Jun) + 30 (Jul) = 121 days after 31 Mar.
    costs = late_payment_costs(
        eur("10000"),
        date(2025, 3, 31),
        [paid(date(2025, 4, 30), "4000"), paid(date(2025, 7, 30), "6000")],
    )
    assert costs is not None
    assert (costs.interest, costs.indemnity, costs.total) == (
        eur("299.86"),
        eur("40"),
        eur("339.86"),
    )
    assert (costs.paid_on, costs.days_late, len(costs.segments)) == (date(2025, 7, 30), 121, 3)
    assert not costs.provisional


def test_paid_on_time_owes_nothing_and_unpaid_is_refused() -> None:
    assert (
        late_payment_costs(eur("100"), date(2025, 3, 31), [paid(date(2025, 3, 31), "100")]) is None
    )
    with pytest.raises(ValueError, match="do not settle"):
        late_payment_costs(eur("100"), date(2025, 3, 31), [paid(date(2025, 4, 30), "60")])


def test_paid_late_in_dollars_keeps_the_euro_indemnity_apart() -> None:
    # 5 000 USD, 30 days at 13.15 %: 5 000 × 13.15 × 30 / 36 500 = 1 972 500 / 36 500
    # = 54.0411 → 54.04 USD; the 40 EUR is its own line.
    costs = late_payment_costs(
        Money.of("5000", "USD"),
        date(2025, 3, 31),
        [Paid(received_on=date(2025, 4, 30), amount=Money.of("5000", "USD"))],
    )
    assert costs is not None
    assert costs.total == Money.of("54.04", "USD") and not costs.indemnity_in_total


# --- Limitation (L110-4, Civil code 2240) -------------------------------------------------


def test_limitation_status_warns_six_months_before_and_bars_the_day_after() -> None:
    # Due 31 Mar 2020 → limitation 31 Mar 2025; warned from 30 Sep 2024 (31 Sep does not exist).
    due = date(2020, 3, 31)
    assert limitation_status(due, [], date(2024, 9, 29)).warn is False
    status = limitation_status(due, [], date(2024, 9, 30))
    assert (status.limitation_date, status.warn_from, status.warn) == (
        date(2025, 3, 31),
        date(2024, 9, 30),
        True,
    )
    assert limitation_status(due, [], date(2025, 3, 31)).time_barred is False
    barred = limitation_status(due, [], date(2025, 4, 1))
    assert barred.time_barred and not barred.warn


def test_an_acknowledgment_restarts_limitation_and_a_formal_notice_does_not() -> None:
    # A part payment on 15 Jun 2023 acknowledges the debt: 5 new years to 15 Jun 2028. A formal
    # notice is not an acknowledgment, so it is never passed here and changes nothing.
    due = date(2020, 3, 31)
    acknowledged = [Acknowledgment(on=date(2023, 6, 15), kind=AcknowledgmentKind.PAYMENT)]
    status = limitation_status(due, acknowledged, date(2025, 4, 1))
    assert status.limitation_date == date(2028, 6, 15)
    assert not status.time_barred
