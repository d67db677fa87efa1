"""`/v1/invoices` (list), `/v1/debtors` (list) and `/v1/reports/*`: the whole book.

Formulas are stated in each route's description and in docs/kpis.md.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import Caller, EngineDep, SessionDep, SettingsDep
from api.reports import metrics as business_metrics
from api.reports import service
from api.reports.schemas import (
    AgingReport,
    DebtorPage,
    ForecastReport,
    InvoicePage,
    KpiReport,
    SortKey,
)
from api.schemas import IsoDate, error_responses
from domain.lifecycle import Stage
from domain.selection import RiskBand

router = APIRouter(tags=["portfolio and reports"])

Currency = Annotated[
    str, Query(pattern=r"^[A-Z]{3}$", description="reports never add two currencies")
]


@router.get(
    "/v1/invoices",
    responses={
        **error_responses(401, 403, 422),
        200: {"content": {"text/csv": {}}, "description": "a page, or CSV of every match"},
    },
    summary="The portfolio: invoices filtered, sorted, cursor-paginated; CSV with Accept",
    response_model=InvoicePage,
)
def list_invoices(
    request: Request,
    session: SessionDep,
    _: Caller,
    stage: Annotated[list[Stage] | None, Query(description="repeat for several")] = None,
    side_state: Annotated[
        list[Stage] | None, Query(description="disputed, payment_plan, promised, paused")
    ] = None,
    debtor: str | None = None,
    segment: str | None = None,
    risk_band: RiskBand | None = None,
    min_days_overdue: Annotated[int | None, Query(ge=-3650, le=36500)] = None,
    max_days_overdue: Annotated[int | None, Query(ge=-3650, le=36500)] = None,
    min_amount: Annotated[Decimal | None, Query(ge=0, description="on the outstanding")] = None,
    max_amount: Annotated[Decimal | None, Query(ge=0)] = None,
    due_from: IsoDate | None = None,
    due_to: IsoDate | None = None,
    playbook: str | None = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
    open_only: bool = False,
    sort: SortKey = SortKey.DUE_DATE,
    desc: bool = False,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
) -> Any:
    """Days overdue = today − due date (negative: not yet due). `min_days_overdue=31` keeps
    invoices at least 31 days late. With `Accept: text/csv`, every matching invoice comes back
    as CSV (no pagination), in the same order."""
    filters = {
        "stage": stage,
        "side_state": side_state,
        "debtor": debtor,
        "segment": segment,
        "risk_band": risk_band,
        "min_days_overdue": min_days_overdue,
        "max_days_overdue": max_days_overdue,
        "min_amount": min_amount,
        "max_amount": max_amount,
        "due_from": due_from,
        "due_to": due_to,
        "playbook": playbook,
        "currency": currency,
        "open_only": open_only,
    }
    if "text/csv" in request.headers.get("accept", ""):
        return StreamingResponse(
            service.invoices_csv(session, filters, sort=sort, descending=desc),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="invoices.csv"'},
        )
    return service.list_invoices(
        session, filters, sort=sort, descending=desc, cursor=cursor, limit=limit
    )


@router.get(
    "/v1/debtors",
    responses=error_responses(401, 403),
    summary="Debtors with open total, oldest overdue, risk, last contact, next action",
)
def list_debtors(
    session: SessionDep,
    _: Caller,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
) -> DebtorPage:
    """Ordered by id; `next_cursor` is the last id of the page."""
    return service.list_debtors(session, cursor, limit)


@router.get(
    "/v1/reports/aging",
    responses=error_responses(401, 403, 422),
    summary="Open amounts by days past due (not due, 1–30, 31–60, 61–90, 90+) and segment",
)
def aging(
    session: SessionDep, _: Caller, currency: Currency = "EUR", as_of: IsoDate | None = None
) -> AgingReport:
    """Each open invoice's balance at the end of `as_of` (default today) falls in the bucket
    of its days past due, `as_of − due date`: ≤ 0 not due, 1–30, 31–60, 61–90, over 90."""
    return service.aging(session, currency, as_of)


KPI_DESCRIPTION = """
Period: `from`..`to`, both days included (default: this month to date). AR(d) is what is owed
at the end of day d (amount − payments received by d; credit notes never count; a written-off
invoice stops counting the day it was written off). Current AR: the part not yet due.

- **DSO, count-back**: start from AR(to); subtract the credit sales of `to`'s month (up to `to`),
  then of each earlier month, adding its days, until a month's sales exceed what is left; that
  month adds left ÷ sales × its days.
- **Best possible DSO** = current AR(to) ÷ sales of the period × days of the period.
- **Average days delinquent** = DSO − best possible DSO.
- **CEI** = (AR(from − 1) + sales − AR(to)) ÷ (AR(from − 1) + sales − current AR(to)) × 100.
- **Recovery rate**: invoices due in the period; of what was unpaid at the end of the due date,
  the share paid after it, by `to`, in percent.
- **Average days to pay after the due date**: invoices settled in the period; mean of
  (settlement day − due date), an early payment counting 0.
- **Cost of collection**: messages sent to debtors in the period per channel, and calls made
  (call tasks closed), × the unit costs set in `RELANCE_COST_EMAIL`, `_SMS`, `_LETTER`,
  `_PHONE`.
- **Disputes** (ISO 10002 monitoring): disputes opened in the period; count, by reason, the
  median days from opening to resolution of the resolved ones, and the share of the resolved
  ones resolved by their deadline.
- **Step effectiveness**: for each step and template sent to debtors in the period (not
  the thank-you), the invoices it reached
  (first send), the share settled within `within_days` days after the send (its day is day 0),
  and what was paid on them in those days.
"""


@router.get(
    "/v1/reports/kpis",
    responses=error_responses(401, 403, 422),
    summary="DSO, best possible DSO, ADD, CEI, recovery, days to pay, costs, disputes, steps",
    description=KPI_DESCRIPTION,
)
def kpis(
    session: SessionDep,
    settings: SettingsDep,
    _: Caller,
    from_: Annotated[IsoDate | None, Query(alias="from")] = None,
    to: IsoDate | None = None,
    currency: Currency = "EUR",
    within_days: Annotated[int, Query(ge=0, le=365)] = 7,
) -> KpiReport:
    return service.kpi_report(session, settings, currency, from_, to, within_days)


@router.get(
    "/v1/reports/forecast",
    responses=error_responses(401, 403, 422),
    summary="Expected receipts for the next 13 weeks, weighted by the debtors' risk",
)
def forecast(session: SessionDep, _: Caller, currency: Currency = "EUR") -> ForecastReport:
    """Weeks start on the Monday of this week. Each open invoice's outstanding is expected:
    a disputed one, never; on a payment plan, its unpaid installments on their dates (the last
    installments adding up to the outstanding); promised, on the promised day; otherwise on its
    due date plus the debtor's average days late. A day already past counts today. Each amount
    is weighted by the debtor's risk band: low 0.90, medium 0.70, high 0.40 (`weights`)."""
    return service.forecast(session, currency)


@router.get(
    "/metrics",
    include_in_schema=False,
    response_class=PlainTextResponse,
)
def metrics(engine: EngineDep) -> PlainTextResponse:
    """Prometheus text format: open amount by stage, messages, approvals waiting, tasks late."""
    return PlainTextResponse(
        business_metrics.render(business_metrics.registry_for(engine)),
        media_type=CONTENT_TYPE_LATEST,
    )
