"""Playbooks: a collection scenario as validated data.

A playbook is a YAML file; a bad one is refused at load time with the file, the step and the
reason. The workflow receives the validated model at start, so a running invoice keeps the
playbook version it started with whatever happens to the file afterwards.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from domain.lifecycle import ESCALATION_ORDER, Stage

DEFAULT_PLAYBOOKS_DIR = Path(__file__).resolve().parent.parent / "playbooks"
_STEP_ID = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    LETTER = "letter"
    PHONE = "phone"


class Recipient(StrEnum):
    DEBTOR = "debtor"
    MEDIATOR = "mediator"
    LEGAL_PARTNER = "legal_partner"
    # Internal: the collectors' shared inbox (approval reminders).
    COLLECTORS = "collectors"


# What a third party receives when a step notifies them: the file, not the debtor's letter.
FILE_TEMPLATES = {
    Recipient.MEDIATOR: "mediation_file",
    Recipient.LEGAL_PARTNER: "legal_file",
}


class Tone(StrEnum):
    COURTEOUS = "courteous"
    FRIENDLY = "friendly"
    FIRM = "firm"
    FORMAL = "formal"


class Step(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    stage: Stage
    offset_days: int = Field(description="days from the due date; negative is before")
    channels: tuple[Channel, ...] = (Channel.EMAIL,)
    template: str
    tone: Tone = Tone.FRIENDLY
    requires_approval: bool = False
    # Who else receives the file when the step runs (the debtor is always informed).
    notify: tuple[Recipient, ...] = ()
    # What replaces email once the debtor's address bounced or was dropped.
    fallback: tuple[Channel, ...] = (Channel.LETTER,)

    @model_validator(mode="after")
    def _check(self) -> Step:
        if not _STEP_ID.match(self.id):
            raise ValueError(f"step id {self.id!r} must be lower_snake_case, at most 48 chars")
        if self.stage not in ESCALATION_ORDER:
            raise ValueError(f"stage {self.stage.value!r} is not an escalation stage")
        if self.stage in (Stage.MEDIATION, Stage.LEGAL) and not self.requires_approval:
            raise ValueError(f"a {self.stage.value} step must set requires_approval: true")
        if not self.channels:
            raise ValueError("a step needs at least one channel")
        return self


class Playbook(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: int = Field(ge=1)
    description: str = ""
    # Minimum days between two actions, so a late hand-over or an outage never causes a burst.
    min_gap_days: float = Field(default=2, ge=0)
    # An approval nobody answers reminds the collectors after this many days, then again
    # every `approval_reminder_repeat_days`.
    approval_reminder_days: float = Field(default=2, gt=0)
    approval_reminder_repeat_days: float = Field(default=3, gt=0)
    # After a rejected escalation, it is proposed again this many days later.
    rejection_retry_days: float = Field(default=14, gt=0)
    # Disputes: a collector resolves within this many days (then is reminded); a rejected
    # dispute resumes the escalation after the grace period.
    dispute_resolution_days: float = Field(default=10, gt=0)
    dispute_grace_days: float = Field(default=3, ge=0)
    # Promises to pay: escalation waits until the promised day plus this grace.
    promise_grace_days: float = Field(default=2, ge=0)
    # Payment plans: a courtesy reminder before each installment, a grace period after a
    # missed one, and a second person's approval above these limits (four-eyes).
    installment_reminder_days: float = Field(default=3, ge=0)
    installment_grace_days: float = Field(default=5, ge=0)
    plan_approval_amount: Decimal = Field(default=Decimal("5000"), ge=0)
    plan_approval_installments: int = Field(default=6, ge=1)
    # A phone step gives a collector this many days to call.
    call_task_days: float = Field(default=2, gt=0)
    steps: tuple[Step, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_order(self) -> Playbook:
        seen: set[str] = set()
        previous: Step | None = None
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"step {step.id!r}: duplicate step id")
            seen.add(step.id)
            if previous is not None:
                if step.offset_days < previous.offset_days:
                    raise ValueError(
                        f"step {step.id!r}: offset {step.offset_days} comes before the previous "
                        f"step {previous.id!r} ({previous.offset_days}); steps must be in order"
                    )
                if ESCALATION_ORDER.index(step.stage) < ESCALATION_ORDER.index(previous.stage):
                    raise ValueError(
                        f"step {step.id!r}: stage {step.stage.value} goes back from "
                        f"{previous.stage.value}"
                    )
            previous = step
        return self

    def index_of(self, step_id: str) -> int:
        for i, step in enumerate(self.steps):
            if step.id == step_id:
                return i
        raise KeyError(step_id)


class PlaybookError(ValueError):
    """A playbook file that cannot be used, with where and why."""

    def __init__(self, path: Path, reason: str, step: str | None = None) -> None:
        self.path, self.step, self.reason = path, step, reason
        where = f"{path}" + (f", step {step}" if step else "")
        super().__init__(f"{where}: {reason}")


def _step_of(error: dict[str, object], raw: dict[str, object]) -> str | None:
    loc = error.get("loc")
    if isinstance(loc, tuple) and len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        steps = raw.get("steps")
        if isinstance(steps, list) and loc[1] < len(steps) and isinstance(steps[loc[1]], dict):
            return str(steps[loc[1]].get("id", f"#{loc[1] + 1}"))
        return f"#{loc[1] + 1}"
    return None


def parse_playbook(text: str, path: Path) -> Playbook:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PlaybookError(path, f"not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise PlaybookError(path, "a playbook is a mapping with name, version and steps")
    try:
        return Playbook.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"][2:]) if len(first["loc"]) > 2 else ""
        reason = first["msg"].removeprefix("Value error, ")
        if field:
            reason = f"{field}: {reason}"
        raise PlaybookError(path, reason, _step_of(dict(first), raw)) from exc


def load_playbook(path: Path) -> Playbook:
    return parse_playbook(path.read_text(encoding="utf-8"), path)


def load_playbook_named(name: str, directory: Path = DEFAULT_PLAYBOOKS_DIR) -> Playbook:
    path = directory / f"{name}.yaml"
    if not path.is_file():
        raise PlaybookError(path, f"no playbook named {name!r}")
    return load_playbook(path)


PlaybookName = Literal["default"]
