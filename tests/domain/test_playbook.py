"""Playbook validation: each rule refuses a bad file with its file, its step and the reason;
the shipped playbooks all pass, templates included."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from domain.playbook import (
    DEFAULT_PLAYBOOKS_DIR,
    Channel,
    LatePaymentCostsAction,
    PlaybookError,
    PlaybookErrors,
    PlaybookLibrary,
    Stage,
    common_templates,
    load_playbook,
    load_playbooks,
    parse_playbook,
    playbook_directories,
    validate_templates,
)
from messages.render import Renderer

KNOWN = {
    "pre_reminder",
    "reminder",
    "formal_notice",
    "mediation",
    "legal_handoff",
    "thank_you",
    "mediation_file",
    "legal_file",
    # A phone step's call script.
    "call_script",
}

GOOD: dict[str, Any] = {
    "name": "sample",
    "version": 1,
    "steps": [
        {"id": "pre_reminder", "stage": "upcoming", "offset_days": -5, "template": "pre_reminder"},
        {"id": "reminder_1", "stage": "overdue", "offset_days": 3, "template": "reminder"},
        {
            "id": "call_1",
            "stage": "overdue",
            "offset_days": 7,
            "channels": ["phone"],
            "template": "reminder",
        },
        {
            "id": "formal_notice",
            "stage": "formal_notice",
            "offset_days": 30,
            "channels": ["email", "letter"],
            "template": "formal_notice",
            "tone": "formal",
        },
        {
            "id": "mediation",
            "stage": "mediation",
            "offset_days": 45,
            "template": "mediation",
            "requires_approval": True,
            "notify": ["mediator"],
        },
        {
            "id": "legal",
            "stage": "legal",
            "offset_days": 60,
            "template": "legal_handoff",
            "requires_approval": True,
            "notify": ["legal_partner"],
        },
    ],
}
PATH = Path("playbooks/sample.yaml")


def variant(step: str | None = None, **changes: Any) -> dict[str, Any]:
    """GOOD with `changes` applied to one step (by id), or to the playbook itself."""
    data = copy.deepcopy(GOOD)
    if step is None:
        data.update(changes)
        return data
    [target] = [s for s in data["steps"] if s["id"] == step]
    target.update(changes)
    return data


def refuse(data: dict[str, Any], known: set[str] | None = KNOWN) -> PlaybookError:
    with pytest.raises(PlaybookError) as caught:
        playbook = parse_playbook(yaml.safe_dump(data), PATH)
        if known is not None:
            validate_templates(playbook, known, PATH)
    return caught.value


def test_the_sample_is_valid() -> None:
    playbook = parse_playbook(yaml.safe_dump(GOOD), PATH)

    assert [s.id for s in playbook.steps][:3] == ["pre_reminder", "reminder_1", "call_1"]
    assert playbook.steps[2].channels == (Channel.PHONE,)


# --- one test per rule ---------------------------------------------------------------------


def test_unknown_template_is_refused_naming_the_step_and_the_known_ones() -> None:
    error = refuse(variant("reminder_1", template="relance"))

    assert error.path == PATH
    assert error.step == "reminder_1"
    assert "unknown template 'relance'" in error.reason
    assert "formal_notice, legal_file" in error.reason  # what is available, sorted
    assert str(error).startswith(f"{PATH}, step reminder_1: unknown template")


def test_template_of_a_third_party_file_must_exist_too() -> None:
    error = refuse(GOOD, known=KNOWN - {"legal_file"})

    assert error.step == "legal"
    assert "unknown template 'legal_file' (the file sent to a third party)" in error.reason


def test_offsets_out_of_order_are_refused() -> None:
    error = refuse(variant("call_1", offset_days=2))

    assert error.step == "call_1"
    assert "offset 2 comes before the previous step 'reminder_1' (3)" in error.reason


def test_stage_going_back_is_refused() -> None:
    error = refuse(variant("call_1", stage="upcoming"))

    assert error.step == "call_1"
    assert "goes back from overdue" in error.reason


@pytest.mark.parametrize("step", ["mediation", "legal"])
def test_mediation_and_legal_steps_need_approval(step: str) -> None:
    error = refuse(variant(step, requires_approval=False))

    assert error.step == step
    assert f"a {step} step must set requires_approval: true" in error.reason


def test_formal_notice_may_require_approval() -> None:
    playbook = parse_playbook(
        yaml.safe_dump(variant("formal_notice", requires_approval=True)), PATH
    )

    assert playbook.steps[3].requires_approval


@pytest.mark.parametrize(
    ("field", "value"), [("channels", ["email", "fax"]), ("fallback", ["fax"])]
)
def test_unknown_channel_is_refused_listing_the_allowed_ones(field: str, value: list[str]) -> None:
    error = refuse(variant("reminder_1", **{field: value}))

    assert error.step == "reminder_1"
    assert error.reason == f"{field}: unknown channel 'fax' (channels: email, sms, letter, phone)"


def test_a_single_channel_may_be_written_without_a_list() -> None:
    playbook = parse_playbook(yaml.safe_dump(variant("reminder_1", channels="letter")), PATH)

    assert playbook.steps[1].channels == (Channel.LETTER,)


def test_fallback_containing_email_is_refused() -> None:
    error = refuse(variant("reminder_1", fallback=["letter", "email"]))

    assert error.step == "reminder_1"
    assert "fallback replaces email once the debtor's address bounced" in error.reason


def test_duplicate_step_ids_are_refused() -> None:
    error = refuse(variant("call_1", id="reminder_1"))

    assert error.step == "reminder_1"
    assert error.reason == "duplicate step id"


def test_a_channel_listed_twice_is_refused() -> None:
    error = refuse(variant("formal_notice", channels=["letter", "letter"]))

    assert error.step == "formal_notice"
    assert "a channel is listed twice" in error.reason


def test_step_id_must_be_lower_snake_case() -> None:
    error = refuse(variant("call_1", id="Call 1"))

    assert error.step == "Call 1"
    assert "lower_snake_case" in error.reason


def test_unknown_tone_and_stray_field_name_the_field() -> None:
    tone = refuse(variant("reminder_1", tone="angry"))
    stray = refuse(variant("reminder_1", chanels=["email"]))
    top = refuse(variant(version=0))

    assert (tone.step, tone.reason.split(":")[0]) == ("reminder_1", "tone")
    assert (stray.step, stray.reason.split(":")[0]) == ("reminder_1", "chanels")
    assert top.step is None and top.reason.startswith("version:")


def test_not_a_playbook_at_all() -> None:
    with pytest.raises(PlaybookError, match="not valid YAML"):
        parse_playbook("steps: [", PATH)
    with pytest.raises(PlaybookError, match="a playbook is a mapping"):
        parse_playbook("- just a list", PATH)


def test_name_must_match_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(GOOD))

    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)

    assert caught.value.path == path
    assert "name 'sample' differs from the file name" in caught.value.reason


# --- a folder ------------------------------------------------------------------------------


def test_load_playbooks_reports_every_bad_file_not_just_the_first(tmp_path: Path) -> None:
    (tmp_path / "sample.yaml").write_text(yaml.safe_dump(GOOD))
    (tmp_path / "bad_order.yaml").write_text(
        yaml.safe_dump(variant("call_1", offset_days=1) | {"name": "bad_order"})
    )
    (tmp_path / "bad_template.yaml").write_text(
        yaml.safe_dump(variant("legal", template="proces") | {"name": "bad_template"})
    )
    (tmp_path / "typo.yml").write_text(yaml.safe_dump(GOOD))
    (tmp_path / "notes.txt").write_text("not a playbook")

    with pytest.raises(PlaybookErrors) as caught:
        load_playbooks(tmp_path, KNOWN)

    refused = {(e.path.name, e.step) for e in caught.value.errors}
    assert refused == {
        ("bad_order.yaml", "call_1"),
        ("bad_template.yaml", "legal"),
        ("typo.yml", None),
    }
    assert list(caught.value.loaded) == ["sample"]
    assert (
        "end in .yaml" in next(e for e in caught.value.errors if e.path.name == "typo.yml").reason
    )


def test_a_users_folder_replaces_the_shipped_playbooks(tmp_path: Path) -> None:
    (tmp_path / "pme.yaml").write_text(yaml.safe_dump(GOOD | {"name": "pme", "version": 7}))
    library = PlaybookLibrary(playbook_directories(tmp_path), KNOWN)
    shipped = PlaybookLibrary(playbook_directories(None), KNOWN)

    assert library.get("pme").version == 7
    assert library.names() == {"pme"}  # what the folder holds is exactly what runs
    with pytest.raises(PlaybookError, match=r"no playbook named 'tpe' in .* \(available: pme\)"):
        library.get("tpe")
    assert {"default", "tpe", "pme", "eti", "grand_compte"} <= shipped.names()


def test_an_edited_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "sample.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    library = PlaybookLibrary([tmp_path])
    assert library.get("sample").version == 1

    path.write_text(yaml.safe_dump(GOOD | {"version": 2}))
    # The same second on a coarse file system: make the edit visible by its mtime.
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))

    assert library.get("sample").version == 2


# --- the shipped playbooks -----------------------------------------------------------------


def shipped_known() -> set[str]:
    renderer = Renderer()
    return common_templates({lang: renderer.templates(lang) for lang in renderer.languages()})


def test_every_shipped_playbook_loads_and_its_templates_render_in_every_language() -> None:
    renderer = Renderer()
    playbooks = load_playbooks(DEFAULT_PLAYBOOKS_DIR, shipped_known())

    assert {"default", "tpe", "pme", "eti", "grand_compte"} <= set(playbooks)
    assert renderer.languages() == ["en", "fr"]
    for playbook in playbooks.values():
        for step in playbook.steps:
            for template in step.templates:
                for language in renderer.languages():
                    renderer.check(template, language)  # raises if missing or broken


def test_shipped_scenarios_are_what_a_credit_manager_expects() -> None:
    pbs = load_playbooks(DEFAULT_PLAYBOOKS_DIR, shipped_known())

    def first(name: str, stage: Stage | None = None, channel: Channel | None = None) -> int:
        return next(
            s.offset_days
            for s in pbs[name].steps
            if (stage is None or s.stage == stage) and (channel is None or channel in s.channels)
        )

    # A TPE gets a phone call early and its formal notice sooner than a PME.
    assert first("tpe", channel=Channel.PHONE) <= 7
    assert first("tpe", Stage.FORMAL_NOTICE) < first("pme", Stage.FORMAL_NOTICE)
    # A grand compte: longer, no SMS, the formal notice only with approval.
    gc = pbs["grand_compte"]
    assert first("grand_compte", Stage.FORMAL_NOTICE) > first("eti", Stage.FORMAL_NOTICE)
    assert all(Channel.SMS not in s.channels + s.fallback for s in gc.steps)
    assert next(s for s in gc.steps if s.stage == Stage.FORMAL_NOTICE).requires_approval
    # High-risk variants are faster than their segment's playbook.
    for segment in ("tpe", "pme"):
        high = f"{segment}_high"
        assert first(high, Stage.FORMAL_NOTICE) < first(segment, Stage.FORMAL_NOTICE)
    # Every file says in its header how it is chosen.
    for path in DEFAULT_PLAYBOOKS_DIR.glob("*.yaml"):
        if path.stem != "default":
            assert path.read_text().startswith("#"), path


# ---------------------------------------------------------------- late-payment law options


def test_late_payment_options_default_to_telling_the_back_office_and_eight_business_days() -> None:
    playbook = parse_playbook(yaml.safe_dump(GOOD), PATH)
    assert playbook.late_payment_costs is LatePaymentCostsAction.NOTIFY_BACKOFFICE
    assert playbook.notice_deadline_business_days == 8
    assert playbook.notice_deadline_from == "sending"


@pytest.mark.parametrize("former", ["formal_notice_deadline_business_days", "notice_days"])
def test_a_playbook_with_a_former_name_of_the_notice_deadline_still_loads(former: str) -> None:
    playbook = parse_playbook(yaml.safe_dump({**GOOD, former: 10}), PATH)
    assert playbook.notice_deadline_business_days == 10
    # The same figure under two names is one setting; two figures are refused.
    both = {**GOOD, former: 10, "notice_deadline_business_days": 10}
    assert parse_playbook(yaml.safe_dump(both), PATH).notice_deadline_business_days == 10
    with pytest.raises(PlaybookError, match=f"{former}, notice_deadline_business_days disagree"):
        parse_playbook(yaml.safe_dump({**both, former: 12}), PATH)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("late_payment_costs", "invoice", "late_payment_costs: Input should be 'none'"),
        ("notice_deadline_business_days", 0, "notice_deadline_business_days"),
        ("notice_deadline_business_days", 90, "notice_deadline_business_days"),
        ("formal_notice_deadline_business_days", 90, "notice_deadline_business_days"),
        ("notice_deadline_from", "posting", "notice_deadline_from"),
    ],
)
def test_bad_late_payment_options_are_refused_naming_the_field(
    field: str, value: object, reason: str
) -> None:
    with pytest.raises(PlaybookError, match=reason):
        parse_playbook(yaml.safe_dump({**GOOD, field: value}), PATH)


def test_sending_a_statement_needs_its_template_in_every_language() -> None:
    playbook = parse_playbook(yaml.safe_dump({**GOOD, "late_payment_costs": "statement"}), PATH)
    with pytest.raises(PlaybookError, match="late_payment_statement"):
        validate_templates(playbook, KNOWN, PATH)
    validate_templates(playbook, KNOWN | {"late_payment_statement"}, PATH)
    shipped = Renderer()
    every = set.intersection(*(set(shipped.templates(lang)) for lang in shipped.languages()))
    validate_templates(playbook, every, PATH)


def test_every_shipped_playbook_sends_the_formal_notice_by_registered_letter() -> None:
    # The mise en demeure must be provable: registered with acknowledgment of receipt.
    for name, pb in load_playbooks(DEFAULT_PLAYBOOKS_DIR).items():
        (notice,) = [s for s in pb.steps if s.stage == Stage.FORMAL_NOTICE]
        assert Channel.LETTER in notice.channels, name
        assert notice.registered_letter, name
