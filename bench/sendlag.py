"""Send time minus planned time under the lifecycle benchmark's load, p50 and p99.

Both sides measure the same span: from the workflow task that decided to send (its
`workflow.now()`, just after the step's timer fired) to the send itself. Relance: for every
message sent to a debtor, `sent_at - planned_at` from the store (a debtor's mailbox, when it
gathers messages, is inside this span). Bare: for every no-op activity that follows a timer, its
start minus `workflow.now()` after the timer. Measured while the lifecycle benchmark's scenario
runs (`bench.lifecycle`), on both sides.

Run: `.venv/bin/python -m bench.sendlag --invoices 40`.
"""

from __future__ import annotations

import argparse
import asyncio

from bench.harness import header, percentile, row
from bench.lifecycle import Comparison, compare, describe


def print_sendlag(c: Comparison) -> None:
    r, b = c.relance.lags, c.bare.lags
    lines = [*describe(c), f"samples: relance {len(r)} messages, bare {len(b)} timed activities"]
    header("Send lag (send time - planned time) under the lifecycle load", lines)
    for pct in (50, 99):
        row(f"p{pct} lag", 1000 * percentile(r, pct), 1000 * percentile(b, pct), "ms", better="low")
    row("max lag", 1000 * max(r, default=0), 1000 * max(b, default=0), "ms", better="low")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=40)
    parser.add_argument("--day-seconds", type=float, default=0.05)
    args = parser.parse_args()
    print_sendlag(asyncio.run(compare(args.invoices, args.day_seconds, histories=10)))


if __name__ == "__main__":
    main()
