"""A collector's morning in the console, in a real browser, checked through the API."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from store.engine import transaction
from store.people import Language, PersonRole
from store.tables import Task
from tests.api.conftest import eventually
from tests.console.conftest import PASSWORD, Console, late


async def _pending_approval(console: Console, number: str) -> dict[str, Any]:
    async def probe() -> Any:
        found = (await console.api.get("/v1/approvals?status=pending")).json()
        return next((a for a in found if a["invoice_number"] == number), None)

    approval: dict[str, Any] = await eventually(probe, within=40, what="a pending approval")
    return approval


async def _open_call(console: Console, number: str) -> dict[str, Any]:
    async def probe() -> Any:
        found = (await console.api.get("/v1/tasks?status=open&kind=call")).json()
        return next((t for t in found if t["invoice_number"] == number), None)

    task: dict[str, Any] = await eventually(probe, within=40, what="a call task")
    return task


async def test_a_collector_approves_records_a_promise_and_opens_a_dispute(
    console: Console,
) -> None:
    # 50 days late on the PME playbook: reminder, formal notice, then mediation awaits approval.
    await console.hand_over(late("INV-WEB-1", 50))
    # 5 days late on the calling playbook: a call task.
    await console.hand_over(late("INV-WEB-2", 5, segment=None))
    # 5 days late, PME: overdue, to be disputed.
    await console.hand_over(late("INV-WEB-3", 5))
    approval = await _pending_approval(console, "INV-WEB-1")
    task = await _open_call(console, "INV-WEB-2")
    # A call is due in the debtor's business hours: opened after 18:00 in Paris, it is
    # tomorrow's. Due now, so Today lists it whatever the hour the test runs.
    with transaction(console.engine) as session:
        stored = session.get(Task, task["id"])
        assert stored is not None
        stored.due_at = datetime.now(UTC)
    me = f"user:{console.people[PersonRole.COLLECTOR]}"

    page = await console.sign_in(PersonRole.COLLECTOR)
    await page.reload()
    await expect(page.locator("h1")).to_have_text("Today")
    await expect(page.get_by_role("link", name="INV-WEB-1 → mediation")).to_be_visible()
    await expect(page.get_by_role("link", name="Call about invoice INV-WEB-2")).to_be_visible()
    await console.shot(page, "console-today")

    # Approvals: the message that would go out, the timeline, then approve with a comment.
    await page.get_by_role("link", name="INV-WEB-1 → mediation").click()
    await expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
    await expect(page.locator(".timeline li").first).to_be_visible()
    await console.shot(page, "console-approval")
    await page.fill("textarea[name=comment]", "no answer to three calls")
    await page.click("button[value=approve]")
    await expect(page.locator(".flash")).to_have_text("Done.")
    await console.stage_becomes("INV-WEB-1", "mediation")
    decided = (await console.api.get("/v1/approvals?status=approved")).json()
    mine = next(a for a in decided if a["id"] == approval["id"])
    # The person, not a key, is on record.
    assert mine["decided_by"] == me
    assert mine["comment"] == "no answer to three calls"

    # Tasks: the call script and the debtor's contacts, then the outcome with a promise.
    await page.get_by_role("link", name="Tasks").click()
    card = page.locator(f"section[id='{task['id']}']")
    await expect(card.get_by_text("Call script")).to_be_visible()
    await expect(card.get_by_text("compta@dupont.example")).to_be_visible()
    await console.shot(page, "console-tasks")
    promised = (date.today() + timedelta(days=365)).isoformat()
    await card.locator("select[name=outcome]").select_option("promise")
    await card.locator("input[name=promise_date]").fill(promised)
    await card.locator("input[name=notes]").fill("will pay by transfer")
    await card.get_by_role("button", name="Record").click()
    await expect(page.locator(".flash")).to_have_text("Done.")
    await console.stage_becomes("INV-WEB-2", "promised")
    closed = (await console.api.get("/v1/tasks?status=done&kind=call")).json()
    call = next(t for t in closed if t["id"] == task["id"])
    assert (call["outcome"], call["promise_date"], call["closed_by"]) == ("promise", promised, me)

    # Invoice: open a dispute; the escalation freezes.
    await page.goto(f"{console.base}/console/invoices/INV-WEB-3")
    await expect(page.locator("#stage")).to_have_text("overdue")
    # Late: the statement shows the fixed 40 € recovery indemnity (Code de commerce D441-5).
    await expect(page.get_by_role("cell", name="40.00 EUR")).to_be_visible()
    await console.shot(page, "console-invoice")
    await page.fill("form[action$='/dispute'] input[name=reason]", "goods not delivered")
    await page.click("form[action$='/dispute'] button")
    await expect(page.locator(".flash")).to_have_text("Done.")
    await console.stage_becomes("INV-WEB-3", "disputed")
    await expect(page.locator("#stage")).to_have_text("disputed")
    disputes = (await console.api.get("/v1/invoices/INV-WEB-3/disputes")).json()
    assert [(d["reason"], d["opened_by"]) for d in disputes] == [("goods not delivered", me)]

    # The portfolio's side-state filter finds it.
    await page.goto(f"{console.base}/console/portfolio?side_state=disputed")
    rows = page.locator("tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("INV-WEB-3")


async def test_the_finance_director_reads_reports_in_french(console: Console) -> None:
    await console.hand_over(late("INV-REP-1", 40))
    await console.hand_over(late("INV-REP-2", -20))
    page = await console.sign_in(PersonRole.FINANCE, Language.FR)
    await page.get_by_role("link", name="Rapports").click()
    await expect(page.locator("h1")).to_contain_text("Rapports")
    # Charts are server-side SVG; their figures also come as tables.
    await expect(page.locator(".chart svg")).to_have_count(4)
    await expect(page.get_by_role("columnheader", name="Non échu").first).to_be_visible()
    # Finance cannot act on invoices: no action forms on an invoice page.
    await console.shot(page, "console-reports")
    await page.goto(f"{console.base}/console/invoices/INV-REP-1")
    await expect(page.locator(".actions form")).to_have_count(0)
    await page.goto(f"{console.base}/console/portfolio")
    await expect(page.locator("tbody tr")).to_have_count(2)
    await console.shot(page, "console-portfolio")
    # The same list as CSV, with the filters of the page.
    await page.goto(f"{console.base}/console/portfolio?min_days_overdue=1")
    async with page.expect_download() as download:
        await page.get_by_role("link", name="Exporter en CSV").click()
    path = await (await download.value).path()
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("number,debtor_id")
    assert [line.split(",")[0] for line in lines[1:]] == ["INV-REP-1"]
    await page.goto(f"{console.base}/console/debtors")
    await expect(page.get_by_role("cell", name="CUST-INV-REP-1", exact=False)).to_be_visible()
    await console.shot(page, "console-debtors")


async def test_a_collector_cannot_see_the_admins_pages(console: Console) -> None:
    collector = await console.sign_in(PersonRole.COLLECTOR)
    await expect(collector.get_by_role("link", name="People")).to_have_count(0)
    response = await collector.goto(f"{console.base}/console/admin/people")
    assert response is not None and response.status == 403
    await expect(collector.locator(".flash")).to_have_text("Your role cannot open this page.")
    await expect(collector.get_by_text("admin@relance.test")).to_have_count(0)

    admin = await console.sign_in(PersonRole.ADMIN)
    await admin.get_by_role("link", name="People").click()
    await expect(admin.get_by_role("cell", name="collector@relance.test")).to_be_visible()


async def test_a_form_without_its_csrf_token_is_refused(console: Console) -> None:
    await console.hand_over(late("INV-CSRF-1", 5))
    page = await console.sign_in(PersonRole.COLLECTOR)
    await page.goto(f"{console.base}/console/invoices/INV-CSRF-1")
    form = "form[action$='/dispute']"
    await page.fill(f"{form} input[name=reason]", "forged")
    # As a forged form from another site would: no token.
    await page.eval_on_selector(f"{form} input[name=csrf_token]", "e => e.remove()")
    async with page.expect_response(lambda r: r.request.method == "POST") as posted:
        await page.click(f"{form} button")
    assert (await posted.value).status == 403
    await expect(page.locator(".flash")).to_contain_text("CSRF")
    assert (await console.invoice("INV-CSRF-1"))["stage"] == "overdue"
    disputes = (await console.api.get("/v1/invoices/INV-CSRF-1/disputes")).json()
    assert disputes == []


async def _try_password(page: Page, console: Console, password: str) -> None:
    await page.goto(f"{console.base}/console/login")
    await page.fill("input[name=email]", "ops@relance.test")
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")


async def test_five_wrong_passwords_lock_the_account(console: Console) -> None:
    page = await console.new_page()
    for attempt in range(1, 5):
        await _try_password(page, console, f"wrong {attempt}")
        await expect(page.get_by_role("alert")).to_have_text("wrong email or password")
    await _try_password(page, console, "wrong 5")
    await expect(page.get_by_role("alert")).to_contain_text("locked")
    # Now even the right password is refused.
    await _try_password(page, console, PASSWORD)
    await expect(page.get_by_role("alert")).to_contain_text("locked")
    assert "/console/login" in page.url
    # Another person is not affected.
    other = await console.sign_in(PersonRole.COLLECTOR)
    await expect(other.locator("h1")).to_have_text("Today")


async def test_four_eyes_on_a_plan_compare_people(console: Console) -> None:
    # Seven installments: above the PME playbook's six, so a second person must approve it.
    # Due in 40 days: the workflow is quiet (no catch-up sends) while people decide.
    await console.hand_over(late("INV-PLAN-1", -40))
    # Far ahead: days last one second here, and a missed installment would break the plan.
    first = date.today() + timedelta(days=365)
    lines = [f"{first + timedelta(weeks=k)} 171.43" for k in range(6)]
    lines.append(f"{first + timedelta(weeks=6)} 171.42")  # 6 × 171.43 + 171.42 = 1200.00
    collector = await console.sign_in(PersonRole.COLLECTOR)
    await collector.goto(f"{console.base}/console/invoices/INV-PLAN-1")
    await collector.fill("textarea[name=installments]", "\n".join(lines))
    await collector.click("form[action$='/plan'] button")
    await expect(collector.locator(".flash")).to_have_text("Done.")
    [plan] = (await console.api.get("/v1/invoices/INV-PLAN-1/payment-plan")).json()
    assert (plan["status"], plan["needs_approval"]) == ("proposed", True)
    assert plan["proposed_by"] == f"user:{console.people[PersonRole.COLLECTOR]}"

    # The same person cannot approve their own plan.
    await collector.click("form[action$='/plan-decision'] button[value=approve]")
    await expect(collector.locator(".flash.error")).to_be_visible()
    [still] = (await console.api.get("/v1/invoices/INV-PLAN-1/payment-plan")).json()
    assert still["status"] == "proposed"

    # Another person can.
    admin = await console.sign_in(PersonRole.ADMIN)
    await admin.goto(f"{console.base}/console/invoices/INV-PLAN-1")
    await admin.click("form[action$='/plan-decision'] button[value=approve]")
    await expect(admin.locator(".flash")).to_have_text("Done.")
    await console.stage_becomes("INV-PLAN-1", "payment_plan")
    [active] = (await console.api.get("/v1/invoices/INV-PLAN-1/payment-plan")).json()
    assert (active["status"], active["decided_by"]) == (
        "active",
        f"user:{console.people[PersonRole.ADMIN]}",
    )
