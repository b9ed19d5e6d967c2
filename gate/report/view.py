"""The Markdown report's view: the report model (``content.py``) -> rows and sections of safe
Markdown text. Numbers are formatted by the model; every name and note goes through
``escape_text`` here, so what the template prints is escaped or built from numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gate.core.environment_fields import LABEL_LIMIT
from gate.report.content import (
    SEVERITY,
    UNIT_FRACTION,
    Report,
    ReportRow,
    by_severity,
    count_phrase,
    number,
    percent,
)
from gate.report.content import format_quantity as plain_quantity
from gate.report.escape import TEXT_LIMIT, escape_text, safe
from gate.units import SCALED_UNITS

if TYPE_CHECKING:
    from markupsafe import Markup

DEFAULT_NAME = "main"
TOOL = "perf-gate"
HEADLINE_NAME_LIMIT = 60  # characters of the benchmark the headline names
# What a failing headline counts: what fails or could not be decided (the table has the rest).
FAILING_COUNTS = ("regression", "advisory", "over-budget", "parity-fail", "error", "inconclusive")
NBSP = "\u00a0"  # keeps an emoji on the line of its word, a number with its unit
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
    if value is not None and unit != UNIT_FRACTION and unit not in SCALED_UNITS:
        return f"{value:.4g} {escape_text(unit, 20)}"
    return plain_quantity(value, unit)


def _mode_cell(row: ReportRow) -> str:
    """``ab``, and ``mde 2.1%`` below it in small type: how the baseline side was measured and
    the smallest change the run could detect."""
    if not row.mode:
        return ""
    mode = escape_text(row.mode, 20)
    if row.mde is None:
        return mode
    return f"{mode}<br><sub>mde{NBSP}{percent(row.mde).lstrip('+')}</sub>"


def verdict_label(row: ReportRow) -> str:
    """``🔴 regression``: the emoji and the verdict on one line (an unknown verdict escaped)."""
    if row.advisory and row.verdict == "regression":
        label = "🟠 regression (advisory)"
    elif row.advisory and row.verdict == "improvement":
        label = VERDICT_LABELS[row.verdict] + " (advisory)"
    else:
        label = VERDICT_LABELS.get(row.verdict, "❓ " + escape_text(row.verdict, 30))
    return label.replace(" ", NBSP, 1)


def _change_cell(row: ReportRow) -> str:
    """The estimate, and its interval below it in small type (numbers only)."""
    if not row.interval:
        return row.estimate
    return f"{row.estimate}<br><sub>{row.interval.replace(' ', NBSP)}</sub>"


def _values_cell(row: ReportRow) -> str:
    """``531 us``, and ``from 412 us`` below it in small type: the current value and the
    baseline's, each unbroken (two short lines keep the column narrow at a timeline's width)."""
    current = format_quantity(row.current, row.unit).replace(" ", NBSP)
    if row.baseline is None:
        return current
    baseline = format_quantity(row.baseline, row.unit).replace(" ", NBSP)
    return f"{current}<br><sub>from{NBSP}{baseline}</sub>"


_BREAKS = re.compile(r"(::|/)")


def breakable(escaped: str) -> str:
    """An escaped name that may wrap after ``/`` and ``::`` (``<wbr>``: no character is added, so
    a copied pytest node id still runs): ``tests/test_x.py::test_y`` cannot otherwise wrap, and
    a name wider than its column pushes the table past a 780 px timeline."""
    return _BREAKS.sub(r"\1<wbr>", escaped)


def _detect_cell(row: ReportRow) -> str:
    """The smallest change the row's run could detect: ``≥ 2.1%``, ``–`` without one."""
    return f"≥{NBSP}{percent(row.mde).lstrip('+')}" if row.mde is not None else "–"


def _notes(row: ReportRow) -> list[tuple[str, str]]:
    """The row's notes, each as (plain text, escaped text)."""
    notes = []
    if row.note and row.verdict != "unchanged":
        notes.append((row.note, escape_text(row.note, 2 * TEXT_LIMIT)))
    if row.flips is not None:
        wrong, right = row.flips
        noun = "example" if wrong == 1 else "examples"
        text = f"{wrong} {noun} flipped to wrong, {right} to right"
        notes.append((text, text))
    if row.rule:
        notes.append(("rule: " + row.rule, "rule: " + escape_text(row.rule, 2 * TEXT_LIMIT)))
    return notes


INLINE_NOTES = 48  # characters of notes shown under a verdict; longer ones become footnotes
SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def footnote_mark(number: int) -> str:
    """``¹``, ``¹²``: a footnote's number as superscript digits (plain text, so it reads in the
    raw Markdown of a notification e-mail too)."""
    return str(number).translate(SUPERSCRIPTS)


@dataclass(frozen=True, kw_only=True)
class Row:
    label: Markup  # the verdict's emoji and word
    inline: Markup  # short notes, shown under the verdict in small type
    footnotes: tuple[Markup, ...]  # longer notes, listed under the table
    benchmark: Markup
    metric: Markup
    values: Markup  # the current value, the baseline's below it
    change: Markup  # the estimate and its interval below it
    estimate: Markup  # the estimate alone (inconclusive rows, whose interval says little)
    detect: Markup  # the smallest detectable change
    mode: Markup  # how the baseline side was measured, the mde below it
    mode_name: Markup  # how the baseline side was measured
    severity: int
    magnitude: float
    inconclusive: bool
    mde: float | None


def _row(row: ReportRow) -> Row:
    inline: list[str] = []
    footnotes: list[str] = []
    width = 0
    for plain, escaped in _notes(row):
        if width + len(plain) <= INLINE_NOTES:
            inline.append(escaped)
            width += len(plain) + 2
        else:
            footnotes.append(escaped)
    return Row(
        label=safe(verdict_label(row)),
        inline=safe("; ".join(inline)),
        footnotes=tuple(safe(f) for f in footnotes),
        benchmark=safe(breakable(escape_text(row.benchmark))),
        metric=safe(escape_text(row.metric, 40)),
        values=safe(_values_cell(row)),
        change=safe(_change_cell(row)),  # numbers only
        estimate=safe(row.estimate or "–"),  # numbers only
        detect=safe(_detect_cell(row)),
        mode=safe(_mode_cell(row)),
        mode_name=safe(escape_text(row.mode, 20)),
        severity=row.severity,
        magnitude=row.magnitude,
        inconclusive=row.verdict == "inconclusive",
        mde=row.mde,
    )


def verdict_cells(rows: Iterable[Row]) -> tuple[list[tuple[Row, Markup]], list[Markup]]:
    """Each row with its verdict cell (the label, footnote marks, short notes below it) and the
    table's footnotes, numbered from 1 in the order of the rows; a note that several rows share
    (a benchmark's latency and throughput) is one footnote."""
    numbers: dict[str, int] = {}
    cells = []
    for row in rows:
        marks = ""
        for note in row.footnotes:
            marks += footnote_mark(numbers.setdefault(str(note), len(numbers) + 1))
        below = f"<br><sub>{row.inline}</sub>" if row.inline else ""
        cell = f"{row.label}{marks}{below}"  # escaped parts: one string, then marked safe
        cells.append((row, safe(cell)))
    notes = [safe(f"{footnote_mark(n)}{NBSP}{note}") for note, n in numbers.items()]
    return cells, notes


def ordered_rows(rows: Iterable[ReportRow]) -> list[Row]:
    """Rows by severity (what fails first), timings before other metrics and exact sizes, then
    by the size of the change; a merged report grouped by environment first
    (``content.by_severity``)."""
    return [_row(row) for row in by_severity(rows)]


def tool(report: Report, name: str) -> str:
    """``perf-gate (cpu-x86_64)``, ``perf-gate gpu (NVIDIA A10G)``: which gate on which machine,
    so that two gates on one pull request (a CPU and a GPU job, two configs) tell apart."""
    who = TOOL if name == DEFAULT_NAME else f"{TOOL} {escape_text(name, 64)}"
    label = report.environment_label
    return f"{who} ({escape_text(label, LABEL_LIMIT)})" if label else who


def worst_change(row: ReportRow) -> str:
    """What the headline names: ``digits-mlp\\[torch\\] latency +28.9%``, ``m memory.peak
    712 MB over budget 600MB``, ``m parity fail`` (escaped)."""
    benchmark = escape_text(row.benchmark, HEADLINE_NAME_LIMIT)
    what = f"{benchmark} {escape_text(row.metric, 40)}"
    if row.verdict == "over-budget":
        limit = row.note.removeprefix("budget ").strip()
        over = f" over budget {escape_text(limit, 40)}" if limit else " over budget"
        return f"{what} {format_quantity(row.current, row.unit)}{over}"
    if row.verdict == "parity-fail":
        return f"{benchmark} parity fail"
    if row.verdict == "error":
        return f"{benchmark} could not be measured"
    if row.verdict in ("inconclusive", "missing", "new") or not row.estimate:
        return f"{what} {VERDICT_LABELS.get(row.verdict, row.verdict).split(' ', 1)[-1]}"
    return f"{what} {row.estimate}" + (" (advisory)" if row.advisory else "")


def _mismatch(report: Report) -> str:
    fields = [escape_text(key, 40) for key, _, _ in report.environment]
    shown = ", ".join(fields[:3]) + (", …" if len(fields) > 3 else "")
    return f"baseline from another environment ({shown})"


def headline(report: Report, name: str) -> str:
    """The first line: the verdict, which gate on which machine, the worst change and the
    counts (a failure's: what fails or is inconclusive); escaped. A pass names no change (an
    advisory regression excepted); a baseline from another environment is a warning, never a
    green line."""
    status = report.status
    worst = report.worst
    if status in ("fail", "error"):
        counts = count_phrase(report.rows, FAILING_COUNTS)
        if worst is not None and (status == "fail" or worst.verdict == "error"):
            what = worst_change(worst)
        elif report.errors:
            what = f"{escape_text(report.errors[0][0], HEADLINE_NAME_LIMIT)} could not run"
        else:
            what = "the gate could not run"
        icon = "❌" if status == "fail" else "⚠️"
        parts = [what, counts]
        if report.environment:
            parts.append("⚠️ " + _mismatch(report))
    elif status == "new":
        icon, parts = "🆕", ["no baseline yet", report.counts]
    elif status == "mismatch":
        icon, parts = "⚠️", [_mismatch(report), report.counts]
    else:
        advisory = worst is not None and worst.counted_as == "advisory"
        icon = "✅"
        parts = [worst_change(worst) if worst is not None and advisory else "no regression"]
        parts.append(report.counts)
    return f"{icon} {tool(report, name)}: " + " · ".join(p for p in parts if p)


def environment_rows(report: Report) -> list[tuple[Markup, Markup, Markup]]:
    return [
        (
            safe(escape_text(key, 40)),
            safe(escape_text("–" if old is None else old)),
            safe(escape_text("–" if new is None else new)),
        )
        for key, old, new in report.environment
    ]


def dependency_rows(report: Report) -> list[tuple[Markup, Markup, Markup]]:
    """Package, base side and head side of each dependency that differs from the base."""
    found = report.dependencies
    return [
        (safe(escape_text(name, 60)), safe(escape_text(old, 60)), safe(escape_text(new, 60)))
        for name, old, new in (found.packages if found else ())
    ]


def dependency_sides(report: Report) -> Markup | None:
    """``base: Python 3.11.7, packages 1a2b3c4d5e6f · head: ...`` (each side's fingerprint)."""
    found = report.dependencies
    if found is None or not found.sides:
        return None
    parts = [
        f"{escape_text(side, 10)}: Python {escape_text(python, 20)}, packages "
        f"`{escape_text(fingerprint, 20)}`"
        for side, python, fingerprint in found.sides
    ]
    return safe(" · ".join(parts))


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
    """ "What each variant costs": the parity verdict first (as in every table of the report),
    then quality, latency, memory and the parity numbers against its reference."""
    table = report.variants
    if table is None:
        return None
    header = (
        "parity verdict",
        "variant",
        "reference",
        *table.metrics,
        "latency",
        "memory",
        "parity",
    )
    rows = []
    for variant in table.rows:
        parity, verdict = "–", "–"
        if variant.parity is not None:
            parity = variant.parity.summary
            verdict = f"🔴{NBSP}parity fail" if variant.parity.failed else f"✅{NBSP}ok"
            if variant.parity.details:
                parity += (
                    "<br><sub>"
                    + "; ".join(
                        label + escape_text(text, 2 * TEXT_LIMIT)
                        for label, text in variant.parity.details
                    )
                    + "</sub>"
                )
        cells = [
            verdict,
            escape_text(variant.benchmark),
            escape_text(variant.reference),
            *variant.quality,
            variant.latency,
            variant.memory,
            parity,
        ]
        rows.append(tuple(safe(c) for c in cells))
    return VariantTable(header=tuple(safe(escape_text(h, 40)) for h in header), rows=tuple(rows))
