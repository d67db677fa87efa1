"""The worker's sender of back-office notices: posts what the outbox holds, retries the rest.

Invoices on the rules' second edition do not run an activity per notice: the notice is written
with the records that decided it (store/notices.py), and this sender posts it. That takes three
history events and a workflow task per notice off every invoice, and an unreachable ERP retries
here, not in the invoice's history. The retry schedule is the activity's: 10 s doubling to 1 h,
for up to three days, then the notice is given up, logged and kept with its reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from activities.notify import Attempt, BackofficePoster, rejections
from config import Settings
from contracts.backoffice import BackofficeEvent
from store import notices as outbox
from store.engine import transaction
from store.tables import BackofficeNotice

log = logging.getLogger("relance.notify")

FIRST_RETRY = timedelta(seconds=10)
LONGEST_RETRY = timedelta(hours=1)
GIVE_UP_AFTER = timedelta(days=3)
# Notices posted in one pass before the sender looks at its stop flag again.
PASS_LIMIT = 50


class NoticeSender:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        poster: BackofficePoster | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._poster = poster or BackofficePoster(settings)
        self._clock = clock

    async def run(self, stop: asyncio.Event, interval: float = 0.5) -> None:
        """Post due notices until `stop` is set; a store or network hiccup is logged, not fatal."""
        while not stop.is_set():
            try:
                posted = await asyncio.to_thread(self.send_due)
            except Exception:
                log.exception("back-office outbox: a pass failed; trying again shortly")
                posted = 0
            if posted >= PASS_LIMIT:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    def send_due(self) -> int:
        """One pass: each due notice in a transaction of its own (a slow receiver holds one
        row, never the outbox). The number of notices tried."""
        tried = 0
        while tried < PASS_LIMIT:
            with transaction(self._engine) as session:
                now = self._clock()
                notices = outbox.due(session, now, limit=1)
                if not notices:
                    return tried
                self._attempt(notices[0], now)
            tried += 1
        return tried

    def _attempt(self, notice: BackofficeNotice, now: datetime) -> None:
        event = BackofficeEvent.model_validate(notice.body)
        attempt = self._poster.post(event, notice.delivered, notice.rejected)
        if attempt.finished:
            failure = f"rejected: {rejections(attempt)}" if attempt.rejected else None
            if failure:
                log.warning("event %s %s", event.event_id, failure)
            _settle(notice, attempt, now, None, failure)
            return
        reasons = "; ".join(attempt.unavailable)
        if now - _aware(notice.created_at) >= GIVE_UP_AFTER:
            failure = f"given up after {GIVE_UP_AFTER.days} days: {reasons}"
            log.warning("event %s %s", event.event_id, failure)
            _settle(notice, attempt, now, None, failure)
            return
        # 10 s doubling; the exponent is capped long after the hour is reached.
        retry_in = min(FIRST_RETRY * 2 ** min(notice.attempts, 16), LONGEST_RETRY)
        _settle(notice, attempt, now, retry_in, reasons)


def _settle(
    notice: BackofficeNotice,
    attempt: Attempt,
    now: datetime,
    retry_in: timedelta | None,
    failure: str | None,
) -> None:
    outbox.settle(
        notice,
        delivered=attempt.delivered,
        rejected=attempt.rejected,
        now=now,
        retry_in=retry_in,
        failure=failure,
    )


def _aware(moment: datetime) -> datetime:
    # SQLite hands datetimes back without their zone; the store writes UTC only.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@contextlib.asynccontextmanager
async def sending_notices(engine: Engine, settings: Settings) -> AsyncIterator[None]:
    """Run the sender beside a worker while the block runs (nothing to do without a URL)."""
    if not settings.backoffice_webhook_urls:
        yield
        return
    stop = asyncio.Event()
    sender = asyncio.create_task(NoticeSender(engine, settings).run(stop))
    try:
        yield
    finally:
        stop.set()
        await sender
