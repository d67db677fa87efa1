"""`/console`: the screen collectors, ops and the finance director work in.

Server-rendered pages (Jinja2), no build step, assets from this folder. Every change goes
through the same service the REST API calls (approvals, tasks, collection), with the signed-in
person as the principal (`user:<id>`), so the history names people and four-eyes rules compare
people. Every form carries the session's CSRF token; the session cookie is HttpOnly,
SameSite=Strict, and Secure outside development.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from api.collection_schemas import CallOutcome, TaskOutcomeCreate
from api.console import accounts, service
from api.console.accounts import Action, Person, SignInRefused
from api.console.actions import INVOICE_ACTIONS, Call
from api.console.i18n import translate
from api.deps import ClientDep, EngineDep, SessionDep, SettingsDep
from api.errors import ApiError
from api.reports import service as reports
from api.reports.schemas import SortKey
from api.schemas import DecisionCreate
from api.services import approvals, tasks
from store.people import Language

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["local"] = service.local
templates.env.globals["money"] = service.money

COOKIE = "relance_session"
LOGIN_CSRF = "relance_login_csrf"

router = APIRouter(prefix="/console", include_in_schema=False)


class SignInNeeded(Exception):
    pass


class ConsoleRefusal(Exception):
    """A page or form this person may not use (403), with the word key explaining why."""

    def __init__(self, person: Person | None, key: str) -> None:
        self.person = person
        self.key = key


def current_person(request: Request, engine: EngineDep) -> Person:
    person = accounts.person_of(engine, request.cookies.get(COOKIE))
    if person is None:
        raise SignInNeeded
    return person


PersonDep = Annotated[Person, Depends(current_person)]


def checked_form(person: PersonDep, csrf_token: Annotated[str, Form()] = "") -> Person:
    """The person, once the form's CSRF token matches their session's."""
    if not accounts.same_token(person.csrf_token, csrf_token):
        raise ConsoleRefusal(person, "csrf_refused")
    return person


FormPerson = Annotated[Person, Depends(checked_form)]


def _guard(person: Person, action: frozenset[Any]) -> None:
    if not person.may(action):
        raise ConsoleRefusal(person, "forbidden")


def _page(
    request: Request, person: Person | None, name: str, status: int = 200, **context: Any
) -> HTMLResponse:
    language = person.language if person else Language.FR

    def t(key: str, **values: object) -> str:
        return translate(language, key, **values)

    return templates.TemplateResponse(
        request,
        name,
        {
            "person": person,
            "t": t,
            "lang": language.value,
            "Action": Action,
            "flash": request.query_params.get("flash"),
            "flash_kind": request.query_params.get("kind", "info"),
            **context,
        },
        status_code=status,
    )


def _back(url: str, message: str, kind: str = "info") -> RedirectResponse:
    sep = "&" if "?" in url else "?"
    return RedirectResponse(
        f"{url}{sep}{urlencode({'flash': message, 'kind': kind})}", status_code=303
    )


async def _act(person: Person, url: str, action: Awaitable[Any]) -> RedirectResponse:
    """Carry out a service call; a refusal comes back to the page as a message."""
    try:
        await action
    except ApiError as refused:
        return _back(url, refused.detail, "error")
    return _back(url, translate(person.language, "done"))


# ------------------------------------------------------------------ sign-in


@router.get("/login")
def login_page(request: Request) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    page = _page(request, None, "login.html", csrf=token, error=None)
    page.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict", path="/console")
    return page


@router.post("/login")
def login(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    email: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF, "")
    if not expected or not accounts.same_token(expected, csrf_token):
        raise ConsoleRefusal(None, "csrf_refused")
    try:
        token = accounts.sign_in(engine, email, password)
    except SignInRefused as refused:
        page = _page(request, None, "login.html", 401, csrf=expected, error=str(refused))
        return page
    response = RedirectResponse("/console/today", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(accounts.SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=settings.environment != "development",
        path="/console",
    )
    response.delete_cookie(LOGIN_CSRF, path="/console")
    return response


@router.post("/logout")
def logout(request: Request, engine: EngineDep, _: FormPerson) -> Response:
    accounts.sign_out(engine, request.cookies.get(COOKIE))
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.post("/language")
def language(
    engine: EngineDep, person: FormPerson, language: Annotated[Language, Form()]
) -> Response:
    accounts.set_language(engine, person, language)
    return RedirectResponse("/console/today", status_code=303)


# ------------------------------------------------------------------ pages


@router.get("")
def home() -> RedirectResponse:
    return RedirectResponse("/console/today", status_code=303)


@router.get("/today")
def today(request: Request, session: SessionDep, person: PersonDep) -> HTMLResponse:
    return _page(request, person, "today.html", day=service.today(session))


@router.get("/approvals")
def approvals_page(request: Request, session: SessionDep, person: PersonDep) -> HTMLResponse:
    return _page(request, person, "approvals.html", items=service.today(session).approvals)


@router.get("/approvals/{approval_id}")
def approval(
    approval_id: str,
    request: Request,
    session: SessionDep,
    engine: EngineDep,
    settings: SettingsDep,
    person: PersonDep,
) -> HTMLResponse:
    found = service.approval_page(session, engine, settings, approval_id)
    if found is None:
        message = translate(person.language, "unknown_approval", id=approval_id)
        return _page(request, person, "message.html", 404, message=message)
    return _page(request, person, "approval.html", page=found)


@router.post("/approvals/{approval_id}/decision")
async def decide(
    approval_id: str,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    person: FormPerson,
    decision: Annotated[str, Form()],
    comment: Annotated[str, Form()] = "",
) -> RedirectResponse:
    _guard(person, Action.DECIDE)
    body = DecisionCreate(approve=decision == "approve", comment=comment)
    return await _act(
        person,
        f"/console/approvals/{approval_id}",
        approvals.decide(engine, client, settings, approval_id, body, person.principal()),
    )


@router.get("/tasks")
def tasks_page(request: Request, session: SessionDep, person: PersonDep) -> HTMLResponse:
    return _page(
        request, person, "tasks.html", rows=service.open_tasks(session), outcomes=CallOutcome
    )


@router.post("/tasks/{task_id}/outcome")
async def task_outcome(
    task_id: str,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    person: FormPerson,
    outcome: Annotated[CallOutcome, Form()],
    notes: Annotated[str, Form()] = "",
    promise_date: Annotated[str, Form()] = "",
) -> RedirectResponse:
    _guard(person, Action.CALL_OUTCOME)
    try:
        body = TaskOutcomeCreate(
            outcome=outcome, notes=notes, promise_date=promise_date.strip() or None
        )
    except ValueError as err:
        return _back("/console/tasks", str(err), "error")
    return await _act(
        person,
        "/console/tasks",
        tasks.record_outcome(engine, client, settings, task_id, body, person.principal()),
    )


@router.get("/invoices/{number}")
def invoice(
    number: str, request: Request, session: SessionDep, settings: SettingsDep, person: PersonDep
) -> HTMLResponse:
    try:
        page = service.invoice_page(session, settings, number)
    except ApiError as missing:
        return _page(request, person, "message.html", missing.status_code, message=missing.detail)
    return _page(request, person, "invoice.html", page=page)


@router.post("/invoices/{number}/{action}")
async def invoice_action(
    number: str,
    action: str,
    request: Request,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    person: FormPerson,
) -> RedirectResponse:
    url = f"/console/invoices/{number}"
    if action not in INVOICE_ACTIONS:
        return _back(url, f"unknown action {action!r}", "error")
    roles, build = INVOICE_ACTIONS[action]
    _guard(person, roles)
    form = await request.form()
    fields = {k: str(v).strip() for k, v in form.items() if k != "csrf_token"}
    try:
        call = build(Call(engine, client, settings, number, person.principal()), fields)
    except ValueError as err:
        return _back(url, str(err), "error")
    return await _act(person, url, call)


@router.get("/debtors")
def debtors(request: Request, session: SessionDep, person: PersonDep) -> HTMLResponse:
    page = reports.list_debtors(session, None, reports.MAX_PAGE)
    return _page(request, person, "debtors.html", rows=page.items)


@router.get("/portfolio")
def portfolio(request: Request, session: SessionDep, person: PersonDep) -> HTMLResponse:
    params = dict(request.query_params)
    try:
        filters = service.portfolio_filters(params)
        page = reports.list_invoices(session, filters, cursor=params.get("cursor") or None)
    except ApiError as bad:
        return _page(request, person, "message.html", bad.status_code, message=bad.detail)
    query = {k: v for k, v in params.items() if v and k not in ("cursor", "flash", "kind")}
    return _page(
        request, person, "portfolio.html", page=page, params=params, query=urlencode(query)
    )


@router.get("/portfolio.csv")
def portfolio_csv(request: Request, session: SessionDep, _: PersonDep) -> Response:
    try:
        filters = service.portfolio_filters(dict(request.query_params))
    except ApiError as bad:
        return Response(bad.detail, status_code=bad.status_code)
    return StreamingResponse(
        reports.invoices_csv(session, filters, sort=SortKey.DUE_DATE, descending=False),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="portfolio.csv"'},
    )


@router.get("/reports")
def reports_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    person: PersonDep,
    currency: str = "EUR",
) -> HTMLResponse:
    page = service.reports_page(session, settings, currency, person.language)
    return _page(request, person, "reports.html", page=page)


@router.get("/admin/people")
def people(request: Request, engine: EngineDep, person: PersonDep) -> HTMLResponse:
    _guard(person, Action.PEOPLE)
    return _page(request, person, "people.html", people=accounts.people(engine))


# ------------------------------------------------------------------ wiring


async def _sign_in_needed(_request: Request, _exc: Exception) -> Response:
    return RedirectResponse("/console/login", status_code=303)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleRefusal)
    language = exc.person.language if exc.person else Language.FR
    return _page(request, exc.person, "message.html", 403, message=translate(language, exc.key))


def install_console(app: FastAPI) -> None:
    app.add_exception_handler(SignInNeeded, _sign_in_needed)
    app.add_exception_handler(ConsoleRefusal, _refused)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
