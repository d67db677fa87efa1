"""The window of dates Relance takes."""

from __future__ import annotations

from datetime import date

import pytest

from domain.dates import EARLIEST_DATE, check_date, latest_date

TODAY = date(2026, 12, 2)


def test_the_window_runs_from_the_rate_tables_to_ten_years_ahead() -> None:
    assert check_date(EARLIEST_DATE, TODAY) == date(2015, 1, 1)
    assert check_date(date(2036, 12, 2), TODAY) == date(2036, 12, 2)


@pytest.mark.parametrize(
    "day", [date(1, 1, 1), date(2014, 12, 31), date(2036, 12, 3), date(9999, 12, 31)]
)
def test_dates_outside_the_window_are_refused_naming_it(day: date) -> None:
    with pytest.raises(ValueError) as refused:
        check_date(day, TODAY)
    assert "between 2015-01-01" in str(refused.value) and "2036-12-02" in str(refused.value)


def test_ten_years_after_a_29_february_is_the_28th() -> None:
    assert latest_date(date(2028, 2, 29)) == date(2038, 2, 28)
