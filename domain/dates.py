"""The dates Relance takes for an invoice, a payment, a promise or a preview.

Earliest: 2015-01-01, the first half-year of the rate tables (domain.rates): before it no
late-payment interest can be computed, and an invoice due then would wait for a rate forever.
(Such a debt is long time-barred anyway: 5 years between traders, Code de commerce L110-4.)
Latest: ten years after today. An invoice or a payment plan reaching further is a typing
error (year 9999), not a business fact, and dates far out overflow the calendar arithmetic the
workflow does on them.
"""

from __future__ import annotations

from datetime import date
from typing import Final

EARLIEST_DATE: Final = date(2015, 1, 1)
YEARS_AHEAD: Final = 10


def latest_date(today: date) -> date:
    # 29 February ten years on may not exist: the day before then.
    try:
        return today.replace(year=today.year + YEARS_AHEAD)
    except ValueError:
        return today.replace(year=today.year + YEARS_AHEAD, day=28)


def check_date(day: date, today: date) -> date:
    """`day` if it is within the window, else a ValueError saying the window."""
    latest = latest_date(today)
    if not EARLIEST_DATE <= day <= latest:
        raise ValueError(
            f"must be between {EARLIEST_DATE.isoformat()} (where the interest rate tables start) "
            f"and {latest.isoformat()} (ten years from today), got {day.isoformat()}"
        )
    return day
