"""When a playbook step is due, on a clock whose day may be shorter than a real one.

Production runs real days. Demos and acceptance runs shrink every calendar distance by
`day_seconds / 86400` around an anchor (the moment the invoice was handed over), so a 60-day
scenario plays out in two minutes while keeping its shape.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

REAL_DAY = timedelta(days=1)
# Messages planned for a calendar day go out in the morning (UTC until the calendar knows the
# debtor's time zone).
SEND_TIME = time(9, 0, tzinfo=UTC)


class Clock:
    def __init__(self, anchor: datetime, day_seconds: float) -> None:
        self.anchor = anchor
        self.scale = day_seconds / REAL_DAY.total_seconds()

    def days(self, count: float) -> timedelta:
        """A duration of `count` days on this clock."""
        return count * REAL_DAY * self.scale

    def planned_at(self, due_date: date, offset_days: int) -> datetime:
        return self.compress(datetime.combine(due_date + timedelta(days=offset_days), SEND_TIME))

    def compress(self, real: datetime) -> datetime:
        """The moment on this clock that stands for the real calendar moment `real`."""
        return self.anchor + (real - self.anchor) * self.scale

    def expand(self, moment: datetime) -> datetime:
        """The real calendar moment that `moment` on this clock stands for."""
        if self.scale == 1:
            return moment
        return self.anchor + (moment - self.anchor) / self.scale

    def calendar_date(self, moment: datetime) -> date:
        """The calendar day `moment` stands for (what interest and 'days late' count)."""
        if self.scale == 1:
            return moment.date()
        return (self.anchor + (moment - self.anchor) / self.scale).date()
