"""The session cookie's flags and the sign-in form's own CSRF check, over HTTP (no browser)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from api.app import create_app
from api.console import accounts
from config import Settings
from store.people import Language, PersonRole
from tests.test_config import PRODUCTION

PASSWORD = "a long enough password"


async def _client(engine: Engine, settings: Settings) -> httpx.AsyncClient:
    # No lifespan: signing in needs the store only.
    app = create_app(settings, engine=engine)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test")


@pytest.fixture
async def person(engine: Engine) -> AsyncIterator[str]:
    accounts.add_user(engine, "eve@example.com", PersonRole.OPS, PASSWORD, Language.EN)
    yield "eve@example.com"


async def _sign_in(http: httpx.AsyncClient, email: str) -> httpx.Response:
    form = await http.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    return await http.post(
        "/console/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)},
    )


@pytest.mark.parametrize(("environment", "secure"), [("development", False), ("production", True)])
async def test_the_session_cookie_is_httponly_strict_and_secure_outside_development(
    engine: Engine, tmp_path: Path, person: str, environment: str, secure: bool
) -> None:
    # Production refuses demo identities: a complete one, as a deployment has it.
    identity: dict[str, Any] = PRODUCTION if environment == "production" else {}
    values: dict[str, Any] = {"email_from": "relance@creditor.test", **identity}
    settings = Settings(_env_file=None, data_dir=tmp_path, **{**values, "environment": environment})
    async with await _client(engine, settings) as http:
        response = await _sign_in(http, person)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/today"
    [cookie] = [c for c in response.headers.get_list("set-cookie") if "relance_session=" in c]
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert ("secure" in flags) is secure


async def test_a_sign_in_without_the_forms_token_is_refused(
    engine: Engine, tmp_path: Path, person: str
) -> None:
    async with await _client(engine, Settings(_env_file=None, data_dir=tmp_path)) as http:
        response = await http.post("/console/login", data={"email": person, "password": PASSWORD})
        assert response.status_code == 403
        assert "relance_session" not in response.headers.get("set-cookie", "")
        # Pages need a session: without one, the sign-in page.
        page = await http.get("/console/reports")
        assert page.status_code == 303
        assert page.headers["location"] == "/console/login"
