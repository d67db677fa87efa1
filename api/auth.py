"""API keys: `Authorization: Bearer <key>`, one role per key, only a hash kept at rest.

Keys are 256 random bits, so a plain SHA-256 is enough to store them: a slow password hash
(bcrypt, argon2) guards low-entropy human passwords against guessing, which is not possible
against a random 43-character token. A fast hash also lets us look a key up by its hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam
from sqlalchemy import select as select_columns
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from api.errors import Unauthorized
from api.roles import Role
from store.engine import transaction
from store.tables import ApiKey

# Readable prefix: a leaked key is recognisable (secret scanners, logs) as a Relance key.
KEY_PREFIX = "rl_"
# How much of the key is kept in clear to tell keys apart in listings and audit fields.
SHOWN_CHARS = 10


# The kinds of principal an identity names. People signing in later get `user:<id>`.
API_KEY_IDENTITY = "apikey"

__all__ = ["Principal", "Role", "authenticate", "create_api_key", "identity_of_key"]


def identity_of_key(key_id: int) -> str:
    return f"{API_KEY_IDENTITY}:{key_id}"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's role, its identity and its label (never the secret).

    `identity` is what the workflow and the store record as the actor, and what four-eyes
    compares: two keys never share one, whatever their labels. `name` (the label) is only
    for people to read.
    """

    key_id: int
    role: Role
    prefix: str
    label: str | None
    # A caller that is not an API key (the debtor on their page): recorded as itself.
    actor: str | None = None

    @property
    def identity(self) -> str:
        return self.actor or identity_of_key(self.key_id)

    @property
    def name(self) -> str:
        return self.label or self.prefix


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(engine: Engine, role: Role | str, label: str | None = None) -> str:
    """Store a new key and return it in clear: the only time it can be seen."""
    role = Role(role)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction(engine) as session:
        session.add(
            ApiKey(prefix=key[:SHOWN_CHARS], key_hash=hash_key(key), role=role, label=label)
        )
    return key


def active_keys(session: Session, *, role: Role | None = None) -> list[ApiKey]:
    query = select(ApiKey).where(col(ApiKey.revoked_at).is_(None)).order_by(col(ApiKey.id))
    if role is not None:
        query = query.where(ApiKey.role == role)
    return list(session.exec(query).all())


# Every request runs this lookup: built once, read on a plain connection (no ORM session).
_KEY_BY_HASH = select_columns(
    col(ApiKey.id),
    col(ApiKey.role),
    col(ApiKey.prefix),
    col(ApiKey.label),
    col(ApiKey.revoked_at),
    col(ApiKey.key_hash),
).where(col(ApiKey.key_hash) == bindparam("presented"))


def authenticate(engine: Engine, authorization: str | None) -> Principal:
    """The principal behind an `Authorization` header, or 401."""
    if not authorization:
        raise Unauthorized("missing API key: send `Authorization: Bearer <key>`")
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("the Authorization header must be `Bearer <key>`")
    presented = hash_key(key)
    with engine.connect() as connection:
        found = connection.execute(_KEY_BY_HASH, {"presented": presented}).first()
    # The lookup already matched the hash; the constant-time comparison keeps the check itself
    # free of timing differences should the lookup ever become a prefix search.
    if (
        found is None
        or found.id is None
        or found.revoked_at is not None
        or not hmac.compare_digest(found.key_hash, presented)
    ):
        raise Unauthorized("invalid or revoked API key")
    try:
        role = Role(found.role)
    except ValueError:
        raise Unauthorized("this API key has an unknown role; create a new key") from None
    return Principal(key_id=found.id, role=role, prefix=found.prefix, label=found.label)
