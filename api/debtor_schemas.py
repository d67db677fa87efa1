"""What `/v1/debtors` takes in and gives back: the debtor's segment, risk and playbook choice."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator

from api.contact_fields import ChannelFields
from api.schemas import IsoDate, MoneyPublic, MultiLine, SingleLine
from domain.selection import RiskBand, RiskFactor, RiskInputs, Segment, SegmentSource


class SegmentPublic(BaseModel):
    value: Segment | None = Field(description="the segment playbooks are chosen by")
    source: SegmentSource = Field(
        description="given (by the back office), derived (from the size bands) or unknown"
    )
    given: str | None = Field(
        description='the segment the back office gave ("PME" is kept as "pme"; a label '
        "we do not know is kept as sent)"
    )
    annual_revenue: str | None = Field(default=None, examples=["1800000"])
    headcount: int | None = None
    why: str


class RiskPublic(BaseModel):
    score: int = Field(ge=0, le=100)
    band: RiskBand
    reasons: list[str] = Field(description="each factor, its value and the points it adds")
    factors: list[RiskFactor]
    inputs: RiskInputs


class OverridePublic(BaseModel):
    playbook: str | None = None
    opt_out_reason: str | None = None
    opt_out_until: date | None = None
    opt_out_active: bool = Field(
        description="collection is suspended today (until opt_out_until, inclusive)"
    )
    set_by: str
    set_at: datetime


class PlaybookChoicePublic(BaseModel):
    name: str = Field(description="the playbook a new invoice of this debtor would run")
    why: str
    opt_out: str | None = Field(
        default=None, description="set while the debtor is opted out of collection"
    )


class DebtorPublic(BaseModel):
    id: str
    name: str
    country: str
    language: str
    timezone: str | None = None
    subdivision: str | None = None
    as_of: date = Field(description="the day the risk and the opt-out were judged on")
    segment: SegmentPublic
    risk: RiskPublic
    override: OverridePublic | None = None
    playbook: PlaybookChoicePublic
    open_invoices: int = Field(description="invoices still owed, handed-off ones included")
    outstanding: list[MoneyPublic] = Field(description="what it owes, one total per currency")


class OverrideSet(BaseModel):
    """A finance decision about one debtor. Replaces any previous one (fields left out clear).

    `playbook`: every new invoice of the debtor runs this playbook, whatever its segment and
    risk. `opt_out_reason` + `opt_out_until`: no collection for the debtor until that day
    (inclusive), e.g. a negotiation, a key account's yearly review, a receivership.
    """

    model_config = ConfigDict(extra="forbid")

    playbook: SingleLine | None = Field(default=None, min_length=1, max_length=64, examples=["eti"])
    opt_out_reason: MultiLine | None = Field(
        default=None, min_length=1, max_length=2000, examples=["renegotiating the contract"]
    )
    opt_out_until: IsoDate | None = None

    @model_validator(mode="after")
    def _complete(self) -> OverrideSet:
        if (self.opt_out_reason is None) != (self.opt_out_until is None):
            raise ValueError(
                "an opt-out needs both opt_out_reason and opt_out_until (the day collection "
                "may resume)"
            )
        if self.playbook is None and self.opt_out_reason is None:
            raise ValueError(
                "give a playbook, or an opt-out (opt_out_reason and opt_out_until), or both; "
                "to remove the override, DELETE it"
            )
        return self


class ContactCorrection(ChannelFields):
    """Corrected contact details: each channel corrected is used again by the debtor's open
    invoices (email: the address; sms and phone: the number; letter: the postal address).

    The number and the address are checked against the debtor's country, as at hand-over
    (api/contact_fields.py); that needs the stored debtor, so the service does it."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr | None = Field(default=None, max_length=254)
    # phone, and a postal address given whole (it replaces the stored one): a street line, a
    # postal code and a city, as at hand-over (ChannelFields).
    name: str | None = Field(default=None, min_length=1, max_length=200)
    reason: str = Field(default="", max_length=500)

    @model_validator(mode="after")
    def _something(self) -> ContactCorrection:
        if self.email is None and self.phone is None and not self.gives_address:
            raise ValueError(
                "give at least one of email, phone, or a postal address (address_line1, "
                "postal_code and city)"
            )
        return self
