"""The gate decision: (baseline, current, policy) -> verdicts. Pure: no I/O, no clock.

A metric regresses only when the change is both *significant* (Welch's t-test on the logarithms
of the per-process values, Holm-corrected across every comparison in the run) and *material*
(the estimated change exceeds the metric's threshold). docs/STATISTICS.md explains the choices.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gate import stats
from gate.model import (
    Budget,
    Comparison,
    Direction,
    GateResult,
    Metric,
    Policy,
    Replication,
    RunRecord,
    Sample,
    Threshold,
    Verdict,
)
from gate.units import BUDGET_STATISTICS, budget_unit

# Fingerprint fields whose difference makes timing comparisons questionable.
ENVIRONMENT_KEY_FIELDS = ("os", "machine", "cpu_model", "cpu_count", "gpu", "python", "threads")


# Reports list what needs attention first.
REPORT_ORDER = {
    Verdict.ERROR: 0,
    Verdict.REGRESSION: 1,
    Verdict.OVER_BUDGET: 2,
    Verdict.IMPROVEMENT: 3,
    Verdict.INCONCLUSIVE: 4,
    Verdict.NEW: 5,
    Verdict.MISSING: 6,
    Verdict.UNCHANGED: 7,
}


@dataclass(frozen=True)
class _Test:
    relative_change: float
    ci_low: float
    ci_high: float
    p_value: float


def _relative_test(base: Sequence[float], current: Sequence[float], alpha: float) -> _Test:
    """Relative change of current over base with its interval and p-value.

    Positive values are compared on the log scale (ratio of geometric means, which is what the
    noise of timings is multiplicative in); others on the raw scale relative to |mean(base)|.
    """
    if min(base) > 0 and min(current) > 0:
        result = stats.welch([math.log(v) for v in base], [math.log(v) for v in current], alpha)
        return _Test(
            math.expm1(result.difference),
            math.expm1(result.ci_low),
            math.expm1(result.ci_high),
            result.p_value,
        )
    result = stats.welch(base, current, alpha)
    scale = abs(stats.mean(base)) or 1.0
    return _Test(
        result.difference / scale,
        result.ci_low / scale,
        result.ci_high / scale,
        result.p_value,
    )


def _worse(direction: Direction, change: float) -> bool:
    return change > 0 if direction is Direction.LOWER else change < 0


def _pair(base: Sample, current: Sample, policy: Policy, interval_alpha: float) -> Comparison:
    threshold = policy.threshold_for(current.benchmark, current.metric.family)
    advisory = Replication.IN_PROCESS in (base.replication, current.replication)
    comparison = Comparison(
        benchmark=current.benchmark,
        metric=current.metric,
        verdict=Verdict.UNCHANGED,  # decided in decide() once every p-value is known
        baseline=stats.median(base.values),
        current=stats.median(current.values),
        threshold=threshold,
        advisory=advisory,
        n_baseline=len(base.values),
        n_current=len(current.values),
        note="in-process rounds: advisory only" if advisory else "",
    )
    if base.metric.unit != current.metric.unit:
        note = f"unit changed from {base.metric.unit} to {current.metric.unit}"
        return replace(comparison, verdict=Verdict.ERROR, note=note)
    if len(base.values) < 2 or len(current.values) < 2:
        note = "fewer than two rounds on one side; nothing can be tested"
        return replace(comparison, verdict=Verdict.INCONCLUSIVE, note=note)
    test = _relative_test(base.values, current.values, interval_alpha)
    return replace(
        comparison,
        relative_change=test.relative_change,
        ci_low=test.ci_low,
        ci_high=test.ci_high,
        p_value=test.p_value,
    )


def _verdict(comparison: Comparison, significant: bool) -> Verdict:
    threshold = comparison.threshold or Threshold(value=0.0)
    base = comparison.baseline or 0.0
    change = comparison.relative_change
    absolute = change * abs(base)
    material = threshold.exceeded_by(change, absolute)
    if significant and material:
        worse = _worse(comparison.metric.direction, change)
        return Verdict.REGRESSION if worse else Verdict.IMPROVEMENT
    if significant:
        return Verdict.UNCHANGED
    # Not significant: "unchanged" only if the interval rules out a material change.
    for bound in (comparison.ci_low, comparison.ci_high):
        if threshold.exceeded_by(bound, bound * abs(base)):
            return Verdict.INCONCLUSIVE
    return Verdict.UNCHANGED


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


def environment_differences(
    baseline: RunRecord, current: RunRecord
) -> dict[str, tuple[object, object]]:
    return {
        key: (baseline.environment.get(key), current.environment.get(key))
        for key in ENVIRONMENT_KEY_FIELDS
        if baseline.environment.get(key) != current.environment.get(key)
    }


def decide(baseline: RunRecord | None, current: RunRecord, policy: Policy) -> GateResult:
    """Compare ``current`` with ``baseline`` under ``policy``; pure.

    Returns a GateResult with one Comparison per (benchmark, metric) measured now or in the
    baseline, plus over-budget entries; its ``exit_code`` is the gate's answer.
    """
    comparisons: list[Comparison] = []
    if baseline is None:
        comparisons = [
            Comparison(
                benchmark=s.benchmark,
                metric=s.metric,
                verdict=Verdict.NEW,
                current=stats.median(s.values),
                n_current=len(s.values),
            )
            for s in current.samples
        ]
    else:
        # Intervals at the Bonferroni level alpha/m are simultaneous for the whole run, so an
        # interval that excludes zero agrees with the Holm decision (Holm rejects at least as much).
        testable = sum(
            1
            for s in current.samples
            if (b := baseline.sample(s.benchmark, s.metric.name)) is not None
            and len(b.values) >= 2
            and len(s.values) >= 2
        )
        interval_alpha = policy.alpha / max(1, testable)
        for sample in current.samples:
            base = baseline.sample(sample.benchmark, sample.metric.name)
            if base is None:
                comparisons.append(
                    Comparison(
                        benchmark=sample.benchmark,
                        metric=sample.metric,
                        verdict=Verdict.NEW,
                        current=stats.median(sample.values),
                        n_current=len(sample.values),
                        note="not in the baseline",
                    )
                )
            else:
                comparisons.append(_pair(base, sample, policy, interval_alpha))
        measured = {(s.benchmark, s.metric.name) for s in current.samples}
        failed = {e.benchmark for e in current.errors}
        for base in baseline.samples:
            if (base.benchmark, base.metric.name) not in measured:
                comparisons.append(
                    Comparison(
                        benchmark=base.benchmark,
                        metric=base.metric,
                        verdict=Verdict.ERROR if base.benchmark in failed else Verdict.MISSING,
                        baseline=stats.median(base.values),
                        n_baseline=len(base.values),
                        note="failed to measure" if base.benchmark in failed else "not measured",
                    )
                )
    tested = [i for i, c in enumerate(comparisons) if not math.isnan(c.p_value)]
    rejected = stats.holm([comparisons[i].p_value for i in tested], policy.alpha)
    for index, significant in zip(tested, rejected, strict=True):
        comparison = comparisons[index]
        comparisons[index] = replace(
            comparison, significant=significant, verdict=_verdict(comparison, significant)
        )
    over_budget, warnings = check_budgets(current, policy.budgets)
    comparisons.extend(over_budget)
    for error in current.errors:
        if not any(
            c.benchmark == error.benchmark and c.verdict is Verdict.ERROR for c in comparisons
        ):
            comparisons.append(
                Comparison(
                    benchmark=error.benchmark,
                    metric=Metric("measurement", "", Direction.LOWER),
                    verdict=Verdict.ERROR,
                    note=error.message,
                )
            )
    comparisons.sort(key=lambda c: (REPORT_ORDER[c.verdict], c.benchmark, c.metric.name))
    return GateResult(
        comparisons=tuple(comparisons),
        alpha=policy.alpha,
        has_baseline=baseline is not None,
        environment_differences=environment_differences(baseline, current) if baseline else {},
        warnings=tuple(warnings),
        errors=current.errors,
        baseline_commit=baseline.git.commit if baseline else None,
        current_commit=current.git.commit,
    )
