"""Sending through SendGrid's v3 Mail Send API with the official `sendgrid` client.

The client (and `python_http_client` under it) is thin: urllib, no retries, no timeout unless one
is set, errors as `HTTPError` subclasses carrying SendGrid's JSON body. This module adds the
timeout and sorts every failure into permanent or transient; Temporal does the retrying.
"""

from __future__ import annotations

import http.client
import json
import logging

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Category, CustomArg, From, Mail, To
from sendgrid.helpers.mail.exceptions import SendGridException

from activities.email.message import (
    OutgoingEmail,
    PermanentSendError,
    SendError,
    SendReceipt,
    TransientSendError,
)

# 408 and 429 say "not now"; 5xx say "not our fault". Every other 4xx rejects this very request.
_RETRYABLE_STATUS = frozenset({408, 429})


def _keep_credentials_out_of_debug_logs() -> None:
    # python_http_client logs every request's headers (the Bearer API key included) and payload
    # (addresses, bodies) at DEBUG. A root logger at DEBUG would leak both; an operator who really
    # wants them can still set this logger's level explicitly.
    logger = logging.getLogger("python_http_client.client")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


class SendGridSender:
    name = "sendgrid"

    def __init__(self, api_key: str, host: str, from_email: str, timeout: float = 10) -> None:
        if not api_key:
            # SendGridAPIClient silently falls back to $SENDGRID_API_KEY on an empty key.
            raise ValueError("SendGridSender needs an API key")
        if not host.startswith(("http://", "https://")):
            # urllib would only object at the first send, with "unknown url type".
            raise ValueError(f"SendGrid host must be an http(s) URL, got {host!r}")
        if timeout <= 0:
            # python_http_client treats a falsy timeout as "none": it would wait forever.
            raise ValueError("timeout must be positive")
        self._api_key = api_key
        # The client appends "/v3/mail/send" to the host verbatim; a trailing slash would double it.
        self.host = host.rstrip("/")
        self.from_email = from_email
        self.timeout = timeout
        _keep_credentials_out_of_debug_logs()

    def send(self, email: OutgoingEmail) -> SendReceipt:
        try:
            mail = self._mail(email)
        except SendGridException as exc:
            # The helper refuses a body that starts like a SendGrid API key ("SG.x.y").
            detail = getattr(exc, "message", None) or repr(exc)
            raise PermanentSendError(f"SendGrid client refused the message: {detail}") from exc
        client = self._client()
        try:
            response = client.send(mail)
        except HTTPError as exc:
            raise _from_http_error(exc) from exc
        except (http.client.HTTPException, OSError) as exc:
            # OSError covers urllib's URLError (refused, DNS, TLS), TimeoutError and
            # ConnectionError; HTTPException a connection cut mid-response. A timeout is
            # ambiguous (SendGrid may have accepted the message), but retrying is the lesser evil.
            raise TransientSendError(f"SendGrid unreachable at {self.host}: {exc!r}") from exc
        return SendReceipt(
            provider=self.name, provider_message_id=response.headers.get("X-Message-Id")
        )

    def _client(self) -> SendGridAPIClient:
        # A client per send: python_http_client mutates its shared header dict on the first POST,
        # which is not safe while other worker threads read it; building one costs next to nothing.
        client = SendGridAPIClient(api_key=self._api_key, host=self.host)
        # SendGridAPIClient takes no timeout and its default is None (block forever). The inner
        # python_http_client.Client copies this attribute into every request it builds; urllib
        # applies it to the connect and to each socket read.
        client.client.timeout = self.timeout
        return client

    def _mail(self, email: OutgoingEmail) -> Mail:
        mail = Mail(
            from_email=From(self.from_email),
            subject=email.subject,
            plain_text_content=email.text,
            html_content=email.html,
        )
        # Set the fields rather than To(email): without a name the helper parses the string as
        # "Name <address>" and, if it finds no "@", sends the address as the recipient's *name*.
        recipient = To()
        recipient.email = email.to_email
        recipient.name = email.to_name or None
        mail.add_to(recipient)
        for key, value in email.custom_args.items():
            mail.add_custom_arg(CustomArg(key, value))
        # The helper prepends each category; adding them reversed keeps the caller's order.
        for category in reversed(email.categories):
            mail.add_category(Category(category))
        return mail


def _from_http_error(exc: HTTPError) -> SendError:
    status = int(exc.status_code)
    detail = _error_messages(exc.body) or str(exc.reason)
    if status in _RETRYABLE_STATUS or status >= 500:
        return TransientSendError(f"SendGrid could not take the message now: {detail}", status)
    return PermanentSendError(f"SendGrid rejected the message: {detail}", status)


def _error_messages(body: bytes | str | None) -> str:
    """SendGrid's `{"errors": [{"message", "field", "help"}]}` as one line; "" if it isn't that."""
    try:
        errors = json.loads(body or b"")["errors"]
        parts = []
        for error in errors:
            field = error.get("field")
            message = str(error.get("message", "")).strip()
            parts.append(f"{message} (field {field})" if field else message)
    except (ValueError, TypeError, KeyError, AttributeError):
        return ""
    return "; ".join(part for part in parts if part)
