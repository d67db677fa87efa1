"""Idempotency keys: claim, complete, release — each one conditional statement.

The claim is an `INSERT ... ON CONFLICT DO NOTHING` on (principal, key), so of two concurrent
requests with the same key exactly one inserts; the other reads the row and learns whether
the first is finished (its answer), still running, or was another request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from store.engine import transaction
from store.tables import IdempotencyRecord


@dataclass(frozen=True)
class Claimed:
    record_id: int
    token: str


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: str
    headers: dict[str, str]


@dataclass(frozen=True)
class InProgress:
    since: datetime


@dataclass(frozen=True)
class Mismatch:
    """The key was first used for another request: `operation` says which route."""

    operation: str
    same_operation: bool


Claim = Claimed | Replay | InProgress | Mismatch


def _insert_claim(session: Session, values: dict[str, object]) -> bool:
    table = IdempotencyRecord.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["principal", "key"])
        .returning(table.c.id)
    )
    # RETURNING, not rowcount: drivers do not all report a row count for ON CONFLICT.
    return session.execute(statement).first() is not None


def claim(
    engine: Engine,
    *,
    principal: str,
    key: str,
    operation: str,
    fingerprint: str,
    now: datetime,
    ttl: timedelta,
    lock: timedelta,
) -> Claim:
    """Claim `key` for this request, or say what the key already stands for."""
    token = secrets.token_hex(16)
    with transaction(engine) as session:
        # An expired key is forgotten: it may stand for a new request.
        session.execute(
            delete(IdempotencyRecord).where(
                col(IdempotencyRecord.principal) == principal,
                col(IdempotencyRecord.key) == key,
                col(IdempotencyRecord.created_at) < now - ttl,
            )
        )
        inserted = _insert_claim(
            session,
            {
                "principal": principal,
                "key": key,
                "operation": operation,
                "fingerprint": fingerprint,
                "token": token,
                "locked_at": now,
                "created_at": now,
            },
        )
        row = session.exec(
            select(IdempotencyRecord).where(
                IdempotencyRecord.principal == principal, IdempotencyRecord.key == key
            )
        ).one()
        assert row.id is not None
        if inserted:
            return Claimed(row.id, token)
        if row.operation != operation or row.fingerprint != fingerprint:
            return Mismatch(row.operation, same_operation=row.operation == operation)
        if row.status_code is not None:
            return Replay(row.status_code, row.response_body or "", row.response_headers or {})
        if row.locked_at >= _naive_like(row.locked_at, now - lock):
            return InProgress(row.locked_at)
        # The first attempt died without an answer (a crash): this one takes over.
        taken = session.execute(
            update(IdempotencyRecord)
            .where(
                col(IdempotencyRecord.id) == row.id,
                col(IdempotencyRecord.token) == row.token,
                col(IdempotencyRecord.status_code).is_(None),
            )
            .values(token=token, locked_at=now)
            .returning(col(IdempotencyRecord.id))
        )
        if taken.first() is not None:
            return Claimed(row.id, token)
        return InProgress(now)


def _naive_like(reference: datetime, value: datetime) -> datetime:
    # SQLite hands back naive datetimes (stored in UTC); compare like with like.
    return value.replace(tzinfo=None) if reference.tzinfo is None else value


def complete(
    engine: Engine, claimed: Claimed, status_code: int, body: str, headers: dict[str, str]
) -> None:
    """Record the answer: the same key and request get it from now on."""
    with transaction(engine) as session:
        session.execute(
            update(IdempotencyRecord)
            .where(
                col(IdempotencyRecord.id) == claimed.record_id,
                col(IdempotencyRecord.token) == claimed.token,
            )
            .values(status_code=status_code, response_body=body, response_headers=headers)
        )


def release(engine: Engine, claimed: Claimed) -> None:
    """Forget a claim whose request failed on our side: a retry runs it again."""
    with transaction(engine) as session:
        session.execute(
            delete(IdempotencyRecord).where(
                col(IdempotencyRecord.id) == claimed.record_id,
                col(IdempotencyRecord.token) == claimed.token,
                col(IdempotencyRecord.status_code).is_(None),
            )
        )


def purge_expired(engine: Engine, before: datetime) -> int:
    """Delete keys older than `before` (their answers may quote what people wrote)."""
    with transaction(engine) as session:
        result = session.execute(
            delete(IdempotencyRecord).where(col(IdempotencyRecord.created_at) < before)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
