"""The one builder of every key: messages, consolidated days, events, approvals, tasks.

Keys are built from stable ids only (invoice number, step id, references), never from names or
addresses, so they can travel through Temporal, SendGrid custom args and logs.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from domain.playbook import Channel, Recipient


def message_key(invoice_number: str, step_id: str, channel: Channel, recipient: Recipient) -> str:
    """`<invoice>:<step>:<channel>[:<recipient>]`: a message is sent at most once under it."""
    key = f"{invoice_number}:{step_id}:{channel.value}"
    return key if recipient == Recipient.DEBTOR else f"{key}:{recipient.value}"


def day_key(debtor_id: str, channel: Channel, day: date) -> str:
    """`debtor:<id>:<channel>:<day>`: the debtor's one message of the day on a channel."""
    return f"debtor:{debtor_id}:{channel.value}:{day.isoformat()}"


def approval_id(invoice_number: str, step_id: str, round_: int) -> str:
    return f"{invoice_number}:{step_id}:{round_}"


def task_id(invoice_number: str, kind: Literal["call", "dispute", "plan"], ref: str) -> str:
    """Collector task ids: `<invoice>:dispute:<id>`, `<invoice>:plan:<id>`, `<invoice>:<step>:call`
    (the API and the tests address tasks by these)."""
    if kind == "call":
        return f"{invoice_number}:{ref}:call"
    return f"{invoice_number}:{kind}:{ref}"


def contact_task_id(invoice_number: str, step_id: str) -> str:
    """A task asking a person to correct the contact: nothing of the step reached the debtor."""
    return f"{invoice_number}:{step_id}:contact"


def check_task_id(invoice_number: str, message: str) -> str:
    """A task asking a person whether a message whose outcome is unknown went out."""
    return f"{invoice_number}:check:{message}"


def limitation_task_id(invoice_number: str, limitation_date: date) -> str:
    """The warning that the claim becomes time-barred after `limitation_date`: one per date."""
    return f"{invoice_number}:limitation:{limitation_date.isoformat()}"


def backoffice_event_id(invoice_number: str, kind: str, key: str | int) -> str:
    """`<invoice>:<kind>:<revision or key>`: the same fact always gets the same id, in a retry,
    a replay or after continue-as-new, so receivers can dedupe on it."""
    return f"{invoice_number}:{kind}:{key}"
