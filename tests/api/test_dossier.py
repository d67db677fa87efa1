"""The legal file: one zip a lawyer can act on, opened and checked part by part.

The invoice: 10 000,00 € issued 30 January 2025, due 31 March 2025; 4 000 € received on
30 April 2025; the formal notice sent as of 31 May 2025; the file as of 31 May 2025.

Hand-worked (rates: 2025-H1 ECB 3.15 %, + 10 = 13.15 %, taux BCE + 10 points, L441-10 II):
    10 000 × 13.15 × 30 (1-30 April) = 3 945 000
     6 000 × 13.15 × 31 (1-31 May)   = 2 445 900
    Σ 6 390 900 / 36 500 = 175.0931… → 175.09 €
    total = 6 000 + 175.09 + 40 (D441-5) = 6 215.09 €
Deadline: 8 business days in France after Saturday 31 May 2025: 2, 3, 4, 5, 6, 10, 11, 12 June
(9 June is Whit Monday, a public holiday) → 12 June 2025.
Limitation: the payment of 30 April 2025 acknowledges the debt (Civil code 2240): five years
from it (L110-4) → 30 April 2030.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import unicodedata
import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr
from pypdf import PdfReader
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.testing import WorkflowEnvironment

from activities.email import OutboxSender
from activities.messaging import MessagingActivities, SendRequest
from api.app import create_app
from api.auth import Role
from api.errors import NotFound
from api.services.dossier import dossier
from config import Settings
from domain.dossier_link import dossier_link
from domain.money import Money
from domain.playbook import Channel, Recipient, Tone
from messages import Renderer
from store.engine import transaction
from store.tables import Approval, Dispute, Invoice, Payment
from tests.api.conftest import Api, invoice_body, serve
from tests.stored import add_invoice

AS_OF = date(2025, 5, 31)
STAMP = datetime(2025, 5, 31, 18, 0, tzinfo=UTC)


def plain(text: str) -> str:
    """Babel writes French amounts with no-break spaces; compare every space as a space."""
    return "".join(" " if unicodedata.category(c) == "Zs" else c for c in text)


@pytest.fixture
def law_settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, creditor_name="Atelier Martin SAS")


def sent_on_may_31(
    step_id: str, template: str, recipient: Recipient = Recipient.DEBTOR
) -> SendRequest:
    return SendRequest(
        invoice_number="F-42",
        step_id=step_id,
        channel=Channel.EMAIL,
        recipient=recipient,
        template=template,
        tone=Tone.FORMAL,
        planned_at=datetime(2025, 5, 31, 9, 0, tzinfo=UTC),
        as_of=AS_OF,
        outstanding=Money.of("6000.00", "EUR"),
    )


@pytest.fixture
def filed(engine: Engine, law_settings: Settings, tmp_path: Path) -> Engine:
    """The invoice above in the store, with a payment, a decision, a dispute and a notice sent."""
    add_invoice(
        engine,
        "F-42",
        amount="10000.00",
        outstanding="6000.00",
        stage="formal_notice",
        debtor_id="C-42",
    )
    with transaction(engine) as session:
        session.add(
            Payment(
                invoice_number="F-42",
                reference="VIR-1",
                amount=Decimal("4000.00"),
                currency="EUR",
                outstanding_after=Decimal("6000.00"),
                received_on=date(2025, 4, 30),
                recorded_at=datetime(2025, 5, 2, 9, 0, tzinfo=UTC),
            )
        )
        session.add(
            Approval(
                id="F-42:mediation:1",
                invoice_number="F-42",
                step_id="mediation",
                target_stage="mediation",
                status="rejected",
                requested_at=datetime(2025, 5, 15, tzinfo=UTC),
                decided_at=datetime(2025, 5, 16, tzinfo=UTC),
                decided_by="alice@collect",
                comment="give the notice time",
            )
        )
        session.add(
            Dispute(
                id="D-1",
                invoice_number="F-42",
                reason="delivery incomplete",
                opened_by="backoffice",
                opened_at=datetime(2025, 4, 10, tzinfo=UTC),
                deadline=datetime(2025, 4, 20, tzinfo=UTC),
                status="rejected",
                resolved_by="bob@collect",
                resolved_at=datetime(2025, 4, 15, tzinfo=UTC),
                resolution="delivery note signed",
            )
        )
    messaging = MessagingActivities(
        engine,
        OutboxSender(tmp_path / "outbox", law_settings.email_from),
        Renderer(),
        law_settings,
    )
    request = sent_on_may_31("formal_notice", "formal_notice")
    messaging.send_message(request)
    messaging.send_message(request)  # a retried activity: still one message as sent
    return engine


def build(engine: Engine, settings: Settings, stamp: datetime = STAMP) -> bytes:
    with Session(engine) as session:
        return dossier(session, settings, "F-42", as_of=AS_OF, created_at=stamp)


def test_the_archive_holds_every_part_and_each_says_what_a_lawyer_needs(
    filed: Engine, law_settings: Settings
) -> None:
    archive = zipfile.ZipFile(io.BytesIO(build(filed, law_settings)))
    names = archive.namelist()
    assert names == sorted(names)
    assert set(names) == {
        "disputes.json",
        "invoice.json",
        "manifest.json",
        "messages.json",
        "messages/001-formal_notice-email-debtor.html",
        "messages/001-formal_notice-email-debtor.txt",
        "payments.json",
        "statement.json",
        "summary.pdf",
        "timeline.json",
    }

    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["created_at"] == STAMP.isoformat()
    for name, digest in manifest["parts"].items():
        assert hashlib.sha256(archive.read(name)).hexdigest() == digest

    invoice = json.loads(archive.read("invoice.json"))
    assert invoice["invoice"]["number"] == "F-42"
    assert invoice["debtor"]["name"] == "Dupont & Fils SARL"
    assert invoice["creditor"]["name"] == "Atelier Martin SAS"

    statement = json.loads(archive.read("statement.json"))
    amounts = statement["statement"]
    assert amounts["interest"] == {"amount": "175.09", "currency": "EUR"}
    assert amounts["indemnity"] == {"amount": "40.00", "currency": "EUR"}
    assert amounts["total"] == {"amount": "6215.09", "currency": "EUR"}
    assert [
        (s["principal"]["amount"], s["start"], s["end"], s["days"], s["rate"], s["basis"])
        for s in amounts["segments"]
    ] == [
        ("10000.00", "2025-04-01", "2025-04-30", 30, "13.15", "ecb_plus_10"),
        ("6000.00", "2025-05-01", "2025-05-31", 31, "13.15", "ecb_plus_10"),
    ]
    assert statement["limitation"]["limitation_date"] == "2030-04-30"

    messages = json.loads(archive.read("messages.json"))
    [sent] = messages["sent"]
    assert sent["to_email"] == "compta@dupont.example"
    assert sent["channel"] == "email" and sent["recipient"] == "debtor"
    assert sent["subject"] == "Mise en demeure de payer – facture F-42"
    text = archive.read("messages/001-formal_notice-email-debtor.txt").decode()
    html = archive.read("messages/001-formal_notice-email-debtor.html").decode()
    assert "au plus tard le 12 juin 2025" in plain(text)
    assert "- du 1er mai 2025 au 31 mai 2025 : 31 jours sur 6 000,00 €" in plain(text)
    assert "175,09 €" in plain(text) and "6 215,09 €" in plain(text)
    # The content hash covers exactly what went out: subject, text and HTML, length-prefixed.
    body = text.removeprefix(f"Subject: {sent['subject']}\n\n")
    digest = hashlib.sha256()
    for part in (sent["subject"], body, html):
        data = part.encode()
        digest.update(len(data).to_bytes(8, "big") + data)
    assert sent["content_hash"] == digest.hexdigest()

    payments = json.loads(archive.read("payments.json"))
    assert [(p["reference"], p["received_on"]) for p in payments] == [("VIR-1", "2025-04-30")]
    work = json.loads(archive.read("disputes.json"))
    assert work["disputes"][0]["resolved_by"] == "bob@collect"
    assert work["decisions"][0]["decided_by"] == "alice@collect"
    timeline = json.loads(archive.read("timeline.json"))
    assert any(entry["kind"] == "message_sent" for entry in timeline)

    pdf = PdfReader(io.BytesIO(archive.read("summary.pdf")))
    # Lines wrap where the layout decides: compare words, not line breaks.
    summary = " ".join(plain("\n".join(page.extract_text() for page in pdf.pages)).split())
    for expected in (
        "requête en injonction de payer",
        "Atelier Martin SAS",
        "Dupont & Fils SARL",
        "6 000,00 €",  # principal
        "175,09 €",  # interest
        "40,00 €",  # indemnity
        "6 215,09 €",  # total
        "taux BCE + 10 points",
        "L441-10",
        "D441-5",
        "30 avril 2030",
        "Mise en demeure de payer – facture F-42",  # the evidence list names the message
        "payments.json",
    ):
        assert expected in summary, expected


def test_the_file_states_the_limitation_date_the_invoice_shows(
    filed: Engine, law_settings: Settings
) -> None:
    # The debtor also promised to pay on 20 May 2025, recorded as an acknowledgment (Civil
    # code 2240): the workflow counts five years from it (L110-4) → 20 May 2030, and the
    # invoice shows that date. The store keeps the promise only as a task, not as an
    # acknowledgment: counted from the payment of 30 April 2025 alone, the file would say
    # 30 April 2030, three weeks too early, and a lawyer would act on the wrong date.
    with transaction(filed) as session:
        invoice = session.get(Invoice, "F-42")
        assert invoice is not None
        invoice.limitation_date = date(2030, 5, 20)
    archive = zipfile.ZipFile(io.BytesIO(build(filed, law_settings)))

    limitation = json.loads(archive.read("statement.json"))["limitation"]
    # Six months before it, collectors are warned (20 November 2029); on 31 May 2025 neither.
    assert limitation == {
        "limitation_date": "2030-05-20",
        "warn_from": "2029-11-20",
        "time_barred": False,
        "warn": False,
    }
    pdf = PdfReader(io.BytesIO(archive.read("summary.pdf")))
    summary = " ".join(plain("\n".join(page.extract_text() for page in pdf.pages)).split())
    assert "20 mai 2030" in summary and "30 avril 2030" not in summary


def test_the_same_data_gives_the_same_bytes_but_for_the_creation_stamp(
    filed: Engine, law_settings: Settings
) -> None:
    first = build(filed, law_settings)
    assert build(filed, law_settings) == first
    later = build(filed, law_settings, datetime(2025, 6, 1, 8, 0, tzinfo=UTC))
    assert later != first
    a, b = zipfile.ZipFile(io.BytesIO(first)), zipfile.ZipFile(io.BytesIO(later))
    assert a.namelist() == b.namelist()
    for name in a.namelist():
        if name != "manifest.json":
            assert a.read(name) == b.read(name), name
    ma, mb = json.loads(a.read("manifest.json")), json.loads(b.read("manifest.json"))
    assert ma["parts"] == mb["parts"] and ma["created_at"] != mb["created_at"]


def test_an_unknown_invoice_has_no_file(engine: Engine, law_settings: Settings) -> None:
    with Session(engine) as session, pytest.raises(NotFound, match="F-404"):
        dossier(session, law_settings, "F-404", as_of=AS_OF, created_at=STAMP)


async def test_the_api_serves_the_file_as_a_zip(api: Api) -> None:
    response = await api.hand_over(invoice_body("DOS-1"))
    assert response.status_code == 201, response.text

    got = await api.get("/v1/invoices/DOS-1/dossier", role=Role.COLLECTOR)

    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/zip"
    assert 'filename="DOS-1-dossier.zip"' in got.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(got.content))
    assert "summary.pdf" in archive.namelist()
    assert PdfReader(io.BytesIO(archive.read("summary.pdf"))).pages
    missing = await api.get("/v1/invoices/NOPE/dossier", role=Role.COLLECTOR)
    assert missing.status_code == 404


LINK_SECRET = "dossier-link-secret-for-tests-0123456789"


def hand_off(engine: Engine, settings: Settings, tmp_path: Path) -> str:
    """The text of the legal partner's hand-off message, as it would go out."""
    messaging = MessagingActivities(
        engine, OutboxSender(tmp_path / "outbox", settings.email_from), Renderer(), settings
    )
    request = sent_on_may_31("legal", "legal_file", Recipient.LEGAL_PARTNER)
    return messaging.compose(request, "F-42:legal:email:legal_partner").text


async def test_the_legal_partner_downloads_the_file_from_the_signed_link_in_the_hand_off(
    filed: Engine, law_settings: Settings, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    settings = law_settings.model_copy(
        update={
            "dossier_link_secret": SecretStr(LINK_SECRET),
            "public_url": "https://relance.example",
        }
    )
    text = plain(hand_off(filed, settings, tmp_path))
    found = re.search(r"https://relance\.example(/v1/legal-files/F-42\?\S+)", text)
    assert found is not None, text
    link = found.group(1)
    # Valid for 30 days from today (RELANCE_DOSSIER_LINK_DAYS): the message says until when.
    until = datetime.now(UTC).date() + timedelta(days=30)
    assert f"téléchargeable jusqu'au {until.day}" in text
    assert "sur simple demande" not in text

    async with serve(create_app(settings, client=dev_env.client, engine=filed)) as http:
        # No API key: the link is the credential.
        got = await http.get(link)
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == "application/zip"
        archive = zipfile.ZipFile(io.BytesIO(got.content))
        assert json.loads(archive.read("invoice.json"))["invoice"]["number"] == "F-42"
        assert "summary.pdf" in archive.namelist()

        # A changed signature, or an expiry moved later, is not ours: 403.
        signature = link.rsplit("=", 1)[1]
        forged = link.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
        expires = re.search(r"expires=(\d+)", link)
        assert expires is not None
        later = link.replace(expires.group(0), f"expires={int(expires.group(1)) + 86400}")
        for tampered in (forged, later, link.replace("F-42", "F-43")):
            refused = await http.get(tampered)
            assert refused.status_code == 403, tampered
            assert refused.headers["content-type"] == "application/problem+json"
            assert "not valid" in refused.json()["detail"]

        # Ours, but issued 40 days ago for 30 days: expired on the 10th day before today, 410.
        old, _ = dossier_link(
            settings.public_url,
            LINK_SECRET,
            "F-42",
            now=datetime.now(UTC) - timedelta(days=40),
            valid_for=timedelta(days=30),
        )
        gone = await http.get(old.removeprefix(settings.public_url))
        assert gone.status_code == 410, gone.text
        assert gone.headers["content-type"] == "application/problem+json"
        assert "expired" in gone.json()["detail"]


def test_without_a_link_secret_the_hand_off_offers_the_file_on_request(
    filed: Engine, law_settings: Settings, tmp_path: Path
) -> None:
    text = plain(hand_off(filed, law_settings, tmp_path))
    assert "/v1/legal-files/" not in text
    assert "sur simple demande" in text
