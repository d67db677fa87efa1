"""Every channel's failure takes the playbook's fallback, as an email bounce always did.

An SMS STOP or hard failure, a registered letter not claimed or returned, a call never reached:
the step goes out again on its fallback channels (once per step), and later steps avoid that
channel until the contact is corrected. Gated on the rules' edition 2: a state carried from
edition 1 keeps acting on email bounces only.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from domain.collection import machine
from domain.collection.commands import ContactCorrected, LetterReceived, SendResult, SendSettled
from domain.collection.records import EventKind
from domain.collection.state import CollectionState
from domain.holds import DeliveryEvent
from domain.lifecycle import Stage
from domain.playbook import Channel, Playbook, Step
from tests.domain.collection.driver import Run, start

# Handed over on Monday 2 March 2026, 08:00 UTC, due that day.
NOW = datetime(2026, 3, 2, 8, tzinfo=UTC)
DUE = date(2026, 3, 2)


def playbook(**settings: object) -> Playbook:
    """Email, then SMS, then a registered letter, then a call, then a text again."""
    return Playbook.model_validate(
        {
            "name": "every_channel",
            "version": 1,
            **settings,
            "steps": [
                Step(id="by_email", stage=Stage.OVERDUE, offset_days=3, template="reminder_1",
                     channels=(Channel.EMAIL,), fallback=(Channel.SMS,)),
                Step(id="by_sms", stage=Stage.OVERDUE, offset_days=10, template="reminder_2",
                     channels=(Channel.SMS,), fallback=(Channel.LETTER,)),
                Step(id="formal_notice", stage=Stage.FORMAL_NOTICE, offset_days=20,
                     template="formal_notice", channels=(Channel.LETTER,),
                     fallback=(Channel.PHONE,)),
                Step(id="call", stage=Stage.FORMAL_NOTICE, offset_days=30, template="reminder_2",
                     channels=(Channel.PHONE,), fallback=(Channel.LETTER,)),
                Step(id="last_text", stage=Stage.FORMAL_NOTICE, offset_days=40,
                     template="reminder_2", channels=(Channel.SMS,), fallback=(Channel.LETTER,)),
            ],
        }
    )  # fmt: skip


def sent(run: Run) -> list[tuple[str, str]]:
    """What went to the debtor, as (step, channel)."""
    return [
        (s.send.message.step_id, s.send.message.channel.value)
        for s in run.sent
        if s.send.message.recipient.value == "debtor"
    ]


def calls(run: Run) -> list[str]:
    return [e.task.task_id for e in run.recorded if e.task is not None and e.task.kind == "call"]


def kinds(run: Run, *wanted: EventKind) -> list[tuple[str, str]]:
    return [(e.kind.value, e.key) for e in run.recorded if e.kind in wanted]


def failed(step: str, channel: Channel, kind: str = "bounce", reason: str = "") -> DeliveryEvent:
    return DeliveryEvent.model_validate(
        {
            "event_id": f"{channel.value}:{step}:{kind}",
            "kind": kind,
            "step_id": step,
            "channel": channel.value,
            "occurred_at": NOW,
            "reason": reason or None,
        }
    )


def test_a_bounce_a_stop_an_unclaimed_letter_and_an_unreached_call_each_take_the_fallback() -> None:
    run = start(playbook(), DUE, NOW)

    run.advance(timedelta(days=4))
    run.command(failed("by_email", Channel.EMAIL))
    assert sent(run) == [("by_email", "email"), ("by_email_fallback", "sms")]

    run.advance(timedelta(days=7))
    run.command(failed("by_sms", Channel.SMS, "dropped", "STOP reply"))
    assert sent(run)[2:] == [("by_sms", "sms"), ("by_sms_fallback", "letter")]

    run.advance(timedelta(days=11))
    run.command(failed("formal_notice", Channel.LETTER, reason="registered letter not claimed"))
    assert sent(run)[4:] == [("formal_notice", "letter")]
    # The not-claimed notice is followed by a call (the formal notice's fallback).
    assert calls(run) == ["F-1:formal_notice:call"]

    # A new postal address: letters go out again; email and texts stay off.
    run.command(ContactCorrected(event_id="fix-1", by="claire", channels=(Channel.LETTER,)))
    run.advance(timedelta(days=10))
    assert calls(run) == ["F-1:formal_notice:call", "F-1:call:call"]
    run.command(failed("call", Channel.PHONE, reason="not reached 3 times in a row"))
    assert sent(run)[5:] == [("call_fallback", "letter")]

    # The last step is a text: the debtor said STOP, so it goes by its fallback, a letter.
    run.advance(timedelta(days=12))
    assert sent(run)[6:] == [("last_text", "letter")]

    assert kinds(run, EventKind.FALLBACK, EventKind.CHANNEL_FALLBACK) == [
        ("fallback", "fallback:by_email"),
        ("channel_fallback", "fallback:by_sms:sms"),
        ("channel_fallback", "fallback:formal_notice:letter"),
        ("channel_fallback", "fallback:call:phone"),
    ]
    invalid = [e.summary for e in run.recorded if e.kind == EventKind.CHANNEL_INVALID]
    assert invalid[0].startswith("SMS cannot reach the debtor (STOP reply)")
    assert "Letter cannot reach the debtor (registered letter not claimed)" in invalid[1]
    corrected = [e.summary for e in run.recorded if e.kind == EventKind.CONTACT_CORRECTED]
    assert corrected == ["Contact details corrected by claire; letter is used again"]


def test_a_step_falls_back_once_and_a_replayed_event_changes_nothing() -> None:
    run = start(playbook(), DUE, NOW)
    run.advance(timedelta(days=11))
    stop = failed("by_sms", Channel.SMS, "dropped", "STOP reply")
    run.command(stop)
    run.command(stop)
    # A hard failure of the same text after the STOP: the step already fell back.
    run.command(failed("by_sms", Channel.SMS, reason="Twilio error 30003"))
    assert [s for s in sent(run) if s[0] == "by_sms_fallback"] == [("by_sms_fallback", "letter")]
    assert len(kinds(run, EventKind.CHANNEL_INVALID)) == 1


def test_a_corrected_number_is_texted_again() -> None:
    run = start(playbook(), DUE, NOW)
    run.advance(timedelta(days=11))
    run.command(failed("by_sms", Channel.SMS, "dropped", "STOP reply"))
    run.command(ContactCorrected(event_id="fix-1", by="claire", channels=(Channel.SMS,)))
    run.advance(timedelta(days=40))
    assert ("last_text", "sms") in sent(run)


def test_undeliverable_at_send_time_takes_the_fallback() -> None:
    run = start(playbook(), DUE, NOW)
    run.advance(timedelta(days=11))
    (text,) = [s for s in run.in_flight if s.message.step_id == "by_sms"]
    run.command(
        SendSettled(
            message=text.message,
            result=SendResult.UNDELIVERABLE,
            reason="the debtor has no phone number",
        )
    )
    assert sent(run)[-1] == ("by_sms_fallback", "letter")
    assert "no phone number" in kinds_summary(run, EventKind.CHANNEL_INVALID)[0]
    assert not kinds(run, EventKind.MESSAGE_FAILED)


def kinds_summary(run: Run, kind: EventKind) -> list[str]:
    return [e.summary for e in run.recorded if e.kind == kind]


def test_a_carried_first_edition_state_acts_on_email_bounces_only() -> None:
    run = start(playbook(), DUE, NOW)
    run.state = run.state.model_copy(update={"rules": 1})
    run.advance(timedelta(days=11))
    run.command(failed("by_sms", Channel.SMS, "dropped", "STOP reply"))
    (text,) = [s for s in run.in_flight if s.message.step_id == "by_sms"]
    run.command(SendSettled(message=text.message, result=SendResult.UNDELIVERABLE, reason="x"))
    assert not [s for s in sent(run) if s[0].endswith("_fallback")]
    assert run.state.invalid_channels == []
    assert kinds(run, EventKind.MESSAGE_FAILED) == [("message_failed", "failed:by_sms:sms:debtor")]


def test_a_saved_state_with_a_bounced_email_still_uses_the_fallback_until_corrected() -> None:
    # A state saved before the per-channel list existed: it has `email_invalid` only.
    saved = start(playbook(), DUE, NOW).state.model_dump(mode="json")
    for field in ("invalid_channels", "received_on", "notice_deadline"):
        del saved[field]
    saved["email_invalid"] = True
    run = Run(state=CollectionState.model_validate(saved), now=NOW)
    run.advance(timedelta(days=4))
    assert sent(run) == [("by_email", "sms")]
    # The correction of old (no channels named) is the email's.
    run.command(ContactCorrected(event_id="fix-1", by="claire"))
    assert run.state.email_invalid is False


def test_the_next_step_waits_for_a_deadline_running_from_receipt() -> None:
    steps = playbook().steps[2:4]
    receipt = playbook(notice_deadline_from="receipt").model_copy(update={"steps": steps})
    run = start(receipt, DUE, NOW)
    run.advance(timedelta(days=23))
    assert sent(run) == [("formal_notice", "letter")]
    # The AR card: received Thursday 26 March 2026. The deadline comes with it, computed where
    # the business calendar is (domain/notice.py); here 8 business days, 27 March to 7 April
    # 2026 (Easter Monday, 6 April, is not one).
    run.command(
        LetterReceived(
            event_id="ar-1",
            step_id="formal_notice",
            received_on=date(2026, 3, 26),
            deadline=date(2026, 4, 7),
        )
    )
    # What people see meanwhile: the call, on the day after the deadline.
    shown = machine.status(run.state, run.now).next_step
    assert shown is not None and shown.step_id == "call"
    assert shown.at == datetime(2026, 4, 8, 9, tzinfo=UTC)
    assert shown.note == (
        "waits for the formal notice's deadline, 2026-04-07 (counted from its receipt)"
    )
    # The call (nominally 1 April) waits until the deadline passed: 8 April, 09:00.
    run.advance(timedelta(days=15))
    (opened,) = [
        e for e in run.recorded if e.task is not None and e.task.task_id.endswith(":call:call")
    ]
    assert opened.at == datetime(2026, 4, 8, 9, tzinfo=UTC)
    (received,) = [e for e in run.recorded if e.kind == EventKind.LETTER_RECEIVED]
    assert received.detail == {
        "step": "formal_notice",
        "received_on": "2026-03-26",
        "deadline": "2026-04-07",
    }


def test_a_receipt_is_recorded_but_a_deadline_from_sending_does_not_wait_for_it() -> None:
    steps = playbook().steps[2:4]
    run = start(playbook().model_copy(update={"steps": steps}), DUE, NOW)
    run.advance(timedelta(days=23))
    run.command(
        LetterReceived(event_id="ar-1", step_id="formal_notice", received_on=date(2026, 3, 26))
    )
    run.advance(timedelta(days=15))
    (opened,) = [
        e for e in run.recorded if e.task is not None and e.task.task_id.endswith(":call:call")
    ]
    # Nominally 1 April 2026 (due 2 March + 30), a Wednesday: 09:00.
    assert opened.at == datetime(2026, 4, 1, 9, tzinfo=UTC)
    assert [e.kind for e in run.recorded].count(EventKind.LETTER_RECEIVED) == 1


def tasks(run: Run, kind: str) -> list[tuple[str, str]]:
    return [
        (e.task.task_id, e.task.title)
        for e in run.recorded
        if e.task is not None and e.task.kind == kind
    ]


def task_changes(run: Run, kind: str) -> list[tuple[str, str]]:
    return [
        (e.task.task_id, e.task.status)
        for e in run.recorded
        if e.task is not None and e.task.kind == kind
    ]


UNREACHABLE = "No channel reaches the debtor of invoice F-1: correct the contact"


def test_a_step_whose_fallback_cannot_reach_the_debtor_either_opens_one_contact_task() -> None:
    run = start(playbook(), DUE, NOW)
    run.advance(timedelta(days=4))
    # The email bounced, and the SMS it falls back to was already known not to reach them.
    run.state = run.state.model_copy(update={"invalid_channels": [Channel.SMS]})
    bounce = failed("by_email", Channel.EMAIL)
    run.command(bounce)

    assert sent(run) == [("by_email", "email")]
    assert tasks(run, "contact") == [("F-1:by_email:contact", UNREACHABLE)]
    # The email is corrected: the task is done.
    run.command(ContactCorrected(event_id="fix-1", by="claire"))
    changes = [("F-1:by_email:contact", "open"), ("F-1:by_email:contact", "done")]
    assert task_changes(run, "contact") == changes
    # A second bounce of the same step opens no second task.
    run.command(bounce.model_copy(update={"event_id": "email:by_email:bounce:2"}))
    assert task_changes(run, "contact") == changes


def test_a_step_with_no_usable_channel_left_opens_a_contact_task() -> None:
    run = start(playbook(), DUE, NOW)
    # Neither texts nor letters reach the debtor: the SMS step has nothing left to go by.
    run.state = run.state.model_copy(update={"invalid_channels": [Channel.SMS, Channel.LETTER]})
    run.advance(timedelta(days=11))
    assert not [s for s in sent(run) if s[0].startswith("by_sms")]
    assert tasks(run, "contact") == [("F-1:by_sms:contact", UNREACHABLE)]


def test_a_failed_fallback_with_nothing_left_opens_a_contact_task() -> None:
    run = start(playbook(), DUE, NOW)
    run.advance(timedelta(days=11))
    run.command(failed("by_sms", Channel.SMS, "dropped", "STOP reply"))
    assert sent(run)[-1] == ("by_sms_fallback", "letter")
    assert tasks(run, "contact") == []
    # The letter it fell back to came back too: nothing of the step reaches the debtor.
    run.command(failed("by_sms_fallback", Channel.LETTER, reason="returned to sender"))
    assert tasks(run, "contact") == [("F-1:by_sms:contact", UNREACHABLE)]


def test_a_call_after_a_returned_notice_never_reached_opens_a_contact_task() -> None:
    notice_only = playbook().model_copy(update={"steps": playbook().steps[2:3]})
    run = start(notice_only, DUE, NOW)
    run.advance(timedelta(days=21))
    run.command(failed("formal_notice", Channel.LETTER, reason="returned to sender"))
    assert calls(run) == ["F-1:formal_notice:call"]
    assert tasks(run, "contact") == []
    # The call it fell back to never reached them either.
    run.command(failed("formal_notice", Channel.PHONE, reason="not reached 3 times in a row"))
    assert tasks(run, "contact") == [("F-1:formal_notice:contact", UNREACHABLE)]


def test_a_step_whose_other_channel_still_reached_opens_no_task() -> None:
    both = playbook().model_copy(
        update={
            "steps": [
                Step(id="both", stage=Stage.OVERDUE, offset_days=3, template="reminder_1",
                     channels=(Channel.EMAIL, Channel.SMS), fallback=(Channel.SMS,)),
            ]
        }
    )  # fmt: skip
    run = start(both, DUE, NOW)
    run.advance(timedelta(days=4))
    run.command(failed("both", Channel.EMAIL))
    assert sent(run) == [("both", "email"), ("both", "sms")]
    assert tasks(run, "contact") == []


def test_a_first_edition_state_opens_no_contact_task() -> None:
    run = start(playbook(), DUE, NOW)
    run.state = run.state.model_copy(
        update={"rules": 1, "invalid_channels": [Channel.SMS, Channel.LETTER]}
    )
    run.advance(timedelta(days=11))
    assert tasks(run, "contact") == []


def test_a_first_edition_state_ignores_a_correction_of_other_channels() -> None:
    run = start(playbook(), DUE, NOW)
    run.state = run.state.model_copy(update={"rules": 1})
    run.advance(timedelta(days=4))
    run.command(failed("by_email", Channel.EMAIL))
    assert run.state.email_invalid is True
    # A new phone number says nothing about the bounced address.
    run.command(
        ContactCorrected(event_id="fix-1", by="claire", channels=(Channel.SMS, Channel.PHONE))
    )
    assert run.state.email_invalid is True
    run.command(ContactCorrected(event_id="fix-2", by="claire", channels=(Channel.EMAIL,)))
    assert run.state.email_invalid is False
