"""What debtors, mediators, lawyers and collectors read, in French and English."""

from __future__ import annotations

import unicodedata
from datetime import date
from decimal import Decimal
from pathlib import Path

import jinja2
import pytest

from domain.law import InterestSegment, RateBasis
from domain.money import Money
from domain.playbook import Tone
from messages import MessageContext, Renderer, RenderError, TemplateNotFound
from messages.render import InvoiceLine

SHIPPED = [
    "approval_reminder",
    "consolidated",
    "dispute_acknowledgment",
    "dispute_reminder",
    "formal_notice",
    "installment_reminder",
    "late_payment_statement",
    "legal_closed",
    "legal_file",
    "legal_handoff",
    "mediation",
    "mediation_file",
    "plan_outcome",
    "pre_reminder",
    "reminder",
    "thank_you",
]
# Not emails: the texts of the SMS channel and a collector's call script (tested with their
# channels, in tests/activities and tests/api).
CHANNEL_TEMPLATES = ["call_script", "pre_reminder_sms", "reminder_sms"]
# Messages the debtor receives; the others go to a mediator, a lawyer or the collectors.
DEBTOR_FACING = ["pre_reminder", "reminder", "formal_notice", "mediation", "legal_handoff"]
PAY = "Virement : IBAN FR76 3000 6000 0112 3456 7890 189\nBIC AGRIFRPP"

renderer = Renderer()


def plain(text: str) -> str:
    """Babel writes French amounts with no-break spaces (U+202F, U+00A0); compare as spaces."""
    return "".join(" " if unicodedata.category(c) == "Zs" else c for c in text)


def ctx(language: str = "fr", **changes: object) -> MessageContext:
    """An invoice of 1 234,56 € due 31 March 2025, 200 € already paid, written on 1 May."""
    values: dict[str, object] = {
        "language": language,
        "tone": Tone.FRIENDLY,
        "invoice_number": "F-2025-0042",
        "issue_date": date(2025, 1, 30),
        "due_date": date(2025, 3, 31),
        "amount": Money.of("1234.56", "EUR"),
        "outstanding": Money.of("1034.56", "EUR"),
        "as_of": date(2025, 5, 1),
        "days_late": 31,
        "debtor_name": "Dupont & Fils",
        "creditor_name": "Atelier Martin SAS",
        "payment_instructions": PAY,
        "interest": Money.of("11.66", "EUR"),
        "interest_rate": Decimal("13.15"),
        "indemnity": Money.of(40, "EUR"),
        "total_due": Money.of("1086.22", "EUR"),
        "paid": None,
        "approval_id": None,
        "target_stage": None,
        # 1 April to 1 May 2025: 31 days on 1 034,56 € at 3.15 + 10 = 13.15 % (2025-H1).
        "segments": [
            InterestSegment(
                principal=Money.of("1034.56", "EUR"),
                start=date(2025, 4, 1),
                end=date(2025, 5, 1),
                days=31,
                rate=Decimal("13.15"),
                basis=RateBasis.ECB_PLUS_10,
                half_year="2025-H1",
                provisional=False,
            )
        ],
        "provisional": False,
        # 8 business days in France from Thursday 1 May 2025 (itself a holiday): 2, 5, 6, 7,
        # 9 (8 May is a holiday), 12, 13, 14 May.
        "deadline": date(2025, 5, 14),
        "deadline_business_days": 8,
    }
    values.update(changes)
    return MessageContext.model_validate(values)


def internal(language: str) -> MessageContext:
    return ctx(language, approval_id="F-2025-0042:mediation:1", target_stage="mediation")


def consolidated(language: str, tone: Tone = Tone.FRIENDLY) -> MessageContext:
    """Two invoices of the debtor in one message: the one above, and one not yet due."""
    lines = [
        InvoiceLine(
            invoice_number="F-2025-0042",
            issue_date=date(2025, 1, 30),
            due_date=date(2025, 3, 31),
            amount=Money.of("1234.56", "EUR"),
            outstanding=Money.of("1034.56", "EUR"),
            days_late=31,
            interest=Money.of("11.66", "EUR"),
            indemnity=Money.of(40, "EUR"),
            total_due=Money.of("1086.22", "EUR"),
        ),
        InvoiceLine(
            invoice_number="F-2025-0077",
            issue_date=date(2025, 3, 15),
            due_date=date(2025, 5, 14),
            amount=Money.of("500", "EUR"),
            outstanding=Money.of("500", "EUR"),
            days_late=0,
        ),
    ]
    return ctx(
        language,
        tone=tone,
        invoice_number="F-2025-0042, F-2025-0077",
        amount=Money.of("1734.56", "EUR"),
        outstanding=Money.of("1534.56", "EUR"),
        interest=None,
        indemnity=None,
        total_due=None,
        invoices=lines,
    )


def for_template(template: str, language: str) -> MessageContext:
    if template == "approval_reminder":
        return internal(language)
    if template == "consolidated":
        return consolidated(language)
    if template == "installment_reminder":
        return ctx(
            language,
            installment_amount=Money.of("350.00", "EUR"),
            installment_due_date=date(2025, 6, 15),
        )
    if template == "thank_you":
        return ctx(language, outstanding=Money.of(0, "EUR"), paid=Money.of("1034.56", "EUR"))
    if template == "late_payment_statement":
        return late_costs(language)
    if template == "dispute_acknowledgment":
        return ctx(language, reference="D-7F3A", deadline=date(2025, 6, 20))
    if template == "plan_outcome":
        return ctx(language, reference="P-7F3A", outcome="proposed")
    return ctx(language)


def late_costs(language: str) -> MessageContext:
    """10 000 € due 31 March 2025, paid 4 000 € on 30 April and 6 000 € on 30 July.

    Segments: 10 000 for 1-30 Apr (30 days, 13.15 %), 6 000 for 1 May-30 Jun (61 days,
    13.15 %), 6 000 for 1-30 Jul (30 days, 12.15 %); interest 299.86 (worked in
    tests/domain/test_late_payment.py), + 40 € = 339.86 €.
    """

    def segment(principal: str, start: date, end: date, days: int, rate: str) -> InterestSegment:
        half = "2025-H1" if start.month <= 6 else "2025-H2"
        return InterestSegment(
            principal=Money.of(principal, "EUR"),
            start=start,
            end=end,
            days=days,
            rate=Decimal(rate),
            basis=RateBasis.ECB_PLUS_10,
            half_year=half,
            provisional=False,
        )

    return ctx(
        language,
        amount=Money.of("10000", "EUR"),
        outstanding=Money.of("0", "EUR"),
        paid_on=date(2025, 7, 30),
        interest=Money.of("299.86", "EUR"),
        total_due=Money.of("339.86", "EUR"),
        segments=[
            segment("10000", date(2025, 4, 1), date(2025, 4, 30), 30, "13.15"),
            segment("6000", date(2025, 5, 1), date(2025, 6, 30), 61, "13.15"),
            segment("6000", date(2025, 7, 1), date(2025, 7, 30), 30, "12.15"),
        ],
    )


# ---------------------------------------------------------------- what ships


def test_french_and_english_are_shipped() -> None:
    assert renderer.languages() == ["en", "fr"]


def test_a_debtor_is_written_to_in_their_language_when_it_ships_else_in_english() -> None:
    assert renderer.language_for("fr") == "fr"
    assert renderer.language_for("de") == "en"


@pytest.mark.parametrize("language", ["fr", "en"])
def test_every_template_exists_in_every_language(language: str) -> None:
    assert renderer.templates(language) == sorted(SHIPPED + CHANNEL_TEMPLATES)
    assert renderer.templates(language) == renderer.templates("fr")
    for template in SHIPPED + CHANNEL_TEMPLATES:
        renderer.check(template, language)


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("template", SHIPPED)
def test_each_template_renders_subject_text_and_html(template: str, language: str) -> None:
    message = renderer.render(template, for_template(template, language))

    assert message.subject and "\n" not in message.subject
    assert message.subject == message.subject.strip()
    assert "F-2025-0042" in message.subject
    assert "F-2025-0042" in message.text
    assert message.html.startswith("<!DOCTYPE html>")
    assert f'<html lang="{language}">' in message.html
    assert "F-2025-0042" in message.html
    # Nothing leaks from a value the context does not have.
    for rendered in (message.subject, message.text, message.html):
        assert "None" not in rendered


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("template", DEBTOR_FACING)
def test_debtor_messages_say_what_is_due_and_how_to_pay(template: str, language: str) -> None:
    message = renderer.render(template, ctx(language, tone=Tone.FIRM))
    outstanding = "1 034,56 €" if language == "fr" else "€1,034.56"

    assert outstanding in plain(message.text)
    assert outstanding in plain(message.html)
    assert PAY in message.text
    # In HTML the instructions keep their line break.
    assert "IBAN FR76 3000 6000 0112 3456 7890 189<br>\nBIC AGRIFRPP" in message.html
    assert "Dupont & Fils" in message.text


@pytest.mark.parametrize("template", [*DEBTOR_FACING, "thank_you"])
def test_french_letters_use_the_proper_forms(template: str) -> None:
    text = renderer.render(template, for_template(template, "fr")).text

    assert "Madame, Monsieur," in text
    assert "Nous vous prions d'agréer, Madame, Monsieur, l'expression de nos salutations" in text
    assert text.rstrip().endswith("Atelier Martin SAS")


@pytest.mark.parametrize("template", [*DEBTOR_FACING, "thank_you"])
def test_english_letters_use_the_proper_forms(template: str) -> None:
    text = renderer.render(template, for_template(template, "en")).text

    assert "Dear Sir or Madam," in text
    assert "Yours faithfully," in text or "Kind regards," in text
    assert text.rstrip().endswith("Atelier Martin SAS")


# ---------------------------------------------------------------- formats per locale


def test_french_pre_reminder_formats_amounts_and_dates_the_french_way() -> None:
    message = renderer.render("pre_reminder", ctx("fr", tone=Tone.COURTEOUS))

    assert message.subject == "Rappel amical : facture F-2025-0042 à échéance le 31 mars 2025"
    text = plain(message.text)
    assert "notre facture n° F-2025-0042 du 30 janvier 2025" in text
    assert "d'un montant de 1 234,56 €, arrivera à échéance le 31 mars 2025" in text
    # Part of it is paid already: the balance is stated too.
    assert "le montant restant dû s'élève à 1 034,56 €" in text


def test_english_pre_reminder_formats_amounts_and_dates_the_english_way() -> None:
    message = renderer.render("pre_reminder", ctx("en", tone=Tone.COURTEOUS))

    assert message.subject == "Friendly reminder: invoice F-2025-0042 due on 31 March 2025"
    assert "our invoice F-2025-0042 dated 30 January 2025, for €1,234.56" in message.text
    assert "falls due on 31 March 2025" in message.text
    assert "the balance outstanding is €1,034.56" in message.text


def test_an_unpaid_invoice_is_not_described_as_partly_paid() -> None:
    whole = ctx("fr", outstanding=Money.of("1234.56", "EUR"))

    assert "restant dû" not in renderer.render("pre_reminder", whole).text
    assert (
        "balance outstanding"
        not in renderer.render("pre_reminder", whole.model_copy(update={"language": "en"})).text
    )


def test_french_amounts_never_break_across_lines() -> None:
    text = renderer.render("pre_reminder", ctx("fr")).text

    assert "1 234,56 €" in plain(text)
    # The spaces inside the amount are no-break spaces, not ordinary ones.
    assert "1 234,56 €" not in text
    assert "1 234,56" not in text


def test_french_dates_write_the_first_of_the_month_as_an_ordinal() -> None:
    text = renderer.render("formal_notice", ctx("fr")).text

    assert "Le 1er mai 2025" in text
    assert "du 1er avril 2025" in text


def test_other_currencies_are_formatted_with_their_symbol() -> None:
    usd = ctx(
        "en",
        amount=Money.of("5000", "USD"),
        outstanding=Money.of("5000", "USD"),
        interest=None,
        interest_rate=None,
        indemnity=None,
        total_due=None,
    )

    assert "US$5,000.00" in renderer.render("reminder", usd).text
    assert "5 000,00 $US" in plain(
        renderer.render("reminder", usd.model_copy(update={"language": "fr"})).text
    )


def test_rates_show_two_decimals() -> None:
    text = renderer.render("mediation", ctx("fr", interest_rate=Decimal("12"))).text
    assert "au taux annuel de 12,00 %" in plain(text)
    segment = ctx("fr").segments[0].model_copy(update={"rate": Decimal("12")})  # type: ignore[index]
    notice = renderer.render("formal_notice", ctx("fr", segments=[segment])).text
    assert "au taux annuel de 12,00 % (taux BCE + 10 points)" in plain(notice)


# ---------------------------------------------------------------- reminder tones


def test_friendly_reminder_suggests_an_oversight() -> None:
    fr = renderer.render("reminder", ctx("fr", tone=Tone.FRIENDLY))
    en = renderer.render("reminder", ctx("en", tone=Tone.FRIENDLY))

    assert fr.subject == "Rappel : facture F-2025-0042 arrivée à échéance le 31 mars 2025"
    assert "simple oubli" in fr.text
    assert "sans délai" not in fr.text
    assert en.subject == "Reminder: invoice F-2025-0042 was due on 31 March 2025"
    assert "oversight" in en.text
    assert "without further delay" not in en.text


def test_firm_reminder_counts_the_days_and_asks_to_pay_now() -> None:
    fr = renderer.render("reminder", ctx("fr", tone=Tone.FIRM))
    en = renderer.render("reminder", ctx("en", tone=Tone.FIRM))

    assert fr.subject == "Facture F-2025-0042 impayée – 31 jours de retard"
    assert "soit 31 jours de retard" in fr.text
    assert "sans délai au règlement de la somme de 1 034,56 €" in plain(fr.text)
    assert "oubli" not in fr.text
    assert "L441-10" in fr.text and "40 euros" in fr.text
    assert en.subject == "Invoice F-2025-0042 overdue – 31 days late"
    assert "it is now 31 days overdue" in en.text
    assert "pay the outstanding amount of €1,034.56 without further delay" in en.text


def test_one_day_late_is_singular() -> None:
    fr = renderer.render("reminder", ctx("fr", tone=Tone.FIRM, days_late=1))
    en = renderer.render("reminder", ctx("en", tone=Tone.FIRM, days_late=1))

    assert fr.subject.endswith("1 jour de retard")
    assert en.subject.endswith("1 day late")
    assert "1 day overdue" in en.text


# ---------------------------------------------------------------- formal notice


def test_french_formal_notice_states_interest_rate_indemnity_total_and_deadline() -> None:
    message = renderer.render("formal_notice", ctx("fr", tone=Tone.FORMAL))
    text = plain(message.text)

    assert message.subject == "Mise en demeure de payer – facture F-2025-0042"
    assert "nous vous mettons en demeure de nous régler" in text
    assert "au plus tard le 14 mai 2025 (8 jours ouvrés à compter de la présente)" in text
    assert "- Principal restant dû : 1 034,56 €" in text
    assert (
        "- Intérêts de retard (article L441-10 du Code de commerce), courus du 1er avril 2025, "
        "lendemain de l'échéance, au 1er mai 2025 : 11,66 €"
    ) in text
    assert (
        "- du 1er avril 2025 au 1er mai 2025 : 31 jours sur 1 034,56 € au taux annuel de "
        "13,15 % (taux BCE + 10 points)"
    ) in text
    assert "provisoire" not in text
    assert (
        "- Indemnité forfaitaire pour frais de recouvrement (article D441-5 du Code de commerce, "
        "non soumise à TVA) : 40,00 €"
    ) in text
    assert "- Total dû au 1er mai 2025 : 1 086,22 €" in text
    assert "la somme de 1 086,22 €, qui se décompose comme suit" in text
    assert "injonction de payer" in text
    html = plain(message.html)
    for figure in ("1 034,56 €", "13,15 %", "11,66 €", "40,00 €", "1 086,22 €", "14 mai 2025"):
        assert figure in html
    assert '<td style="padding:4px 8px;">taux BCE + 10 points</td>' in html


def test_english_formal_notice_states_interest_rate_indemnity_total_and_deadline() -> None:
    message = renderer.render("formal_notice", ctx("en", tone=Tone.FORMAL))
    text = message.text

    assert message.subject == "Formal notice to pay – invoice F-2025-0042"
    assert (
        "We hereby give you formal notice to pay, by 14 May 2025 at the latest (8 business days "
        "from this letter)"
    ) in text
    assert "- Outstanding principal: €1,034.56" in text
    assert (
        "- Late-payment interest (Article L441-10 of the French Commercial Code), accrued from "
        "1 April 2025, the day after the due date, to 1 May 2025: €11.66"
    ) in text
    assert (
        "- 1 April 2025 to 1 May 2025: 31 days on €1,034.56 at the annual rate of 13.15% "
        "(ECB rate + 10 points)"
    ) in text
    assert "Article D441-5 of the French Commercial Code, not subject to VAT): €40.00" in text
    assert "- Total due as at 1 May 2025: €1,086.22" in text
    assert "legal action" in text
    assert "Yours faithfully," in text


def test_a_formal_notice_in_another_currency_adds_the_euro_indemnity_on_top() -> None:
    # The 40 € indemnity cannot be added into a dollar total: the letter says it is extra.
    usd = ctx(
        "en",
        amount=Money.of("5000", "USD"),
        outstanding=Money.of("5000", "USD"),
        interest=Money.of("56.30", "USD"),
        total_due=Money.of("5056.30", "USD"),
    )
    text = renderer.render("formal_notice", usd).text

    assert "the sum of US$5,056.30, plus the fixed indemnity of €40.00, made up" in text
    assert "Total due as at 1 May 2025: US$5,056.30, excluding the fixed indemnity" in text
    assert "excluding" not in renderer.render("formal_notice", ctx("en")).text


def test_a_formal_notice_shows_a_contract_clause_and_says_a_rate_is_provisional() -> None:
    # 2026-H2 at 3 × the legal rate, not confirmed yet: 3 × 2.62 = 7.86 %.
    clause = InterestSegment(
        principal=Money.of("1034.56", "EUR"),
        start=date(2026, 7, 1),
        end=date(2026, 7, 31),
        days=31,
        rate=Decimal("7.86"),
        basis=RateBasis.CONTRACT,
        clause="3x_legal",
        half_year="2026-H2",
        provisional=True,
    )
    french = plain(
        renderer.render("formal_notice", ctx("fr", segments=[clause], provisional=True)).text
    )
    assert (
        "au taux annuel de 7,86 % (clause contractuelle : 3 × taux d'intérêt légal) – taux "
        "provisoire"
    ) in french
    assert "le montant des intérêts correspondant est provisoire" in french
    english = renderer.render("formal_notice", ctx("en", segments=[clause], provisional=True)).text
    assert "7.86% (contract clause: 3 × legal interest rate) – provisional rate" in english


@pytest.mark.parametrize("language", ["fr", "en"])
def test_late_payment_statement_lists_segments_interest_and_indemnity(language: str) -> None:
    message = renderer.render("late_payment_statement", late_costs(language))
    text = plain(message.text)
    if language == "fr":
        assert message.subject == "Relevé des pénalités de retard – facture F-2025-0042"
        assert "a été réglée le 30 juillet 2025, soit après son échéance" in text
        assert "L441-10 et D441-5" in text
        assert "- Intérêts de retard, jusqu'au jour de chaque règlement : 299,86 €" in text
        assert "- Total des pénalités de retard : 339,86 €" in text
        assert "- du 1er mai 2025 au 30 juin 2025 : 61 jours sur 6 000,00 €" in text
    else:
        assert message.subject == "Statement of late-payment costs – invoice F-2025-0042"
        assert "was paid on 30 July 2025, after its due date" in text
        assert "- Total late-payment costs: €339.86" in text
        assert (
            "- 1 July 2025 to 30 July 2025: 30 days on €6,000.00 at the annual rate of 12.15%"
            in text
        )
    assert text.count("40,00 €" if language == "fr" else "€40.00") == 1


@pytest.mark.parametrize("language", ["fr", "en"])
def test_a_formal_notice_without_interest_is_refused_not_sent_incomplete(language: str) -> None:
    with pytest.raises(RenderError, match="'interest' is undefined"):
        renderer.render("formal_notice", ctx(language, interest=None))


# ---------------------------------------------------------------- mediation, legal, thanks


def test_mediation_tells_the_debtor_and_gives_the_mediator_the_file() -> None:
    debtor = renderer.render("mediation", ctx("fr"))
    mediator = renderer.render("mediation_file", ctx("fr"))

    assert "confier ce dossier à un médiateur" in debtor.text
    assert "Total dû au 1er mai 2025 : 1 086,22 €" in plain(debtor.text)
    assert mediator.subject == "Dossier de médiation – Dupont & Fils – facture F-2025-0042"
    text = plain(mediator.text)
    for line in (
        "Créancier : Atelier Martin SAS",
        "Débiteur : Dupont & Fils",
        "Facture : n° F-2025-0042 du 30 janvier 2025",
        "Montant de la facture : 1 234,56 €",
        "Échéance : 31 mars 2025",
        "Retard au 1er mai 2025 : 31 jours",
        "- Principal restant dû : 1 034,56 €",
        "- Intérêts de retard au taux annuel de 13,15 %, du 1er avril 2025 au 1er mai 2025 : "
        "11,66 €",
        "- Indemnité forfaitaire pour frais de recouvrement : 40,00 €",
    ):
        assert line in text


def test_legal_handoff_tells_the_debtor_and_gives_the_partner_the_dossier() -> None:
    debtor = renderer.render("legal_handoff", ctx("en"))
    partner = renderer.render("legal_file", ctx("en"))

    assert "passed this file to our legal partner" in debtor.text
    assert "You can still avoid these proceedings" in debtor.text
    assert partner.subject == "Legal file – Dupont & Fils – invoice F-2025-0042"
    for line in (
        "Debtor: Dupont & Fils",
        "Invoice: F-2025-0042 dated 30 January 2025",
        "Invoice amount: €1,234.56",
        "Due date: 31 March 2025",
        "Days late as at 1 May 2025: 31 days",
        "- Total due as at 1 May 2025: €1,086.22",
    ):
        assert line in partner.text


def test_the_legal_partner_is_told_to_stop_once_paid_or_closed() -> None:
    paid = renderer.render("legal_closed", ctx("en", paid=Money.of("1234.56", "EUR"))).text
    closed = renderer.render("legal_closed", ctx("fr", paid=None)).text

    assert "invoice F-2025-0042 dated 30 January 2025 (Dupont & Fils)" in paid
    assert "has now been paid in full (€1,234.56 received in all)" in paid
    assert "Please stop any proceedings on this file" in paid
    assert "Nous clôturons notre facture n° F-2025-0042" in closed
    assert "réglée" not in closed
    assert "arrêter toute procédure" in closed


def test_before_interest_accrues_the_statement_is_the_principal_alone() -> None:
    early = ctx("en", interest=None, interest_rate=None, indemnity=None, total_due=None)
    text = renderer.render("mediation_file", early).text

    assert "- Outstanding principal: €1,034.56" in text
    assert "interest" not in text.lower()
    assert "Total due" not in text


def test_thank_you_mentions_the_payment() -> None:
    settled = for_template("thank_you", "fr")
    fr = renderer.render("thank_you", settled)
    en = renderer.render("thank_you", settled.model_copy(update={"language": "en"}))

    assert fr.subject == "Merci pour votre règlement – facture F-2025-0042"
    assert "votre règlement de 1 034,56 € relatif à notre facture n° F-2025-0042" in plain(fr.text)
    assert "qui est désormais soldée" in fr.text
    assert "your payment of €1,034.56 for our invoice F-2025-0042" in en.text
    assert "settled in full" in en.text
    assert "1 034,56 €" in plain(fr.html)


def test_thank_you_without_the_amount_still_thanks() -> None:
    text = renderer.render("thank_you", ctx("en", paid=None)).text

    assert "We have received your payment for our invoice F-2025-0042" in text
    # Something is still outstanding: the invoice is not called settled.
    assert "settled" not in text


def test_approval_reminder_names_the_approval_and_the_stage() -> None:
    fr = renderer.render("approval_reminder", internal("fr"))
    en = renderer.render("approval_reminder", internal("en"))

    assert fr.subject == (
        "Approbation en attente (F-2025-0042:mediation:1) : médiation – facture F-2025-0042"
    )
    assert "à l'étape « médiation »" in fr.text
    assert (
        en.subject == "Approval pending (F-2025-0042:mediation:1): mediation – invoice F-2025-0042"
    )
    assert "is still awaiting a decision" in en.text
    legal = renderer.render(
        "approval_reminder", internal("en").model_copy(update={"target_stage": "legal"})
    )
    assert "“legal hand-off”" in legal.text


def test_approval_reminder_without_an_approval_id_is_refused() -> None:
    with pytest.raises(RenderError, match="approval_id"):
        renderer.render("approval_reminder", ctx("fr", target_stage="mediation"))


# ---------------------------------------------------------------- escaping


@pytest.mark.parametrize("language", ["fr", "en"])
def test_html_escapes_the_debtor_name_text_and_subject_keep_it(language: str) -> None:
    message = renderer.render("mediation_file", ctx(language))

    assert "Dupont & Fils" in message.subject
    assert "Dupont & Fils" in message.text
    assert "&amp;" not in message.text
    assert "Dupont &amp; Fils" in message.html
    assert "Dupont & Fils" not in message.html
    assert "<title>" + message.subject.replace("&", "&amp;") + "</title>" in message.html


def test_free_text_cannot_inject_html() -> None:
    hostile = ctx(
        "en",
        debtor_name='<img src=x onerror="alert(1)">',
        payment_instructions="Pay at <a href='https://evil.example'>here</a>\nRef: <b>F-1</b>",
    )
    message = renderer.render("reminder", hostile)

    assert (
        "<img" not in message.html and "<a href" not in message.html and "<b>" not in message.html
    )
    assert "&lt;img src=x" in message.html
    assert "&lt;b&gt;F-1&lt;/b&gt;" in message.html
    assert "Pay at <a href='https://evil.example'>here</a>" in message.text


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("template", "language"),
    [
        ("reminder", "de"),
        ("no_such_template", "fr"),
        ("_base.html", "fr"),  # the layout is not a message
        ("_macros", "en"),
        ("../fr/reminder", "fr"),
        ("reminder", "../fr"),
    ],
)
def test_unknown_template_or_language_raises_template_not_found(
    template: str, language: str
) -> None:
    with pytest.raises(TemplateNotFound) as raised:
        renderer.check(template, language)
    assert raised.value.template == template
    assert raised.value.language == language
    assert repr(template) in str(raised.value) and repr(language) in str(raised.value)

    with pytest.raises(TemplateNotFound):
        renderer.render(template, ctx("fr").model_copy(update={"language": language}))


def test_template_not_found_is_a_lookup_error_listing_the_languages() -> None:
    with pytest.raises(LookupError, match=r"'reminder' in language 'de' \(languages: en, fr\)"):
        renderer.render("reminder", ctx("fr").model_copy(update={"language": "de"}))


def test_a_language_with_no_templates_lists_none() -> None:
    assert renderer.templates("de") == []
    assert renderer.templates("../fr") == []


def write(directory: Path, language: str, name: str, source: str) -> None:
    (directory / language).mkdir(parents=True, exist_ok=True)
    (directory / language / f"{name}.j2").write_text(source, encoding="utf-8")


def test_a_missing_variable_is_an_error_not_a_blank(tmp_path: Path) -> None:
    write(
        tmp_path,
        "fr",
        "broken",
        "{% block subject %}Facture {{ invoice_number }}{% endblock %}"
        "{% block text %}Bonjour {{ contact_first_name }},{% endblock %}"
        "{% block html %}<p>Bonjour</p>{% endblock %}",
    )

    with pytest.raises(RenderError, match="contact_first_name") as raised:
        Renderer(tmp_path).render("broken", ctx("fr"))
    assert isinstance(raised.value.__cause__, jinja2.UndefinedError)
    assert raised.value.template == "broken" and raised.value.language == "fr"


def test_a_missing_variable_fails_the_check_not_the_send(tmp_path: Path) -> None:
    # A playbook check renders each template once with every variable a message can have:
    # a misspelt one is refused then, before any debtor's letter depends on it.
    write(
        tmp_path,
        "fr",
        "typo",
        "{% block subject %}Facture {{ invoice_numbr }}{% endblock %}"
        "{% block text %}Bonjour{% endblock %}"
        "{% block html %}<p>Bonjour</p>{% endblock %}",
    )
    with pytest.raises(RenderError, match="invoice_numbr"):
        Renderer(tmp_path).check("typo", "fr")


def test_a_template_without_its_three_blocks_is_refused_by_check(tmp_path: Path) -> None:
    write(tmp_path, "en", "subject_only", "{% block subject %}Hi{% endblock %}")
    write(tmp_path, "en", "bad_syntax", "{% block subject %}{{ x {% endblock %}")

    with pytest.raises(RenderError, match="missing block"):
        Renderer(tmp_path).check("subject_only", "en")
    with pytest.raises(RenderError, match="line 1"):
        Renderer(tmp_path).check("bad_syntax", "en")


def test_a_directory_of_your_own(tmp_path: Path) -> None:
    # Without a _base.html.j2 the html block is the whole body; subjects are one line.
    write(
        tmp_path,
        "en",
        "note",
        "{% block subject %}\n  Invoice {{ invoice_number }}\n  for {{ debtor_name }}\n"
        "{% endblock %}"
        "{% block text %}Due: {{ outstanding|money }} on {{ due_date|date }}{% endblock %}"
        "{% block html %}<p>{{ debtor_name }} owes {{ outstanding|money }}</p>{% endblock %}",
    )
    own = Renderer(tmp_path)
    message = own.render("note", ctx("en"))

    assert own.languages() == ["en"]
    assert own.templates("en") == ["note"]
    assert message.subject == "Invoice F-2025-0042 for Dupont & Fils"
    assert message.text == "Due: €1,034.56 on 31 March 2025\n"
    assert message.html == "<p>Dupont &amp; Fils owes €1,034.56</p>\n"


def test_the_context_refuses_unknown_fields() -> None:
    with pytest.raises(ValueError, match="contact_email"):
        ctx("fr", contact_email="jean.dupont@example.com")


def test_a_language_babel_does_not_know_is_a_render_error(tmp_path: Path) -> None:
    write(
        tmp_path,
        "xx",
        "note",
        "{% block subject %}{{ invoice_number }}{% endblock %}"
        "{% block text %}{{ outstanding|money }}{% endblock %}"
        "{% block html %}{% endblock %}",
    )

    with pytest.raises(RenderError, match="xx"):
        Renderer(tmp_path).render("note", ctx("xx"))


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("template", [*DEBTOR_FACING, "consolidated"])
def test_debtor_messages_carry_the_personal_link(template: str, language: str) -> None:
    link = "https://pay.example/portal/l/abc.def"
    base = for_template(template, language)
    message = renderer.render(template, base.model_copy(update={"portal_url": link}))
    assert link in message.text
    assert f'href="{link}"' in message.html
    # Without a portal, no dangling sentence.
    bare = renderer.render(template, base)
    assert "/portal/" not in bare.text and "/portal/" not in bare.html
