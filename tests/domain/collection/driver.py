"""Drives the collection machine the way the workflow does, without a server.

Time moves like Temporal timers: the machine is ticked exactly when it asked to wake. The
business calendar is a small stand-in of our own (Monday to Friday, 09:00–18:00 UTC): the
machine's rules are under test here, the real calendar has its own tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from domain.collection import machine
from domain.collection.commands import CalendarAnswered, Command, SendResult, SendSettled
from domain.collection.keys import message_key
from domain.collection.records import EventKind, EventRecord
from domain.collection.state import CalendarAnswer, CalendarQuestion, CollectionState
from domain.lifecycle import InvoiceFacts
from domain.money import Money
from domain.playbook import Playbook

WINDOW_START, WINDOW_END = time(9), time(18)


def business_moment(wanted: datetime) -> datetime:
    """The first moment at or after `wanted` inside 09:00–18:00 UTC on a weekday."""
    moment = wanted
    for _ in range(10):
        if moment.weekday() >= 5 or moment.time() >= WINDOW_END:
            moment = datetime.combine(moment.date() + timedelta(days=1), WINDOW_START, UTC)
            continue
        if moment.time() < WINDOW_START:
            moment = datetime.combine(moment.date(), WINDOW_START, UTC)
        return moment
    raise AssertionError("no business moment within 10 days")


def answer(question: CalendarQuestion) -> CalendarAnswer:
    nominal = datetime.combine(question.day, WINDOW_START, UTC)
    wanted = nominal + timedelta(seconds=question.delay_seconds)
    if question.earliest is not None:
        wanted = max(wanted, question.earliest)
    return CalendarAnswer(question=question, at=business_moment(wanted))


@dataclass
class Sent:
    at: datetime
    send: machine.Send

    @property
    def key(self) -> str:
        m = self.send.message
        return message_key("F-1", m.step_id, m.channel, m.recipient)


@dataclass
class Run:
    state: CollectionState
    now: datetime
    sent: list[Sent] = field(default_factory=list)
    steps_done: list[datetime] = field(default_factory=list)
    recorded: list[EventRecord] = field(default_factory=list)
    refused: int = 0
    notices: list[machine.Notify] = field(default_factory=list)
    # Sends not yet settled, for the driver to answer.
    in_flight: list[machine.Send] = field(default_factory=list)

    def take(self, transition: machine.Transition) -> machine.Transition:
        self.state = transition.state
        for effect in transition.effects:
            if isinstance(effect, machine.Send):
                self.sent.append(Sent(self.now, effect))
                self.in_flight.append(effect)
            if isinstance(effect, machine.Notify):
                self.notices.append(effect)
            if isinstance(effect, machine.Record):
                self.recorded.append(effect.event)
                if effect.event.kind == EventKind.STEP_DONE:
                    self.steps_done.append(self.now)
        return transition

    def tick(self) -> None:
        for _ in range(50):
            transition = self.take(machine.tick(self.state, self.now))
            if transition.question is None:
                return
            applied = machine.apply(
                self.state, CalendarAnswered(answer=answer(transition.question)), self.now
            )
            assert isinstance(applied, machine.Transition)
            self.take(applied)
        raise AssertionError("the machine kept asking the calendar")

    def advance(self, delta: timedelta) -> None:
        """Let `delta` pass, waking the machine whenever it asked to be woken."""
        target = self.now + delta
        self.tick()
        idle = 0
        for _ in range(2000):
            wake = machine.wake_at(self.state, self.now)
            if wake is None or wake > target:
                break
            before, stuck = self.state, wake <= self.now
            self.now = max(self.now, wake)
            self.tick()
            # A wake-up that changes nothing, at a moment already reached, is a busy loop: the
            # workflow would spin on it.
            idle = idle + 1 if stuck and self.state == before else 0
            assert idle < 3, f"the machine asks to wake at {wake} and then does nothing"
        self.now = max(self.now, target)
        self.tick()

    def command(self, command: Command) -> machine.Transition | machine.Refusal:
        result = machine.apply(self.state, command, self.now)
        if isinstance(result, machine.Refusal):
            self.refused += 1
            return result
        self.take(result)
        self.tick()
        return result

    def settle(self, index: int, result: SendResult) -> None:
        if not self.in_flight:
            return
        send = self.in_flight.pop(index % len(self.in_flight))
        next_day = send.as_of + timedelta(days=1) if result == SendResult.DEFERRED else None
        self.command(SendSettled(message=send.message, result=result, next_day=next_day))


def start(playbook: Playbook, due: date, now: datetime, amount: str = "1200.00") -> Run:
    facts = InvoiceFacts(
        number="F-1",
        debtor_id="D-1",
        amount=Money.of(amount, "EUR"),
        issue_date=due - timedelta(days=60),
        due_date=due,
    )
    state = machine.new_state(facts, playbook, 86400.0, now)
    run = Run(state=state, now=now)
    run.take(machine.opened(state, now, None))
    return run
