"""When a step may really go out: business days, the send window and the debtor's time zone.

Run as a local activity, so its answer is recorded in the workflow history: an update of the
holiday data never changes what a running invoice already planned (replays stay identical).
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel
from temporalio import activity

from domain.calendar import DEFAULT_WINDOW, debtor_timezone, explain_shift, next_send_time


class BusinessTimeRequest(BaseModel):
    day: date
    country: str
    timezone: str | None = None
    subdivision: str | None = None


class BusinessTime(BaseModel):
    # The playbook's intent: the start of the send window on the planned day, debtor's time.
    nominal: datetime
    # When it may actually go out, and why it moved (None when it did not).
    at: datetime
    note: str | None = None


@activity.defn(name="business_time")
def business_time(request: BusinessTimeRequest) -> BusinessTime:
    zone = debtor_timezone(request.country, request.timezone)
    nominal = datetime.combine(request.day, DEFAULT_WINDOW.start, tzinfo=zone)
    country, tz, subdivision = request.country, request.timezone, request.subdivision
    at = next_send_time(nominal, country=country, timezone=tz, subdivision=subdivision)
    note = explain_shift(nominal, at, country=country, timezone=tz, subdivision=subdivision)
    return BusinessTime(nominal=nominal, at=at, note=note)
