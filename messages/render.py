"""Rendering the messages people receive: one Jinja2 file per template and language.

Each `templates/<language>/<template>.j2` defines three blocks, `subject`, `text` and `html`,
rendered separately. The same file is compiled twice: once by an environment that escapes
HTML (for the `html` block) and once by one that does not (for `subject` and `text`), because
Jinja2 decides autoescaping per template, not per block, and "Dupont & Fils" must read
"Dupont &amp; Fils" in HTML but stay "Dupont & Fils" in a plain-text email or a subject line.

A missing variable is an error (`StrictUndefined`), never a blank in a debtor's letter.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency
from jinja2.nodes import EvalContext
from markupsafe import Markup, escape
from pydantic import BaseModel, ConfigDict

from domain.law import InterestClause, InterestSegment, RateBasis
from domain.money import Money
from domain.playbook import Tone, common_templates

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
BLOCKS = ("subject", "text", "html")
# Per language: the shared HTML layout, which receives the rendered `html` block as `content`.
LAYOUT = "_base.html.j2"
SUFFIX = ".j2"

# The locale behind each language: British English writes dates "31 March 2025", as a French
# or European reader expects, where plain "en" (US) would write "March 31, 2025".
_LOCALES = {"fr": "fr_FR", "en": "en_GB"}
# Languages and template names become path components: keep them to plain identifiers.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class InvoiceLine(BaseModel):
    """One invoice in a message that lists several (a debtor's consolidated message)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    invoice_number: str
    issue_date: date
    due_date: date
    amount: Money
    outstanding: Money
    days_late: int
    # Once the invoice is late: the statement of amounts to the message's day (`as_of`).
    interest: Money | None = None
    indemnity: Money | None = None
    total_due: Money | None = None


def _by_currency(amounts: Iterable[Money]) -> list[Money]:
    """Sum per currency, in the order the currencies first appear: amounts never mix."""
    sums: dict[str, Money] = {}
    for money in amounts:
        known = sums.get(money.currency)
        sums[money.currency] = money if known is None else known + money
    return list(sums.values())


class PreviousContact(BaseModel):
    """One earlier contact with the debtor about the invoice, for a collector's call script."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    day: date
    channel: str
    template: str
    # What became of it: delivered, bounce, a call's outcome...
    outcome: str | None = None


class MessageContext(BaseModel):
    """Everything a template may use.

    Optional fields that are None are left out of the template's variables, so a template
    that uses one unconditionally fails loudly (StrictUndefined) rather than printing "None"
    or a blank; templates test optional values with `{% if interest is defined %}`. Templates
    also get the derived `interest_from` (date) and `indemnity_included` (bool), and, when
    `invoices` lists several invoices, `totals` and `totals_due` (lists of Money, one per
    currency).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    language: str
    tone: Tone
    invoice_number: str
    issue_date: date
    due_date: date
    amount: Money
    outstanding: Money
    as_of: date
    days_late: int
    debtor_name: str
    creditor_name: str
    payment_instructions: str
    interest: Money | None = None
    interest_rate: Decimal | None = None
    indemnity: Money | None = None
    total_due: Money | None = None
    paid: Money | None = None
    approval_id: str | None = None
    target_stage: str | None = None
    # Payment plans: the installment a courtesy reminder is about.
    installment_amount: Money | None = None
    installment_due_date: date | None = None
    # A consolidated message: every invoice it is about, oldest due first. The single-invoice
    # fields above then describe the whole (numbers joined, totals, oldest dates).
    invoices: list[InvoiceLine] | None = None
    # The late-payment interest line by line (formal notice, statement of late-payment costs):
    # each segment's dates, days, principal, rate and basis (`basis` filter).
    segments: list[InterestSegment] | None = None
    # Some rate used is not confirmed yet: the letter says the figures are provisional.
    provisional: bool | None = None
    # The formal notice's deadline, a calendar date `deadline_business_days` after `as_of`.
    deadline: date | None = None
    deadline_business_days: int | None = None
    # An invoice paid late: the day the last payment settled it (statement of late costs).
    paid_on: date | None = None
    # The debtor's personal page (signed link): debtor messages only, when the portal is on.
    portal_url: str | None = None
    # Answers to what the debtor did on their page: the reference of their dispute or plan,
    # the date it will be answered by (ISO 10002), and a plan's outcome (active, proposed,
    # rejected).
    reference: str | None = None
    outcome: str | None = None
    # Call scripts: the contacts so far, oldest first, and the day to ask the debtor to pay by.
    previous_contacts: list[PreviousContact] | None = None
    promise_by: date | None = None
    # The formal notice's deadline as a calendar date (None: "N days from receipt"), and True
    # when the text goes into a letter whose layout prints sender, recipient, date and subject.
    notice_deadline: date | None = None
    for_letter: bool | None = None
    # The legal partner's hand-off: the signed link to the legal file, and its last valid day.
    dossier_url: str | None = None
    dossier_expires: date | None = None

    @property
    def interest_from(self) -> date:
        """Late-payment interest runs from the day after the due date (L441-10 II)."""
        return self.due_date + timedelta(days=1)

    @property
    def indemnity_included(self) -> bool:
        """Whether total_due includes the indemnity. The indemnity is 40 euros by law; on an
        invoice in another currency it is owed on top of the total, not added into it."""
        return (
            self.indemnity is not None
            and self.total_due is not None
            and self.indemnity.currency == self.total_due.currency
        )

    def variables(self) -> dict[str, Any]:
        # Not model_dump(): templates need the Money objects themselves, not dicts.
        values: dict[str, Any] = {
            name: getattr(self, name)
            for name in type(self).model_fields
            if getattr(self, name) is not None
        }
        values["interest_from"] = self.interest_from
        values["indemnity_included"] = self.indemnity_included
        if self.invoices is not None:
            values["totals"] = self.totals
            values["totals_due"] = self.totals_due
        return values

    @property
    def totals(self) -> list[Money]:
        """Per currency, what the listed invoices leave outstanding."""
        return _by_currency(line.outstanding for line in self.invoices or ())

    @property
    def totals_due(self) -> list[Money]:
        """Per currency, all that is owed on the listed invoices at `as_of`: principal, interest
        and indemnities (a non-euro invoice's 40 € indemnity counts in the euro total)."""
        amounts: list[Money] = []
        for line in self.invoices or ():
            total = line.total_due if line.total_due is not None else line.outstanding
            amounts.append(total)
            if line.indemnity is not None and line.indemnity.currency != total.currency:
                amounts.append(line.indemnity)
        return _by_currency(amounts)


class RenderedMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    subject: str
    text: str
    html: str


class TemplateNotFound(LookupError):
    """No such template in that language (or no such language)."""

    def __init__(self, template: str, language: str, available: list[str] | None = None) -> None:
        self.template, self.language = template, language
        message = f"no message template {template!r} in language {language!r}"
        if available is not None:
            message += f" (languages: {', '.join(available) or 'none'})"
        super().__init__(message)


class RenderError(ValueError):
    """A template that exists but cannot produce a message: a syntax error, a missing block,
    or a variable it needs that the context does not provide. Retrying will not help."""

    def __init__(self, template: str, language: str, reason: str) -> None:
        self.template, self.language, self.reason = template, language, reason
        super().__init__(f"message template {template!r} ({language}): {reason}")


def _locale(language: str) -> Locale:
    return Locale.parse(_LOCALES.get(language, language))


def _language_of(context: Any) -> str:
    # Filters format for the message's language, which every render puts in the context.
    return str(context["language"])


def _require(value: object) -> None:
    # A filter receives a missing variable as an Undefined object rather than failing: make
    # it raise StrictUndefined's own error, which names the variable, not a vague TypeError.
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()


def format_money(value: Money, language: str) -> str:
    return str(format_currency(value.amount, value.currency, locale=_locale(language)))


def format_long_date(value: date, language: str) -> str:
    text = str(format_date(value, format="long", locale=_locale(language)))
    # French writes the first of the month as an ordinal ("1er mars 2025"); CLDR does not.
    if language == "fr" and value.day == 1 and text.startswith("1 "):
        text = "1er" + text[1:]
    return text


@jinja2.pass_context
def _money(context: jinja2.runtime.Context, value: Money) -> str:
    _require(value)
    if not isinstance(value, Money):
        raise TypeError(f"the money filter takes Money, got {type(value).__name__}")
    return format_money(value, _language_of(context))


@jinja2.pass_context
def _date(context: jinja2.runtime.Context, value: date) -> str:
    _require(value)
    if not isinstance(value, date):
        raise TypeError(f"the date filter takes a date, got {type(value).__name__}")
    return format_long_date(value, _language_of(context))


def format_percent(value: Decimal, language: str) -> str:
    """An annual rate given in percent (Decimal("13.15")) -> "13,15 %" / "13.15%".

    Always two decimals at least: rates are published that way ("12,00 %"), and a letter
    that says "12 %" one half-year and "12,15 %" the next looks careless.
    """
    locale = _locale(language)
    pattern = copy.copy(locale.percent_formats[None])
    pattern.frac_prec = (2, 4)
    return str(pattern.apply(Decimal(value).scaleb(-2), locale))


@jinja2.pass_context
def _percent(context: jinja2.runtime.Context, value: Decimal) -> str:
    _require(value)
    if not isinstance(value, Decimal | int):
        raise TypeError(f"the percent filter takes a Decimal, got {type(value).__name__}")
    return format_percent(Decimal(value), _language_of(context))


_BASIS = {
    "fr": {
        RateBasis.ECB_PLUS_10: "taux BCE + 10 points",
        RateBasis.EU_REFERENCE_PLUS_8: "taux de référence BCE + 8 points (directive 2011/7/UE)",
        RateBasis.LEGAL_FLOOR: "3 × taux d'intérêt légal (minimum légal, supérieur au taux "
        "contractuel)",
    },
    "en": {
        RateBasis.ECB_PLUS_10: "ECB rate + 10 points",
        RateBasis.EU_REFERENCE_PLUS_8: "ECB reference rate + 8 points (Directive 2011/7/EU)",
        RateBasis.LEGAL_FLOOR: "3 × legal interest rate (the legal minimum, above the contract "
        "rate)",
    },
}


def describe_basis(segment: InterestSegment, language: str) -> str:
    """Why a segment has its rate, in `language`: "taux BCE + 10 points" or the contract
    clause ("clause contractuelle : 3 × taux d'intérêt légal")."""
    language = "fr" if language == "fr" else "en"
    if segment.basis is not RateBasis.CONTRACT or segment.clause is None:
        return _BASIS[language][segment.basis]
    clause = InterestClause.parse(segment.clause)
    if clause.legal_multiple is not None:
        multiple = f"{clause.legal_multiple}".replace(".", "," if language == "fr" else ".")
        if language == "fr":
            return f"clause contractuelle : {multiple} × taux d'intérêt légal"
        return f"contract clause: {multiple} × legal interest rate"
    assert clause.percent is not None
    rate = format_percent(clause.percent, language)
    return f"clause contractuelle : {rate}" if language == "fr" else f"contract clause: {rate}"


@jinja2.pass_context
def _basis(context: jinja2.runtime.Context, segment: InterestSegment) -> str:
    _require(segment)
    if not isinstance(segment, InterestSegment):
        raise TypeError(f"the basis filter takes a segment, got {type(segment).__name__}")
    return describe_basis(segment, _language_of(context))


@jinja2.pass_eval_context
def _nl2br(eval_ctx: EvalContext, value: str) -> str | Markup:
    """Keep the line breaks of free text (payment instructions) in HTML, escaped."""
    if not eval_ctx.autoescape:
        return value
    return Markup("<br>\n").join(escape(line) for line in str(value).splitlines())


# The formatting filters, for other Jinja2 environments that speak to the same people (the
# debtor portal's pages): their context must hold `language`, as a message's does.
FILTERS = {
    "money": _money,
    "date": _date,
    "percent": _percent,
    "nl2br": _nl2br,
    "basis": _basis,
}


def _environment(directory: Path, autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory, encoding="utf-8"),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(FILTERS)
    return env


class Renderer:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else TEMPLATES_DIR
        self._text_env = _environment(self.directory, autoescape=False)
        self._html_env = _environment(self.directory, autoescape=True)
        self._known: frozenset[str] | None = None
        self._languages: frozenset[str] | None = None

    def languages(self) -> list[str]:
        """Languages with at least one template, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.directory.iterdir()
            if entry.is_dir() and _NAME.match(entry.name) and self.templates(entry.name)
        )

    def language_for(self, wanted: str) -> str:
        """The language a message to someone who reads `wanted` is written in: theirs when it
        has templates, else English. Listed once per renderer, like `known_templates`: every
        message asks."""
        if self._languages is None:
            self._languages = frozenset(self.languages())
        return wanted if wanted in self._languages else "en"

    def templates(self, language: str) -> list[str]:
        """Template names in a language, sorted; empty for a language that has none."""
        folder = self.directory / language
        if not _NAME.match(language) or not folder.is_dir():
            return []
        return sorted(
            path.name.removesuffix(SUFFIX)
            for path in folder.glob(f"*{SUFFIX}")
            if path.is_file() and _NAME.match(path.name.removesuffix(SUFFIX))
        )

    def known_templates(self) -> frozenset[str]:
        """Templates present in every language: the names a playbook step may use.

        Listed once per renderer: every hand-over checks its playbook against them, and
        listing the folders each time cost more than the rest of the check."""
        if self._known is None:
            by_language = {lang: self.templates(lang) for lang in self.languages()}
            self._known = frozenset(common_templates(by_language))
        return self._known

    def check(self, template: str, language: str) -> None:
        """Raise TemplateNotFound if the template is missing in that language, RenderError if
        it does not compile, lacks a block or uses a variable no message ever has. Meant for
        load time: a playbook naming a template that cannot be sent is better refused before
        any invoice reaches that step."""
        self._load(self._text_env, template, language)
        self._load(self._html_env, template, language)
        # Rendered once with every variable a message can have: a misspelt or unknown one
        # fails here (StrictUndefined), not in a debtor's letter weeks later.
        self.render(template, _sample_context(language))

    def render(self, template: str, context: MessageContext) -> RenderedMessage:
        language = context.language
        text_template = self._load(self._text_env, template, language)
        html_template = self._load(self._html_env, template, language)
        variables = context.variables()
        try:
            # A subject is one line whatever the template's layout or the debtor's name holds.
            subject = " ".join(self._block(text_template, "subject", variables).split())
            text = self._block(text_template, "text", variables)
            html = self._block(html_template, "html", variables)
            html = self._layout(language, subject, Markup(html.strip()), variables)
        except (jinja2.TemplateError, TypeError, UnknownLocaleError) as exc:
            # A variable the template needs is missing, a filter got the wrong kind of value,
            # or Babel has no locale for the language: a bug in the templates or their caller,
            # which no retry will fix.
            raise RenderError(template, language, str(exc)) from exc
        return RenderedMessage(
            subject=subject,
            text=text.strip() + "\n",
            html=html.strip() + "\n",
        )

    def _load(self, env: jinja2.Environment, template: str, language: str) -> jinja2.Template:
        # Names starting with "_" are layouts, not messages; anything not a plain identifier
        # could walk out of the directory.
        if not (_NAME.match(template) and _NAME.match(language)):
            raise TemplateNotFound(template, language, self.languages())
        try:
            loaded = env.get_template(f"{language}/{template}{SUFFIX}")
        except jinja2.TemplateNotFound as exc:
            raise TemplateNotFound(template, language, self.languages()) from exc
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(template, language, f"line {exc.lineno}: {exc.message}") from exc
        missing = [block for block in BLOCKS if block not in loaded.blocks]
        if missing:
            raise RenderError(template, language, f"missing block(s) {', '.join(missing)}")
        return loaded

    @staticmethod
    def _block(template: jinja2.Template, block: str, variables: dict[str, Any]) -> str:
        render = template.blocks[block]
        return "".join(render(template.new_context(variables)))

    def _layout(
        self, language: str, subject: str, content: Markup, variables: dict[str, Any]
    ) -> str:
        name = f"{language}/{LAYOUT}"
        try:
            layout = self._html_env.get_template(name)
        except jinja2.TemplateNotFound as exc:
            if exc.name != name:
                raise
            return str(content)  # no layout for this language: the block is the whole body
        return layout.render({**variables, "subject": subject, "content": content})


@lru_cache(maxsize=1)
def shipped_renderer() -> Renderer:
    """The renderer of the shipped templates, built once per process."""
    return Renderer()


def _sample_context(language: str) -> MessageContext:
    """A message with every optional part present, for `Renderer.check`."""
    euros = Money.of("1234.56", "EUR")
    day = date(2026, 1, 15)
    line = InvoiceLine(
        invoice_number="F-0001",
        issue_date=day,
        due_date=day,
        amount=euros,
        outstanding=euros,
        days_late=30,
        interest=Money.of("12.34", "EUR"),
        indemnity=Money.of("40", "EUR"),
        total_due=euros,
    )
    return MessageContext(
        language=language,
        tone=Tone.FIRM,
        invoice_number="F-0001",
        issue_date=day,
        due_date=day,
        amount=euros,
        outstanding=euros,
        as_of=day,
        days_late=30,
        debtor_name="Sample SARL",
        creditor_name="Sample creditor",
        payment_instructions="IBAN FR76 0000",
        interest=Money.of("12.34", "EUR"),
        interest_rate=Decimal("12.15"),
        indemnity=Money.of("40", "EUR"),
        total_due=euros,
        paid=euros,
        approval_id="F-0001:mediation:1",
        target_stage="mediation",
        installment_amount=euros,
        installment_due_date=day,
        invoices=[line, line.model_copy(update={"invoice_number": "F-0002"})],
        segments=[
            InterestSegment(
                principal=euros,
                start=day,
                end=day,
                days=1,
                rate=Decimal("12.15"),
                basis=RateBasis.ECB_PLUS_10,
                half_year="2026-H1",
                provisional=False,
            ),
            InterestSegment(
                principal=euros,
                start=day,
                end=day,
                days=1,
                rate=Decimal("12.15"),
                basis=RateBasis.CONTRACT,
                clause="3x_legal",
                half_year="2026-H1",
                provisional=True,
            ),
        ],
        provisional=True,
        deadline=day,
        deadline_business_days=8,
        paid_on=day,
        portal_url="https://relance.example/portal/l/sample",
        reference="D-0001",
        outcome="active",
        previous_contacts=[
            PreviousContact(day=day, channel="email", template="reminder", outcome="delivered")
        ],
        promise_by=day,
        notice_deadline=day,
    )
