"""Ops find invoices in the Temporal UI by stage, amount, due date and debtor: the workflow
keeps its search attributes current on the real dev server, with no personal data in them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.engine import Engine
from temporalio.testing import WorkflowEnvironment

from tests.workflows.harness import running_worker
from workflows import contract


async def test_search_attributes_follow_the_invoice(
    dev_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    async with running_worker(dev_env, engine, tmp_path, task_queue) as h:
        facts = await h.hand_over("INV-SA-1", due_in_days=30, debtor_id="C-77")
        await h.pay("INV-SA-1", "VIR-SA", "200.00")
        query = (
            f'{contract.DEBTOR_ID.name} = "C-77" AND {contract.STAGE.name} = "upcoming" '
            f"AND {contract.OUTSTANDING.name} = 1000"
        )
        found: list[str] = []
        for _ in range(50):  # visibility is eventually consistent
            found = [w.id async for w in dev_env.client.list_workflows(query)]
            if found:
                break
            await asyncio.sleep(0.2)
        assert found == [contract.workflow_id("INV-SA-1")]

        attributes = (await h.handle("INV-SA-1").describe()).typed_search_attributes
        due = attributes.get(contract.DUE_DATE)
        assert due is not None and due.date() == facts.due_date
        # Opaque ids, stages and amounts only: no name, no address.
        custom = {pair.key.name for pair in attributes if pair.key.name.startswith("Relance")}
        assert custom <= {key.name for key in contract.SEARCH_ATTRIBUTES}
        assert not any("dupont" in str(pair.value).lower() for pair in attributes)

        await h.pay("INV-SA-1", "VIR-SA-2", "1000.00")
        await h.handle("INV-SA-1").result()
        paid = f'{contract.DEBTOR_ID.name} = "C-77" AND {contract.STAGE.name} = "paid"'
        for _ in range(50):
            found = [w.id async for w in dev_env.client.list_workflows(paid)]
            if found:
                break
            await asyncio.sleep(0.2)
        assert found == [contract.workflow_id("INV-SA-1")]
