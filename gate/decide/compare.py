"""The gate decision: (baseline, current, policy) -> verdicts. Pure: no I/O, no clock.

A timing regresses only when the change is both *significant* (its interval excludes no change:
paired t on per-round log ratios, or Welch on log values, at alpha split Bonferroni-wise over
the run's tests and sequential looks) and *material* (the estimate exceeds the metric's
threshold); the interval printed is the one the decision used. Sizes are exact, memory follows
the memory rule (the probes' spread, no test), cold starts are advisory.
docs/STATISTICS.md explains the choices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from gate.core import stats
from gate.core.environment_fields import (
    environment_differences,
    environment_notes,
    other_environment,
)
from gate.core.types import (
    PAIRED_MODES,
    Comparison,
    Direction,
    GateResult,
    Metric,
    Policy,
    Replication,
    RunRecord,
    Sample,
    Threshold,
    TimingMode,
    Verdict,
)
from gate.decide.limits import check_budgets, first_call_notes, tail_latencies, variant_notes
from gate.decide.quality import (
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
    # The statistic of each side that the change is the ratio of (geometric means of the kept
    # rounds on the log scale, means on the raw scale): the report's baseline/current columns.
    base_centre: float = math.nan
    current_centre: float = math.nan


# How a paired base side was measured: base then head worker (ab), both workers at the same
# time in step (parallel), both artifacts in one process (duet).
# Metric families that are timings: re-measured side by side in the paired modes (a load
# run's achieved rate and max rate, a data pipeline's rates: docs/load.md).
TIMING_FAMILIES = frozenset({"latency", "throughput", "load", "max_qps", "data"})
# Metric families that are exact (a file or state-dict size): compared without a test.
DETERMINISTIC_FAMILIES = frozenset({"model_size"})
# Memory in bytes: near-deterministic per process, judged by the memory rule, not a test.
MEMORY_FAMILIES = frozenset({"memory", "gpu_memory"})
# Cold start: a probe per process, few of them; tested (advisory) only with this many per side.
MIN_COLD_START_PROBES = 5


def kind_of(metric: Metric) -> str:
    """How a metric is judged: ``exact`` (sizes: the change itself), ``memory`` (the memory
    rule: a material change beyond the probes' spread), ``cold_start`` (advisory, tested among
    the cold starts alone) or ``tested`` (timings and custom values: the run's test family,
    the same at every sequential look)."""
    if metric.family in DETERMINISTIC_FAMILIES:
        return "exact"
    if metric.family in MEMORY_FAMILIES and metric.unit == "B":
        return "memory"
    if metric.family == "cold_start":
        return "cold_start"
    return "tested"


@dataclass(frozen=True, kw_only=True)
class PairedBaseline:
    """Timing samples of the base revision measured in the same rounds as the current run.

    ``samples`` are index-aligned with the current run's values (round i of the base belongs to
    round i of the head); ``modes`` says per benchmark how (``ab`` or ``duet``); ``looks`` is how
    many times the sequential procedure could have stopped (its alpha is split across them);
    ``notes`` what the rounds of a benchmark went through (slow processes replaced).
    """

    samples: tuple[Sample, ...]
    modes: Mapping[str, TimingMode]
    looks: int = 1
    notes: Mapping[str, str] = field(default_factory=dict)  # per benchmark, e.g. rounds replaced

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


def _kept(logs: list[float]) -> list[int]:
    """Indices of the values that are not gross outliers (stats.gross_outliers)."""
    dropped = set(stats.gross_outliers(logs))
    return [i for i in range(len(logs)) if i not in dropped]


def _outlier_note(count: int) -> str:
    return f"{count} outlier round(s) excluded" if count else ""


def _geometric_mean(logs: Sequence[float]) -> float:
    try:
        return math.exp(stats.mean(logs))
    except OverflowError:
        return math.inf


def _relative_test(base: Sequence[float], current: Sequence[float], alpha: float) -> _Test:
    """Unpaired: relative change of current over base with its 1 - alpha interval and p-value
    (Welch).

    Positive values are compared on the log scale (ratio of geometric means, which is what the
    noise of timings is multiplicative in), after excluding gross outlier rounds on each side;
    others on the raw scale relative to |mean(base)|.
    """
    if min(base) > 0 and min(current) > 0:
        all_base = [math.log(v) for v in base]
        all_current = [math.log(v) for v in current]
        base_logs = [all_base[i] for i in _kept(all_base)]
        current_logs = [all_current[i] for i in _kept(all_current)]
        dropped = len(all_base) - len(base_logs) + len(all_current) - len(current_logs)
        result = stats.welch(base_logs, current_logs, alpha)
        mde = stats.minimum_detectable_effect(result.se, result.df, alpha)
        return _Test(
            _expm1(result.difference),
            _expm1(result.ci_low),
            _expm1(result.ci_high),
            result.p_value,
            _expm1(mde),
            _outlier_note(dropped),
            _geometric_mean(base_logs),
            _geometric_mean(current_logs),
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
        base_centre=stats.mean(base),
        current_centre=stats.mean(current),
    )


def _paired_test(base: Sequence[float], current: Sequence[float], alpha: float) -> _Test:
    """Paired: per-round log ratios current/base, Student's t (1 - alpha interval) with a
    Wilcoxon cross-check. The columns are the geometric means of the kept rounds of each side,
    so their ratio is the estimate exactly."""
    pairs = list(zip(base, current, strict=False))
    logs = [math.log(c / b) for b, c in pairs]
    kept = _kept(logs)
    ratios = [logs[i] for i in kept]
    result = stats.paired(ratios, alpha / 2.0)  # the two one-sided bounds form a 1-alpha interval
    p_value = min(1.0, 2.0 * min(result.p_worse, result.p_better))
    note = ""
    # The exact signed-rank test cannot go below 2 / 2^n: only compare where it could agree.
    wilcoxon_can_reject = 2.0 / 2.0 ** len(ratios) <= alpha
    if wilcoxon_can_reject and (p_value <= alpha) != (result.wilcoxon_p <= alpha):
        note = f"t-test p={p_value:.2g} and Wilcoxon p={result.wilcoxon_p:.2g} disagree"
    note = "; ".join(n for n in (_outlier_note(len(logs) - len(kept)), note) if n)
    return _Test(
        _expm1(result.estimate),
        _expm1(result.lower),
        _expm1(result.upper),
        p_value,
        _expm1(result.mde),
        note,
        _geometric_mean([math.log(pairs[i][0]) for i in kept]),
        _geometric_mean([math.log(pairs[i][1]) for i in kept]),
    )


def _worse(direction: Direction, change: float) -> bool:
    return change > 0 if direction is Direction.LOWER else change < 0


def _pair(
    base: Sample,
    current: Sample,
    policy: Policy,
    interval_alpha: float,
    *,
    mode: TimingMode = "stored",
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
    paired = mode in PAIRED_MODES
    kind = kind_of(current.metric)
    if kind == "exact":
        return _exact(comparison, base, current, policy)
    if kind == "memory":
        return _memory_rule(comparison, base, current, policy)
    if min(len(base.values), len(current.values)) < 2:
        note = "fewer than two rounds on one side; nothing can be tested"
        return replace(comparison, verdict=Verdict.INCONCLUSIVE, note=note)
    if kind == "cold_start":
        comparison = replace(comparison, advisory=True)
        fewest = min(len(base.values), len(current.values))
        if fewest < MIN_COLD_START_PROBES and min(base.values + current.values) > 0:
            base_mean = _geometric_mean([math.log(v) for v in base.values])
            current_mean = _geometric_mean([math.log(v) for v in current.values])
            note = (
                f"{fewest} probe(s) on one side: shown, not tested (a cold-start test needs "
                f"measure.probes >= {MIN_COLD_START_PROBES}); advisory"
            )
            return replace(
                comparison,
                verdict=Verdict.INCONCLUSIVE,
                relative_change=current_mean / base_mean - 1.0,
                baseline=base_mean,
                current=current_mean,
                note=_join(comparison.note, note),
            )
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
        baseline=test.base_centre,
        current=test.current_centre,
        relative_change=test.relative_change,
        ci_low=test.ci_low,
        ci_high=test.ci_high,
        p_value=test.p_value,
        mde=test.mde,
        note="; ".join(n for n in (comparison.note, test.note) if n),
    )


def _exact(comparison: Comparison, base: Sample, current: Sample, policy: Policy) -> Comparison:
    """Sizes do not vary between processes: one reading each is exact, so the change itself
    decides (no test, no interval, not part of the test family)."""
    b, c = stats.median(base.values), stats.median(current.values)
    change = (c - b) / abs(b) if b else (0.0 if c == b else math.inf)
    comparison = replace(comparison, relative_change=change, ci_low=change, ci_high=change)
    if _material(comparison, change, policy):
        worse = _worse(comparison.metric.direction, change)
        return replace(comparison, verdict=Verdict.REGRESSION if worse else Verdict.IMPROVEMENT)
    return replace(comparison, verdict=Verdict.UNCHANGED)


def _memory_rule(
    comparison: Comparison, base: Sample, current: Sample, policy: Policy
) -> Comparison:
    """Memory is near-deterministic per fresh process (its probes repeat to ~0.1%), so it is
    judged without a test: the change of the medians, and as its interval the range of every
    probe-to-probe difference, [min(current) - max(base), max(current) - min(base)], relative to
    the baseline's median. A regression needs even the lower end of that range to be material
    (beyond the threshold and the memory floor); ``unchanged`` needs both ends within them;
    otherwise the probes spread too much to say (``inconclusive``)."""
    b, c = stats.median(base.values), stats.median(current.values)
    if b <= 0:
        return _zero_baseline(comparison, base, current)
    low = (min(current.values) - max(base.values)) / b
    high = (max(current.values) - min(base.values)) / b
    comparison = replace(
        comparison,
        relative_change=(c - b) / b,
        ci_low=low,
        ci_high=high,
        note=_join(
            comparison.note,
            f"memory rule: range of the probes' differences ({len(base.values)} + "
            f"{len(current.values)} probes), not a test",
        ),
    )
    low_material = _material(comparison, low, policy)
    high_material = _material(comparison, high, policy)
    worse = _worse(comparison.metric.direction, 1.0)  # memory: lower is better
    if low_material and low > 0:
        verdict = Verdict.REGRESSION if worse else Verdict.IMPROVEMENT
    elif high_material and high < 0:
        verdict = Verdict.IMPROVEMENT if worse else Verdict.REGRESSION
    elif not low_material and not high_material:
        verdict = Verdict.UNCHANGED
    else:
        verdict = Verdict.INCONCLUSIVE
    floor = _floor_note(comparison, verdict, policy)
    return replace(comparison, verdict=verdict, note=_join(comparison.note, floor))


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
) -> tuple[Sample | None, TimingMode]:
    """The sample to compare with, and the mode: the paired base when there is one (timings,
    and whatever else a round measured: a data pipeline's first batch)."""
    if paired is not None:
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
    # The test family: timings and custom values (kind "tested"). Sizes, memory and cold starts
    # are judged by their own rules, so a trial decision between sequential looks (timings only)
    # and the final one (with the probes) split alpha the same way.
    testable = sum(
        1
        for (base, _), sample in counterparts
        if kind_of(sample.metric) == "tested" and _testable(base, sample)
    )
    cold_starts = sum(
        1
        for (base, _), sample in counterparts
        if kind_of(sample.metric) == "cold_start"
        and base is not None
        and min(len(base.values), len(sample.values)) >= MIN_COLD_START_PROBES
    )
    # Intervals at alpha / (m * looks) hold simultaneously for the run, and the decision is
    # the interval's: significant when it excludes no change (Bonferroni), so the printed
    # interval is the one the verdict used.
    interval_alpha = policy.alpha / max(1, testable) / looks
    cold_alpha = policy.alpha / max(1, cold_starts)
    elsewhere = ""
    if baseline is not None and other_environment(baseline, current):
        elsewhere = "baseline from another environment: timing verdict advisory"
    comparisons: list[Comparison] = []
    for (base, mode), sample in counterparts:
        # why a row was measured as it was (not paired, kept from its own process): run records
        # carry it in the benchmark's info
        row_notes = current.info.get(sample.benchmark, {}).get("row_notes") or ()
        row_note = _join(*(n for n in row_notes if isinstance(n, str)))
        if base is None:
            note = "not in the baseline" if baseline is not None else ""
            comparisons.append(_new(sample, _join(row_note, note)))
            continue
        advisory_note = ""
        if mode == "stored" and sample.metric.family in TIMING_FAMILIES:
            advisory_note = elsewhere
            mismatched = _mismatched(base, sample, policy) if elsewhere else None
            if mismatched is not None:
                comparisons.append(mismatched)
                continue
        level = cold_alpha if kind_of(sample.metric) == "cold_start" else interval_alpha
        compared = _pair(base, sample, policy, level, mode=mode, advisory_note=advisory_note)
        if paired is not None and mode in PAIRED_MODES and sample.benchmark in paired.notes:
            compared = replace(compared, note=_join(paired.notes[sample.benchmark], compared.note))
        if row_note:
            compared = replace(compared, note=_join(row_note, compared.note))
        comparisons.append(compared)
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
    for index, comparison in enumerate(comparisons):
        if math.isnan(comparison.p_value) or comparison.verdict is not Verdict.UNCHANGED:
            continue  # not tested (new, missing, sizes, memory) or already decided
        significant = comparison.ci_low > 0.0 or comparison.ci_high < 0.0
        verdict = _verdict(comparison, significant, policy)
        comparisons[index] = replace(
            comparison,
            significant=significant,
            verdict=verdict,
            note=_join(comparison.note, _floor_note(comparison, verdict, policy)),
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
            *variant_notes(current),
        ),
        errors=current.errors,
        baseline_commit=baseline.git.commit if baseline else None,
        current_commit=current.git.commit,
        fail_on_inconclusive=policy.fail_on_inconclusive,
        tails=tail_latencies(baseline, current),
        variants=variant_summaries(current),
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
