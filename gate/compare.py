"""The gate decision: (baseline, current, policy) -> verdicts. Pure: no I/O, no clock.

A metric regresses only when the change is both *significant* (Welch's t-test on the logarithms
of the per-process values, Holm-corrected across every comparison in the run) and *material*
(the estimated change exceeds the metric's threshold). docs/STATISTICS.md explains the choices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from gate import stats
from gate.environment_diff import environment_differences, environment_notes, other_environment
from gate.limits import check_budgets, first_call_notes, tail_latencies
from gate.model import (
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
from gate.quality.decide import (
    apply_tradeoffs,
    is_quality,
    parity_failures,
    quality_comparisons,
    variant_summaries,
)
from gate.units import format_value

# Reports list what needs attention first.
REPORT_ORDER = {
    Verdict.ERROR: 0,
    Verdict.REGRESSION: 1,
    Verdict.OVER_BUDGET: 2,
    Verdict.PARITY_FAIL: 3,
    Verdict.ACCEPTED_TRADE_OFF: 4,
    Verdict.IMPROVEMENT: 5,
    Verdict.INCONCLUSIVE: 6,
    Verdict.NEW: 7,
    Verdict.MISSING: 8,
    Verdict.UNCHANGED: 9,
}


@dataclass(frozen=True)
class _Test:
    relative_change: float
    ci_low: float
    ci_high: float
    p_value: float
    mde: float
    note: str = ""


# Metric families that are timings: re-measured side by side in the paired modes.
TIMING_FAMILIES = frozenset({"latency", "throughput"})
# Metric families that are exact (a file or state-dict size): compared without a test.
DETERMINISTIC_FAMILIES = frozenset({"model_size"})


@dataclass(frozen=True, kw_only=True)
class PairedBaseline:
    """Timing samples of the base revision measured in the same rounds as the current run.

    ``samples`` are index-aligned with the current run's values (round i of the base belongs to
    round i of the head); ``modes`` says per benchmark how (``ab`` or ``duet``); ``looks`` is how
    many times the sequential procedure could have stopped (its alpha is split across them).
    """

    samples: tuple[Sample, ...]
    modes: Mapping[str, str]
    looks: int = 1

    def sample(self, benchmark: str, metric: str) -> Sample | None:
        for sample in self.samples:
            if sample.benchmark == benchmark and sample.metric.name == metric:
                return sample
        return None


def _expm1(x: float) -> float:
    """exp(x) - 1, infinite instead of overflowing (a huge interval from very few rounds)."""
    try:
        return math.expm1(x)
    except OverflowError:
        return math.inf


def _without_outliers(logs: list[float]) -> tuple[list[float], int]:
    dropped = set(stats.gross_outliers(logs))
    return [v for i, v in enumerate(logs) if i not in dropped], len(dropped)


def _outlier_note(count: int) -> str:
    return f"{count} outlier round(s) excluded" if count else ""


def _relative_test(base: Sequence[float], current: Sequence[float], alpha: float) -> _Test:
    """Unpaired: relative change of current over base with its interval and p-value (Welch).

    Positive values are compared on the log scale (ratio of geometric means, which is what the
    noise of timings is multiplicative in), after excluding gross outlier rounds on each side;
    others on the raw scale relative to |mean(base)|.
    """
    if min(base) > 0 and min(current) > 0:
        base_logs, dropped_base = _without_outliers([math.log(v) for v in base])
        current_logs, dropped_current = _without_outliers([math.log(v) for v in current])
        result = stats.welch(base_logs, current_logs, alpha)
        mde = stats.minimum_detectable_effect(result.se, result.df, alpha)
        return _Test(
            _expm1(result.difference),
            _expm1(result.ci_low),
            _expm1(result.ci_high),
            result.p_value,
            _expm1(mde),
            _outlier_note(dropped_base + dropped_current),
        )
    result = stats.welch(base, current, alpha)
    scale = abs(stats.mean(base))  # never 0: _pair does not test a zero baseline
    mde = stats.minimum_detectable_effect(result.se, result.df, alpha)
    return _Test(
        result.difference / scale,
        result.ci_low / scale,
        result.ci_high / scale,
        result.p_value,
        mde / scale,
    )


def _paired_test(base: Sequence[float], current: Sequence[float], alpha: float) -> _Test:
    """Paired: per-round log ratios current/base, Student's t with a Wilcoxon cross-check."""
    ratios, dropped = _without_outliers(
        [math.log(c / b) for b, c in zip(base, current, strict=False)]
    )
    result = stats.paired(ratios, alpha / 2.0)  # the two one-sided bounds form a 1-alpha interval
    p_value = min(1.0, 2.0 * min(result.p_worse, result.p_better))
    note = ""
    # The exact signed-rank test cannot go below 2 / 2^n: only compare where it could agree.
    wilcoxon_can_reject = 2.0 / 2.0 ** len(ratios) <= alpha
    if wilcoxon_can_reject and (p_value <= alpha) != (result.wilcoxon_p <= alpha):
        note = f"t-test p={p_value:.2g} and Wilcoxon p={result.wilcoxon_p:.2g} disagree"
    note = "; ".join(n for n in (_outlier_note(dropped), note) if n)
    return _Test(
        _expm1(result.estimate),
        _expm1(result.lower),
        _expm1(result.upper),
        p_value,
        _expm1(result.mde),
        note,
    )


def _worse(direction: Direction, change: float) -> bool:
    return change > 0 if direction is Direction.LOWER else change < 0


def _pair(
    base: Sample,
    current: Sample,
    policy: Policy,
    interval_alpha: float,
    *,
    mode: str = "stored",
    advisory_note: str = "",
) -> Comparison:
    threshold = policy.threshold_for(current.benchmark, current.metric.family)
    in_process = Replication.IN_PROCESS in (base.replication, current.replication)
    note = "in-process rounds: advisory only" if in_process else advisory_note
    comparison = Comparison(
        benchmark=current.benchmark,
        metric=current.metric,
        verdict=Verdict.UNCHANGED,  # decided in decide() once every p-value is known
        baseline=stats.median(base.values),
        current=stats.median(current.values),
        threshold=threshold,
        advisory=in_process or bool(advisory_note),
        n_baseline=len(base.values),
        n_current=len(current.values),
        note=note,
        mode=mode if current.metric.family in TIMING_FAMILIES else "",
    )
    if base.metric.unit != current.metric.unit:
        note = f"unit changed from {base.metric.unit} to {current.metric.unit}"
        return replace(comparison, verdict=Verdict.ERROR, note=note)
    paired = mode in ("ab", "duet")
    if current.metric.family in DETERMINISTIC_FAMILIES:
        # Sizes do not vary between processes: one reading each is exact.
        b, c = stats.median(base.values), stats.median(current.values)
        change = (c - b) / abs(b) if b else (0.0 if c == b else math.inf)
        return replace(
            comparison,
            relative_change=change,
            ci_low=change,
            ci_high=change,
            p_value=0.0 if c != b else 1.0,
            mde=0.0,
        )
    if min(len(base.values), len(current.values)) < 2:
        note = "fewer than two rounds on one side; nothing can be tested"
        return replace(comparison, verdict=Verdict.INCONCLUSIVE, note=note)
    if paired and min(base.values + current.values) <= 0:
        note = "paired ratios need positive values"
        return replace(comparison, verdict=Verdict.INCONCLUSIVE, note=note)
    if not paired and stats.mean(base.values) == 0.0:
        return _zero_baseline(comparison, base, current)
    if paired:
        test = _paired_test(base.values, current.values, interval_alpha)
    else:
        test = _relative_test(base.values, current.values, interval_alpha)
    return replace(
        comparison,
        relative_change=test.relative_change,
        ci_low=test.ci_low,
        ci_high=test.ci_high,
        p_value=test.p_value,
        mde=test.mde,
        note="; ".join(n for n in (comparison.note, test.note) if n),
    )


def _zero_baseline(comparison: Comparison, base: Sample, current: Sample) -> Comparison:
    """A baseline whose mean is 0 has no relative change: unchanged when both sides are all
    zeros, else inconclusive with the value now (never a "+0.0%" against an invented scale)."""
    if not any(base.values) and not any(current.values):
        return replace(comparison, relative_change=0.0, ci_low=0.0, ci_high=0.0, p_value=1.0)
    now = format_value(stats.median(current.values), current.metric.unit)
    note = (
        f"the baseline averages 0, so a relative change is undefined (now {now}); record a "
        "new baseline, or gate this metric with a budget"
    )
    return replace(comparison, verdict=Verdict.INCONCLUSIVE, note=note)


def _material(comparison: Comparison, change: float, policy: Policy) -> bool:
    threshold = comparison.threshold or Threshold(value=0.0)
    absolute = change * abs(comparison.baseline or 0.0)
    material = threshold.exceeded_by(change, absolute)
    if comparison.metric.family in ("memory", "gpu_memory") and comparison.metric.unit == "B":
        material = material and abs(absolute) > policy.memory_floor
    return material


def _floor_note(comparison: Comparison, verdict: Verdict, policy: Policy) -> str:
    """Why a memory change whose interval reaches past the threshold is still ``unchanged``."""
    if verdict is not Verdict.UNCHANGED or comparison.metric.family not in ("memory", "gpu_memory"):
        return ""
    threshold = comparison.threshold or Threshold(value=0.0)
    base = abs(comparison.baseline or 0.0)
    if any(
        threshold.exceeded_by(bound, bound * base)
        for bound in (comparison.ci_low, comparison.ci_high)
    ):
        return f"within the memory floor ({policy.memory_floor / 2**20:g} MiB)"
    return ""


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _verdict(comparison: Comparison, significant: bool, policy: Policy) -> Verdict:
    change = comparison.relative_change
    if significant and _material(comparison, change, policy):
        worse = _worse(comparison.metric.direction, change)
        return Verdict.REGRESSION if worse else Verdict.IMPROVEMENT
    # Otherwise "unchanged" only if the interval rules out a material change either way.
    for bound in (comparison.ci_low, comparison.ci_high):
        if _material(comparison, bound, policy):
            return Verdict.INCONCLUSIVE
    return Verdict.UNCHANGED


def _mismatched(base: Sample, current: Sample, policy: Policy) -> Comparison | None:
    """A stored timing against a baseline from another environment, under the policy's
    ``on_environment_mismatch``: None for ``warn`` (compared, advisory), else not compared:
    ``fail`` makes it an error, ``skip-timing`` an advisory inconclusive."""
    action = policy.on_environment_mismatch
    if action == "warn":
        return None
    fix = "promote a baseline on this runner, or set policy.on_environment_mismatch: warn"
    return Comparison(
        benchmark=current.benchmark,
        metric=current.metric,
        verdict=Verdict.ERROR if action == "fail" else Verdict.INCONCLUSIVE,
        baseline=stats.median(base.values),
        current=stats.median(current.values),
        advisory=action == "skip-timing",
        note=f"baseline from another environment: timing not compared "
        f"(on_environment_mismatch: {action}); {fix}",
        mode="stored",
        n_baseline=len(base.values),
        n_current=len(current.values),
    )


def file_changes(baseline: RunRecord | None, current: RunRecord) -> tuple[str, ...]:
    """A note naming the model and data files whose md5 differs from the baseline's."""
    if baseline is None or not baseline.files or not current.files:
        return ()
    changed = [
        f"{path} (md5 {baseline.files[path][:8]} -> {digest[:8]})"
        for path, digest in sorted(current.files.items())
        if path in baseline.files and baseline.files[path] != digest
    ]
    changed += [f"{path} (new)" for path in sorted(set(current.files) - set(baseline.files))]
    changed += [f"{path} (gone)" for path in sorted(set(baseline.files) - set(current.files))]
    if not changed:
        return ()
    return ("model or data files changed since the baseline: " + ", ".join(changed),)


def _new(sample: Sample, note: str = "") -> Comparison:
    return Comparison(
        benchmark=sample.benchmark,
        metric=sample.metric,
        verdict=Verdict.NEW,
        current=stats.median(sample.values),
        n_current=len(sample.values),
        note=note,
    )


def _counterpart(
    sample: Sample, baseline: RunRecord | None, paired: PairedBaseline | None
) -> tuple[Sample | None, str]:
    """The sample to compare with, and the mode: the paired base for timings when there is one."""
    if paired is not None and sample.metric.family in TIMING_FAMILIES:
        base = paired.sample(sample.benchmark, sample.metric.name)
        if base is not None:
            return base, paired.modes.get(sample.benchmark, "ab")
    if baseline is None:
        return None, "stored"
    return baseline.sample(sample.benchmark, sample.metric.name), "stored"


def _testable(base: Sample | None, current: Sample) -> bool:
    return base is not None and len(base.values) >= 2 and len(current.values) >= 2


def decide(
    baseline: RunRecord | None,
    current: RunRecord,
    policy: Policy,
    *,
    paired: PairedBaseline | None = None,
) -> GateResult:
    """Compare ``current`` with ``baseline`` (and timings with ``paired``) under ``policy``; pure.

    Returns a GateResult with one Comparison per (benchmark, metric) measured now or in the
    baseline, plus over-budget entries; its ``exit_code`` is the gate's answer.
    """
    looks = paired.looks if paired is not None else 1
    counterparts = [
        (_counterpart(s, baseline, paired), s) for s in current.samples if not is_quality(s)
    ]
    testable = sum(1 for (base, _), sample in counterparts if _testable(base, sample))
    # Intervals at alpha / (m * looks) hold simultaneously for the run, so an interval that
    # excludes zero agrees with the Holm decision (Holm rejects at least as much as Bonferroni).
    # Not the converse: a later Holm step tests at up to alpha (see _holm_step_note).
    interval_alpha = policy.alpha / max(1, testable) / looks
    elsewhere = ""
    if baseline is not None and other_environment(baseline, current):
        elsewhere = "baseline from another environment: timing verdict advisory"
    comparisons: list[Comparison] = []
    # The samples behind each tested comparison, by index: a Holm step's interval is redone.
    tests: dict[int, tuple[Sample, Sample, bool]] = {}
    for (base, mode), sample in counterparts:
        if base is None:
            note = "not in the baseline" if baseline is not None else ""
            comparisons.append(_new(sample, note))
            continue
        advisory_note = ""
        if mode == "stored" and sample.metric.family in TIMING_FAMILIES:
            advisory_note = elsewhere
            mismatched = _mismatched(base, sample, policy) if elsewhere else None
            if mismatched is not None:
                comparisons.append(mismatched)
                continue
        tests[len(comparisons)] = (base, sample, mode in ("ab", "duet"))
        comparisons.append(
            _pair(base, sample, policy, interval_alpha, mode=mode, advisory_note=advisory_note)
        )
    if baseline is not None:
        measured = {(s.benchmark, s.metric.name) for s in current.samples}
        failed: dict[str, str] = {}
        for error in current.errors:
            failed.setdefault(error.benchmark, error.message)
        for base in baseline.samples:
            if (base.benchmark, base.metric.name) not in measured:
                comparisons.append(
                    Comparison(
                        benchmark=base.benchmark,
                        metric=base.metric,
                        verdict=Verdict.ERROR if base.benchmark in failed else Verdict.MISSING,
                        baseline=stats.median(base.values),
                        n_baseline=len(base.values),
                        note=f"failed to measure: {failed[base.benchmark]}"
                        if base.benchmark in failed
                        else "not measured",
                    )
                )
    tested = [i for i, c in enumerate(comparisons) if not math.isnan(c.p_value)]
    p_values = [comparisons[i].p_value for i in tested]
    rejected = stats.holm(p_values, policy.alpha / looks)
    steps = _holm_steps(p_values, policy.alpha / looks)
    for index, significant, step in zip(tested, rejected, steps, strict=True):
        comparison = comparisons[index]
        verdict = _verdict(comparison, significant, policy)
        step_note = ""
        decided = verdict in (Verdict.REGRESSION, Verdict.IMPROVEMENT)
        if decided and index in tests and comparison.ci_low <= 0.0 <= comparison.ci_high:
            step_note = _holm_step_note(tests[index], step, len(tested))
        comparisons[index] = replace(
            comparison,
            significant=significant,
            verdict=verdict,
            note=_join(comparison.note, _floor_note(comparison, verdict, policy), step_note),
        )
    comparisons.extend(quality_comparisons(baseline, current, policy))
    comparisons.extend(parity_failures(current))
    comparisons = apply_tradeoffs(comparisons, policy.tradeoffs)
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
        has_baseline=baseline is not None or paired is not None,
        environment_differences=environment_differences(baseline, current) if baseline else {},
        warnings=tuple(warnings),
        notes=(
            *file_changes(baseline, current),
            *(environment_notes(baseline, current) if baseline else ()),
            *first_call_notes(current),
        ),
        errors=current.errors,
        baseline_commit=baseline.git.commit if baseline else None,
        current_commit=current.git.commit,
        fail_on_inconclusive=policy.fail_on_inconclusive,
        tails=tail_latencies(baseline, current),
        variants=variant_summaries(current),
    )


def _holm_steps(p_values: Sequence[float], alpha: float) -> list[tuple[int, float]]:
    """Per p-value its Holm step (1 = smallest p) and the level that step tests at."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    steps = [(0, 0.0)] * len(p_values)
    for rank, index in enumerate(order):
        steps[index] = (rank + 1, alpha / (len(p_values) - rank))
    return steps


def _percent(value: float) -> str:
    if abs(value) > 10.0:
        return ">+1000%" if value > 0 else "<-1000%"
    return f"{value * 100:+.1f}%"


def _holm_step_note(samples: tuple[Sample, Sample, bool], step: tuple[int, float], m: int) -> str:
    """Why a significant change shows a simultaneous interval that includes no change: Holm's
    later steps test at up to alpha, the simultaneous interval is at alpha / m. The interval at
    the step's own level excludes 0 (the test and the interval are dual)."""
    base, current, paired = samples
    rank, level = step
    test = (_paired_test if paired else _relative_test)(base.values, current.values, level)
    return (
        f"significant at Holm step {rank} of {m} (alpha {level:.2g}): "
        f"[{_percent(test.ci_low)}, {_percent(test.ci_high)}] at that level; "
        "the simultaneous interval is wider"
    )


def unrelated_baseline(baseline: RunRecord, current: RunRecord) -> bool:
    """Whether the baseline holds no sample of any benchmark the current run measured (every
    result would be ``new``: a wrong path, renamed benchmarks, or an empty baseline)."""
    measured = {s.benchmark for s in current.samples}
    return bool(measured) and not measured & {s.benchmark for s in baseline.samples}


def inconclusive_benchmarks(result: GateResult) -> set[str]:
    """Benchmarks with an inconclusive timing comparison: candidates for more rounds."""
    return {
        c.benchmark
        for c in result.comparisons
        if c.verdict is Verdict.INCONCLUSIVE and c.metric.family in TIMING_FAMILIES
    }
