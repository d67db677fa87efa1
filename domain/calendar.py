"""When a message may actually go out: business days and a send window in the debtor's time zone.

A playbook step is *planned* for a moment (usually 09:00 UTC on the step's calendar day, see
`domain.schedule`). A credit manager does not want a reminder landing on a Saturday, on 1 May or
at 22:00 local time, so the step is *sent* at `next_send_time(planned, ...)`: the first moment at
or after `planned` that falls on a business day of the debtor's country, inside the send window,
in the debtor's local time. `explain_shift` says why the two differ, for the invoice history.

Everything here is pure: callers pass the times, nothing reads the clock or the environment. The
workflow calls it from a local activity, so the answer is recorded in the Temporal history and a
later update of the holiday data (or of the tz database) cannot change what a replay sees.

The one thing cached is the holiday table per (country, subdivision, year), because the
`holidays` package takes tens of milliseconds to build one; the cache only ever holds the same
answer the package would give again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import BaseModel, ConfigDict, model_validator

# How far `next_send_time` looks for a business day. No real country has a month of public
# holidays in a row; hitting this means the holiday data (or a test double) is wrong.
MAX_SEARCH_DAYS = 31

# English weekday names, by `date.weekday()`. Not `strftime("%A")`: that follows the process
# locale (LC_TIME), and the history text must not depend on how the worker was started.
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_SATURDAY = 5

UTC_ZONE = ZoneInfo("UTC")

# Codes people use that are not ISO 3166-1 alpha-2 (the EU writes Greece "EL"; "UK" is common).
_COUNTRY_ALIASES = {"UK": "GB", "EL": "GR"}

# The time zone where most of a country's business happens. Countries spanning several zones
# (US, CA, BR, MX, AU, RU, ...) get their main business centre's zone: give the debtor an explicit
# IANA zone when that is wrong (a debtor in Los Angeles, in Réunion, in the Canaries...).
DEFAULT_TIMEZONES: Mapping[str, str] = MappingProxyType(
    {
        # Western and central Europe
        "FR": "Europe/Paris",
        "MC": "Europe/Monaco",
        "BE": "Europe/Brussels",
        "LU": "Europe/Luxembourg",
        "NL": "Europe/Amsterdam",
        "DE": "Europe/Berlin",
        "AT": "Europe/Vienna",
        "CH": "Europe/Zurich",
        "LI": "Europe/Vaduz",
        "IT": "Europe/Rome",
        "ES": "Europe/Madrid",
        "PT": "Europe/Lisbon",
        "GB": "Europe/London",
        "IE": "Europe/Dublin",
        "IS": "Atlantic/Reykjavik",
        "MT": "Europe/Malta",
        # Nordics and Baltics
        "DK": "Europe/Copenhagen",
        "SE": "Europe/Stockholm",
        "NO": "Europe/Oslo",
        "FI": "Europe/Helsinki",
        "EE": "Europe/Tallinn",
        "LV": "Europe/Riga",
        "LT": "Europe/Vilnius",
        # Central and eastern Europe
        "PL": "Europe/Warsaw",
        "CZ": "Europe/Prague",
        "SK": "Europe/Bratislava",
        "HU": "Europe/Budapest",
        "SI": "Europe/Ljubljana",
        "HR": "Europe/Zagreb",
        "RO": "Europe/Bucharest",
        "BG": "Europe/Sofia",
        "GR": "Europe/Athens",
        "CY": "Asia/Nicosia",
        "TR": "Europe/Istanbul",
        # French overseas territories have their own ISO codes (and their own holidays).
        "GP": "America/Guadeloupe",
        "MQ": "America/Martinique",
        "GF": "America/Cayenne",
        "RE": "Indian/Reunion",
        "YT": "Indian/Mayotte",
        "PM": "America/Miquelon",
        "NC": "Pacific/Noumea",
        "PF": "Pacific/Tahiti",
        # Africa (francophone trading partners first)
        "MA": "Africa/Casablanca",
        "DZ": "Africa/Algiers",
        "TN": "Africa/Tunis",
        "SN": "Africa/Dakar",
        "CI": "Africa/Abidjan",
        "CM": "Africa/Douala",
        "ZA": "Africa/Johannesburg",
        # Americas
        "US": "America/New_York",
        "CA": "America/Toronto",
        "MX": "America/Mexico_City",
        "BR": "America/Sao_Paulo",
        # Middle East and Asia-Pacific
        "IL": "Asia/Jerusalem",
        "AE": "Asia/Dubai",
        "IN": "Asia/Kolkata",
        "SG": "Asia/Singapore",
        "HK": "Asia/Hong_Kong",
        "CN": "Asia/Shanghai",
        "JP": "Asia/Tokyo",
        "AU": "Australia/Sydney",
        "NZ": "Pacific/Auckland",
    }
)


class SendWindow(BaseModel):
    """The local wall-clock hours during which messages may go out: [start, end)."""

    model_config = ConfigDict(frozen=True)

    start: time = time(9, 0)
    end: time = time(18, 0)

    @model_validator(mode="after")
    def _check(self) -> SendWindow:
        # The window is read in the debtor's zone; a time carrying its own offset would be
        # ambiguous about which zone it means.
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("send window times must be local wall-clock times, without a zone")
        if self.start >= self.end:
            raise ValueError(
                f"send window start {self.start:%H:%M} must be before its end {self.end:%H:%M}"
            )
        return self

    def describe(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M}"


DEFAULT_WINDOW = SendWindow()


class NoBusinessDayError(ValueError):
    """No business day within `MAX_SEARCH_DAYS`: the holiday data is wrong."""


def _normalise_country(country: str) -> str:
    code = country.strip().upper()
    return _COUNTRY_ALIASES.get(code, code)


def debtor_timezone(country: str, timezone: str | None = None) -> ZoneInfo:
    """The debtor's time zone.

    `timezone`, when given, is an IANA name ("Europe/Paris", "America/Chicago") and wins; an
    unknown or malformed name raises ValueError naming it. Otherwise the zone comes from the
    country (ISO 3166-1 alpha-2, case-insensitive; see `DEFAULT_TIMEZONES`). A country missing
    from that table gets UTC: messages still respect weekends and the window, read in UTC.
    """
    if timezone is not None:
        try:
            return ZoneInfo(timezone)
        # ZoneInfo raises ZoneInfoNotFoundError (a KeyError) for unknown names and ValueError
        # for malformed ones ("", absolute paths, ".."); callers get one clear error type.
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise ValueError(f"unknown time zone {timezone!r} (expected an IANA name)") from exc
    name = DEFAULT_TIMEZONES.get(_normalise_country(country))
    return ZoneInfo(name) if name is not None else UTC_ZONE


def _entity(country: str, subdivision: str | None) -> holidays.HolidayBase | None:
    """The package's (empty, unpopulated) calendar for a country, or None if it has none."""
    try:
        return holidays.country_holidays(country, subdiv=subdivision)
    except NotImplementedError:
        # The package raises NotImplementedError both for an unknown country and for an unknown
        # subdivision; only the first is "unsupported", so retry without the subdivision.
        if subdivision is None:
            return None
    try:
        holidays.country_holidays(country)
    except NotImplementedError:
        return None
    raise ValueError(f"unknown subdivision {subdivision!r} for country {country}")


def _normalise_subdivision(country: str, subdivision: str | None) -> str | None:
    """Accept "BY", "by", "DE-BY" (ISO 3166-2) or a package alias ("Bayern") for one code."""
    if subdivision is None:
        return None
    code = subdivision.strip()
    if code.upper().startswith(f"{country}-"):
        code = code[len(country) + 1 :]
    entity = _entity(country, None)
    if entity is None:
        return None  # weekends only: the subdivision has nothing to refine
    known = {c.casefold(): c for c in entity.subdivisions}
    known.update({a.casefold(): c for a, c in entity.subdivisions_aliases.items()})
    try:
        return known[code.casefold()]
    except KeyError:
        raise ValueError(
            f"unknown subdivision {subdivision!r} for country {country} "
            f"(known: {', '.join(entity.subdivisions)})"
        ) from None


@lru_cache(maxsize=1024)
def _holiday_names(country: str, subdivision: str | None, year: int) -> Mapping[date, str]:
    """Public holidays of one year, by date, named in the country's own language.

    Empty for a country the package does not cover. Returned as a read-only copy: the
    package's HolidayBase is a dict that grows itself on lookups of other years, which must not
    happen to a shared cached object.
    """
    entity = _entity(country, subdivision)
    if entity is None:
        return MappingProxyType({})
    table = holidays.country_holidays(
        country,
        subdiv=subdivision,
        years=year,
        # Observed days count: when Boxing Day falls on a Saturday, British offices close on the
        # Monday. The package puts an observed day in the year it falls in (US 2021-12-31 for
        # New Year 2022), so a per-year table is complete.
        observed=True,
        # Without an explicit language the package picks names from the process locale (LANG,
        # LANGUAGE); pin the country's own language so the history text is reproducible.
        language=entity.default_language,
    )
    return MappingProxyType(dict(table))


def _holiday(day: date, country: str, subdivision: str | None) -> str | None:
    return _holiday_names(country, subdivision, day.year).get(day)


@lru_cache(maxsize=1024)
def _resolve(country: str, subdivision: str | None) -> tuple[str, str | None]:
    # Cached too: checking a subdivision instantiates the package's calendar, which probes the
    # filesystem for translation files; that should not happen on every business-day question.
    code = _normalise_country(country)
    return code, _normalise_subdivision(code, subdivision)


def is_business_day(day: date, country: str, subdivision: str | None = None) -> bool:
    """Monday to Friday and not a public holiday of `country` (and `subdivision`, if given).

    Holidays come from the `holidays` package (observed days included). A country the package
    does not know counts weekends only. A subdivision unknown to a known country raises
    ValueError: silently falling back to national holidays would send on a regional holiday.
    """
    code, subdiv = _resolve(country, subdivision)
    return day.weekday() < _SATURDAY and _holiday(day, code, subdiv) is None


def add_business_days(day: date, count: int, country: str, subdivision: str | None = None) -> date:
    """The `count`-th business day after `day` (`day` itself not counted): a deadline written
    as a calendar date, e.g. "pay by 12 March 2026" for 8 business days from a formal notice."""
    if count < 0:
        raise ValueError(f"a number of business days cannot be negative, got {count}")
    found = day
    for _ in range(count):
        found += timedelta(days=1)
        while not is_business_day(found, country, subdivision):
            found += timedelta(days=1)
    return found


def _local_datetime(day: date, at: time, zone: ZoneInfo) -> datetime:
    # fold=0 (the default) is what PEP 495 gives for a wall time skipped by a spring-forward gap:
    # the offset from before the change, which lands just after the gap, i.e. still inside the
    # window. Windows starting at 09:00 never meet a gap in practice.
    return datetime.combine(day, at, tzinfo=zone)


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {moment}")


def next_send_time(
    planned: datetime,
    *,
    country: str,
    timezone: str | None = None,
    window: SendWindow = DEFAULT_WINDOW,
    subdivision: str | None = None,
) -> datetime:
    """The first moment at or after `planned` when a message to this debtor may go out (UTC).

    In the debtor's local time: a business day inside [window.start, window.end) is kept as is;
    earlier on a business day moves to window.start that day; at or after window.end, or on a
    weekend or public holiday, moves to window.start of the next business day. Local times are
    converted per day, so DST changes are honoured (09:00 Paris is 08:00 UTC in winter and
    07:00 UTC in summer).

    Raises ValueError for a naive `planned`, a bad time zone or subdivision, and
    NoBusinessDayError if no business day follows within MAX_SEARCH_DAYS.
    """
    _require_aware(planned, "planned")
    zone = debtor_timezone(country, timezone)
    code, subdiv = _resolve(country, subdivision)
    local = planned.astimezone(zone)
    day = local.date()
    if day.weekday() < _SATURDAY and _holiday(day, code, subdiv) is None:
        moment = local.time()
        if moment < window.start:
            return _local_datetime(day, window.start, zone).astimezone(UTC)
        if moment < window.end:
            return planned.astimezone(UTC)
    for offset in range(1, MAX_SEARCH_DAYS + 1):
        candidate = day + timedelta(days=offset)
        if candidate.weekday() < _SATURDAY and _holiday(candidate, code, subdiv) is None:
            return _local_datetime(candidate, window.start, zone).astimezone(UTC)
    raise NoBusinessDayError(
        f"no business day in {country} within {MAX_SEARCH_DAYS} days after {day}: "
        "check the holiday data"
    )


def _stamp(moment: datetime) -> str:
    return f"{_WEEKDAYS[moment.weekday()]} {moment:%Y-%m-%d %H:%M}"


def explain_shift(
    planned: datetime,
    actual: datetime,
    *,
    country: str,
    timezone: str | None = None,
    window: SendWindow = DEFAULT_WINDOW,
    subdivision: str | None = None,
) -> str | None:
    """Why a message planned at `planned` goes out at `actual`; None when they are the same moment.

    For example "moved from Saturday 2026-05-09 10:00 to Monday 2026-05-11 09:00 Europe/Paris:
    weekend". Reasons follow the skipped days in order, joined by ", then " ("outside the send
    window 09:00–18:00, then public holiday: Fête du Travail, then weekend"). Holiday names are
    in the country's own language, as the `holidays` package spells them. If `actual` is not the
    moment the calendar gives (an operator moved it), the text says so instead of inventing a
    reason. Both times are shown in the debtor's local zone.
    """
    _require_aware(planned, "planned")
    _require_aware(actual, "actual")
    if planned == actual:
        return None
    zone = debtor_timezone(country, timezone)
    code, subdiv = _resolve(country, subdivision)
    local_planned = planned.astimezone(zone)
    local_actual = actual.astimezone(zone)
    head = f"moved from {_stamp(local_planned)} to {_stamp(local_actual)} {zone.key}"

    expected = next_send_time(
        planned, country=country, timezone=timezone, window=window, subdivision=subdivision
    )
    if expected != actual:
        return (
            f"{head}: not required by the calendar (it allowed {_stamp(expected.astimezone(zone))})"
        )

    # Walk the days from the planned one to the day before the actual one, naming what made each
    # unusable; consecutive identical kinds are merged ("weekend" once, holidays listed).
    groups: list[tuple[str, list[str]]] = []

    def add(kind: str, name: str | None = None) -> None:
        if not groups or groups[-1][0] != kind:
            groups.append((kind, []))
        if name is not None:
            groups[-1][1].extend(name.split("; "))  # the package joins same-day names with "; "

    day = local_planned.date()
    while day <= local_actual.date():
        holiday = _holiday(day, code, subdiv)
        if day.weekday() >= _SATURDAY:
            add("weekend")
        elif holiday is not None:
            add("holiday", holiday)
        elif day == local_planned.date():
            # A business day: the planned time itself was outside the window (before start and
            # moved to start the same day, or at/after end and moved to a later day).
            add("window")
        day += timedelta(days=1)

    parts = []
    for kind, names in groups:
        if kind == "weekend":
            parts.append("weekend")
        elif kind == "window":
            parts.append(f"outside the send window {window.describe()}")
        else:
            label = "public holiday" if len(names) == 1 else "public holidays"
            parts.append(f"{label}: {', '.join(names)}")
    return f"{head}: {', then '.join(parts)}"
