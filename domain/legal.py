"""After the amicable stages: the mediation's outcome, and the legal partner's file.

A mediation ends in an agreement (it becomes a payment plan), a failure (the escalation goes
on to the legal step's approval) or a withdrawal (the escalation carries on where it was). Once
handed off, the file stays open with the legal partner: their reference, where the procedure
stands (injonction de payer filed, order issued, enforced; settled or abandoned end it) and
what it cost so far. Each command is the input of one workflow Update and names its actor.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field, model_validator

from domain.holds import Installment, check_installments
from domain.money import Money

Actor = str


class MediationOutcome(StrEnum):
    AGREEMENT = "agreement"
    FAILURE = "failure"
    WITHDRAWN = "withdrawn"


class MediationResult(BaseModel):
    """A collector records how the mediation ended (the mediator's reference and dates)."""

    outcome: MediationOutcome
    mediator_reference: str = Field(min_length=1, max_length=64)
    started_on: date
    ended_on: date
    note: str = Field(default="", max_length=2000)
    recorded_by: Actor = Field(min_length=1)
    # An agreement: the schedule it sets, proposed as a payment plan under this id.
    plan_id: str | None = Field(default=None, min_length=1, max_length=64)
    installments: list[Installment] = Field(default=[], max_length=60)

    @model_validator(mode="after")
    def _consistent(self) -> MediationResult:
        if self.ended_on < self.started_on:
            raise ValueError("ended_on is before started_on")
        if self.outcome == MediationOutcome.AGREEMENT:
            if not self.installments or self.plan_id is None:
                raise ValueError("an agreement carries the installments it sets")
            check_installments(self.installments)
        elif self.installments:
            raise ValueError(f"a mediation {self.outcome.value} sets no installments")
        return self


class Mediation(BaseModel):
    """What the invoice keeps of its mediation (the read model shows it)."""

    outcome: MediationOutcome
    mediator_reference: str
    started_on: date
    ended_on: date
    recorded_at: datetime


class LegalStatus(StrEnum):
    # Requête en injonction de payer filed with the court (Code de procédure civile 1405).
    FILED = "filed"
    ORDER_ISSUED = "order_issued"
    ENFORCED = "enforced"
    SETTLED = "settled"
    ABANDONED = "abandoned"


# The partner's statuses that end the collection (the invoice stays handed_off, closed).
LEGAL_ENDINGS = frozenset({LegalStatus.SETTLED, LegalStatus.ABANDONED})


class LegalUpdate(BaseModel):
    """A collector reports the legal partner's progress on a handed-off invoice."""

    status: LegalStatus
    # The partner's file reference (kept from the last update when omitted).
    partner_reference: str | None = Field(default=None, min_length=1, max_length=64)
    # The procedure's costs so far (court fees, bailiff, partner's fees), in all.
    costs: Money | None = None
    note: str = Field(default="", max_length=2000)
    by: Actor = Field(min_length=1)


class LegalFile(BaseModel):
    status: LegalStatus
    partner_reference: str | None = None
    costs: Money | None = None
    updated_at: datetime | None = None
