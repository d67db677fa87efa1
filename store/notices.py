"""The back office's outbox: notices written with the facts that caused them, posted after.

A workflow decides a notice; the activity that records the transition writes it here in the
same transaction as its records. The worker's sender (activities/backoffice_outbox.py) then
claims what is due, posts it and writes back the outcome per URL. Nothing is lost in a crash:
an unposted notice is still here, and one posted but not marked is posted again (receivers
dedupe on the event id, as with any webhook).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from contracts.backoffice import BackofficeEvent
from store.tables import BackofficeNotice


def enqueue(session: Session, notices: Sequence[BackofficeEvent]) -> None:
    """Keep `notices` for the sender; one already kept (a retried activity) is left as it is."""
    if not notices:
        return
    ids = [n.event_id for n in notices]
    known = set(
        session.exec(
            select(BackofficeNotice.event_id).where(col(BackofficeNotice.event_id).in_(ids))
        ).all()
    )
    for notice in notices:
        if notice.event_id in known:
            continue
        known.add(notice.event_id)
        session.add(
            BackofficeNotice(
                event_id=notice.event_id,
                invoice_number=notice.invoice_number,
                body=notice.model_dump(mode="json"),
            )
        )


def due(session: Session, now: datetime, limit: int) -> list[BackofficeNotice]:
    """Notices to post now, oldest first, locked for this sender (others skip them)."""
    query = (
        select(BackofficeNotice)
        .where(col(BackofficeNotice.done_at).is_(None), BackofficeNotice.next_attempt_at <= now)
        .order_by(col(BackofficeNotice.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.exec(query).all())


def pending(session: Session) -> int:
    """Notices not yet done with (for tests and the operator's view)."""
    query = select(func.count()).where(col(BackofficeNotice.done_at).is_(None))
    return int(session.exec(query).one())


def settle(
    notice: BackofficeNotice,
    *,
    delivered: list[str],
    rejected: dict[str, str],
    now: datetime,
    retry_in: timedelta | None,
    failure: str | None,
) -> None:
    """Write an attempt's outcome: done (`retry_in` None) or due again after `retry_in`."""
    notice.attempts += 1
    notice.delivered = list(delivered)
    notice.rejected = dict(rejected)
    notice.failure = failure
    if retry_in is None:
        notice.done_at = now
    else:
        notice.next_attempt_at = now + retry_in
