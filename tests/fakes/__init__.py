"""Local stand-ins for external services, so tests never need the Internet."""

from tests.fakes.sendgrid_api import FakeSendGrid, ReceivedMessage, validate_mail_send

__all__ = ["FakeSendGrid", "ReceivedMessage", "validate_mail_send"]
