"""`relance playbooks check` and `show`, as a finance director runs them."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from cli.main import app
from tests.domain.test_playbook import GOOD, variant

runner = CliRunner()


def write(folder: Path, name: str, data: dict[str, object]) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data | {"name": name}))
    return path


def test_check_a_folder_with_a_good_and_a_bad_file(tmp_path: Path, env: dict[str, str]) -> None:
    folder = tmp_path / "mine"
    good = write(folder, "good", GOOD)
    bad = write(folder, "bad", variant("call_1", channels=["fax"]))

    result = runner.invoke(app, ["playbooks", "check", str(folder)], env=env)

    assert result.exit_code == 1, result.output
    assert f"✓ {good}: good v1, 6 steps" in result.stdout
    assert (
        f"✗ {bad}, step call_1: channels: unknown channel 'fax' "
        "(channels: email, sms, letter, phone)" in result.stdout
    )
    assert "1 playbook file(s) refused" in result.stderr


def test_check_reports_every_bad_file(tmp_path: Path, env: dict[str, str]) -> None:
    folder = tmp_path / "mine"
    write(folder, "late", variant("legal", requires_approval=False))
    write(folder, "typo", variant("reminder_1", template="relance"))

    result = runner.invoke(app, ["playbooks", "check", str(folder)], env=env)

    assert result.exit_code == 1
    assert "late.yaml, step legal: a legal step must set requires_approval: true" in result.stdout
    assert "typo.yaml, step reminder_1: unknown template 'relance'" in result.stdout
    assert "2 playbook file(s) refused" in result.stderr


def test_check_without_a_folder_checks_the_shipped_ones_and_the_users(
    tmp_path: Path, env: dict[str, str]
) -> None:
    mine = tmp_path / "mine"
    write(mine, "pme", GOOD)

    result = runner.invoke(
        app, ["playbooks", "check"], env={**env, "RELANCE_PLAYBOOKS_DIR": str(mine)}
    )

    assert result.exit_code == 0, result.output
    for name in ("default", "tpe", "pme", "eti", "grand_compte"):
        assert f"playbooks/{name}.yaml: {name} v" in result.stdout
    assert f"✓ {mine / 'pme.yaml'}: pme v1, 6 steps" in result.stdout
    assert f"invoices use the playbooks in {mine} only" in result.stdout


def test_check_a_missing_or_empty_folder_fails(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "empty").mkdir()

    missing = runner.invoke(app, ["playbooks", "check", str(tmp_path / "nope")], env=env)
    empty = runner.invoke(app, ["playbooks", "check", str(tmp_path / "empty")], env=env)

    assert missing.exit_code == 1 and "no such directory" in missing.stdout
    assert empty.exit_code == 1 and "no playbook files" in empty.stdout


def test_show_prints_the_schedule(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["playbooks", "show", "grand_compte"], env=env)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("step "))
    assert header.split() == [
        "step", "stage", "when", "channels", "template", "/", "tone", "approval", "fallback"
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[lines.index(header) + 2 :] if line}
    assert rows["pre_reminder"][:4] == ["pre_reminder", "upcoming", "J-10", "email"]
    assert rows["call_1"][:4] == ["call_1", "overdue", "J+15", "phone"]
    formal = rows["formal_notice"]
    assert formal[:5] == ["formal_notice", "formal_notice", "J+60", "email,", "letter"]
    assert "yes" in formal  # needs approval
    assert "mediator" in " ".join(rows["mediation"])
    assert any("a second approval above 50000 or 12 instalments" in line for line in lines)


def test_show_an_unknown_or_broken_playbook(tmp_path: Path, env: dict[str, str]) -> None:
    folder = tmp_path / "mine"
    write(folder, "broken", variant("call_1", offset_days=-20))

    unknown = runner.invoke(app, ["playbooks", "show", "vip"], env=env)
    broken = runner.invoke(app, ["playbooks", "show", "broken", "--dir", str(folder)], env=env)

    assert unknown.exit_code == 1
    assert "no playbook named 'vip'" in unknown.stderr
    assert "available: default, eti, grand_compte, pme" in unknown.stderr
    assert broken.exit_code == 1
    assert "step call_1: offset -20 comes before" in broken.stderr
