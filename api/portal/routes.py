"""`/portal/...`: the debtor's page and its forms; `POST /v1/webhooks/stripe`; and
`POST /v1/debtors/{id}/portal/rotate` for admins. Thin: each route is one call into the
service, wrapped by `_page_for` / `_act`, which check the link, the rate and the CSRF token and
render refusals as a page the debtor can read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import jinja2
from anyio import to_thread
from fastapi import APIRouter, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from api.deps import Caller, ClientDep, EngineDep, SettingsDep
from api.errors import ApiError
from api.portal import service
from api.portal.security import (
    COOKIE,
    RateLimiter,
    client_address,
    install_headers,
    install_log_redaction,
)
from api.portal.service import InvalidLink, Upload, Visit
from api.portal.texts import EN, FR, texts_for
from api.schemas import error_responses
from config import Settings
from domain.portal import LINK_PATH, csrf_token, csrf_valid, token_digest
from messages.render import FILTERS

HERE = Path(__file__).resolve().parent
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(FILTERS)

router = APIRouter(include_in_schema=False)
api_router = APIRouter(tags=["portal"])


# ------------------------------------------------------------------ rendering


def render(template: str, language: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(language=language, t=texts_for(language), **context)
    return HTMLResponse(html, status_code=status_code)


def _invalid() -> HTMLResponse:
    # One answer, in both languages, for every link that does not open a page: an altered,
    # expired, revoked or guessed token cannot be told apart from another.
    return render("invalid.html.j2", "fr", 404, fr=FR, en=EN)


def _too_many(language: str) -> HTMLResponse:
    response = render("error.html.j2", language, 429, message=texts_for(language)["too_many"])
    response.headers["Retry-After"] = "60"
    return response


def _limited(request: Request, token: str | None) -> bool:
    limiter: RateLimiter = request.app.state.portal_limiter
    return not limiter.allow(token_digest(token) if token else None, client_address(request))


def _visit(request: Request, engine: Any, settings: Settings) -> Visit:
    return service.resolve(engine, settings, request.cookies.get(COOKIE))


async def _page_for(
    request: Request, engine: Any, settings: Settings, draw: Callable[[Visit], Response]
) -> Response:
    token = request.cookies.get(COOKIE)
    if _limited(request, token):
        return _too_many("fr")
    try:
        visit = await to_thread.run_sync(_visit, request, engine, settings)
    except InvalidLink:
        return _invalid()
    return draw(visit)


async def _act(
    request: Request,
    engine: Any,
    settings: Settings,
    csrf: str,
    action: Callable[[Visit], Awaitable[str | Response]],
) -> Response:
    """Check link, rate and CSRF token, run the action, and go back to the page (303, so a
    reload does not post again) or show why it was refused."""
    token = request.cookies.get(COOKIE)
    if _limited(request, token):
        return _too_many("fr")
    try:
        visit = await to_thread.run_sync(_visit, request, engine, settings)
    except InvalidLink:
        return _invalid()
    assert settings.portal_secret is not None  # resolve() refuses every link without it
    if not csrf_valid(settings.portal_secret.get_secret_value(), visit.token, csrf):
        return render(
            "error.html.j2", visit.language, 403, message="CSRF token missing or wrong: reload"
        )
    try:
        outcome = await action(visit)
    except ApiError as err:
        return render("error.html.j2", visit.language, err.status_code, message=err.detail)
    if isinstance(outcome, Response):
        return outcome
    return RedirectResponse(outcome, status_code=303)


def _csrf(settings: Settings, visit: Visit) -> str:
    assert settings.portal_secret is not None
    return csrf_token(settings.portal_secret.get_secret_value(), visit.token)


# ------------------------------------------------------------------ the page


@router.get(LINK_PATH + "{token}")
async def open_link(
    token: str, request: Request, engine: EngineDep, settings: SettingsDep
) -> Response:
    """The link in a message: keep the token in a cookie and move to a URL without it."""
    if _limited(request, token):
        return _too_many("fr")
    try:
        await to_thread.run_sync(service.resolve, engine, settings, token)
    except InvalidLink:
        return _invalid()
    response = RedirectResponse("/portal", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(settings.portal_link_days * 86400),
        path="/portal",
        httponly=True,
        secure=settings.public_url.startswith("https://"),
        # Lax: sent when the debtor follows the link from their mailbox (a top-level GET);
        # never on a cross-site POST.
        samesite="lax",
    )
    return response


@router.get("/portal")
async def portal_page(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    done: str | None = None,
    ref: str | None = None,
) -> Response:
    def draw(visit: Visit) -> Response:
        view = service.page(engine, settings, visit, done, ref)
        return render(
            "page.html.j2",
            visit.language,
            view=view,
            csrf=_csrf(settings, visit),
            settings=settings,
        )

    return await _page_for(request, engine, settings, draw)


@router.get("/portal/static/portal.css")
def stylesheet() -> FileResponse:
    return FileResponse(HERE / "static" / "portal.css", media_type="text/css")


# ------------------------------------------------------------------ actions

Csrf = Annotated[str, Form()]


@router.post("/portal/pay")
async def pay(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    csrf: Csrf,
    invoices: Annotated[list[str] | None, Form()] = None,
) -> Response:
    async def action(visit: Visit) -> Response:
        checkout = await service.start_checkout(engine, settings, visit, invoices or [])
        return render("checkout.html.j2", visit.language, checkout=checkout)

    return await _act(request, engine, settings, csrf, action)


@router.post("/portal/invoices/{number}/dispute")
async def dispute(
    number: str,
    request: Request,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    csrf: Csrf,
    reason: Annotated[str, Form()],
    details: Annotated[str, Form(max_length=2000)] = "",
    amount: Annotated[str | None, Form(max_length=32)] = None,
    attachment: Annotated[UploadFile | None, File()] = None,
) -> Response:
    async def action(visit: Visit) -> str:
        upload = await _upload(attachment, settings)
        ref = await service.open_dispute(
            engine, client, settings, visit, number, reason, details, amount, upload
        )
        return f"/portal?done=dispute&ref={ref}"

    return await _act(request, engine, settings, csrf, action)


async def _upload(attachment: UploadFile | None, settings: Settings) -> Upload | None:
    if attachment is None or not attachment.filename:
        return None
    # One byte over the limit is enough to refuse: never read more.
    data = await attachment.read(settings.portal_upload_max_bytes + 1)
    return Upload(data=data, claimed_type=attachment.content_type) if data else None


@router.post("/portal/invoices/{number}/plan")
async def plan(
    number: str,
    request: Request,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    csrf: Csrf,
    count: Annotated[int, Form(ge=1, le=60)],
    first: Annotated[str, Form(max_length=10)],
) -> Response:
    async def action(visit: Visit) -> str:
        ref, status = await service.propose_plan(
            engine, client, settings, visit, number, count, first
        )
        return f"/portal?done=plan_{status}&ref={ref}"

    return await _act(request, engine, settings, csrf, action)


@router.post("/portal/invoices/{number}/promise")
async def promise(
    number: str,
    request: Request,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    csrf: Csrf,
    until: Annotated[str, Form(max_length=10)],
) -> Response:
    async def action(visit: Visit) -> str:
        await service.promise(engine, client, settings, visit, number, until)
        return "/portal?done=promise"

    return await _act(request, engine, settings, csrf, action)


@router.post("/portal/contact")
async def contact(
    request: Request,
    engine: EngineDep,
    client: ClientDep,
    settings: SettingsDep,
    csrf: Csrf,
    email: Annotated[str, Form(max_length=320)],
) -> Response:
    async def action(visit: Visit) -> str:
        await service.correct_contact(engine, client, settings, visit, email)
        return "/portal?done=contact"

    return await _act(request, engine, settings, csrf, action)


@router.post("/portal/data-request")
async def data_request(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    csrf: Csrf,
    kind: Annotated[str, Form(max_length=32)],
    message: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    async def action(visit: Visit) -> str:
        await to_thread.run_sync(service.data_request, engine, visit, kind, message)
        return "/portal?done=data"

    return await _act(request, engine, settings, csrf, action)


# ------------------------------------------------------------------ provider and admin


@api_router.post(
    "/v1/webhooks/stripe",
    responses=error_responses(400, 403, 413, 503),
    summary="Stripe's signed events: a paid Checkout Session records its payments, once",
)
async def stripe_webhook(
    request: Request, engine: EngineDep, client: ClientDep, settings: SettingsDep
) -> dict[str, object]:
    payload = await request.body()
    signature = request.headers.get("Stripe-Signature")
    return await service.stripe_webhook(engine, client, settings, payload, signature)


@api_router.post(
    "/v1/debtors/{debtor_id}/portal/rotate",
    responses=error_responses(401, 403, 404),
    summary="Void every portal link of a debtor; the answer carries their new link",
)
def rotate(
    debtor_id: str, engine: EngineDep, settings: SettingsDep, principal: Caller
) -> dict[str, object]:
    return service.rotate_link(engine, settings, debtor_id, principal.name)


def install_portal(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    app.state.portal_limiter = RateLimiter(
        settings.portal_rate_per_token, settings.portal_rate_per_address
    )
    install_headers(app, settings)
    install_log_redaction()
    app.include_router(router)
    app.include_router(api_router)
