"""The late-payment law, checked against sums a credit controller can redo on paper.

Every expected amount is worked out by hand in the comment next to it; none comes from the
code under test. Rates used (percent, per half-year), with their public sources:

    half-year  ECB refi  legal "autres cas"  FRANCE = ECB + 10  3 × legal  EU = ECB + 8
    2019-H1    0.00      0.86                10.00              2.58       8.00
    2022-H2    0.00      0.77                10.00              2.31       8.00
    2023-H1    2.50      2.06                12.50              6.18      10.50
    2023-H2    4.00      4.22                14.00             12.66      12.00
    2024-H1    4.50      5.07                14.50             15.21      12.50
    2024-H2    4.25      4.92                14.25             14.76      12.25
    2025-H1    3.15      3.71                13.15             11.13      11.15
    2025-H2    2.15      2.76                12.15              8.28      10.15
    2026-H1    2.15      2.62                12.15              7.86      10.15

ECB: rate in force on 1 January / 1 July, from the table of ECB key rates published by Banka
Slovenije (decisions effective 21 Dec 2022: 2.50; 21 Jun 2023: 4.00; 20 Sep 2023: 4.50;
12 Jun 2024: 4.25; 18 Dec 2024: 3.15) and the ECB series for 2.15 since 11 Jun 2025.
Legal rate: the semester arrêtés (e.g. 5.07 for 2024-H1, 4.92 by arrêté of 26 Jun 2024, 3.71
by arrêté of 17 Dec 2024, 2.76 by arrêté of 19 Jun 2025, 2.62 by arrêté of 15 Dec 2025).
The 3 × legal rate minimum (L441-10 II) binds a contractual rate only, never the default.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from domain.law import (
    RECOVERY_INDEMNITY,
    InterestRegime,
    RateBasis,
    annual_rate,
    interest_segments,
    late_payment_interest,
    limitation_date,
    max_due_date,
    recovery_indemnity,
    statement_of_amounts,
)
from domain.money import Money
from domain.rates import (
    ECB_SERIES,
    LEGAL_SERIES,
    HalfYear,
    RateUnknownError,
    ecb_main_refinancing_rate,
    legal_interest_rate,
    load_rates,
)

FR = InterestRegime.FRANCE
EU = InterestRegime.EU_DIRECTIVE
ECB10 = RateBasis.ECB_PLUS_10


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


# --- Rates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        (date(2019, 3, 1), "10.00"),
        # The ECB rise to 0.50 % took effect on 27 July 2022: 1 July 2022 still had 0.00 %.
        (date(2022, 12, 31), "10.00"),
        (date(2023, 1, 1), "12.50"),
        (date(2023, 7, 1), "14.00"),
        # No floor on the default: 4.50 + 10, although 3 × 5.07 = 15.21 is higher.
        (date(2024, 1, 1), "14.50"),
        (date(2024, 12, 31), "14.25"),  # 4.25 + 10, not 3 × 4.92 = 14.76
        (date(2025, 6, 30), "13.15"),
        (date(2025, 7, 1), "12.15"),
        (date(2026, 3, 15), "12.15"),
    ],
)
def test_french_rate_per_half_year(on: date, expected: str) -> None:
    assert annual_rate(FR, on) == Decimal(expected)


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        (date(2024, 3, 1), "12.50"),  # 4.50 + 8, and no floor even though 3 × 5.07 = 15.21
        (date(2025, 2, 1), "11.15"),  # 3.15 + 8
        (date(2025, 9, 1), "10.15"),  # 2.15 + 8
    ],
)
def test_eu_directive_rate_is_ecb_plus_8(on: date, expected: str) -> None:
    assert annual_rate(EU, on) == Decimal(expected)


def test_rate_before_the_tables_raises_naming_the_half_year() -> None:
    with pytest.raises(RateUnknownError, match="2014-H2"):
        annual_rate(FR, date(2014, 12, 31))
    with pytest.raises(LookupError):
        ecb_main_refinancing_rate(date(2010, 1, 1))


def test_rate_after_the_tables_reuses_the_last_one_but_is_provisional() -> None:
    later = date(2027, 3, 1)
    assert ecb_main_refinancing_rate(later).percent == Decimal("2.15")
    assert ecb_main_refinancing_rate(later).provisional
    assert legal_interest_rate(later).percent == Decimal("2.62")
    assert legal_interest_rate(later).provisional
    assert not legal_interest_rate(date(2026, 1, 1)).provisional


def test_shipped_tables_cover_every_half_year_from_2015_and_mark_2026_h2_provisional() -> None:
    table = load_rates()
    for series in (ECB_SERIES, LEGAL_SERIES):
        half_years = sorted(table.series[series])
        assert half_years[0] == HalfYear(2015, 1)
        assert half_years[-1] == HalfYear(2026, 2)
        assert all(row.source for row in table.series[series].values())
    # 2026-H2 was not found in any public record: carried forward, flagged.
    assert not table.series[ECB_SERIES][HalfYear(2026, 2)].confirmed
    assert not table.series[LEGAL_SERIES][HalfYear(2026, 2)].confirmed
    assert table.provisional_in(HalfYear(2026, 2)) == [ECB_SERIES, LEGAL_SERIES]
    assert table.provisional_in(HalfYear(2026, 1)) == []


# --- Interest -------------------------------------------------------------------------------


def test_thirty_days_late_in_h1_2025() -> None:
    # Due 31 March, paid 30 April: 1-30 April = 30 days at 13.15 %.
    # 10 000 × 13.15 % × 30 / 365 = 3 945 / 365 = 10.808219… × 10 = 108.08219… → 108.08
    interest = late_payment_interest(eur("10000"), date(2025, 3, 31), date(2025, 4, 30))
    assert interest == eur("108.08")


def test_one_day_late_counts_the_day_after_the_due_date() -> None:
    # Due 31 March, paid 1 April: 1 day. 10 000 × 13.15 % / 365 = 1 315 / 365 = 3.6027 → 3.60
    interest = late_payment_interest(eur("10000"), date(2025, 3, 31), date(2025, 4, 1))
    assert interest == eur("3.60")


@pytest.mark.parametrize("until", [date(2025, 3, 31), date(2025, 3, 1), date(2024, 1, 1)])
def test_no_interest_on_or_before_the_due_date(until: date) -> None:
    assert late_payment_interest(eur("10000"), date(2025, 3, 31), until) == eur("0")


def test_period_spanning_1_july_uses_both_rates() -> None:
    # Due 15 June 2025, until 15 July 2025:
    #   16-30 June = 15 days at 13.15 % (2025-H1), 1-15 July = 15 days at 12.15 % (2025-H2)
    #   10 000 × (13.15 × 15 + 12.15 × 15) / 36 500 = 10 000 × (197.25 + 182.25) / 36 500
    #   = 3 795 000 / 36 500 = 103.9726… → 103.97
    interest = late_payment_interest(eur("10000"), date(2025, 6, 15), date(2025, 7, 15))
    assert interest == eur("103.97")


def test_period_spanning_1_january_uses_both_rates() -> None:
    # Due 15 Dec 2024, until 15 Jan 2025:
    #   16-31 Dec = 16 days at 14.25 % (2024-H2), 1-15 Jan = 15 days at 13.15 % (2025-H1)
    #   10 000 × (14.25 × 16 + 13.15 × 15) / 36 500 = 10 000 × (228.00 + 197.25) / 36 500
    #   = 4 252 500 / 36 500 = 116.5068… → 116.51
    interest = late_payment_interest(eur("10000"), date(2024, 12, 15), date(2025, 1, 15))
    assert interest == eur("116.51")


def test_default_rate_has_no_legal_rate_floor_in_2024() -> None:
    # Due 31 Jan 2024, until 1 Mar 2024: 1-29 Feb (leap year) + 1 Mar = 30 days at
    # 4.50 + 10 = 14.50 % (the 15.21 % of 3 × 5.07 binds contracts only, L441-10 II).
    # 10 000 × 14.50 % × 30 / 365 = 4 350 / 365 = 11.91781 × 10 = 119.178… → 119.18
    interest = late_payment_interest(eur("10000"), date(2024, 1, 31), date(2024, 3, 1))
    assert interest == eur("119.18")


def test_eu_directive_regime() -> None:
    # Same 30 days as the first test, at 3.15 + 8 = 11.15 %:
    # 10 000 × 11.15 % × 30 / 365 = 3 345 / 365 = 9.16438 × 10 = 91.6438 → 91.64
    interest = late_payment_interest(eur("10000"), date(2025, 3, 31), date(2025, 4, 30), EU)
    assert interest == eur("91.64")


def test_whole_leap_year_is_366_days_over_365() -> None:
    # Due 31 Dec 2023, until 31 Dec 2024: 366 days, actual/365.
    #   2024-H1: 31+29+31+30+31+30 = 182 days at 14.50 %; 2024-H2: 184 days at 14.25 %
    #   10 000 × (14.50 × 182 + 14.25 × 184) / 36 500 = 10 000 × (2 639.00 + 2 622.00) / 36 500
    #   = 52 610 000 / 36 500 = 1 441.3698… → 1 441.37
    interest = late_payment_interest(eur("10000"), date(2023, 12, 31), date(2024, 12, 31))
    assert interest == eur("1441.37")


def test_result_is_rounded_half_up_once() -> None:
    # Due 31 Jan 2019, until 14 Apr 2019: 28 (Feb) + 31 (Mar) + 14 (Apr) = 73 days at 10 %.
    # 1 000.25 × 10 % × 73 / 365 = 1 000.25 × 0.02 = 20.005 exactly → half-up 20.01
    # (banker's rounding would give 20.00).
    interest = late_payment_interest(eur("1000.25"), date(2019, 1, 31), date(2019, 4, 14))
    assert interest == eur("20.01")


def test_interest_keeps_the_invoice_currency_and_its_minor_unit() -> None:
    # 1 000 000 JPY, 30 days at 13.15 %: 1 000 000 × 0.1315 × 30 / 365 = 3 945 000 / 365
    # = 10 808.219… → 10 808 (no minor unit)
    interest = late_payment_interest(
        Money.of("1000000", "JPY"), date(2025, 3, 31), date(2025, 4, 30)
    )
    assert interest == Money.of("10808", "JPY")


def test_interest_breakdown_lists_each_half_year() -> None:
    segments = interest_segments(eur("10000"), date(2025, 6, 15), date(2025, 7, 15))
    assert [(s.principal, s.start, s.end, s.days, s.rate, s.basis) for s in segments] == [
        (eur("10000"), date(2025, 6, 16), date(2025, 6, 30), 15, Decimal("13.15"), ECB10),
        (eur("10000"), date(2025, 7, 1), date(2025, 7, 15), 15, Decimal("12.15"), ECB10),
    ]


def test_interest_with_a_day_before_the_tables_raises() -> None:
    with pytest.raises(RateUnknownError, match="2014-H2"):
        late_payment_interest(eur("100"), date(2014, 12, 30), date(2015, 1, 31))


def test_negative_principal_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        late_payment_interest(eur("-10"), date(2025, 3, 31), date(2025, 4, 30))


# --- Indemnity and the statement of a formal notice -----------------------------------------


def test_recovery_indemnity_is_40_euros_whatever_the_invoice_currency() -> None:
    assert recovery_indemnity("EUR") == eur("40.00")
    assert recovery_indemnity("USD") == eur("40.00")
    assert eur("40") == RECOVERY_INDEMNITY


def test_statement_for_a_euro_invoice() -> None:
    # Interest 108.08 (first interest test) + 40 € indemnity:
    # 10 000.00 + 108.08 + 40.00 = 10 148.08
    statement = statement_of_amounts(eur("10000"), date(2025, 3, 31), date(2025, 4, 30), FR)
    assert statement.principal == eur("10000")
    assert statement.interest == eur("108.08")
    assert statement.indemnity == eur("40")
    assert statement.rate == Decimal("13.15")
    assert statement.days_late == 30
    assert statement.total == eur("10148.08")
    assert statement.indemnity_in_total
    assert not statement.provisional


def test_statement_for_a_dollar_invoice_keeps_the_euro_indemnity_apart() -> None:
    # 5 000 USD, 30 days at 13.15 %: 5 000 × 0.1315 × 30 / 365 = 1 972.5 / 365 = 54.0411 → 54.04
    # total = 5 000.00 + 54.04 = 5 054.04 USD; the 40 EUR stays its own line.
    usd = Money.of("5000", "USD")
    statement = statement_of_amounts(usd, date(2025, 3, 31), date(2025, 4, 30), FR)
    assert statement.interest == Money.of("54.04", "USD")
    assert statement.indemnity == eur("40")
    assert statement.total == Money.of("5054.04", "USD")
    assert not statement.indemnity_in_total


def test_statement_before_the_due_date_owes_only_the_principal() -> None:
    statement = statement_of_amounts(eur("10000"), date(2025, 3, 31), date(2025, 3, 31))
    assert statement.days_late == 0
    assert statement.interest == eur("0")
    assert statement.indemnity == eur("0")
    assert statement.total == eur("10000")


def test_statement_past_the_known_rates_is_flagged_provisional() -> None:
    # 2026-H2: both rows are carried forward, unconfirmed. Rate 2.15 + 10 = 12.15;
    # 31 days (1-31 Aug 2026):
    # 10 000 × 12.15 % × 31 / 365 = 3 766.5 / 365 = 10.3192 × 10 = 103.192 → 103.19
    statement = statement_of_amounts(eur("10000"), date(2026, 7, 31), date(2026, 8, 31))
    assert statement.interest == eur("103.19")
    assert statement.provisional
    assert statement.segments[0].provisional


# --- Payment terms (L441-10 I) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("issued", "expected"),
    [
        (date(2025, 1, 31), date(2025, 4, 1)),  # 28 (Feb) + 31 (Mar) = 59 → +1 = 1 April
        (date(2024, 1, 31), date(2024, 3, 31)),  # leap: 29 (Feb) + 31 (Mar) = 60 → 31 March
        (date(2024, 12, 31), date(2025, 3, 1)),  # 31 (Jan) + 28 (Feb) = 59 → +1 = 1 March
    ],
)
def test_sixty_days_from_issue(issued: date, expected: date) -> None:
    assert max_due_date(issued, "60_days") == expected


@pytest.mark.parametrize(
    ("issued", "expected"),
    [
        # 31 Jan 2025 + 45 = 17 Mar (28 Feb is +28, then +17) → end of March
        (date(2025, 1, 31), date(2025, 3, 31)),
        # 14 Jan 2025 + 45 = 28 Feb (17 days to 31 Jan, +28) → 28 Feb itself
        (date(2025, 1, 14), date(2025, 2, 28)),
        # leap: 15 Jan 2024 + 45 = 29 Feb (16 to 31 Jan, +29) → 29 Feb
        (date(2024, 1, 15), date(2024, 2, 29)),
        # leap: 16 Jan 2024 + 45 = 1 Mar → 31 March
        (date(2024, 1, 16), date(2024, 3, 31)),
    ],
)
def test_45_days_end_of_month_adds_45_days_then_goes_to_month_end(
    issued: date, expected: date
) -> None:
    assert max_due_date(issued, "45_days_end_of_month") == expected


@pytest.mark.parametrize(
    ("issued", "expected"),
    [
        (date(2025, 1, 31), date(2025, 3, 17)),  # 31 Jan + 45 = 28 (Feb) + 17 → 17 March
        (date(2024, 1, 15), date(2024, 3, 16)),  # 31 Jan + 45 = 29 (Feb) + 16 → 16 March
        (date(2024, 11, 30), date(2025, 1, 14)),  # 30 Nov + 45 = 31 (Dec) + 14 → 14 January
    ],
)
def test_alternative_reading_end_of_month_then_45_days(issued: date, expected: date) -> None:
    assert max_due_date(issued, "end_of_month_45_days") == expected


def test_unknown_terms_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown payment terms"):
        max_due_date(date(2025, 1, 1), "90_days")  # type: ignore[arg-type]


# --- Limitation (L110-4, Civil code 2240) -------------------------------------------------------


def test_limitation_is_five_years_from_the_due_date() -> None:
    assert limitation_date(date(2020, 3, 31)) == date(2025, 3, 31)


def test_limitation_from_29_february_ends_on_28_february() -> None:
    assert limitation_date(date(2024, 2, 29)) == date(2029, 2, 28)


def test_acknowledgment_restarts_five_years() -> None:
    # Due 31 Mar 2020; the debtor asks for time on 15 Jun 2023 → new 5 years to 15 Jun 2028.
    assert limitation_date(date(2020, 3, 31), [date(2023, 6, 15)]) == date(2028, 6, 15)


def test_latest_acknowledgment_counts_whatever_the_order_given() -> None:
    # 30 Jun 2015 → 30 Jun 2020; ack 10 Jan 2019 → 10 Jan 2024; ack 1 Dec 2023 → 1 Dec 2028.
    acks = [date(2023, 12, 1), date(2019, 1, 10)]
    assert limitation_date(date(2015, 6, 30), acks) == date(2028, 12, 1)


def test_formal_notice_does_not_interrupt_limitation() -> None:
    # Due 31 Jan 2020, mises en demeure sent on 1 Mar 2020 and 1 Dec 2024, no acknowledgment:
    # notices are not acknowledgments, so nothing is passed and the claim is barred after
    # 31 Jan 2025, even though the last notice was sent two months earlier.
    assert limitation_date(date(2020, 1, 31), acknowledgments=[]) == date(2025, 1, 31)


def test_acknowledgment_on_the_last_day_still_interrupts() -> None:
    assert limitation_date(date(2018, 1, 31), [date(2023, 1, 31)]) == date(2028, 1, 31)


def test_acknowledgment_after_the_claim_is_barred_does_not_revive_it() -> None:
    assert limitation_date(date(2018, 1, 31), [date(2023, 2, 15)]) == date(2023, 1, 31)


def test_acknowledgments_cannot_go_past_the_20_year_long_stop() -> None:
    # Due 31 Jan 2015: acks every ~5 years would reach 1 Jun 2038, but Civil code 2232 caps
    # the period at 20 years from the due date: 31 Jan 2035.
    acks = [date(2019, 6, 1), date(2024, 1, 15), date(2028, 12, 1), date(2033, 6, 1)]
    assert limitation_date(date(2015, 1, 31), acks) == date(2035, 1, 31)
