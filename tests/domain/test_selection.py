"""Choosing a playbook: size bands (décret 2008-1354), the risk score, and precedence.

Expected scores are worked out by hand from the formula in `risk_score`'s docstring:
1 pt per average day late (max 30) and 25 × share of late invoices, both × min(n, 3)/3;
5 per dispute (max 15); 10 per broken promise (max 20); 2.5 × (outstanding ratio − 1) (max 10).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.selection import (
    RiskBand,
    RiskInputs,
    Segment,
    choose_playbook,
    parse_segment,
    resolve_segment,
    risk_score,
    segment_from_size,
)

M = Decimal(1_000_000)


# --- segment -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("revenue", "headcount", "segment"),
    [
        (2 * M, 9, Segment.TPE),  # both at the TPE ceiling
        (2 * M, 10, Segment.PME),  # 10 staff is no longer a TPE
        (2 * M + Decimal("0.01"), 9, Segment.PME),  # a cent over 2 M€
        (50 * M, 249, Segment.PME),
        (50 * M, 250, Segment.ETI),
        (50 * M + 1, 249, Segment.ETI),
        (1500 * M, 4999, Segment.ETI),
        (1500 * M, 5000, Segment.GRAND_COMPTE),
        (1500 * M + 1, 4999, Segment.GRAND_COMPTE),
        (30 * M, 6, Segment.PME),  # few staff but a large turnover: both criteria must hold
        (Decimal(0), 0, Segment.TPE),
    ],
)
def test_size_bands_at_their_edges(revenue: Decimal, headcount: int, segment: Segment) -> None:
    assert segment_from_size(revenue, headcount) == segment


def test_one_figure_decides_alone_and_none_decides_nothing() -> None:
    assert segment_from_size(None, 5) == Segment.TPE
    assert segment_from_size(None, 300) == Segment.ETI
    assert segment_from_size(3 * M, None) == Segment.PME
    assert segment_from_size(2000 * M, None) == Segment.GRAND_COMPTE
    assert segment_from_size(None, None) is None


@pytest.mark.parametrize(
    ("label", "segment"),
    [
        ("PME", Segment.PME),
        ("tpe", Segment.TPE),
        ("Micro-entreprise", Segment.TPE),
        ("ETI", Segment.ETI),
        ("Grand compte", Segment.GRAND_COMPTE),
        ("grands comptes", Segment.GRAND_COMPTE),
        ("GE", Segment.GRAND_COMPTE),
        ("Très petite entreprise", Segment.TPE),
        ("VIP", None),
        (None, None),
    ],
)
def test_back_office_labels(label: str | None, segment: Segment | None) -> None:
    assert parse_segment(label) == segment


def test_a_given_segment_wins_over_the_size() -> None:
    given = resolve_segment("Grand compte", Decimal(500_000), 3)
    derived = resolve_segment(None, Decimal(500_000), 3)
    unknown_label = resolve_segment("VIP", None, 40)
    nothing = resolve_segment(None, None, None)

    assert (given.segment, given.source) == (Segment.GRAND_COMPTE, "given")
    assert (derived.segment, derived.source) == (Segment.TPE, "derived")
    assert "décret 2008-1354 (3 staff and turnover 500 000 €)" in derived.why
    assert (unknown_label.segment, unknown_label.source) == (Segment.PME, "derived")
    assert "'VIP' is not one of tpe, pme, eti, grand_compte" in unknown_label.why
    assert (nothing.segment, nothing.source) == (None, "unknown")


# --- risk score ----------------------------------------------------------------------------


def test_no_history_is_low_risk_and_says_so() -> None:
    result = risk_score(RiskInputs())

    assert (result.score, result.band) == (0, RiskBand.LOW)
    assert result.reasons[0].startswith("no invoice settled or past due yet")


def test_score_is_the_sum_of_named_factors() -> None:
    # 12 days late → 12; half late → 12.5; 1 dispute → 5; no promise → 0;
    # owes twice the usual invoice → 2.5 × (2 − 1) = 2.5. Total 32 → medium.
    result = risk_score(
        RiskInputs(
            invoices=4,
            avg_days_late=12,
            late_share=0.5,
            disputes=1,
            broken_promises=0,
            outstanding_ratio=2.0,
        )
    )

    assert {f.name: f.points for f in result.factors} == {
        "average days late": 12.0,
        "late invoices": 12.5,
        "disputes": 5.0,
        "broken promises": 0.0,
        "exposure": 2.5,
    }
    assert (result.score, result.band) == (32, RiskBand.MEDIUM)
    assert result.reasons[:5] == [
        "average days late: 12.0 days → 12 of 30 points",
        "late invoices: 50% of 4 → 12.5 of 25 points",
        "disputes: 1 → 5 of 15 points",
        "broken promises: 0 → 0 of 20 points",
        "exposure: 2.0× the average invoice → 2.5 of 10 points",
    ]
    assert result.reasons[-1].startswith("score 32/100: medium risk")


def test_every_factor_is_capped_and_the_caps_add_up_to_100() -> None:
    result = risk_score(
        RiskInputs(
            invoices=10,
            avg_days_late=45,
            late_share=1,
            disputes=5,
            broken_promises=3,
            outstanding_ratio=9,
        )
    )

    assert [f.points for f in result.factors] == [30, 25, 15, 20, 10]
    assert (result.score, result.band) == (100, RiskBand.HIGH)


def test_little_history_counts_partially() -> None:
    # One invoice, 30 days late: 30 × 1/3 = 10, 25 × 1/3 = 8.3 → 18 → still low.
    result = risk_score(RiskInputs(invoices=1, avg_days_late=30, late_share=1))

    assert [f.points for f in result.factors[:2]] == [10.0, 8.3]
    assert (result.score, result.band) == (18, RiskBand.LOW)
    assert "(on 1 invoice: counted at 1/3)" in result.reasons[0]


@pytest.mark.parametrize(
    ("days", "share", "score", "band"),
    [
        (24, 0, 24, RiskBand.LOW),
        (25, 0, 25, RiskBand.MEDIUM),
        (24, 1, 49, RiskBand.MEDIUM),
        (25, 1, 50, RiskBand.HIGH),
        (0, 0.5, 13, RiskBand.LOW),  # 12.5 rounds half up
    ],
)
def test_band_edges(days: float, share: float, score: int, band: RiskBand) -> None:
    result = risk_score(RiskInputs(invoices=3, avg_days_late=days, late_share=share))

    assert (result.score, result.band) == (score, band)


def test_broken_promises_weigh_more_than_disputes() -> None:
    promise = risk_score(RiskInputs(invoices=3, broken_promises=1))
    dispute = risk_score(RiskInputs(invoices=3, disputes=1))

    assert (promise.score, dispute.score) == (10, 5)


# --- choice --------------------------------------------------------------------------------

SHIPPED = {"default", "tpe", "tpe_high", "pme", "pme_high", "eti", "grand_compte"}


def test_an_override_wins() -> None:
    choice = choose_playbook(Segment.TPE, RiskBand.HIGH, "grand_compte", SHIPPED)

    assert choice.playbook == "grand_compte"
    assert choice.why == "per-debtor override: playbook 'grand_compte'"


def test_an_override_whose_playbook_was_deleted_falls_back_and_says_so() -> None:
    choice = choose_playbook(Segment.PME, RiskBand.LOW, "vip", SHIPPED)

    assert choice.playbook == "pme"
    assert choice.why.startswith("the override's playbook 'vip' no longer exists")


def test_segment_and_band_then_segment_then_default() -> None:
    assert choose_playbook(Segment.PME, RiskBand.HIGH, None, SHIPPED).playbook == "pme_high"
    medium = choose_playbook(Segment.PME, RiskBand.MEDIUM, None, SHIPPED)
    assert medium.playbook == "pme"
    assert "no 'pme_medium' playbook for medium risk" in medium.why
    assert choose_playbook(Segment.ETI, RiskBand.HIGH, None, SHIPPED).playbook == "eti"
    assert choose_playbook(Segment.ETI, RiskBand.HIGH, None, {"default"}).playbook == "default"
    unknown = choose_playbook(None, RiskBand.HIGH, None, SHIPPED)
    assert (unknown.playbook, unknown.why) == (
        "default",
        "segment unknown: the default playbook 'default'",
    )


def test_a_user_may_add_a_band_for_any_segment_and_rename_the_default() -> None:
    available = SHIPPED | {"eti_low", "standard"}

    assert choose_playbook(Segment.ETI, RiskBand.LOW, None, available).playbook == "eti_low"
    assert (
        choose_playbook(None, RiskBand.LOW, None, available, default="standard").playbook
        == "standard"
    )
