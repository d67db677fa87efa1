"""Run a Relance worker: the invoice workflow and its activities, on one task queue."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from activities.calendar import business_moment, business_time
from activities.delivery import DeliveryActivities
from activities.email import EmailSender, build_sender
from activities.mailbox import MailboxActivities
from activities.messaging import MessagingActivities
from activities.notify import NotifyActivities
from activities.progress import ProgressActivities
from config import Settings
from messages import Renderer
from store.engine import make_engine
from store.migrate import upgrade
from workflows.client import connect
from workflows.invoice import InvoiceWorkflow
from workflows.mailbox import DebtorMailboxWorkflow

log = logging.getLogger("relance.worker")


def build_worker(
    client: Client,
    settings: Settings,
    engine: Engine,
    *,
    sender: EmailSender | None = None,
    renderer: Renderer | None = None,
    task_queue: str | None = None,
) -> Worker:
    progress = ProgressActivities(engine)
    messaging = MessagingActivities(
        engine, sender or build_sender(settings), renderer or Renderer(), settings
    )
    mailbox = MailboxActivities(client, messaging)
    delivery = DeliveryActivities(engine, messaging)
    threads = settings.worker_max_concurrent_activities
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[InvoiceWorkflow, DebtorMailboxWorkflow],
        activities=[
            delivery.deliver,
            delivery.record,
            business_moment,
            # The first released shape's activities: runs started before the machine use them.
            progress.record_progress,
            messaging.send_message,
            business_time,
            mailbox.enqueue_message,
            mailbox.send_batch,
            NotifyActivities(settings).notify_backoffice,
        ],
        # Store and SendGrid calls block: they run on a pool as large as the concurrency.
        activity_executor=ThreadPoolExecutor(max_workers=threads),
        max_concurrent_activities=threads,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_graceful_shutdown_seconds),
    )


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    client = await connect(settings, runtime=_runtime(settings))
    worker = build_worker(client, settings, engine)
    stop = stop or _stop_on_signals()
    log.info("worker polling task queue %r on %s", settings.task_queue, settings.temporal_target)
    async with worker:
        await stop.wait()
    log.info("worker stopped")


def _runtime(settings: Settings) -> Runtime | None:
    """A runtime serving the SDK's Prometheus metrics, when RELANCE_METRICS_BIND_ADDRESS is set."""
    if not settings.metrics_bind_address:
        return None
    metrics = PrometheusConfig(bind_address=settings.metrics_bind_address)
    return Runtime(telemetry=TelemetryConfig(metrics=metrics))


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


if __name__ == "__main__":
    from config import get_settings

    logging.basicConfig(level=logging.INFO)
    asyncio.run(run_worker(get_settings()))
