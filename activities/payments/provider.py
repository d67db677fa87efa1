"""What the portal needs from a payment provider: open a hosted checkout for one or several
invoices, and tell a genuine "paid" notification from anything else.

The provider never decides what is recorded: the portal stores the session it opened (which
invoices, how much) and records those payments, through the same service as the REST API,
when the provider's signed notification says the session was paid.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict

from domain.money import Money


class CheckoutLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    invoice_number: str
    amount: Money


class Checkout(BaseModel):
    """A session opened with the provider: its id, and the page the debtor pays on."""

    id: str
    url: str


class CompletedCheckout(BaseModel):
    """A verified notification that a session's money was received."""

    event_id: str
    session_id: str
    # The provider's total, to compare with what we asked for.
    amount_minor: int | None = None
    currency: str | None = None


class InvalidWebhook(ValueError):
    """The notification is not signed by the provider, or too old: refuse it."""


class ProviderError(RuntimeError):
    """The provider could not open a checkout (network, refusal): say so, try again later."""


class PaymentProvider(Protocol):
    name: str

    def create_checkout(
        self,
        lines: list[CheckoutLine],
        *,
        reference: str,
        success_url: str,
        cancel_url: str,
        locale: str,
    ) -> Checkout: ...

    def completed_checkout(self, payload: bytes, signature: str | None) -> CompletedCheckout | None:
        """The paid session this notification reports; None for an event that pays nothing
        (another type, a SEPA debit still pending). Raises InvalidWebhook when unsigned."""
        ...
