"""The invoice page's forms, each turned into the request the REST API takes and handed to
the same collection service the API calls. No rule lives here: the service and the workflow
decide what is allowed; this only reads form fields."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.engine import Engine
from temporalio.client import Client

from api.auth import Principal
from api.collection_schemas import (
    CancelCreate,
    DisputeCreate,
    InstallmentIn,
    PauseCreate,
    PlanCreate,
    PlanDecisionCreate,
    ResumeCreate,
)
from api.console.accounts import Action
from api.services import collection, write_offs
from api.write_off_schemas import WriteOffCreate
from config import Settings
from store.people import PersonRole

Fields = dict[str, str]


@dataclass(frozen=True)
class Call:
    engine: Engine
    client: Client
    settings: Settings
    number: str
    principal: Principal


def installments(text: str) -> list[InstallmentIn]:
    """One installment a line, `YYYY-MM-DD AMOUNT`."""
    found = []
    for n, line in enumerate(text.strip().splitlines(), 1):
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"installment line {n}: write `YYYY-MM-DD AMOUNT`, got {line!r}")
        found.append(InstallmentIn.model_validate({"due_date": parts[0], "amount": parts[1]}))
    return found


def _dispute(c: Call, f: Fields) -> Awaitable[Any]:
    body = DisputeCreate(reason=f.get("reason", ""))
    return collection.open_dispute(c.engine, c.client, c.settings, c.number, body, c.principal)


def _plan(c: Call, f: Fields) -> Awaitable[Any]:
    body = PlanCreate(
        installments=installments(f.get("installments", "")), comment=f.get("comment", "")
    )
    return collection.propose_plan(c.engine, c.client, c.settings, c.number, body, c.principal)


def _plan_decision(c: Call, f: Fields) -> Awaitable[Any]:
    body = PlanDecisionCreate(approve=f.get("decision") == "approve", comment=f.get("comment", ""))
    plan = f.get("plan_id", "")
    return collection.decide_plan(c.engine, c.client, c.settings, c.number, plan, body, c.principal)


def _pause(c: Call, f: Fields) -> Awaitable[Any]:
    until = date.fromisoformat(f["until"]) if f.get("until") else None
    body = PauseCreate(reason=f.get("reason", ""), until=until)
    return collection.pause(c.engine, c.client, c.settings, c.number, body, c.principal)


def _resume(c: Call, f: Fields) -> Awaitable[Any]:
    body = ResumeCreate(comment=f.get("comment", ""))
    return collection.resume(c.engine, c.client, c.settings, c.number, body, c.principal)


def _write_off(c: Call, f: Fields) -> Awaitable[Any]:
    body = WriteOffCreate(reason=f.get("reason", ""))
    return write_offs.write_off(c.engine, c.client, c.settings, c.number, body, c.principal)


def _cancel(c: Call, f: Fields) -> Awaitable[Any]:
    body = CancelCreate(
        reason=f.get("reason", ""), credit_note_reference=f.get("credit_note_reference", "")
    )
    return collection.cancel(c.engine, c.client, c.settings, c.number, body, c.principal)


# The form's name in the URL → who may use it, and the service call it makes.
INVOICE_ACTIONS: dict[
    str, tuple[frozenset[PersonRole], Callable[[Call, Fields], Awaitable[Any]]]
] = {
    "dispute": (Action.DISPUTE, _dispute),
    "plan": (Action.PLAN, _plan),
    "plan-decision": (Action.PLAN, _plan_decision),
    "pause": (Action.PAUSE, _pause),
    "resume": (Action.PAUSE, _resume),
    "write-off": (Action.WRITE_OFF, _write_off),
    "cancel": (Action.CANCEL, _cancel),
}
