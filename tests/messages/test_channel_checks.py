"""A playbook's texts must fit its segment limit, checked when it is loaded."""

from __future__ import annotations

from pathlib import Path

from domain.playbook import Playbook
from messages import Renderer
from messages.channel_checks import sms_problems

SMS_STEP = {
    "id": "reminder_1",
    "stage": "overdue",
    "offset_days": 3,
    "channels": ["email", "sms"],
    "template": "reminder",
    "tone": "firm",
}


def playbook(**options: object) -> Playbook:
    return Playbook.model_validate({"name": "t", "version": 1, "steps": [SMS_STEP], **options})


def test_the_shipped_texts_fit_one_segment() -> None:
    assert sms_problems(Renderer(), Path("t.yaml"), playbook(sms_max_segments=1)) == []


def test_a_text_too_long_for_the_limit_is_refused_with_its_length(tmp_path: Path) -> None:
    for language in ("fr", "en"):
        (tmp_path / language).mkdir()
        (tmp_path / language / "reminder.j2").write_text(
            "{% block subject %}x{% endblock %}{% block text %}x{% endblock %}"
            "{% block html %}x{% endblock %}"
        )
        # 200 characters with a "ç": UCS-2, 67 per part, so 3 segments.
        (tmp_path / language / "reminder_sms.j2").write_text(
            "{% block subject %}{% endblock %}{% block text %}Reçu "
            + "a" * 195
            + "{% endblock %}{% block html %}{% endblock %}"
        )

    (problem, *_) = sms_problems(Renderer(tmp_path), Path("t.yaml"), playbook())

    assert problem.step == "reminder_1"
    assert "3 segment(s), 200 UCS-2 units (because of 'ç')" in problem.reason
    assert "more than sms_max_segments (2)" in problem.reason


def test_a_step_that_may_text_needs_its_text_template() -> None:
    step = {**SMS_STEP, "template": "formal_notice"}
    pb = Playbook.model_validate({"name": "t", "version": 1, "steps": [step]})

    (problem, *_) = sms_problems(Renderer(), Path("t.yaml"), pb)

    assert "formal_notice_sms" in problem.reason
