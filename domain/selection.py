"""Which playbook a debtor's new invoices get: by segment, by risk, or by a finance decision.

Pure: callers pass what the store knows (sizes, history figures, the override, the playbook
names on disk); nothing here reads a file, a clock or a database.

Segment
    Given by the back office (`"PME"`, `"grand compte"`, ...), or derived from the size bands
    of décret n° 2008-1354 (article 51 of the LME), see `segment_from_size`.

Risk
    A score from 0 to 100 built from the debtor's own payment history, see `risk_score`. Every
    point is attributed to one named factor, so the API can show the score *and* why.

Choice
    An override wins; then `<segment>_<band>` (e.g. `pme_high`) if such a playbook exists, then
    `<segment>` (e.g. `pme`), then the default playbook. See `choose_playbook`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# ------------------------------------------------------------------ segment


class Segment(StrEnum):
    """Company size categories as French credit managers name them (and as playbooks are named)."""

    TPE = "tpe"  # très petite entreprise (micro-entreprise)
    PME = "pme"  # petite ou moyenne entreprise
    ETI = "eti"  # entreprise de taille intermédiaire
    GRAND_COMPTE = "grand_compte"  # grande entreprise, "grand compte" in a sales team's words


# Size ceilings of décret 2008-1354, art. 3: a company belongs to the first category whose
# staff ceiling it is under AND whose turnover ceiling (or balance-sheet ceiling) it does not
# exceed. Turnover in euros.
SIZE_BANDS: tuple[tuple[Segment, int, Decimal], ...] = (
    (Segment.TPE, 10, Decimal("2000000")),  # < 10 staff, turnover ≤ 2 M€
    (Segment.PME, 250, Decimal("50000000")),  # < 250 staff, turnover ≤ 50 M€
    (Segment.ETI, 5000, Decimal("1500000000")),  # < 5 000 staff, turnover ≤ 1.5 Bn€
)

# What back offices write for a segment, folded (lowercase, no accents, "_" for spaces).
_SEGMENT_ALIASES: dict[str, Segment] = {
    "tpe": Segment.TPE,
    "micro": Segment.TPE,
    "micro_entreprise": Segment.TPE,
    "microentreprise": Segment.TPE,
    "tres_petite_entreprise": Segment.TPE,
    "pme": Segment.PME,
    "sme": Segment.PME,
    "petite_et_moyenne_entreprise": Segment.PME,
    "petite_ou_moyenne_entreprise": Segment.PME,
    "eti": Segment.ETI,
    "mid_cap": Segment.ETI,
    "midcap": Segment.ETI,
    "entreprise_de_taille_intermediaire": Segment.ETI,
    "ge": Segment.GRAND_COMPTE,
    "grand_compte": Segment.GRAND_COMPTE,
    "grands_comptes": Segment.GRAND_COMPTE,
    "grande_entreprise": Segment.GRAND_COMPTE,
    "grandes_entreprises": Segment.GRAND_COMPTE,
    "key_account": Segment.GRAND_COMPTE,
    "large": Segment.GRAND_COMPTE,
    "large_enterprise": Segment.GRAND_COMPTE,
}


def _fold(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", plain.lower()).strip("_")


def parse_segment(text: str | None) -> Segment | None:
    """The segment a back office's label stands for ("PME", "Grand compte", "ETI"), or None."""
    if text is None:
        return None
    return _SEGMENT_ALIASES.get(_fold(text))


def segment_from_size(annual_revenue: Decimal | None, headcount: int | None) -> Segment | None:
    """The size category of décret 2008-1354 from turnover (euros) and staff.

    - TPE (micro-entreprise): fewer than 10 staff and turnover ≤ 2 M€;
    - PME: fewer than 250 staff and turnover ≤ 50 M€;
    - ETI: fewer than 5 000 staff and turnover ≤ 1.5 Bn€;
    - grand compte: above.

    Both criteria must hold for a category ("<10 staff AND ≤ 2 M€"): a 6-person trading
    company turning over 30 M€ is a PME. The décret also lets a company in by its balance
    sheet total (≤ 2 M€, 43 M€, 2 Bn€) when its turnover is above the ceiling; the back office
    does not send balance sheets, so this reads turnover only and may place such a company one
    category up: give the segment explicitly when that matters. When only one of the two
    figures is known, it decides alone; when neither is, the segment is unknown (None).
    """
    if annual_revenue is None and headcount is None:
        return None
    for segment, staff_below, turnover_at_most in SIZE_BANDS:
        staff_ok = headcount is None or headcount < staff_below
        turnover_ok = annual_revenue is None or annual_revenue <= turnover_at_most
        if staff_ok and turnover_ok:
            return segment
    return Segment.GRAND_COMPTE


SegmentSource = Literal["given", "derived", "unknown"]


class SegmentResolution(BaseModel):
    model_config = ConfigDict(frozen=True)

    segment: Segment | None
    source: SegmentSource
    why: str


def _size_text(annual_revenue: Decimal | None, headcount: int | None) -> str:
    parts = []
    if headcount is not None:
        parts.append(f"{headcount} staff")
    if annual_revenue is not None:
        parts.append(f"turnover {annual_revenue:,.0f} €".replace(",", " "))
    return " and ".join(parts)


def resolve_segment(
    given: str | None, annual_revenue: Decimal | None, headcount: int | None
) -> SegmentResolution:
    """The back office's segment when it names one we know, else the size bands' answer."""
    parsed = parse_segment(given)
    if parsed is not None:
        return SegmentResolution(
            segment=parsed, source="given", why=f"given by the back office as {given!r}"
        )
    unknown = (
        f"the back office's segment {given!r} is not one of {', '.join(s.value for s in Segment)}; "
        if given
        else ""
    )
    derived = segment_from_size(annual_revenue, headcount)
    if derived is not None:
        return SegmentResolution(
            segment=derived,
            source="derived",
            why=f"{unknown}derived from the size bands of décret 2008-1354 "
            f"({_size_text(annual_revenue, headcount)})",
        )
    missing = "and there is" if given else "no segment given and"
    return SegmentResolution(
        segment=None,
        source="unknown",
        why=f"{unknown}{missing} no annual revenue or headcount to derive one",
    )


# ------------------------------------------------------------------ risk


class RiskBand(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class RiskInputs(BaseModel):
    """What the debtor's history says, as the store computes it (`store.debtors`)."""

    model_config = ConfigDict(frozen=True)

    # Invoices that have a verdict: settled ones, and open ones already past their due date.
    invoices: int = Field(default=0, ge=0)
    # Days from due date to the payment that settled it (open ones: days so far); early = 0.
    avg_days_late: float = Field(default=0, ge=0)
    # Share of those invoices paid late or still unpaid after their due date, 0..1.
    late_share: float = Field(default=0, ge=0, le=1)
    # Disputes not upheld (an upheld dispute was the creditor's mistake, not the debtor's).
    disputes: int = Field(default=0, ge=0)
    # Promises to pay that lapsed without the payment.
    broken_promises: int = Field(default=0, ge=0)
    # Outstanding now divided by the debtor's average invoice amount (None: no invoice yet).
    outstanding_ratio: float | None = Field(default=None, ge=0)


class RiskFactor(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    value: str
    points: float
    max_points: float


class RiskAssessment(BaseModel):
    model_config = ConfigDict(frozen=True)

    score: int = Field(ge=0, le=100)
    band: RiskBand
    factors: list[RiskFactor]
    reasons: list[str]


# The whole formula's constants, in one place. Max points add up to 100.
DAYS_LATE_MAX = 30.0  # 1 point per average day late, capped at 30 days
LATE_SHARE_MAX = 25.0  # share of late invoices × 25
DISPUTE_POINTS, DISPUTES_MAX = 5.0, 15.0  # 5 per dispute, at most 3 counted
BROKEN_PROMISE_POINTS, BROKEN_PROMISES_MAX = 10.0, 20.0  # 10 per broken promise, at most 2
EXPOSURE_POINTS, EXPOSURE_MAX = 2.5, 10.0  # 2.5 per usual invoice owed beyond the first
# Lateness measured on fewer invoices counts partially: one late invoice is not a habit.
FULL_EVIDENCE_INVOICES = 3
# Band thresholds: low below 25, medium from 25, high from 50.
MEDIUM_FROM, HIGH_FROM = 25, 50


def _band(score: int) -> RiskBand:
    if score >= HIGH_FROM:
        return RiskBand.HIGH
    if score >= MEDIUM_FROM:
        return RiskBand.MEDIUM
    return RiskBand.LOW


def _tenth(value: float) -> float:
    return float(Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def _pts(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def risk_score(inputs: RiskInputs) -> RiskAssessment:
    """A transparent 0–100 score of how likely the debtor is to pay late, from its history.

    Points per factor (max 100):

    =====================  ==========================================================  ====
    factor                 points                                                      max
    =====================  ==========================================================  ====
    average days late      1 per day (days from due date to the settling payment;       30
                           open invoices past due count their days so far)
    late invoices          25 × share of invoices paid late or unpaid past due          25
    disputes               5 per dispute not upheld                                     15
    broken promises        10 per promise to pay that lapsed unpaid                     20
    exposure               2.5 per usual invoice owed beyond the first (outstanding /   10
                           average invoice amount − 1)
    =====================  ==========================================================  ====

    The two lateness factors are weighted by the evidence: with fewer than 3 invoices with a
    verdict they count `n / 3` of their points, so a single late invoice does not brand a new
    customer. Each factor's points are rounded to a tenth and listed with the value that earned
    them; the score is their sum rounded half up. Bands: low < 25 ≤ medium < 50 ≤ high.
    """
    evidence = min(inputs.invoices, FULL_EVIDENCE_INVOICES) / FULL_EVIDENCE_INVOICES
    partial = (
        f" (on {inputs.invoices} invoice{'s' if inputs.invoices > 1 else ''}: counted at "
        f"{inputs.invoices}/{FULL_EVIDENCE_INVOICES})"
        if 0 < inputs.invoices < FULL_EVIDENCE_INVOICES
        else ""
    )
    ratio = inputs.outstanding_ratio
    excess = max(0.0, ratio - 1) if ratio is not None else 0.0
    factors = [
        RiskFactor(
            name="average days late",
            value=f"{inputs.avg_days_late:.1f} days",
            points=min(inputs.avg_days_late, DAYS_LATE_MAX) * evidence,
            max_points=DAYS_LATE_MAX,
        ),
        RiskFactor(
            name="late invoices",
            value=f"{inputs.late_share:.0%} of {inputs.invoices}",
            points=LATE_SHARE_MAX * inputs.late_share * evidence,
            max_points=LATE_SHARE_MAX,
        ),
        RiskFactor(
            name="disputes",
            value=str(inputs.disputes),
            points=min(DISPUTE_POINTS * inputs.disputes, DISPUTES_MAX),
            max_points=DISPUTES_MAX,
        ),
        RiskFactor(
            name="broken promises",
            value=str(inputs.broken_promises),
            points=min(BROKEN_PROMISE_POINTS * inputs.broken_promises, BROKEN_PROMISES_MAX),
            max_points=BROKEN_PROMISES_MAX,
        ),
        RiskFactor(
            name="exposure",
            value=f"{ratio:.1f}× the average invoice" if ratio is not None else "no invoice",
            points=min(EXPOSURE_POINTS * excess, EXPOSURE_MAX),
            max_points=EXPOSURE_MAX,
        ),
    ]
    factors = [f.model_copy(update={"points": _tenth(f.points)}) for f in factors]
    # Half up, as people round: 12.5 points is a score of 13 (Python's round() would say 12).
    score = min(100, max(0, math.floor(sum(f.points for f in factors) + 0.5)))
    reasons = []
    if inputs.invoices == 0:
        reasons.append("no invoice settled or past due yet: no payment history to judge")
    for i, f in enumerate(factors):
        note = partial if i < 2 else ""
        reasons.append(
            f"{f.name}: {f.value} → {_pts(f.points)} of {_pts(f.max_points)} points{note}"
        )
    band = _band(score)
    reasons.append(
        f"score {score}/100: {band.value} risk (low < {MEDIUM_FROM} ≤ medium < {HIGH_FROM} ≤ high)"
    )
    return RiskAssessment(score=score, band=band, factors=factors, reasons=reasons)


# ------------------------------------------------------------------ choice


class Choice(BaseModel):
    model_config = ConfigDict(frozen=True)

    playbook: str
    why: str


def choose_playbook(
    segment: Segment | None,
    band: RiskBand,
    override: str | None,
    available: set[str],
    *,
    default: str = "default",
) -> Choice:
    """The playbook for a debtor's next invoice, and the sentence that explains it.

    1. a per-debtor override (a finance decision) wins;
    2. then `<segment>_<band>` if the folder has it (e.g. `pme_high` for a risky PME);
    3. then `<segment>` (e.g. `pme`);
    4. then `default`.

    An override naming a playbook that no longer exists is skipped, and the explanation says
    so: a deleted file must not stop the collection, but nobody should miss it either.
    """
    prefix = ""
    if override is not None:
        if override in available:
            return Choice(playbook=override, why=f"per-debtor override: playbook {override!r}")
        prefix = f"the override's playbook {override!r} no longer exists, so by segment: "
    if segment is None:
        return Choice(
            playbook=default, why=f"{prefix}segment unknown: the default playbook {default!r}"
        )
    specific = f"{segment.value}_{band.value}"
    if specific in available:
        return Choice(
            playbook=specific,
            why=f"{prefix}segment {segment.value}, {band.value} risk: playbook {specific!r}",
        )
    if segment.value in available:
        return Choice(
            playbook=segment.value,
            why=f"{prefix}segment {segment.value}: playbook {segment.value!r} "
            f"(no {specific!r} playbook for {band.value} risk)",
        )
    return Choice(
        playbook=default,
        why=f"{prefix}no playbook for segment {segment.value}: the default playbook {default!r}",
    )
