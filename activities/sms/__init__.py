"""Text messages: a file outbox by default, Twilio in production (see `build_sms_sender`)."""

from activities.sms.message import OutgoingSms, SmsOutbox, SmsReceipt, SmsSender, build_sms_sender
from activities.sms.twilio_sender import TwilioSmsSender

__all__ = [
    "OutgoingSms",
    "SmsOutbox",
    "SmsReceipt",
    "SmsSender",
    "TwilioSmsSender",
    "build_sms_sender",
]
