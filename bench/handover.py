"""CPU per hand-over in the API's own process, against a raw `start_workflow` from the same one.

`bench.intake` measures the API as it runs (uvicorn in a process of its own, requests in flight
at once), which on a shared machine varies by a fifth from run to run. This one takes the same
hand-over and runs it in this process through the ASGI app (no HTTP server: routing,
validation, authentication, the store's writes, the playbook's choice, the start), one request
at a time, then as many raw starts of a bare workflow on the same dev server. Only this
process's CPU is counted (the server is a child of its own), so the figures hold still enough
to compare two versions, and `valgrind --tool=callgrind` can count the instructions of the
difference between two sizes.

Run: `.venv/bin/python -m bench.handover --invoices 300` (`--profile` prints where it goes;
`--batch 100` hands them over through `POST /v1/invoices:batch`, 100 a request).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import httpx

from api.app import create_app
from bench.harness import Cost, bench_stack, header, load, profiled, progress, row
from bench.intake import invoice_body, post_batches, raw_starts


async def relance(
    http: httpx.AsyncClient, bodies: list[dict[str, Any]], batch: int, profile: bool
) -> Cost:
    with profiled(profile, top=45):
        started = Cost.now()
        if batch:
            await post_batches(http, bodies, batch, "batch")
        else:
            for body in bodies:
                (await http.post("/v1/invoices", json=body)).raise_for_status()
        return Cost.now() - started


async def run(count: int, per_debtor: int, batch: int, profile: bool) -> None:
    async with bench_stack(86400.0) as bench:
        app = create_app(bench.settings, client=bench.client, engine=bench.engine)
        headers = {"Authorization": f"Bearer {bench.api_key()}"}
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=transport, base_url="http://relance.test", headers=headers
            ) as http,
        ):
            # One first: imports and caches warm, as on a server that has been up.
            (await http.post("/v1/invoices", json=invoice_body("W", 0, 1))).raise_for_status()
            how = f"in batches of {batch}" if batch else "one at a time"
            progress(f"{count} hand-overs through the app, {how}")
            bodies = [invoice_body("H", i, per_debtor) for i in range(count)]
            cost = await relance(http, bodies, batch, profile)
        progress(f"{count} raw starts, one at a time")
        started = Cost.now()
        await raw_starts(bench, count, "raw starts", at_once=1)
        raw = Cost.now() - started
    per = 1000 / count
    header(
        "Hand-over: the API's work in its own process, against a raw start_workflow",
        [
            f"{count} invoices, {per_debtor} per debtor, "
            + (f"in batches of {batch} (raw starts one at a time)" if batch else "one at a time"),
            f"load {load()}",
        ],
    )
    row("CPU per hand-over", cost.cpu * per, raw.cpu * per, "ms", better="low")
    row("  of which user (Python)", cost.user * per, raw.user * per, "ms", better="low")
    row("wall per hand-over", cost.wall * per, raw.wall * per, "ms", better="low")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=300)
    parser.add_argument("--per-debtor", type=int, default=20, help="invoices sharing a debtor")
    parser.add_argument(
        "--batch", type=int, default=0, help="hand over through :batch, this many a request"
    )
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile")
    args = parser.parse_args()
    asyncio.run(
        run(max(1, args.invoices), max(1, args.per_debtor), max(0, args.batch), args.profile)
    )


if __name__ == "__main__":
    main()
