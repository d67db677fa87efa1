"""What the API takes in and gives back. Never the table classes: those are the store's.

Amounts travel as decimal *strings* ("1200.00"): a JSON number is a binary float in most
clients, and 0.1 + 0.2 is not a sum an accounting system should see.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    JsonValue,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from api.contact_fields import ChannelFields, check_contact
from api.errors import Problem
from domain.calendar import debtor_timezone, is_business_day
from domain.dates import EARLIEST_DATE, YEARS_AHEAD, check_date
from domain.law import InterestClause, RateUnknownError, check_contractual_rate
from domain.lifecycle import ApprovalStatus, Stage
from domain.money import MAX_AMOUNT, Currency, Money, check_amount, quantize

# Each rule is one pattern, checked with fullmatch here and stated as is in the OpenAPI schema
# (where `^...$` anchors the whole string: ECMA-262's `$` does not match before a final
# newline, Python's does, hence fullmatch). ASCII digits only: Python's \d also takes "١٢".
AMOUNT_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,3})?$"
REVENUE_PATTERN = r"^[0-9]{1,15}(\.[0-9]{1,2})?$"
# Zero written any way ("0", "00.000"): matches the amount pattern, is not an amount.
ZERO_PATTERN = r"^0+(\.0+)?$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# What the schema states of a date: the syntax, and the year from the window's start (2015)
# on. The window's end moves with today: the description says it, the API checks it.
WINDOW_DATE_PATTERN = r"^(201[5-9]|20[2-9][0-9]|2[1-9][0-9]{2}|[3-9][0-9]{3})-[0-9]{2}-[0-9]{2}$"
NUMBER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
# Names, references, labels: one line of printable text. No C0/C1 control characters (CR,
# LF, NUL, ESC...), no DEL, no Unicode line or paragraph separators: such a character in a
# name would break an email header, a log line or a letter's address block.
SINGLE_LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
# Comments and notes may span lines (LF, and TAB), nothing else of the control characters.
MULTI_LINE_PATTERN = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]*$"
_AMOUNT = re.compile(AMOUNT_PATTERN[1:-1])
_REVENUE = re.compile(REVENUE_PATTERN[1:-1])
_ISO_DATE = re.compile(DATE_PATTERN[1:-1])
_NUMBER = re.compile(NUMBER_PATTERN[1:-1])
_SINGLE_LINE = re.compile(SINGLE_LINE_PATTERN[1:-1])
_MULTI_LINE = re.compile(MULTI_LINE_PATTERN[1:-1])

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
# IANA time zones the debtor may be given (the tz database this Python reads).
# (Without the system's own aliases: "localtime" is this machine's zone, "Factory" no zone.)
TIMEZONES = frozenset(available_timezones()) - {"localtime", "Factory", "posixrules"}
TimeZoneName = Annotated[str, Field(json_schema_extra={"enum": list[JsonValue](sorted(TIMEZONES))})]
# Languages the message templates exist in.
Language = Literal["fr", "en"]


def _text(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"must be {what}, without control characters, got {value!r}")
        return value

    return check


SingleLine = Annotated[
    str,
    AfterValidator(_text(_SINGLE_LINE, "one line of text")),
    Field(json_schema_extra={"pattern": SINGLE_LINE_PATTERN}),
]
MultiLine = Annotated[
    str,
    AfterValidator(_text(_MULTI_LINE, "text (line breaks allowed)")),
    Field(json_schema_extra={"pattern": MULTI_LINE_PATTERN}),
]


def _decimal_string(value: object) -> Decimal:
    if isinstance(value, Decimal):
        return check_amount(value, None)
    if not isinstance(value, str):
        raise ValueError(
            'must be a decimal string such as "1200.00", not a JSON number '
            "(numbers are floats in most clients and can lose cents)"
        )
    if value.startswith("-") and _AMOUNT.fullmatch(value[1:]):
        raise ValueError(f"must be greater than 0, got {value!r}")
    if not _AMOUNT.fullmatch(value):
        raise ValueError(
            'must be a decimal string such as "1200.00": ASCII digits, at most 12 before the '
            f"point and 3 after (amounts are below {MAX_AMOUNT:,.0f}), got {value!r}"
        )
    return check_amount(Decimal(value), None)


AmountString = Annotated[
    Decimal,
    PlainValidator(_decimal_string),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": AMOUNT_PATTERN,
            "not": {"pattern": ZERO_PATTERN},
            "examples": ["1200.00"],
            "description": "a decimal string greater than 0 and below 10^12, with no more "
            "decimals than the currency has (EUR 2, JPY 0, BHD 3)",
        }
    ),
]


def _revenue(value: object) -> Decimal:
    # A turnover may be 0 (a company in its first year); an integer is exact, a float is not.
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**15:
        return Decimal(value)
    if isinstance(value, str) and _REVENUE.fullmatch(value):
        return Decimal(value)
    if isinstance(value, int | str) and str(value).startswith("-"):
        raise ValueError(f"a turnover cannot be negative, got {value!r}")
    raise ValueError(
        'a yearly turnover in euros: a decimal string such as "1800000" or a whole JSON '
        f"number, from 0 to below 10^15, got {value!r}"
    )


RevenueString = Annotated[
    Decimal,
    PlainValidator(_revenue),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": REVENUE_PATTERN},
                {"type": "integer", "minimum": 0, "maximum": 10**15 - 1},
            ],
            "examples": ["1800000"],
        }
    ),
]


def _check_scale(amount: Decimal, info: ValidationInfo) -> Decimal:
    """No silent rounding of money: 10.001 EUR is refused, not turned into 10.00."""
    return check_amount(amount, info.data.get("currency"))


def _check_number(value: str) -> str:
    if not _NUMBER.fullmatch(value):
        raise ValueError(
            "may only contain letters, digits, '.', '_' and '-', starting with a letter or "
            f"digit (it becomes part of URLs and workflow ids), got {value!r}"
        )
    return value


InvoiceNumber = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        examples=["INV-2026-0042"],
        json_schema_extra={"pattern": NUMBER_PATTERN},
    ),
]


def _iso_date(value: object) -> object:
    # Lax pydantic would read a JSON number as a Unix timestamp: a date is YYYY-MM-DD only.
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValueError(f"must be a date written YYYY-MM-DD, got {value!r}")
    return value


def _in_window(value: date) -> date:
    return check_date(value, datetime.now(UTC).date())


IsoDate = Annotated[
    date,
    BeforeValidator(_iso_date),
    AfterValidator(_in_window),
    Field(
        examples=["2026-03-31"],
        description=f"YYYY-MM-DD, from {EARLIEST_DATE.isoformat()} (where the interest rate "
        f"tables start) to {YEARS_AHEAD} years from today",
        json_schema_extra={"pattern": WINDOW_DATE_PATTERN},
    ),
]


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


class DebtorIn(ChannelFields):
    # Channels beyond email: ChannelFields (validated in api/contact_fields.py).
    model_config = ConfigDict(extra="forbid")

    # The back office's own id for the customer: opaque, it appears in Temporal search
    # attributes, so it must not be a name or an email address.
    id: str = Field(
        min_length=1,
        max_length=64,
        examples=["CUST-0042"],
        json_schema_extra={"pattern": NUMBER_PATTERN},
    )
    name: SingleLine = Field(min_length=1, max_length=200, examples=["Dupont & Fils SARL"])
    email: EmailStr = Field(max_length=254, examples=["compta@dupont.example"])
    country: str = Field(
        examples=["FR"],
        description="ISO 3166-1 alpha-2",
        json_schema_extra={"enum": list[JsonValue](sorted(COUNTRIES))},
    )
    language: Language = Field(examples=["fr"])
    segment: SingleLine | None = Field(default=None, max_length=32, examples=["PME"])
    # Size, from which the segment is derived when none is given (décret 2008-1354 bands).
    annual_revenue: RevenueString | None = Field(
        default=None, description="yearly turnover in euros, a decimal string"
    )
    headcount: int | None = Field(default=None, ge=0, le=10_000_000, examples=[42])
    # Where the debtor is, for business days and the send window.
    timezone: TimeZoneName | None = Field(
        default=None,
        examples=["Europe/Paris"],
        description="IANA time zone; default: the country's main one",
    )
    subdivision: SingleLine | None = Field(
        default=None,
        max_length=16,
        examples=["BY"],
        description="region for public holidays (ISO 3166-2 code without the country, e.g. "
        "'BY' for Bavaria, '57' for Moselle)",
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
        if value is not None and value not in TIMEZONES:
            raise ValueError(f"unknown time zone {value!r} (expected an IANA name)")
        if value is not None:
            debtor_timezone("FR", value)
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
    late_interest_rate: str | None = Field(
        default=None,
        max_length=40,
        examples=["3x_legal", "12.50"],
        description="the contractual late-payment rate of this invoice: a multiple of the legal "
        "interest rate ('3x_legal') or an annual percent ('12.50'); at least 3 × the legal rate "
        "(Code de commerce L441-10 II). Default: the creditor's terms, else ECB + 10 points",
    )

    @field_validator("number")
    @classmethod
    def _number(cls, value: str) -> str:
        return _check_number(value)

    @field_validator("late_interest_rate")
    @classmethod
    def _late_interest_rate(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        clause = InterestClause.parse(value)  # ValueError says how to write it
        due = info.data.get("due_date")
        if due is not None:
            try:
                check_contractual_rate(clause, due)  # RateBelowFloorError says why
            except RateUnknownError as exc:
                raise ValueError(
                    f"cannot check the rate against the legal minimum: {exc}"
                ) from None
        return str(clause)

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


class InterestSegmentPublic(BaseModel):
    """One line of the interest: a principal late over days of one half-year, at one rate."""

    principal: MoneyPublic
    start: date = Field(description="first day of interest (inclusive)")
    end: date = Field(description="last day of interest (inclusive)")
    days: int
    rate: str = Field(description="annual percent", examples=["13.15"])
    basis: str = Field(examples=["ecb_plus_10"])
    clause: str | None = None
    half_year: str = Field(examples=["2025-H1"])
    provisional: bool


class LatePaymentCostsPublic(BaseModel):
    """What an invoice paid after its due date still owes: interest to each payment's day and
    the 40 € recovery indemnity (Code de commerce L441-10 II, D441-5)."""

    interest: MoneyPublic
    indemnity: MoneyPublic = Field(description="always 40 EUR, once per invoice")
    total: MoneyPublic = Field(
        description="interest + indemnity for an invoice in EUR; the interest alone otherwise"
    )
    indemnity_in_total: bool
    currency: str
    paid_on: date = Field(description="the day the last payment settled the invoice")
    days_late: int
    provisional: bool = Field(description="a rate used is past the tables or unconfirmed")
    segments: list[InterestSegmentPublic] = []


class MediationPublic(BaseModel):
    outcome: str
    mediator_reference: str
    started_on: date
    ended_on: date
    note: str = ""
    recorded_by: str | None = None
    recorded_at: datetime
    plan_id: str | None = None


class LegalPublic(BaseModel):
    status: str
    partner_reference: str | None = None
    costs: MoneyPublic | None = None
    note: str = ""
    recorded_by: str | None = None
    updated_at: datetime


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
    # The last day an action for payment can be brought: 5 years from the due date (Code de
    # commerce L110-4), restarted by the latest acknowledgment of the debt (Civil code 2240),
    # never by a formal notice. None once nothing is owed.
    limitation_date: date | None = None
    # Paid after its due date: the late-payment costs it still owes (once computed).
    late_payment_costs: LatePaymentCostsPublic | None = None
    # How the mediation ended, and the legal partner's file once handed off (their latest).
    mediation: MediationPublic | None = None
    legal: LegalPublic | None = None


# ------------------------------------------------------------------ payments


class PaymentCreate(BaseModel):
    """A payment received for an invoice. The reference makes it idempotent."""

    model_config = ConfigDict(extra="forbid")

    reference: SingleLine = Field(min_length=1, max_length=128, examples=["VIR-2026-03-31-0001"])
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
    comment: MultiLine = Field(default="", max_length=2000)


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


# What each error status means on this API, for the OpenAPI document.
_ERROR_MEANINGS = {
    400: "Malformed body: not JSON, or not UTF-8",
    401: "Missing, malformed or revoked API key",
    403: "The API key's role may not do this, or a four-eyes rule forbids it",
    404: "Unknown resource",
    409: "The request conflicts with the invoice's current state",
    410: "The signed link has expired: ask for a new one",
    413: "The body is too large",
    422: "Invalid fields: each one in `errors`, with its location",
    500: "A bug or a broken server configuration: nothing the client can fix",
    502: "Temporal (or the invoice's workflow) failed: `detail` says whether anything was recorded",
    503: "Temporal or the store is unavailable, or the invoice's workflow is stuck: retry "
    "after `Retry-After` seconds",
    504: "No answer in time: the outcome is unknown, retry the same request (same "
    "Idempotency-Key) to learn it",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 0},
    }
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the errors a route may answer with, as problem details.

    A route that may find Temporal unavailable (503) may also get its failures (502) and its
    silences (504): naming 503 documents all three.
    """
    wanted = set(codes)
    if 503 in wanted:
        wanted |= {502, 504}
    responses: dict[int | str, dict[str, Any]] = {}
    for code in sorted(wanted):
        response: dict[str, Any] = {"model": Problem, "description": _ERROR_MEANINGS[code]}
        if code in (502, 503, 504):
            response["headers"] = _RETRY_AFTER
        responses[code] = response
    return responses
