"""Handed off to the legal partner: an open file is still receivable, at the legal stage, and
what it brings in is collected by legal action. Every report says the same, worked by hand.

The portfolio, in EUR (period: March 2026, `from=2026-03-01&to=2026-03-31`):

| inv. | debtor | amount | issued     | due        | hand-off | payments            | now          |
|------|--------|--------|------------|------------|----------|---------------------|--------------|
| L1   | H pme  | 2000   | 2026-01-05 | 2026-02-04 | 03-10    | —                   | handed off   |
| L2   | H pme  | 1500   | 2026-01-10 | 2026-02-09 | 03-02    | 300 3/1, 1200 3/20  | paid         |
| L3   | H pme  | 800    | 2025-11-01 | 2025-12-01 | (02-15)  | —                   | closed 02-15 |
| L4   | H pme  | 1000   | 2025-12-01 | 2025-12-31 | 02-20    | —                   | closed 03-15 |
| R1   | R tpe  | 600    | 2026-03-01 | 2026-03-31 | —        | —                   | upcoming     |

L3 started on the first rules' edition: its hand-off was its end (the history says `closed`).
L4's partner abandoned the file on 15 March: it closed then, 1000 still unpaid.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from api.console import accounts
from store.people import Language, PersonRole
from tests.reports.conftest import ReportsApi, Seed

PASSWORD = "correct horse battery staple"

MARCH = "from=2026-03-01&to=2026-03-31&currency=EUR&within_days=30"


@pytest.fixture
def legal(reports_api: ReportsApi) -> ReportsApi:
    seed = Seed(reports_api.engine)
    seed.debtor("H", "pme")
    seed.debtor("R", "tpe")
    seed.invoice("L1", "H", "2000", "2026-01-05", "2026-02-04", stage="handed_off")
    seed.event("L1", "handed_off", "2026-03-10")
    seed.invoice("L2", "H", "1500", "2026-01-10", "2026-02-09", stage="paid", outstanding="0")
    seed.event("L2", "handed_off", "2026-03-02")
    seed.event("L2", "closed", "2026-03-20", stage="paid")
    seed.payment("L2", "300", "2026-03-01", "1200")
    seed.payment("L2", "1200", "2026-03-20", "0")
    seed.invoice("L3", "H", "800", "2025-11-01", "2025-12-01", stage="handed_off")
    seed.event("L3", "closed", "2026-02-15")
    seed.invoice("L4", "H", "1000", "2025-12-01", "2025-12-31", stage="handed_off")
    seed.event("L4", "handed_off", "2026-02-20")
    seed.event("L4", "closed", "2026-03-15")
    seed.invoice("R1", "R", "600", "2026-03-01", "2026-03-31", stage="upcoming")
    # L2's formal notice the day before its hand-off, and the hand-off's own letter.
    seed.sent("L2", "formal_notice", "formal_notice", "letter", "2026-03-01")
    seed.sent("L2", "legal", "legal_handoff", "letter", "2026-03-02")
    return reports_api


async def test_kpis_count_an_open_hand_off_as_receivable_and_its_payments_as_legal(
    legal: ReportsApi,
) -> None:
    k = await legal.json(f"/v1/reports/kpis?{MARCH}")

    # Receivables at the end of 28 February: L1 2000, L2 1500 (nothing paid yet), L4 1000
    # (open until 15 March); L3 closed on 15 February; R1 not issued yet → 4500.
    assert k["receivables_start"] == "4500.00"
    # At the end of 31 March: L1 2000 (still with the partner), R1 600; L2 paid, L4 closed.
    assert k["receivables_end"] == "2600.00"
    assert k["receivables_end_at_legal_stage"] == "2000.00"
    # Collected in March: L2's 300 (before its hand-off) and 1200 (after it) → 1500, of which
    # 1200 by legal action.
    assert (k["collected"], k["collected_by_legal_action"]) == ("1500.00", "1200.00")
    # Count-back DSO on 31 March: 2600 left; March sales 600 (R1) → 2000 left, 31 days;
    # February sales 0 → 28 days (59); January sales 3500 (L1, L2) > 2000: 2000/3500 × 31 =
    # 17.71 → 76.71 → 76.7 days. (Without L1, 600 would be left: 31 days.)
    assert k["dso"] == "76.7"
    # CEI: (4500 + 600 − 2600) / (4500 + 600 − 600 current) = 2500/4500 = 55.6 %.
    assert k["cei_pct"] == "55.6"

    steps = {s["step_id"]: s for s in k["steps"]}
    # The formal notice is credited with the 300 received before the hand-off only: the 1200
    # and the settlement came in by legal action.
    notice = steps["formal_notice"]
    assert (notice["invoices"], notice["paid_within"], notice["collected"]) == (1, 0, "300.00")
    # The hand-off's own step is credited with them (1200 on 20 March, 18 days after it).
    handoff = steps["legal"]
    assert (handoff["invoices"], handoff["paid_within"], handoff["collected"]) == (
        1,
        1,
        "1200.00",
    )


async def test_aging_shows_the_open_hand_off_and_its_legal_share(legal: ReportsApi) -> None:
    a = await legal.json("/v1/reports/aging?as_of=2026-03-31")
    # L1: 2000, 55 days late (4 February → 31 March) → 31–60, pme. R1: 600, not due, tpe.
    # L3 and L4 are closed: nothing of theirs is open.
    whole = a["buckets"]
    assert (whole["not_due"], whole["d31_60"], whole["total"]) == ("600.00", "2000.00", "2600.00")
    assert whole["d90_plus"] == "0.00"
    assert a["at_legal_stage"] == "2000.00"


async def test_the_open_portfolio_lists_and_totals_the_open_hand_off(legal: ReportsApi) -> None:
    listed = await legal.json("/v1/invoices?open_only=true")
    assert [row["number"] for row in listed["items"]] == ["L1", "R1"]
    assert listed["items"][0]["stage"] == "handed_off"

    debtors = {d["id"]: d for d in (await legal.json("/v1/debtors"))["items"]}
    # H owes L1's 2000 (L3 and L4 are closed, L2 paid).
    assert debtors["H"]["open_invoices"] == 1
    assert debtors["H"]["open_total"] == [{"amount": "2000.00", "currency": "EUR"}]

    forecast = await legal.json("/v1/reports/forecast")
    # R1 is expected (its due date passed: today); L1's date is the court's, not forecast.
    gross = sum(Decimal(w["gross"]) for w in forecast["weeks"])
    assert gross == Decimal("600.00")
    assert forecast["at_legal_stage"] == "2000.00"

    metrics = (await legal.http.get("/metrics")).text
    assert 'relance_open_amount{currency="EUR",stage="handed_off"} 2000.0' in metrics
    assert 'relance_open_amount{currency="EUR",stage="upcoming"} 600.0' in metrics


async def test_the_console_shows_the_same_legal_figures(legal: ReportsApi) -> None:
    accounts.add_user(
        legal.engine, "finance@relance.test", PersonRole.FINANCE, PASSWORD, Language.EN
    )
    token = accounts.sign_in(legal.engine, "finance@relance.test", PASSWORD)
    cookie = {"Cookie": f"relance_session={token}"}

    reports = await legal.http.get("/console/reports", headers=cookie)
    assert reports.status_code == 200, reports.text
    # This month (L2 was paid in March): nothing collected by legal action yet; at its end,
    # L1's 2000 with the partner, in the receivables, the aging and apart from the forecast.
    html = " ".join(reports.text.split())
    assert '<div id="collected-legal"><b>0.00</b>' in html
    assert '<div id="receivables-legal"><b>2000.00</b>' in html
    assert "With the legal partner : 2000.00" in html
    assert "Not forecast (the procedure says when): with the legal partner 2000.00" in html

    # L1's page still states the interest and indemnity owed (the partner claims them); the
    # abandoned L4 owes nothing more through us.
    open_file = await legal.http.get("/console/invoices/L1", headers=cookie)
    assert "Late-payment interest and indemnity" in open_file.text
    closed_file = await legal.http.get("/console/invoices/L4", headers=cookie)
    assert closed_file.status_code == 200
    assert "Late-payment interest and indemnity" not in closed_file.text
