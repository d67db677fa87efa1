"""Charts for the reports page, drawn server-side as SVG by pygal (no JavaScript, no CDN)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pygal
from pygal.style import Style

from api.reports.schemas import AgingReport, DsoPoint, ForecastReport, KpiReport

_STYLE = Style(
    background="transparent",
    plot_background="transparent",
    colors=("#1f6feb", "#8957e5", "#d29922", "#cf222e", "#2da44e"),
    font_family="system-ui, sans-serif",
)


def _config(chart: pygal.Graph) -> pygal.Graph:
    # pygal links its tooltip script from a CDN by default: the console works offline.
    chart.config.js = []
    chart.config.disable_xml_declaration = True
    chart.config.style = _STYLE
    chart.config.height = 300
    chart.config.legend_at_bottom = True
    return chart


def _svg(chart: pygal.Graph) -> str:
    return str(chart.render(is_unicode=True))


def _f(value: str | None) -> float:
    return float(Decimal(value)) if value is not None else 0.0


def aging(report: AgingReport, title: str, labels: Sequence[str]) -> str:
    chart = _config(pygal.StackedBar(title=title))
    chart.x_labels = list(labels)
    for row in report.by_segment:
        values = [row.not_due, row.d1_30, row.d31_60, row.d61_90, row.d90_plus]
        chart.add(row.segment or "—", [_f(v) for v in values])
    return _svg(chart)


def dso(points: Sequence[DsoPoint], title: str) -> str:
    chart = _config(pygal.Line(title=title, show_dots=True))
    chart.x_labels = [p.month_end.strftime("%Y-%m") for p in points]
    chart.add("DSO", [_f(p.dso) for p in points])
    return _svg(chart)


def steps(report: KpiReport, title: str) -> str:
    chart = _config(pygal.HorizontalBar(title=title, range=(0, 100)))
    for step in report.steps:
        chart.add(f"{step.step_id} ({step.template})", _f(step.paid_share_pct))
    return _svg(chart)


def forecast(report: ForecastReport, title: str, gross: str, expected: str) -> str:
    chart = _config(pygal.Bar(title=title, x_label_rotation=30))
    chart.x_labels = [w.week_start.isoformat() for w in report.weeks]
    chart.add(gross, [_f(w.gross) for w in report.weeks])
    chart.add(expected, [_f(w.expected) for w in report.weeks])
    return _svg(chart)
