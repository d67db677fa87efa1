"""What a postal provider takes and returns.

Posting is several calls with some providers (create, upload, address, submit): the provider
reports its own id for the letter as soon as it has one (`on_ref`), the activity writes it to
the store, and a retried attempt passes it back (`known_ref`) so the provider resumes that letter
instead of starting another. Failures are the email layer's two kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel, ConfigDict, SecretStr

from config import Settings
from domain.postal import PostalAddress
from store.letters import LetterStatus


class LetterJob(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    invoice_number: str
    # A debtor's consolidated letter: every invoice it is about (the first is `invoice_number`).
    invoices: tuple[str, ...] = ()
    # The post's name for it, e.g. "F-2026-0042 formal_notice": no personal data.
    title: str
    registered: bool
    pdf: bytes
    pages: int
    sender: PostalAddress
    recipient: PostalAddress


class PostalReceipt(BaseModel):
    model_config = ConfigDict(frozen=True)

    provider: str
    provider_ref: str
    recipient_ref: str | None = None
    tracking_number: str | None = None
    status: LetterStatus


class PostalProvider(Protocol):
    name: str

    def post(
        self, job: LetterJob, known_ref: str | None, on_ref: Callable[[str], None]
    ) -> PostalReceipt:
        """Have the letter posted; blocks. Raises a `SendError` subclass on failure."""
        ...


def build_postal_provider(settings: Settings) -> PostalProvider:
    if settings.postal_backend == "maileva":
        from activities.letters.maileva import MailevaClient

        def secret(value: SecretStr | None) -> str:
            return value.get_secret_value() if value else ""

        return MailevaClient(
            api_base=settings.maileva_api_base,
            auth_url=settings.maileva_auth_url,
            client_id=settings.maileva_client_id or "",
            client_secret=secret(settings.maileva_client_secret),
            username=settings.maileva_username or "",
            password=secret(settings.maileva_password),
        )
    from activities.letters.print_queue import PrintQueue

    return PrintQueue(settings.resolved_outbox_dir / "letters")
