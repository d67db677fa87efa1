"""Debtors: segment, risk, the playbook their new invoices get, and finance overrides.

The same selection serves the hand-over (`select_playbook`, called inside its transaction) and
`GET /v1/debtors/{id}`, so what the API explains is what the next invoice will get.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from anyio import to_thread
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.actors import ActorNames
from api.auth import Principal
from api.contact_fields import address_for
from api.debtor_schemas import (
    ContactCorrection,
    DebtorPublic,
    OverridePublic,
    OverrideSet,
    PlaybookChoicePublic,
    RiskPublic,
    SegmentPublic,
)
from api.errors import FieldProblem, Invalid, NotFound, ServerMisconfigured
from api.schemas import MoneyPublic
from config import Settings
from domain.collection.commands import ContactCorrected
from domain.holds import HoldRequest
from domain.phone import InvalidPhoneNumber, normalize_phone
from domain.playbook import (
    Channel,
    Playbook,
    PlaybookError,
    PlaybookLibrary,
    playbook_directories,
)
from domain.postal import InvalidAddress
from domain.selection import (
    Choice,
    RiskAssessment,
    RiskInputs,
    SegmentResolution,
    choose_playbook,
    resolve_segment,
    risk_score,
)
from messages.channel_checks import sms_problems
from messages.render import shipped_renderer
from store import debtors as store
from store.engine import transaction
from store.tables import Debtor, DebtorOverride
from workflows.client import invoice_handle
from workflows.invoice import InvoiceWorkflow

log = logging.getLogger("relance.api")


def today() -> date:
    # One calendar for every server, whatever the host's zone: opt-outs end on UTC days.
    return datetime.now(UTC).date()


# ------------------------------------------------------------------ playbooks


def known_templates() -> frozenset[str]:
    """Templates that exist in every shipped language: what a playbook step may name."""
    return shipped_renderer().known_templates()


@lru_cache(maxsize=64)
def _check_texts(playbook: Playbook) -> None:
    # Once per playbook version: its texts must fit its segment limit (messages/channel_checks).
    problems = sms_problems(shipped_renderer(), Path(f"{playbook.name}.yaml"), playbook)
    if problems:
        raise problems[0]


def playbook_library(settings: Settings) -> PlaybookLibrary:
    """RELANCE_PLAYBOOKS_DIR when set, else the shipped playbooks."""
    return PlaybookLibrary(playbook_directories(settings.playbooks_dir), known_templates())


def playbook_named(settings: Settings, name: str) -> Playbook:
    try:
        playbook = playbook_library(settings).get(name)
        _check_texts(playbook)
        return playbook
    except PlaybookError as err:
        # The server's configuration is broken, not the request: say where.
        raise ServerMisconfigured(f"the playbook {name!r} cannot be used: {err}") from err


# ------------------------------------------------------------------ selection


@dataclass(frozen=True)
class Selection:
    segment: SegmentResolution
    inputs: RiskInputs
    risk: RiskAssessment
    override: DebtorOverride | None
    choice: Choice
    # Set while the debtor is opted out of collection: the sentence to show.
    opt_out: str | None


def opt_out_note(
    override: DebtorOverride | None, as_of: date, names: ActorNames | None = None
) -> str | None:
    if override is None or override.opt_out_until is None or override.opt_out_until < as_of:
        return None
    return (
        f"the debtor is opted out of collection until {override.opt_out_until.isoformat()} "
        f"({override.opt_out_reason}; set by "
        f"{names.name(override.set_by) if names else override.set_by})"
    )


def opt_out_hold(override: DebtorOverride | None, as_of: date) -> HoldRequest | None:
    """An active opt-out holds a new invoice's escalation until the day after it ends."""
    if override is None or override.opt_out_until is None or override.opt_out_until < as_of:
        return None
    return HoldRequest(
        reason=f"debtor opted out: {override.opt_out_reason}",
        until=override.opt_out_until + timedelta(days=1),
        by=override.set_by,
    )


def select_playbook(session: Session, settings: Settings, debtor: Debtor, as_of: date) -> Selection:
    """Segment, risk band and override → the playbook a new invoice of `debtor` runs."""
    segment = resolve_segment(debtor.segment, debtor.annual_revenue, debtor.headcount)
    inputs = store.risk_inputs(session, debtor.id, as_of)
    risk = risk_score(inputs)
    override = store.override_of(session, debtor.id)
    choice = choose_playbook(
        segment.segment,
        risk.band,
        override.playbook if override is not None else None,
        playbook_library(settings).names(),
        default=settings.default_playbook,
    )
    note = opt_out_note(override, as_of, ActorNames(session))
    return Selection(segment, inputs, risk, override, choice, note)


# ------------------------------------------------------------------ read


def _debtor_or_404(session: Session, debtor_id: str) -> Debtor:
    debtor = session.get(Debtor, debtor_id)
    if debtor is None:
        raise NotFound(f"debtor {debtor_id} is unknown: no invoice of it was ever handed over")
    return debtor


def _plain(amount: Decimal | None) -> str | None:
    # The store keeps 4 decimals: "1800000", not "1800000.0000".
    return None if amount is None else format(amount.normalize(), "f")


def _override_public(row: DebtorOverride, as_of: date, names: ActorNames) -> OverridePublic:
    return OverridePublic(
        playbook=row.playbook,
        opt_out_reason=row.opt_out_reason,
        opt_out_until=row.opt_out_until,
        opt_out_active=opt_out_note(row, as_of) is not None,
        set_by=names.name(row.set_by) or row.set_by,
        set_at=row.set_at,
    )


def debtor_public(
    session: Session, settings: Settings, debtor: Debtor, as_of: date
) -> DebtorPublic:
    selection = select_playbook(session, settings, debtor, as_of)
    owed = store.open_invoices(session, debtor.id)
    risk = selection.risk
    return DebtorPublic(
        id=debtor.id,
        name=debtor.name,
        country=debtor.country,
        language=debtor.language,
        timezone=debtor.timezone,
        subdivision=debtor.subdivision,
        as_of=as_of,
        segment=SegmentPublic(
            value=selection.segment.segment,
            source=selection.segment.source,
            given=debtor.segment,
            annual_revenue=_plain(debtor.annual_revenue),
            headcount=debtor.headcount,
            why=selection.segment.why,
        ),
        risk=RiskPublic(
            score=risk.score,
            band=risk.band,
            reasons=risk.reasons,
            factors=risk.factors,
            inputs=selection.inputs,
        ),
        override=(
            _override_public(selection.override, as_of, ActorNames(session))
            if selection.override
            else None
        ),
        playbook=PlaybookChoicePublic(
            name=selection.choice.playbook, why=selection.choice.why, opt_out=selection.opt_out
        ),
        open_invoices=owed.count,
        outstanding=[MoneyPublic.of(amount, cur) for cur, amount in owed.outstanding.items()],
    )


def get_debtor(session: Session, settings: Settings, debtor_id: str) -> DebtorPublic:
    return debtor_public(session, settings, _debtor_or_404(session, debtor_id), today())


# ------------------------------------------------------------------ override


def _check_override(settings: Settings, body: OverrideSet, as_of: date) -> None:
    if body.playbook is not None:
        library = playbook_library(settings)
        if body.playbook not in library.names():
            known = ", ".join(sorted(library.names()))
            raise Invalid(
                f"no playbook named {body.playbook!r} (available: {known})", field="playbook"
            )
        try:
            library.get(body.playbook)
        except PlaybookError as err:
            # Refused now, not at the debtor's next hand-over.
            raise Invalid(
                f"the playbook {body.playbook!r} cannot be used: {err}", field="playbook"
            ) from err
    if body.opt_out_until is not None and body.opt_out_until <= as_of:
        raise Invalid(
            f"opt_out_until must be a day after today ({as_of.isoformat()}): collection "
            f"resumes after it; got {body.opt_out_until.isoformat()}",
            field="opt_out_until",
        )


def _set_override(
    engine: Engine, settings: Settings, debtor_id: str, body: OverrideSet, principal: Principal
) -> DebtorPublic:
    as_of = today()
    _check_override(settings, body, as_of)
    with transaction(engine) as session:
        debtor = _debtor_or_404(session, debtor_id)
        store.set_override(
            session,
            debtor,
            playbook=body.playbook,
            opt_out_reason=body.opt_out_reason,
            opt_out_until=body.opt_out_until,
            set_by=principal.identity,
        )
    log.info("override set on debtor %s by %s", debtor_id, principal.prefix)
    with Session(engine) as session:
        return debtor_public(session, settings, _debtor_or_404(session, debtor_id), as_of)


async def set_override(
    engine: Engine, settings: Settings, debtor_id: str, body: OverrideSet, principal: Principal
) -> DebtorPublic:
    return await to_thread.run_sync(_set_override, engine, settings, debtor_id, body, principal)


def _clear_override(engine: Engine, debtor_id: str, principal: Principal) -> None:
    with transaction(engine) as session:
        _debtor_or_404(session, debtor_id)
        if store.clear_override(session, debtor_id):
            log.info("override removed from debtor %s by %s", debtor_id, principal.prefix)


async def clear_override(engine: Engine, debtor_id: str, principal: Principal) -> None:
    await to_thread.run_sync(_clear_override, engine, debtor_id, principal)


# The hand-over's names for the fields an address check names (domain/postal.py).
_ADDRESS_FIELD = {"street_address": "address_line1", "country_area": "country"}
# What a correction of each channel is called in the invoice's history.
_CORRECTED = {
    Channel.EMAIL: "email address",
    Channel.SMS: "phone number",
    Channel.PHONE: "phone number",
    Channel.LETTER: "postal address",
}


def _checked_phone(debtor: Debtor, body: ContactCorrection) -> str | None:
    if body.phone is None:
        return None
    try:
        return normalize_phone(body.phone, debtor.country)
    except InvalidPhoneNumber as exc:
        raise Invalid(f"phone: {exc}", field="phone") from exc


def _checked_address(debtor: Debtor, body: ContactCorrection) -> dict[str, object] | None:
    """The postal address given, validated for the debtor's country as at hand-over."""
    if not body.gives_address:
        return None
    missing = [
        FieldProblem(location="body", field=name, message="required in an address")
        for name in ("address_line1", "postal_code", "city")
        if not (getattr(body, name) or "").strip()
    ]
    try:
        address = address_for(body, body.name or debtor.name, debtor.country)
    except ValueError as exc:
        cause = exc.__cause__
        problems = (
            [
                FieldProblem(location="body", field=_ADDRESS_FIELD.get(k, k), message=v)
                for k, v in sorted(cause.problems.items())
            ]
            if isinstance(cause, InvalidAddress)
            else missing
        )
        raise Invalid(str(exc), errors=problems) from exc
    if address is None:
        # Only empty fields: an address cannot be removed, only corrected.
        raise Invalid("a postal address needs address_line1, postal_code and city", errors=missing)
    return address.model_dump(mode="json")


def _correct(
    engine: Engine, settings: Settings, debtor_id: str, body: ContactCorrection
) -> tuple[DebtorPublic, list[str], tuple[Channel, ...]]:
    with transaction(engine) as session:
        debtor = _debtor_or_404(session, debtor_id)
        phone = _checked_phone(debtor, body)
        address = _checked_address(debtor, body)
        found = store.correct_contact(
            session,
            debtor_id,
            email=str(body.email) if body.email is not None else None,
            name=body.name,
            phone=phone,
            postal_address=address,
        )
        if found is None:
            raise NotFound(f"debtor {debtor_id} is unknown")
        stored, numbers, texts = found
        channels: list[Channel] = []
        if body.email is not None:
            channels.append(Channel.EMAIL)
        if phone is not None:
            # A number that said STOP, entered again, still gets no texts: calls only.
            channels += [Channel.SMS, Channel.PHONE] if texts else [Channel.PHONE]
        if address is not None:
            channels.append(Channel.LETTER)
        return debtor_public(session, settings, stored, today()), numbers, tuple(channels)


async def correct_debtor_contact(
    engine: Engine,
    client: Client,
    settings: Settings,
    debtor_id: str,
    body: ContactCorrection,
    by: str,
) -> DebtorPublic:
    """Store the corrected details (from a collector, or the debtor on the portal), then tell
    every running invoice of the debtor which channels were corrected: each uses them again
    after a bounce, a STOP, a returned letter or calls never reached, and its history says
    when and by whom (never the address or number itself: those stay in the store)."""
    public, numbers, channels = await to_thread.run_sync(
        _correct, engine, settings, debtor_id, body
    )
    await contact_corrected(
        client, settings, numbers, debtor_id, by=by, reason=body.reason, channels=channels
    )
    log.info(
        "contact of debtor %s corrected (%s) by %s",
        debtor_id,
        ", ".join(c.value for c in channels),
        by,
    )
    return public


async def contact_corrected(
    client: Client,
    settings: Settings,
    numbers: Sequence[str],
    debtor_id: str,
    *,
    by: str,
    reason: str = "",
    channels: Sequence[Channel] = (Channel.EMAIL,),
) -> None:
    # One id per correction (the same for every invoice): a retried signal changes nothing.
    event_id = f"contact:{debtor_id}:{uuid.uuid4().hex[:12]}"
    correction = ContactCorrected(
        event_id=event_id,
        by=by,
        reason=reason or "new " + " and ".join(dict.fromkeys(_CORRECTED[c] for c in channels)),
        channels=tuple(channels),
    )
    for number in numbers:
        try:
            await invoice_handle(client, number).signal(
                InvoiceWorkflow.contact_corrected,
                correction,
                rpc_timeout=timedelta(seconds=settings.rpc_timeout_seconds),
            )
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            # Ended meanwhile: nothing left to tell it.
