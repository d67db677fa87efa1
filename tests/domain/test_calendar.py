"""The send calendar, checked against dates and offsets worked out by hand.

Reference facts used below (none computed by the code under test):

    2026: 1 Jan Thu; 1 May Fri; 8 May Fri; Ascension 14 May Thu; 14 Jul Tue; 25 Dec Fri.
    1 Jan 2027 is a Friday.
    Paris: CET = UTC+1, CEST = UTC+2; summer time 29 Mar 2026 → 25 Oct 2026 (last Sundays).
    New York: EST = UTC-5, EDT = UTC-4; summer time 8 Mar 2026 → 1 Nov 2026 (2nd Sun Mar, 1st
    Sun Nov).
    London: GMT = UTC+0 in winter. Berlin: same offsets as Paris.
    So 09:00 local = 08:00 UTC (Paris winter), 07:00 UTC (Paris summer), 14:00 UTC (New York
    winter), 13:00 UTC (New York summer), 09:00 UTC (London winter).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from types import MappingProxyType

import pytest
from pydantic import ValidationError

import domain.calendar as cal
from domain.calendar import (
    NoBusinessDayError,
    SendWindow,
    debtor_timezone,
    explain_shift,
    is_business_day,
    next_send_time,
)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def fr(planned: datetime, **kwargs: object) -> datetime:
    return next_send_time(planned, country="FR", **kwargs)  # type: ignore[arg-type]


# --- time zones -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "zone"),
    [
        ("FR", "Europe/Paris"),
        ("fr", "Europe/Paris"),
        ("BE", "Europe/Brussels"),
        ("DE", "Europe/Berlin"),
        ("GB", "Europe/London"),
        ("UK", "Europe/London"),
        ("US", "America/New_York"),
        ("CA", "America/Toronto"),
        ("ZZ", "UTC"),
    ],
)
def test_default_zone_per_country(country: str, zone: str) -> None:
    assert debtor_timezone(country).key == zone


def test_explicit_zone_wins_over_country() -> None:
    assert debtor_timezone("US", "America/Los_Angeles").key == "America/Los_Angeles"


@pytest.mark.parametrize("bad", ["Mars/Olympus_Mons", "", "../../etc/passwd", "Europe/"])
def test_bad_zone_is_a_value_error_naming_it(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        debtor_timezone("FR", bad)


def test_bad_zone_fails_next_send_time_too() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus_Mons"):
        next_send_time(utc(2026, 5, 12, 10), country="FR", timezone="Mars/Olympus_Mons")


# --- business days ----------------------------------------------------------------------------


def test_weekdays_and_weekends_in_france() -> None:
    assert is_business_day(date(2026, 5, 12), "FR")  # Tuesday
    assert not is_business_day(date(2026, 5, 9), "FR")  # Saturday
    assert not is_business_day(date(2026, 5, 10), "FR")  # Sunday


@pytest.mark.parametrize(
    "day",
    [
        date(2026, 1, 1),  # Jour de l'an
        date(2026, 5, 1),  # Fête du Travail
        date(2026, 5, 8),  # Victoire 1945
        date(2026, 5, 14),  # Ascension
        date(2026, 7, 14),  # Fête nationale
        date(2026, 11, 11),  # Armistice
        date(2026, 12, 25),  # Noël
    ],
)
def test_french_public_holidays_are_not_business_days(day: date) -> None:
    assert not is_business_day(day, "FR")


def test_french_holiday_is_a_business_day_elsewhere() -> None:
    # 14 July is only French; 8 May is not a German holiday.
    assert is_business_day(date(2026, 7, 14), "DE")
    assert is_business_day(date(2026, 5, 8), "DE")


def test_unsupported_country_counts_weekends_only() -> None:
    # "ZZ" is no country: Christmas (Friday) is an ordinary working day, Saturday is not.
    assert is_business_day(date(2026, 12, 25), "ZZ")
    assert not is_business_day(date(2026, 12, 26), "ZZ")
    # UTC zone, 09:00 UTC on Monday 28 December.
    assert next_send_time(utc(2026, 12, 26, 12), country="ZZ") == utc(2026, 12, 28, 9)
    # A subdivision cannot refine a calendar that does not exist; it is ignored, not an error.
    assert is_business_day(date(2026, 12, 25), "ZZ", "QQ")


def test_german_subdivision_holiday() -> None:
    epiphany = date(2026, 1, 6)  # Tuesday; a holiday in Bavaria, not nationally.
    assert is_business_day(epiphany, "DE")
    assert not is_business_day(epiphany, "DE", "BY")
    # ISO 3166-2, lower case and the package's alias all name Bavaria.
    assert not is_business_day(epiphany, "DE", "DE-BY")
    assert not is_business_day(epiphany, "de", "by")
    assert not is_business_day(epiphany, "DE", "Bayern")
    # 09:00 UTC = 10:00 Berlin (winter): fine nationally; in Bavaria → Wednesday 09:00 CET = 08:00Z
    planned = utc(2026, 1, 6, 9)
    assert next_send_time(planned, country="DE") == planned
    assert next_send_time(planned, country="DE", subdivision="BY") == utc(2026, 1, 7, 8)


def test_unknown_subdivision_of_known_country_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'XY'.*DE"):
        is_business_day(date(2026, 1, 6), "DE", "XY")


# --- next_send_time: weekends and holidays -----------------------------------------------------


def test_weekend_moves_to_monday_nine_local() -> None:
    # Saturday 9 May 2026 10:00Z → Monday 11 May 09:00 CEST = 07:00Z.
    assert fr(utc(2026, 5, 9, 10)) == utc(2026, 5, 11, 7)
    # Sunday late evening too.
    assert fr(utc(2026, 5, 10, 21, 30)) == utc(2026, 5, 11, 7)


@pytest.mark.parametrize(
    ("planned", "expected"),
    [
        # Fête du Travail, Friday 1 May → (weekend) → Monday 4 May 09:00 CEST.
        (utc(2026, 5, 1, 7), utc(2026, 5, 4, 7)),
        # Victoire 1945, Friday 8 May → Monday 11 May.
        (utc(2026, 5, 8, 9), utc(2026, 5, 11, 7)),
        # Ascension, Thursday 14 May → Friday 15 May.
        (utc(2026, 5, 14, 9), utc(2026, 5, 15, 7)),
        # Fête nationale, Tuesday 14 July → Wednesday 15 July.
        (utc(2026, 7, 14, 9), utc(2026, 7, 15, 7)),
        # Noël, Friday 25 December → (weekend) → Monday 28 December 09:00 CET = 08:00Z.
        (utc(2026, 12, 25, 9), utc(2026, 12, 28, 8)),
        # Thursday 31 December after the window (18:00 CET = 17:00Z) → Friday 1 January 2027 is
        # a holiday → weekend → Monday 4 January 2027 09:00 CET. Crosses a year boundary.
        (utc(2026, 12, 31, 17), utc(2027, 1, 4, 8)),
    ],
)
def test_french_holidays_move_to_next_business_day(planned: datetime, expected: datetime) -> None:
    assert fr(planned) == expected


def test_german_christmas_chain() -> None:
    # Thursday 24 Dec 2026 17:30Z = 18:30 CET (after the window) → 25 Dec holiday (Fri) →
    # 26 Dec (Sat, also a holiday) → Sunday → Monday 28 Dec 09:00 CET = 08:00Z.
    assert next_send_time(utc(2026, 12, 24, 17, 30), country="DE") == utc(2026, 12, 28, 8)


def test_british_observed_boxing_day() -> None:
    # 25 Dec 2026 Friday, Boxing Day on Saturday is observed on Monday 28 → Tuesday 29 Dec,
    # 09:00 GMT = 09:00Z.
    assert next_send_time(utc(2026, 12, 25, 10), country="GB") == utc(2026, 12, 29, 9)


# --- next_send_time: the send window ------------------------------------------------------------


@pytest.mark.parametrize(
    ("planned", "expected"),
    [
        # Tuesday 12 May 2026, Paris summer time (UTC+2).
        (utc(2026, 5, 12, 6, 59), utc(2026, 5, 12, 7)),  # 08:59 → 09:00 same day
        (utc(2026, 5, 12, 6, 59, 59), utc(2026, 5, 12, 7)),  # 08:59:59 → 09:00
        (utc(2026, 5, 12, 0, 0), utc(2026, 5, 12, 7)),  # 02:00 → 09:00
        (utc(2026, 5, 12, 7), utc(2026, 5, 12, 7)),  # 09:00 exactly: unchanged
        (utc(2026, 5, 12, 15, 59), utc(2026, 5, 12, 15, 59)),  # 17:59: unchanged
        (utc(2026, 5, 12, 15, 59, 59), utc(2026, 5, 12, 15, 59, 59)),  # 17:59:59: unchanged
        (utc(2026, 5, 12, 16), utc(2026, 5, 13, 7)),  # 18:00 exactly → Wednesday 09:00
        (utc(2026, 5, 12, 21, 45), utc(2026, 5, 13, 7)),  # 23:45 → Wednesday 09:00
        # 22:30Z Tuesday is already 00:30 Wednesday in Paris → Wednesday 09:00.
        (utc(2026, 5, 12, 22, 30), utc(2026, 5, 13, 7)),
        # Friday 15 May 18:00 CEST → Monday 18 May.
        (utc(2026, 5, 15, 16), utc(2026, 5, 18, 7)),
    ],
)
def test_send_window_edges(planned: datetime, expected: datetime) -> None:
    assert fr(planned) == expected


def test_custom_window() -> None:
    window = SendWindow(start=time(8, 30), end=time(12, 0))
    # Tuesday 12 May: 08:00 CEST → 08:30 CEST = 06:30Z; 12:00 CEST → Wednesday 08:30.
    assert fr(utc(2026, 5, 12, 6), window=window) == utc(2026, 5, 12, 6, 30)
    assert fr(utc(2026, 5, 12, 10), window=window) == utc(2026, 5, 13, 6, 30)
    assert fr(utc(2026, 5, 12, 9, 59), window=window) == utc(2026, 5, 12, 9, 59)


def test_result_is_utc_and_unchanged_means_same_instant() -> None:
    # 11:00 at +02:00 is 09:00Z = 11:00 CEST, inside the window.
    planned = datetime(2026, 5, 12, 11, 0, tzinfo=timezone(timedelta(hours=2)))
    result = fr(planned)
    assert result == utc(2026, 5, 12, 9)
    assert result.utcoffset() == timedelta(0)
    assert result.tzinfo is UTC


def test_naive_planned_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        fr(datetime(2026, 5, 12, 9))


def test_window_must_start_before_it_ends() -> None:
    with pytest.raises(ValidationError, match="before its end"):
        SendWindow(start=time(18), end=time(9))
    with pytest.raises(ValidationError, match="before its end"):
        SendWindow(start=time(9), end=time(9))
    with pytest.raises(ValidationError, match="without a zone"):
        SendWindow(start=time(9, tzinfo=UTC), end=time(18))
    # Strings parse (playbooks and settings are YAML/env).
    assert SendWindow.model_validate({"start": "08:00", "end": "17:30"}) == SendWindow(
        start=time(8), end=time(17, 30)
    )


def test_window_is_frozen() -> None:
    with pytest.raises(ValidationError):
        SendWindow().start = time(7)  # type: ignore[misc]


# --- next_send_time: daylight saving time --------------------------------------------------------


@pytest.mark.parametrize(
    ("planned", "expected"),
    [
        # Winter: Tuesday 24 March 2026 07:00 CET (06:00Z) → 09:00 CET = 08:00Z.
        (utc(2026, 3, 24, 6), utc(2026, 3, 24, 8)),
        # Friday 27 March 19:00Z = 20:00 CET → Monday 30 March, now summer: 09:00 CEST = 07:00Z.
        (utc(2026, 3, 27, 19), utc(2026, 3, 30, 7)),
        # On the change itself, Sunday 29 March 10:00Z → Monday 30 March 07:00Z.
        (utc(2026, 3, 29, 10), utc(2026, 3, 30, 7)),
        # 01:30Z Sunday 29 March = 03:30 CEST, just after the jump → Monday 07:00Z.
        (utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 7)),
        # Summer: Friday 23 October 18:00 CEST (16:00Z) → Monday 26 October, back to winter:
        # 09:00 CET = 08:00Z.
        (utc(2026, 10, 23, 16), utc(2026, 10, 26, 8)),
        # 00:30Z Sunday 25 October = 02:30 CEST (first pass through 02:xx) → Monday 08:00Z.
        (utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 8)),
        # Monday 26 October 07:30Z = 08:30 CET → 09:00 CET = 08:00Z (07:30Z would be 09:30 in
        # summer, so using last week's offset would have left it unchanged).
        (utc(2026, 10, 26, 7, 30), utc(2026, 10, 26, 8)),
    ],
)
def test_paris_across_dst(planned: datetime, expected: datetime) -> None:
    assert fr(planned) == expected


@pytest.mark.parametrize(
    ("planned", "expected"),
    [
        # Winter: Monday 2 March 2026 12:00Z = 07:00 EST → 09:00 EST = 14:00Z.
        (utc(2026, 3, 2, 12), utc(2026, 3, 2, 14)),
        # Saturday 7 March 15:00Z = 10:00 EST → Monday 9 March 09:00 EDT = 13:00Z.
        (utc(2026, 3, 7, 15), utc(2026, 3, 9, 13)),
        # Monday 9 March 12:59Z = 08:59 EDT → 13:00Z; 13:00Z = 09:00 EDT unchanged.
        (utc(2026, 3, 9, 12, 59), utc(2026, 3, 9, 13)),
        (utc(2026, 3, 9, 13), utc(2026, 3, 9, 13)),
        # Friday 30 October 22:00Z = 18:00 EDT → Monday 2 November (after the change on Sunday
        # 1 November) 09:00 EST = 14:00Z.
        (utc(2026, 10, 30, 22), utc(2026, 11, 2, 14)),
        # Monday 9 March 09:00Z is 05:00 EDT in New York, and 10:00 CET in Paris (the two
        # changes are three weeks apart).
        (utc(2026, 3, 9, 9), utc(2026, 3, 9, 13)),
    ],
)
def test_new_york_across_dst(planned: datetime, expected: datetime) -> None:
    assert next_send_time(planned, country="US") == expected


def test_explicit_zone_with_country_holidays() -> None:
    # A French debtor in Réunion (UTC+4, no DST) still gets metropolitan holidays with
    # country="FR": Friday 1 May 2026 → Monday 4 May 09:00 +04 = 05:00Z.
    assert fr(utc(2026, 5, 1, 6), timezone="Indian/Reunion") == utc(2026, 5, 4, 5)
    # Los Angeles, summer (UTC-7): Tuesday 12 May 15:00Z = 08:00 PDT → 16:00Z.
    assert next_send_time(
        utc(2026, 5, 12, 15), country="US", timezone="America/Los_Angeles"
    ) == utc(2026, 5, 12, 16)


def test_search_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    def every_day_a_holiday(country: str, subdivision: str | None, year: int) -> object:
        start = date(year, 1, 1)
        return MappingProxyType({start + timedelta(days=n): "Fête" for n in range(366)})

    monkeypatch.setattr(cal, "_holiday_names", every_day_a_holiday)
    with pytest.raises(NoBusinessDayError, match="FR"):
        fr(utc(2026, 5, 12, 9))


# --- explain_shift ---------------------------------------------------------------------------


def explain(planned: datetime, actual: datetime, **kwargs: object) -> str | None:
    return explain_shift(planned, actual, country=kwargs.pop("country", "FR"), **kwargs)  # type: ignore[arg-type]


def test_no_shift_no_text() -> None:
    planned = utc(2026, 5, 12, 9)
    assert explain(planned, planned) is None
    # The same instant in another zone is not a shift.
    assert explain(planned, datetime(2026, 5, 12, 11, tzinfo=timezone(timedelta(hours=2)))) is None


def test_explain_weekend() -> None:
    assert explain(utc(2026, 5, 9, 8), utc(2026, 5, 11, 7)) == (
        "moved from Saturday 2026-05-09 10:00 to Monday 2026-05-11 09:00 Europe/Paris: weekend"
    )


def test_explain_public_holiday_then_weekend() -> None:
    assert explain(utc(2026, 5, 1, 7), utc(2026, 5, 4, 7)) == (
        "moved from Friday 2026-05-01 09:00 to Monday 2026-05-04 09:00 Europe/Paris: "
        "public holiday: Fête du Travail, then weekend"
    )


def test_explain_single_holiday() -> None:
    assert explain(utc(2026, 5, 14, 9), utc(2026, 5, 15, 7)) == (
        "moved from Thursday 2026-05-14 11:00 to Friday 2026-05-15 09:00 Europe/Paris: "
        "public holiday: Ascension"
    )


def test_explain_window_before_start() -> None:
    assert explain(utc(2026, 5, 12, 6, 59), utc(2026, 5, 12, 7)) == (
        "moved from Tuesday 2026-05-12 08:59 to Tuesday 2026-05-12 09:00 Europe/Paris: "
        "outside the send window 09:00–18:00"
    )


def test_explain_window_after_end_then_weekend() -> None:
    assert explain(utc(2026, 5, 15, 16), utc(2026, 5, 18, 7)) == (
        "moved from Friday 2026-05-15 18:00 to Monday 2026-05-18 09:00 Europe/Paris: "
        "outside the send window 09:00–18:00, then weekend"
    )


def test_explain_german_christmas_lists_both_holidays() -> None:
    # Christmas 2025: Thursday 25 and Friday 26 December, then the weekend; 09:00 CET = 08:00Z.
    assert explain(utc(2025, 12, 25, 9), utc(2025, 12, 29, 8), country="DE") == (
        "moved from Thursday 2025-12-25 10:00 to Monday 2025-12-29 09:00 Europe/Berlin: "
        "public holidays: Erster Weihnachtstag, Zweiter Weihnachtstag, then weekend"
    )


def test_explain_weekend_then_holiday() -> None:
    # Saturday 4 April 2026, Easter Monday 6 April → Tuesday 7 April 09:00 CEST.
    assert explain(utc(2026, 4, 4, 12), utc(2026, 4, 7, 7)) == (
        "moved from Saturday 2026-04-04 14:00 to Tuesday 2026-04-07 09:00 Europe/Paris: "
        "weekend, then public holiday: Lundi de Pâques"
    )


def test_explain_operator_move_is_not_blamed_on_the_calendar() -> None:
    assert explain(utc(2026, 5, 9, 8), utc(2026, 5, 12, 8)) == (
        "moved from Saturday 2026-05-09 10:00 to Tuesday 2026-05-12 10:00 Europe/Paris: "
        "not required by the calendar (it allowed Monday 2026-05-11 09:00)"
    )


def test_holiday_names_ignore_the_process_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    # The package picks names from LANGUAGE/LANG when no language is passed; a worker started
    # with another locale must write the same history.
    cal._holiday_names.cache_clear()
    cal._resolve.cache_clear()
    monkeypatch.setenv("LANGUAGE", "en_US")
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    try:
        text = explain(utc(2026, 7, 14, 9), utc(2026, 7, 15, 7))
    finally:
        cal._holiday_names.cache_clear()
        cal._resolve.cache_clear()
    assert text == (
        "moved from Tuesday 2026-07-14 11:00 to Wednesday 2026-07-15 09:00 Europe/Paris: "
        "public holiday: Fête nationale"
    )
