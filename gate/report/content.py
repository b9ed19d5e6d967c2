"""The report model: comparison.json (a dict) -> what every report shows, as plain text and
numbers, built once and rendered by the terminal (``terminal.py``) and the Markdown
(``view.py`` escapes it, ``markdown.py`` lays it out).

Everything here reads the dict defensively (the file may come from another job or another
perf-gate version's extra keys). Nothing is escaped: names are the user's, as they are.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gate.units import SCALED_UNITS, UNIT_BYTES, UNIT_SECONDS, format_value

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
# (key, singular, plural) for the headline's counts, in the headline's order; an advisory
# regression (it does not fail) is counted apart from the regressions.
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
QUALITY_ORDER = ("accuracy", "top5", "f1_macro", "mae", "rmse")
# Metric families in the order the PR report lists them within one verdict: timings (what a
# pull request most often moves, and what its reader came for) before the rest, and exact
# sizes (a file's bytes: certain, never noisy) last.
TIMING_FAMILIES = ("latency", "throughput")
EXACT_FAMILIES = ("model_size",)
FRACTION_METRICS = frozenset({"accuracy", "top5", "f1_macro"})


def number(value: object) -> float | None:
    """A finite float from a JSON value, else None (null, NaN, strings, booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def percent(value: float) -> str:
    """``+12.3%``; beyond +-1000% (intervals from very few rounds) just ``>+1000%``."""
    if value > 10.0:
        return ">+1000%"
    if value < -10.0:
        return "<-1000%"
    return f"{value * 100:+.1f}%"


def points(change: float) -> str:
    return f"{change * 100:+.2f} pt"


def _absolute(value: float, unit: str) -> str:
    return points(value) if unit == UNIT_FRACTION else f"{value:+.4g}"


def format_estimate(item: Mapping[str, Any]) -> str:
    """The change alone, without its interval: ``+12.3%``, ``-1.94 pt``; empty when undefined."""
    absolute = number(item.get("absolute_change"))
    if absolute is not None:
        return _absolute(absolute, str(item.get("unit") or ""))
    relative = number(item.get("relative_change"))
    return percent(relative) if relative is not None else ""


def format_interval(item: Mapping[str, Any]) -> str:
    """The change's interval: ``[+10.1%, +14.6%]``, ``[-2.91 pt, -0.97 pt]`` for a quality
    metric with ``absolute_ci``; empty when there is none (or no change to go with it)."""
    if number(item.get("absolute_change")) is not None:
        unit = str(item.get("unit") or "")
        bounds = item.get("absolute_ci")
        if isinstance(bounds, list) and len(bounds) == 2:
            low, high = number(bounds[0]), number(bounds[1])
            if low is not None and high is not None:
                return f"[{_absolute(low, unit)}, {_absolute(high, unit)}]"
        return ""
    low, high = number(item.get("ci_low")), number(item.get("ci_high"))
    if number(item.get("relative_change")) is None or low is None or high is None or low == high:
        return ""
    return f"[{percent(low)}, {percent(high)}]"


def format_change(item: Mapping[str, Any]) -> str:
    """``+12.3% [+10.1%, +14.6%]``: the relative change and its interval; quality metrics
    (with ``absolute_change``) in their own units, points for fractions: ``-1.94 pt [...]``;
    empty when undefined."""
    return " ".join(t for t in (format_estimate(item), format_interval(item)) if t)


@dataclass(frozen=True, kw_only=True)
class ReportRow:
    """One comparison as the reports show it."""

    benchmark: str
    metric: str
    unit: str
    verdict: str
    advisory: bool
    baseline: float | None
    current: float | None
    change: str  # format_change: the estimate and the interval the decision used
    estimate: str  # format_estimate: the change alone
    interval: str  # format_interval: its interval
    relative: float | None
    mode: str  # stored, ab, parallel, duet; "" for rows that are not timings
    mde: float | None
    note: str
    flips: tuple[int, int] | None  # examples flipped (to wrong, to right)
    rule: str
    environment: str  # a merged report's runner group; "" otherwise

    @property
    def severity(self) -> int:
        """Place in SEVERITY; an advisory regression (it does not fail) after what does."""
        if self.advisory and self.verdict == "regression":
            return SEVERITY.index("inconclusive")
        return SEVERITY.index(self.verdict) if self.verdict in SEVERITY else len(SEVERITY)

    @property
    def family(self) -> str:
        """The metric's family: ``latency`` of ``latency.p99``, ``throughput`` of
        ``throughput@32``."""
        return self.metric.split("@", 1)[0].split(".", 1)[0]

    @property
    def kind(self) -> int:
        """0 for timings, 2 for exact sizes, 1 for everything else (the report's order)."""
        if self.family in TIMING_FAMILIES:
            return 0
        return 2 if self.family in EXACT_FAMILIES else 1

    @property
    def magnitude(self) -> float:
        return abs(self.relative) if self.relative is not None else 0.0

    @property
    def counted_as(self) -> str:
        """The headline's key for this row."""
        return "advisory" if self.verdict == "regression" and self.advisory else self.verdict


def _flips(item: Mapping[str, Any]) -> tuple[int, int] | None:
    flips = item.get("flips")
    if not isinstance(flips, Mapping):
        return None
    wrong, right = flips.get("to_wrong"), flips.get("to_right")
    if not isinstance(wrong, int) or not isinstance(right, int):
        return None
    return wrong, right


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def report_row(item: Mapping[str, Any]) -> ReportRow:
    return ReportRow(
        benchmark=str(item.get("benchmark", "")),
        metric=str(item.get("metric", "")),
        unit=str(item.get("unit") or ""),
        verdict=str(item.get("verdict")),
        advisory=bool(item.get("advisory")),
        baseline=number(item.get("baseline")),
        current=number(item.get("current")),
        change=format_change(item),
        estimate=format_estimate(item),
        interval=format_interval(item),
        relative=number(item.get("relative_change")),
        mode=_text(item.get("mode")),
        mde=number(item.get("mde")),
        note=_text(item.get("note")),
        flips=_flips(item),
        rule=_text(item.get("rule")),
        environment=str(item.get("environment") or ""),
    )


def by_severity(rows: Iterable[ReportRow]) -> list[ReportRow]:
    """Rows by severity (what fails first), then timings before other metrics and exact sizes
    last (``ReportRow.kind``), then by the size of the change; a report merged across
    environments (``perf-gate merge``) is grouped by its ``environment`` first."""
    return sorted(rows, key=lambda r: (r.environment, r.severity, r.kind, -r.magnitude))


def count_phrase(rows: Iterable[ReportRow], only: Collection[str] | None = None) -> str:
    """``2 regressions, 1 advisory regression, 5 unchanged``: the headline's counts (``only``:
    of these keys of COUNT_WORDS alone)."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.counted_as] = counts.get(row.counted_as, 0) + 1
    return ", ".join(
        f"{counts[key]} {one if counts[key] == 1 else many}"
        for key, one, many in COUNT_WORDS
        if counts.get(key) and (only is None or key in only)
    )


def format_quantity(value: float | None, unit: str) -> str:
    """A value in its unit (``1.23 ms``, ``97.00%``, ``12.5 tokens``); ``–`` when missing."""
    if value is None:
        return "–"
    if unit == UNIT_FRACTION:
        return f"{value * 100:.2f}%"
    if unit in SCALED_UNITS:
        return format_value(value, unit)
    return f"{value:.4g} {unit}"


@dataclass(frozen=True, kw_only=True)
class Parity:
    """A variant's output parity against its reference."""

    summary: str  # "max abs diff 1e-06, mean 2e-07, top-1 agreement 100.00%" or "–"
    failed: bool
    details: tuple[tuple[str, str], ...]  # ("bounds: ", what they are), ("", the reason)


@dataclass(frozen=True, kw_only=True)
class VariantRow:
    """What a variant costs beside its reference: quality, latency, memory and parity."""

    benchmark: str
    reference: str  # "–" for the reference itself
    quality: tuple[str, ...]  # one cell per VariantTable.metrics
    latency: str
    memory: str
    parity: Parity | None


@dataclass(frozen=True, kw_only=True)
class VariantTable:
    metrics: tuple[str, ...]
    rows: tuple[VariantRow, ...]


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


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _parity(parity: object) -> Parity | None:
    if not isinstance(parity, Mapping):
        return None
    parts = []
    if (value := number(parity.get("max_abs_diff"))) is not None:
        parts.append(f"max abs diff {value:.2g}")
    if (value := number(parity.get("mean_abs_diff"))) is not None:
        parts.append(f"mean {value:.2g}")
    if (value := number(parity.get("top1_agreement"))) is not None:
        parts.append(f"top-1 agreement {value * 100:.2f}%")
    details = tuple(
        (label, parity[key])
        for key, label in (("bounds", "bounds: "), ("reason", ""))
        if isinstance(parity.get(key), str) and parity[key]
    )
    return Parity(
        summary=", ".join(parts) or "–",
        failed=parity.get("verdict") == "parity-fail",
        details=details,
    )


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
    rows = []
    for variant in variants:
        reference = by_name.get(str(variant.get("reference")))
        quality = _mapping(variant.get("quality"))
        base_quality = _mapping(reference.get("quality")) if reference is not None else {}
        base_latency = number(reference.get("latency")) if reference is not None else None
        base_memory = number(reference.get("memory")) if reference is not None else None
        rows.append(
            VariantRow(
                benchmark=str(variant.get("benchmark", "")),
                reference=str(variant.get("reference") or "–"),
                quality=tuple(
                    _quality_value(m, number(quality.get(m)), number(base_quality.get(m)))
                    for m in metrics
                ),
                latency=_ratio(number(variant.get("latency")), base_latency, UNIT_SECONDS),
                memory=_ratio(number(variant.get("memory")), base_memory, UNIT_BYTES),
                parity=_parity(variant.get("parity")),
            )
        )
    return VariantTable(metrics=tuple(metrics), rows=tuple(rows))


@dataclass(frozen=True, kw_only=True)
class Tail:
    """Per-call latency of one benchmark (reported, not gated), seconds."""

    benchmark: str
    baseline: tuple[float | None, float | None, float | None]  # mean, p90, p99
    current: tuple[float | None, float | None, float | None]
    calls: int


def _tails(data: Mapping[str, Any]) -> tuple[Tail, ...]:
    tails = []
    for item in data.get("tail_latency") or ():
        if not isinstance(item, Mapping):
            continue
        before, now = _mapping(item.get("baseline")), _mapping(item.get("current"))
        calls = item.get("calls")
        tails.append(
            Tail(
                benchmark=str(item.get("benchmark", "")),
                baseline=(
                    number(before.get("mean")),
                    number(before.get("p90")),
                    number(before.get("p99")),
                ),
                current=(number(now.get("mean")), number(now.get("p90")), number(now.get("p99"))),
                calls=calls if isinstance(calls, int) else 0,
            )
        )
    return tuple(tails)


@dataclass(frozen=True, kw_only=True)
class Report:
    """What every report shows, from one comparison.json."""

    exit_code: int
    has_baseline: bool
    alpha: float | None
    rows: tuple[ReportRow, ...]  # in the decision's order; ``by_severity`` for the PR report
    environment: tuple[tuple[str, object, object], ...]  # (field, baseline, current)
    notes: tuple[str, ...]
    warnings: tuple[str, ...]
    errors: tuple[tuple[str, str], ...]  # (benchmark, message)
    variants: VariantTable | None
    tails: tuple[Tail, ...]
    environment_label: str = ""  # the machine, readable: ``cpu-x86_64``, the GPU's name
    dependencies: Dependencies | None = None  # packages that differ from the base revision

    @property
    def counts(self) -> str:
        return count_phrase(self.rows)

    @property
    def status(self) -> str:
        """The gate's answer in one word: ``fail`` (exit 1), ``error`` (the gate or a benchmark
        could not run), ``new`` (no baseline yet), ``mismatch`` (passed, but the baseline was
        measured in another environment, so stored timings could not be judged) or ``pass``."""
        if self.exit_code == 1:
            return "fail"
        if self.exit_code != 0:
            return "error"
        if not self.has_baseline:
            return "new"
        return "mismatch" if self.environment else "pass"

    @property
    def worst(self) -> ReportRow | None:
        """The row the headline names: of the rows that are not unchanged, the most severe, a
        timing before other metrics, the largest change (``by_severity``'s order, across
        environments); None when every row is unchanged."""
        changed = [r for r in self.rows if r.verdict != "unchanged"]
        return min(changed, key=lambda r: (r.severity, r.kind, -r.magnitude), default=None)


def _environment(data: Mapping[str, Any]) -> tuple[tuple[str, object, object], ...]:
    differences = data.get("environment_differences")
    if not isinstance(differences, Mapping):
        return ()
    rows: list[tuple[str, object, object]] = []
    for key, pair in differences.items():
        if isinstance(pair, Mapping):
            rows.append((str(key), pair.get("baseline"), pair.get("current")))
        else:
            rows.append((str(key), pair, None))
    return tuple(rows)


@dataclass(frozen=True)
class Dependencies:
    """comparison.json's ``dependencies`` (``base_run.dependencies_block``): how the base side
    of a paired run got its packages, and the packages that differ."""

    how: str  # built, cached, given, fallback, current, same
    reason: str  # why the base environment could not be built (fallback)
    packages: tuple[tuple[str, str, str], ...]  # (name, base side, head side)
    sides: tuple[tuple[str, str, str], ...]  # (side, Python version, fingerprint)

    @property
    def sentence(self) -> str:
        """What the paired timings show of the change, in one sentence."""
        return {
            "built": "The base side ran in the base revision's own environment (built with uv), "
            "so the paired timings include the dependency change.",
            "cached": "The base side ran in the base revision's own environment (uv, cached), "
            "so the paired timings include the dependency change.",
            "given": "The base side ran with the interpreter given by policy.base_environment "
            "or --base-env.",
            "fallback": "⚠️ The base revision's environment could not be built "
            f"({self.reason}): both sides ran with the head's packages, so the paired timings "
            "do not show what the dependency change does.",
            "current": "Both sides ran with the head's packages (policy.base_environment: "
            "current): the paired timings do not show what the dependency change does.",
        }.get(
            self.how,
            "The head's installed versions meet the base revision's requirements too: both "
            "sides ran with them.",
        )


def _dependencies(data: Mapping[str, Any]) -> Dependencies | None:
    block = data.get("dependencies")
    if not isinstance(block, Mapping):
        return None

    def version(entry: Mapping[str, Any], side: str) -> str:
        found = entry.get(side) or entry.get(f"{side}_requirement")
        return str(found) if found else "(none)"

    packages = tuple(
        (str(p.get("name", "")), version(p, "base"), version(p, "head"))
        for p in block.get("packages") or ()
        if isinstance(p, Mapping)
    )
    raw_sides = block.get("sides")
    sides: Mapping[str, Any] = raw_sides if isinstance(raw_sides, Mapping) else {}
    return Dependencies(
        how=_text(block.get("base_environment")),
        reason=_text(block.get("reason")),
        packages=packages,
        sides=tuple(
            (str(side), _text(v.get("python")), _text(v.get("fingerprint")))
            for side, v in sides.items()
            if isinstance(v, Mapping)
        ),
    )


def report_from(data: Mapping[str, Any]) -> Report:
    """The report model of a comparison dict (``result_to_dict``'s form, checked or not)."""
    exit_code = data.get("exit_code")
    return Report(
        exit_code=exit_code if isinstance(exit_code, int) else 3,
        has_baseline=bool(data.get("has_baseline")),
        alpha=number(data.get("alpha")),
        rows=tuple(report_row(c) for c in data.get("comparisons") or () if isinstance(c, Mapping)),
        environment=_environment(data),
        notes=tuple(str(n) for n in data.get("notes") or ()),
        warnings=tuple(str(w) for w in data.get("warnings") or ()),
        errors=tuple(
            (str(e.get("benchmark", "")), str(e.get("message", "")))
            for e in data.get("errors") or ()
            if isinstance(e, Mapping)
        ),
        variants=variant_table(data),
        tails=_tails(data),
        environment_label=_text(data.get("environment_label")),
        dependencies=_dependencies(data),
    )
