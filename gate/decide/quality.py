"""The decision on quality: metrics against the baseline, parity against the reference
variant, and trade-off rules. Pure (records in, comparisons out), like :mod:`gate.decide.compare`.

Quality metrics are deterministic for a given model and eval set, so by default the observed
change decides: a drop beyond the tolerance is a regression. With ``require_significance`` a
metric also needs a paired test to reject no-change (McNemar's exact test for 0/1 outcomes, a
paired t-test for per-example errors); that guards against flaky evaluation (dropout left on,
non-deterministic kernels) at the cost of missing small real drops on small eval sets.
"""

from __future__ import annotations

import math
from dataclasses import replace

from gate.core import stats
from gate.core.types import (
    Comparison,
    Direction,
    Metric,
    Policy,
    Replication,
    RunRecord,
    Sample,
    Threshold,
    TradeOff,
    VariantSummary,
    Verdict,
)
from gate.units import UNIT_FRACTION

PARITY = Metric("parity", "", Direction.HIGHER)


def is_quality(sample: Sample) -> bool:
    return sample.replication is Replication.EVALUATION


def _eval_info(record: RunRecord | None, benchmark: str) -> dict[str, object]:
    if record is None:
        return {}
    info = record.info.get(benchmark, {}).get("eval")
    return dict(info) if isinstance(info, dict) else {}


def _worse_by(direction: Direction, change: float) -> float:
    """How much worse (positive) or better (negative) a change is for this direction."""
    return -change if direction is Direction.HIGHER else change


def _relative(change: float, base: float) -> float:
    return change / abs(base) if base else (0.0 if change == 0 else math.inf)


def _paired_evidence(
    base: Sample, current: Sample, alpha: float
) -> tuple[float, tuple[float, float], float, tuple[int, int] | None]:
    """(change, interval, p, flips) over the same examples."""
    if current.metric.name in ("accuracy", "top5"):
        to_wrong = sum(1 for b, c in zip(base.examples, current.examples, strict=True) if b > c)
        to_right = sum(1 for b, c in zip(base.examples, current.examples, strict=True) if c > b)
        n = len(current.examples)
        interval = stats.paired_proportion_interval(to_wrong, to_right, n, alpha)
        change = (to_right - to_wrong) / n
        return change, interval, stats.mcnemar_exact_p(to_wrong, to_right), (to_wrong, to_right)
    differences = [c - b for b, c in zip(base.examples, current.examples, strict=True)]
    result = stats.paired_mean_difference(differences, alpha)
    change = current.values[0] - base.values[0]
    if current.metric.name == "rmse":  # the test is on squared errors; map bounds to rmse
        mse = stats.mean(base.examples)
        low = math.sqrt(max(0.0, mse + result.ci_low)) - math.sqrt(mse)
        high = math.sqrt(max(0.0, mse + result.ci_high)) - math.sqrt(mse)
        return change, (low, high), result.p_value, None
    return change, (result.ci_low, result.ci_high), result.p_value, None


def _unpaired_evidence(
    base: Sample, current: Sample, n_base: int, n_current: int, alpha: float
) -> tuple[float, tuple[float, float] | None, float]:
    change = current.values[0] - base.values[0]
    if current.metric.name in ("accuracy", "top5") and n_base and n_current:
        k_base = round(base.values[0] * n_base)
        k_current = round(current.values[0] * n_current)
        interval = stats.newcombe_interval(k_base, n_base, k_current, n_current, alpha)
        return change, interval, stats.two_proportion_p(k_base, n_base, k_current, n_current)
    if current.metric.name in ("mae", "rmse") and len(base.examples) > 1 < len(current.examples):
        result = stats.welch(base.examples, current.examples, alpha)
        if current.metric.name == "mae":
            return change, (result.ci_low, result.ci_high), result.p_value
        return change, None, result.p_value
    return change, None, math.nan


def _quality_comparison(
    base: Sample, current: Sample, baseline: RunRecord, record: RunRecord, policy: Policy
) -> Comparison:
    name = current.benchmark
    threshold = policy.threshold_for(name, current.metric.family)
    base_info, current_info = _eval_info(baseline, name), _eval_info(record, name)
    same_set = bool(base_info.get("hash")) and base_info.get("hash") == current_info.get("hash")
    paired = (
        same_set
        and len(base.examples) == len(current.examples) > 1
        and current.metric.name in ("accuracy", "top5", "mae", "rmse")
    )
    note = ""
    flips: tuple[int, int] | None = None
    interval: tuple[float, float] | None
    if paired:
        change, interval, p_value, flips = _paired_evidence(base, current, policy.alpha)
    else:
        n_base = int(str(base_info.get("examples") or 0))
        n_current = int(str(current_info.get("examples") or 0))
        change, interval, p_value = _unpaired_evidence(
            base, current, n_base, n_current, policy.alpha
        )
        if base_info.get("hash") and base_info.get("hash") != current_info.get("hash"):
            note = (
                f"eval set changed ({base_info.get('examples')} -> "
                f"{current_info.get('examples')} examples, content hash differs): compared "
                "unpaired"
            )
    b, c = base.values[0], current.values[0]
    comparison = Comparison(
        benchmark=name,
        metric=current.metric,
        verdict=Verdict.UNCHANGED,
        baseline=b,
        current=c,
        relative_change=_relative(change, b),
        ci_low=_relative(interval[0], b) if interval else math.nan,
        ci_high=_relative(interval[1], b) if interval else math.nan,
        p_value=p_value,
        threshold=threshold,
        n_baseline=int(str(base_info.get("examples") or 1)),
        n_current=int(str(current_info.get("examples") or 1)),
        note=note,
        absolute_change=change,
        absolute_ci=interval,
        flips=flips,
    )
    return _quality_verdict(comparison, policy)


def _quality_verdict(comparison: Comparison, policy: Policy) -> Comparison:
    threshold = comparison.threshold or Threshold(value=0.0, relative=False)
    worse = _worse_by(comparison.metric.direction, comparison.absolute_change)
    material = threshold.exceeded_by(comparison.relative_change, comparison.absolute_change)
    needs_test = comparison.metric.name in policy.require_significance
    significant = not math.isnan(comparison.p_value) and comparison.p_value <= policy.alpha
    notes = [comparison.note] if comparison.note else []
    if comparison.absolute_change == 0 or not material:
        verdict = Verdict.UNCHANGED
    elif needs_test and not significant:
        verdict = Verdict.INCONCLUSIVE
        notes.append(
            f"beyond the tolerance but not significant (p={comparison.p_value:.2g}, "
            "require_significance)"
        )
    else:
        verdict = Verdict.REGRESSION if worse > 0 else Verdict.IMPROVEMENT
    return replace(
        comparison,
        verdict=verdict,
        significant=significant if needs_test else verdict is not Verdict.UNCHANGED,
        note="; ".join(notes),
    )


def _holds(condition: float, found: list[Comparison]) -> bool:
    """A relative-change condition holds when every matching comparison is significant and its
    whole interval lies beyond the condition (e.g. latency -15%: upper bound <= -15%)."""
    if not found:
        return False
    for comparison in found:
        if not comparison.significant:
            return False
        bound = comparison.ci_high if condition < 0 else comparison.ci_low
        if math.isnan(bound) or (bound > condition if condition < 0 else bound < condition):
            return False
    return True


def _matching(comparisons: list[Comparison], benchmark: str, metric: str) -> list[Comparison]:
    """The measured comparisons a condition on ``metric`` refers to (name, else family)."""
    measured = [
        c for c in comparisons if c.benchmark == benchmark and not math.isnan(c.relative_change)
    ]
    exact = [c for c in measured if c.metric.name == metric]
    return exact or [c for c in measured if c.metric.family == metric]


def _describe_condition(metric: str, condition: float, found: list[Comparison]) -> str:
    if not found:
        return f"{metric} was not measured"
    shown = ", ".join(
        f"{c.metric.name} {c.relative_change * 100:+.1f}% [{c.ci_low * 100:+.1f}%, "
        f"{c.ci_high * 100:+.1f}%]"
        for c in found
    )
    return f"needs {metric} {condition * 100:+g}% with confidence, measured {shown}"


def apply_tradeoffs(comparisons: list[Comparison], rules: tuple[TradeOff, ...]) -> list[Comparison]:
    """Quality regressions a rule allows become ``accepted-trade-off`` (naming the rule); a rule
    that covers the metric but whose condition fails says why in the note."""
    result = []
    for comparison in comparisons:
        if comparison.verdict is not Verdict.REGRESSION or math.isnan(comparison.absolute_change):
            result.append(comparison)
            continue
        worse = _worse_by(comparison.metric.direction, comparison.absolute_change)
        reasons = []
        accepted: TradeOff | None = None
        for rule in rules:
            allowance = rule.allowance(comparison.metric.name)
            if allowance is None:
                continue
            if worse > allowance:
                reasons.append(f"rule '{rule.text}': the drop is beyond what it allows")
                continue
            unmet = [
                _describe_condition(m, v, found)
                for m, v in rule.when.items()
                if not _holds(v, found := _matching(comparisons, comparison.benchmark, m))
            ]
            if unmet:
                reasons.append(f"rule '{rule.text}' not met: {'; '.join(unmet)}")
                continue
            accepted = rule
            break
        notes = [comparison.note] if comparison.note else []
        if accepted is not None:
            notes.append(f"accepted by trade-off rule '{accepted.text}'")
            result.append(
                replace(
                    comparison,
                    verdict=Verdict.ACCEPTED_TRADE_OFF,
                    rule=accepted.text,
                    note="; ".join(notes),
                )
            )
        else:
            result.append(replace(comparison, note="; ".join(notes + reasons)))
    return result


def quality_comparisons(
    baseline: RunRecord | None, current: RunRecord, policy: Policy
) -> list[Comparison]:
    """One comparison per quality sample of ``current`` (``new`` when the baseline lacks it)."""
    comparisons = []
    for sample in current.samples:
        if not is_quality(sample):
            continue
        base = baseline.sample(sample.benchmark, sample.metric.name) if baseline else None
        if base is None or baseline is None:
            comparisons.append(
                Comparison(
                    benchmark=sample.benchmark,
                    metric=sample.metric,
                    verdict=Verdict.NEW,
                    current=sample.values[0],
                    n_current=int(str(_eval_info(current, sample.benchmark).get("examples") or 1)),
                    note="not in the baseline" if baseline is not None else "",
                )
            )
            continue
        comparisons.append(_quality_comparison(base, sample, baseline, current, policy))
    return comparisons


def parity_failures(current: RunRecord) -> list[Comparison]:
    """A ``parity-fail`` comparison for each variant whose outputs left their bounds."""
    failures = []
    for benchmark, info in sorted(current.info.items()):
        parity = info.get("parity")
        if not isinstance(parity, dict) or parity.get("ok", True):
            continue
        agreement = parity.get("top1_agreement")
        failures.append(
            Comparison(
                benchmark=benchmark,
                metric=PARITY,
                verdict=Verdict.PARITY_FAIL,
                current=agreement if isinstance(agreement, float) else parity.get("max_abs_diff"),
                note=f"outputs differ from {parity.get('reference')}: {parity.get('reason')}",
            )
        )
    return failures


def variant_summaries(current: RunRecord) -> tuple[VariantSummary, ...]:
    """Quality, latency, memory and parity per variant, for models that were evaluated."""
    evaluated = {
        name
        for name, info in current.info.items()
        if isinstance(info.get("eval"), dict) or isinstance(info.get("parity"), dict)
    }
    evaluated |= {s.benchmark for s in current.samples if is_quality(s)}
    evaluated |= {  # the reference variant of a parity check, even without an eval set
        str(info["parity"].get("reference"))
        for info in current.info.values()
        if isinstance(info.get("parity"), dict) and info["parity"].get("reference")
    }
    summaries = []
    for name in sorted(evaluated):
        model, _, variant = name.partition("[")
        latency = current.sample(name, "latency")
        # The model's own memory (records before memory.inference: the process's peak).
        memory = current.sample(name, "memory.inference") or current.sample(name, "memory.peak")
        parity = current.info.get(name, {}).get("parity")
        summaries.append(
            VariantSummary(
                benchmark=name,
                model=model,
                variant=variant.rstrip("]"),
                quality={
                    s.metric.name: s.values[0]
                    for s in current.samples
                    if s.benchmark == name and is_quality(s)
                },
                latency=stats.median(latency.values) if latency else None,
                memory=stats.median(memory.values) if memory else None,
                parity=dict(parity) if isinstance(parity, dict) else None,
            )
        )
    return tuple(summaries)


def quality_unit(metric: str) -> str:
    """The unit a built-in quality metric is stored in."""
    return UNIT_FRACTION if metric in ("accuracy", "top5", "f1_macro") else ""
