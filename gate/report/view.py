"""The Markdown report's view: the report model (``content.py``) -> rows and sections of safe
Markdown text. Numbers are formatted by the model; every name and note goes through
``escape_text`` here, so what the template prints is escaped or built from numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gate.report.content import (
    SEVERITY,
    UNIT_FRACTION,
    Report,
    ReportRow,
    by_severity,
    number,
    percent,
)
from gate.report.content import format_quantity as plain_quantity
from gate.report.escape import TEXT_LIMIT, escape_text, safe
from gate.units import UNIT_BYTES, UNIT_RATE, UNIT_SECONDS

if TYPE_CHECKING:
    from markupsafe import Markup

DEFAULT_NAME = "main"
VERDICT_LABELS = {
    "regression": "🔴 regression",
    "over-budget": "🔴 over budget",
    "parity-fail": "🔴 parity fail",
    "error": "⚠️ error",
    "inconclusive": "❔ inconclusive",
    "accepted-trade-off": "🟡 accepted trade-off",
    "missing": "➖ missing",
    "new": "🆕 new",
    "improvement": "🟢 improvement",
    "unchanged": "⚪ unchanged",
}
__all__ = ["SEVERITY", "UNIT_FRACTION", "number", "percent"]  # re-exported for the report


def format_quantity(value: float | None, unit: str) -> str:
    """A value in its unit (``1.23 ms``, ``97.00%``); an unknown unit is escaped text."""
    if value is not None and unit not in (UNIT_FRACTION, UNIT_SECONDS, UNIT_BYTES, UNIT_RATE, ""):
        return f"{value:.4g} {escape_text(unit, 20)}"
    return plain_quantity(value, unit)


def _mode_cell(row: ReportRow) -> str:
    if not row.mode:
        return ""
    return escape_text(row.mode, 20) + (
        f" · {percent(row.mde).lstrip('+')}" if row.mde is not None else ""
    )


def verdict_label(row: ReportRow) -> str:
    if row.advisory and row.verdict == "regression":
        return "🟠 regression (advisory)"
    if row.advisory and row.verdict == "improvement":
        return VERDICT_LABELS[row.verdict] + " (advisory)"
    return VERDICT_LABELS.get(row.verdict, escape_text(row.verdict, 30))


def _notes(row: ReportRow) -> list[str]:
    notes = []
    if row.note and row.verdict != "unchanged":
        notes.append(escape_text(row.note, 2 * TEXT_LIMIT))
    if row.flips is not None:
        wrong, right = row.flips
        noun = "example" if wrong == 1 else "examples"
        notes.append(f"{wrong} {noun} flipped to wrong, {right} to right")
    if row.rule:
        notes.append("rule: " + escape_text(row.rule, 2 * TEXT_LIMIT))
    return notes


@dataclass(frozen=True, kw_only=True)
class Row:
    benchmark: Markup
    metric: Markup
    baseline: Markup
    current: Markup
    change: Markup
    mode: Markup
    verdict: Markup
    severity: int
    magnitude: float


def _row(row: ReportRow) -> Row:
    label = verdict_label(row)
    notes = _notes(row)
    if notes:
        label += "<br><sub>" + "; ".join(notes) + "</sub>"
    return Row(
        benchmark=safe(escape_text(row.benchmark)),
        metric=safe(escape_text(row.metric, 40)),
        baseline=safe(format_quantity(row.baseline, row.unit)),
        current=safe(format_quantity(row.current, row.unit)),
        change=safe(row.change),  # numbers only
        mode=safe(_mode_cell(row)),
        verdict=safe(label),
        severity=row.severity,
        magnitude=row.magnitude,
    )


def ordered_rows(rows: Iterable[ReportRow]) -> list[Row]:
    """Rows by severity (what fails first), then by the size of the change; a merged report
    grouped by environment first (``model.by_severity``)."""
    return [_row(row) for row in by_severity(rows)]


def headline(report: Report, name: str) -> str:
    """The first line: the verdict with counts."""
    summary = report.counts
    if report.exit_code == 1:
        text = f"❌ {summary}"
    elif report.exit_code != 0:
        text = f"⚠️ {summary or 'the gate could not run'}"
    elif not report.has_baseline:
        text = "🆕 no baseline yet: this run will become the baseline once merged"
    else:
        text = "✅ no regressions" + (f": {summary}" if summary else "")
    suffix = f" · {name}" if name != DEFAULT_NAME else ""
    return text + suffix


def environment_rows(report: Report) -> list[tuple[Markup, Markup, Markup]]:
    return [
        (
            safe(escape_text(key, 40)),
            safe(escape_text("–" if old is None else old)),
            safe(escape_text("–" if new is None else new)),
        )
        for key, old, new in report.environment
    ]


def over_budget_rows(report: Report) -> list[tuple[Markup, ...]]:
    """Benchmark, metric, current value and the budget of each over-budget comparison."""
    rows: list[tuple[Markup, ...]] = []
    for row in report.rows:
        if row.verdict != "over-budget":
            continue
        limit = row.note.removeprefix("budget ").strip() or "–"
        rows.append(
            (
                safe(escape_text(row.benchmark)),
                safe(escape_text(row.metric, 40)),
                safe(format_quantity(row.current, row.unit)),
                safe(escape_text(limit, 40)),
            )
        )
    return rows


def trade_off_lines(report: Report) -> list[Markup]:
    lines = []
    for row in report.rows:
        if row.verdict != "accepted-trade-off":
            continue
        rule = row.rule or row.note or "a trade-off rule"
        lines.append(
            safe(
                f"{escape_text(row.benchmark)} {escape_text(row.metric, 40)}"
                f"{' ' + row.change if row.change else ''}: accepted by rule: "
                f"{escape_text(rule, 2 * TEXT_LIMIT)}"
            )
        )
    return lines


@dataclass(frozen=True, kw_only=True)
class VariantTable:
    header: tuple[Markup, ...]
    rows: tuple[tuple[Markup, ...], ...]


def variant_table(report: Report) -> VariantTable | None:
    """ "What each variant costs": quality, latency, memory and parity against its reference."""
    table = report.variants
    if table is None:
        return None
    header = (
        "variant",
        "reference",
        *table.metrics,
        "latency",
        "memory",
        "parity",
        "parity verdict",
    )
    rows = []
    for variant in table.rows:
        parity, verdict = "–", ""
        if variant.parity is not None:
            parity = variant.parity.summary
            verdict = "🔴 parity fail" if variant.parity.failed else "✅ ok"
            if variant.parity.details:
                verdict += (
                    "<br><sub>"
                    + "; ".join(
                        label + escape_text(text, 2 * TEXT_LIMIT)
                        for label, text in variant.parity.details
                    )
                    + "</sub>"
                )
        cells = [
            escape_text(variant.benchmark),
            escape_text(variant.reference),
            *variant.quality,
            variant.latency,
            variant.memory,
            parity,
            verdict,
        ]
        rows.append(tuple(safe(c) for c in cells))
    return VariantTable(header=tuple(safe(escape_text(h, 40)) for h in header), rows=tuple(rows))
