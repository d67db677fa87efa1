"""Hand-over with a contractual rate, and the formal notice's preview, worked by hand.

Invoice: 1 200,00 € issued 30 January 2025, due 31 March 2025, previewed as of 30 April 2025:
1-30 April = 30 days. Rates 2025-H1: ECB 3.15 % (+ 10 = 13.15 %), legal rate "autres cas"
3.71 % (3 × = 11.13 %), from domain/rates.csv (ECB decision of 18 Dec 2024; arrêté of
17 Dec 2024).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from api.auth import Role
from store.tables import Invoice
from tests.api.conftest import Api, invoice_body


def plain(text: str) -> str:
    return text.replace("\u202f", " ").replace("\u00a0", " ")


def past(number: str, **changes: Any) -> dict[str, Any]:
    return invoice_body(number, issue_date="2025-01-30", due_date="2025-03-31", **changes)


async def notice(api: Api, number: str) -> str:
    response = await api.get(
        f"/v1/invoices/{number}/preview/formal_notice",
        role=Role.COLLECTOR,
        params={"as_of": "2025-04-30"},
    )
    assert response.status_code == 200, response.text
    return plain(response.json()["text"])


async def test_a_rate_below_three_times_the_legal_rate_is_refused_at_hand_over(api: Api) -> None:
    # Interest would start 1 February 2024: 3 × 5.07 (2024-H1) = 15.21 % > 10 %.
    body = invoice_body(
        "LAW-1", issue_date="2023-12-01", due_date="2024-01-31", late_interest_rate="10.00"
    )
    response = await api.hand_over(body)
    assert response.status_code == 422, response.text
    assert "late_interest_rate" in response.text
    assert "below the minimum" in response.text and "15.21 %" in response.text
    unreadable = await api.hand_over(invoice_body("LAW-2", late_interest_rate="lots"))
    assert unreadable.status_code == 422
    assert "3x_legal" in unreadable.text


async def test_the_default_notice_states_ecb_plus_10_segments_and_a_calendar_deadline(
    api: Api,
) -> None:
    assert (await api.hand_over(past("LAW-3"))).status_code == 201
    text = await notice(api, "LAW-3")
    # 1 200 × 13.15 × 30 / 36 500 = 473 400 / 36 500 = 12.9698… → 12.97; + 40 = 1 252.97.
    assert "courus du 1er avril 2025, lendemain de l'échéance, au 30 avril 2025 : 12,97 €" in text
    assert (
        "- du 1er avril 2025 au 30 avril 2025 : 30 jours sur 1 200,00 € au taux annuel de "
        "13,15 % (taux BCE + 10 points)"
    ) in text
    assert "- Total dû au 30 avril 2025 : 1 252,97 €" in text
    # 8 business days after Wednesday 30 April 2025 in France: 2 (1 May is a holiday), 5, 6,
    # 7, 9 (8 May is a holiday), 12, 13, 14 May.
    assert "au plus tard le 14 mai 2025 (8 jours ouvrés" in text
    assert "L441-10" in text and "D441-5" in text


async def test_an_invoice_at_three_times_the_legal_rate_keeps_its_clause(api: Api) -> None:
    response = await api.hand_over(past("LAW-4", late_interest_rate="3 × taux légal"))
    assert response.status_code == 201, response.text
    with Session(api.engine) as session:
        stored = session.get(Invoice, "LAW-4")
        assert stored is not None and stored.interest_clause == "3x_legal"
    # The same hand-over again is a replay; another rate is a conflict naming the field.
    assert (await api.hand_over(past("LAW-4", late_interest_rate="3x_legal"))).status_code == 201
    changed = await api.hand_over(past("LAW-4", late_interest_rate="12.00"))
    assert changed.status_code == 409 and "late_interest_rate" in changed.text

    text = await notice(api, "LAW-4")
    # 1 200 × 11.13 × 30 / 36 500 = 400 680 / 36 500 = 10.9775… → 10.98; + 40 = 1 250.98.
    assert "au taux annuel de 11,13 % (clause contractuelle : 3 × taux d'intérêt légal)" in text
    assert ": 10,98 €" in text
    assert "- Total dû au 30 avril 2025 : 1 250,98 €" in text
