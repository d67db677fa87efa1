"""Actors as people read them: `apikey:7` is recorded, its label is shown.

The store and the workflow record who acted by identity (`api.auth.Principal.identity`), so
that two keys with the same label stay two people. Read paths turn identities back into
labels here, in one place; a value that is not an identity (older records kept labels) is
shown as it is.
"""

from __future__ import annotations

import re

from sqlalchemy.engine import Engine
from sqlmodel import Session

from api.auth import API_KEY_IDENTITY
from store.tables import ApiKey

_IDENTITY = re.compile(rf"\b{API_KEY_IDENTITY}:(\d+)\b")


class ActorNames:
    """Labels of the identities met while answering one request (one lookup per key)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._labels: dict[int, str] = {}

    def _label(self, key_id: int) -> str:
        if key_id not in self._labels:
            row = self._session.get(ApiKey, key_id)
            label = (row.label or row.prefix) if row is not None else None
            self._labels[key_id] = label or f"{API_KEY_IDENTITY}:{key_id}"
        return self._labels[key_id]

    def name(self, actor: str | None) -> str | None:
        if actor is None:
            return None
        return self.text(actor)

    def text(self, text: str) -> str:
        """`text` with every identity in it replaced by its label (history summaries)."""
        return _IDENTITY.sub(lambda match: self._label(int(match.group(1))), text)


def display(engine: Engine, actor: str | None) -> str | None:
    """One actor's label, for a sentence (an error saying who already decided)."""
    with Session(engine) as session:
        return ActorNames(session).name(actor)
