"""What the SMS layer takes and returns; failures are the email layer's two kinds
(`PermanentSendError`, `TransientSendError`), so the messaging activity treats both alike."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from activities.email.message import TransientSendError
from config import Settings


class OutgoingSms(BaseModel):
    model_config = ConfigDict(frozen=True)

    idempotency_key: str = Field(min_length=1)
    # E.164, validated when the debtor was handed over (domain/phone.py).
    to: str
    body: str
    # True when an earlier attempt of this very message ended without a clear answer (a
    # timeout, a 5xx): the sender first looks whether the provider took it after all.
    retry: bool = False


class SmsReceipt(BaseModel):
    model_config = ConfigDict(frozen=True)

    provider: str
    provider_message_id: str | None
    # The retry found the message the earlier attempt had sent: nothing new went out.
    recovered: bool = False


class SmsSender(Protocol):
    name: str

    def send(self, sms: OutgoingSms) -> SmsReceipt:
        """Hand one text to the provider; blocks. Raises a `SendError` subclass on failure."""
        ...


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class SmsOutbox:
    """Development default: one `.txt` file per text, named after its key and replaced
    atomically, so a retry rewrites the same file (and a newcomer reads what would be sent)."""

    name = "sms-outbox"
    # A resend rewrites the same file.
    idempotent = True

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path_for(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return self.directory / f"{_UNSAFE.sub('_', key)[:80]}-{digest}.txt"

    def send(self, sms: OutgoingSms) -> SmsReceipt:
        path = self.path_for(sms.idempotency_key)
        data = f"To: {sms.to}\nKey: {sms.idempotency_key}\n\n{sms.body}".encode()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(temp, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
                raise
        except OSError as exc:
            raise TransientSendError(f"cannot write to SMS outbox {self.directory}: {exc}") from exc
        return SmsReceipt(provider=self.name, provider_message_id=path.name)


def build_sms_sender(settings: Settings) -> SmsSender:
    if settings.twilio_account_sid and settings.twilio_auth_token:
        from activities.sms.twilio_sender import TwilioSmsSender

        return TwilioSmsSender(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            from_number=settings.twilio_from,
            api_base=settings.twilio_api_base,
            status_callback=settings.twilio_status_callback_url,
        )
    return SmsOutbox(settings.resolved_outbox_dir / "sms")
