"""A workflow that reads the wall clock, in a module of its own: the strict sandbox re-imports
the module that defines a workflow, so it must import nothing but what a workflow may."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow


@workflow.defn(sandboxed=True)
class ReadsTheWallClock:
    @workflow.run
    async def run(self) -> str:
        # What a careless change to workflow code might do.
        return datetime.now().isoformat()
