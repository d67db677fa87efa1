"""Names shared by the workflow, the worker, the API and the dev server (see contracts/ids.py)."""

from contracts.ids import (
    CLI_TYPE_NAMES,
    DEBTOR_ID,
    DUE_DATE,
    DUE_DATE_PASSES,
    ENQUEUE_SIGNAL,
    MAILBOX_ID_PREFIX,
    MAILBOX_WORKFLOW,
    OUTSTANDING,
    SEARCH_ATTRIBUTES,
    SEGMENT,
    STAGE,
    WORKFLOW_ID_PREFIX,
    cli_search_attribute_flags,
    mailbox_workflow_id,
    workflow_id,
)

__all__ = [
    "CLI_TYPE_NAMES",
    "DEBTOR_ID",
    "DUE_DATE",
    "DUE_DATE_PASSES",
    "ENQUEUE_SIGNAL",
    "MAILBOX_ID_PREFIX",
    "MAILBOX_WORKFLOW",
    "OUTSTANDING",
    "SEARCH_ATTRIBUTES",
    "SEGMENT",
    "STAGE",
    "WORKFLOW_ID_PREFIX",
    "cli_search_attribute_flags",
    "mailbox_workflow_id",
    "workflow_id",
]
