"""The default postal provider: a folder a person prints from and posts.

Each letter is `<key slug>.pdf` with `<key slug>.json` beside it (who, where, registered or not),
both replaced atomically, so a retried activity rewrites the same files. `manifest.csv` lists
every letter waiting, rebuilt from the JSON files after each write: a spreadsheet for the
person at the post office, who then records the tracking numbers (API: letter events).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from activities.email.message import TransientSendError
from activities.email.outbox import outbox_file_name
from activities.letters.provider import LetterJob, PostalReceipt
from store.letters import LetterStatus

MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = ("file", "key", "invoice", "registered", "pages", "recipient", "sender")


class PrintQueue:
    name = "print_queue"
    # A resend rewrites the same files.
    idempotent = True

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def stem(self, key: str) -> str:
        return outbox_file_name(key).removesuffix(".eml")

    def post(
        self, job: LetterJob, known_ref: str | None, on_ref: Callable[[str], None]
    ) -> PostalReceipt:
        stem = self.stem(job.key)
        entry = {
            "file": f"{stem}.pdf",
            "key": job.key,
            "invoice": ", ".join(job.invoices) or job.invoice_number,
            "registered": "yes" if job.registered else "no",
            "pages": job.pages,
            "recipient": " / ".join(job.recipient.lines(job.sender.country)),
            "sender": " / ".join(job.sender.lines(job.sender.country)),
        }
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._write(f"{stem}.pdf", job.pdf)
            self._write(f"{stem}.json", json.dumps(entry, ensure_ascii=False).encode())
            self._write(MANIFEST, self._manifest())
        except OSError as exc:
            raise TransientSendError(
                f"cannot write to print queue {self.directory}: {exc}"
            ) from exc
        on_ref(f"{stem}.pdf")
        return PostalReceipt(
            provider=self.name, provider_ref=f"{stem}.pdf", status=LetterStatus.QUEUED
        )

    def _manifest(self) -> bytes:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for path in sorted(self.directory.glob("*.json")):
            with contextlib.suppress(ValueError, OSError):
                writer.writerow(json.loads(path.read_text(encoding="utf-8")))
        return out.getvalue().encode("utf-8")

    def _write(self, name: str, data: bytes) -> None:
        fd, temp = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.directory / name)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
