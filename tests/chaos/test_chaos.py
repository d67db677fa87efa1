"""Never a message after payment, never twice, never a lost payment: under faults.

Two dozen invoices on a clock where a day lasts a second, each through a scenario (paid at
once, after a reminder, in two parts, after the formal notice, while an escalation waits, after
the mediation; escalations approved, rejected, or left waiting), while:
- the worker (its own process, `python -m worker`) is SIGKILLed five times at seeded moments
  and restarted;
- the Temporal dev server is SIGKILLed once and restarted on the same SQLite file;
- the real `sendgrid` client talks to the loopback SendGrid, which answers about one request in
  five with a 500, 502, 503 or 429, and holds about one in ten for 1.5 s.

The run is `bench.chaos` (`python -m bench.chaos` runs a larger one); the checks are what a
debtor or the back office would notice. Its outcome does not depend on the interleaving: every
scenario waits for what it reacts to (a message received, an approval asked), and nothing is
timed but the generous limits.
"""

from __future__ import annotations

import sys

import pytest

from bench.chaos import ChaosConfig, Plan, run

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL, /proc"),
]


async def test_payments_messages_and_decisions_survive_kills() -> None:
    result = await run(
        ChaosConfig(invoices=24, worker_kills=5, server_kills=1, seed=12, chaos_seconds=40)
    )
    report = "\n".join(result.figures())
    print(report)  # shown with -s, and on failure

    # Every scenario ran, under every fault.
    assert set(result.plans.values()) == set(Plan), report
    assert len(result.ledger.worker_kills) == 5, report
    assert len(result.ledger.server_kills) == 1, report
    assert result.failures_injected > 0, report

    assert result.after_payment == [], report
    assert result.duplicates == [], report
    assert result.lost_payments == [], report
    assert result.wrong_end == [], report
    # A worker restarted under a dead server, or killed by the server's death, exits and is
    # restarted; it never dies of a signal it was not sent.
    assert all(code > 0 for code in result.ledger.worker_exits), report
