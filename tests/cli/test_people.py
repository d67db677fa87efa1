"""`relance user add` and `relance user unlock`: people who sign in to the console."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner, Result

from api.console import accounts
from api.console.accounts import SignInRefused
from cli.main import app
from store.engine import make_engine

runner = CliRunner()
PASSWORD = "a long enough password"


def _add(env: dict[str, str], *args: str, password: str = PASSWORD) -> Result:
    return runner.invoke(
        app, ["user", "add", *args, "--password-stdin"], input=password + "\n", env=env
    )


def test_a_person_is_added_signs_in_and_is_refused_a_second_account(
    env: dict[str, str],
) -> None:
    result = _add(env, "Claire@Example.com", "--role", "collector", "--language", "en")
    assert result.exit_code == 0, result.output
    assert "created user:1 claire@example.com (collector)" in result.output
    engine = make_engine(f"sqlite:///{env['RELANCE_DATA_DIR']}/relance.db")
    try:
        token = accounts.sign_in(engine, "claire@example.com", PASSWORD)
        person = accounts.person_of(engine, token)
        assert person is not None
        assert (person.identity, person.role.value, person.language.value) == (
            "user:1",
            "collector",
            "en",
        )
        # Only the argon2 hash is stored.
        [stored] = accounts.people(engine)
        assert stored.password_hash.startswith("$argon2id$")
        assert PASSWORD not in stored.password_hash
    finally:
        engine.dispose()

    again = _add(env, "claire@example.com", "--role", "admin")
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_a_short_password_or_unknown_role_is_refused(env: dict[str, str]) -> None:
    short = _add(env, "bob@example.com", "--role", "ops", password="short")
    assert short.exit_code == 1
    assert "at least 12 characters" in short.output
    unknown = _add(env, "bob@example.com", "--role", "boss")
    assert unknown.exit_code == 2
    assert "boss" in unknown.output


def test_an_admin_unlocks_a_locked_account(env: dict[str, str]) -> None:
    assert _add(env, "dan@example.com", "--role", "finance").exit_code == 0
    engine = make_engine(f"sqlite:///{env['RELANCE_DATA_DIR']}/relance.db")
    try:
        for _ in range(accounts.LOCK_AFTER):
            with pytest.raises(SignInRefused):
                accounts.sign_in(engine, "dan@example.com", "not the password")
        with pytest.raises(SignInRefused, match="locked"):
            accounts.sign_in(engine, "dan@example.com", PASSWORD)
        result = runner.invoke(app, ["user", "unlock", "dan@example.com"], env=env)
        assert result.exit_code == 0, result.output
        assert accounts.sign_in(engine, "dan@example.com", PASSWORD)
    finally:
        engine.dispose()
