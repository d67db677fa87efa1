"""Registered letters with acknowledgment of receipt through Maileva (La Poste group).

Maileva's "Lettre Recommandée En Ligne" REST API (registered_mail/v2) prints, folds, franks and
hands the letter to La Poste, and reports the tracking number and the acknowledgment of receipt.
Posting is five calls on a sending: create it (a DRAFT), upload the PDF, add the recipient,
submit. Only the submit posts anything: a draft left behind by a timed-out create is never
printed. The sending's id is written to the store as soon as Maileva gives it (`on_ref`), and a
retry resumes that sending: it reads its state and does only the calls not done yet, and never
submits a sending that is no longer a draft. Each letter is therefore posted once, whatever
fails in between.

Authentication: OAuth2 password grant (client id and secret, plus the account's user and
password) for a bearer token, renewed when it expires or the API answers 401.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from activities.email.message import PermanentSendError, SendError, TransientSendError
from activities.letters.provider import LetterJob, PostalReceipt
from domain.postal import PostalAddress
from store.letters import LetterStatus

API = "/registered_mail/v2"
_ADDRESS_LINES = 6

# La Poste's delivery status codes as Maileva reports them (last_delivery_status), by what they
# mean for the collection. "Non réclamé" (N03) and returns are what the playbook falls back on.
RECEIVED_CODES = frozenset({"N01"})
DELIVERED_CODES = frozenset({"D01"})
NOT_CLAIMED_CODES = frozenset({"N03", "A14", "A17", "P03"})
RETURNED_CODES = frozenset(
    {"N02", "N04", "N05", "N07", "N08", "N10", "A16", "A18", "A19", "A21", "A22", "A23", "A26"}
    | {"P04", "P05", "P06"}
)


def status_of_code(code: str | None) -> LetterStatus | None:
    """What a delivery status code says of the letter; None for a step on its way."""
    if not code:
        return None
    code = code.strip().upper()[:3]
    if code in RECEIVED_CODES:
        return LetterStatus.RECEIVED
    if code in NOT_CLAIMED_CODES:
        return LetterStatus.NOT_CLAIMED
    if code in RETURNED_CODES:
        return LetterStatus.RETURNED
    if code in DELIVERED_CODES:
        return LetterStatus.DELIVERED
    return LetterStatus.POSTED


def address_fields(address: PostalAddress, prefix: str = "") -> dict[str, str]:
    """Maileva's six lines (company; person; building; number and street; locality or PO box;
    postcode and city) and the country code, from our validated address."""
    street = list(address.street)
    # One street line is the "number and street" line (4); two are building (3) and street;
    # three fill 3, 4 and 5.
    slots = {1: (4,), 2: (3, 4), 3: (3, 4, 5)}[len(street)]
    lines = {1: address.name, 2: address.attention or ""}
    lines.update(zip(slots, street, strict=True))
    lines[6] = f"{address.postal_code} {address.city}"
    fields = {f"{prefix}address_line_{n}": text for n, text in sorted(lines.items()) if text}
    fields[f"{prefix}country_code"] = address.country
    return fields


class MailevaClient:
    name = "maileva"
    # A resend resumes the sending whose id is on record; only a draft is ever submitted.
    idempotent = True

    def __init__(
        self,
        *,
        api_base: str,
        auth_url: str,
        client_id: str,
        client_secret: str,
        username: str,
        password: str,
        notification_email: str | None = None,
        timeout: float = 20,
    ) -> None:
        if not (client_id and client_secret and username and password):
            raise ValueError("Maileva needs a client id and secret, a user name and a password")
        self.api_base = api_base.rstrip("/")
        self.auth_url = auth_url
        self._client_id, self._client_secret = client_id, client_secret
        self._username, self._password = username, password
        self.notification_email = notification_email
        self.timeout = timeout
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ posting

    def post(
        self, job: LetterJob, known_ref: str | None, on_ref: Callable[[str], None]
    ) -> PostalReceipt:
        with httpx.Client(base_url=self.api_base + API, timeout=self.timeout) as http:
            sending = (
                self._call(http, "GET", f"/sendings/{known_ref}", missing_ok=True)
                if known_ref
                else {}
            )
            if not sending:
                sending = self._call(http, "POST", "/sendings", json=self._sending(job))
                on_ref(sending["id"])
            sending_id = str(sending["id"])
            if sending.get("status", "DRAFT") == "DRAFT":
                documents = self._call(http, "GET", f"/sendings/{sending_id}/documents")
                if not documents.get("documents"):
                    self._call(
                        http,
                        "POST",
                        f"/sendings/{sending_id}/documents",
                        files={"document": (f"{job.key}.pdf", job.pdf, "application/pdf")},
                        data={"metadata": json.dumps({"priority": 1, "name": job.title})},
                    )
                recipients = self._call(http, "GET", f"/sendings/{sending_id}/recipients")
                if not recipients.get("recipients"):
                    body = {**address_fields(job.recipient), "custom_id": job.key}
                    self._call(http, "POST", f"/sendings/{sending_id}/recipients", json=body)
                self._call(http, "POST", f"/sendings/{sending_id}/submit")
            recipient = self._first_recipient(http, sending_id)
        return PostalReceipt(
            provider=self.name,
            provider_ref=sending_id,
            recipient_ref=recipient.get("id"),
            tracking_number=recipient.get("registered_number"),
            status=LetterStatus.SUBMITTED,
        )

    def recipient(self, sending_id: str) -> dict[str, Any]:
        """The recipient as Maileva knows it now: tracking number, last delivery status, and
        the acknowledgment of receipt once it came back."""
        with httpx.Client(base_url=self.api_base + API, timeout=self.timeout) as http:
            return self._first_recipient(http, sending_id)

    def _first_recipient(self, http: httpx.Client, sending_id: str) -> dict[str, Any]:
        listing = self._call(http, "GET", f"/sendings/{sending_id}/recipients")
        recipients = listing.get("recipients") or []
        return dict(recipients[0]) if recipients else {}

    def _sending(self, job: LetterJob) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": job.title,
            "custom_id": job.key,
            "acknowledgement_of_receipt": job.registered,
            "color_printing": False,
            "duplex_printing": True,
            # Our PDF places the address for the window: no extra address sheet.
            "optional_address_sheet": False,
            **address_fields(job.sender, prefix="sender_"),
        }
        if self.notification_email:
            body["notification_email"] = self.notification_email
        return body

    # ------------------------------------------------------------------ HTTP

    def _call(
        self,
        http: httpx.Client,
        method: str,
        path: str,
        *,
        missing_ok: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The JSON answer; {} for a 404 when `missing_ok` (a sending Maileva no longer has,
        e.g. a draft deleted by hand: a new one is started)."""
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._access_token()}"}
            try:
                response = http.request(method, path, headers=headers, **kwargs)
            except httpx.HTTPError as exc:
                # Timeouts and refused connections: the same call may work later, and the
                # resumption above makes a repeated call harmless.
                raise TransientSendError(
                    f"Maileva unreachable on {method} {path}: {exc!r}"
                ) from exc
            if response.status_code == 401 and attempt == 1:
                self._token = None
                continue
            if response.status_code == 404 and missing_ok:
                return {}
            if response.status_code >= 400:
                raise _error(response, method, path)
            if not response.content:
                return {}
            try:
                payload = response.json()
            except ValueError as exc:
                raise TransientSendError(f"Maileva answered {method} {path} with non-JSON") from exc
            return payload if isinstance(payload, dict) else {"items": payload}
        raise PermanentSendError("Maileva refuses our credentials (HTTP 401 twice)", 401)

    def _access_token(self) -> str:
        with self._lock:
            if self._token is not None and self._token[1] > time.monotonic() + 30:
                return self._token[0]
            try:
                response = httpx.post(
                    self.auth_url,
                    data={
                        "grant_type": "password",
                        "username": self._username,
                        "password": self._password,
                    },
                    auth=(self._client_id, self._client_secret),
                    timeout=self.timeout,
                )
            except httpx.HTTPError as exc:
                raise TransientSendError(f"Maileva's sign-in unreachable: {exc!r}") from exc
            if response.status_code >= 400:
                raise _error(response, "POST", "token")
            payload = response.json()
            self._token = (
                str(payload["access_token"]),
                time.monotonic() + float(payload.get("expires_in", 300)),
            )
            return self._token[0]


def _error(response: httpx.Response, method: str, path: str) -> SendError:
    status = response.status_code
    try:
        payload = response.json()
        detail = "; ".join(
            str(e.get("message") or e.get("code")) for e in payload.get("errors", [])
        ) or str(payload.get("message") or payload.get("error_description") or "")
    except (ValueError, AttributeError, TypeError):
        detail = response.text[:200]
    text = f"Maileva {method} {path}: {detail or response.reason_phrase}"
    if status in (408, 429) or status >= 500:
        return TransientSendError(text, status)
    return PermanentSendError(text, status)
