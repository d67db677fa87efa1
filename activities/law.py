"""Late-payment law the workflow asks for: the costs of an invoice paid after its due date.

An activity, not a call from workflow code, because the rates come from a file read at the
worker's start (and ops may add a half-year without a release): a replay must find the figure
recorded in the history, not recompute it with whatever table the replaying worker holds.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from config import Settings
from contracts.errors import ErrorType
from domain.law import (
    InterestClause,
    LatePaymentCosts,
    Paid,
    interest_regime,
    late_payment_costs,
)
from domain.money import Money
from domain.rates import RateUnknownError


class LateCostsRequest(BaseModel):
    """An invoice just settled: its amount, due date and every payment with its day."""

    invoice_number: str
    amount: Money
    due_date: date
    payments: list[Paid]
    country: str = "FR"
    # The invoice's own clause (InvoiceFacts.interest_clause); None: the creditor's terms.
    interest_clause: str | None = None


class LawActivities:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @activity.defn(name="late_payment_costs")
    def late_payment_costs(self, request: LateCostsRequest) -> LatePaymentCosts | None:
        """The interest to each payment's day and the 40 €, or None if nothing was late."""
        clause = (
            InterestClause.parse(request.interest_clause)
            if request.interest_clause
            else self._settings.interest_clause
        )
        try:
            return late_payment_costs(
                request.amount,
                request.due_date,
                request.payments,
                interest_regime(request.country),
                clause=clause,
                country=request.country,
            )
        except RateUnknownError as exc:
            raise ApplicationError(
                f"invoice {request.invoice_number}: {exc}",
                type=ErrorType.RATE_UNKNOWN,
                non_retryable=True,
            ) from exc
        except ValueError as exc:  # not settled, or a payment in another currency
            raise ApplicationError(
                f"invoice {request.invoice_number}: {exc}",
                type=ErrorType.NOT_SUPPORTED,
                non_retryable=True,
            ) from exc
