"""Call tasks: what a collector sees (number, script, history) and what follows an outcome.

The script is rendered when the task is read, from the invoice as it stands (amounts today,
every contact so far), in the debtor's language; the text shown is kept on the task when it is
closed, as the evidence of what was said. After an outcome:
- dispute: a dispute is opened (the workflow freezes the escalation), with the call's notes;
- plan_requested: a plan-proposal task for a collector, who drafts the installments;
- wrong_number: the number is marked wrong, and the playbook's fallback is asked for;
- no_answer: another call the next business day, until the playbook's limit of calls not
  reached in a row (domain/calls.py); then the playbook's fallback.
"""

from __future__ import annotations

from datetime import timedelta

from anyio import to_thread
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client

from activities.messaging import SendRequest
from api.auth import Principal
from api.channel_schemas import CallTaskPublic, PreviousContactPublic
from api.collection_schemas import DisputeCreate, DisputeOpened, TaskKind, TaskStatus
from api.errors import Conflict, NotFound
from api.services import collection
from api.services.channels import unreached_signals
from api.services.webhooks import signal_workflows
from config import Settings
from domain.calls import CallNext, CallOutcome, after_call, call_due_at, call_task_id
from domain.money import Money
from domain.phone import display_phone
from domain.playbook import Channel, Tone
from messages import Renderer, RenderError, TemplateNotFound
from messages.render import MessageContext, PreviousContact
from store.engine import transaction
from store.tables import Debtor, Interaction, Invoice, Task, utcnow

_CALL = "call"


def step_of(task: Task) -> str:
    """`<invoice>:<step>:call[:<n>]` -> the step."""
    rest = task.id.removeprefix(f"{task.invoice_number}:")
    return rest.split(":", 1)[0]


def previous_contacts(session: Session, task: Task) -> list[PreviousContact]:
    contacts = [
        PreviousContact(
            day=(row.sent_at or row.created_at).date(),
            channel=row.channel,
            template=row.template,
            outcome=row.delivery_status or row.status,
        )
        for row in session.exec(
            select(Interaction)
            .where(Interaction.invoice_number == task.invoice_number)
            .order_by(col(Interaction.id))
        ).all()
    ]
    calls = session.exec(
        select(Task)
        .where(Task.invoice_number == task.invoice_number, Task.kind == _CALL)
        .where(col(Task.outcome).is_not(None))
        .order_by(col(Task.created_at))
    ).all()
    contacts += [
        PreviousContact(
            day=(c.closed_at or c.created_at).date(),
            channel="phone",
            template="call",
            outcome=c.outcome,
        )
        for c in calls
    ]
    return sorted(contacts, key=lambda c: c.day)


def render_script(
    session: Session, settings: Settings, renderer: Renderer, task: Task
) -> str | None:
    invoice = session.get(Invoice, task.invoice_number)
    debtor = session.get(Debtor, invoice.debtor_id) if invoice else None
    if invoice is None or debtor is None:
        return None
    language = renderer.language_for(debtor.language)
    today = utcnow().date()
    outstanding = Money.of(invoice.outstanding, invoice.currency)
    from activities.messaging import MessagingActivities

    request = SendRequest(
        invoice_number=invoice.number,
        step_id=step_of(task),
        channel=Channel.PHONE,
        template="call_script",
        tone=Tone.FIRM,
        planned_at=task.created_at,
        as_of=today,
        outstanding=outstanding,
    )
    base: MessageContext = MessagingActivities.build_context(
        settings, request, invoice, debtor, language
    )
    context = base.model_copy(
        update={
            "previous_contacts": previous_contacts(session, task),
            # Ask for payment within the week: a date the debtor can commit to.
            "promise_by": today + timedelta(days=7),
        }
    )
    try:
        return renderer.render("call_script", context).text
    except (TemplateNotFound, RenderError) as exc:
        return f"(no script: {exc})"


def call_task(engine: Engine, settings: Settings, task_id: str) -> CallTaskPublic:
    renderer = Renderer()
    with transaction(engine) as session:
        task = session.get(Task, task_id)
        if task is None:
            raise NotFound(f"task {task_id} is unknown")
        invoice = session.get(Invoice, task.invoice_number)
        debtor = session.get(Debtor, invoice.debtor_id) if invoice else None
        script = task.script
        if task.kind == _CALL and task.status == TaskStatus.OPEN:
            script = render_script(session, settings, renderer, task)
        contacts = previous_contacts(session, task) if task.kind == _CALL else []
        phone = debtor.phone if debtor is not None and not debtor.phone_invalid_at else None
        return CallTaskPublic(
            id=task.id,
            invoice_number=task.invoice_number,
            status=task.status,
            title=task.title,
            due_at=task.due_at,
            assignee=task.assignee,
            attempt=task.attempt,
            phone=display_phone(phone) if phone else None,
            script=script,
            previous_contacts=[PreviousContactPublic(**c.model_dump()) for c in contacts],
            outcome=task.outcome,
            notes=task.notes,
        )


def assign(
    engine: Engine, settings: Settings, task_id: str, assignee: str | None
) -> CallTaskPublic:
    with transaction(engine) as session:
        task = session.get(Task, task_id)
        if task is None:
            raise NotFound(f"task {task_id} is unknown")
        if task.status != TaskStatus.OPEN:
            raise Conflict(f"task {task_id} is {task.status}: only an open task is assigned")
        task.assignee = assignee
        session.add(task)
    return call_task(engine, settings, task_id)


def keep_script(engine: Engine, settings: Settings, task_id: str) -> None:
    """Before closing: the script as the collector saw it stays on the task."""
    with transaction(engine) as session:
        task = session.get(Task, task_id)
        if task is not None and task.kind == _CALL and task.script is None:
            task.script = render_script(session, settings, Renderer(), task)
            session.add(task)


def _next_call_or_fallback(
    engine: Engine, task_id: str, max_unreached: int
) -> tuple[CallNext, Task]:
    with transaction(engine) as session:
        task = session.get(Task, task_id)
        if task is None:
            raise NotFound(f"task {task_id} is unknown")
        step = step_of(task)
        outcomes = [
            CallOutcome(t.outcome)
            for t in session.exec(
                select(Task)
                .where(Task.invoice_number == task.invoice_number, Task.kind == _CALL)
                .where(col(Task.outcome).is_not(None))
                .order_by(col(Task.attempt))
            ).all()
            if step_of(t) == step and t.outcome in set(CallOutcome)
        ]
        decision = after_call(outcomes, max_unreached)
        if decision == CallNext.RETRY:
            invoice = session.get(Invoice, task.invoice_number)
            debtor = session.get(Debtor, invoice.debtor_id) if invoice else None
            attempt = task.attempt + 1
            next_id = call_task_id(task.invoice_number, step, attempt)
            if debtor is not None and session.get(Task, next_id) is None:
                now = utcnow()
                session.add(
                    Task(
                        id=next_id,
                        invoice_number=task.invoice_number,
                        kind=_CALL,
                        title=f"{task.title.split(' (call ')[0]} (call {attempt})",
                        due_at=call_due_at(
                            now,
                            1,
                            country=debtor.country,
                            timezone=debtor.timezone,
                            subdivision=debtor.subdivision,
                        ),
                        created_at=now,
                        assignee=task.assignee,
                        attempt=attempt,
                    )
                )
        if task.outcome == CallOutcome.WRONG_NUMBER:
            invoice = session.get(Invoice, task.invoice_number)
            debtor = session.get(Debtor, invoice.debtor_id) if invoice else None
            if debtor is not None and not debtor.phone_invalid_at:
                debtor.phone_invalid_at = utcnow()
                session.add(debtor)
        return decision, task


def _plan_proposal_task(engine: Engine, task: Task, by: str) -> None:
    with transaction(engine) as session:
        task_id = f"{task.invoice_number}:plan_proposal:{task.id.rsplit(':', 1)[-1]}"
        if session.get(Task, task_id) is None:
            now = utcnow()
            session.add(
                Task(
                    id=task_id[:160],
                    invoice_number=task.invoice_number,
                    kind=TaskKind.PLAN_PROPOSAL,
                    title=f"Propose a payment plan for invoice {task.invoice_number} "
                    f"(asked on the phone, {by})",
                    due_at=now + timedelta(days=2),
                    created_at=now,
                    assignee=task.assignee or by,
                    notes=task.notes,
                )
            )


async def open_dispute(
    engine: Engine, client: Client, settings: Settings, task: Task, principal: Principal
) -> DisputeOpened:
    """The debtor disputes the invoice on the phone. The reason names the task, not the call's
    notes: those may name people, and the workflow's history keeps no personal data."""
    reason = DisputeCreate(reason=f"disputed on the phone (call task {task.id})")
    return await collection.open_dispute(
        engine, client, settings, task.invoice_number, reason, principal
    )


async def follow_up(
    engine: Engine,
    client: Client,
    settings: Settings,
    task: Task,
    outcome: CallOutcome,
    notes: str,
    principal: Principal,
    max_unreached: int,
) -> None:
    """What an outcome sets off, once the task is closed with it (a dispute is opened before,
    see `open_dispute`)."""
    if task.kind != _CALL:
        return
    if outcome == CallOutcome.PLAN_REQUESTED:
        await to_thread.run_sync(_plan_proposal_task, engine, task, principal.name)
        return
    if outcome in (CallOutcome.NO_ANSWER, CallOutcome.WRONG_NUMBER):
        decision, closed = await to_thread.run_sync(
            _next_call_or_fallback, engine, task.id, max_unreached
        )
        if decision == CallNext.FALLBACK:
            reason = (
                "wrong number"
                if outcome == CallOutcome.WRONG_NUMBER
                else f"not reached {max_unreached} times in a row"
            )
            await signal_workflows(
                client,
                settings,
                unreached_signals(closed.invoice_number, step_of(closed), closed.id, reason),
            )
