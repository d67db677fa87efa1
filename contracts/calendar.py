"""What the workflow asks the business calendar, and its answers (a local activity)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel

from domain.collection.state import CalendarQuestion


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


class BusinessMomentRequest(BaseModel):
    """When may an action really go out, for this debtor? (The machine's `CalendarQuestion`.)"""

    question: CalendarQuestion
    country: str
    timezone: str | None = None
    subdivision: str | None = None


class BusinessMoment(BaseModel):
    # A real calendar moment, in the debtor's zone.
    at: datetime
    note: str | None = None
