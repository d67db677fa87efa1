"""The back office hears of what it acts on (credit hold, dunning flags): signed, once each."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

from sqlalchemy.engine import Engine
from temporalio.testing import WorkflowEnvironment

from domain.holds import DisputeOpen, DisputeOutcome, DisputeResolution
from domain.legal import LegalStatus
from domain.lifecycle import Stage
from domain.money import Money
from domain.signing import verify_signature
from tests.fakes.backoffice import Receiver, running_receiver
from tests.workflows.harness import Harness, running_worker
from tests.workflows.test_hand_off import handed_off, report
from workflows.invoice import InvoiceWorkflow

SECRET = "whsec_workflow_test_0123456789"


@asynccontextmanager
async def erp_and_worker(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> AsyncIterator[tuple[Receiver, Harness]]:
    """A worker whose back-office notifications go to a fake ERP, signed with SECRET."""
    with running_receiver() as erp:
        async with running_worker(
            time_env,
            engine,
            tmp_path,
            task_queue,
            backoffice_webhook_urls=[erp.url("/hooks/relance")],
            backoffice_webhook_secret=SECRET,
        ) as h:
            yield erp, h


async def test_stage_changes_disputes_and_payment_reach_the_back_office_signed(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    async with erp_and_worker(time_env, engine, tmp_path, task_queue) as (erp, h):
        number = "INV-HOOK"
        await h.hand_over(number, due_in_days=-4)
        handle = h.handle(number)

        async def overdue() -> bool:
            return (await h.status(number)).stage == Stage.OVERDUE

        await h.advance_until(overdue, max_days=1, step_hours=1)
        await handle.execute_update(
            InvoiceWorkflow.open_dispute,
            DisputeOpen(dispute_id="D-H", reason="wrong quantity", opened_by="erp"),
        )
        await handle.execute_update(
            InvoiceWorkflow.resolve_dispute,
            DisputeResolution(
                dispute_id="D-H", outcome=DisputeOutcome.REJECTED, resolved_by="claire"
            ),
        )
        await h.pay(number, "VIR-H", "1200.00")
        await h.ended(number)
        await h.notices_posted()

    # Sent without holding up the collection, so they may arrive in any order: receivers
    # order them by `occurred_at`.
    events = sorted(
        (json.loads(r.body) for r in erp.to("/hooks/relance")), key=lambda e: e["occurred_at"]
    )
    assert sorted((e["kind"], e["stage"]) for e in events) == [
        ("dispute_opened", "disputed"),
        ("dispute_resolved", "overdue"),
        # Paid after its due date: what it still owes (interest and the 40 €).
        ("late_payment_costs", "paid"),
        ("paid", "paid"),
        ("stage_changed", "overdue"),
        ("stage_changed", "upcoming"),
    ]
    kinds = [e["kind"] for e in events]
    assert kinds.index("dispute_opened") < kinds.index("dispute_resolved") < kinds.index("paid")
    # The `paid` event waits for the late-payment costs and carries them: paid on the day it
    # was handed over, 4 days after its due date; the 40 € indemnity (D441-5) is in the total
    # of a euro invoice, with the interest to the day of payment (L441-10 II).
    [paid] = [e for e in events if e["kind"] == "paid"]
    data = paid["data"]
    assert data["days_late"] == "4"
    assert data["indemnity"] == "40.00" and data["indemnity_currency"] == "EUR"
    assert data["currency"] == "EUR"
    assert Decimal(data["total"]) == Decimal(data["interest"]) + Decimal("40.00")
    assert Decimal(data["interest"]) > 0
    [costs] = [e for e in events if e["kind"] == "late_payment_costs"]
    assert costs["data"] == data
    assert events[-1]["outstanding"] == {"amount": "0.00", "currency": "EUR"}
    # Opaque ids only, and every request verifies with the shared secret.
    assert all(e["debtor_id"] == f"D-{number}" for e in events)
    assert "dupont" not in b"".join(r.body for r in erp.requests).decode().lower()
    for request in erp.requests:
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert verify_signature(SECRET, headers["relance-signature"], request.body)
    assert len({r.headers.get("Relance-Event-Id") for r in erp.requests}) == len(events)


async def test_the_legal_partners_file_reaches_the_back_office_until_abandoned(
    time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    async with erp_and_worker(time_env, engine, tmp_path, task_queue) as (erp, h):
        number = "INV-HOOK-LEGAL"
        await handed_off(h, number)
        await report(
            h,
            number,
            status=LegalStatus.ORDER_ISSUED,
            partner_reference="CAB-7",
            costs=Money.of("35.00", "EUR"),
            note="spoke to the debtor's accountant",
        )
        await report(h, number, status=LegalStatus.ABANDONED)
        await h.ended(number)
        await h.notices_posted()

    events = [json.loads(r.body) for r in erp.to("/hooks/relance")]
    legal = [e for e in events if e["kind"].startswith("legal_")]
    # (The last report and the end it brings happen at the same moment: compare as a set.)
    assert sorted((e["kind"], e["data"]["status"]) for e in legal) == [
        ("legal_abandoned", "abandoned"),
        ("legal_updated", "abandoned"),
        ("legal_updated", "order_issued"),
    ]
    for event in legal:
        assert event["stage"] == "handed_off"
        # Nothing was paid: the whole invoice is still owed when the partner gives up.
        assert event["outstanding"] == {"amount": "1200.00", "currency": "EUR"}
        assert (event["data"]["partner_reference"], event["data"]["costs"]) == ("CAB-7", "35.00")
    body = b"".join(r.body for r in erp.requests).decode()
    assert "claire" not in body and "accountant" not in body
    # The end is the partner's: no `paid`, `cancelled` or `written_off` follows.
    assert not {"paid", "cancelled", "written_off"} & {e["kind"] for e in events}
