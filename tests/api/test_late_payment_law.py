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
from tests.api.conftest import Api, eventually, invoice_body


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


async def pay(api: Api, number: str, reference: str, amount: str, received_on: str) -> None:
    body = {"reference": reference, "currency": "EUR", "amount": amount, "received_on": received_on}
    response = await api.post(f"/v1/invoices/{number}/payments", body)
    assert response.status_code in (200, 201), response.text


async def test_the_invoice_shows_its_limitation_date_and_once_paid_late_its_costs(
    api: Api,
) -> None:
    assert (await api.hand_over(past("LAW-5"))).status_code == 201

    async def limitation() -> str | None:
        return (await api.invoice("LAW-5")).get("limitation_date")

    # Due 31 March 2025: 5 years (L110-4) → 31 March 2030.
    assert await eventually(limitation, what="limitation date") == "2030-03-31"

    # 200 € received on 15 April 2025 acknowledges the debt (Civil code 2240): 5 years from
    # it → 15 April 2030, shown as soon as the payment is acknowledged.
    await pay(api, "LAW-5", "VIR-1", "200.00", "2025-04-15")
    assert (await api.invoice("LAW-5"))["limitation_date"] == "2030-04-15"

    # The rest, 1 000 €, received on 30 April 2025 settles it. Interest at 13.15 % (2025-H1:
    # ECB 3.15 % + 10, L441-10 II), each payment ending the interest on its part on its day:
    #   1 200 × 13.15 × 15 (1-15 April)  = 236 700
    #   1 000 × 13.15 × 15 (16-30 April) = 197 250
    #   Σ 433 950 / 36 500 = 11.8890… → 11.89 €; + 40 € (D441-5) = 51.89 €.
    await pay(api, "LAW-5", "VIR-2", "1000.00", "2025-04-30")

    async def costs() -> dict[str, Any] | None:
        found: dict[str, Any] | None = (await api.invoice("LAW-5")).get("late_payment_costs")
        return found

    shown = await eventually(costs, what="late-payment costs")
    assert shown["interest"] == {"amount": "11.89", "currency": "EUR"}
    assert shown["indemnity"] == {"amount": "40.00", "currency": "EUR"}
    assert shown["total"] == {"amount": "51.89", "currency": "EUR"}
    assert shown["indemnity_in_total"] is True
    assert shown["currency"] == "EUR"
    assert shown["paid_on"] == "2025-04-30"
    assert shown["days_late"] == 30
    assert shown["provisional"] is False
    assert [
        (s["principal"]["amount"], s["start"], s["end"], s["days"], s["rate"], s["basis"])
        for s in shown["segments"]
    ] == [
        ("1200.00", "2025-04-01", "2025-04-15", 15, "13.15", "ecb_plus_10"),
        ("1000.00", "2025-04-16", "2025-04-30", 15, "13.15", "ecb_plus_10"),
    ]
    # Nothing is owed any more: no limitation date to watch.
    invoice = await api.invoice("LAW-5")
    assert invoice["stage"] == "paid" and invoice["limitation_date"] is None
