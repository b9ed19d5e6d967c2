"""Absolute limits and latency summaries: what is judged on the current run alone (pure).

Budgets (``latency.p99: 2ms``) fail whatever the baseline says; the mean, tail percentiles and
the first call are reported beside the comparisons but not tested (docs/STATISTICS.md, section
Percentiles).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from gate.core import stats
from gate.core.types import (
    Budget,
    Comparison,
    Direction,
    Metric,
    RunRecord,
    Sample,
    TailLatency,
    Verdict,
)
from gate.units import BUDGET_STATISTICS, UNIT_SECONDS, budget_unit, format_value


def _budget_statistic(sample: Sample, metric: str) -> float | None:
    """The number a budget on ``metric`` limits: ``latency.p99`` -> p99 of the per-call times."""
    parts = metric.split(".")
    name = parts[0]
    statistic = parts[1] if len(parts) > 1 and parts[1] in BUDGET_STATISTICS else None
    if statistic is None:
        if sample.metric.name != metric:
            return None
        return stats.median(sample.values)
    if sample.metric.name != name:
        return None
    values = sample.calls or sample.values
    if statistic == "mean":
        return stats.mean(values)
    if statistic == "median":
        return stats.median(values)
    return stats.quantile(values, int(statistic[1:]) / 100.0)


def matches(benchmark: str, pattern: str) -> bool:
    """Exact name, or a glob with ``*`` and ``?`` (brackets are literal: names contain them)."""
    return benchmark == pattern or fnmatch.fnmatchcase(benchmark, pattern.replace("[", "[[]"))


def check_budgets(
    current: RunRecord, budgets: Sequence[Budget]
) -> tuple[list[Comparison], list[str]]:
    """Absolute limits: over-budget comparisons, and warnings for budgets that matched nothing."""
    over: list[Comparison] = []
    warnings: list[str] = []
    for budget in budgets:
        matched = False
        for sample in current.samples:
            if not matches(sample.benchmark, budget.pattern):
                continue
            value = _budget_statistic(sample, budget.metric)
            if value is None:
                continue
            matched = True
            limit = budget.limit(budget_unit(budget.metric) or sample.metric.unit)
            exceeded = (
                value < limit if sample.metric.direction is Direction.HIGHER else value > limit
            )
            if exceeded:
                over.append(
                    Comparison(
                        benchmark=sample.benchmark,
                        metric=Metric(budget.metric, sample.metric.unit, sample.metric.direction),
                        verdict=Verdict.OVER_BUDGET,
                        current=value,
                        baseline=None,
                        note=f"budget {budget.limit_text}",
                        n_current=len(sample.values),
                    )
                )
        if not matched:
            warnings.append(
                f"budget {budget.pattern!r} {budget.metric}: "
                "matched no measured benchmark and metric"
            )
    return over, warnings


# A first call this many times the median call is worth a line in the report.
FIRST_CALL_NOTE_RATIO = 10.0


def _first_call(sample: Sample | None) -> float | None:
    return stats.median(sample.first_calls) if sample is not None and sample.first_calls else None


def tail_latencies(baseline: RunRecord | None, current: RunRecord) -> tuple[TailLatency, ...]:
    """Mean, p90, p99 and first call for every latency sample with per-call times (report
    only; see STATISTICS.md)."""
    rows = []
    for sample in current.samples:
        if sample.metric.family != "latency" or not sample.calls:
            continue
        base = baseline.sample(sample.benchmark, sample.metric.name) if baseline else None
        base_calls = base.calls if base is not None else ()
        first = _first_call(sample)
        median_call = stats.median(sample.calls)
        rows.append(
            TailLatency(
                benchmark=sample.benchmark,
                metric=sample.metric.name,
                baseline_mean=stats.mean(base_calls) if base_calls else None,
                baseline_p90=stats.quantile(base_calls, 0.9) if base_calls else None,
                baseline_p99=stats.quantile(base_calls, 0.99) if base_calls else None,
                current_mean=stats.mean(sample.calls),
                current_p90=stats.quantile(sample.calls, 0.9),
                current_p99=stats.quantile(sample.calls, 0.99),
                calls=len(sample.calls),
                baseline_first_call=_first_call(base),
                first_call=first,
                first_call_ratio=first / median_call
                if first is not None and median_call > 0
                else None,
            )
        )
    return tuple(rows)


def first_call_notes(current: RunRecord) -> list[str]:
    """One note naming the latency samples whose first call (median over rounds) is more than
    ``FIRST_CALL_NOTE_RATIO`` times their median call: a one-off cost the gated timings leave
    out on purpose, and that a user of the model still pays."""
    large = [
        f"{row.benchmark} {format_value(row.first_call, UNIT_SECONDS)} "
        f"({row.first_call_ratio:,.0f}x)"
        for row in tail_latencies(None, current)
        if row.first_call is not None
        and row.first_call_ratio is not None
        and row.first_call_ratio > FIRST_CALL_NOTE_RATIO
    ]
    if not large:
        return []
    return [
        f"first calls over {FIRST_CALL_NOTE_RATIO:g}x the median call (compilation, lazy "
        "loading, cold caches; kept out of the timings): " + ", ".join(large)
    ]


def variant_notes(current: RunRecord) -> list[str]:
    """What preparation did to each variant that a reader should know (how its ONNX graph was
    exported, what its int8 quantized), from the record's info; and what torch.compile cost."""
    notes = [
        f"{benchmark}: {note}"
        for benchmark, info in sorted(current.info.items())
        for note in info.get("notes") or ()
        if isinstance(note, str)
    ]
    for sample in current.samples:
        info = current.info.get(sample.benchmark, {})
        if info.get("variant") != "torch-compile" or sample.metric.name != "latency":
            continue
        first = sample.first_calls
        if len(first) >= 2:
            notes.append(
                f"{sample.benchmark}: torch.compile's first call took "
                f"{format_value(first[0], UNIT_SECONDS)} in the first worker and "
                f"{format_value(stats.median(first[1:]), UNIT_SECONDS)} (median) in the "
                f"{len(first) - 1} later ones, which load what it compiled from the cache; "
                "cold start counts it, the latency samples do not"
            )
    return notes


# A GPU busy less than this share of a call's wall time is waiting for the host to launch work.
LAUNCH_BOUND_BUSY = 0.5
# ...and rounds spreading more than this say the host's jitter reaches the timings.
LAUNCH_BOUND_SPREAD = 0.02


def launch_bound_notes(current: RunRecord) -> list[str]:
    """Benchmarks whose GPU idles between launches and whose rounds spread: suggest CUDA graphs.

    Uses the probe's kernel time and wall time per call (``gpu_ms_per_call``,
    ``wall_ms_per_call`` in the record's info) and the latency rounds' coefficient of variation.
    """
    notes = []
    for benchmark, info in sorted(current.info.items()):
        gpu_ms, wall_ms = info.get("gpu_ms_per_call"), info.get("wall_ms_per_call")
        latency = current.sample(benchmark, "latency")
        if not isinstance(gpu_ms, float) or not isinstance(wall_ms, float) or not wall_ms:
            continue
        busy = gpu_ms / wall_ms
        spread = (
            stats.coefficient_of_variation(latency.values)
            if latency and len(latency.values) > 1
            else 0.0
        )
        if busy < LAUNCH_BOUND_BUSY and spread > LAUNCH_BOUND_SPREAD:
            notes.append(
                f"{benchmark} looks launch-bound: the GPU is busy {busy:.0%} of each call's "
                f"{wall_ms:.3g} ms and rounds spread {spread:.1%}; timings follow the host's "
                "jitter. Try the torch-cuda-graphs variant (or a larger batch)."
            )
    return notes
