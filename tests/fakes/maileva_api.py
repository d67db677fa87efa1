"""A loopback stand-in for Maileva's registered-mail API (registered_mail/v2) and its sign-in.

Serves the OAuth2 password grant (`POST /token`, HTTP Basic client credentials) and the calls a
sending needs: create (DRAFT), documents, recipients, submit (which gives the recipient its
registered number: only then is a letter "posted", counted in `posted`), and reads of each.
Faults are scripted per request: `fail_next(status)`, `hang_next(seconds)` (no answer before
acting) and `act_then_hang(seconds)` (acts, then answers too late).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.fakes.loopback import LoopbackApi, json_reply

API = "/registered_mail/v2"


@dataclass
class FakeMaileva(LoopbackApi):
    client_id: str = "client"
    client_secret: str = "secret"
    username: str = "user"
    password: str = "pw"
    sendings: dict[str, dict[str, Any]] = field(default_factory=dict)
    posted: list[dict[str, Any]] = field(default_factory=list)
    _faults: deque[tuple[str, float]] = field(default_factory=deque)
    _tokens: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, status: int) -> None:
        self._faults.append(("status", status))

    def pass_next(self, requests: int) -> None:
        """Let this many requests through before the next scripted fault."""
        self._faults.extend(("pass", 0) for _ in range(requests))

    def hang_next(self, seconds: float) -> None:
        self._faults.append(("hang", seconds))

    def act_then_hang(self, seconds: float) -> None:
        self._faults.append(("act_then_hang", seconds))

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length)
        path = urlsplit(request.path).path
        if path == "/token":
            return self._token(request, body)
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self._tokens:
            return json_reply(request, 401, {"code": "UNAUTHORIZED", "message": "invalid token"})
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault and fault[0] == "status":
            return json_reply(request, int(fault[1]), {"errors": [{"message": "scripted failure"}]})
        if fault and fault[0] == "hang":
            time.sleep(fault[1])
            return json_reply(request, 503, {"errors": [{"message": "too late"}]})
        status, payload = self._route(method, path.removeprefix(API), request, body)
        if fault and fault[0] == "act_then_hang":
            time.sleep(fault[1])
        json_reply(request, status, payload)

    def _token(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        form = dict(part.split("=", 1) for part in body.decode().split("&") if "=" in part)
        if request.headers.get("Authorization") != f"Basic {basic}" or (
            form.get("username"),
            form.get("password"),
        ) != (self.username, self.password):
            return json_reply(request, 401, {"error": "invalid_grant"})
        token = secrets.token_hex(8)
        self._tokens.add(token)
        json_reply(
            request, 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
        )

    def _route(
        self, method: str, path: str, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        parts = [p for p in path.split("/") if p]
        if parts == ["sendings"] and method == "POST":
            data = json.loads(body)
            sending_id = secrets.token_hex(8)
            with self._lock:
                self.sendings[sending_id] = {
                    "id": sending_id,
                    "status": "DRAFT",
                    **data,
                    "documents": [],
                    "recipients": [],
                }
            return 201, self._public(sending_id)
        if not parts or parts[0] != "sendings" or len(parts) < 2:
            return 404, {"errors": [{"message": "not found"}]}
        sending = self.sendings.get(parts[1])
        if sending is None:
            return 404, {"errors": [{"message": "sending not found"}]}
        rest = parts[2:]
        if rest == [] and method == "GET":
            return 200, self._public(parts[1])
        if rest == ["documents"]:
            if method == "POST":
                if sending["status"] != "DRAFT" or b"%PDF-" not in body:
                    return 400, {"errors": [{"message": "a PDF document on a draft only"}]}
                sending["documents"].append({"id": secrets.token_hex(4), "size": len(body)})
                return 201, sending["documents"][-1]
            return 200, {"documents": sending["documents"]}
        if rest == ["recipients"]:
            if method == "POST":
                recipient = {"id": secrets.token_hex(4), **json.loads(body), "status": "DRAFT"}
                sending["recipients"].append(recipient)
                return 201, recipient
            return 200, {"recipients": sending["recipients"]}
        if rest == ["submit"] and method == "POST":
            if sending["status"] != "DRAFT" or not sending["documents"]:
                return 400, {"errors": [{"message": "cannot submit"}]}
            sending["status"] = "PENDING"
            for recipient in sending["recipients"]:
                recipient["registered_number"] = "1A" + secrets.token_hex(5).upper()
                recipient["status"] = "ACCEPTED"
            with self._lock:
                self.posted.append(sending)
            return 202, {}
        return 404, {"errors": [{"message": "not found"}]}

    def _public(self, sending_id: str) -> dict[str, Any]:
        sending = self.sendings[sending_id]
        return {k: v for k, v in sending.items() if k not in ("documents", "recipients")}

    def deliver(self, sending_id: str, code: str, when: str) -> None:
        """What La Poste reports later: a delivery status code on the recipient."""
        for recipient in self.sendings[sending_id]["recipients"]:
            recipient["last_delivery_status"] = code
            recipient["last_delivery_status_date"] = when
