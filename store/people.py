"""People who sign in to the console, and their sessions.

API keys stay for machines; a person has an account with a role and a password (only its
argon2 hash is kept), and signs in for a session whose token is kept hashed as well.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from store.tables import utcnow


class PersonRole(StrEnum):
    COLLECTOR = "collector"  # approvals, calls, disputes, plans
    OPS = "ops"  # inspection, pauses, write-offs
    FINANCE = "finance"  # portfolio and reports
    ADMIN = "admin"  # everything, and the people


class Language(StrEnum):
    FR = "fr"
    EN = "en"


class UserBase(SQLModel):
    email: str = Field(max_length=320, unique=True, index=True)
    role: str = Field(max_length=16)
    language: str = Field(default=Language.FR, max_length=8)


class UserCreate(UserBase):
    password: str = Field(min_length=12, max_length=256)


class UserAccount(UserBase, table=True):
    __tablename__ = "user_account"

    id: int | None = Field(default=None, primary_key=True)
    password_hash: str = Field(max_length=256)
    # Consecutive wrong passwords; reset by a successful sign-in.
    failed_logins: int = 0
    locked_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    disabled_at: datetime | None = None


class UserPublic(UserBase):
    id: int
    locked: bool
    created_at: datetime


class ConsoleSession(SQLModel, table=True):
    __tablename__ = "console_session"

    # SHA-256 of the cookie's random token: a stolen database gives no usable session.
    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
