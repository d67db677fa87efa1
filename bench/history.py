"""History events and workflow executions per lifecycle, per event type and per path.

Runs the lifecycle benchmark's scenario (`bench.lifecycle`), reads the histories of every
execution the invoices caused (their own runs and any other workflow they started), and compares
them with the bare workflow sized to the same number of activities and timers.

The day lasts 1 s by default, not the lifecycle benchmark's 0.05 s: the shape of a history
depends on the workflow being idle between steps (timers firing, a mailbox ending after its idle
days), which a saturated worker on a very short day never is.

Run: `.venv/bin/python -m bench.history --invoices 4` (about three minutes).
"""

from __future__ import annotations

import argparse
import asyncio

from bench.harness import header, progress, row
from bench.lifecycle import Comparison, compare, describe


def print_history(c: Comparison, bare_events: dict[str, float]) -> None:
    h = c.relance.histories
    assert h is not None
    bare_total = sum(bare_events.values())
    header("History per lifecycle: Relance against the bare workflow", describe(c))
    row("history events", h.total_events, bare_total, better="low")
    row("workflow executions", h.total_executions, 1.0, better="low")
    row("activity tasks", h.activities, bare_events.get("ACTIVITY_TASK_SCHEDULED", 0), better="low")
    row(
        "workflow tasks",
        h.per_lifecycle("WORKFLOW_TASK_COMPLETED"),
        bare_events.get("WORKFLOW_TASK_COMPLETED", 0),
        better="low",
    )
    print("\n  executions per lifecycle, per workflow type")
    for kind, count in sorted(h.executions.items()):
        print(f"    {kind:40} {count / h.lifecycles:8.2f}")
    print("\n  events per lifecycle, per path (the invoice's final stage)")
    for path, events in sorted(h.events_by_path.items()):
        print(f"    {path:40} {events / max(1, h.lifecycles_by_path[path]):8.1f}")
    print("\n  events per lifecycle, per type                     relance     bare")
    for kind in sorted(set(h.events) | set(bare_events), key=lambda k: -h.events.get(k, 0)):
        print(f"    {kind:46} {h.per_lifecycle(kind):8.1f} {bare_events.get(kind, 0):8.1f}")


async def _run(invoices: int, day_seconds: float) -> None:
    comparison = await compare(invoices, day_seconds, histories=invoices)
    progress("done")
    print_history(comparison, comparison.bare_history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=4)
    parser.add_argument("--day-seconds", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(_run(args.invoices, args.day_seconds))


if __name__ == "__main__":
    main()
