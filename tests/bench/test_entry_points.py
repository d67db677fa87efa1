"""Each benchmark runs end to end with tiny parameters and prints its comparison table.

Speed itself is never asserted (figures depend on the machine): this keeps the scripts from
rotting as the code they drive changes. They run side by side to keep the suite short.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# A figure row: a name, Relance's value, bare's value (or a dash) and the ratio (or a dash).
ROW = re.compile(r"^  (?P<name>\S.*?)\s+(?P<relance>\d+\.\d\d)\s+(?P<bare>\d+\.\d\d|—)\s+(\S+)$")

RUNS = {
    "lifecycle": ["--invoices", "2", "--day-seconds", "0.02"],
    "sendlag": ["--invoices", "1", "--day-seconds", "0.02"],
    "history": ["--invoices", "1", "--day-seconds", "0.02"],
    "intake": ["--invoices", "4", "--batch", "2"],
    "payments": ["--open", "4", "--payments", "2"],
    "deliver": ["--messages", "10"],
    "handover": ["--invoices", "4", "--batch", "2", "--per-debtor", "2"],
}
EXPECTED_ROWS = {
    "lifecycle": {"lifecycles/s (wall)", "worker CPU per lifecycle (ms)"},
    "sendlag": {"p50 lag (ms)", "p99 lag (ms)"},
    "history": {"history events", "workflow executions", "activity tasks"},
    "intake": {
        "POST /v1/invoices (invoices/s)",
        ":batch (invoices/s)",
        "batch vs same start (invoices/s)",
    },
    "payments": {"p50 latency (ms)", "p99 latency (ms)"},
    "deliver": {"CPU per message (ms)"},
    "handover": {"CPU per hand-over (ms)"},
}


async def _run(name: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        f"bench.{name}",
        *RUNS[name],
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_every_benchmark_prints_relance_bare_and_the_ratio() -> None:
    results = await asyncio.gather(*(_run(name) for name in RUNS))
    for name, (code, out, err) in zip(RUNS, results, strict=True):
        assert code == 0, f"bench.{name} failed:\n{err[-3000:]}"
        rows = {m["name"]: m for m in map(ROW.match, out.splitlines()) if m}
        missing = EXPECTED_ROWS[name] - set(rows)
        assert not missing, f"bench.{name} printed no {missing}:\n{out}"
        for figure in EXPECTED_ROWS[name]:
            match = rows[figure]
            assert float(match["relance"]) > 0, f"bench.{name}: {figure} is zero:\n{out}"
            assert match["bare"] != "—" and float(match["bare"]) > 0, f"{name}: {figure}\n{out}"
        assert "load" in out, f"bench.{name} does not say how loaded the machine was"
        # Progress goes to stderr, so long runs show they are alive.
        assert "…" in err
