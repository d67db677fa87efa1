"""When a step may really go out: business days, the send window and the debtor's time zone.

Run as a local activity, so its answer is recorded in the workflow history: an update of the
holiday data never changes what a running invoice already planned (replays stay identical).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import activity

from contracts.calendar import (
    BusinessMoment,
    BusinessMomentRequest,
    BusinessTime,
    BusinessTimeRequest,
)
from domain.calendar import DEFAULT_WINDOW, debtor_timezone, explain_shift, next_send_time


@activity.defn(name="business_time")
def business_time(request: BusinessTimeRequest) -> BusinessTime:
    zone = debtor_timezone(request.country, request.timezone)
    nominal = datetime.combine(request.day, DEFAULT_WINDOW.start, tzinfo=zone)
    country, tz, subdivision = request.country, request.timezone, request.subdivision
    at = next_send_time(nominal, country=country, timezone=tz, subdivision=subdivision)
    note = explain_shift(nominal, at, country=country, timezone=tz, subdivision=subdivision)
    return BusinessTime(nominal=nominal, at=at, note=note)


@activity.defn(name="business_moment")
def business_moment(request: BusinessMomentRequest) -> BusinessMoment:
    """The first moment in the send window, on a business day, not before the step's day (moved
    by the time the escalation was frozen) nor before `earliest`."""
    question = request.question
    country, tz, subdivision = request.country, request.timezone, request.subdivision
    zone = debtor_timezone(country, tz)
    nominal = datetime.combine(question.day, DEFAULT_WINDOW.start, tzinfo=zone)
    wanted = nominal + timedelta(seconds=question.delay_seconds)
    if question.earliest is not None:
        wanted = max(wanted, question.earliest)
    at = next_send_time(wanted, country=country, timezone=tz, subdivision=subdivision)
    note = explain_shift(wanted, at, country=country, timezone=tz, subdivision=subdivision)
    return BusinessMoment(at=at, note=note)
