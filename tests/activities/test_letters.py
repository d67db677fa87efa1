"""Letters: the PDF a debtor receives, the print queue, and Maileva's registered-mail API
through our HTTP client against a loopback fake, with faults."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import cast

import pypdfium2
import pytest
from pypdf import PdfReader
from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.email import OutboxSender, TransientSendError
from activities.letters.maileva import MailevaClient
from activities.letters.print_queue import MANIFEST, PrintQueue
from activities.letters.provider import PostalProvider
from activities.mailbox import MailboxActivities
from activities.messaging import MessagingActivities, SendRequest
from config import Settings
from domain.money import Money
from domain.playbook import Channel, Tone
from domain.postal import postal_address
from messages import Renderer
from store.engine import transaction
from store.invoices import interactions_of
from store.letters import Letter, LetterStatus
from store.tables import Debtor
from tests.activities.test_law import notices_of_30_april_2025, two_invoices_due_in_spring_2025
from tests.fakes.maileva_api import FakeMaileva
from tests.store.test_store import seed

DOCS = Path(__file__).resolve().parents[2] / "docs"
CREDITOR = {
    "street": ["12 rue de la Paix"],
    "postal_code": "75002",
    "city": "Paris",
    "country": "FR",
}


def formal_notice(notice_days: int = 8) -> SendRequest:
    return SendRequest(
        invoice_number="F-1",
        step_id="formal_notice",
        channel=Channel.LETTER,
        template="formal_notice",
        tone=Tone.FORMAL,
        planned_at=datetime(2026, 3, 31, 9, tzinfo=UTC),
        as_of=date(2026, 3, 31),
        outstanding=Money.of("1500.50", "EUR"),
        notice_days=notice_days,
    )


def with_address(engine: Engine) -> None:
    seed(engine)
    give_address(engine, "C-1")


def give_address(engine: Engine, debtor_id: str) -> None:
    address = postal_address(
        name="ACME SARL",
        attention="Service comptabilité",
        street=["Zone industrielle", "4 avenue des Tilleuls"],
        postal_code="69003",
        city="Lyon",
        country="FR",
    )
    with transaction(engine) as session:
        debtor = session.get(Debtor, debtor_id)
        assert debtor is not None
        debtor.postal_address = address.model_dump(mode="json")
        session.add(debtor)


def activities(engine: Engine, tmp_path: Path, postal: PostalProvider) -> MessagingActivities:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        creditor_name="Relance Demo SAS",
        creditor_address=CREDITOR,
    )
    email = OutboxSender(tmp_path / "outbox", settings.email_from)
    return MessagingActivities(engine, email, Renderer(), settings, postal=postal)


def pdf_text(data: bytes) -> str:
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    # The PDF's no-break spaces ("1 500,50 €") come out as plain ones or stay: read both alike.
    return text.replace("\xa0", " ")


def test_the_formal_notice_letter_states_addresses_amounts_and_deadline(
    engine: Engine, tmp_path: Path
) -> None:
    with_address(engine)
    queue = PrintQueue(tmp_path / "letters")
    ActivityEnvironment().run(activities(engine, tmp_path, queue).send_message, formal_notice())

    (pdf,) = (tmp_path / "letters").glob("*.pdf")
    text = pdf_text(pdf.read_bytes())
    # The window: the registered mention, then the debtor's address as the post reads it.
    for line in (
        "LETTRE RECOMMANDÉE AVEC ACCUSÉ DE RÉCEPTION",
        "ACME SARL",
        "Service comptabilité",
        "4 avenue des Tilleuls",
        "69003 LYON",
        # The letterhead: the creditor and its address.
        "Relance Demo SAS",
        "75002 PARIS",
        "Référence : F-1",
    ):
        assert line in text, line
    # Amounts worked by hand: principal 1 500,50 € due 1 March 2026, unpaid to 31 March 2026:
    # 30 days late. Rate 2026-H1 = ECB MRO (2.15 % from 11 June 2025) + 10 = 12.15 %
    # (L441-10 II). Interest = 1500.50 × 12.15 % × 30 / 365 = 14.98 €; indemnity 40 € (D441-5);
    # total 1500.50 + 14.98 + 40 = 1 555,48 €.
    assert "1 500,50 €" in text
    assert "14,98 €" in text
    assert "40,00 €" in text
    assert "1 555,48 €" in text
    # The deadline as a calendar date, 8 business days in France from 31 March 2026 (Tuesday):
    # 1, 2, 3 April, then Easter Monday 6 April 2026 is a public holiday (Easter Sunday is
    # 5 April; Code du travail L3133-1), then 7, 8, 9, 10 and 13 April: 13 April 2026. In the
    # notice's own sentence and under the table.
    assert "au plus tard le 13 avril 2026" in " ".join(text.split())
    assert "À régler au plus tard le 13 avril 2026." in text
    # The letter's layout prints the date and subject once: the email's header is left out.
    assert text.count("Objet") == 1

    # A page image, as the README shows it (pypdfium2 renders it: no system tool needed).
    # RELANCE_DOCS_IMAGES=1 writes it to docs/ (how the README's picture is made).
    page = pypdfium2.PdfDocument(pdf.read_bytes())[0]
    image = page.render(scale=1).to_pil()
    assert image.size[0] in (595, 596) and image.size[1] == 842  # A4 at 72 dpi
    if os.environ.get("RELANCE_DOCS_IMAGES") == "1":
        page.render(scale=1.4).to_pil().save(DOCS / "letter-formal-notice.png", optimize=True)

    # The print queue's manifest: one line a person posts from.
    rows = list(csv.DictReader((tmp_path / "letters" / MANIFEST).open(encoding="utf-8")))
    assert [(r["file"], r["invoice"], r["registered"]) for r in rows] == [(pdf.name, "F-1", "yes")]
    assert "69003 LYON" in rows[0]["recipient"]
    with transaction(engine) as session:
        letter = session.get(Letter, "F-1:formal_notice:letter")
    assert letter is not None and letter.status == LetterStatus.QUEUED and letter.registered


@pytest.fixture
def maileva() -> Iterator[FakeMaileva]:
    with FakeMaileva() as fake:
        yield fake


def client(fake: FakeMaileva) -> MailevaClient:
    return MailevaClient(
        api_base=fake.url,
        auth_url=f"{fake.url}/token",
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        username=fake.username,
        password=fake.password,
        timeout=1,
    )


@pytest.mark.parametrize(
    "fault",
    ["none", "429", "500", "timeout", "create answered too late"],
)
def test_a_registered_letter_is_posted_once_through_maileva(
    any_engine: Engine, maileva: FakeMaileva, tmp_path: Path, fault: str
) -> None:
    with_address(any_engine)
    messaging = activities(any_engine, tmp_path, client(maileva))
    env = ActivityEnvironment()
    match fault:
        case "429" | "500":
            maileva.fail_next(int(fault))
        case "timeout":
            maileva.hang_next(2)
        case "create answered too late":
            maileva.act_then_hang(2)  # the sending exists, its id never reached us
    attempts = 0
    while True:
        attempts += 1
        try:
            env.run(messaging.send_message, formal_notice())
            break
        except TransientSendError:
            assert attempts < 5

    assert len(maileva.posted) == 1
    (sending,) = maileva.posted
    assert sending["acknowledgement_of_receipt"] is True
    assert sending["sender_address_line_6"] == "75002 PARIS"
    (recipient,) = sending["recipients"]
    assert recipient["address_line_1"] == "ACME SARL"
    assert recipient["address_line_6"] == "69003 LYON"
    with transaction(any_engine) as session:
        letter = session.get(Letter, "F-1:formal_notice:letter")
    assert letter is not None
    assert letter.tracking_number == recipient["registered_number"]
    assert letter.status == LetterStatus.SUBMITTED


def test_a_submit_whose_answer_is_lost_is_not_submitted_again(
    engine: Engine, maileva: FakeMaileva, tmp_path: Path
) -> None:
    with_address(engine)
    messaging = activities(engine, tmp_path, client(maileva))
    env = ActivityEnvironment()
    # Calls: create, list documents, upload, list recipients, add recipient, then submit.
    maileva.pass_next(5)
    maileva.act_then_hang(2)

    with pytest.raises(TransientSendError):
        env.run(messaging.send_message, formal_notice())
    assert len(maileva.posted) == 1  # Maileva took it
    env.run(messaging.send_message, formal_notice())

    assert len(maileva.posted) == 1
    assert len(maileva.sendings) == 1


def test_a_debtors_letter_of_the_day_about_two_invoices_is_one_pdf_listing_both(
    engine: Engine, tmp_path: Path
) -> None:
    # Two invoices of one debtor, 1 000 € each, due 31 March and 15 April 2025, in one formal
    # notice on Wednesday 30 April 2025. Rate for 2025-H1: the ECB's main refinancing rate in
    # force on 1 January 2025 (3.15 %, since 18 December 2024) + 10 points = 13.15 % (Code de
    # commerce L441-10 II):
    #   F-A: 30 days late: 1 000 × 13.15 % × 30 / 365 = 10.808… → 10,81 €
    #   F-B: 15 days late: 1 000 × 13.15 % × 15 / 365 = 5.404… → 5,40 €
    #   40 € indemnity each (D441-5); total 2 000 + 10.81 + 5.40 + 80 = 2 096,21 €.
    #   Deadline: 8 business days from 30 April 2025, 1 and 8 May being French public holidays
    #   (Code du travail L3133-1): 2, 5, 6, 7, 9, 12, 13, 14 May → 14 May 2025.
    two_invoices_due_in_spring_2025(engine)
    give_address(engine, "C-7")
    queue = PrintQueue(tmp_path / "letters")
    mailbox = MailboxActivities(cast(Client, None), activities(engine, tmp_path, queue))

    batch = notices_of_30_april_2025(Channel.LETTER)
    outcome = ActivityEnvironment().run(mailbox.send_batch, batch)

    assert outcome.sent and outcome.invoices == ["F-A", "F-B"]
    # One letter, a PDF: no email file in the print queue.
    (pdf,) = (tmp_path / "letters").glob("*.pdf")
    assert not list((tmp_path / "letters").glob("*.eml"))
    text = pdf_text(pdf.read_bytes())
    flat = " ".join(text.split())
    for line in (
        "LETTRE RECOMMANDÉE AVEC ACCUSÉ DE RÉCEPTION",
        "4 avenue des Tilleuls",
        "69003 LYON",
        "Référence : F-A, F-B",
        "Mise en demeure de payer – factures F-A et F-B",
        "Facture F-A : reste dû en principal",
        "Facture F-B : reste dû en principal",
    ):
        assert line in text, line
    assert "10,81 €" in text and "5,40 €" in text
    assert text.count("40,00 €") >= 2
    assert "2 096,21 €" in text
    assert "À régler au plus tard le 14 mai 2025." in text
    # The letter's layout prints the subject once.
    assert flat.count("Objet") == 1
    rows = list(csv.DictReader((tmp_path / "letters" / MANIFEST).open(encoding="utf-8")))
    assert [(r["file"], r["invoice"], r["registered"]) for r in rows] == [
        (pdf.name, "F-A, F-B", "yes")
    ]
    with transaction(engine) as session:
        sent = [
            (row.invoice_number, row.status)
            for number in ("F-A", "F-B")
            for row in interactions_of(session, number)
        ]
        letter = session.get(Letter, "F-A:formal_notice:letter")
    assert sent == [("F-A", "sent"), ("F-B", "sent")]
    assert letter is not None and letter.status == LetterStatus.QUEUED and letter.registered
