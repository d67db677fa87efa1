"""The debtor portal's rules: personal links, structured payment references, what a debtor may
propose on their own (plans, promises), and the reasons they may give for a dispute.

Pure: no store, no HTTP. Time comes in as an argument so tests can move it.
"""

from __future__ import annotations

import hashlib
import hmac
import string
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer
from pydantic import BaseModel, ConfigDict, Field

from domain.money import Money, minor_units

# How every action taken on the portal is signed in the invoice's history and in the store.
PORTAL_ACTOR = "debtor (portal)"

# Separates portal links from any other use of the same secret (CSRF tokens use their own).
_LINK_SALT = "relance.portal.link.v1"
_CSRF_CONTEXT = b"relance.portal.csrf.v1|"


class PortalRules(BaseModel):
    """What a debtor may propose alone, per playbook (`portal:` in the YAML).

    Inside these limits a debtor's plan follows the same approval rules as a collector's
    (`plan_approval_amount`, `plan_approval_installments`); outside them the portal refuses it
    and invites the debtor to write to the creditor.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    plan_max_installments: int = Field(default=12, ge=1, le=60)
    # From today to the last installment.
    plan_max_days: int = Field(default=365, ge=1)
    # Days between two installments the portal proposes.
    plan_interval_days: int = Field(default=30, ge=1)
    # How far ahead a debtor may promise to pay.
    promise_max_days: int = Field(default=30, ge=1)


class DisputeReason(StrEnum):
    """The reasons a debtor picks from; free text completes them."""

    NOT_RECEIVED = "not_received"
    DEFECTIVE = "defective"
    WRONG_AMOUNT = "wrong_amount"
    ALREADY_PAID = "already_paid"
    NOT_ORDERED = "not_ordered"
    OTHER = "other"


# ------------------------------------------------------------------ personal links


@dataclass(frozen=True)
class LinkClaim:
    """What a valid link says: whose it is, and which of their portal keys signed it."""

    debtor_id: str
    version: int


class _Clocked(TimestampSigner):
    # itsdangerous reads the clock in one place; tests and callers pass theirs.
    now: float | None = None

    def get_timestamp(self) -> int:
        return int(self.now if self.now is not None else time.time())


def _serializer(secret: str, now: datetime | None) -> URLSafeTimedSerializer:
    signer = type("_At", (_Clocked,), {"now": now.timestamp() if now else None})
    return URLSafeTimedSerializer(secret, salt=_LINK_SALT, signer=signer)


def issue_link_token(
    secret: str, debtor_id: str, version: int, *, now: datetime | None = None
) -> str:
    """A signed, timestamped token naming the debtor and their current portal key version."""
    return str(_serializer(secret, now).dumps({"d": debtor_id, "v": version}))


def read_link_token(
    secret: str, token: str, *, max_age: timedelta, now: datetime | None = None
) -> LinkClaim | None:
    """The link's claim, or None when it is altered, expired or malformed: callers answer all
    of these the same way, so a guess learns nothing."""
    try:
        data = _serializer(secret, now).loads(token, max_age=int(max_age.total_seconds()))
    except (BadData, ValueError, TypeError):
        return None
    if not isinstance(data, dict):
        return None
    debtor_id, version = data.get("d"), data.get("v")
    if not isinstance(debtor_id, str) or not isinstance(version, int):
        return None
    return LinkClaim(debtor_id=debtor_id, version=version)


def csrf_token(secret: str, link_token: str) -> str:
    """The forms' CSRF token: bound to the link, so a page of one debtor cannot post for
    another, and a third-party site cannot compute it."""
    mac = hmac.new(secret.encode(), _CSRF_CONTEXT + link_token.encode(), hashlib.sha256)
    return mac.hexdigest()


def csrf_valid(secret: str, link_token: str, given: str) -> bool:
    return hmac.compare_digest(csrf_token(secret, link_token), given)


def token_digest(link_token: str) -> str:
    """A short stand-in for a token where one is needed as a key (rate limits): never logged
    in clear, never reversible."""
    return hashlib.sha256(link_token.encode()).hexdigest()[:24]


# ------------------------------------------------------------------ RF creditor reference

_ALNUM = set(string.ascii_uppercase + string.digits)


def _as_digits(text: str) -> int:
    # ISO 7064 MOD 97-10, as in IBANs: A=10 ... Z=35.
    return int("".join(str(int(ch, 36)) for ch in text))


def rf_reference(reference: str) -> str:
    """The ISO 11649 structured creditor reference ("RF" + 2 check digits + up to 21
    letters and digits) for an invoice number, grouped by four as printed on a transfer."""
    body = "".join(ch for ch in reference.upper() if ch in _ALNUM)
    if not body or len(body) > 21:
        raise ValueError(
            f"an RF reference needs 1 to 21 letters or digits, got {len(body)} from {reference!r}"
        )
    check = 98 - _as_digits(body + "RF00") % 97
    full = f"RF{check:02d}{body}"
    return " ".join(full[i : i + 4] for i in range(0, len(full), 4))


def rf_valid(reference: str) -> bool:
    text = reference.replace(" ", "").upper()
    if len(text) < 5 or not text.startswith("RF") or not set(text) <= _ALNUM:
        return False
    return _as_digits(text[4:] + text[:4]) % 97 == 1


# ------------------------------------------------------------------ plans and promises


def equal_installments(
    total: Money, count: int, first: date, interval_days: int
) -> list[tuple[date, Money]]:
    """`count` installments every `interval_days` from `first`; the last one takes the cents
    that do not divide evenly, so they add up to `total` exactly."""
    if count < 1:
        raise ValueError("a plan has at least one installment")
    unit = Decimal(1).scaleb(-minor_units(total.currency))
    share = (total.amount / count).quantize(unit, rounding=ROUND_DOWN)
    if share <= 0:
        raise ValueError(f"{total} cannot be split into {count} installments")
    amounts = [share] * (count - 1) + [total.amount - share * (count - 1)]
    return [
        (first + timedelta(days=interval_days * i), Money.of(amount, total.currency))
        for i, amount in enumerate(amounts)
    ]


def plan_refusal(rules: PortalRules, schedule: list[tuple[date, Money]], today: date) -> str | None:
    """Why a debtor may not propose this schedule alone, or None when it is within limits."""
    if len(schedule) > rules.plan_max_installments:
        return (
            f"at most {rules.plan_max_installments} installments can be proposed here, "
            f"not {len(schedule)}"
        )
    first, last = schedule[0][0], schedule[-1][0]
    if first < today:
        return "the first installment cannot be in the past"
    if (last - today).days > rules.plan_max_days:
        return (
            f"the last installment must fall within {rules.plan_max_days} days "
            f"(by {(today + timedelta(days=rules.plan_max_days)).isoformat()})"
        )
    return None


def promise_refusal(rules: PortalRules, until: date, today: date) -> str | None:
    if until < today:
        return "the promised date cannot be in the past"
    if (until - today).days > rules.promise_max_days:
        latest = today + timedelta(days=rules.promise_max_days)
        return f"a payment can be promised here up to {latest.isoformat()}"
    return None


def personal_link(
    public_url: str, secret: str, debtor_id: str, version: int, *, now: datetime | None = None
) -> str:
    """The debtor's personal page: `<public url>/portal/l/<token>`. The page then keeps the
    token in a cookie and moves to `/portal`, so it stays out of later URLs and referrers."""
    token = issue_link_token(secret, debtor_id, version, now=now)
    return f"{public_url.rstrip('/')}{LINK_PATH}{token}"


LINK_PATH = "/portal/l/"
