"""Run a Relance worker: the invoice workflow and its activities, on one task queue."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.calendar import business_moment, business_time
from activities.delivery import DeliveryActivities
from activities.email import EmailSender, build_sender
from activities.law import LawActivities
from activities.mailbox import MailboxActivities
from activities.messaging import MessagingActivities
from activities.notice_sender import sending_notices
from activities.notify import NotifyActivities
from activities.portal_notice import PortalNoticeActivities
from activities.progress import ProgressActivities
from config import Settings
from domain.rates import RateTable, provisional_warning
from messages import Renderer
from store.engine import make_engine
from store.migrate import upgrade
from workflows.client import connect
from workflows.invoice import InvoiceWorkflow
from workflows.mailbox import DebtorMailboxWorkflow
from workflows.portal_notice import PortalNoticeWorkflow

log = logging.getLogger("relance.worker")


def install_rates(settings: Settings, today: date) -> RateTable:
    """Read the late-payment rates the activities compute with; warn ops when today's
    half-year is not confirmed yet (formal notices then say "provisional")."""
    rates = settings.install_rates()
    warning = provisional_warning(rates, today)
    if warning:
        log.warning(warning)
    return rates


def build_worker(
    client: Client,
    settings: Settings,
    engine: Engine,
    *,
    sender: EmailSender | None = None,
    renderer: Renderer | None = None,
    task_queue: str | None = None,
    messaging: MessagingActivities | None = None,
) -> Worker:
    install_rates(settings, datetime.now(UTC).date())
    progress = ProgressActivities(engine)
    messaging = messaging or MessagingActivities(
        engine, sender or build_sender(settings), renderer or Renderer(), settings
    )
    mailbox = MailboxActivities(client, messaging)
    delivery = DeliveryActivities(engine, messaging)
    threads = settings.worker_max_concurrent_activities
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[InvoiceWorkflow, DebtorMailboxWorkflow, PortalNoticeWorkflow],
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
            LawActivities(settings).late_payment_costs,
            PortalNoticeActivities(messaging).send_portal_notice,
        ],
        # Store and SendGrid calls block: they run on a pool as large as the concurrency.
        activity_executor=ThreadPoolExecutor(max_workers=threads),
        max_concurrent_activities=threads,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_cached_workflows=settings.worker_max_cached_workflows,
        workflow_runner=sandbox_runner(settings),
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_graceful_shutdown_seconds),
    )


def sandbox_runner(settings: Settings) -> SandboxedWorkflowRunner:
    restrictions = SandboxRestrictions.default
    if settings.worker_sandbox_passthrough_all:
        restrictions = restrictions.with_passthrough_all_modules()
    return SandboxedWorkflowRunner(restrictions=restrictions)


class WorkerFailed(RuntimeError):
    """The worker cannot go on (Temporal unreachable at start, a fatal error of the SDK's
    worker): its process ends with a non-zero code, and its supervisor starts it again."""


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    try:
        client = await connect(settings, runtime=_runtime(settings))
    except RuntimeError as err:
        raise _failed(f"cannot reach Temporal at {settings.temporal_target}", err) from err
    worker = build_worker(client, settings, engine)
    stop = stop or _stop_on_signals()
    log.info("worker polling task queue %r on %s", settings.task_queue, settings.temporal_target)
    try:
        async with worker, sending_notices(engine, settings):
            await stop.wait()
    except Exception as err:
        # The SDK ends its worker on an error it does not retry (a poll refused for good);
        # a process that goes on without polling would look alive and do nothing.
        raise _failed("the worker stopped on a fatal error", err) from err
    log.info("worker stopped")


def _failed(what: str, err: Exception) -> WorkerFailed:
    message = f"{what} ({type(err).__name__}: {err}); exiting so that its supervisor restarts it"
    log.critical(message)
    return WorkerFailed(message)


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
    try:
        asyncio.run(run_worker(get_settings()))
    except WorkerFailed:
        raise SystemExit(1) from None  # logged as it happened
