"""People's accounts: argon2 passwords, sessions, lockout, and the principal a person acts as.

API keys stay for machines. A person signs in with an email and a password; the session
cookie holds a random token whose SHA-256 only is stored. After LOCK_AFTER wrong passwords in a
row the account locks until an admin unlocks it (`relance user unlock EMAIL`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select

from api.auth import Principal, Role
from api.errors import Conflict, Invalid, NotFound
from store.engine import transaction
from store.people import ConsoleSession, Language, PersonRole, UserAccount, UserCreate
from store.portfolio import aware

LOCK_AFTER = 5
SESSION_LIFETIME = timedelta(hours=12)

# argon2id with the library's defaults (RFC 9106's second recommended option).
_hasher = PasswordHasher()
# Verified against when the email is unknown, so a wrong email costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

# What a person's role may do through the services the API uses. Until API keys know a finance
# role, finance people act with ops' rights (read-only for the services).
SERVICE_ROLE: dict[PersonRole, Role] = {
    PersonRole.COLLECTOR: Role.COLLECTOR,
    PersonRole.OPS: Role.OPS,
    PersonRole.FINANCE: Role.FINANCE,
    PersonRole.ADMIN: Role.ADMIN,
}


class Action:
    """What the console lets each role do (admin may do everything)."""

    DECIDE = frozenset({PersonRole.COLLECTOR})
    CALL_OUTCOME = frozenset({PersonRole.COLLECTOR})
    DISPUTE = frozenset({PersonRole.COLLECTOR})
    PLAN = frozenset({PersonRole.COLLECTOR})
    PAUSE = frozenset({PersonRole.COLLECTOR, PersonRole.OPS})
    WRITE_OFF = frozenset({PersonRole.OPS})
    CANCEL = frozenset[PersonRole]()
    PEOPLE = frozenset[PersonRole]()


def allowed(role: PersonRole, action: frozenset[PersonRole]) -> bool:
    return role == PersonRole.ADMIN or role in action


class SignInRefused(Exception):
    """Wrong email or password, or a locked account: the message is safe to show."""


@dataclass(frozen=True)
class Person:
    """Who is signed in, with the session's CSRF token."""

    id: int
    email: str
    role: PersonRole
    language: Language
    csrf_token: str

    @property
    def identity(self) -> str:
        return f"user:{self.id}"

    def principal(self) -> Principal:
        """The principal the services record: identity `user:<id>`, the person's role."""
        return Principal(
            key_id=0,
            role=SERVICE_ROLE[self.role],
            prefix=self.identity,
            label=self.identity,
            actor=self.identity,
        )

    def may(self, action: frozenset[PersonRole]) -> bool:
        return allowed(self.role, action)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _normal(email: str) -> str:
    return email.strip().lower()


def add_user(
    engine: Engine, email: str, role: PersonRole, password: str, language: Language
) -> UserAccount:
    try:
        body = UserCreate.model_validate(
            {"email": _normal(email), "role": role, "password": password, "language": language}
        )
    except ValueError as err:
        raise Invalid(f"cannot create {email}: {err}") from None
    with transaction(engine) as session:
        if session.exec(select(UserAccount).where(UserAccount.email == body.email)).first():
            raise Conflict(f"a person with the email {body.email} already exists")
        user = UserAccount(
            email=body.email,
            role=PersonRole(body.role),
            language=body.language,
            password_hash=_hasher.hash(body.password),
        )
        session.add(user)
        session.flush()
        return user


def unlock(engine: Engine, email: str) -> None:
    with transaction(engine) as session:
        user = session.exec(select(UserAccount).where(UserAccount.email == _normal(email))).first()
        if user is None:
            raise NotFound(f"no person with the email {email}")
        user.failed_logins = 0
        user.locked_at = None


def people(engine: Engine) -> list[UserAccount]:
    with Session(engine) as session:
        return list(session.exec(select(UserAccount).order_by(col(UserAccount.email))).all())


def sign_in(engine: Engine, email: str, password: str) -> str:
    """A new session's token for the right password; otherwise SignInRefused."""
    with transaction(engine) as session:
        user = session.exec(select(UserAccount).where(UserAccount.email == _normal(email))).first()
        if user is None or user.id is None or user.disabled_at is not None:
            _verify(_DUMMY_HASH, password)
            raise SignInRefused("wrong email or password")
        if user.locked_at is not None:
            raise SignInRefused(
                f"this account is locked after {LOCK_AFTER} wrong passwords: ask an admin"
            )
        if not _verify(user.password_hash, password):
            user.failed_logins += 1
            if user.failed_logins >= LOCK_AFTER:
                user.locked_at = datetime.now(UTC)
                session.add(user)
                # Raising rolls the transaction back: the count is committed first.
                session.commit()
                raise SignInRefused(
                    f"this account is now locked after {LOCK_AFTER} wrong passwords: ask an admin"
                )
            session.add(user)
            session.commit()
            raise SignInRefused("wrong email or password")
        user.failed_logins = 0
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        session.add(
            ConsoleSession(
                token_hash=_token_hash(token),
                user_id=user.id,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                expires_at=now + SESSION_LIFETIME,
            )
        )
        return token


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def person_of(engine: Engine, token: str | None) -> Person | None:
    """The person behind a session cookie, or None (unknown, expired, locked or disabled)."""
    if not token:
        return None
    with Session(engine) as session:
        found = session.exec(
            select(ConsoleSession, UserAccount)
            .join(UserAccount, col(UserAccount.id) == col(ConsoleSession.user_id))
            .where(ConsoleSession.token_hash == _token_hash(token))
        ).first()
    if found is None:
        return None
    row, user = found
    if aware(row.expires_at) <= datetime.now(UTC) or user.id is None:
        return None
    if user.locked_at is not None or user.disabled_at is not None:
        return None
    return Person(
        id=user.id,
        email=user.email,
        role=PersonRole(user.role),
        language=Language(user.language),
        csrf_token=row.csrf_token,
    )


def sign_out(engine: Engine, token: str | None) -> None:
    if not token:
        return
    with transaction(engine) as session:
        gone = delete(ConsoleSession).where(col(ConsoleSession.token_hash) == _token_hash(token))
        session.execute(gone)


def set_language(engine: Engine, person: Person, language: Language) -> None:
    with transaction(engine) as session:
        user = session.get(UserAccount, person.id)
        if user is not None:
            user.language = language


def same_token(expected: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(expected, presented or "")
