"""The channel settings are checked when read, not at the first letter or text."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config import Settings


def test_the_creditor_address_is_json_and_a_valid_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "RELANCE_CREDITOR_ADDRESS",
        '{"street": ["12 rue de la Paix"], "postal_code": "75002", "city": "Paris", '
        '"country": "FR"}',
    )
    assert Settings(_env_file=None).creditor_address == {
        "street": ["12 rue de la Paix"],
        "postal_code": "75002",
        "city": "Paris",
        "country": "FR",
    }

    monkeypatch.setenv(
        "RELANCE_CREDITOR_ADDRESS",
        '{"street": ["12 rue de la Paix"], "postal_code": "99999", "city": "Paris", '
        '"country": "FR"}',
    )
    with pytest.raises(ValidationError, match="no French postcode"):
        Settings(_env_file=None)


def test_twilio_callbacks_go_to_the_public_url() -> None:
    settings = Settings(_env_file=None, public_url="https://relance.example.com/")

    assert settings.twilio_status_callback_url == "https://relance.example.com/v1/webhooks/twilio"
    assert Settings(_env_file=None).twilio_status_callback_url is None
