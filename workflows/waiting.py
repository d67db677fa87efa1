"""A durable sleep that a message can cut short: how a workflow waits for its next step."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow


class Wakeable:
    def __init__(self) -> None:
        self._woken = False

    def wake(self) -> None:
        """A handler changed the state: whoever sleeps re-plans now."""
        self._woken = True

    async def sleep_until(self, at: datetime) -> bool:
        """True when `at` came; False when `wake()` came first."""
        delay = at - workflow.now()
        if delay <= timedelta(0):
            return True
        self._woken = False
        try:
            # Always a timeout: switching between none and one would be non-deterministic.
            await workflow.wait_condition(lambda: self._woken, timeout=delay)
        except TimeoutError:
            return True
        return False
