"""Settings refuse demo values in production, and a mistyped IBAN anywhere."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config import DEMO_CREDITOR_NAME, DEMO_PAYMENT_INSTRUCTIONS, Settings

# A real-shaped French IBAN: FR76 3000 6000 0112 3456 7890 189. Check digits by ISO 13616
# mod-97: move "FR76" to the end, letters to numbers (F=15, R=27): the number
# 30006000011234567890189 1527 76 is 1 mod 97 (checked below with Python's int alone).
GOOD_IBAN = "FR76 3000 6000 0112 3456 7890 189"
# The same with its last digit changed: the checksum no longer holds.
BAD_IBAN = "FR76 3000 6000 0112 3456 7890 188"

PRODUCTION = {
    "environment": "production",
    "email_from": "relances@acme-industrie.fr",
    "collectors_email": "recouvrement@acme-industrie.fr",
    "mediator_email": "mediation@cmap.fr",
    "legal_partner_email": "contentieux@cabinet-durand-avocats.fr",
    "creditor_name": "ACME Industrie SAS",
    "payment_instructions": f"Virement IBAN {GOOD_IBAN}\nBIC AGRIFRPP882",
}


def _problems(**values: object) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **values)  # type: ignore[arg-type]
    return str(caught.value)


def test_the_check_digits_in_the_comment_are_right() -> None:
    digits = "30006000011234567890189" + "1527" + "76"
    assert int(digits) % 97 == 1


def test_a_complete_production_configuration_is_accepted() -> None:
    settings = Settings(_env_file=None, **PRODUCTION)  # type: ignore[arg-type]
    assert settings.environment == "production"


def test_production_names_every_placeholder_to_replace() -> None:
    message = _problems(environment="production")

    for variable in (
        "RELANCE_EMAIL_FROM",
        "RELANCE_COLLECTORS_EMAIL",
        "RELANCE_MEDIATOR_EMAIL",
        "RELANCE_LEGAL_PARTNER_EMAIL",
        "RELANCE_CREDITOR_NAME",
        "RELANCE_PAYMENT_INSTRUCTIONS",
    ):
        assert variable in message
    assert DEMO_CREDITOR_NAME in message


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("legal_partner_email", "legal@example.com", "RELANCE_LEGAL_PARTNER_EMAIL"),
        ("mediator_email", "mediation@cabinet.example.org", "RELANCE_MEDIATOR_EMAIL"),
        ("collectors_email", "team@relance.test", "RELANCE_COLLECTORS_EMAIL"),
        ("email_from", "noreply@example.net", "RELANCE_EMAIL_FROM"),
        ("creditor_name", "relance demo sas", "RELANCE_CREDITOR_NAME"),
        ("payment_instructions", DEMO_PAYMENT_INSTRUCTIONS, "RELANCE_PAYMENT_INSTRUCTIONS"),
    ],
)
def test_each_placeholder_alone_is_refused_in_production(
    field: str, value: str, variable: str
) -> None:
    message = _problems(**{**PRODUCTION, field: value})

    assert variable in message
    # Only that one: the message lists what is wrong, not everything.
    others = {"RELANCE_EMAIL_FROM", "RELANCE_CREDITOR_NAME", "RELANCE_MEDIATOR_EMAIL"} - {variable}
    assert not any(other in message for other in others)


def test_demo_values_are_fine_in_development() -> None:
    settings = Settings(_env_file=None)
    assert settings.creditor_name == DEMO_CREDITOR_NAME


def test_a_mistyped_iban_is_refused_in_any_environment() -> None:
    for environment in ("development", "production"):
        message = _problems(
            **{
                **PRODUCTION,
                "environment": environment,
                "payment_instructions": f"Virement IBAN {BAD_IBAN}",
            }
        )
        assert "RELANCE_PAYMENT_INSTRUCTIONS" in message
        assert "FR7630006000011234567890188" in message
        assert "checksum" in message


def test_relance_env_is_accepted_for_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELANCE_ENVIRONMENT", raising=False)
    monkeypatch.setenv("RELANCE_ENV", "production")

    message = _problems()

    assert "RELANCE_CREDITOR_NAME" in message
