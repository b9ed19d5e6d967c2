"""The comparison as a plain-text table for the terminal and pytest's summary.

Reads verdicts only; the decision was made in compare.py.
"""

from __future__ import annotations

import math

from gate.core.types import Comparison, GateResult, TailLatency, Verdict
from gate.units import UNIT_FRACTION, UNIT_SECONDS, format_points, format_value


def percent(value: float) -> str:
    """``+12.3%``; beyond +-1000% (intervals from very few rounds) just ``>+1000%``."""
    if value > 10.0:
        return ">+1000%"
    if value < -10.0:
        return "<-1000%"
    return f"{value * 100:+.1f}%"


def format_change(comparison: Comparison) -> str:
    """``+12.3% [+10.1%, +14.6%]``: the estimate and its interval; empty when undefined.
    Quality metrics show the change in their own units (points for fractions)."""
    if not math.isnan(comparison.absolute_change):
        return _absolute_change(comparison)
    if math.isnan(comparison.relative_change):
        return ""
    text = percent(comparison.relative_change)
    if not math.isnan(comparison.ci_low) and comparison.ci_low != comparison.ci_high:
        text += f" [{percent(comparison.ci_low)}, {percent(comparison.ci_high)}]"
    return text


def _absolute(value: float, unit: str) -> str:
    return format_points(value) if unit == UNIT_FRACTION else f"{value:+.4g}"


def _absolute_change(comparison: Comparison) -> str:
    unit = comparison.metric.unit
    text = _absolute(comparison.absolute_change, unit)
    if comparison.absolute_ci is not None:
        low, high = comparison.absolute_ci
        text += f" [{_absolute(low, unit)}, {_absolute(high, unit)}]"
    if comparison.flips is not None:
        to_wrong, to_right = comparison.flips
        text += f" ({to_wrong} flipped to wrong, {to_right} to right)"
    return text


def verdict_text(comparison: Comparison) -> str:
    text = comparison.verdict.value
    if comparison.advisory and comparison.verdict in (Verdict.REGRESSION, Verdict.IMPROVEMENT):
        text += " (advisory)"
    return text


def headline(result: GateResult, *, saving: bool = False) -> str:
    """One line: the gate's answer and the counts that led to it. ``saving``: the run records
    the baseline (and exits 0), so the line says so rather than "FAILED"."""
    counts = []
    for verdict in Verdict:
        number = result.count(verdict)
        if number:
            counts.append(f"{number} {verdict.value}")
    summary = ", ".join(counts) or "nothing measured"
    if saving:
        warning = "; without --save this run would fail" if result.exit_code == 1 else ""
        return f"perf-gate: recording the baseline ({summary}{warning})"
    if result.exit_code == 1:
        return f"perf-gate: FAILED: {summary}"
    if result.exit_code == 3:
        return f"perf-gate: ERROR: {summary}"
    if not result.has_baseline:
        return f"perf-gate: passed, no baseline yet ({summary})"
    return f"perf-gate: passed: {summary}"


def render_table(result: GateResult, *, show_unchanged: bool = True, saving: bool = False) -> str:
    """The headline, the table and the notes (environment differences, warnings, how-to);
    ``saving`` when this run records the baseline."""
    header = ("benchmark", "metric", "baseline", "current", "change [CI]", "mode", "mde", "verdict")
    rows: list[tuple[str, ...]] = []
    previous: Comparison | None = None
    for c in result.comparisons:
        if not show_unchanged and c.verdict is Verdict.UNCHANGED:
            continue
        unit = c.metric.unit
        note = c.note if c.verdict is not Verdict.UNCHANGED else ""
        if (
            c.verdict is Verdict.ERROR
            and previous is not None
            and (previous.benchmark, previous.verdict, previous.note)
            == (c.benchmark, c.verdict, c.note)
        ):
            note = "as above"  # a failed benchmark's message once, not on each of its metrics
        rows.append(
            (
                c.benchmark,
                c.metric.name,
                format_value(c.baseline, unit) if c.baseline is not None else "-",
                format_value(c.current, unit) if c.current is not None else "-",
                format_change(c),
                c.mode,
                percent(c.mde).lstrip("+") if c.mode and not math.isnan(c.mde) else "",
                verdict_text(c) + (f": {note}" if note else ""),
            )
        )
        previous = c
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [headline(result, saving=saving), ""]
    if rows:
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        for row in rows:
            lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    if result.tails:
        lines.append("")
        lines.append("Tail latency (report only, not gated):")
        lines.extend(f"  {tail_line(t)}" for t in result.tails)
    if result.variants:
        lines.append("")
        lines.extend(variant_table(result))
    notes = []
    if not result.has_baseline and not saving:
        notes.append(
            "No baseline yet: every result is new. Record one with `pytest --perf-gate "
            "--perf-gate-save` or `perf-gate run --save`."
        )
    if result.environment_differences:
        differences = "; ".join(
            f"{key}: {old!r} -> {new!r}"
            for key, (old, new) in result.environment_differences.items()
        )
        notes.append(
            f"Baseline measured in a different environment ({environment_effect(result)}): "
            f"{differences}."
        )
    notes.extend(f"Note: {n}" for n in result.notes)
    notes.extend(f"Warning: {w}" for w in result.warnings)
    if result.has_baseline:
        notes.append(
            "Change = current/baseline - 1 from per-process values (stored: Welch on logs; ab, "
            "parallel, duet: paired per-round ratios) [simultaneous "
            f"{(1 - result.alpha) * 100:g}% interval]; mde = smallest change this run could "
            "detect (80% power). A regression needs its interval to exclude no change "
            f"(alpha={result.alpha:g} for the run) and a change beyond the threshold; memory is "
            "judged by its probes' spread, cold start is advisory."
        )
    if notes:
        lines.append("")
        lines.extend(notes)
    return "\n".join(lines)


def tail_line(tail: TailLatency) -> str:
    """``m[torch] mean / p90 / p99: 1.1 ms / 1.3 ms / 2 ms -> ... (1000 calls)``."""

    def values(*numbers: float | None) -> str | None:
        if any(n is None for n in numbers):
            return None
        return " / ".join(format_value(n, UNIT_SECONDS) for n in numbers if n is not None)

    if tail.current_mean is not None:
        label = "mean / p90 / p99"
        before = values(tail.baseline_mean, tail.baseline_p90, tail.baseline_p99)
        now = values(tail.current_mean, tail.current_p90, tail.current_p99)
    else:
        label = "p90 / p99"
        before = values(tail.baseline_p90, tail.baseline_p99)
        now = values(tail.current_p90, tail.current_p99)
    change = f"{before} -> {now}" if before else now
    return f"{tail.benchmark} {label}: {change} ({tail.calls} calls)"


def environment_effect(result: GateResult) -> str:
    """What the other environment did to this run's timing verdicts, from their notes."""
    notes = [c.note for c in result.comparisons]
    if any("timing not compared" in note for note in notes):
        return "environment key differs: stored timings not compared"
    if any("timing verdict advisory" in note for note in notes):
        return "environment key differs: timings advisory"
    return "environment key differs; no timing was compared with it"


def variant_table(result: GateResult) -> list[str]:
    """What each variant costs: quality next to latency and memory, and parity."""
    metrics = sorted({m for v in result.variants for m in v.quality})
    header = ("variant", *metrics, "latency", "memory", "parity vs reference")
    rows = [header]
    references = {v.parity.get("reference") for v in result.variants if v.parity}
    for v in result.variants:
        parity = ""
        if v.parity:
            agreement = v.parity.get("top1_agreement")
            parity = (
                f"{'ok' if v.parity.get('ok') else 'FAIL'}: max |diff| "
                f"{v.parity.get('max_abs_diff', math.nan):.2g}"
                + (f", top-1 {agreement * 100:.1f}%" if isinstance(agreement, float) else "")
                + f" vs {v.parity.get('reference')}"
                + (
                    " (top-1 not judged: too few examples)"
                    if v.parity.get("top1_judged") is False
                    else ""
                )
            )
        rows.append(
            (
                v.benchmark,
                *(
                    format_value(v.quality[m], UNIT_FRACTION if m in _FRACTIONS else "")
                    if m in v.quality
                    else "-"
                    for m in metrics
                ),
                format_value(v.latency, "s") if v.latency is not None else "-",
                format_value(v.memory, "B") if v.memory is not None else "-",
                parity or ("reference" if v.benchmark in references else "-"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "What each variant costs (quality from the eval set, latency median, memory.inference):"
    ]
    for index, row in enumerate(rows):
        lines.append(
            "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )
        if index == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return lines


_FRACTIONS = frozenset({"accuracy", "top5", "f1_macro"})
