"""Relance settings: one class, read once from the environment and `.env`.

The variable names (``RELANCE_*``) are a public contract: the README, docker-compose.yml and the
tests rely on them.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REAL_DAY_SECONDS = 86400.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RELANCE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path(".relance")

    # Temporal. No address means the embedded dev server that `relance dev` starts.
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    task_queue: str = "relance"

    # SQL store. Unset: a SQLite file in the data dir.
    database_url: str | None = None

    # Email. The outbox writes one .eml per message; SendGrid needs an API key.
    email_backend: Literal["outbox", "sendgrid"] | None = None
    outbox_dir: Path | None = None
    sendgrid_api_key: SecretStr | None = None
    sendgrid_host: str = "https://api.sendgrid.com"
    email_from: str = "relance@example.com"
    # Where mediation and legal hand-off files are sent.
    mediator_email: str = "mediation@example.com"
    legal_partner_email: str = "legal@example.com"
    collectors_email: str = "collectors@example.com"
    # What debtors read: who is collecting, and how to pay.
    creditor_name: str = "Relance Demo SAS"
    payment_instructions: str = "Bank transfer to IBAN FR76 0000 0000 0000 0000 0000 000"
    playbooks_dir: Path | None = None
    default_playbook: str = "default"

    # Length of a day in seconds: real days in production, seconds in demos.
    day_seconds: float = Field(default=REAL_DAY_SECONDS, gt=0)

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Seconds an API call waits for the workflow to answer an Update or Query.
    rpc_timeout_seconds: float = Field(default=10.0, gt=0)

    worker_max_concurrent_activities: int = Field(default=16, ge=1)
    worker_graceful_shutdown_seconds: float = Field(default=15.0, ge=0)
    # host:port where the worker serves Prometheus metrics (task slots, latencies, failures).
    metrics_bind_address: str | None = None

    # What one collection action costs, for the cost-of-collection report (in the report's
    # currency): an email, an SMS, a posted letter, a collector's call.
    cost_email: Decimal = Field(default=Decimal("0.01"), ge=0)
    cost_sms: Decimal = Field(default=Decimal("0.08"), ge=0)
    cost_letter: Decimal = Field(default=Decimal("1.50"), ge=0)
    cost_phone: Decimal = Field(default=Decimal("4.00"), ge=0)

    # --- Webhooks ---------------------------------------------------------------------------
    # SendGrid's Event Webhook (POST /v1/webhooks/sendgrid) is authenticated by its ECDSA
    # signature alone: this is the verification key SendGrid shows (base64 DER). Unset, the
    # endpoint answers 503: unsigned events are never accepted, in any environment.
    sendgrid_webhook_public_key: str | None = None
    # How far the signed timestamp may be from now, either way. SendGrid's helper checks no age,
    # so without this a captured request could be replayed forever.
    sendgrid_webhook_tolerance_seconds: int = Field(default=300, gt=0)
    # Signed notifications to the back office (stage changes, disputes, plans, hand-offs):
    # http(s) URLs, comma-separated or a JSON list; none turns the feature off.
    backoffice_webhook_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The HMAC-SHA256 key receivers verify `Relance-Signature` with; required with URLs.
    backoffice_webhook_secret: SecretStr | None = None
    backoffice_webhook_timeout_seconds: float = Field(default=10.0, gt=0)

    @field_validator("backoffice_webhook_urls", mode="before")
    @classmethod
    def _split_webhook_urls(cls, value: object) -> object:
        # NoDecode hands us the raw variable: operators write either form.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("backoffice_webhook_urls")
    @classmethod
    def _check_webhook_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                # Only the scheme and host: a URL may carry a receiver's token.
                raise ValueError(
                    "RELANCE_BACKOFFICE_WEBHOOK_URLS must be http(s) URLs; "
                    f"got one with scheme {parts.scheme!r} and host {parts.hostname!r}"
                )
        return urls

    @model_validator(mode="after")
    def _check_backoffice_webhooks(self) -> Settings:
        secret = self.backoffice_webhook_secret
        if self.backoffice_webhook_urls and not (secret and secret.get_secret_value()):
            raise ValueError(
                "RELANCE_BACKOFFICE_WEBHOOK_URLS needs RELANCE_BACKOFFICE_WEBHOOK_SECRET: "
                "receivers must be able to tell our notifications from forgeries"
            )
        if secret and len(secret.get_secret_value()) < 16:
            raise ValueError("RELANCE_BACKOFFICE_WEBHOOK_SECRET must be at least 16 characters")
        return self

    @model_validator(mode="after")
    def _check_email_backend(self) -> Settings:
        if self.email_backend is None:
            self.email_backend = "sendgrid" if self.sendgrid_api_key else "outbox"
        if self.email_backend == "sendgrid" and not self.sendgrid_api_key:
            raise ValueError("RELANCE_EMAIL_BACKEND=sendgrid needs RELANCE_SENDGRID_API_KEY")
        if self.environment == "production" and self.email_from.endswith("@example.com"):
            raise ValueError("set RELANCE_EMAIL_FROM to a real sender address in production")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'relance.db'}"

    @property
    def resolved_outbox_dir(self) -> Path:
        return self.outbox_dir or self.data_dir / "outbox"

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
