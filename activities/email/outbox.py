"""The default sender: one RFC 5322 `.eml` file per message, in a directory.

Any mail client opens the files, so a newcomer sees exactly what a debtor would receive without a
provider account. The file is named after the idempotency key and replaced atomically, which makes
sending idempotent: a retried activity rewrites the same file instead of adding a second one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from datetime import UTC, datetime
from email import policy
from email.errors import MessageError
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path

from activities.email.message import (
    OutgoingEmail,
    PermanentSendError,
    SendReceipt,
    TransientSendError,
)

_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_UNSAFE_IN_HEADER_NAME = re.compile(r"[^A-Za-z0-9-]+")
_SLUG_MAX = 80


class _HeaderClassesKept(HeaderRegistry):
    """The email package's header registry, keeping the classes it makes.

    The stdlib builds a new class with `type()` for every header it parses, though the class
    only depends on the header's name. Made once per name, building a message's twenty headers
    and two parts costs about a third less. Parsing and folding are the stdlib's, unchanged.
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


# The default policy (RFC-compliant parsing, header injection refused), with the registry above.
_POLICY = policy.default.clone(header_factory=_HeaderClassesKept())


def outbox_file_name(idempotency_key: str) -> str:
    """`<readable slug>-<hash>.eml`: the slug sorts files by invoice, the hash keeps two keys that
    sanitise to the same slug (or get truncated) from sharing a file."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
    slug = _UNSAFE_IN_NAME.sub("_", idempotency_key)[:_SLUG_MAX].strip("._") or "message"
    return f"{slug}-{digest}.eml"


class OutboxSender:
    name = "outbox"

    def __init__(self, directory: Path, from_email: str) -> None:
        self.directory = Path(directory)
        self.from_email = from_email
        _, from_address = parseaddr(from_email)
        self._id_domain = from_address.rpartition("@")[2] or "relance.invalid"

    def path_for(self, idempotency_key: str) -> Path:
        return self.directory / outbox_file_name(idempotency_key)

    def send(self, email: OutgoingEmail) -> SendReceipt:
        try:
            message = self._build(email)
            data = message.as_bytes(policy=policy.SMTP)
        except (ValueError, MessageError) as exc:
            # Raised for an address the email package can't parse or a header value with a line
            # break: the same message would fail the same way on every retry.
            raise PermanentSendError(
                f"cannot write message {email.idempotency_key}: {exc}"
            ) from exc
        file_name = outbox_file_name(email.idempotency_key)
        try:
            self._write_atomically(file_name, data)
        except OSError as exc:
            # A full disk or a directory being remounted may recover; let Temporal retry.
            raise TransientSendError(f"cannot write to outbox {self.directory}: {exc}") from exc
        return SendReceipt(provider=self.name, provider_message_id=file_name)

    def _build(self, email: OutgoingEmail) -> EmailMessage:
        message = EmailMessage(policy=_POLICY)
        # Derived from the key, like the file name: a retry yields the same message, not a new one.
        digest = hashlib.sha256(email.idempotency_key.encode()).hexdigest()[:32]
        message["Message-ID"] = f"<{digest}@{self._id_domain}>"
        message["Date"] = format_datetime(datetime.now(UTC))
        message["From"] = self.from_email
        message["To"] = Address(display_name=email.to_name or "", addr_spec=email.to_email)
        message["Subject"] = email.subject
        message["X-Relance-Key"] = email.idempotency_key
        for key, value in email.custom_args.items():
            # "Arg-" keeps an argument named "key" from shadowing X-Relance-Key.
            message[f"X-Relance-Arg-{_UNSAFE_IN_HEADER_NAME.sub('-', key)}"] = value
        for category in email.categories:
            message["X-Relance-Category"] = category
        message.set_content(email.text)
        if email.html is not None:
            message.add_alternative(email.html, subtype="html")
            # From the key too: a retry writes the same bytes. (Left to the email package, a
            # random boundary costs a regular expression compiled for every message.)
            boundary = f"relance-{digest}"
            if boundary not in email.text and boundary not in email.html:
                message.set_boundary(boundary)
        return message

    def _write_atomically(self, file_name: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # A dot-prefixed temp file in the same directory: os.replace is atomic only within one
        # file system, and whoever watches for *.eml never sees a half-written message.
        fd, temp_name = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, self.directory / file_name)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
