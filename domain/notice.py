"""The formal notice's deadline: the one place that computes it.

The playbook gives `notice_deadline_business_days` (8 by default) counted in the debtor's
country's business days, from the day the notice is sent or, with `notice_deadline_from:
receipt`, from the day the debtor received the registered letter (its acknowledgment of
receipt). The letter states the date; the collection waits for it before the next step.
"""

from __future__ import annotations

from datetime import date

from domain.calendar import add_business_days
from domain.playbook import Playbook


def deadline_after(start: date, days: int, country: str, subdivision: str | None = None) -> date:
    """`days` business days after `start` (`start` itself not counted)."""
    return add_business_days(start, days, country, subdivision)


def notice_deadline(
    playbook: Playbook,
    *,
    sent_on: date,
    received_on: date | None,
    country: str,
    subdivision: str | None = None,
) -> date | None:
    """The day the debtor must have paid by; None while it runs from a receipt not known yet."""
    days = playbook.notice_deadline_business_days
    if playbook.notice_deadline_from == "receipt":
        if received_on is None:
            return None
        return deadline_after(received_on, days, country, subdivision)
    return deadline_after(sent_on, days, country, subdivision)
