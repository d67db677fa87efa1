"""The forecast's weeks and weights, worked by hand on a few open invoices."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from domain.kpis import OpenInvoice, Receivable, dso_count_back, forecast
from domain.selection import RiskBand

# Wednesday 4 March 2026: the forecast's first week starts Monday 2 March.
TODAY = date(2026, 3, 4)


def test_forecast_places_and_weights_each_expected_receipt() -> None:
    invoices = [
        # Due 10/03, debtor usually 5 days late → expected 15/03 (week 2 starts 09/03), low: 0.90.
        OpenInvoice(Decimal("1000"), date(2026, 3, 10), RiskBand.LOW, usual_days_late=5),
        # Overdue since February, no promise: expected today → week 1, high: 0.40.
        OpenInvoice(Decimal("500"), date(2026, 2, 1), RiskBand.HIGH),
        # Promised for 20/03 → week 3 (16/03), medium: 0.70.
        OpenInvoice(
            Decimal("800"), date(2026, 1, 15), RiskBand.MEDIUM, promised_on=date(2026, 3, 20)
        ),
        # A plan of 3 × 300 with 600 left: the last two installments (06/04 and 04/05), low.
        OpenInvoice(
            Decimal("600"),
            date(2026, 1, 15),
            RiskBand.LOW,
            installments=(
                (date(2026, 3, 2), Decimal("300")),
                (date(2026, 4, 6), Decimal("300")),
                (date(2026, 5, 4), Decimal("300")),
            ),
        ),
        # Disputed: nothing expected until it is resolved.
        OpenInvoice(Decimal("9999"), date(2026, 3, 5), RiskBand.LOW, disputed=True),
        # Due in 20 weeks: beyond the 13.
        OpenInvoice(Decimal("700"), TODAY + timedelta(weeks=20), RiskBand.LOW),
    ]
    weeks = forecast(invoices, TODAY)
    assert len(weeks) == 13
    assert weeks[0].start == date(2026, 3, 2)
    by_start = {w.start: (w.gross, w.expected) for w in weeks}
    assert by_start[date(2026, 3, 2)] == (Decimal("500"), Decimal("200.00"))  # 500 × 0.40
    assert by_start[date(2026, 3, 9)] == (Decimal("1000"), Decimal("900.00"))  # 1000 × 0.90
    assert by_start[date(2026, 3, 16)] == (Decimal("800"), Decimal("560.00"))  # 800 × 0.70
    assert by_start[date(2026, 4, 6)] == (Decimal("300"), Decimal("270.00"))  # 300 × 0.90
    assert by_start[date(2026, 5, 4)] == (Decimal("300"), Decimal("270.00"))
    assert sum(w.gross for w in weeks) == Decimal("2900")


def test_count_back_stops_inside_the_current_month() -> None:
    # 20 days into March: X (2000, issued 02/03) has 500 left after 1500 paid on 10/03; Y (from
    # February) is paid. 500 owed < March's sales of 2000 → 500 / 2000 × 20 days = 5.0.
    x = Receivable(
        "X",
        Decimal("2000"),
        date(2026, 3, 2),
        date(2026, 4, 1),
        payments=((date(2026, 3, 10), Decimal("1500")),),
    )
    y = Receivable(
        "Y",
        Decimal("500"),
        date(2026, 2, 2),
        date(2026, 3, 4),
        payments=((date(2026, 3, 3), Decimal("500")),),
    )
    assert dso_count_back([x, y], date(2026, 3, 20)) == Decimal("5.0")
