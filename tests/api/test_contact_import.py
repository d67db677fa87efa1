"""A CSV import carries the debtors' phone numbers and postal addresses, checked like the API's."""

from __future__ import annotations

from pathlib import Path

from api.import_schemas import LineReport
from api.schemas import InvoiceCreate
from api.services.imports import read_invoices_csv

HEADER = (
    "number;debtor_id;debtor_name;debtor_email;debtor_country;debtor_language;amount;currency;"
    "issue_date;due_date;phone;address_line1;postal_code;city"
)


def test_phone_and_address_columns_are_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "invoices.csv"
    path.write_text(
        "\n".join(
            [
                HEADER,
                "F-1;C-1;ACME SARL;ap@acme.example;FR;fr;100.00;EUR;2026-01-01;2026-03-01;"
                "06 12 34 56 78;4 avenue des Tilleuls;69003;Lyon",
                "F-2;C-2;Beta SAS;ap@beta.example;FR;fr;100.00;EUR;2026-01-01;2026-03-01;"
                ";1 rue du Port;96000;Paris",
            ]
        ),
        encoding="utf-8",
    )

    (line_2, good), (line_3, bad) = read_invoices_csv(path).lines()

    assert isinstance(good, InvoiceCreate)
    assert good.debtor.phone == "+33612345678"
    assert (good.debtor.address_line1, good.debtor.postal_code) == (
        "4 avenue des Tilleuls",
        "69003",
    )
    assert isinstance(bad, LineReport) and bad.result == "rejected"
    assert "no French postcode" in " ".join(e.message for e in bad.errors)
    assert (line_2, line_3) == (2, 3)
