"""The portfolio list, the debtors list and the business metrics, on a seeded store."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.reports.conftest import ReportsApi, Seed


def ago(days: int) -> date:
    return datetime.now(UTC).date() - timedelta(days=days)


@pytest.fixture
def book(reports_api: ReportsApi) -> ReportsApi:
    seed = Seed(reports_api.engine)
    seed.debtor("ACME", "pme", "Acme SARL")
    seed.debtor("BETA", "eti", "Beta SA")
    # Due 40, 10 and −20 days ago (not yet due), 95 days ago, and a paid one.
    seed.invoice("A-1", "ACME", "1200", ago(70), ago(40), stage="overdue")
    seed.invoice("A-2", "ACME", "300", ago(40), ago(10), stage="disputed", playbook="pme_high")
    seed.invoice("A-3", "ACME", "5000", ago(10), ago(-20), stage="upcoming")
    seed.invoice(
        "B-1",
        "BETA",
        "8000",
        ago(125),
        ago(95),
        stage="formal_notice",
        playbook="eti",
        next_step="mediation",
        next_step_at=datetime.now(UTC) + timedelta(days=2),
    )
    seed.invoice("B-2", "BETA", "450", ago(90), ago(60), stage="paid", outstanding="0")
    seed.payment("B-2", "450", ago(55).isoformat(), "0")
    seed.sent("B-1", "reminder_1", "reminder", "email", ago(80).isoformat())
    return reports_api


def numbers(page: dict) -> list[str]:
    return [row["number"] for row in page["items"]]


async def test_filters_each_narrow_the_list(book: ReportsApi) -> None:
    everything = await book.json("/v1/invoices")
    # Sorted by due date by default, oldest first.
    assert numbers(everything) == ["B-1", "B-2", "A-1", "A-2", "A-3"]
    row = everything["items"][2]
    assert row["days_overdue"] == 40
    assert row["debtor_name"] == "Acme SARL"
    assert row["outstanding"] == {"amount": "1200.00", "currency": "EUR"}

    async def only(query: str) -> list[str]:
        return numbers(await book.json(f"/v1/invoices?{query}"))

    assert await only("stage=overdue&stage=formal_notice") == ["B-1", "A-1"]
    assert await only("side_state=disputed") == ["A-2"]
    assert await only("debtor=BETA") == ["B-1", "B-2"]
    assert await only("segment=pme") == ["A-1", "A-2", "A-3"]
    assert await only("min_days_overdue=30") == ["B-1", "B-2", "A-1"]
    assert await only("min_days_overdue=1&max_days_overdue=45") == ["A-1", "A-2"]
    assert await only("min_amount=1000&max_amount=6000") == ["A-1", "A-3"]
    assert await only(f"due_from={ago(45)}&due_to={ago(5)}") == ["A-1", "A-2"]
    assert await only("playbook=eti") == ["B-1"]
    assert await only("open_only=true") == ["B-1", "A-1", "A-2", "A-3"]


async def test_risk_band_filter_uses_the_debtors_score(book: ReportsApi) -> None:
    debtors = {d["id"]: d for d in (await book.json("/v1/debtors"))["items"]}
    band = debtors["BETA"]["risk_band"]
    listed = await book.json(f"/v1/invoices?risk_band={band}")
    assert {row["debtor_id"] for row in listed["items"]} >= {"BETA"}
    assert all(row["risk_band"] == band for row in listed["items"])


async def test_sort_and_cursor_pages_cover_everything_once(book: ReportsApi) -> None:
    first = await book.json("/v1/invoices?sort=outstanding&desc=true&limit=2")
    assert numbers(first) == ["B-1", "A-3"]
    second = await book.json(
        f"/v1/invoices?sort=outstanding&desc=true&limit=2&cursor={first['next_cursor']}"
    )
    assert numbers(second) == ["A-1", "A-2"]
    third = await book.json(
        f"/v1/invoices?sort=outstanding&desc=true&limit=2&cursor={second['next_cursor']}"
    )
    assert numbers(third) == ["B-2"]
    assert third["next_cursor"] is None
    # A cursor belongs to its sort order.
    mixed = await book.get(f"/v1/invoices?sort=number&cursor={first['next_cursor']}")
    assert mixed.status_code == 422
    assert "sort order" in mixed.json()["detail"]
    garbage = await book.get("/v1/invoices?cursor=not-a-cursor")
    assert garbage.status_code == 422


async def test_bad_filters_are_named(book: ReportsApi) -> None:
    response = await book.get("/v1/invoices?side_state=overdue")
    assert response.status_code == 422
    assert "side_state" in response.json()["detail"]
    response = await book.get("/v1/invoices?min_amount=10&max_amount=1")
    assert response.status_code == 422
    assert "min_amount" in response.json()["detail"]


async def test_csv_export_has_every_match(book: ReportsApi) -> None:
    response = await book.get("/v1/invoices?segment=pme&limit=1", headers={"Accept": "text/csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    # No pagination in CSV: the three pme invoices, not one.
    assert [r["number"] for r in rows] == ["A-1", "A-2", "A-3"]
    assert rows[0]["outstanding"] == "1200.00"
    assert rows[0]["days_overdue"] == "40"


async def test_debtors_list_open_total_oldest_overdue_contact_and_next_action(
    book: ReportsApi,
) -> None:
    page = await book.json("/v1/debtors")
    debtors = {d["id"]: d for d in page["items"]}
    acme, beta = debtors["ACME"], debtors["BETA"]
    # Acme owes 1200 + 300 + 5000; its oldest late invoice is A-1, 40 days.
    assert acme["open_total"] == [{"amount": "6500.00", "currency": "EUR"}]
    assert (acme["open_invoices"], acme["oldest_overdue_days"]) == (3, 40)
    assert acme["last_contact"] is None
    # Beta owes B-1 only (B-2 is paid), 95 days late, reminded 80 days ago, mediation next.
    assert beta["open_total"] == [{"amount": "8000.00", "currency": "EUR"}]
    assert beta["oldest_overdue_days"] == 95
    assert beta["last_contact"].startswith(ago(80).isoformat())
    assert beta["next_action"] == "B-1: mediation"
    paged = await book.json("/v1/debtors?limit=1")
    assert [d["id"] for d in paged["items"]] == ["ACME"]
    rest = await book.json(f"/v1/debtors?cursor={paged['next_cursor']}")
    assert [d["id"] for d in rest["items"]] == ["BETA"]


async def test_business_metrics_for_prometheus(book: ReportsApi) -> None:
    response = await book.http.get("/metrics")
    assert response.status_code == 200
    text = response.text
    # Open amounts by stage: formal_notice 8000, overdue 1200 (the paid invoice is not open).
    assert 'relance_open_amount{currency="EUR",stage="formal_notice"} 8000.0' in text
    assert 'relance_open_amount{currency="EUR",stage="overdue"} 1200.0' in text
    assert 'stage="paid"' not in text
    assert 'relance_messages_sent{channel="email",step="reminder_1"} 1.0' in text
    assert "relance_approvals_waiting 0.0" in text
    assert "relance_tasks_overdue 0.0" in text
