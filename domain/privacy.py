"""Personal data of debtors' contacts (GDPR): the rules, without I/O.

Contact persons are natural persons. Their data is kept while it is needed to collect and,
after that, for the retention period (by default the 5-year limitation period between traders,
Code de commerce L110-4); then it is pseudonymised: names, addresses and phone numbers become
a pseudonym, amounts and opaque ids stay (the accounts must still add up). While processing is
restricted (GDPR art. 18, e.g. a legal claim runs) nothing is erased.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

ERASED = "[erased]"


def pseudonym(debtor_id: str) -> str:
    """The same debtor always gets the same pseudonym: records stay linkable, not identifiable."""
    return "P-" + hashlib.sha256(debtor_id.encode()).hexdigest()[:12].upper()


def pseudonymous_email(debtor_id: str) -> str:
    # `.invalid` (RFC 6761) can never receive mail: nothing can be sent to it by mistake.
    return f"{pseudonym(debtor_id).lower()}@erased.invalid"


def retention_ended(last_closed: datetime, now: datetime, retention_days: int) -> bool:
    return now - last_closed >= timedelta(days=retention_days)


def scrub(text: str | None, secrets: list[str]) -> str | None:
    """`text` with each of `secrets` (a name, an address) replaced by the erased marker."""
    if text is None:
        return None
    for secret in secrets:
        if secret:
            text = text.replace(secret, ERASED)
    return text
