"""API keys: who may call what, and what a caller is told when they may not."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from api.auth import KEY_PREFIX, Role, create_api_key, hash_key
from store.engine import transaction
from store.tables import ApiKey
from tests.api.conftest import Api, invoice_body, problem


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer rl_not-a-real-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
async def test_missing_or_wrong_key_is_a_401_asking_for_a_bearer_token(
    api: Api, headers: dict[str, str]
) -> None:
    response = await api.http.get("/v1/invoices/ANY", headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"]


async def test_a_revoked_key_no_longer_works(api: Api) -> None:
    key = create_api_key(api.engine, Role.OPS, "leaving")
    headers = {"Authorization": f"Bearer {key}"}
    assert (await api.http.get("/v1/approvals", headers=headers)).status_code == 200

    with transaction(api.engine) as session:
        row = session.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).one()
        row.revoked_at = datetime.now(UTC)
        session.add(row)

    response = await api.http.get("/v1/approvals", headers=headers)
    assert problem(response, 401)["detail"] == "invalid or revoked API key"
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_keys_are_stored_only_as_a_hash(api: Api) -> None:
    key = create_api_key(api.engine, Role.COLLECTOR, "claire")

    assert key.startswith(KEY_PREFIX)
    assert len(key) > 40
    with Session(api.engine) as session:
        row = session.exec(select(ApiKey).where(ApiKey.label == "claire")).one()
    assert row.key_hash == hash_key(key) != key
    assert row.role == "collector"
    assert key.startswith(row.prefix) and len(row.prefix) < 16


@pytest.mark.parametrize(
    ("role", "method", "url", "allowed"),
    [
        (Role.BACKOFFICE, "POST", "/v1/invoices", True),
        (Role.ADMIN, "POST", "/v1/invoices", True),
        (Role.COLLECTOR, "POST", "/v1/invoices", False),
        (Role.OPS, "POST", "/v1/invoices", False),
        (Role.OPS, "GET", "/v1/invoices/INV-AUTH", True),
        (Role.COLLECTOR, "GET", "/v1/invoices/INV-AUTH", True),
        (Role.OPS, "GET", "/v1/invoices/INV-AUTH/history", True),
        (Role.OPS, "POST", "/v1/invoices/INV-AUTH/payments", False),
        (Role.COLLECTOR, "POST", "/v1/invoices/INV-AUTH/payments", False),
        (Role.OPS, "GET", "/v1/approvals", True),
        (Role.COLLECTOR, "GET", "/v1/approvals", True),
        (Role.BACKOFFICE, "GET", "/v1/approvals", False),
        (Role.BACKOFFICE, "POST", "/v1/approvals/X/decision", False),
        (Role.OPS, "POST", "/v1/approvals/X/decision", False),
        (Role.COLLECTOR, "POST", "/v1/approvals/X/decision", True),
        (Role.ADMIN, "POST", "/v1/approvals/X/decision", True),
    ],
)
async def test_each_role_reaches_only_its_routes(
    api: Api, role: Role, method: str, url: str, allowed: bool
) -> None:
    payloads = {
        "/v1/invoices": invoice_body(f"INV-AUTH-{role.value}"),
        "/v1/invoices/INV-AUTH/payments": {
            "reference": "VIR-1",
            "amount": "1.00",
            "currency": "EUR",
        },
        "/v1/approvals/X/decision": {"approve": True},
    }
    response = await api.http.request(method, url, json=payloads.get(url), headers=api.auth(role))

    if allowed:
        # Past the guard: whatever the route answers (201, 200, 404), it is not a refusal.
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code == 403
        detail = response.json()["detail"]
        assert f"this key has the role {role.value}" in detail
        assert "admin" in detail


async def test_403_names_the_roles_allowed(api: Api) -> None:
    response = await api.post("/v1/invoices", invoice_body("INV-AUTH-403"), role=Role.COLLECTOR)

    assert problem(response, 403)["detail"] == (
        "this needs an API key with the role backoffice or admin; this key has the role collector"
    )


async def test_openapi_docs_are_served_and_declare_bearer_auth(api: Api) -> None:
    docs = await api.http.get("/docs")
    assert docs.status_code == 200
    # Served from the app itself: the machines running Relance have no Internet access.
    assert "cdn." not in docs.text
    assert "/static-offline-docs/swagger-ui-bundle.js" in docs.text
    asset = await api.http.get("/static-offline-docs/swagger-ui-bundle.js")
    assert asset.status_code == 200
    schema = (await api.http.get("/openapi.json")).json()
    assert "/v1/invoices" in schema["paths"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
