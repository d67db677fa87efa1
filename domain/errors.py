"""Every refusal a workflow, the machine or an activity can raise, named once.

The workflow raises `ApplicationError(message, type=ErrorType.X)`; the API maps the type to an
HTTP status (api/errors.py). Nobody compares message text, and a new refusal is one member here.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorType(StrEnum):
    # Refusals of an invoice's Updates (validators): the caller's request does not fit.
    CURRENCY_MISMATCH = "CurrencyMismatch"
    INVALID_AMOUNT = "InvalidAmount"
    INVOICE_CLOSED = "InvoiceClosed"
    STALE_APPROVAL = "StaleApproval"
    UNKNOWN_DISPUTE = "UnknownDispute"
    DISPUTE_OPEN = "DisputeOpen"
    PLAN_MISMATCH = "PlanMismatch"
    PLAN_CONFLICT = "PlanConflict"
    UNKNOWN_PLAN = "UnknownPlan"
    FOUR_EYES = "FourEyes"
    NOT_PAUSED = "NotPaused"
    HOLD_CONFLICT = "HoldConflict"
    INVALID_PROMISE = "InvalidPromise"
    NOT_SUPPORTED = "NotSupported"
    # No rate table for the debtor's country or period: interest is not guessed.
    RATE_UNKNOWN = "RateUnknown"
    # Failures of activities: not retried (a bug in a template, a provider's final refusal).
    PERMANENT_SEND_ERROR = "PermanentSendError"
    TEMPLATE_NOT_FOUND = "TemplateNotFound"
    MISSING_INVOICE = "MissingInvoice"
    CHANNEL_UNAVAILABLE = "ChannelUnavailable"
    INVALID_BATCH = "InvalidBatch"
    DAY_ALREADY_USED = "DayAlreadyUsed"
    # The send no longer applies: the invoice was paid, closed or held meanwhile.
    SEND_NOT_WANTED = "SendNotWanted"
    # A send whose outcome is unknown (crash after the provider's answer) awaits a person.
    OUTCOME_UNKNOWN = "OutcomeUnknown"
    # The debtor cannot be reached on this channel (no number or address, STOP, a number the
    # provider refuses): like a bounce, the step's fallback channel takes over.
    UNDELIVERABLE = "Undeliverable"
    # Retryable: the debtor's send window is closed; the activity retries when it opens.
    OUTSIDE_SEND_WINDOW = "OutsideSendWindow"
    # An Update that belongs to another stage (a mediation's outcome before the mediator was
    # asked, the legal partner's progress before the hand-off, a hold once handed off).
    WRONG_STAGE = "WrongStage"


# What an activity may raise that no retry can fix.
NON_RETRYABLE_SEND_ERRORS = [
    ErrorType.PERMANENT_SEND_ERROR.value,
    ErrorType.TEMPLATE_NOT_FOUND.value,
    ErrorType.MISSING_INVOICE.value,
    ErrorType.SEND_NOT_WANTED.value,
    ErrorType.OUTCOME_UNKNOWN.value,
    ErrorType.UNDELIVERABLE.value,
]
