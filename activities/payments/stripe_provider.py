"""Stripe Checkout behind the provider interface, with the official `stripe` client.

One Checkout Session per payment, one line per invoice (a session has one currency). Paid
sessions are learned from Stripe's signed webhook only, verified by the client library's own
scheme (`Stripe-Signature: t=...,v1=...`, HMAC-SHA256 of "t.payload") with a tolerance on `t`.
Card payments are paid when `checkout.session.completed` arrives; SEPA debits complete unpaid
and are paid at `checkout.session.async_payment_succeeded`.
"""

from __future__ import annotations

from typing import Any

import stripe

from activities.payments.provider import (
    Checkout,
    CheckoutLine,
    CompletedCheckout,
    InvalidWebhook,
    ProviderError,
)
from domain.money import minor_units

_PAID_EVENTS = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})
# Checkout's page languages we use; anything else lets Stripe choose from the browser.
_LOCALES = {"fr": "fr", "en": "en"}


def to_minor(amount: Any, currency: str) -> int:
    return int(amount.scaleb(minor_units(currency)))


class StripeProvider:
    name = "stripe"

    def __init__(
        self,
        api_key: str,
        webhook_secret: str,
        *,
        api_base: str = "https://api.stripe.com",
        tolerance_seconds: int = 300,
        payment_methods: list[str] | None = None,
    ) -> None:
        self._client = stripe.StripeClient(
            api_key, base_addresses={"api": api_base}, max_network_retries=2
        )
        self._webhook_secret = webhook_secret
        self._tolerance = tolerance_seconds
        self._methods = payment_methods or ["card"]

    def create_checkout(
        self,
        lines: list[CheckoutLine],
        *,
        reference: str,
        success_url: str,
        cancel_url: str,
        locale: str,
    ) -> Checkout:
        currencies = {line.amount.currency for line in lines}
        if len(currencies) != 1:
            raise ValueError("one payment covers invoices of one currency")
        params: dict[str, Any] = {
            "mode": "payment",
            "payment_method_types": self._methods,
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": line.amount.currency.lower(),
                        "unit_amount": to_minor(line.amount.amount, line.amount.currency),
                        "product_data": {"name": line.invoice_number},
                    },
                }
                for line in lines
            ],
            "success_url": success_url,
            "cancel_url": cancel_url,
            # Opaque: our own checkout id. Invoice numbers are business data, not personal.
            "client_reference_id": reference,
            "metadata": {"relance_checkout": reference},
            "locale": _LOCALES.get(locale, "auto"),
        }
        try:
            session = self._client.v1.checkout.sessions.create(
                params=params,  # type: ignore[arg-type]
                # A retried request opens the same session, not a second one.
                options={"idempotency_key": reference},
            )
        except stripe.StripeError as err:
            raise ProviderError(f"Stripe refused the checkout: {err.user_message or err}") from err
        if not session.url:
            raise ProviderError("Stripe opened a checkout without a payment page")
        return Checkout(id=session.id, url=session.url)

    def completed_checkout(self, payload: bytes, signature: str | None) -> CompletedCheckout | None:
        try:
            event = stripe.Webhook.construct_event(
                payload, signature, self._webhook_secret, tolerance=self._tolerance
            )
        except stripe.SignatureVerificationError as err:
            raise InvalidWebhook(f"Stripe-Signature does not verify: {err.user_message}") from err
        except ValueError as err:
            raise InvalidWebhook("the body is not a Stripe event") from err
        if event.type not in _PAID_EVENTS:
            return None
        session = event.data.object.to_dict()
        if session.get("payment_status") not in ("paid", "no_payment_required"):
            return None  # a SEPA debit still clearing: its own event comes later
        return CompletedCheckout(
            event_id=str(event.id),
            session_id=str(session["id"]),
            amount_minor=session.get("amount_total"),
            currency=(session.get("currency") or "").upper() or None,
        )
