"""Signatures of the webhooks Relance sends to the back office (Stripe-style HMAC-SHA256).

Every notification carries::

    Relance-Event-Id: F-2026-0042:stage_changed:7
    Relance-Signature: t=<unix seconds>,v1=<64 hex digits>

`v1` is the hex HMAC-SHA256, keyed with the shared secret (RELANCE_BACKOFFICE_WEBHOOK_SECRET),
of the UTF-8 bytes ``f"{t}."`` followed by the raw request body, exactly as received. A receiver:

1. reads the raw body before any JSON parsing (re-serialised JSON does not match);
2. recomputes the HMAC and compares it in constant time with each ``v1`` in the header;
3. refuses a ``t`` more than a few minutes from its own clock (a captured request cannot be
   replayed later: the timestamp is signed too);
4. treats ``Relance-Event-Id`` as an idempotency key: a notification is retried until it is
   answered with a 2xx, so the same event may arrive more than once.

``verify_signature`` below does steps 2 and 3; it has no dependency beyond the standard library,
so integrators may copy it. Pure functions, no I/O: the clock is passed in.

Test vector: secret ``whsec_relance_example_secret``, body ``{"event_id":"F-1:paid:3"}``,
t=1767225600 gives
``v1=16a9b14b4ffe5f0a3fbd5cf28683a2faa28eda70bc88d6cc434f117742f4a990``.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Relance-Signature"
EVENT_ID_HEADER = "Relance-Event-Id"
DEFAULT_TOLERANCE_SECONDS = 300.0


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def _digest(secret: str | bytes, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode("ascii") + body
    return hmac.new(_key(secret), signed, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The `Relance-Signature` header value for `body` sent at `timestamp` (unix seconds)."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify_signature(
    secret: str | bytes,
    header: str | None,
    body: bytes,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True if `header` signs `body` with `secret`, at a time within `tolerance` s of `now`.

    Several `v1` entries are accepted (any one may match), so a sender can sign with an old and a
    new secret while receivers switch over. Anything malformed is simply False.
    """
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            return False
        if name == "t":
            if timestamp is not None or not value.isdigit():
                return False
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
        # Other schemes (v0, a future v2) are ignored, as Stripe's receivers do.
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, body)
    # Check every candidate: the time taken must not depend on which one matched.
    # Bytes, not str: compare_digest refuses non-ASCII strings, and a header may hold anything.
    wanted = expected.encode("ascii")
    matches = [hmac.compare_digest(wanted, c.encode("utf-8", "replace")) for c in candidates]
    return any(matches)
