"""Business metrics for Prometheus at `/metrics`, read from the store at each scrape.

The worker serves Temporal's own metrics (task slots, latencies); these say how the book
stands: open amounts by stage, messages sent, approvals waiting, tasks overdue. Computed at
scrape time from the read model, so every API replica reports the same figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from store.portfolio import aware, pending_approvals, still_open
from store.tables import Interaction, InteractionStatus, Invoice, Task


class BusinessCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        with Session(self._engine) as session:
            open_amount = GaugeMetricFamily(
                "relance_open_amount",
                "Outstanding amount of open invoices (open hand-offs too, stage handed_off), "
                "by stage and currency",
                labels=["stage", "currency"],
            )
            for stage, currency, total in session.exec(
                select(Invoice.stage, Invoice.currency, func.sum(Invoice.outstanding))
                .where(still_open())
                .group_by(col(Invoice.stage), col(Invoice.currency))
            ).all():
                open_amount.add_metric([stage, currency], float(total or 0))
            yield open_amount

            # A gauge of a count that only grows: Prometheus' rate() works on it all the same,
            # and a restart of the API does not reset it (the store keeps the count).
            sent = GaugeMetricFamily(
                "relance_messages_sent",
                "Messages sent so far, by channel and playbook step",
                labels=["channel", "step"],
            )
            for channel, step, count in session.exec(
                select(Interaction.channel, Interaction.step_id, func.count())
                .where(Interaction.status == InteractionStatus.SENT)
                .group_by(col(Interaction.channel), col(Interaction.step_id))
            ).all():
                sent.add_metric([channel, step], float(count))
            yield sent

            waiting = pending_approvals(session)
            yield GaugeMetricFamily(
                "relance_approvals_waiting",
                "Escalations waiting for a decision",
                value=len(waiting),
            )
            oldest = max(
                ((now - aware(a.requested_at)).total_seconds() for a in waiting), default=0
            )
            yield GaugeMetricFamily(
                "relance_approval_oldest_age_seconds",
                "How long the oldest waiting approval has waited",
                value=oldest,
            )
            overdue = session.exec(
                select(func.count())
                .select_from(Task)
                .where(Task.status == "open", col(Task.due_at) < now)
            ).one()
            yield GaugeMetricFamily(
                "relance_tasks_overdue", "Open collector tasks past their due time", value=overdue
            )


def registry_for(engine: Engine) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BusinessCollector(engine))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
