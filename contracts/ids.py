"""Names shared by the workflow, the worker, the API and the dev server: defined once here.

Search attributes hold no personal data: stage, amounts, dates and opaque debtor ids only.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

WORKFLOW_ID_PREFIX = "invoice-"
# The pseudo-step an upcoming invoice waits for: the day after its due date it is overdue.
DUE_DATE_PASSES = "due_date_passes"

STAGE = SearchAttributeKey.for_keyword("RelanceStage")
OUTSTANDING = SearchAttributeKey.for_float("RelanceOutstanding")
DUE_DATE = SearchAttributeKey.for_datetime("RelanceDueDate")
DEBTOR_ID = SearchAttributeKey.for_keyword("RelanceDebtorId")
SEGMENT = SearchAttributeKey.for_keyword("RelanceSegment")

SEARCH_ATTRIBUTES = (STAGE, OUTSTANDING, DUE_DATE, DEBTOR_ID, SEGMENT)

# The `--search-attribute Name=Type` spelling the Temporal CLI expects.
CLI_TYPE_NAMES = {
    "KEYWORD": "Keyword",
    "DOUBLE": "Double",
    "DATETIME": "Datetime",
    "INT": "Int",
    "KEYWORD_LIST": "KeywordList",
    "TEXT": "Text",
    "BOOL": "Bool",
}


def workflow_id(invoice_number: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{invoice_number}"


# One mailbox workflow per debtor gathers its invoices' messages (one per channel and day).
MAILBOX_ID_PREFIX = "debtor-"


# The debtor mailbox's workflow type and its one signal (runs started before the collection
# machine still use it: activities start it by name, never importing workflow code).
MAILBOX_WORKFLOW = "DebtorMailboxWorkflow"
ENQUEUE_SIGNAL = "enqueue"


def mailbox_workflow_id(debtor_id: str) -> str:
    """`debtor-<id>`: the back office's opaque debtor id, never a name or an address."""
    return f"{MAILBOX_ID_PREFIX}{debtor_id}"


def cli_search_attribute_flags() -> list[str]:
    flags: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        flags += ["--search-attribute", f"{key.name}={CLI_TYPE_NAMES[key.indexed_value_type.name]}"]
    return flags
