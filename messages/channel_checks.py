"""Load-time checks of what a playbook sends on channels with limits: the text messages.

Each step that may send a text (`sms` among its channels or fallbacks) has its `<template>_sms`
rendered in every language with sample values (long ones: a four-digit amount, a company name),
and is refused when the result takes more segments than the playbook allows. A "ç" or an "ô"
switches a whole text to UCS-2 (70 characters instead of 160): the refusal says so.
"""

from __future__ import annotations

from pathlib import Path

from domain.playbook import Channel, Playbook, PlaybookError, sms_template
from domain.sms_text import sms_length, sms_text
from messages.render import Renderer, RenderError, TemplateNotFound, _sample_context


def sms_body(renderer: Renderer, template: str, language: str) -> str:
    """A text as it goes out: the template's text block on one line."""
    rendered = renderer.render(sms_template(template), _sample_context(language))
    return sms_text(rendered.text)


def sms_problems(renderer: Renderer, path: Path, playbook: Playbook) -> list[PlaybookError]:
    problems = []
    for step in playbook.steps:
        if Channel.SMS not in set(step.channels) | set(step.fallback):
            continue
        for language in renderer.languages():
            try:
                length = sms_length(sms_body(renderer, step.template, language))
            except (TemplateNotFound, RenderError) as err:
                problems.append(PlaybookError(path, str(err), step.id))
                continue
            if length.segments > playbook.sms_max_segments:
                problems.append(
                    PlaybookError(
                        path,
                        f"the text {sms_template(step.template)!r} in {language} takes "
                        f"{length.describe()}, more than sms_max_segments "
                        f"({playbook.sms_max_segments})",
                        step.id,
                    )
                )
    return problems
