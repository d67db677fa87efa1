"""Sending texts through Twilio's Messages API with the official `twilio` client.

The client builds every URL on https://api.twilio.com; `api_base` rewrites that origin (and only
that one) to another, which is how the tests run the real client against a loopback fake of the
API, and how a company may route through an egress proxy.

Twilio has no idempotency key for Messages: the store's reservation is what sends a text once.
The one ambiguous case is a request that timed out or got a 5xx after Twilio may have taken it:
the retry (`OutgoingSms.retry`) first lists the texts sent to the same number from the same
sender in the last day, and if one has the same body, takes it as this message instead of
sending it again. The body names the invoice, so two messages never share it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from requests.exceptions import RequestException
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from activities.email.message import PermanentSendError, SendError, TransientSendError
from activities.sms.message import OutgoingSms, SmsReceipt

TWILIO_ORIGIN = "https://api.twilio.com"
# Twilio error codes that say the number will not take texts from us: the debtor replied STOP
# (21610), the number is not a valid mobile (21211, 21614), or is blocked/landline (21612,
# 21408 region not enabled is ours to fix but no retry helps). They are final for this number.
UNREACHABLE_CODES = frozenset({21211, 21408, 21610, 21612, 21614})
# How far back a retry looks for its own earlier text.
_RECOVERY_WINDOW = timedelta(days=1)


class _RoutedHttpClient(TwilioHttpClient):
    """Twilio's own HTTP client, with its origin replaced (a loopback fake, a proxy)."""

    def __init__(self, api_base: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._api_base = api_base.rstrip("/")

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if url.startswith(TWILIO_ORIGIN):
            url = self._api_base + url[len(TWILIO_ORIGIN) :]
        return super().request(method, url, params, data, headers, auth, timeout, allow_redirects)


class UnreachableNumber(PermanentSendError):
    """Twilio refuses this number for good (STOP, not a mobile): switch channel."""


class TwilioSmsSender:
    name = "twilio"
    # A resend first looks for its own earlier text at Twilio (`OutgoingSms.retry`).
    idempotent = True

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None,
        api_base: str = TWILIO_ORIGIN,
        status_callback: str | None = None,
        messaging_service_sid: str | None = None,
        timeout: float = 10,
    ) -> None:
        if not account_sid or not auth_token:
            raise ValueError("TwilioSmsSender needs an account SID and an auth token")
        if not from_number and not messaging_service_sid:
            raise ValueError("TwilioSmsSender needs a sender number or a messaging service")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.account_sid = account_sid
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.status_callback = status_callback
        self._client = Client(
            account_sid, auth_token, http_client=_RoutedHttpClient(api_base, timeout)
        )
        # The client logs request URLs and bodies (the debtor's number, the text) at INFO; an
        # operator who really wants them sets this logger's level explicitly.
        logger = logging.getLogger("twilio.http_client")
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)

    def send(self, sms: OutgoingSms) -> SmsReceipt:
        if sms.retry:
            earlier = self._earlier(sms)
            if earlier is not None:
                return SmsReceipt(provider=self.name, provider_message_id=earlier, recovered=True)
        params: dict[str, Any] = {"to": sms.to, "body": sms.body}
        if self.messaging_service_sid:
            params["messaging_service_sid"] = self.messaging_service_sid
        else:
            params["from_"] = self.from_number
        if self.status_callback:
            params["status_callback"] = self.status_callback
        try:
            message = self._client.messages.create(**params)
        except TwilioRestException as exc:
            raise _from_rest_error(exc) from exc
        except (RequestException, TwilioException, OSError) as exc:
            # A timeout is ambiguous (Twilio may have queued it): the retry looks before sending.
            raise TransientSendError(f"Twilio unreachable: {exc!r}") from exc
        return SmsReceipt(provider=self.name, provider_message_id=message.sid)

    def _earlier(self, sms: OutgoingSms) -> str | None:
        since = datetime.now(UTC) - _RECOVERY_WINDOW
        filters: dict[str, Any] = {"to": sms.to, "date_sent_after": since, "limit": 50}
        if self.from_number:
            filters["from_"] = self.from_number
        try:
            for message in self._client.messages.list(**filters):
                if message.body == sms.body and message.status not in ("failed", "canceled"):
                    return message.sid
        except TwilioRestException as exc:
            raise _from_rest_error(exc) from exc
        except (RequestException, TwilioException, OSError) as exc:
            raise TransientSendError(f"Twilio unreachable: {exc!r}") from exc
        return None


def _from_rest_error(exc: TwilioRestException) -> SendError:
    status = int(exc.status)
    detail = f"{exc.msg} (Twilio error {exc.code})" if exc.code else str(exc.msg)
    if status == 429 or status >= 500:
        return TransientSendError(f"Twilio could not take the text now: {detail}", status)
    if exc.code in UNREACHABLE_CODES:
        return UnreachableNumber(f"Twilio refuses the number: {detail}", status)
    return PermanentSendError(f"Twilio rejected the text: {detail}", status)
