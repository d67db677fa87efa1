"""What the mediation and legal endpoints take in and give back, and what GET /v1/invoices/{n}
shows of them.

A mediation's outcome is recorded once the mediator has the file (stage mediation); an
agreement carries the schedule it sets, which becomes the invoice's payment plan. The legal
partner's progress is recorded once the file is handed off; its costs are the procedure's costs
so far, in the invoice's currency.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from api.collection_schemas import ActionDone, Comment, InstallmentIn, check_scale
from api.schemas import AmountString, IsoDate, SingleLine
from domain.legal import LegalStatus, MediationOutcome
from domain.money import Currency

Reference = SingleLine


class MediationCreate(BaseModel):
    """How the mediation ended: agreement (its installments become the payment plan), failure
    (the escalation goes on to the legal step's approval at once) or withdrawn (the escalation
    carries on where it was)."""

    model_config = ConfigDict(extra="forbid")

    outcome: MediationOutcome
    mediator_reference: Reference = Field(
        min_length=1, max_length=64, examples=["MED-2026-0117"], description="the mediator's file"
    )
    started_on: IsoDate
    ended_on: IsoDate
    note: Comment = ""
    installments: list[InstallmentIn] = Field(
        default=[],
        max_length=60,
        description="agreement only, and required with it: the schedule the agreement sets, in "
        "the invoice's currency, adding up to what is outstanding",
    )

    @model_validator(mode="after")
    def _consistent(self) -> MediationCreate:
        if self.ended_on < self.started_on:
            raise ValueError("ended_on: the mediation cannot end before it started")
        if self.outcome == MediationOutcome.AGREEMENT and not self.installments:
            raise ValueError("installments: an agreement carries the schedule it sets")
        if self.outcome != MediationOutcome.AGREEMENT and self.installments:
            raise ValueError(f"installments: a mediation {self.outcome.value} sets no schedule")
        dates = [i.due_date for i in self.installments]
        if dates != sorted(dates) or len(set(dates)) != len(dates):
            raise ValueError("installments: due dates must be distinct and in order")
        return self


class MediationRecorded(ActionDone):
    outcome: MediationOutcome
    plan_id: str | None = Field(
        default=None, description="agreement: the payment plan its schedule became"
    )


class LegalCreate(BaseModel):
    """The legal partner's progress on a handed-off invoice. `settled` and `abandoned` end the
    collection; payments are still reported on /payments (paid in full, it ends as paid)."""

    model_config = ConfigDict(extra="forbid")

    status: LegalStatus = Field(
        description="filed (injonction de payer filed), order_issued, enforced, settled, abandoned"
    )
    partner_reference: Reference | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        examples=["CAB-2026-88"],
        description="the partner's file; left out, the last one given is kept",
    )
    # Before `costs`: the costs' decimals are checked against it.
    currency: Currency | None = Field(
        default=None, examples=["EUR"], description="the invoice's currency when left out"
    )
    costs: AmountString | None = Field(
        default=None,
        validate_default=True,
        description="the procedure's costs so far, in all (court, bailiff, partner's fees); "
        "left out, the last figure given is kept",
    )
    note: Comment = ""

    @field_validator("costs")
    @classmethod
    def _costs(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        currency = info.data.get("currency")
        if value is None:
            if currency is not None:
                raise ValueError("a currency goes with the costs: give both, or neither")
            return None
        return check_scale(value, currency)


class LegalRecorded(ActionDone):
    legal_status: LegalStatus
