"""`GET /v1/invoices/{number}/preview/{step}`: the message a step sends, rendered, never sent."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from api.auth import Role
from store.tables import Interaction
from tests.api.conftest import Api, field_errors, invoice_body


def _plain(text: str) -> str:
    # Babel writes French amounts with narrow no-break spaces: compare them as plain spaces.
    return text.replace("\u202f", " ").replace("\u00a0", " ")


async def _handed_over(api: Api, number: str, **changes: Any) -> dict[str, Any]:
    body = invoice_body(number, **changes)
    response = await api.hand_over(body)
    assert response.status_code == 201, response.text
    return body


async def _preview(
    api: Api, number: str, step: str, role: Role = Role.COLLECTOR, **query: Any
) -> httpx.Response:
    return await api.get(f"/v1/invoices/{number}/preview/{step}", role=role, params=query)


def _interactions(api: Api) -> int:
    with Session(api.engine) as session:
        return session.exec(select(func.count()).select_from(Interaction)).one()


async def test_a_reminder_in_french_and_english_shows_the_invoice_and_the_amount_due(
    api: Api,
) -> None:
    body = await _handed_over(api, "PRV-1")
    late = (date.fromisoformat(body["due_date"]) + timedelta(days=3)).isoformat()

    french = await _preview(api, "PRV-1", "reminder_1", as_of=late)
    english = await _preview(api, "PRV-1", "reminder_1", as_of=late, language="en")

    assert french.status_code == 200, french.text
    fr = french.json()
    assert (fr["language"], fr["to_role"], fr["as_of"]) == ("fr", "debtor", late)
    assert "PRV-1" in fr["subject"]
    assert "PRV-1" in fr["text"] and "PRV-1" in fr["html"]
    assert "1 200,00 €" in _plain(fr["text"])
    assert "Dupont &amp; Fils" in fr["html"] and "Dupont & Fils" in fr["text"]

    assert english.status_code == 200, english.text
    en = english.json()
    assert en["language"] == "en"
    assert "PRV-1" in en["subject"]
    assert "€1,200.00" in en["text"]
    assert en["subject"] != fr["subject"]


async def test_the_formal_notice_shows_interest_and_the_40_euro_indemnity(api: Api) -> None:
    # The figures themselves are worked by hand in tests/api/test_late_payment_law.py (fixed
    # dates); here the due date follows today, so only what the letter must contain is checked.
    body = await _handed_over(api, "PRV-2")
    due = date.fromisoformat(body["due_date"])
    as_of = due + timedelta(days=30)

    response = await _preview(api, "PRV-2", "formal_notice", as_of=as_of.isoformat())

    assert response.status_code == 200, response.text
    text = _plain(response.json()["text"])
    assert "Intérêts de retard" in text
    assert "Détail des intérêts de retard" in text
    assert "40,00 €" in text
    assert "mise en demeure" in response.json()["subject"].lower()


async def test_a_preview_defaults_to_today_and_the_thank_you_can_be_previewed(api: Api) -> None:
    await _handed_over(api, "PRV-3", debtor={**invoice_body("PRV-3")["debtor"], "language": "en"})

    upcoming = await _preview(api, "PRV-3", "pre_reminder", role=Role.OPS)
    thanks = await _preview(api, "PRV-3", "thank_you", role=Role.BACKOFFICE)

    assert upcoming.status_code == 200, upcoming.text
    assert upcoming.json()["as_of"] == date.today().isoformat()
    assert upcoming.json()["language"] == "en"
    assert thanks.status_code == 200, thanks.text
    assert "€1,200.00" in thanks.json()["text"]
    assert "settled in full" in thanks.json()["text"]


async def test_an_unknown_step_is_a_404_naming_the_steps(api: Api) -> None:
    await _handed_over(api, "PRV-4")

    response = await _preview(api, "PRV-4", "reminder_9")

    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "reminder_9" in detail
    for step in ("pre_reminder", "reminder_1", "formal_notice", "thank_you"):
        assert step in detail
    assert (await _preview(api, "NOPE-PRV", "reminder_1")).status_code == 404


async def test_a_phone_step_has_no_message_to_preview(api: Api) -> None:
    debtor = {**invoice_body("PRV-7")["debtor"], "segment": "TPE"}
    await _handed_over(api, "PRV-7", debtor=debtor)
    invoice = await api.invoice("PRV-7")
    assert invoice["playbook"].startswith("tpe")

    response = await _preview(api, "PRV-7", "call_1")

    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "sends no email or letter (channels: phone" in detail
    assert "reminder_1" in detail and "call_1" not in detail.split("steps with a message")[1]


async def test_a_formal_notice_before_the_due_date_cannot_be_previewed(api: Api) -> None:
    await _handed_over(api, "PRV-5")

    response = await _preview(api, "PRV-5", "formal_notice")

    assert response.status_code == 422
    assert "before its due date" in response.json()["detail"]


async def test_a_preview_sends_and_records_nothing(api: Api) -> None:
    body = await _handed_over(api, "PRV-6")
    late = (date.fromisoformat(body["due_date"]) + timedelta(days=40)).isoformat()
    before = _interactions(api)

    for step in ("pre_reminder", "reminder_1", "reminder_2", "formal_notice", "thank_you"):
        response = await _preview(api, "PRV-6", step, as_of=late)
        assert response.status_code == 200, response.text
    assert (await _preview(api, "PRV-6", "nope")).status_code == 404

    assert _interactions(api) == before
    assert not api.outbox.exists() or not any(api.outbox.iterdir())
    history = (await api.get("/v1/invoices/PRV-6/history")).json()
    assert not [e for e in history if e["kind"].startswith("message_")]


@pytest.mark.parametrize("as_of", ["9999-12-31", "0001-01-01", "2014-12-31", "2026-13-01"])
async def test_a_preview_as_of_a_day_outside_the_window_is_a_422(api: Api, as_of: str) -> None:
    # 9999-12-31 once overflowed the interest computation into a 500.
    await _handed_over(api, "PRV-7")

    response = await _preview(api, "PRV-7", "formal_notice", as_of=as_of)

    assert list(field_errors(response)) == ["query.as_of"]
