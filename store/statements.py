"""The statement of amounts of a stored invoice: its payments, its clause, its debtor's law."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from domain.law import (
    AmountDue,
    InterestClause,
    LatePaymentCosts,
    Paid,
    interest_regime,
    late_payment_costs,
    statement_of_amounts,
)
from domain.money import Money
from store.tables import Invoice, Payment


def received_on(payment: Payment) -> date:
    # Older rows may lack the day the money arrived: the day it was recorded is the cautious
    # stand-in (interest on that part ends no earlier than when we knew of it).
    return payment.received_on or payment.recorded_at.date()


def clause_of(invoice: Invoice, terms_of_sale: InterestClause | None) -> InterestClause | None:
    """The invoice's own contractual rate, else the creditor's terms of sale, else none."""
    if invoice.interest_clause:
        return InterestClause.parse(invoice.interest_clause)
    return terms_of_sale


def statement_for(
    invoice: Invoice,
    country: str,
    payments: Sequence[Payment],
    outstanding: Money,
    as_of: date,
    terms_of_sale: InterestClause | None = None,
) -> AmountDue:
    """The statement to `as_of` of an invoice that leaves `outstanding` unpaid.

    Payments received after the due date end the interest on their part on their day; the
    principal the interest starts from is what remained at the due date (the outstanding plus
    those late payments), so credit notes and early payments never bear interest. Raises
    domain.rates.RateUnknownError where no rate is known (a debtor outside the euro area).
    """
    late = [
        Paid(received_on=received_on(p), amount=Money.of(p.amount, p.currency))
        for p in payments
        if invoice.due_date < received_on(p) <= as_of and p.currency == outstanding.currency
    ]
    principal = outstanding.amount + sum((p.amount.amount for p in late), Decimal(0))
    return statement_of_amounts(
        Money.of(principal, outstanding.currency),
        invoice.due_date,
        as_of,
        interest_regime(country),
        payments=late,
        clause=clause_of(invoice, terms_of_sale),
        country=country,
    )


def late_costs_for(
    invoice: Invoice,
    country: str,
    payments: Sequence[Payment],
    terms_of_sale: InterestClause | None = None,
) -> LatePaymentCosts | None:
    """The late-payment costs of a settled invoice from its stored payments (None: on time).

    The principal is what was paid, up to the invoice's amount: a part cancelled by a credit
    note was never owed, so it bears no interest. Raises RateUnknownError where no rate is
    known, ValueError when nothing was paid.
    """
    paid = [
        Paid(received_on=received_on(p), amount=Money.of(p.amount, p.currency))
        for p in payments
        if p.currency == invoice.currency
    ]
    total = sum((p.amount.amount for p in paid), Decimal(0))
    if not paid:
        raise ValueError(f"invoice {invoice.number} has no payment in {invoice.currency}")
    return late_payment_costs(
        Money.of(min(total, invoice.amount), invoice.currency),
        invoice.due_date,
        paid,
        interest_regime(country),
        clause=clause_of(invoice, terms_of_sale),
        country=country,
    )
