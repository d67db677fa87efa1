"""What the portfolio and report endpoints give back. Amounts are decimal strings."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from api.schemas import MoneyPublic
from domain.selection import RiskBand


class SortKey(StrEnum):
    NUMBER = "number"
    DUE_DATE = "due_date"
    ISSUE_DATE = "issue_date"
    AMOUNT = "amount"
    OUTSTANDING = "outstanding"
    STAGE = "stage"
    DEBTOR = "debtor"


class InvoiceRow(BaseModel):
    number: str
    debtor_id: str
    debtor_name: str
    segment: str | None
    risk_band: RiskBand
    amount: MoneyPublic
    outstanding: MoneyPublic
    issue_date: date
    due_date: date
    days_overdue: int = Field(description="days past the due date today (negative: not yet due)")
    stage: str
    playbook: str
    next_step: str | None
    next_step_at: datetime | None


class InvoicePage(BaseModel):
    items: list[InvoiceRow]
    next_cursor: str | None = Field(
        description="pass it as `cursor` for the next page; null on the last page"
    )


class DebtorRow(BaseModel):
    id: str
    name: str
    segment: str | None
    open_invoices: int
    open_total: list[MoneyPublic] = Field(description="what it owes, one entry per currency")
    oldest_overdue_days: int | None = Field(
        description="days past due of its oldest unpaid invoice; null when none is late"
    )
    risk_score: int
    risk_band: RiskBand
    last_contact: datetime | None = Field(description="the last message sent about its invoices")
    next_action: str | None = Field(description="the next planned step: `invoice: step`")
    next_action_at: datetime | None


class DebtorPage(BaseModel):
    items: list[DebtorRow]
    next_cursor: str | None


class AgingRow(BaseModel):
    segment: str | None
    not_due: str
    d1_30: str
    d31_60: str
    d61_90: str
    d90_plus: str
    total: str


class AgingReport(BaseModel):
    as_of: date
    currency: str
    buckets: AgingRow = Field(description="the whole portfolio (segment null)")
    by_segment: list[AgingRow]
    at_legal_stage: str = Field(
        description="of the whole portfolio's total, what is with the legal partner (open "
        "hand-offs, still owed)"
    )


class ChannelCost(BaseModel):
    channel: str
    count: int
    unit_cost: str
    total: str


class DisputeReport(BaseModel):
    count: int = Field(description="disputes opened in the period")
    by_reason: dict[str, int]
    resolved: int
    median_days_to_resolve: str | None
    resolved_within_deadline_pct: str | None


class StepEffectiveness(BaseModel):
    step_id: str
    template: str
    invoices: int = Field(description="invoices the step reached in the period")
    paid_within: int = Field(description="of those, settled within N days after the step")
    paid_share_pct: str
    collected: str = Field(description="paid on those invoices within those N days")


class KpiReport(BaseModel):
    period_from: date
    period_to: date
    currency: str
    days: int
    sales: str
    receivables_start: str
    receivables_end: str
    current_receivables_end: str
    receivables_end_at_legal_stage: str = Field(
        description="of receivables_end, what is with the legal partner (open hand-offs)"
    )
    collected: str
    collected_by_legal_action: str = Field(
        description="of collected, what came in once the invoice was handed off; no step is "
        "credited with it but the hand-off's own"
    )
    dso: str = Field(description="count-back DSO on the last day of the period")
    best_possible_dso: str | None
    average_days_delinquent: str | None
    cei_pct: str | None
    recovery_rate_pct: str | None
    average_days_to_pay_after_due: str | None
    cost_by_channel: list[ChannelCost]
    cost_total: str
    disputes: DisputeReport
    step_window_days: int
    steps: list[StepEffectiveness]


class DsoPoint(BaseModel):
    month_end: date
    dso: str


class ForecastWeek(BaseModel):
    week_start: date
    gross: str = Field(description="expected receipts before weighting")
    expected: str = Field(description="weighted by the debtors' risk bands")
    from_due_dates: str
    from_installments: str
    from_promises: str


class ForecastReport(BaseModel):
    as_of: date
    currency: str
    weights: dict[RiskBand, str]
    weeks: list[ForecastWeek]
    at_legal_stage: str = Field(
        description="owed by invoices with the legal partner: not forecast, the procedure says "
        "when they pay"
    )
