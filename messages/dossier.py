"""The legal file ("dossier"): one zip a lawyer can act on, built from data alone.

What goes in (every part a separate entry, entries sorted by name):

    manifest.json        what the archive holds, each part's SHA-256, and the creation stamp
    invoice.json         the invoice and the parties (creditor, debtor)
    timeline.json        every step, message, payment and decision, oldest first
    messages/NNN-*.txt   every message exactly as sent (.txt, .html) ...
    messages.json        ... with recipient, channel, time, provider id, content hash, delivery
    payments.json        payments with the day each was received
    disputes.json        disputes, payment plans, escalation decisions and tasks, with actors
    statement.json       the statement of amounts with its segments, and the limitation date
    summary.pdf          the summary a requête en injonction de payer needs (CPC 1405 ff.)

Reproducible: the same data gives the same bytes, except `created_at` in manifest.json. Zip
entries carry a fixed timestamp and mode; the PDF is written in reportlab's invariant mode
(fixed creation date and document id) with fonts shipped inside reportlab itself.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from datetime import date, datetime
from typing import Any, Final
from xml.sax.saxutils import escape

from pydantic import BaseModel, ConfigDict
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from domain.law import AmountDue, LimitationStatus
from domain.money import Money
from messages.render import describe_basis, format_long_date, format_money, format_percent

# 1 January 1980: the earliest date a zip entry can carry; every entry gets it.
ZIP_EPOCH: Final = (1980, 1, 1, 0, 0, 0)
MANIFEST: Final = "manifest.json"
SUMMARY: Final = "summary.pdf"
LANGUAGE: Final = "fr"  # the injonction de payer is a French procedure: the summary is French


class Party(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    id: str | None = None
    email: str | None = None
    country: str | None = None


class SentCopy(BaseModel):
    """A message as it went out, and what the provider said of it afterwards."""

    model_config = ConfigDict(frozen=True)

    step_id: str
    channel: str
    recipient: str
    to_email: str
    to_name: str | None
    subject: str
    text: str
    html: str
    sent_at: datetime
    provider: str | None
    provider_message_id: str | None
    content_hash: str
    delivery_status: str | None = None
    delivery_at: datetime | None = None
    delivery_reason: str | None = None


class DossierData(BaseModel):
    """Everything the legal file says, already read from the store."""

    model_config = ConfigDict(frozen=True)

    as_of: date
    creditor: Party
    debtor: Party
    invoice: dict[str, Any]
    timeline: list[dict[str, Any]]
    messages: list[SentCopy]
    # Sends that did not go out (failed, pending): part of the history, not evidence.
    attempts: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    disputes: list[dict[str, Any]]
    payment_plans: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    statement: AmountDue
    limitation: LimitationStatus
    interest_clause: str | None = None


def _json(value: Any) -> bytes:
    return (
        json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    ).encode("utf-8")


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _message_name(index: int, message: SentCopy) -> str:
    stem = _UNSAFE.sub("-", f"{message.step_id}-{message.channel}-{message.recipient}")
    return f"messages/{index:03d}-{stem}"


def _parts(data: DossierData) -> dict[str, bytes]:
    parts: dict[str, bytes] = {
        "invoice.json": _json(
            {
                "invoice": data.invoice,
                "creditor": data.creditor.model_dump(mode="json"),
                "debtor": data.debtor.model_dump(mode="json"),
                "interest_clause": data.interest_clause,
            }
        ),
        "timeline.json": _json(data.timeline),
        "payments.json": _json(data.payments),
        "disputes.json": _json(
            {
                "disputes": data.disputes,
                "payment_plans": data.payment_plans,
                "decisions": data.decisions,
                "tasks": data.tasks,
            }
        ),
        "statement.json": _json(
            {
                "statement": data.statement.model_dump(mode="json"),
                "limitation": data.limitation.model_dump(mode="json"),
            }
        ),
    }
    listing = []
    for index, message in enumerate(data.messages, 1):
        name = _message_name(index, message)
        parts[f"{name}.txt"] = f"Subject: {message.subject}\n\n{message.text}".encode()
        parts[f"{name}.html"] = message.html.encode("utf-8")
        entry = message.model_dump(mode="json", exclude={"text", "html"})
        entry["files"] = [f"{name}.txt", f"{name}.html"]
        listing.append(entry)
    parts["messages.json"] = _json({"sent": listing, "not_sent": data.attempts})
    parts[SUMMARY] = summary_pdf(data)
    return parts


def build_dossier(data: DossierData, created_at: datetime) -> bytes:
    """The legal file as zip bytes. Same data → same bytes, but for `created_at`."""
    parts = _parts(data)
    manifest = {
        "created_at": created_at.isoformat(),
        "as_of": data.as_of.isoformat(),
        "invoice": data.invoice.get("number"),
        "parts": {name: hashlib.sha256(body).hexdigest() for name, body in sorted(parts.items())},
    }
    parts[MANIFEST] = _json(manifest)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(parts):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever the machine: the mode below means the same
            info.external_attr = 0o644 << 16
            archive.writestr(info, parts[name])
    return buffer.getvalue()


# ------------------------------------------------------------------ the summary PDF

_FONT, _BOLD = "RelanceVera", "RelanceVera-Bold"


def _fonts() -> None:
    # Bitstream Vera ships inside reportlab (its fonts folder is on the TTF search path): no
    # system font is needed, and every machine embeds the same glyphs.
    if _FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(_FONT, "Vera.ttf"))
        pdfmetrics.registerFont(TTFont(_BOLD, "VeraBd.ttf"))


def _glyphs(text: str) -> str:
    # Babel groups French thousands with a narrow no-break space (U+202F), which Vera lacks:
    # it would print as an empty box. The plain no-break space reads the same and exists.
    return text.replace("\u202f", "\u00a0")


def _money(value: Money) -> str:
    return _glyphs(format_money(value, LANGUAGE))


def _day(value: date) -> str:
    return format_long_date(value, LANGUAGE)


def _table(rows: list[list[str]], widths: list[float], header: bool = True) -> Table:
    table = Table(rows, colWidths=widths, hAlign="LEFT")
    style = [
        ("FONT", (0, 0), (-1, -1), _FONT, 8.5),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
    ]
    if header:
        style += [
            ("FONT", (0, 0), (-1, 0), _BOLD, 8.5),
            ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
        ]
    table.setStyle(TableStyle(style))
    return table


def summary_pdf(data: DossierData) -> bytes:
    """The summary of the claim, in the order a requête en injonction de payer states it:
    parties, principal, interest (segments and basis), indemnity, total, legal basis, and the
    list of evidence (the parts of this archive)."""
    _fonts()
    body = ParagraphStyle("body", fontName=_FONT, fontSize=9.5, leading=13)
    title = ParagraphStyle("title", fontName=_BOLD, fontSize=14, leading=18, spaceAfter=6)
    heading = ParagraphStyle("heading", fontName=_BOLD, fontSize=11, leading=15, spaceBefore=8)

    def para(text: str, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(escape(_glyphs(text)), style)

    s = data.statement
    inv = data.invoice
    amount = Money.of(inv["amount"], inv["currency"])
    story: list[Any] = [
        para("Récapitulatif de créance – requête en injonction de payer", title),
        para(
            f"Facture n° {inv['number']} – arrêté au {_day(data.as_of)} "
            "(articles 1405 et suivants du Code de procédure civile)"
        ),
        para("1. Parties", heading),
        para(f"Créancier : {data.creditor.name}"),
        para(
            f"Débiteur : {data.debtor.name} (identifiant {data.debtor.id}, "
            f"pays {data.debtor.country}, {data.debtor.email})"
        ),
        para("2. Créance en principal", heading),
        para(
            f"Facture n° {inv['number']} du {_day(date.fromisoformat(inv['issue_date']))}, "
            f"d'un montant de {_money(amount)}, échue le {_day(s.due_date)}."
        ),
        para(f"Principal restant dû au {_day(data.as_of)} : {_money(s.principal)}"),
        para("3. Intérêts de retard", heading),
    ]
    if s.segments:
        rows = [["Du", "Au", "Jours", "Principal", "Taux annuel", "Fondement"]]
        for seg in s.segments:
            rows.append(
                [
                    seg.start.strftime("%d/%m/%Y"),
                    seg.end.strftime("%d/%m/%Y"),
                    str(seg.days),
                    _money(seg.principal),
                    _glyphs(format_percent(seg.rate, LANGUAGE))
                    + (" (provisoire)" if seg.provisional else ""),
                    Paragraph(escape(_glyphs(describe_basis(seg, LANGUAGE))), body),
                ]
            )
        story.append(_table(rows, [22 * mm, 22 * mm, 12 * mm, 28 * mm, 26 * mm, 60 * mm]))
    story.append(
        para(
            f"Intérêts simples, jours réels / 365, arrondis une fois au centime : "
            f"{_money(s.interest)}"
            + (" (montant provisoire : un taux n'est pas encore confirmé)" if s.provisional else "")
        )
    )
    story += [
        para("4. Indemnité forfaitaire pour frais de recouvrement", heading),
        para(f"{_money(s.indemnity)} (article D441-5 du Code de commerce, non soumise à TVA)"),
        para("5. Total", heading),
        _table(
            [
                ["Principal", _money(s.principal)],
                ["Intérêts de retard", _money(s.interest)],
                ["Indemnité forfaitaire", _money(s.indemnity)],
                [
                    "Total dû" + ("" if s.indemnity_in_total else " (hors indemnité, en EUR)"),
                    _money(s.total),
                ],
            ],
            [70 * mm, 40 * mm],
            header=False,
        ),
        para("6. Fondement", heading),
        para(
            "Article L441-10 du Code de commerce (pénalités de retard, exigibles sans rappel dès "
            "le lendemain de l'échéance) ; article D441-5 (indemnité forfaitaire de 40 €)"
            + (f" ; clause contractuelle : {data.interest_clause}" if data.interest_clause else "")
            + "."
        ),
        para(
            f"Prescription (article L110-4 du Code de commerce, article 2240 du Code civil) : "
            f"action possible jusqu'au {_day(data.limitation.limitation_date)}"
            + (" – CRÉANCE PRESCRITE" if data.limitation.time_barred else "")
            + "."
        ),
        para("7. Pièces (fichiers de cette archive)", heading),
    ]
    evidence = [["N°", "Pièce", "Fichier"]]
    evidence.append(["1", f"Facture n° {inv['number']} et parties", "invoice.json"])
    for index, message in enumerate(data.messages, 1):
        name = _message_name(index, message)
        delivered = f", {message.delivery_status}" if message.delivery_status else ""
        evidence.append(
            [
                str(len(evidence)),
                Paragraph(
                    escape(
                        f"{message.channel} du {message.sent_at.strftime('%d/%m/%Y %H:%M')} UTC "
                        f"à {message.recipient} : {message.subject} (SHA-256 "
                        f"{message.content_hash[:16]}…{delivered})"
                    ),
                    body,
                ),
                f"{name}.txt",
            ]
        )
    for label, file in (
        (f"Paiements reçus ({len(data.payments)})", "payments.json"),
        ("Litiges, plans de paiement, décisions et leurs auteurs", "disputes.json"),
        ("Historique complet", "timeline.json"),
        ("Décompte des sommes dues et ses segments", "statement.json"),
    ):
        evidence.append([str(len(evidence)), label, file])
    story.append(_table(evidence, [10 * mm, 120 * mm, 45 * mm]))
    story.append(Spacer(1, 6 * mm))
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=16 * mm,
        rightMargin=16 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=f"Récapitulatif de créance {inv['number']}",
        author=data.creditor.name,
        # Fixed creation date and document id: the same data gives the same bytes.
        invariant=1,
    )
    document.build(story)
    return buffer.getvalue()
