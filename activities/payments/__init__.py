"""Online payments: a provider interface, and Stripe behind it."""

from activities.payments.provider import (
    Checkout,
    CheckoutLine,
    CompletedCheckout,
    InvalidWebhook,
    PaymentProvider,
    ProviderError,
)
from activities.payments.stripe_provider import StripeProvider

__all__ = [
    "Checkout",
    "CheckoutLine",
    "CompletedCheckout",
    "InvalidWebhook",
    "PaymentProvider",
    "ProviderError",
    "StripeProvider",
]
