"""`relance playbooks`: check the collection scenarios, and show one as a schedule.

relance playbooks check [DIR]    validate every playbook in DIR (default: the shipped folder and
                                 RELANCE_PLAYBOOKS_DIR); exit 1 if any is refused
relance playbooks show NAME      the schedule of one playbook, as the workflow will run it
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import fail, settings_from_env
from domain.playbook import (
    DEFAULT_PLAYBOOKS_DIR,
    Channel,
    Playbook,
    PlaybookError,
    PlaybookErrors,
    PlaybookLibrary,
    Step,
    load_playbooks,
    playbook_directories,
    playbook_files,
)
from messages.channel_checks import sms_problems
from messages.render import Renderer, RenderError, TemplateNotFound

app = typer.Typer(help="Collection playbooks (one YAML file per scenario).", no_args_is_help=True)

OK, BAD = "✓", "✗"


def _render_problems(renderer: Renderer, path: Path, playbook: Playbook) -> list[PlaybookError]:
    """Templates that exist but would fail to render (syntax error, missing block): found now,
    not when the first invoice reaches the step."""
    problems = []
    for step in playbook.steps:
        for template in step.templates:
            for language in renderer.languages():
                try:
                    renderer.check(template, language)
                except (TemplateNotFound, RenderError) as err:
                    problems.append(PlaybookError(path, str(err), step.id))
    return problems + sms_problems(renderer, path, playbook)


def _say(error: PlaybookError) -> None:
    where = f"{error.path}" + (f", step {error.step}" if error.step else "")
    typer.secho(f"{BAD} {where}: {error.reason}", fg=typer.colors.RED)


def _check_directory(directory: Path, renderer: Renderer) -> int:
    """Print one line per file; return how many were refused."""
    files = playbook_files(directory)
    if not directory.is_dir():
        _say(PlaybookError(directory, "no such directory"))
        return 1
    if not files:
        _say(PlaybookError(directory, "no playbook files (*.yaml) in this directory"))
        return 1
    try:
        loaded = load_playbooks(directory, renderer.known_templates())
        errors: list[PlaybookError] = []
    except PlaybookErrors as err:
        loaded, errors = err.loaded, err.errors
    for name, playbook in loaded.items():
        errors += _render_problems(renderer, directory / f"{name}.yaml", playbook)
    bad_paths = {e.path for e in errors}
    for path in files:
        for error in (e for e in errors if e.path == path):
            _say(error)
        if path in bad_paths:
            continue
        playbook = loaded[path.stem]
        typer.echo(f"{OK} {path}: {playbook.name} v{playbook.version}, {len(playbook.steps)} steps")
    return len(bad_paths)


@app.command("check")
def check(
    directory: Annotated[
        Path | None,
        typer.Argument(
            help="folder to check; default: the shipped playbooks and RELANCE_PLAYBOOKS_DIR",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Validate every playbook file: steps, order, approvals, channels, templates."""
    renderer = Renderer()
    if directory is not None:
        folders = [directory]
    else:
        user_dir = settings_from_env().playbooks_dir
        folders = [DEFAULT_PLAYBOOKS_DIR, *([user_dir] if user_dir is not None else [])]
        if user_dir is not None:
            # Both are checked (the shipped ones are what users copy from), but only one runs.
            typer.echo(
                f"RELANCE_PLAYBOOKS_DIR is set: invoices use the playbooks in {user_dir} "
                "only; the shipped ones are checked as a reference."
            )
    bad = sum([_check_directory(folder, renderer) for folder in folders])
    if bad:
        typer.secho(f"{bad} playbook file(s) refused", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)


def _offset(days: int) -> str:
    # How French credit managers write it: J-5 is five days before the due date.
    return f"J{days:+d}"


def _row(step: Step) -> list[str]:
    channels = ", ".join(c.value for c in step.channels)
    if step.notify:
        channels += " + file to " + ", ".join(r.value.replace("_", " ") for r in step.notify)
    return [
        step.id,
        step.stage.value,
        _offset(step.offset_days),
        channels,
        f"{step.template} / {step.tone.value}",
        "yes" if step.requires_approval else "-",
        # The fallback replaces email after a bounce: nothing to replace on a call or letter.
        ", ".join(c.value for c in step.fallback) if Channel.EMAIL in step.channels else "-",
    ]


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def schedule(playbook: Playbook) -> str:
    """The playbook as a credit manager reads it: one line per step, then its rules."""
    header = ["step", "stage", "when", "channels", "template / tone", "approval", "fallback"]
    days = "day" if playbook.min_gap_days == 1 else "days"
    rules = [
        f"at least {playbook.min_gap_days:g} {days} between two actions",
        f"approvals: collectors reminded after {playbook.approval_reminder_days:g} days, "
        f"then every {playbook.approval_reminder_repeat_days:g}; a rejected escalation is "
        f"proposed again after {playbook.rejection_retry_days:g} days",
        f"disputes: resolved within {playbook.dispute_resolution_days:g} days; a rejected one "
        f"resumes after {playbook.dispute_grace_days:g}",
        f"promises to pay: escalation resumes {playbook.promise_grace_days:g} days after the "
        "promised day",
        f"payment plans: a second approval above {playbook.plan_approval_amount} or "
        f"{playbook.plan_approval_installments} instalments; reminder "
        f"{playbook.installment_reminder_days:g} days before each, "
        f"{playbook.installment_grace_days:g} days' grace after a missed one",
        f"phone steps: a collector has {playbook.call_task_days:g} days to call",
    ]
    title = f"{playbook.name} v{playbook.version}"
    parts = [title, *([playbook.description] if playbook.description else []), ""]
    parts += [_table(header, [_row(s) for s in playbook.steps]), ""]
    parts += ["J-5 = five days before the due date, J+3 = three days after.", ""]
    parts += [f"- {rule}" for rule in rules]
    return "\n".join(parts)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="the playbook's name, e.g. pme or grand_compte")],
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="look in this folder instead of the configured ones"),
    ] = None,
) -> None:
    """Print a playbook's schedule: steps, stage, when, channels, template and tone, approval."""
    folders = (
        (directory,)
        if directory is not None
        else playbook_directories(settings_from_env().playbooks_dir)
    )
    library = PlaybookLibrary(folders, Renderer().known_templates())
    try:
        playbook = library.get(name)
        path = library.path_of(name)
    except PlaybookError as err:
        fail(str(err))
    typer.echo(f"# {path}")
    typer.echo(schedule(playbook))
