"""Signed notifications to the back office: so an ERP can put a customer on credit hold.

The workflow calls `notify_backoffice` when something the back office acts on happens (a stage
change, a dispute, a plan, a hand-off, the end of the collection). The activity POSTs the event
as JSON to every configured URL (RELANCE_BACKOFFICE_WEBHOOK_URLS), signed with
RELANCE_BACKOFFICE_WEBHOOK_SECRET:

    POST <url>
    Content-Type: application/json
    Relance-Event-Id: <event_id>
    Relance-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of f"{t}." + raw body>

How a receiver verifies it is in `domain.signing` (and README, "Back-office webhooks"). The
signature is made at each attempt, so a notification retried hours later still passes a
receiver's freshness check; the event id stays the same, which is what receivers dedupe on.

Outcomes per URL: a 2xx is done. 5xx, 408, 429, a timeout or a refused connection: "not now",
the activity raises a retryable error and Temporal retries it with backoff, durably. Any other
status (4xx, a redirect) rejects this very request and retrying cannot help: once every URL has
been tried, the activity fails with the non-retryable `WebhookRejected`. URLs that answered in
an earlier attempt (2xx or a rejection) are remembered in the heartbeat details and not posted
again (best effort: receivers must still dedupe), so a receiver that took the event is not made
to take it again and again while another one is down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from config import Settings
from domain.money import Money
from domain.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign, verify_signature

__all__ = [
    "WEBHOOK_REJECTED",
    "WEBHOOK_UNAVAILABLE",
    "BackofficeEvent",
    "BackofficeEventKind",
    "NotifyActivities",
    "backoffice_event_id",
    "verify_signature",
]

log = logging.getLogger("relance.notify")

# ApplicationError types the activity raises; the first is non-retryable.
WEBHOOK_REJECTED = "WebhookRejected"
WEBHOOK_UNAVAILABLE = "WebhookUnavailable"

# "Not now" statuses: retrying later may succeed. Every other non-2xx rejects the request itself.
_RETRYABLE_STATUS = frozenset({408, 429})


class BackofficeEventKind(StrEnum):
    STAGE_CHANGED = "stage_changed"
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_RESOLVED = "dispute_resolved"
    PLAN_PROPOSED = "plan_proposed"
    PLAN_ACTIVATED = "plan_activated"
    PLAN_REJECTED = "plan_rejected"
    PLAN_BROKEN = "plan_broken"
    PLAN_COMPLETED = "plan_completed"
    PROMISE_RECORDED = "promise_recorded"
    PROMISE_BROKEN = "promise_broken"
    PAUSED = "paused"
    RESUMED = "resumed"
    EMAIL_UNDELIVERABLE = "email_undeliverable"
    HANDED_OFF = "handed_off"
    # Paid after its due date: sent once the late-payment costs are known, with them in data.
    PAID = "paid"
    CANCELLED = "cancelled"
    WRITTEN_OFF = "written_off"
    # Paid after its due date: the interest and the 40 € it still owes (data: the amounts).
    LATE_PAYMENT_COSTS = "late_payment_costs"
    # A text, letter or call did not reach the debtor: the playbook's fallback took over.
    CONTACT_UNDELIVERABLE = "contact_undeliverable"
    # Rules 2, a handed-off invoice: the legal partner's file was updated (data: `status`,
    # `partner_reference`, `costs`, `currency`), and the partner settled or abandoned it, which
    # ends the collection (same data).
    LEGAL_UPDATED = "legal_updated"
    LEGAL_SETTLED = "legal_settled"
    LEGAL_ABANDONED = "legal_abandoned"


def backoffice_event_id(invoice_number: str, kind: BackofficeEventKind, key: str | int) -> str:
    """The stable id `<invoice>:<kind>:<revision or key>` receivers dedupe on.

    Pure and deterministic, so a workflow may call it: the same fact always gets the same id,
    in a retry, a replay or after continue-as-new.
    """
    return f"{invoice_number}:{kind.value}:{key}"


class BackofficeEvent(BaseModel):
    """What the back office receives, as the JSON body (amounts are decimal strings)."""

    event_id: str = Field(min_length=1, max_length=200)
    kind: BackofficeEventKind
    invoice_number: str
    # The back office's own opaque id: no personal data goes out in notifications.
    debtor_id: str
    stage: str
    outstanding: Money
    occurred_at: datetime
    # Kind-specific details (dispute id, plan id, who decided...), flat strings for any ERP.
    data: dict[str, str] = Field(default_factory=dict)


HttpClientFactory = Callable[[], httpx.Client]


class NotifyActivities:
    def __init__(
        self, settings: Settings, http_client_factory: HttpClientFactory | None = None
    ) -> None:
        self._urls = list(settings.backoffice_webhook_urls)
        secret = settings.backoffice_webhook_secret
        self._secret = secret.get_secret_value() if secret else ""
        timeout = settings.backoffice_webhook_timeout_seconds
        # No redirects: a signed POST is not replayed to wherever a 3xx points.
        self._client_factory = http_client_factory or (
            lambda: httpx.Client(timeout=timeout, follow_redirects=False)
        )

    @activity.defn(name="notify_backoffice")
    def notify_backoffice(self, event: BackofficeEvent) -> int:
        """POST `event` to every URL; the number of URLs that took it (0 when none is set)."""
        if not self._urls:
            return 0
        delivered, rejected = _earlier_outcomes()
        body = event.model_dump_json().encode("utf-8")
        unavailable: list[str] = []
        with self._client_factory() as client:
            for url in self._urls:
                if url in delivered or url in rejected:
                    continue
                outcome = self._post(client, url, event, body)
                if outcome is None:
                    delivered.append(url)
                elif outcome.retryable:
                    unavailable.append(f"{_where(url)}: {outcome.reason}")
                else:
                    rejected[url] = outcome.reason
                _remember(delivered, rejected)
        if unavailable:
            raise ApplicationError(
                f"back-office webhook unavailable for event {event.event_id}: "
                + "; ".join(unavailable),
                type=WEBHOOK_UNAVAILABLE,
            )
        if rejected:
            reasons = "; ".join(f"{_where(url)}: {reason}" for url, reason in rejected.items())
            raise ApplicationError(
                f"back-office webhook rejected event {event.event_id}: {reasons}",
                type=WEBHOOK_REJECTED,
                non_retryable=True,
            )
        return len(delivered)

    def _post(
        self, client: httpx.Client, url: str, event: BackofficeEvent, body: bytes
    ) -> _Failure | None:
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event.event_id,
            SIGNATURE_HEADER: sign(self._secret, body, int(time.time())),
            "User-Agent": "Relance-Webhooks/1",
        }
        try:
            response = client.post(url, content=body, headers=headers)
        except httpx.TransportError as exc:
            # Timeouts, refused connections, resets: the receiver may be back later. (A timeout
            # is ambiguous, it may have taken the event; the event id makes a repeat harmless.)
            return _Failure(type(exc).__name__, retryable=True)
        status = response.status_code
        if 200 <= status < 300:
            log.info("event %s sent to %s (%d)", event.event_id, _where(url), status)
            return None
        retryable = status >= 500 or status in _RETRYABLE_STATUS
        log.warning(
            "event %s: %s answered %d (%s)",
            event.event_id,
            _where(url),
            status,
            "will retry" if retryable else "rejected",
        )
        return _Failure(f"HTTP {status}", retryable=retryable)


@dataclass(frozen=True)
class _Failure:
    reason: str
    retryable: bool


def _where(url: str) -> str:
    # Scheme and host only: a URL's path or query may hold a receiver's token.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _earlier_outcomes() -> tuple[list[str], dict[str, str]]:
    """URLs an earlier attempt of this activity delivered to, and those that rejected it."""
    if not activity.in_activity():
        return [], {}
    details = activity.info().heartbeat_details
    if not details or not isinstance(details[0], dict):
        return [], {}
    last = details[0]
    delivered = [str(url) for url in last.get("delivered", [])]
    rejected = {str(url): str(reason) for url, reason in last.get("rejected", {}).items()}
    return delivered, rejected


def _remember(delivered: list[str], rejected: dict[str, str]) -> None:
    if activity.in_activity():
        activity.heartbeat({"delivered": delivered, "rejected": rejected})
