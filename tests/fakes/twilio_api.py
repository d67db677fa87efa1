"""A loopback stand-in for Twilio's Messages API, for tests that run the real `twilio` client.

Serves what the client calls: `POST /2010-04-01/Accounts/{sid}/Messages.json` (form-encoded
To, From or MessagingServiceSid, Body, StatusCallback; HTTP Basic auth with the account SID and
auth token, 401 otherwise; 201 with the message resource) and `GET .../Messages.json` (filtered
by To, From and DateSent>). Errors carry Twilio's JSON (`code`, `message`, `status`).

Faults are scripted per request: `fail_next(status, code)` answers an error, `accept_then_hang`
accepts the message and then never answers (the client times out although Twilio has it), and
`hang_next` never answers before accepting. `stopped` numbers answer 21610 like a STOP'd one.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.loopback import LoopbackApi, json_reply


@dataclass
class Fault:
    kind: str  # "status", "hang", "accept_then_hang"
    status: int = 500
    code: int | None = None
    seconds: float = 0


@dataclass
class FakeTwilio(LoopbackApi):
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "test-auth-token"
    messages: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    stopped: set[str] = field(default_factory=set)
    _faults: deque[Fault] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, status: int, code: int | None = None, times: int = 1) -> None:
        for _ in range(times):
            self._faults.append(Fault("status", status, code))

    def hang_next(self, seconds: float) -> None:
        self._faults.append(Fault("hang", seconds=seconds))

    def accept_then_hang(self, seconds: float) -> None:
        self._faults.append(Fault("accept_then_hang", seconds=seconds))

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        with self._lock:
            self.requests += 1
            fault = self._faults.popleft() if self._faults else None
        path = urlsplit(request.path).path
        expected = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        if not self._authorised(request.headers.get("Authorization", "")):
            return self._error(request, 401, 20003, "Authenticate")
        if path != expected:
            return self._error(request, 404, 20404, f"The requested resource {path} was not found")
        if fault is not None and fault.kind == "status":
            return self._error(request, fault.status, fault.code, "scripted failure")
        if fault is not None and fault.kind == "hang":
            time.sleep(fault.seconds)
            return self._error(request, 503, None, "too late")
        if method == "GET":
            return self._list(request)
        length = int(request.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(request.rfile.read(length).decode()).items()}
        to, body = form.get("To"), form.get("Body")
        if not to or not body:
            return self._error(request, 400, 21602, "Message body and To are required")
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return self._error(request, 400, 21603, "A 'From' phone number is required.")
        if to in self.stopped:
            return self._error(request, 400, 21610, "Attempt to send to unsubscribed recipient")
        message = {
            "sid": "SM" + secrets.token_hex(16),
            "account_sid": self.account_sid,
            "to": to,
            "from": form.get("From"),
            "body": body,
            "status": "queued",
            "num_segments": "1",
            "status_callback": form.get("StatusCallback"),
            "date_created": format_datetime(datetime.now(UTC), usegmt=True),
            "date_sent": format_datetime(datetime.now(UTC), usegmt=True),
            "error_code": None,
            "error_message": None,
        }
        with self._lock:
            self.messages.append(message)
        if fault is not None and fault.kind == "accept_then_hang":
            time.sleep(fault.seconds)
        json_reply(request, 201, message)

    def _list(self, request: BaseHTTPRequestHandler) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.path).query).items()}
        found = [
            m
            for m in self.messages
            if (not query.get("To") or m["to"] == query["To"])
            and (not query.get("From") or m["from"] == query["From"])
        ]
        json_reply(
            request,
            200,
            {
                "messages": list(reversed(found)),
                "page": 0,
                "page_size": 50,
                "next_page_uri": None,
                "uri": request.path,
            },
        )

    def _authorised(self, header: str) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return header == f"Basic {expected}"

    def _error(
        self, request: BaseHTTPRequestHandler, status: int, code: int | None, message: str
    ) -> None:
        json_reply(
            request,
            status,
            {"code": code, "message": message, "more_info": "", "status": status},
        )
