"""What the API takes in and gives back. Never the table classes: those are the store's.

Amounts travel as decimal *strings* ("1200.00"): a JSON number is a binary float in most
clients, and 0.1 + 0.2 is not a sum an accounting system should see.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from api.contact_fields import ATTN_HELP, PHONE_HELP, check_contact
from domain.calendar import debtor_timezone, is_business_day
from domain.lifecycle import ApprovalStatus, Stage
from domain.money import Currency, Money, minor_units, quantize

_DECIMAL = re.compile(r"^[+-]?\d+(\.\d+)?$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# ISO 3166-1 alpha-2, the officially assigned codes.
_COUNTRY_CODES = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO
BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ
DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP
GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG
KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML
MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE
PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL
SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM
US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
"""
COUNTRIES = frozenset(_COUNTRY_CODES.split())
# Languages the message templates exist in.
Language = Literal["fr", "en"]


def _decimal_string(value: object) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str):
        raise ValueError(
            'must be a decimal string such as "1200.00", not a JSON number '
            "(numbers are floats in most clients and can lose cents)"
        )
    text = value.strip()
    if not _DECIMAL.match(text):
        raise ValueError(f'must be a decimal string such as "1200.00", got {value!r}')
    try:
        amount = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern already rules this out
        raise ValueError(f'must be a decimal string such as "1200.00", got {value!r}') from None
    if amount <= 0:
        raise ValueError(f"must be greater than 0, got {value!r}")
    return amount


AmountString = Annotated[
    Decimal,
    PlainValidator(_decimal_string),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?$", "examples": ["1200.00"]}),
]


def _revenue(value: object) -> Decimal:
    # A turnover may be 0 (a company in its first year); an integer is exact, a float is not.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and _DECIMAL.match(value.strip()):
        amount = Decimal(value.strip())
        if amount < 0:
            raise ValueError(f"a turnover cannot be negative, got {value!r}")
        if amount == 0:
            return Decimal(0)
    return _decimal_string(value)


RevenueString = Annotated[
    Decimal,
    PlainValidator(_revenue),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?$", "examples": ["1800000"]}),
]


def _check_scale(amount: Decimal, info: ValidationInfo) -> Decimal:
    """No silent rounding of money: 10.001 EUR is refused, not turned into 10.00."""
    currency = info.data.get("currency")
    if currency is not None and quantize(amount, currency) != amount:
        raise ValueError(
            f"{amount} has more decimals than {currency} allows ({minor_units(currency)})"
        )
    return amount


def _check_number(value: str) -> str:
    if not _NUMBER.match(value):
        raise ValueError(
            "may only contain letters, digits, '.', '_' and '-', starting with a letter or "
            f"digit (it becomes part of URLs and workflow ids), got {value!r}"
        )
    return value


InvoiceNumber = Annotated[str, Field(min_length=1, max_length=64, examples=["INV-2026-0042"])]


def _iso_date(value: object) -> object:
    # Lax pydantic would read a JSON number as a Unix timestamp: a date is YYYY-MM-DD only.
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError(f"must be a date written YYYY-MM-DD, got {value!r}")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date), Field(examples=["2026-03-31"])]


class MoneyPublic(BaseModel):
    amount: str = Field(examples=["1200.00"])
    currency: str = Field(examples=["EUR"])

    @classmethod
    def of(cls, amount: Decimal, currency: str) -> MoneyPublic:
        return cls(amount=str(quantize(amount, currency)), currency=currency)

    @classmethod
    def from_money(cls, money: Money) -> MoneyPublic:
        return cls.of(money.amount, money.currency)


# ------------------------------------------------------------------ invoices


class DebtorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The back office's own id for the customer: opaque, it appears in Temporal search
    # attributes, so it must not be a name or an email address.
    id: str = Field(min_length=1, max_length=64, examples=["CUST-0042"])
    name: str = Field(min_length=1, max_length=200, examples=["Dupont & Fils SARL"])
    email: EmailStr = Field(examples=["compta@dupont.example"])
    country: str = Field(examples=["FR"], description="ISO 3166-1 alpha-2")
    language: Language = Field(examples=["fr"])
    segment: str | None = Field(default=None, max_length=32, examples=["PME"])
    # Size, from which the segment is derived when none is given (décret 2008-1354 bands).
    annual_revenue: RevenueString | None = Field(
        default=None, description="yearly turnover in euros, a decimal string"
    )
    headcount: int | None = Field(default=None, ge=0, le=10_000_000, examples=[42])
    # Where the debtor is, for business days and the send window.
    timezone: str | None = Field(
        default=None,
        max_length=64,
        examples=["Europe/Paris"],
        description="IANA time zone; default: the country's main one",
    )
    subdivision: str | None = Field(
        default=None,
        max_length=16,
        examples=["BY"],
        description="region for public holidays (ISO 3166-2 code without the country, e.g. "
        "'BY' for Bavaria, '57' for Moselle)",
    )
    # Channels beyond email (validated in api/contact_fields.py; flat, so CSV columns map).
    phone: str | None = Field(
        default=None, max_length=32, examples=["06 12 34 56 78"], description=PHONE_HELP
    )
    address_line1: str | None = Field(default=None, max_length=38, examples=["12 rue de la Paix"])
    address_line2: str | None = Field(default=None, max_length=38)
    address_line3: str | None = Field(default=None, max_length=38)
    postal_code: str | None = Field(default=None, max_length=16, examples=["75002"])
    city: str | None = Field(default=None, max_length=64, examples=["Paris"])
    address_attention: str | None = Field(
        default=None, max_length=38, examples=["Service comptabilité"], description=ATTN_HELP
    )

    @model_validator(mode="after")
    def _contact(self) -> DebtorIn:
        check_contact(self)
        return self

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _check_number(value)

    @field_validator("headcount", mode="before")
    @classmethod
    def _whole_headcount(cls, value: object) -> object:
        # Lax pydantic would turn "12" or 12.0 into 12; a count of people is a JSON integer.
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"must be a whole number of employees, got {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            debtor_timezone("FR", value)  # raises ValueError naming the unknown zone
        return value

    @field_validator("subdivision")
    @classmethod
    def _subdivision(cls, value: str | None, info: ValidationInfo) -> str | None:
        country = info.data.get("country")
        if value is not None and country is not None:
            # Any day will do: the holiday calendar refuses a subdivision it does not know.
            is_business_day(date(2026, 1, 5), country, value)
        return value

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        if value not in COUNTRIES:
            raise ValueError(
                f"must be an ISO 3166-1 alpha-2 code in capitals such as FR, got {value!r}"
            )
        return value


class InvoiceCreate(BaseModel):
    """An invoice handed over for collection. Sending the same one again is safe."""

    model_config = ConfigDict(extra="forbid")

    number: InvoiceNumber
    debtor: DebtorIn
    # Before `amount`: the amount's decimals are checked against the currency.
    currency: Currency = Field(examples=["EUR"], description="ISO 4217, in capitals")
    amount: AmountString
    issue_date: IsoDate
    due_date: IsoDate

    @field_validator("number")
    @classmethod
    def _number(cls, value: str) -> str:
        return _check_number(value)

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        return _check_scale(value, info)

    @field_validator("due_date")
    @classmethod
    def _due_after_issue(cls, value: date, info: ValidationInfo) -> date:
        issued = info.data.get("issue_date")
        if issued is not None and value < issued:
            raise ValueError(f"due_date {value} is before issue_date {issued}")
        return value


class NextStepPublic(BaseModel):
    step_id: str
    stage: Stage | None = Field(description="the stage the step belongs to")
    at: datetime
    needs_approval: bool = False
    note: str | None = None


class ApprovalPublic(BaseModel):
    id: str
    invoice_number: str
    step_id: str
    target_stage: Stage
    status: ApprovalStatus
    requested_at: datetime
    reminders_sent: int = 0
    decided_at: datetime | None = None
    decided_by: str | None = None
    comment: str | None = None


class PaymentPublic(BaseModel):
    reference: str
    amount: MoneyPublic
    outstanding_after: MoneyPublic
    overpayment: MoneyPublic | None = None
    received_on: date | None = None
    recorded_at: datetime


class InvoicePublic(BaseModel):
    number: str
    debtor_id: str
    amount: MoneyPublic
    issue_date: date
    due_date: date
    stage: str
    outstanding: MoneyPublic
    overpayment: MoneyPublic | None = None
    next_step: NextStepPublic | None = None
    pending_approval: ApprovalPublic | None = None
    payments: list[PaymentPublic] = []
    # The scenario it runs (the version it started with, kept whatever the file becomes).
    playbook: str | None = None
    playbook_version: int | None = None
    # Things the back office should know about its hand-over (e.g. the debtor is opted out).
    warnings: list[str] = []


# ------------------------------------------------------------------ payments


class PaymentCreate(BaseModel):
    """A payment received for an invoice. The reference makes it idempotent."""

    model_config = ConfigDict(extra="forbid")

    reference: str = Field(min_length=1, max_length=128, examples=["VIR-2026-03-31-0001"])
    currency: Currency = Field(examples=["EUR"])
    amount: AmountString
    received_on: IsoDate | None = None

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        return _check_scale(value, info)


class PaymentRecorded(BaseModel):
    reference: str
    amount: MoneyPublic
    outstanding: MoneyPublic
    stage: str
    overpayment: MoneyPublic | None = None


# ------------------------------------------------------------------ approvals


class DecisionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: StrictBool
    comment: str = Field(default="", max_length=2000)


class DecisionPublic(BaseModel):
    approval_id: str
    approved: bool
    decided_by: str
    # False when the workflow accepted the decision but is still carrying it out (e.g. sending
    # the mediation file): the invoice's state below is then the last one recorded.
    applied: bool
    stage: str
    outstanding: MoneyPublic
    next_step: NextStepPublic | None = None


# ------------------------------------------------------------------ history


class HistoryEntry(BaseModel):
    at: datetime
    kind: str = Field(
        description="a workflow event (opened, step_done, payment, approval_requested, ...) "
        "or message_sent / message_failed / message_pending"
    )
    summary: str
    stage: str | None = None
    detail: dict[str, Any] = {}


# ------------------------------------------------------------------ health


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    store: str
    temporal: str


class ErrorBody(BaseModel):
    """Every error the API answers with (validation errors list each bad field instead)."""

    detail: str


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the errors a route may answer with."""
    return {code: {"model": ErrorBody} for code in codes}
