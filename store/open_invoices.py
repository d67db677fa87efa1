"""Which invoices are still open: one definition for the store's every reader.

An invoice is open before its end stage, and a handed-off one stays open while the legal
partner has its file (rules 2): its history records the end when the partner settles or
abandons it (the first rules' edition recorded it at the hand-off itself).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from domain.collection.records import EventKind
from domain.lifecycle import TERMINAL_STAGES, Stage
from store.tables import Event, Invoice

OPEN_STAGES = tuple(s.value for s in Stage if s not in TERMINAL_STAGES)


def _closed_event() -> Any:
    return exists().where(
        col(Event.invoice_number) == col(Invoice.number), col(Event.kind) == EventKind.CLOSED.value
    )


def open_hand_off() -> ColumnElement[bool]:
    """Handed off and still open: the file is with the legal partner and the invoice still
    owed (rules 2). Its history records the end when the partner settles or abandons it; the
    first rules' edition recorded it at the hand-off itself."""
    return and_(col(Invoice.stage) == Stage.HANDED_OFF.value, ~_closed_event())


def still_open() -> ColumnElement[bool]:
    """The open portfolio: every stage before the end, and the open hand-offs (receivable
    still, at the legal stage). Every report, gauge and page that says "open" uses this."""
    return or_(col(Invoice.stage).in_(OPEN_STAGES), open_hand_off())
