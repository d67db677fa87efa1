"""KPIs on a small seeded portfolio, each figure worked out by hand below (docs/kpis.md).

The portfolio, in EUR (period: March 2026, `from=2026-03-01&to=2026-03-31`):

| invoice | debtor | amount | issued     | due        | payments      | state         |
|---------|--------|--------|------------|------------|---------------|---------------|
| I1      | A pme  | 1000   | 2026-01-10 | 2026-02-09 | 1000 on 03-05 | paid          |
| I2      | A pme  | 2000   | 2026-02-15 | 2026-03-17 | 500 on 03-20  | overdue       |
| I3      | B tpe  | 3000   | 2026-03-05 | 2026-04-04 | —             | upcoming      |
| I4      | B tpe  | 600    | 2026-03-10 | 2026-03-25 | 600 on 03-25  | paid          |
| I5      | A pme  | 400    | 2026-01-20 | 2026-02-19 | —             | cancelled     |
| I6      | B tpe  | 1200   | 2025-12-01 | 2025-12-31 | —             | formal_notice |
"""

from __future__ import annotations

import pytest

from tests.reports.conftest import ReportsApi, Seed, at


@pytest.fixture
def march(reports_api: ReportsApi) -> ReportsApi:
    seed = Seed(reports_api.engine)
    seed.debtor("A", "pme")
    seed.debtor("B", "tpe")
    seed.invoice("I1", "A", "1000", "2026-01-10", "2026-02-09", stage="paid", outstanding="0")
    seed.payment("I1", "1000", "2026-03-05", "0")
    seed.invoice("I2", "A", "2000", "2026-02-15", "2026-03-17", outstanding="1500")
    seed.payment("I2", "500", "2026-03-20", "1500")
    seed.invoice("I3", "B", "3000", "2026-03-05", "2026-04-04", stage="upcoming")
    seed.invoice("I4", "B", "600", "2026-03-10", "2026-03-25", stage="paid", outstanding="0")
    seed.payment("I4", "600", "2026-03-25", "0")
    seed.invoice("I5", "A", "400", "2026-01-20", "2026-02-19", stage="cancelled")
    seed.invoice("I6", "B", "1200", "2025-12-01", "2025-12-31", stage="formal_notice")
    # Messages: three emails and a letter in March; one email in February (outside).
    seed.sent("I1", "reminder_1", "reminder", "email", "2026-02-20")
    seed.sent("I6", "reminder_1", "reminder", "email", "2026-03-02")
    seed.sent("I6", "formal_notice", "formal_notice", "letter", "2026-03-10")
    seed.sent("I2", "reminder_1", "reminder", "email", "2026-03-18")
    seed.sent("I4", "pre_due", "pre_reminder", "email", "2026-03-20")
    # The collectors' reminder of an approval is no message to a debtor: it counts nowhere.
    # The thanks after a payment cost an email, but remind of nothing: no step figure.
    seed.sent("I6", "approval_reminder", "approval_reminder", "email", "2026-03-11", "collectors")
    seed.sent("I1", "thank_you", "thank_you", "email", "2026-03-05")
    seed.call("I6", "2026-03-12")
    # Disputes: three opened in March (one in February, outside).
    seed.dispute("D1", "I2", "Quantity", at("2026-03-18"), at("2026-03-28"), at("2026-03-22"))
    seed.dispute(
        "D2", "I6", "quantity ", at("2026-03-05", 0), at("2026-03-15", 0), at("2026-03-21", 12)
    )
    seed.dispute("D3", "I3", "price", at("2026-03-25"), at("2026-04-04"))
    seed.dispute("D4", "I1", "price", at("2026-02-20"), at("2026-03-02"), at("2026-02-25"))
    return reports_api


async def test_kpis_of_march_match_the_hand_computation(march: ReportsApi) -> None:
    k = await march.json("/v1/reports/kpis?from=2026-03-01&to=2026-03-31&currency=EUR")

    # Receivables at the end of 31 March: I2 2000−500 = 1500, I3 3000, I6 1200 → 5700
    # (I1 and I4 paid, I5 cancelled by a credit note). Current (due on or after 31/03): I3, 3000.
    assert k["receivables_end"] == "5700.00"
    assert k["current_receivables_end"] == "3000.00"
    # Credit sales of March: I3 3000 + I4 600 = 3600.
    assert k["sales"] == "3600.00"
    assert k["days"] == 31
    # Receivables at the end of 28 February: I1 1000 + I2 2000 + I6 1200 = 4200.
    assert k["receivables_start"] == "4200.00"
    # Collected in March: 1000 (I1) + 500 (I2) + 600 (I4) = 2100.
    assert k["collected"] == "2100.00"

    # DSO, count-back from 5700: March's sales 3600 → 2100 left, 31 days; February's 2000 →
    # 100 left, 28 more days (59); January's 1000 (I5 cancelled, not a sale) exceed 100:
    # 100/1000 × 31 = 3.1 days. DSO = 62.1.
    assert k["dso"] == "62.1"
    # Best possible DSO: 3000 / 3600 × 31 = 25.83… → 25.8. ADD = 62.1 − 25.8 = 36.3.
    assert k["best_possible_dso"] == "25.8"
    assert k["average_days_delinquent"] == "36.3"
    # CEI = (4200 + 3600 − 5700) / (4200 + 3600 − 3000) × 100 = 2100 / 4800 × 100 = 43.75 → 43.8.
    assert k["cei_pct"] == "43.8"
    # Recovery: due in March and unpaid at the due date: I2 (2000; I4 was paid on its due date).
    # Paid after the due date by 31/03: 500. 500 / 2000 = 25.0 %.
    assert k["recovery_rate_pct"] == "25.0"
    # Settled in March: I1, 24 days after its due date (09/02 → 05/03); I4 on time, 0.
    # (24 + 0) / 2 = 12.0.
    assert k["average_days_to_pay_after_due"] == "12.0"

    # Costs: 4 emails to debtors (3 reminders, 1 thank-you) × 0.02 = 0.08; 1 letter × 2.00;
    # 1 call × 5.00; total 7.08.
    costs = {c["channel"]: (c["count"], c["total"]) for c in k["cost_by_channel"]}
    assert costs == {
        "email": (4, "0.08"),
        "sms": (0, "0.00"),
        "letter": (1, "2.00"),
        "phone": (1, "5.00"),
    }
    assert k["cost_total"] == "7.08"

    # Disputes opened in March: D1, D2, D3. Reasons compared trimmed and lower-cased.
    # Resolved: D1 in 4 days (on time), D2 in 16.5 days (after its deadline).
    # Median (4 + 16.5) / 2 = 10.25 → 10.3; within deadline 1 of 2 = 50.0 %.
    d = k["disputes"]
    assert d["count"] == 3
    assert d["by_reason"] == {"quantity": 2, "price": 1}
    assert d["resolved"] == 2
    assert d["median_days_to_resolve"] == "10.3"
    assert d["resolved_within_deadline_pct"] == "50.0"

    # Steps, N = 7: reminder_1 reached I6 (02/03) and I2 (18/03): neither settled by +7 days;
    # I2 paid 500 on 20/03, within 18/03..25/03. pre_due reached I4 on 20/03, settled 25/03
    # (within 20/03..27/03): 1 of 1, 600. formal_notice reached I6: nothing.
    steps = {(s["step_id"], s["template"]): s for s in k["steps"]}
    assert set(steps) == {
        ("formal_notice", "formal_notice"),
        ("pre_due", "pre_reminder"),
        ("reminder_1", "reminder"),
    }
    reminder = steps[("reminder_1", "reminder")]
    assert (reminder["invoices"], reminder["paid_within"]) == (2, 0)
    assert (reminder["paid_share_pct"], reminder["collected"]) == ("0.0", "500.00")
    pre_due = steps[("pre_due", "pre_reminder")]
    assert (pre_due["invoices"], pre_due["paid_within"]) == (1, 1)
    assert (pre_due["paid_share_pct"], pre_due["collected"]) == ("100.0", "600.00")
    assert steps[("formal_notice", "formal_notice")]["collected"] == "0.00"


async def test_a_shorter_window_changes_what_a_step_collected(march: ReportsApi) -> None:
    # N = 1: reminder_1's window for I2 is 18/03..19/03, before the 500 of 20/03.
    k = await march.json("/v1/reports/kpis?from=2026-03-01&to=2026-03-31&within_days=1")
    steps = {s["step_id"]: s for s in k["steps"]}
    assert steps["reminder_1"]["collected"] == "0.00"
    # pre_due's window is 20/03..21/03: I4 settled on 25/03, outside.
    assert steps["pre_due"]["paid_within"] == 0


async def test_aging_by_bucket_and_segment(march: ReportsApi) -> None:
    a = await march.json("/v1/reports/aging?as_of=2026-03-31")
    # I2: 1500, 14 days late (17/03 → 31/03) → 1–30, pme. I3: 3000, not due, tpe.
    # I6: 1200, 90 days late (31/12 → 31/03) → 61–90, tpe.
    rows = {r["segment"]: r for r in a["by_segment"]}
    assert rows["pme"]["d1_30"] == "1500.00"
    assert rows["pme"]["total"] == "1500.00"
    assert (rows["tpe"]["not_due"], rows["tpe"]["d61_90"]) == ("3000.00", "1200.00")
    assert rows["tpe"]["d90_plus"] == "0.00"
    whole = a["buckets"]
    assert (whole["not_due"], whole["d1_30"], whole["d61_90"]) == ("3000.00", "1500.00", "1200.00")
    assert whole["total"] == "5700.00"
    # One day later I6 is 91 days late: it moves to 90+.
    later = await march.json("/v1/reports/aging?as_of=2026-04-01")
    assert later["buckets"]["d90_plus"] == "1200.00"


async def test_a_period_ending_before_it_starts_is_refused(march: ReportsApi) -> None:
    response = await march.get("/v1/reports/kpis?from=2026-03-31&to=2026-03-01")
    assert response.status_code == 422
    assert "after" in response.json()["detail"]


async def test_kpis_need_an_api_key(march: ReportsApi) -> None:
    response = await march.http.get("/v1/reports/kpis")
    assert response.status_code == 401
