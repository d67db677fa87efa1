"""The `late_payment_costs` activity the workflow calls when an invoice is paid late."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.email import OutboxSender
from activities.law import LateCostsRequest, LawActivities
from activities.mailbox import MailBatch, MailboxActivities
from activities.messaging import MessagingActivities, SendRequest
from config import Settings
from contracts.errors import ErrorType
from domain.law import Paid
from domain.money import Money
from domain.playbook import LATE_PAYMENT_STATEMENT_TEMPLATE, Channel, Tone
from messages import Renderer
from store.engine import transaction
from store.messages import sent_messages_of
from store.tables import Payment
from tests.stored import add_invoice


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def request(**changes: object) -> LateCostsRequest:
    values: dict[str, object] = {
        "invoice_number": "F-1",
        "amount": eur("10000"),
        "due_date": date(2025, 3, 31),
        "payments": [
            Paid(received_on=date(2025, 4, 30), amount=eur("4000")),
            Paid(received_on=date(2025, 7, 30), amount=eur("6000")),
        ],
    }
    values.update(changes)
    return LateCostsRequest.model_validate(values)


def test_paid_late_in_two_parts(tmp_path: Path) -> None:
    # Worked in tests/domain/test_late_payment.py: 299.86 € interest + 40 € = 339.86 €.
    acts = LawActivities(Settings(_env_file=None, data_dir=tmp_path))
    costs = ActivityEnvironment().run(acts.late_payment_costs, request())
    assert costs is not None
    assert (costs.interest, costs.total) == (eur("299.86"), eur("339.86"))


def test_the_creditors_terms_of_sale_apply_when_the_invoice_states_none(tmp_path: Path) -> None:
    # 3 × legal rate: 3 × 3.71 = 11.13 % (2025-H1) for 1-30 April on 10 000, then
    # 3 × 2.76 = 8.28 % (2025-H2) does not arise: paid in full on 30 April.
    # 10 000 × 11.13 × 30 / 36 500 = 3 339 000 / 36 500 = 91.4794… → 91.48; + 40 = 131.48
    settings = Settings(_env_file=None, data_dir=tmp_path, contractual_interest_rate="3x_legal")
    paid = [Paid(received_on=date(2025, 4, 30), amount=eur("10000"))]
    costs = ActivityEnvironment().run(
        LawActivities(settings).late_payment_costs, request(payments=paid)
    )
    assert costs is not None and costs.total == eur("131.48")
    assert costs.segments[0].clause == "3x_legal"


def test_no_table_for_the_debtors_central_bank_is_a_final_refusal(tmp_path: Path) -> None:
    acts = LawActivities(Settings(_env_file=None, data_dir=tmp_path))
    with pytest.raises(ApplicationError) as refused:
        ActivityEnvironment().run(acts.late_payment_costs, request(country="PL"))
    assert refused.value.type == ErrorType.RATE_UNKNOWN
    assert refused.value.non_retryable
    assert "PL" in str(refused.value)


def _paid_late_in_store(engine: Engine) -> None:
    add_invoice(engine, "F-9", amount="10000.00", outstanding="0", stage="paid", debtor_id="C-9")
    with transaction(engine) as session:
        for reference, amount, day in (("V-1", "4000", 30), ("V-2", "6000", 30)):
            session.add(
                Payment(
                    invoice_number="F-9",
                    reference=reference,
                    amount=Decimal(amount),
                    currency="EUR",
                    outstanding_after=Decimal("0"),
                    received_on=date(2025, 4 if reference == "V-1" else 7, day),
                    recorded_at=datetime(2025, 8, 1, tzinfo=UTC),
                )
            )


def test_the_statement_of_late_payment_costs_is_sent_from_the_stored_payments(
    engine: Engine, tmp_path: Path
) -> None:
    # 4 000 € on 30 April and 6 000 € on 30 July 2025: 299.86 € + 40 € = 339.86 € (worked in
    # tests/domain/test_late_payment.py).
    _paid_late_in_store(engine)
    settings = Settings(_env_file=None, data_dir=tmp_path)
    outbox = tmp_path / "outbox"
    messaging = MessagingActivities(
        engine, OutboxSender(outbox, settings.email_from), Renderer(), settings
    )
    messaging.send_message(
        SendRequest(
            invoice_number="F-9",
            step_id=LATE_PAYMENT_STATEMENT_TEMPLATE,
            channel=Channel.EMAIL,
            template=LATE_PAYMENT_STATEMENT_TEMPLATE,
            tone=Tone.FRIENDLY,
            planned_at=datetime(2025, 8, 1, 9, 0, tzinfo=UTC),
            as_of=date(2025, 8, 1),
            outstanding=Money.of("0", "EUR"),
        )
    )
    with Session(engine) as session:
        [sent] = sent_messages_of(session, "F-9")
    text = sent.text.replace("\u202f", " ").replace("\u00a0", " ")
    assert sent.subject == "Relevé des pénalités de retard – facture F-9"
    assert "a été réglée le 30 juillet 2025" in text
    assert "- Total des pénalités de retard : 339,86 €" in text
    assert [p.name for p in outbox.iterdir()]  # it went out


def two_invoices_due_in_spring_2025(engine: Engine) -> None:
    """Debtor C-7's invoices F-A and F-B, 1 000 € each, due 31 March and 15 April 2025."""
    add_invoice(engine, "F-A", amount="1000.00", outstanding="1000.00", debtor_id="C-7")
    add_invoice(
        engine,
        "F-B",
        amount="1000.00",
        outstanding="1000.00",
        debtor_id="C-7",
        issue_date=date(2025, 2, 14),
        due_date=date(2025, 4, 15),
        new_debtor=False,
    )


def notices_of_30_april_2025(channel: Channel) -> MailBatch:
    """Both invoices' formal notices, the debtor's one message of 30 April 2025."""

    def notice(number: str) -> SendRequest:
        return SendRequest(
            invoice_number=number,
            step_id="formal_notice",
            channel=channel,
            template="formal_notice",
            tone=Tone.FORMAL,
            planned_at=datetime(2025, 4, 30, 9, 0, tzinfo=UTC),
            as_of=date(2025, 4, 30),
            outstanding=Money.of("1000.00", "EUR"),
        )

    return MailBatch(
        debtor_id="C-7",
        channel=channel,
        day=date(2025, 4, 30),
        requests=[notice("F-A"), notice("F-B")],
    )


def test_a_consolidated_formal_notice_claims_40_euros_once_per_invoice(
    engine: Engine, tmp_path: Path
) -> None:
    # Two invoices of one debtor, 1 000 € each, due 31 March and 15 April 2025, in one letter
    # on Wednesday 30 April 2025 (rate 2025-H1: 3.15 + 10 = 13.15 %):
    #   F-A: 30 days: 1 000 × 13.15 × 30 / 36 500 = 394 500 / 36 500 = 10.808… → 10.81
    #   F-B: 15 days: 1 000 × 13.15 × 15 / 36 500 = 197 250 / 36 500 = 5.404… → 5.40
    #   total = 2 000 + 10.81 + 5.40 + 2 × 40 = 2 096.21 €; deadline 14 May 2025 (8 business
    #   days; 1 and 8 May are holidays in France).
    two_invoices_due_in_spring_2025(engine)
    settings = Settings(_env_file=None, data_dir=tmp_path)
    outbox = tmp_path / "outbox"
    messaging = MessagingActivities(
        engine, OutboxSender(outbox, settings.email_from), Renderer(), settings
    )
    mailbox = MailboxActivities(cast(Client, None), messaging)  # no mailbox signal is sent

    batch = notices_of_30_april_2025(Channel.EMAIL)
    outcome = ActivityEnvironment().run(mailbox.send_batch, batch)
    assert outcome.sent and sorted(outcome.invoices) == ["F-A", "F-B"]
    with Session(engine) as session:
        copies = [*sent_messages_of(session, "F-A"), *sent_messages_of(session, "F-B")]
    assert len({copy.content_hash for copy in copies}) == 1  # one letter, kept for each invoice
    text = copies[0].text.replace("\u202f", " ").replace("\u00a0", " ")
    assert text.count("40,00 €") == 2
    assert "10,81 €" in text and "5,40 €" in text
    assert "la somme totale de 2 096,21 €" in text
    assert "au plus tard le 14 mai 2025 (8 jours ouvrés" in text
