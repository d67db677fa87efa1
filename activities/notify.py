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
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from config import Settings
from contracts.backoffice import BackofficeEvent, BackofficeEventKind, backoffice_event_id
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


HttpClientFactory = Callable[[], httpx.Client]


@dataclass
class Attempt:
    """Where an event stands after posting it to every URL not yet done with it."""

    delivered: list[str]
    rejected: dict[str, str]
    # "Not now" answers of this attempt: scheme and host, with the reason.
    unavailable: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return not self.unavailable


class BackofficePoster:
    """Signs an event and POSTs it to every configured URL. Used by the outbox's sender and,
    for invoices on the first rules' edition, by the `notify_backoffice` activity."""

    def __init__(
        self, settings: Settings, http_client_factory: HttpClientFactory | None = None
    ) -> None:
        self.urls = list(settings.backoffice_webhook_urls)
        secret = settings.backoffice_webhook_secret
        self._secret = secret.get_secret_value() if secret else ""
        timeout = settings.backoffice_webhook_timeout_seconds
        # No redirects: a signed POST is not replayed to wherever a 3xx points.
        self._client_factory = http_client_factory or (
            lambda: httpx.Client(timeout=timeout, follow_redirects=False)
        )

    def post(
        self,
        event: BackofficeEvent,
        delivered: list[str],
        rejected: dict[str, str],
        after_each: Callable[[Attempt], None] = lambda _: None,
    ) -> Attempt:
        """POST `event` to the URLs that neither took nor rejected it in an earlier attempt."""
        attempt = Attempt(delivered=list(delivered), rejected=dict(rejected))
        body = event.model_dump_json().encode("utf-8")
        with self._client_factory() as client:
            for url in self.urls:
                if url in attempt.delivered or url in attempt.rejected:
                    continue
                outcome = self._post(client, url, event, body)
                if outcome is None:
                    attempt.delivered.append(url)
                elif outcome.retryable:
                    attempt.unavailable.append(f"{_where(url)}: {outcome.reason}")
                else:
                    attempt.rejected[url] = outcome.reason
                after_each(attempt)
        return attempt

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


class NotifyActivities:
    def __init__(
        self, settings: Settings, http_client_factory: HttpClientFactory | None = None
    ) -> None:
        self._poster = BackofficePoster(settings, http_client_factory)

    @activity.defn(name="notify_backoffice")
    def notify_backoffice(self, event: BackofficeEvent) -> int:
        """POST `event` to every URL; the number of URLs that took it (0 when none is set)."""
        if not self._poster.urls:
            return 0
        delivered, rejected = _earlier_outcomes()
        attempt = self._poster.post(event, delivered, rejected, after_each=_remember)
        if attempt.unavailable:
            raise ApplicationError(
                f"back-office webhook unavailable for event {event.event_id}: "
                + "; ".join(attempt.unavailable),
                type=WEBHOOK_UNAVAILABLE,
            )
        if attempt.rejected:
            raise ApplicationError(
                f"back-office webhook rejected event {event.event_id}: {rejections(attempt)}",
                type=WEBHOOK_REJECTED,
                non_retryable=True,
            )
        return len(attempt.delivered)


def rejections(attempt: Attempt) -> str:
    return "; ".join(f"{_where(url)}: {reason}" for url, reason in attempt.rejected.items())


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


def _remember(attempt: Attempt) -> None:
    if activity.in_activity():
        activity.heartbeat({"delivered": attempt.delivered, "rejected": attempt.rejected})
