"""A local stand-in for the parts of Stripe the portal uses, for the real `stripe` client.

Serves on 127.0.0.1, as Stripe documents them:
- `POST /v1/checkout/sessions` (Bearer secret key, form-encoded nested parameters, an
  `Idempotency-Key` that returns the same session again), answering a `checkout.session` object
  whose `url` is the fake's own hosted page;
- `GET /c/pay/<session>`: the hosted payment page, one "Pay" button (a form, no script);
- `POST /c/pay/<session>`: the debtor pays. The session becomes `complete`/`paid`, and a
  `checkout.session.completed` event is POSTed to `webhook_url`, signed as Stripe signs
  (`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.payload" keyed by the endpoint
  secret>`), before the browser is redirected to the session's `success_url`.

Tests without a live server call `complete(session_id)` and deliver the returned request
themselves, and `sign()` builds forged or stale signatures.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import secrets
import threading
import time
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

SESSIONS_PATH = "/v1/checkout/sessions"
PAY_PATH = "/c/pay/"


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe would send for `payload`."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (`line_items[0][price_data][currency]=eur`) back to objects."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node: Any = root
        for part, following in zip(parts, [*parts[1:], None], strict=True):
            if following is None:
                node[part] = value
                break
            node = node.setdefault(part, {})
    return _lists(root)


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(key.isdigit() for key in node):
            return [_lists(node[key]) for key in sorted(node, key=int)]
        return {key: _lists(value) for key, value in node.items()}
    return node


@dataclass
class Delivery:
    event: dict[str, Any]
    payload: bytes
    headers: dict[str, str]
    status: int | None = None


class FakeStripe:
    def __init__(self, api_key: str = "sk_test_fake", webhook_secret: str = "whsec_fake") -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        # Where paid sessions are reported; None: tests deliver `complete()`'s request.
        self.webhook_url: str | None = None
        self._lock = threading.Lock()
        self.sessions: dict[str, dict[str, Any]] = {}
        self._by_key: dict[str, str] = {}
        self.deliveries: list[Delivery] = []
        self.requests: list[tuple[str, str]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

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
    def url(self) -> str:
        assert self._server is not None, "FakeStripe is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- the API -------------------------------------------------------------------------------

    def _create_session(self, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}}
        params = _nest(parse_qsl(raw.decode(), keep_blank_values=True))
        missing = [
            k for k in ("mode", "success_url", "cancel_url", "line_items") if k not in params
        ]
        if missing:
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "message": f"Missing required param: {missing[0]}.",
                    "param": missing[0],
                }
            }
        key = headers.get("idempotency-key")
        with self._lock:
            if key and key in self._by_key:
                return 200, self.sessions[self._by_key[key]]
            currencies = {item["price_data"]["currency"] for item in params["line_items"]}
            if len(currencies) != 1:
                return 400, {"error": {"type": "invalid_request_error", "message": "currency"}}
            total = sum(
                int(item["price_data"]["unit_amount"]) * int(item.get("quantity", 1))
                for item in params["line_items"]
            )
            session_id = "cs_test_" + secrets.token_hex(24)
            session = {
                "id": session_id,
                "object": "checkout.session",
                "mode": params["mode"],
                "status": "open",
                "payment_status": "unpaid",
                "amount_total": total,
                "currency": currencies.pop(),
                "client_reference_id": params.get("client_reference_id"),
                "metadata": params.get("metadata", {}),
                "success_url": params["success_url"],
                "cancel_url": params["cancel_url"],
                "payment_method_types": params.get("payment_method_types", ["card"]),
                "line_items_requested": params["line_items"],
                "url": f"{self.url}{PAY_PATH}{session_id}",
                "livemode": False,
            }
            self.sessions[session_id] = session
            if key:
                self._by_key[key] = session_id
        return 200, session

    def complete(self, session_id: str) -> Delivery:
        """The session is paid: the signed event Stripe would send (not yet delivered)."""
        with self._lock:
            session = self.sessions[session_id]
            session.update(status="complete", payment_status="paid")
            event = {
                "id": "evt_" + secrets.token_hex(12),
                "object": "event",
                "api_version": "2024-06-20",
                "created": int(time.time()),
                "type": "checkout.session.completed",
                "livemode": False,
                "pending_webhooks": 1,
                "data": {"object": dict(session)},
            }
        payload = json.dumps(event).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sign(payload, self.webhook_secret),
        }
        return Delivery(event=event, payload=payload, headers=headers)

    def deliver(self, delivery: Delivery) -> int:
        """POST an event to `webhook_url`, as Stripe does (and again, for a replay)."""
        assert self.webhook_url, "set webhook_url first"
        request = urllib.request.Request(
            self.webhook_url, data=delivery.payload, headers=delivery.headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                delivery.status = response.status
        except urllib.error.HTTPError as err:
            delivery.status = err.code
        with self._lock:
            self.deliveries.append(delivery)
        return delivery.status or 0

    def _pay_page(self, session_id: str) -> tuple[int, bytes]:
        session = self.sessions.get(session_id)
        if session is None:
            return 404, b"no such session"
        amount = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
        body = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Fake Checkout</title></head>"
            f"<body><h1>Fake Checkout</h1><p id='amount'>{html.escape(amount)}</p>"
            f"<form method='post' action='{PAY_PATH}{session_id}'>"
            "<button type='submit' id='submit'>Pay</button></form></body></html>"
        )
        return 200, body.encode()

    def _handle(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append((method, path))
        route = urlsplit(path).path
        if method == "POST" and route == SESSIONS_PATH:
            status, body = self._create_session(headers, raw)
            return status, {"Content-Type": "application/json"}, json.dumps(body).encode()
        if route.startswith(PAY_PATH):
            session_id = route[len(PAY_PATH) :]
            if method == "GET":
                status, page = self._pay_page(session_id)
                return status, {"Content-Type": "text/html; charset=utf-8"}, page
            if method == "POST" and session_id in self.sessions:
                self.deliver(self.complete(session_id))
                return 303, {"Location": self.sessions[session_id]["success_url"]}, b""
        return 404, {"Content-Type": "application/json"}, b'{"error": {"message": "not found"}}'


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeStripe) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, reply_headers, body = self.server.fake._handle(
            self.command, self.path, headers, raw
        )
        self.send_response(status)
        for name, value in reply_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(body)

    do_POST = do_GET = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass
