"""A local stand-in for SendGrid's v3 Mail Send API, for tests that run the real `sendgrid` client.

It serves `POST /v3/mail/send` on 127.0.0.1 the way SendGrid documents it: Bearer auth (401
otherwise), a validated JSON body (400 with SendGrid's `{"errors": [{message, field, help}]}`
naming each bad field), 202 with an empty body and an `X-Message-Id` header on success. Tests
point `Settings.sendgrid_host` (or `SendGridSender(host=...)`) at `fake.url`, read what arrived
in `fake.messages`, and script outages with `fail_next` and `delay_next`, or a flaky SendGrid
with `fail_randomly` and `delay_randomly` (a seeded share of requests answered 5xx or 429, or
held a while: the chaos tests).

What happens after acceptance (delivery, bounces, events) is out of scope: SendGrid reports those
asynchronously, never in the HTTP answer.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

MAIL_SEND_PATH = "/v3/mail/send"

# Plausible rather than RFC 5321-complete, like SendGrid's own check: one "@", something on
# each side, a dot in the domain, no spaces.
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

_DEFAULT_FAILURE_MESSAGES = {
    400: "Bad Request",
    401: "The provided authorization grant is invalid, expired, or revoked",
    403: "The from address does not match a verified Sender Identity. Mail cannot be sent "
    "until this error is resolved.",
    404: "resource not found",
    413: "Payload Too Large",
    429: "too many requests",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable",
}

_JSON_TYPES = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    list: "array",
    dict: "object",
    type(None): "null",
}


def _error(message: str, field: str | None = None) -> dict[str, Any]:
    return {"message": message, "field": field, "help": None}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class ReceivedMessage:
    """One accepted request: SendGrid's JSON body as sent, and the id the fake answered with."""

    message_id: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    # When the fake accepted it (time.time()), to compare with what the caller saw happen.
    received_at: float = field(default_factory=time.time)

    @property
    def personalization(self) -> dict[str, Any]:
        first: dict[str, Any] = self.body["personalizations"][0]
        return first

    @property
    def to(self) -> list[dict[str, str]]:
        recipients: list[dict[str, str]] = self.personalization["to"]
        return recipients

    @property
    def to_emails(self) -> list[str]:
        return [recipient["email"] for recipient in self.to]

    @property
    def subject(self) -> str | None:
        # A personalization's subject overrides the message's, as on SendGrid.
        subject: str | None = self.personalization.get("subject", self.body.get("subject"))
        return subject

    @property
    def contents(self) -> dict[str, str]:
        """Body parts by MIME type: {"text/plain": ..., "text/html": ...}."""
        return {part["type"]: part["value"] for part in self.body.get("content", [])}

    @property
    def custom_args(self) -> dict[str, str]:
        """Message-level custom args overlaid with the first personalization's, as SendGrid
        merges them into the events it reports."""
        return {**self.body.get("custom_args", {}), **self.personalization.get("custom_args", {})}

    @property
    def categories(self) -> list[str]:
        categories: list[str] = self.body.get("categories", [])
        return categories


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def errors(cls, status: int, errors: list[dict[str, Any]]) -> _Reply:
        body = json.dumps({"errors": errors}).encode()
        return cls(status, body, {"Content-Type": "application/json"})


class FakeSendGrid:
    """`with FakeSendGrid(api_key="SG.test") as sg:` serves on `sg.url` until the block ends."""

    def __init__(self, api_key: str = "SG.test") -> None:
        self.api_key = api_key
        self._lock = threading.Lock()
        self._messages: list[ReceivedMessage] = []
        self._requests_count = 0
        self._failures: deque[tuple[int, str | None]] = deque()
        self._delays: deque[float] = deque()
        self._random_failures: tuple[float, tuple[int, ...], random.Random] | None = None
        self._random_delays: tuple[float, float, random.Random] | None = None
        self._injected = 0
        # Set on stop, so a request parked in delay_next returns at once instead of holding up
        # the test run.
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("FakeSendGrid is already running")
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-sendgrid",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeSendGrid is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL to give the client as its host; the client appends /v3/mail/send."""
        return f"http://127.0.0.1:{self.port}"

    # -- what tests read -----------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        """A snapshot of the accepted messages, oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def requests_count(self) -> int:
        """Every request received, including rejected and injected-failure ones."""
        with self._lock:
            return self._requests_count

    # -- what tests script ---------------------------------------------------------------------

    def fail_next(self, status: int, times: int = 1, message: str | None = None) -> None:
        """Answer the next `times` requests with `status` and a SendGrid-style error body,
        without recording them. Queued failures are used in the order they were queued."""
        if not 400 <= status <= 599:
            raise ValueError("fail_next takes a 4xx or 5xx status")
        with self._lock:
            self._failures.extend([(status, message)] * times)

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """Hold the next `times` requests for `seconds` before handling them as usual: a slow
        SendGrid that may still accept a message after the client has given up."""
        with self._lock:
            self._delays.extend([seconds] * times)

    @property
    def failures_injected(self) -> int:
        """Requests answered with a scripted or random failure."""
        with self._lock:
            return self._injected

    def fail_randomly(
        self, ratio: float, statuses: tuple[int, ...] = (500, 502, 503, 429), seed: int = 0
    ) -> None:
        """From now on, answer about `ratio` of the requests (those `fail_next` does not
        script) with one of `statuses`, drawn from a generator seeded with `seed`, without
        recording them. `ratio=0` turns it off."""
        if not 0 <= ratio < 1:
            raise ValueError("fail_randomly takes a ratio in [0, 1)")
        if any(not 400 <= status <= 599 for status in statuses):
            raise ValueError("fail_randomly takes 4xx or 5xx statuses")
        with self._lock:
            self._random_failures = (ratio, statuses, random.Random(seed)) if ratio else None

    def delay_randomly(self, ratio: float, seconds: float, seed: int = 0) -> None:
        """From now on, hold about `ratio` of the requests (those `delay_next` does not script)
        for `seconds` before handling them: a SendGrid slow now and then. `ratio=0` turns it
        off."""
        if not 0 <= ratio < 1 or seconds < 0:
            raise ValueError("delay_randomly takes a ratio in [0, 1) and seconds >= 0")
        with self._lock:
            self._random_delays = (ratio, seconds, random.Random(seed)) if ratio else None

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()
            self._failures.clear()
            self._delays.clear()
            self._requests_count = 0
            self._random_failures = None
            self._random_delays = None
            self._injected = 0

    # -- the API -------------------------------------------------------------------------------

    def _handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> _Reply:
        with self._lock:
            self._requests_count += 1
            delay = self._delays.popleft() if self._delays else 0.0
            if not delay and self._random_delays is not None:
                ratio, seconds, draw = self._random_delays
                delay = seconds if draw.random() < ratio else 0.0
            failure = self._failures.popleft() if self._failures else None
            if failure is None and self._random_failures is not None:
                ratio, statuses, draw = self._random_failures
                if draw.random() < ratio:
                    failure = (draw.choice(statuses), None)
            if failure is not None:
                self._injected += 1
        if delay:
            self._stopping.wait(delay)
        if failure is not None:
            status, message = failure
            text = message or _DEFAULT_FAILURE_MESSAGES.get(status, "error")
            return _Reply.errors(status, [_error(text)])

        if urlsplit(path).path.rstrip("/") != MAIL_SEND_PATH:
            return _Reply.errors(404, [_error("resource not found")])
        if method != "POST":
            return _Reply.errors(405, [_error("method not allowed")])

        authorization = headers.get("authorization", "")
        if not authorization:
            return _Reply.errors(401, [_error("authorization required")])
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token, self.api_key):
            return _Reply.errors(401, [_error(_DEFAULT_FAILURE_MESSAGES[401])])

        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return _Reply.errors(400, [_error("Content-Type should be application/json.")])
        try:
            body = json.loads(raw)
        except ValueError:
            return _Reply.errors(400, [_error("Bad Request")])
        if not isinstance(body, dict):
            return _Reply.errors(400, [_error("Bad Request")])

        errors = validate_mail_send(body)
        if errors:
            return _Reply.errors(400, errors)

        # SendGrid's ids are 22 url-safe characters.
        message_id = secrets.token_urlsafe(16)[:22]
        kept_headers = {k: v for k, v in headers.items() if k != "authorization"}
        with self._lock:
            self._messages.append(ReceivedMessage(message_id, body, kept_headers))
        return _Reply(202, b"", {"X-Message-Id": message_id})


def validate_mail_send(body: dict[str, Any]) -> list[dict[str, Any]]:
    """SendGrid's 400-level checks on a Mail Send body, as a list of its error objects."""
    errors: list[dict[str, Any]] = []
    uses_template = isinstance(body.get("template_id"), str) and bool(body["template_id"])

    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(
            _error(
                "The personalizations field is required and must have at least one "
                "personalization.",
                "personalizations",
            )
        )
        personalizations = []
    every_personalization_has_subject = bool(personalizations)
    for index, personalization in enumerate(personalizations):
        where = f"personalizations.{index}"
        if not isinstance(personalization, dict):
            errors.append(_error("Invalid type. Expected: object.", where))
            every_personalization_has_subject = False
            continue
        recipients = personalization.get("to")
        if not isinstance(recipients, list) or not recipients:
            errors.append(
                _error(
                    "The to array is required for all personalization objects, and must have "
                    "at least one email object with a valid email address.",
                    f"{where}.to",
                )
            )
            recipients = []
        for position, recipient in enumerate(recipients):
            address = recipient.get("email") if isinstance(recipient, dict) else None
            if not isinstance(address, str) or not _ADDRESS.match(address):
                errors.append(
                    _error("Does not contain a valid address.", f"{where}.to.{position}.email")
                )
        subject = personalization.get("subject")
        if not (isinstance(subject, str) and subject):
            every_personalization_has_subject = False
        errors.extend(
            _custom_args_errors(personalization.get("custom_args"), f"{where}.custom_args")
        )

    sender = body.get("from")
    if not isinstance(sender, dict):
        errors.append(
            _error(
                "The from object must be provided for every email send. It is an object that "
                "requires the email parameter, but may also contain a name parameter.  e.g. "
                '{"email" : "example@example.com"}  or {"email" : "example@example.com", '
                '"name" : "Example Recipient"}.',
                "from",
            )
        )
    elif not isinstance(sender.get("email"), str) or not _ADDRESS.match(sender["email"]):
        errors.append(_error("The from email does not contain a valid address.", "from.email"))

    subject = body.get("subject")
    has_subject = isinstance(subject, str) and bool(subject)
    if not (has_subject or every_personalization_has_subject or uses_template):
        errors.append(
            _error(
                "The subject is required. You can get around this requirement if you use a "
                "template with a subject defined or if every personalization has a subject "
                "defined.",
                "subject",
            )
        )

    errors.extend(_content_errors(body.get("content"), required=not uses_template))
    errors.extend(_custom_args_errors(body.get("custom_args"), "custom_args"))

    categories = body.get("categories")
    if categories is not None:
        if not isinstance(categories, list):
            errors.append(
                _error(
                    f"Invalid type. Expected: array, given: {_json_type(categories)}.", "categories"
                )
            )
        else:
            for index, category in enumerate(categories):
                if not isinstance(category, str):
                    errors.append(
                        _error(
                            f"Invalid type. Expected: string, given: {_json_type(category)}.",
                            f"categories.{index}",
                        )
                    )
    return errors


def _content_errors(content: object, *, required: bool) -> list[dict[str, Any]]:
    if content is None or content == []:
        if not required:
            return []
        return [
            _error(
                "Unless a valid template_id is provided, the content parameter is required. "
                "There must be at least one defined content block. We typically suggest both "
                "text/plain and text/html blocks are included, but only one block is required.",
                "content",
            )
        ]
    if not isinstance(content, list):
        return [_error(f"Invalid type. Expected: array, given: {_json_type(content)}.", "content")]
    errors: list[dict[str, Any]] = []
    types: list[str] = []
    for index, part in enumerate(content):
        if not isinstance(part, dict):
            errors.append(_error("Invalid type. Expected: object.", f"content.{index}"))
            continue
        mime_type = part.get("type")
        if not isinstance(mime_type, str) or not mime_type:
            errors.append(
                _error(
                    "The content type must be a string at least one character in length.",
                    f"content.{index}.type",
                )
            )
        elif ";" in mime_type or "\r" in mime_type or "\n" in mime_type:
            errors.append(
                _error(
                    "The content type cannot contain ';', or CRLF characters.",
                    f"content.{index}.type",
                )
            )
        else:
            types.append(mime_type)
        value = part.get("value")
        if not isinstance(value, str) or not value:
            errors.append(
                _error(
                    "The content value must be a string at least one character in length.",
                    f"content.{index}.value",
                )
            )
    # SendGrid insists on this order: plain text first, then HTML, then anything else.
    if "text/plain" in types and types[0] != "text/plain":
        errors.append(
            _error(
                "If present, text/plain content must be first, followed by text/html, followed "
                "by any other content.",
                "content",
            )
        )
    return errors


def _custom_args_errors(custom_args: object, where: str) -> list[dict[str, Any]]:
    if custom_args is None:
        return []
    if not isinstance(custom_args, dict):
        return [_error(f"Invalid type. Expected: object, given: {_json_type(custom_args)}.", where)]
    return [
        _error(f"Invalid type. Expected: string, given: {_json_type(value)}.", f"{where}.{key}")
        for key, value in custom_args.items()
        if not isinstance(value, str)
    ]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeSendGrid) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout tests) leaves a broken pipe behind: expected, not news.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "nginx"
    sys_version = ""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        # Read the whole body even when refusing the request: closing a socket with unread data
        # makes the client see a connection reset instead of our answer.
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.fake._handle(self.command, self.path, headers, raw)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if reply.body:
            self.wfile.write(reply.body)

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: pytest shows the test's own output, not an access log.
        pass
