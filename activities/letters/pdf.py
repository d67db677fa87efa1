"""Letters as PDF, laid out for a French windowed envelope.

An A4 sheet folded in three goes into a DL envelope (220 × 110 mm) whose window (100 × 45 mm)
sits 20 mm from the right edge and 15 mm from the bottom: in the sheet's top third the window
shows the zone from about 100 to 200 mm from the left and 50 to 95 mm from the top. The
recipient's address is printed inside it with a margin for the sheet sliding in the envelope;
the same zone shows through a C5 envelope's window (the sheet folded in half). The sender's
address is the letterhead, top left, where a DL window never shows it.

Fonts: Bitstream Vera, which ships inside reportlab (no system font needed, and it has "€",
accents and "œ"). It is embedded, so the PDF reads the same on any machine and its text can be
extracted (the tests read it back).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from xml.sax.saxutils import escape

import reportlab
from babel.dates import format_date
from babel.numbers import format_currency
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Frame,
    KeepTogether,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from domain.money import Money
from domain.postal import PostalAddress

FONT, FONT_BOLD = "RelanceVera", "RelanceVera-Bold"
_FONTS_DIR = Path(reportlab.__file__).resolve().parent / "fonts"
_LOCALES = {"fr": "fr_FR", "en": "en_GB"}

# The window zone, in mm from the sheet's top-left corner (see the module's docstring).
WINDOW_LEFT, WINDOW_TOP, WINDOW_WIDTH, WINDOW_HEIGHT = 105.0, 52.0, 90.0, 40.0
MARGIN = 20.0
# The body starts below the window zone and the fold line's neighbourhood.
BODY_TOP = 105.0

_LABELS = {
    "fr": {
        "registered": "LETTRE RECOMMANDÉE AVEC ACCUSÉ DE RÉCEPTION",
        "reference": "Référence",
        "subject": "Objet",
        "tracking": "Recommandé n°",
        "date": "{place}, le {date}",
        "amounts": "Décompte",
        "amount": "Montant",
        "page": "Page {n}",
        "invoice_amount": "Montant de la facture {number}",
        "invoice_outstanding": "Facture {number} : reste dû en principal",
        "paid": "Déjà réglé",
        "outstanding": "Reste dû en principal",
        "interest": "Intérêts de retard (article L441-10 du Code de commerce)",
        "indemnity": "Indemnité forfaitaire pour frais de recouvrement (article D441-5)",
        "total": "Total dû",
        "deadline": "À régler au plus tard le {date}.",
        "deadline_receipt": (
            "À régler dans les {days} jours ouvrés suivant la réception de la présente."
        ),
    },
    "en": {
        "registered": "REGISTERED LETTER WITH ACKNOWLEDGMENT OF RECEIPT",
        "reference": "Reference",
        "subject": "Subject",
        "tracking": "Registered no.",
        "date": "{place}, {date}",
        "amounts": "Statement",
        "amount": "Amount",
        "page": "Page {n}",
        "invoice_amount": "Amount of invoice {number}",
        "invoice_outstanding": "Invoice {number}: principal outstanding",
        "paid": "Already paid",
        "outstanding": "Principal outstanding",
        "interest": "Late-payment interest (French Commercial Code, art. L441-10)",
        "indemnity": "Fixed recovery indemnity (art. D441-5)",
        "total": "Total due",
        "deadline": "To be paid by {date} at the latest.",
        "deadline_receipt": "To be paid within {days} business days of receiving this letter.",
    },
}


def label(language: str, name: str, **values: object) -> str:
    return _LABELS.get(language, _LABELS["en"])[name].format(**values)


def _register_fonts() -> None:
    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    pdfmetrics.registerFont(TTFont(FONT, str(_FONTS_DIR / "Vera.ttf")))
    pdfmetrics.registerFont(TTFont(FONT_BOLD, str(_FONTS_DIR / "VeraBd.ttf")))


@dataclass(frozen=True)
class AmountLine:
    label: str
    amount: Money
    total: bool = False


@dataclass(frozen=True)
class LetterContent:
    language: str
    sender: PostalAddress
    recipient: PostalAddress
    dated: date
    reference: str
    subject: str
    # The message's plain text, paragraphs separated by blank lines (the template's `text`).
    body: str
    amounts: list[AmountLine] = field(default_factory=list)
    # A sentence placed under the table, e.g. the deadline to pay.
    deadline_note: str | None = None
    signature: str = ""
    registered: bool = False
    tracking_number: str | None = None


def money_text(amount: Money, language: str) -> str:
    text = format_currency(amount.amount, amount.currency, locale=_LOCALES.get(language, "en_GB"))
    # Babel's French grouping is a narrow no-break space, which Vera lacks: a plain one reads
    # the same on paper.
    return text.replace("\u202f", "\u00a0")


def date_text(day: date, language: str) -> str:
    return format_date(day, format="long", locale=_LOCALES.get(language, "en_GB"))


@dataclass(frozen=True)
class RenderedLetter:
    pdf: bytes
    pages: int


def render_letter(letter: LetterContent) -> RenderedLetter:
    _register_fonts()
    labels = _LABELS.get(letter.language, _LABELS["en"])
    buffer = io.BytesIO()
    width, height = A4
    doc = BaseDocTemplate(
        buffer,
        pagesize=A4,
        title=f"{letter.subject} – {letter.reference}",
        author=letter.sender.name,
        leftMargin=MARGIN * mm,
        rightMargin=MARGIN * mm,
        topMargin=MARGIN * mm,
        bottomMargin=MARGIN * mm,
    )
    first = Frame(
        MARGIN * mm,
        MARGIN * mm,
        width - 2 * MARGIN * mm,
        height - (BODY_TOP + MARGIN) * mm,
        id="first",
    )
    later = Frame(
        MARGIN * mm, MARGIN * mm, width - 2 * MARGIN * mm, height - 2 * MARGIN * mm, id="later"
    )

    def first_page(canvas: Canvas, _doc: BaseDocTemplate) -> None:
        _letterhead(canvas, letter, labels)
        _footer(canvas, labels, 1)

    def later_page(canvas: Canvas, doc_: BaseDocTemplate) -> None:
        _footer(canvas, labels, doc_.page)

    doc.addPageTemplates(
        [
            PageTemplate(
                id="first", frames=[first], onPage=first_page, autoNextPageTemplate="later"
            ),
            PageTemplate(id="later", frames=[later], onPage=later_page),
        ]
    )
    doc.build(_story(letter, labels))
    return RenderedLetter(pdf=buffer.getvalue(), pages=doc.page)


def _letterhead(canvas: Canvas, letter: LetterContent, labels: dict[str, str]) -> None:
    _, height = A4
    top = height - MARGIN * mm
    canvas.setFont(FONT_BOLD, 12)
    canvas.drawString(MARGIN * mm, top, letter.sender.name)
    canvas.setFont(FONT, 9)
    y = top - 5 * mm
    for line in letter.sender.lines()[1:]:
        canvas.drawString(MARGIN * mm, y, line)
        y -= 4.2 * mm
    # Date and reference, under the letterhead, left of the window.
    canvas.setFont(FONT, 10)
    place = letter.sender.city.title()
    y = height - 72 * mm
    canvas.drawString(
        MARGIN * mm,
        y,
        labels["date"].format(place=place, date=date_text(letter.dated, letter.language)),
    )
    canvas.drawString(MARGIN * mm, y - 5 * mm, f"{labels['reference']} : {letter.reference}")
    if letter.tracking_number:
        canvas.drawString(
            MARGIN * mm, y - 10 * mm, f"{labels['tracking']} {letter.tracking_number}"
        )
    # The window: the registered mention on top, then the recipient's lines.
    x = WINDOW_LEFT * mm
    y = height - WINDOW_TOP * mm
    if letter.registered:
        canvas.setFont(FONT_BOLD, 7)
        canvas.drawString(x, y, labels["registered"])
        y -= 6 * mm
    canvas.setFont(FONT, 10)
    for i, line in enumerate(letter.recipient.lines(letter.sender.country)):
        canvas.setFont(FONT_BOLD if i == 0 else FONT, 10)
        canvas.drawString(x, y, line)
        y -= 4.6 * mm


def _footer(canvas: Canvas, labels: dict[str, str], page: int) -> None:
    width, _ = A4
    canvas.setFont(FONT, 8)
    canvas.setFillColor(colors.grey)
    canvas.drawRightString(width - MARGIN * mm, 10 * mm, labels["page"].format(n=page))
    canvas.setFillColor(colors.black)


def _story(letter: LetterContent, labels: dict[str, str]) -> list[object]:
    body = ParagraphStyle("body", fontName=FONT, fontSize=10, leading=13.5, spaceAfter=6)
    bold = ParagraphStyle("bold", parent=body, fontName=FONT_BOLD)
    story: list[object] = [
        Paragraph(f"{labels['subject']} : {escape(letter.subject)}", bold),
        Spacer(1, 3 * mm),
    ]
    # Babel's narrow no-break spaces ("1 500,50 €"): Vera has the wide one, which keeps an
    # amount on one line just the same.
    text = letter.body.replace("\u202f", "\u00a0")
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    # The template's text ends with the closing formula and the creditor's name: the name is
    # the signature block here, and the table and deadline go before the closing formula.
    if letter.signature and paragraphs and paragraphs[-1] == letter.signature:
        paragraphs.pop()
    closing = paragraphs.pop() if len(paragraphs) > 1 else None
    for paragraph in paragraphs:
        story.append(Paragraph(escape(paragraph).replace("\n", "<br/>"), body))
    if letter.amounts:
        story.append(Spacer(1, 2 * mm))
        story.append(KeepTogether(_amounts_table(letter, labels, body, bold)))
    if letter.deadline_note:
        story.append(Spacer(1, 2 * mm))
        story.append(Paragraph(escape(letter.deadline_note), bold))
    if closing:
        story.append(Spacer(1, 2 * mm))
        story.append(Paragraph(escape(closing).replace("\n", "<br/>"), body))
    if letter.signature:
        story.append(Spacer(1, 8 * mm))
        signature = ParagraphStyle("signature", parent=bold, leftIndent=95 * mm)
        story.append(Paragraph(escape(letter.signature), signature))
    return story


def _amounts_table(
    letter: LetterContent,
    labels: dict[str, str],
    body: ParagraphStyle,
    bold: ParagraphStyle,
) -> list[object]:
    rows: list[list[object]] = [[labels["amounts"], labels["amount"]]]
    right = ParagraphStyle("right", parent=body, alignment=2, spaceAfter=0)
    right_bold = ParagraphStyle("right_bold", parent=right, fontName=FONT_BOLD)
    for line in letter.amounts:
        style = bold if line.total else body
        amount_style = right_bold if line.total else right
        rows.append(
            [
                Paragraph(escape(line.label), style),
                Paragraph(escape(money_text(line.amount, letter.language)), amount_style),
            ]
        )
    table = Table(rows, colWidths=[120 * mm, 50 * mm], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, 0), FONT_BOLD),
                ("FONTSIZE", (0, 0), (-1, 0), 9),
                ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
                ("LINEABOVE", (0, -1), (-1, -1), 0.6, colors.black),
                ("ALIGN", (1, 0), (1, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#EEEEEE")),
            ]
        )
    )
    return [table]
