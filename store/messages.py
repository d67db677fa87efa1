"""Messages as sent: the copy a legal file shows, written once per interaction."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from store.tables import Interaction, SentMessage

# Built once: every send runs them (SQLAlchemy spends more building a statement than running it).
_RESERVED = select(Interaction).where(
    col(Interaction.idempotency_key).in_(bindparam("keys", expanding=True))
)
_KEPT = select(SentMessage.interaction_key).where(
    col(SentMessage.interaction_key).in_(bindparam("keys", expanding=True))
)


def interactions_under(session: Session, keys: Sequence[str]) -> Sequence[Interaction]:
    """The interactions a send reserved under `keys` (one, or each invoice a message lists)."""
    return session.exec(_RESERVED, params={"keys": list(keys)}).all()


def content_hash(subject: str, text: str, html: str) -> str:
    """SHA-256 of what the recipient got, each part length-prefixed so parts cannot run together."""
    digest = hashlib.sha256()
    for part in (subject, text, html):
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def record_sent_message(
    session: Session,
    *,
    interaction_keys: Sequence[str],
    to_email: str,
    to_name: str | None,
    subject: str,
    text: str,
    html: str,
    provider: str | None,
    provider_message_id: str | None,
    sent_at: datetime,
    reserved: Sequence[Interaction] | None = None,
) -> list[SentMessage]:
    """Keep the message exactly as sent, once for each interaction (invoice) it stood for.

    Idempotent: an interaction already recorded keeps its first copy (a retried activity that
    finds it changes nothing). Channel, recipient and invoice come from the interaction rows,
    which the send reserved before sending (`reserved`: those rows, when the caller has them
    already). No commit here: the caller's transaction decides.
    """
    rows = reserved if reserved is not None else interactions_under(session, interaction_keys)
    known = set(session.exec(_KEPT, params={"keys": list(interaction_keys)}).all())
    digest = content_hash(subject, text, html)
    added = []
    for row in rows:
        if row.idempotency_key in known:
            continue
        message = SentMessage(
            interaction_key=row.idempotency_key,
            invoice_number=row.invoice_number,
            channel=row.channel,
            recipient=row.recipient,
            to_email=to_email,
            to_name=to_name,
            subject=subject,
            text=text,
            html=html,
            provider=provider,
            provider_message_id=provider_message_id,
            sent_at=sent_at,
            content_hash=digest,
        )
        session.add(message)
        added.append(message)
    return added


def sent_messages_of(session: Session, number: str) -> Sequence[SentMessage]:
    return session.exec(
        select(SentMessage)
        .where(SentMessage.invoice_number == number)
        .order_by(col(SentMessage.sent_at), col(SentMessage.id))
    ).all()
