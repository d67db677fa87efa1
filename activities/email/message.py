"""What the email layer takes, what it returns, and the two ways it fails.

Senders are synchronous: the worker calls them from its activity thread pool. The split between
`PermanentSendError` and `TransientSendError` is the whole retry policy: the messaging activity
turns the first into a non-retryable failure and lets Temporal retry the second with backoff.
"""

from __future__ import annotations

import re
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from config import Settings

_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")
# C0 and C1 control characters, DEL, and Unicode's line and paragraph separators.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def display_name(name: str | None) -> str | None:
    """A recipient's name as it may appear in a `To:` header, whoever builds the header.

    A name comes from the back office, so from anyone. Control characters become spaces: a raw
    CR/LF would either inject a header or make every message to that debtor fail. "=?" and "?="
    are broken apart: they delimit an RFC 2047 encoded word, which a serializer refolding the
    header (Python's email package, on some versions) or the provider would decode into any
    text, line breaks and a `Bcc:` included. The name stays readable; it just cannot be decoded
    into header text.
    """
    if name is None:
        return None
    clean = _CONTROLS.sub(" ", name).replace("=?", "= ?").replace("?=", "? =")
    return " ".join(clean.split()) or None


class OutgoingEmail(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Stable across retries of the same message, e.g. "INV-1:reminder_1:email": the outbox names
    # its file after it, so a retry overwrites instead of duplicating.
    idempotency_key: str = Field(min_length=1)
    to_email: str
    to_name: str | None = None
    subject: str
    text: str
    html: str | None = None
    # SendGrid stores custom args and echoes them in its event webhooks: opaque ids only
    # (invoice number, interaction id), never a person's name or address.
    custom_args: dict[str, str] = Field(default_factory=dict)
    categories: list[str] = Field(default_factory=list)

    @field_validator("to_name")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        return display_name(value)

    @field_validator("subject")
    @classmethod
    def _one_line_subject(cls, value: str) -> str:
        # Rendered templates often end the subject with a newline; a header can't carry one, and
        # failing the send over a stray line break would be worse than folding it into a space.
        return _LINE_BREAKS.sub(" ", value).strip()


class SendReceipt(BaseModel):
    model_config = ConfigDict(frozen=True)

    provider: str
    provider_message_id: str | None


class SendError(Exception):
    """Base of the two outcomes a caller must tell apart; never raised as such."""

    def __init__(self, reason: str, status_code: int | None = None) -> None:
        # Both values go to Exception.args so the error pickles and unpickles intact.
        super().__init__(reason, status_code)
        self.reason = reason
        self.status_code = status_code

    def __str__(self) -> str:
        if self.status_code is None:
            return self.reason
        return f"{self.reason} (HTTP {self.status_code})"


class PermanentSendError(SendError):
    """Sending this message again will fail again: bad address, rejected payload, bad API key."""


class TransientSendError(SendError):
    """The provider was unreachable, overloaded or slow: the same message may succeed later."""


class EmailSender(Protocol):
    name: str

    def send(self, email: OutgoingEmail) -> SendReceipt:
        """Hand one message to the provider; blocks. Raises a `SendError` subclass on failure."""
        ...


def build_sender(settings: Settings) -> EmailSender:
    # Imported here because both sender modules import this one.
    if settings.email_backend == "sendgrid":
        from activities.email.sendgrid_sender import SendGridSender

        if settings.sendgrid_api_key is None:
            raise ValueError("the sendgrid email backend needs RELANCE_SENDGRID_API_KEY")
        return SendGridSender(
            api_key=settings.sendgrid_api_key.get_secret_value(),
            host=settings.sendgrid_host,
            from_email=settings.email_from,
        )

    from activities.email.outbox import OutboxSender

    return OutboxSender(settings.resolved_outbox_dir, settings.email_from)
