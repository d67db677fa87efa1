"""The debtor's phone number and postal address, as the hand-over (API and CSV) takes them.

Kept out of api/schemas.py so the rules live in one place: the number becomes E.164
(domain/phone.py), the address is checked against its country's rules (domain/postal.py). An
address is all or nothing: a street line, a postal code and a city.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field

from domain.phone import InvalidPhoneNumber, normalize_phone
from domain.postal import InvalidAddress, PostalAddress, postal_address

PHONE_HELP = (
    "the debtor's phone number, national for its country or international (+33...); stored "
    "in E.164. Texts go to it when the playbook uses SMS, and collectors call it"
)
ATTN_HELP = "the department or person the letter is for, under the company's name"
ADDRESS_FIELDS = ("address_line1", "address_line2", "address_line3", "postal_code", "city")


class ChannelFields(BaseModel):
    """The number and the postal address as a request gives them (flat, so CSV columns map):
    the hand-over's debtor and a contact correction."""

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

    @property
    def gives_address(self) -> bool:
        return any(getattr(self, f) is not None for f in (*ADDRESS_FIELDS, "address_attention"))


class AddressFields(Protocol):
    address_line1: str | None
    address_line2: str | None
    address_line3: str | None
    postal_code: str | None
    city: str | None
    address_attention: str | None


class ContactFields(AddressFields, Protocol):
    name: str
    country: str
    phone: str | None


def check_contact(debtor: ContactFields) -> None:
    """Normalise the phone number in place; raise ValueError naming what is wrong."""
    if debtor.phone is not None and debtor.phone.strip():
        try:
            debtor.phone = normalize_phone(debtor.phone, debtor.country)
        except InvalidPhoneNumber as exc:
            raise ValueError(f"phone: {exc}") from exc
    elif debtor.phone is not None:
        debtor.phone = None
    address_of(debtor)


def address_of(debtor: ContactFields) -> PostalAddress | None:
    return address_for(debtor, debtor.name, debtor.country)


def address_for(debtor: AddressFields, name: str, country: str) -> PostalAddress | None:
    """The address given for the company `name` in `country`, validated; None if none is."""
    given = [getattr(debtor, name) for name in ADDRESS_FIELDS]
    if not any(v and v.strip() for v in given) and not debtor.address_attention:
        return None
    missing = [
        name
        for name in ("address_line1", "postal_code", "city")
        if not (getattr(debtor, name) or "").strip()
    ]
    if missing:
        raise ValueError(
            f"a postal address needs address_line1, postal_code and city; missing: "
            f"{', '.join(missing)}"
        )
    try:
        return postal_address(
            name=name,
            attention=debtor.address_attention,
            street=[
                line
                for line in (debtor.address_line1, debtor.address_line2, debtor.address_line3)
                if line
            ],
            postal_code=debtor.postal_code or "",
            city=debtor.city or "",
            country=country,
        )
    except InvalidAddress as exc:
        raise ValueError(f"postal address: {exc}") from exc
