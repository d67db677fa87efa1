"""The error types every side of a boundary shares (defined in the domain, where the machine's
refusals are typed; re-exported here for the workflow, the activities and the API)."""

from domain.errors import NON_RETRYABLE_SEND_ERRORS, ErrorType

__all__ = ["NON_RETRYABLE_SEND_ERRORS", "ErrorType"]
