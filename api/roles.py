"""Who may call what: the one table of endpoint → roles.

The authorization dependency (`api.deps.authorize`) looks every request up here by its method
and path template; the endpoint × role test and the README's matrix are generated from it, so
the three cannot disagree. An endpoint missing from the table is refused to everyone (the
test suite names it), never left open.

The roles a credit team expects:
- backoffice: the ERP side. Hands over invoices and imports, reports payments, cancels with a
  credit note, reports a dispute or a plan agreed with the customer.
- collector: the credit controllers. Decide escalations, resolve disputes, decide plans,
  record call outcomes and promises, pause and resume, ask for a restriction of processing.
- finance: the finance director's team. Writes off (a second finance person confirms a
  write-off above RELANCE_WRITE_OFF_APPROVAL_ABOVE: four-eyes, in the spirit of Sapin II
  controls) and sets finance overrides on debtors.
- ops: read-only. Status, history, listings; never changes an invoice.
- admin: everything, including the personal-data export, moving a running invoice to another
  playbook, and API keys (`relance apikey create`).
"""

from __future__ import annotations

import functools
from enum import StrEnum


class Role(StrEnum):
    BACKOFFICE = "backoffice"
    COLLECTOR = "collector"
    FINANCE = "finance"
    OPS = "ops"
    ADMIN = "admin"


Operation = tuple[str, str]  # (HTTP method, path template as the router declares it)

_B, _C, _F, _O = Role.BACKOFFICE, Role.COLLECTOR, Role.FINANCE, Role.OPS
# Everyone who may look at an invoice: reading changes nothing.
_READERS = frozenset({_B, _C, _F, _O})

# Admin may do everything: it is added to every row by `allowed_roles`, not written here.
RULES: dict[Operation, frozenset[Role]] = {
    # invoices
    ("POST", "/v1/invoices"): frozenset({_B}),
    ("POST", "/v1/invoices:batch"): frozenset({_B}),
    ("GET", "/v1/invoices/{number}"): _READERS,
    ("POST", "/v1/invoices/{number}/payments"): frozenset({_B}),
    ("GET", "/v1/invoices/{number}/history"): _READERS,
    ("GET", "/v1/invoices/{number}/preview/{step}"): _READERS,
    # the legal file: for whoever prepares the hand-off or answers a judge
    ("GET", "/v1/invoices/{number}/dossier"): frozenset({_C, _F, _O}),
    # escalations
    ("GET", "/v1/approvals"): frozenset({_C, _F, _O}),
    ("POST", "/v1/approvals/{approval_id}/decision"): frozenset({_C}),
    # disputes: the ERP may report one, a collector resolves it
    ("POST", "/v1/invoices/{number}/disputes"): frozenset({_B, _C}),
    ("GET", "/v1/invoices/{number}/disputes"): _READERS,
    ("POST", "/v1/invoices/{number}/disputes/{dispute_id}/resolution"): frozenset({_C}),
    # payment plans: proposed by either side, decided by a collector (four-eyes in the workflow)
    ("POST", "/v1/invoices/{number}/payment-plan"): frozenset({_B, _C}),
    ("POST", "/v1/invoices/{number}/payment-plan/{plan_id}/decision"): frozenset({_C}),
    ("GET", "/v1/invoices/{number}/payment-plan"): _READERS,
    # after the amicable stages: the mediator's outcome and the legal partner's progress reach
    # the credit controllers, who record them
    ("POST", "/v1/invoices/{number}/mediation"): frozenset({_C}),
    ("POST", "/v1/invoices/{number}/legal"): frozenset({_C}),
    # holds and endings
    ("POST", "/v1/invoices/{number}/pause"): frozenset({_C}),
    ("POST", "/v1/invoices/{number}/resume"): frozenset({_C}),
    ("POST", "/v1/invoices/{number}/cancel"): frozenset({_B}),
    ("POST", "/v1/invoices/{number}/write-off"): frozenset({_F}),
    ("POST", "/v1/invoices/{number}/write-off/{request_id}/decision"): frozenset({_F}),
    ("GET", "/v1/write-offs"): frozenset({_F, _O}),
    ("POST", "/v1/invoices/{number}/playbook"): frozenset(),
    # collectors' work
    ("GET", "/v1/tasks"): frozenset({_C, _F, _O}),
    ("POST", "/v1/tasks/{task_id}/outcome"): frozenset({_C}),
    # debtors
    ("GET", "/v1/debtors/{debtor_id}"): _READERS,
    # a corrected address: from the ERP's records, or learnt by a collector on the phone
    ("PUT", "/v1/debtors/{debtor_id}/contact"): frozenset({_B, _C}),
    ("PUT", "/v1/debtors/{debtor_id}/override"): frozenset({_C, _F}),
    ("DELETE", "/v1/debtors/{debtor_id}/override"): frozenset({_C, _F}),
    # personal data (GDPR): the export is the data protection officer's, through an admin key
    ("GET", "/v1/debtors/{debtor_id}/personal-data"): frozenset(),
    ("POST", "/v1/debtors/{debtor_id}/restriction"): frozenset({_C}),
    ("DELETE", "/v1/debtors/{debtor_id}/restriction"): frozenset(),
    # letters and calls
    ("GET", "/v1/invoices/{number}/letters"): _READERS,
    ("POST", "/v1/letters/{key}/events"): frozenset({_B, _C}),
    ("GET", "/v1/tasks/{task_id}"): frozenset({_C, _F, _O}),
    ("PUT", "/v1/tasks/{task_id}/assignment"): frozenset({_C}),
    # the book: portfolio, debtors and reports (the console shows the same)
    ("GET", "/v1/invoices"): _READERS,
    ("GET", "/v1/debtors"): _READERS,
    ("GET", "/v1/reports/aging"): frozenset({_C, _F, _O}),
    ("GET", "/v1/reports/kpis"): frozenset({_C, _F, _O}),
    ("GET", "/v1/reports/forecast"): frozenset({_C, _F, _O}),
    # the debtor's page: rotating their key voids every link they hold
    ("POST", "/v1/debtors/{debtor_id}/portal/rotate"): frozenset(),
}

# Endpoints that authenticate otherwise (or not at all), and are therefore not in the table.
PUBLIC: frozenset[Operation] = frozenset(
    {
        ("GET", "/healthz"),
        # SendGrid's ECDSA signature is the credential.
        ("POST", "/v1/webhooks/sendgrid"),
        # Stripe's signature is the credential.
        ("POST", "/v1/webhooks/stripe"),
        # Twilio's signature, and Maileva's HTTP Basic credentials.
        ("POST", "/v1/webhooks/twilio"),
        ("POST", "/v1/webhooks/maileva"),
        # The legal file for the legal partner: the link's HMAC signature and expiry are the
        # credential (domain/dossier_link.py); a lawyer has no API key.
        ("GET", "/v1/legal-files/{number}"),
    }
)


# Bounded: the key is a route's template, but `api.deps.authorize` falls back to the URL's path
# for a route without one, and URLs are the caller's to choose.
@functools.lru_cache(maxsize=1024)
def allowed_roles(operation: Operation) -> tuple[Role, ...] | None:
    """The roles that may call `operation`, in the enum's order; None if it has no rule."""
    rule = RULES.get(operation)
    if rule is None:
        return None
    return tuple(role for role in Role if role in rule or role is Role.ADMIN)


def matrix() -> str:
    """The endpoint × role matrix as a Markdown table (the README carries it verbatim)."""
    roles = list(Role)
    lines = [
        "| endpoint | " + " | ".join(role.value for role in roles) + " |",
        "|---|" + "---|" * len(roles),
    ]
    for method, path in RULES:
        allowed = allowed_roles((method, path)) or ()
        cells = ["✓" if role in allowed else "—" for role in roles]
        lines.append(f"| `{method} {path}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
