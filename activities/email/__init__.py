"""Email sending: an `.eml` outbox by default, SendGrid in production (see `build_sender`)."""

from activities.email.message import (
    EmailSender,
    OutgoingEmail,
    PermanentSendError,
    SendError,
    SendReceipt,
    TransientSendError,
    build_sender,
)
from activities.email.outbox import OutboxSender, outbox_file_name
from activities.email.sendgrid_sender import SendGridSender

__all__ = [
    "EmailSender",
    "OutboxSender",
    "OutgoingEmail",
    "PermanentSendError",
    "SendError",
    "SendGridSender",
    "SendReceipt",
    "TransientSendError",
    "build_sender",
    "outbox_file_name",
]
