"""How long a letter takes to become a PDF, and a text to be measured.

Renders N formal notices (template, PDF with the embedded fonts) and counts the segments of N
texts, then prints the rates. Run: `.venv/bin/python -m bench.letters --letters 200`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date

from activities.letters.pdf import AmountLine, LetterContent, render_letter
from domain.law import statement_of_amounts
from domain.money import Money
from domain.playbook import Tone
from domain.postal import postal_address
from domain.sms_text import sms_length, sms_text
from messages import MessageContext, Renderer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--letters", type=int, default=100)
    parser.add_argument("--texts", type=int, default=10_000)
    args = parser.parse_args()

    renderer = Renderer()
    sender = postal_address(
        name="Relance Demo SAS",
        street=["12 rue de la Paix"],
        postal_code="75002",
        city="Paris",
        country="FR",
    )
    recipient = postal_address(
        name="ACME SARL",
        street=["4 avenue des Tilleuls"],
        postal_code="69003",
        city="Lyon",
        country="FR",
    )
    owed = Money.of("1500.50", "EUR")
    statement = statement_of_amounts(owed, date(2026, 3, 1), date(2026, 3, 31))
    context = MessageContext(
        language="fr",
        tone=Tone.FORMAL,
        invoice_number="F-1",
        issue_date=date(2026, 1, 1),
        due_date=date(2026, 3, 1),
        amount=owed,
        outstanding=owed,
        as_of=date(2026, 3, 31),
        days_late=30,
        debtor_name="ACME SARL",
        creditor_name="Relance Demo SAS",
        payment_instructions="IBAN FR76 0000",
        interest=statement.interest,
        interest_rate=statement.rate,
        indemnity=statement.indemnity,
        total_due=statement.total,
        for_letter=True,
    )
    timings, sizes = [], []
    for _ in range(args.letters):
        start = time.perf_counter()
        rendered = renderer.render("formal_notice", context)
        pdf = render_letter(
            LetterContent(
                language="fr",
                sender=sender,
                recipient=recipient,
                dated=date(2026, 3, 31),
                reference="F-1",
                subject=rendered.subject,
                body=rendered.text,
                amounts=[AmountLine("Total dû", statement.total, total=True)],
                signature="Relance Demo SAS",
                registered=True,
            )
        )
        timings.append(time.perf_counter() - start)
        sizes.append(len(pdf.pdf))
    print(f"letters: {args.letters} formal notices rendered to PDF")
    print(
        f"  median {statistics.median(timings) * 1000:.1f} ms, "
        f"p95 {sorted(timings)[int(len(timings) * 0.95) - 1] * 1000:.1f} ms, "
        f"{args.letters / sum(timings):.1f} letters/s on one core"
    )
    print(f"  size median {statistics.median(sizes) / 1024:.0f} KiB (fonts embedded, subset)")

    body = renderer.render("reminder_sms", context.model_copy(update={"for_letter": None})).text
    text = sms_text(body)
    start = time.perf_counter()
    for _ in range(args.texts):
        sms_length(text)
    elapsed = time.perf_counter() - start
    print(f"texts: {sms_length(text).describe()}; {args.texts / elapsed:,.0f} measured/s")


if __name__ == "__main__":
    main()
