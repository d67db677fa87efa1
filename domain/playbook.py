"""Playbooks: a collection scenario as validated data.

A playbook is a YAML file; a bad one is refused at load time with the file, the step and the
reason. The workflow receives the validated model at start, so a running invoice keeps the
playbook version it started with whatever happens to the file afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from domain.lifecycle import ESCALATION_ORDER, Stage
from domain.portal import PortalRules

DEFAULT_PLAYBOOKS_DIR = Path(__file__).resolve().parent.parent / "playbooks"
_STEP_ID = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
# A playbook's name is its file's name: it is stored on every invoice (64 chars) and the
# selection builds names from it (`<segment>_<band>`), so it stays a plain identifier.
_PLAYBOOK_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
SUFFIX = ".yaml"
# Files a user may have meant as playbooks but that would be silently ignored.
_NEAR_MISSES = (".yml",)


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


# What the phone and SMS channels render for a step whose `template` is T: the call script (one
# template, per language, for every call step unless the step names its own) and `T_sms`.
CALL_SCRIPT_TEMPLATE = "call_script"


def sms_template(template: str) -> str:
    return f"{template}_sms"


class Tone(StrEnum):
    COURTEOUS = "courteous"
    FRIENDLY = "friendly"
    FIRM = "firm"
    FORMAL = "formal"


def _channels(value: Any) -> Any:
    """Accept `channels: email` as well as a list, and name the allowed channels on a typo.

    Pydantic's own enum error ("Input should be 'email', 'sms', ...") does not say that the
    value is a channel; a finance person editing YAML reads "unknown channel 'fax'" faster.
    """
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple):
        allowed = ", ".join(c.value for c in Channel)
        for item in value:
            if item not in {c.value for c in Channel} and not isinstance(item, Channel):
                raise ValueError(f"unknown channel {item!r} (channels: {allowed})")
    return value


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
    # A letter sent by this step goes registered with acknowledgment of receipt (LRAR). None:
    # the formal notice does (its proof of receipt is what the law and a judge ask for).
    registered: bool | None = None
    # The call script's template for a phone step (see CALL_SCRIPT_TEMPLATE).
    script: str | None = None

    @field_validator("channels", "fallback", mode="before")
    @classmethod
    def _known_channels(cls, value: Any) -> Any:
        return _channels(value)

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
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("a channel is listed twice")
        if Channel.EMAIL in self.fallback:
            # The fallback is what replaces email once the address bounced: email again
            # would go to the same dead address.
            raise ValueError(
                "fallback replaces email once the debtor's address bounced: it cannot "
                "contain email (use letter, phone or sms)"
            )
        return self

    @property
    def registered_letter(self) -> bool:
        if self.registered is not None:
            return self.registered
        return self.stage == Stage.FORMAL_NOTICE

    @property
    def call_script(self) -> str:
        return self.script or CALL_SCRIPT_TEMPLATE

    @property
    def templates(self) -> tuple[str, ...]:
        """Every message template the step may render: the debtor's, then third parties',
        then the text message and the call script when the step may use those channels."""
        used = set(self.channels) | set(self.fallback)
        extra: tuple[str, ...] = (sms_template(self.template),) if Channel.SMS in used else ()
        if Channel.PHONE in used:
            extra += (self.call_script,)
        return (self.template, *(FILE_TEMPLATES[r] for r in self.notify), *extra)


class LatePaymentCostsAction(StrEnum):
    """What happens when an invoice is paid after its due date (its interest and 40 € are then
    owed, L441-10 II and D441-5): nothing, tell the back office, or send the debtor a
    statement of late-payment costs after the thank-you."""

    NONE = "none"
    NOTIFY_BACKOFFICE = "notify_backoffice"
    STATEMENT = "statement"


# The template of the statement of late-payment costs (playbook option `statement`).
LATE_PAYMENT_STATEMENT_TEMPLATE = "late_payment_statement"


NOTICE_DAYS = "notice_deadline_business_days"
# Former names of NOTICE_DAYS (the law's and the letters' first settings), still read.
DEPRECATED_NOTICE_DAYS = ("formal_notice_deadline_business_days", "notice_days")


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
    # The formal notice gives this many business days (in the debtor's country) to pay,
    # counted from the day it is sent, or from the day the debtor received the registered letter
    # (its acknowledgment of receipt); the letter states the deadline as a calendar date, or
    # "N business days from receipt". One setting (domain/notice.py computes the deadline):
    # the older names `formal_notice_deadline_business_days` and `notice_days` still load.
    notice_deadline_business_days: int = Field(default=8, ge=1, le=60)
    notice_deadline_from: Literal["sending", "receipt"] = "sending"
    late_payment_costs: LatePaymentCostsAction = LatePaymentCostsAction.NOTIFY_BACKOFFICE
    # Whether the creditor claims late-payment interest and the 40 € indemnity from these
    # debtors (the debtor portal states them only then).
    claim_late_fees: bool = True
    # What a debtor may propose alone on the portal.
    portal: PortalRules = Field(default_factory=PortalRules)
    # Calls that reach nobody, in a row, before the step's fallback channel takes over.
    call_max_unreached: int = Field(default=3, ge=1, le=10)
    # A text may use at most this many segments (each is billed as one message); templates
    # rendered with sample values are checked at load time (messages/channel_checks.py).
    sms_max_segments: int = Field(default=2, ge=1, le=10)
    steps: tuple[Step, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _former_names(cls, data: Any) -> Any:
        """Files (and invoices' carried playbooks) written with a former name of the notice's
        deadline load as before; two names giving two figures are refused."""
        if not isinstance(data, dict):
            return data
        given = {name: data[name] for name in DEPRECATED_NOTICE_DAYS if name in data}
        if not given:
            return data
        data = {k: v for k, v in data.items() if k not in DEPRECATED_NOTICE_DAYS}
        values = {*given.values(), *([data[NOTICE_DAYS]] if NOTICE_DAYS in data else [])}
        if len(values) > 1:
            names = ", ".join([*given, *([NOTICE_DAYS] if NOTICE_DAYS in data else [])])
            raise ValueError(f"{names} disagree: give {NOTICE_DAYS} only")
        data.setdefault(NOTICE_DAYS, next(iter(given.values())))
        return data

    @property
    def formal_notice_deadline_business_days(self) -> int:
        """Former name of `notice_deadline_business_days`."""
        return self.notice_deadline_business_days

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

    def plan_needs_approval(self, total: Decimal, installments: int) -> bool:
        """Four-eyes: a plan above these limits needs a second person's approval."""
        return total > self.plan_approval_amount or installments > self.plan_approval_installments

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


class PlaybookErrors(ValueError):
    """Several playbook files refused at once: `relance playbooks check` reports them all.

    `loaded` holds the files that were fine, so a caller may still show or use them.
    """

    def __init__(self, errors: Sequence[PlaybookError], loaded: Mapping[str, Playbook]) -> None:
        self.errors = list(errors)
        self.loaded = dict(loaded)
        super().__init__("; ".join(str(e) for e in self.errors))


def _step_of(error: dict[str, object], raw: dict[str, object]) -> str | None:
    loc = error.get("loc")
    if isinstance(loc, tuple) and len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        steps = raw.get("steps")
        if isinstance(steps, list) and loc[1] < len(steps) and isinstance(steps[loc[1]], dict):
            return str(steps[loc[1]].get("id", f"#{loc[1] + 1}"))
        return f"#{loc[1] + 1}"
    return None


_STEP_IN_REASON = re.compile(r"^step '([a-z][a-z0-9_]*)': ")


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
        loc = first["loc"]
        # Inside a step the step is named apart, so the field is what follows its index.
        in_step = len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int)
        field = ".".join(str(p) for p in (loc[2:] if in_step else loc))
        reason = first["msg"].removeprefix("Value error, ")
        step = _step_of(dict(first), raw)
        # Whole-playbook checks (order, duplicates) name their step in the message: lift it
        # into `step` so every refusal reads the same way.
        found = _STEP_IN_REASON.match(reason)
        if step is None and found:
            step, reason = found.group(1), reason[found.end() :]
        if field:
            reason = f"{field}: {reason}"
        raise PlaybookError(path, reason, step) from exc


def validate_templates(playbook: Playbook, known: Collection[str], path: Path) -> None:
    """Refuse a playbook naming a message template that does not exist.

    `known` is the set of template names the caller can render in *every* language (see
    `common_templates`): a step that works for French debtors but not English ones is broken.
    Checked at load time, so a typo is refused before any invoice reaches the step.
    """
    for step in playbook.steps:
        for template in step.templates:
            if template not in known:
                listing = ", ".join(sorted(known)) or "none"
                why = "" if template == step.template else " (the file sent to a third party)"
                raise PlaybookError(
                    path,
                    f"unknown template {template!r}{why}; templates available in every "
                    f"language: {listing}",
                    step.id,
                )
    if (
        playbook.late_payment_costs is LatePaymentCostsAction.STATEMENT
        and LATE_PAYMENT_STATEMENT_TEMPLATE not in known
    ):
        raise PlaybookError(
            path,
            f"late_payment_costs: statement needs the template "
            f"{LATE_PAYMENT_STATEMENT_TEMPLATE!r} in every language",
        )


def common_templates(by_language: Mapping[str, Iterable[str]]) -> set[str]:
    """Template names present in every language, from `{language: names}`."""
    sets = [set(names) for names in by_language.values()]
    return set.intersection(*sets) if sets else set()


def load_playbook(path: Path, known_templates: Collection[str] | None = None) -> Playbook:
    """Load and validate one file; `known_templates` (when given) also checks templates."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlaybookError(path, f"cannot be read: {exc.strerror or exc}") from exc
    playbook = parse_playbook(text, path)
    # Invoices store the name and find the file again by it: they must agree.
    if path.suffix == SUFFIX and playbook.name != path.stem:
        raise PlaybookError(
            path, f"name {playbook.name!r} differs from the file name; rename one of them"
        )
    if known_templates is not None:
        validate_templates(playbook, known_templates, path)
    return playbook


def load_playbook_named(
    name: str,
    directory: Path = DEFAULT_PLAYBOOKS_DIR,
    known_templates: Collection[str] | None = None,
) -> Playbook:
    path = directory / f"{name}{SUFFIX}"
    if not _PLAYBOOK_NAME.match(name) or not path.is_file():
        raise PlaybookError(path, f"no playbook named {name!r}")
    return load_playbook(path, known_templates)


def playbook_files(directory: Path) -> list[Path]:
    """The files of a folder that are, or look meant to be, playbooks; sorted."""
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and (p.suffix == SUFFIX or p.suffix in _NEAR_MISSES)
    )


def load_playbooks(
    directory: Path, known_templates: Collection[str] | None = None
) -> dict[str, Playbook]:
    """Every playbook in `directory`, by name.

    Each file is checked on its own and every refusal is collected: one bad file does not
    hide the next. Raises PlaybookErrors (with the good ones in `.loaded`) if any was bad.
    """
    if not directory.is_dir():
        raise PlaybookErrors([PlaybookError(directory, "no such directory")], {})
    loaded: dict[str, Playbook] = {}
    errors: list[PlaybookError] = []
    for path in playbook_files(directory):
        if path.suffix != SUFFIX:
            errors.append(
                PlaybookError(path, f"ignored: playbook files end in {SUFFIX}; rename it")
            )
            continue
        if not _PLAYBOOK_NAME.match(path.stem):
            errors.append(
                PlaybookError(
                    path,
                    "the file name must be lower_snake_case (it becomes the playbook's name)",
                )
            )
            continue
        try:
            loaded[path.stem] = load_playbook(path, known_templates)
        except PlaybookError as err:
            errors.append(err)
    if errors:
        raise PlaybookErrors(errors, loaded)
    return loaded


def playbook_directories(user_dir: Path | None) -> tuple[Path, ...]:
    """Where playbooks are looked up: the user's folder (settings) when set, else the shipped one.

    The user's folder replaces the shipped playbooks rather than adding to them: what a finance
    director keeps in it is exactly what runs, with no shipped scenario silently applying to
    some debtors. Copy the shipped files to start from them.
    """
    return (user_dir,) if user_dir is not None else (DEFAULT_PLAYBOOKS_DIR,)


@lru_cache(maxsize=64)
def _cached(path: str, _mtime_ns: int, known: frozenset[str] | None) -> Playbook:
    # Keyed on the file's mtime: an edited playbook is picked up without a restart, and the
    # invoices already running keep the version they started with (it travels in their input).
    return load_playbook(Path(path), known)


class PlaybookLibrary:
    """The playbooks found along a search path (see `playbook_directories`)."""

    def __init__(
        self, directories: Sequence[Path], known_templates: Collection[str] | None = None
    ) -> None:
        self.directories = tuple(directories)
        self.known_templates = frozenset(known_templates) if known_templates is not None else None

    def names(self) -> set[str]:
        """Names of the playbook files on the path (a broken file still counts: choosing it
        fails loudly rather than silently sending its debtors another scenario)."""
        return {
            p.stem
            for d in self.directories
            for p in playbook_files(d)
            if p.suffix == SUFFIX and _PLAYBOOK_NAME.match(p.stem)
        }

    def path_of(self, name: str) -> Path:
        for directory in self.directories:
            path = directory / f"{name}{SUFFIX}"
            if _PLAYBOOK_NAME.match(name) and path.is_file():
                return path
        where = ", ".join(str(d) for d in self.directories)
        known = ", ".join(sorted(self.names())) or "none"
        raise PlaybookError(
            self.directories[0] / f"{name}{SUFFIX}",
            f"no playbook named {name!r} in {where} (available: {known})",
        )

    def get(self, name: str) -> Playbook:
        path = self.path_of(name)
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            mtime = 0
        return _cached(str(path), mtime, self.known_templates)


PlaybookName = Literal["default"]
