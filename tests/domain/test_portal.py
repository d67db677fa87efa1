"""Pure rules of the debtor portal: links, RF references, what a debtor may propose."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from domain.money import Money
from domain.portal import (
    PortalRules,
    csrf_token,
    csrf_valid,
    equal_installments,
    issue_link_token,
    plan_refusal,
    promise_refusal,
    read_link_token,
    rf_reference,
    rf_valid,
)

SECRET = "x" * 40
DAYS_60 = timedelta(days=60)


def test_a_link_names_its_debtor_and_key_version_until_it_expires() -> None:
    issued = datetime(2026, 1, 1, tzinfo=UTC)
    token = issue_link_token(SECRET, "C-981", 3, now=issued)
    claim = read_link_token(SECRET, token, max_age=DAYS_60, now=issued + timedelta(days=59))
    assert claim is not None and (claim.debtor_id, claim.version) == ("C-981", 3)
    assert read_link_token(SECRET, token, max_age=DAYS_60, now=issued + timedelta(days=61)) is None
    assert read_link_token("y" * 40, token, max_age=DAYS_60, now=issued) is None
    assert read_link_token(SECRET, token[:-1] + "x", max_age=DAYS_60, now=issued) is None


def test_csrf_tokens_are_bound_to_the_link() -> None:
    mine = csrf_token(SECRET, "link-a")
    assert csrf_valid(SECRET, "link-a", mine)
    assert not csrf_valid(SECRET, "link-b", mine)


def test_rf_reference_matches_the_standards_example() -> None:
    # ISO 11649's own example: reference 539007547034 -> RF18 5390 0754 7034.
    assert rf_reference("539007547034") == "RF18 5390 0754 7034"
    # Letters count A=10 ... Z=35 (ISO 7064 MOD 97-10), as in an IBAN.
    assert rf_valid(rf_reference("F-2026-0042"))
    assert not rf_valid("RF19 5390 0754 7034")


def test_equal_installments_add_up_to_the_cent() -> None:
    # 1000.00 / 3 = 333.33 twice, and 333.34 last.
    plan = equal_installments(Money.of("1000.00", "EUR"), 3, date(2026, 1, 10), 30)
    assert [(d.isoformat(), str(m.amount)) for d, m in plan] == [
        ("2026-01-10", "333.33"),
        ("2026-02-09", "333.33"),
        ("2026-03-11", "333.34"),
    ]


def test_limits_say_what_a_debtor_may_not_propose_alone() -> None:
    rules = PortalRules(plan_max_installments=4, plan_max_days=90, promise_max_days=30)
    today = date(2026, 1, 1)
    five = equal_installments(Money.of("500", "EUR"), 5, date(2026, 1, 5), 10)
    assert "at most 4 installments" in (plan_refusal(rules, five, today) or "")
    long = equal_installments(Money.of("500", "EUR"), 2, date(2026, 3, 1), 60)
    assert "within 90 days" in (plan_refusal(rules, long, today) or "")
    fine = equal_installments(Money.of("500", "EUR"), 3, date(2026, 1, 5), 30)
    assert plan_refusal(rules, fine, today) is None
    assert promise_refusal(rules, date(2026, 1, 31), today) is None
    assert "2026-01-31" in (promise_refusal(rules, date(2026, 2, 1), today) or "")
    assert "past" in (promise_refusal(rules, date(2025, 12, 31), today) or "")
