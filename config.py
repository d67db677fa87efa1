"""Relance settings: one class, read once from the environment and `.env`.

The variable names (``RELANCE_*``) are a public contract: the README, docker-compose.yml and the
tests rely on them.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from domain.iban import iban_error, ibans_in
from domain.law import InterestClause
from domain.rates import RateTable, load_rates, use_rates

REAL_DAY_SECONDS = 86400.0

# Demo values: fine on a laptop, refused in production (a formal notice must never carry them).
DEMO_CREDITOR_NAME = "Relance Demo SAS"
DEMO_IBAN = "FR76 0000 0000 0000 0000 0000 000"
DEMO_PAYMENT_INSTRUCTIONS = f"Bank transfer to IBAN {DEMO_IBAN}"
# RFC 2606 / RFC 6761 names that can never receive mail: placeholders by definition.
_RESERVED_DOMAINS = ("example.com", "example.net", "example.org")
_RESERVED_TLDS = (".example", ".test", ".invalid", ".localhost")
# The addresses and identity a production deployment must set, by variable.
_IDENTITY_ADDRESSES = {
    "RELANCE_EMAIL_FROM": "email_from",
    "RELANCE_COLLECTORS_EMAIL": "collectors_email",
    "RELANCE_MEDIATOR_EMAIL": "mediator_email",
    "RELANCE_LEGAL_PARTNER_EMAIL": "legal_partner_email",
}


def is_placeholder_address(address: str) -> bool:
    domain = address.rpartition("@")[2].strip().lower().rstrip(".")
    return (
        not domain
        or domain in _RESERVED_DOMAINS
        or domain.endswith(tuple(f".{d}" for d in _RESERVED_DOMAINS))
        or domain.endswith(_RESERVED_TLDS)
        or domain in {tld.lstrip(".") for tld in _RESERVED_TLDS}
    )


def iban_problems(payment_instructions: str) -> list[str]:
    """Each IBAN in the payment instructions that fails its checksum or format."""
    problems = []
    for candidate in ibans_in(payment_instructions):
        error = iban_error(candidate)
        if error:
            problems.append(
                f"RELANCE_PAYMENT_INSTRUCTIONS: the IBAN {candidate} is invalid ({error})"
            )
    return problems


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RELANCE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # RELANCE_ENVIRONMENT, or RELANCE_ENV for short.
    environment: Literal["development", "production"] = Field(
        default="development",
        validation_alias=AliasChoices("environment", "RELANCE_ENVIRONMENT", "RELANCE_ENV"),
    )
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
    creditor_name: str = DEMO_CREDITOR_NAME
    payment_instructions: str = DEMO_PAYMENT_INSTRUCTIONS
    playbooks_dir: Path | None = None
    default_playbook: str = "default"

    # --- Late-payment law -------------------------------------------------------------------
    # A CSV file with the columns of domain/rates.csv whose rows add or replace half-years
    # (e.g. the confirmed rates of a new semester), without a release. Checked at start: a bad
    # row stops it with the file, the line and the reason.
    rates_file: Path | None = None
    # The late-payment rate the creditor's terms of sale state: "3x_legal" (3 × the legal
    # interest rate) or a fixed percent ("12.50"). Unset: the legal default, ECB + 10 points.
    # An invoice handed over with its own `late_interest_rate` uses that one instead.
    contractual_interest_rate: str | None = None

    # Length of a day in seconds: real days in production, seconds in demos.
    day_seconds: float = Field(default=REAL_DAY_SECONDS, gt=0)

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Seconds an API call waits for the workflow to answer an Update or Query.
    rpc_timeout_seconds: float = Field(default=10.0, gt=0)

    # Worker capacity. Activities block (store, SendGrid) and run on a thread pool this large.
    worker_max_concurrent_activities: int = Field(default=16, ge=1)
    # Workflow tasks are CPU work under one interpreter lock: more in flight adds no speed on a
    # small machine, only memory; the SDK's own default.
    worker_max_concurrent_workflow_tasks: int = Field(default=100, ge=1)
    # Invoices kept in memory between their tasks. One that is not (evicted, or beyond this
    # many) replays its history on its next task: a payment on it costs a replay. Each cached
    # invoice costs memory (see README "Performance"), so this bounds the worker's RSS.
    worker_max_cached_workflows: int = Field(default=1000, ge=0)
    # Workflow code imports only pass-through modules, so the sandbox need not re-import any
    # module (the workflow's own included) for each invoice it loads: 40 % less memory per
    # cached invoice (README "Performance"). Its checks on non-deterministic calls still
    # apply. False restores the SDK's per-invoice re-import.
    worker_sandbox_passthrough_all: bool = True
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

    # --- The debtor portal ------------------------------------------------------------------
    # Signs every debtor's personal link; unset, messages carry no link and /portal answers 404.
    portal_secret: SecretStr | None = None
    # How long a personal link stays valid (rotating a debtor's portal key voids it sooner).
    portal_link_days: float = Field(default=60, gt=0)
    # Where debtors reach the API from (links in messages, payment return pages).
    public_url: str = "http://127.0.0.1:8000"
    # Signs the link to the legal file in the legal partner's hand-off message (HMAC-SHA256);
    # unset, the message carries no link (the file is then sent on request) and
    # /v1/legal-files answers 404. Links stay valid `dossier_link_days`.
    dossier_link_secret: SecretStr | None = None
    dossier_link_days: float = Field(default=30, gt=0)
    # Who the debtor can write to or call about their invoices.
    creditor_contact_email: str = "recouvrement@example.com"
    creditor_contact_phone: str | None = None
    # Bank transfer: the IBAN and BIC shown with a structured (RF, ISO 11649) reference.
    creditor_iban: str = "FR76 3000 6000 0112 3456 7890 189"
    creditor_bic: str | None = None
    # Attachments to a dispute: stored here (never served back), at most this many bytes.
    portal_upload_dir: Path | None = None
    portal_upload_max_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    # Requests per minute, per link and per client address.
    portal_rate_per_token: int = Field(default=60, gt=0)
    portal_rate_per_address: int = Field(default=120, gt=0)
    # Card and SEPA payments through Stripe: without a key the portal shows no pay button.
    stripe_api_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str = "https://api.stripe.com"
    stripe_webhook_tolerance_seconds: int = Field(default=300, gt=0)
    stripe_payment_methods: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["card", "sepa_debit"]
    )

    @field_validator("stripe_payment_methods", mode="before")
    @classmethod
    def _split_payment_methods(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check_portal(self) -> Settings:
        secret = self.portal_secret
        if secret and len(secret.get_secret_value()) < 32:
            raise ValueError("RELANCE_PORTAL_SECRET must be at least 32 characters")
        dossier = self.dossier_link_secret
        if dossier and len(dossier.get_secret_value()) < 32:
            raise ValueError("RELANCE_DOSSIER_LINK_SECRET must be at least 32 characters")
        if self.stripe_api_key and not self.stripe_webhook_secret:
            raise ValueError(
                "RELANCE_STRIPE_API_KEY needs RELANCE_STRIPE_WEBHOOK_SECRET: payments are "
                "recorded from Stripe's signed webhook only"
            )
        return self

    # --- Access, four-eyes, personal data ----------------------------------------------------
    # How long an Idempotency-Key is remembered, and after how long a request that claimed one
    # and never answered (a crash) is taken over by a retry.
    idempotency_ttl_hours: float = Field(default=24.0, gt=0)
    idempotency_lock_seconds: float = Field(default=60.0, gt=0)
    # A write-off of more than this outstanding amount (in the invoice's currency) waits for
    # a second finance person.
    write_off_approval_above: Decimal = Field(default=Decimal(5000), ge=0)
    # Contact data is pseudonymised this many days after the debtor's last invoice closed
    # (5 years: the limitation period between traders, Code de commerce L110-4).
    personal_data_retention_days: int = Field(default=5 * 365 + 1, ge=1)

    # --- Channels beyond email -----------------------------------------------------------
    # (`public_url` above is also the origin providers call back: Twilio signs the full URL of
    # each callback, so it must be the exact one Twilio posts to.)
    # SMS: Twilio when an account is set, else a file outbox (`<outbox>/sms`).
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    twilio_api_base: str = "https://api.twilio.com"
    # Letters: a print queue (`<outbox>/letters`: PDFs and a manifest for whoever posts them)
    # or Maileva's registered-mail API.
    postal_backend: Literal["print_queue", "maileva"] = "print_queue"
    maileva_api_base: str = "https://api.maileva.com"
    maileva_auth_url: str = (
        "https://connexion.maileva.com/auth/realms/services/protocol/openid-connect/token"
    )
    maileva_client_id: str | None = None
    maileva_client_secret: SecretStr | None = None
    maileva_username: str | None = None
    maileva_password: SecretStr | None = None
    # The HTTP Basic credentials Maileva's notification subscription sends to our webhook.
    maileva_webhook_user: str | None = None
    maileva_webhook_password: SecretStr | None = None
    # The creditor's postal address (the letterhead and the sender block), as JSON:
    # {"street": ["12 rue de la Paix"], "postal_code": "75002", "city": "Paris", "country": "FR"}
    creditor_address: dict[str, Any] | None = None

    @field_validator("creditor_address")
    @classmethod
    def _check_creditor_address(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # Refused at start, not on the first letter weeks later.
        if value is not None:
            from domain.postal import InvalidAddress, postal_address

            fields = {k: v for k, v in value.items() if k != "name"}
            try:
                postal_address(name=str(value.get("name") or "creditor"), **fields)
            except (InvalidAddress, TypeError) as exc:
                raise ValueError(
                    "RELANCE_CREDITOR_ADDRESS must be JSON with street (a list of lines), "
                    f"postal_code, city and country: {exc}"
                ) from exc
        return value

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

    @field_validator("rates_file")
    @classmethod
    def _check_rates_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            load_rates(value)  # RatesFileError (a ValueError) names the file and line
        return value

    @field_validator("contractual_interest_rate")
    @classmethod
    def _check_contractual_rate(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        clause = InterestClause.parse(value)
        if clause.legal_multiple is not None and clause.legal_multiple < 3:
            raise ValueError(
                "RELANCE_CONTRACTUAL_INTEREST_RATE may not be below 3 × the legal interest rate "
                f"(Code de commerce L441-10 II), got {value!r}"
            )
        return str(clause)

    def rate_table(self) -> RateTable:
        """The shipped rates with the operator's file applied (read from disk each call)."""
        return load_rates(self.rates_file)

    def install_rates(self) -> RateTable:
        """Read the rates once at start and make them the ones every computation uses."""
        table = self.rate_table()
        use_rates(table)
        return table

    @property
    def interest_clause(self) -> InterestClause | None:
        value = self.contractual_interest_rate
        return InterestClause.parse(value) if value else None

    @model_validator(mode="after")
    def _check_email_backend(self) -> Settings:
        if self.email_backend is None:
            self.email_backend = "sendgrid" if self.sendgrid_api_key else "outbox"
        if self.email_backend == "sendgrid" and not self.sendgrid_api_key:
            raise ValueError("RELANCE_EMAIL_BACKEND=sendgrid needs RELANCE_SENDGRID_API_KEY")
        return self

    @model_validator(mode="after")
    def _check_identity(self) -> Settings:
        problems = self._placeholders() if self.environment == "production" else []
        problems += iban_problems(self.payment_instructions)
        if problems:
            raise ValueError(
                "these settings still hold placeholder or invalid values: " + "; ".join(problems)
            )
        return self

    def _placeholders(self) -> list[str]:
        """Demo values still set: each with the variable that replaces it."""
        problems = [
            f"{variable}: {getattr(self, field)!r} is a placeholder address; set a real one"
            for variable, field in _IDENTITY_ADDRESSES.items()
            if is_placeholder_address(getattr(self, field))
        ]
        if self.creditor_name.strip().casefold() == DEMO_CREDITOR_NAME.casefold():
            problems.append(
                f"RELANCE_CREDITOR_NAME: {DEMO_CREDITOR_NAME!r} is the demo creditor; set the "
                "legal name debtors owe"
            )
        compact_demo = DEMO_IBAN.replace(" ", "")
        if compact_demo in self.payment_instructions.replace(" ", "").upper():
            problems.append(
                "RELANCE_PAYMENT_INSTRUCTIONS: it gives the demo IBAN; set the creditor's "
                "bank details"
            )
        return problems

    @property
    def twilio_status_callback_url(self) -> str | None:
        """Where Twilio reports a text's status: only a public https origin can be reached."""
        if not self.public_url.startswith("https://"):
            return None
        return f"{self.public_url.rstrip('/')}/v1/webhooks/twilio"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'relance.db'}"

    @property
    def resolved_outbox_dir(self) -> Path:
        return self.outbox_dir or self.data_dir / "outbox"

    @property
    def resolved_portal_upload_dir(self) -> Path:
        return self.portal_upload_dir or self.data_dir / "portal-uploads"

    @property
    def payments_enabled(self) -> bool:
        return bool(self.stripe_api_key and self.stripe_webhook_secret)

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
