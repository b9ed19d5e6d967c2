"""The report's view: comparison.json (a dict) -> rows and sections of safe Markdown text.

Everything here reads the dict defensively (the file may come from another job or another
perf-gate version's extra keys) and returns text that is already escaped where it holds
untrusted parts: numbers are formatted here, names go through ``escape_text``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gate.report.escape import TEXT_LIMIT, escape_text, safe
from gate.units import UNIT_BYTES, UNIT_RATE, UNIT_SECONDS, format_value

if TYPE_CHECKING:
    from markupsafe import Markup

DEFAULT_NAME = "main"
UNIT_FRACTION = "fraction"  # accuracy-like metrics: values 0..1, changes in percentage points

# Order of the "what changed" table: what fails first, improvements last.
SEVERITY = (
    "regression",
    "over-budget",
    "parity-fail",
    "error",
    "inconclusive",
    "accepted-trade-off",
    "missing",
    "new",
    "improvement",
    "unchanged",
)
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
# (singular, plural) for the headline's counts, in the headline's order.
COUNT_WORDS = (
    ("regression", "regression", "regressions"),
    ("advisory", "advisory regression", "advisory regressions"),
    ("over-budget", "over budget", "over budget"),
    ("parity-fail", "parity failure", "parity failures"),
    ("error", "error", "errors"),
    ("inconclusive", "inconclusive", "inconclusive"),
    ("accepted-trade-off", "accepted trade-off", "accepted trade-offs"),
    ("improvement", "improvement", "improvements"),
    ("new", "new", "new"),
    ("missing", "missing", "missing"),
    ("unchanged", "unchanged", "unchanged"),
)


def number(value: object) -> float | None:
    """A finite float from a JSON value, else None (null, NaN, strings, booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def percent(value: float) -> str:
    """``+12.3%``; beyond +-1000% just ``>+1000%``."""
    if value > 10.0:
        return ">+1000%"
    if value < -10.0:
        return "<-1000%"
    return f"{value * 100:+.1f}%"


def format_quantity(value: float | None, unit: str) -> str:
    """A value in its unit (``1.23 ms``, ``97.00%``); an unknown unit is escaped text."""
    if value is None:
        return "–"
    if unit == UNIT_FRACTION:
        return f"{value * 100:.2f}%"
    if unit in (UNIT_SECONDS, UNIT_BYTES, UNIT_RATE, ""):
        return format_value(value, unit)
    return f"{value:.4g} {escape_text(unit, 20)}"


def points(change: float) -> str:
    return f"{change * 100:+.2f} pt"


def _absolute(value: float, unit: str) -> str:
    return points(value) if unit == UNIT_FRACTION else f"{value:+.4g}"


def format_change(item: Mapping[str, Any]) -> str:
    """``+12.3% [+10.1%, +14.6%]``: the relative change and its interval; quality metrics
    (with ``absolute_change``) in their own units, points for fractions: ``-1.94 pt [...]``."""
    absolute = number(item.get("absolute_change"))
    if absolute is not None:
        unit = str(item.get("unit") or "")
        text = _absolute(absolute, unit)
        bounds = item.get("absolute_ci")
        if isinstance(bounds, list) and len(bounds) == 2:
            low, high = number(bounds[0]), number(bounds[1])
            if low is not None and high is not None:
                text += f" [{_absolute(low, unit)}, {_absolute(high, unit)}]"
        return text
    relative = number(item.get("relative_change"))
    text = percent(relative) if relative is not None else ""
    low, high = number(item.get("ci_low")), number(item.get("ci_high"))
    if text and low is not None and high is not None and low != high:
        text += f" [{percent(low)}, {percent(high)}]"
    return text


def _mode_cell(item: Mapping[str, Any]) -> str:
    mode = item.get("mode")
    if not isinstance(mode, str) or not mode:
        return ""
    mde = number(item.get("mde"))
    return escape_text(mode, 20) + (f" · {percent(mde).lstrip('+')}" if mde is not None else "")


def _flips(item: Mapping[str, Any]) -> str:
    flips = item.get("flips")
    if not isinstance(flips, Mapping):
        return ""
    wrong, right = flips.get("to_wrong"), flips.get("to_right")
    if not isinstance(wrong, int) or not isinstance(right, int):
        return ""
    noun = "example" if wrong == 1 else "examples"
    return f"{wrong} {noun} flipped to wrong, {right} to right"


def verdict_label(item: Mapping[str, Any]) -> str:
    verdict = str(item.get("verdict"))
    if item.get("advisory") and verdict == "regression":
        return "🟠 regression (advisory)"
    if item.get("advisory") and verdict == "improvement":
        return VERDICT_LABELS[verdict] + " (advisory)"
    return VERDICT_LABELS.get(verdict, escape_text(verdict, 30))


def _notes(item: Mapping[str, Any]) -> list[str]:
    notes = []
    note = item.get("note")
    if isinstance(note, str) and note and item.get("verdict") != "unchanged":
        notes.append(escape_text(note, 2 * TEXT_LIMIT))
    if flips := _flips(item):
        notes.append(flips)
    rule = item.get("rule")
    if isinstance(rule, str) and rule:
        notes.append("rule: " + escape_text(rule, 2 * TEXT_LIMIT))
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


def _row(item: Mapping[str, Any]) -> Row:
    unit = str(item.get("unit") or "")
    verdict = str(item.get("verdict"))
    label = verdict_label(item)
    notes = _notes(item)
    if notes:
        label += "<br><sub>" + "; ".join(notes) + "</sub>"
    severity = SEVERITY.index(verdict) if verdict in SEVERITY else len(SEVERITY)
    if item.get("advisory") and verdict == "regression":
        severity = SEVERITY.index("inconclusive")  # does not fail: after what does
    relative = number(item.get("relative_change"))
    return Row(
        benchmark=safe(escape_text(item.get("benchmark", ""))),
        metric=safe(escape_text(item.get("metric", ""), 40)),
        baseline=safe(format_quantity(number(item.get("baseline")), unit)),
        current=safe(format_quantity(number(item.get("current")), unit)),
        change=safe(format_change(item)),
        mode=safe(_mode_cell(item)),
        verdict=safe(label),
        severity=severity,
        magnitude=abs(relative) if relative is not None else 0.0,
    )


def ordered_rows(comparisons: Iterable[Mapping[str, Any]]) -> list[Row]:
    """Rows by severity (what fails first), then by the size of the change; a report merged
    across environments (``perf-gate merge``) is grouped by its ``environment`` first."""
    keyed = [(str(c.get("environment") or ""), _row(c)) for c in comparisons]
    keyed.sort(key=lambda pair: (pair[0], pair[1].severity, -pair[1].magnitude))
    return [row for _, row in keyed]


def headline(data: Mapping[str, Any], name: str) -> str:
    """The first line: the verdict with counts."""
    comparisons = data["comparisons"]
    counts: dict[str, int] = {}
    for item in comparisons:
        verdict = str(item.get("verdict"))
        if verdict == "regression" and item.get("advisory"):
            verdict = "advisory"
        counts[verdict] = counts.get(verdict, 0) + 1
    parts = [
        f"{counts[key]} {one if counts[key] == 1 else many}"
        for key, one, many in COUNT_WORDS
        if counts.get(key)
    ]
    summary = ", ".join(parts)
    exit_code = data["exit_code"]
    if exit_code == 1:
        text = f"❌ {summary}"
    elif exit_code != 0:
        text = f"⚠️ {summary or 'the gate could not run'}"
    elif not data["has_baseline"]:
        text = "🆕 no baseline yet: this run will become the baseline once merged"
    else:
        text = "✅ no regressions" + (f": {summary}" if summary else "")
    suffix = f" · {name}" if name != DEFAULT_NAME else ""
    return text + suffix


def environment_rows(data: Mapping[str, Any]) -> list[tuple[Markup, Markup, Markup]]:
    differences = data.get("environment_differences")
    if not isinstance(differences, Mapping):
        return []
    rows = []
    for key, pair in differences.items():
        if isinstance(pair, Mapping):
            old, new = pair.get("baseline"), pair.get("current")
        else:
            old, new = pair, None
        rows.append(
            (
                safe(escape_text(key, 40)),
                safe(escape_text("–" if old is None else old)),
                safe(escape_text("–" if new is None else new)),
            )
        )
    return rows


def over_budget_rows(data: Mapping[str, Any]) -> list[tuple[Markup, ...]]:
    """Benchmark, metric, current value and the budget of each over-budget comparison."""
    rows: list[tuple[Markup, ...]] = []
    for item in data["comparisons"]:
        if item.get("verdict") != "over-budget":
            continue
        unit = str(item.get("unit") or "")
        note = str(item.get("note") or "")
        limit = note.removeprefix("budget ").strip() or "–"
        rows.append(
            (
                safe(escape_text(item["benchmark"])),
                safe(escape_text(item["metric"], 40)),
                safe(format_quantity(number(item.get("current")), unit)),
                safe(escape_text(limit, 40)),
            )
        )
    return rows


def trade_off_lines(data: Mapping[str, Any]) -> list[Markup]:
    lines = []
    for item in data["comparisons"]:
        if item.get("verdict") != "accepted-trade-off":
            continue
        rule = item.get("rule") or item.get("note") or "a trade-off rule"
        change = format_change(item)
        lines.append(
            safe(
                f"{escape_text(item['benchmark'])} {escape_text(item['metric'], 40)}"
                f"{' ' + change if change else ''}: accepted by rule: "
                f"{escape_text(rule, 2 * TEXT_LIMIT)}"
            )
        )
    return lines


QUALITY_ORDER = ("accuracy", "top5", "f1_macro", "mae", "rmse")
FRACTION_METRICS = frozenset({"accuracy", "top5", "f1_macro"})


def _quality_value(metric: str, value: float | None, reference: float | None) -> str:
    if value is None:
        return "–"
    if metric in FRACTION_METRICS:
        text = f"{value * 100:.2f}%"
        return text + (f" ({points(value - reference)})" if reference is not None else "")
    text = f"{value:.4g}"
    return text + (f" ({value - reference:+.3g})" if reference is not None else "")


def _ratio(value: float | None, reference: float | None, unit: str) -> str:
    if value is None:
        return "–"
    text = format_value(value, unit)
    if reference:
        text += f" (×{value / reference:.2f})"
    return text


def _parity(parity: object) -> tuple[str, str]:
    if not isinstance(parity, Mapping):
        return "–", ""
    parts = []
    if (value := number(parity.get("max_abs_diff"))) is not None:
        parts.append(f"max abs diff {value:.2g}")
    if (value := number(parity.get("mean_abs_diff"))) is not None:
        parts.append(f"mean {value:.2g}")
    if (value := number(parity.get("top1_agreement"))) is not None:
        parts.append(f"top-1 agreement {value * 100:.2f}%")
    verdict = "🔴 parity fail" if parity.get("verdict") == "parity-fail" else "✅ ok"
    details = [
        f"{label}{escape_text(parity[key], 2 * TEXT_LIMIT)}"
        for key, label in (("bounds", "bounds: "), ("reason", ""))
        if isinstance(parity.get(key), str) and parity[key]
    ]
    if details:
        verdict += "<br><sub>" + "; ".join(details) + "</sub>"
    return ", ".join(parts) or "–", verdict


@dataclass(frozen=True, kw_only=True)
class VariantTable:
    header: tuple[Markup, ...]
    rows: tuple[tuple[Markup, ...], ...]


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def variant_table(data: Mapping[str, Any]) -> VariantTable | None:
    """ "What each variant costs": quality, latency, memory and parity against its reference."""
    variants = [v for v in data.get("variants") or () if isinstance(v, Mapping)]
    if not variants:
        return None
    by_name = {str(v.get("benchmark")): v for v in variants}
    names: set[str] = set()
    for variant in variants:
        if isinstance(variant.get("quality"), Mapping):
            names.update(str(k) for k in variant["quality"])
    metrics = [m for m in QUALITY_ORDER if m in names] + sorted(names - set(QUALITY_ORDER))
    header = ("variant", "reference", *metrics, "latency", "memory", "parity", "parity verdict")
    rows = []
    for variant in variants:
        reference = by_name.get(str(variant.get("reference")))
        quality = _mapping(variant.get("quality"))
        base_quality = _mapping(reference.get("quality")) if reference is not None else {}
        cells = [
            escape_text(variant.get("benchmark", "")),
            escape_text(variant.get("reference") or "–"),
        ]
        for metric in metrics:
            cells.append(
                _quality_value(
                    metric, number(quality.get(metric)), number(base_quality.get(metric))
                )
            )
        base_latency = number(reference.get("latency")) if reference is not None else None
        base_memory = number(reference.get("memory")) if reference is not None else None
        cells.append(_ratio(number(variant.get("latency")), base_latency, UNIT_SECONDS))
        cells.append(_ratio(number(variant.get("memory")), base_memory, UNIT_BYTES))
        cells.extend(_parity(variant.get("parity")))
        rows.append(tuple(safe(c) for c in cells))
    return VariantTable(header=tuple(safe(escape_text(h, 40)) for h in header), rows=tuple(rows))
