"""gate.decide.compare.decide on synthetic quality samples: paired and unpaired quality comparisons,
require_significance, parity failures, trade-off rules, variant summaries and their reports."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest

from gate.core import stats
from gate.core.types import (
    Comparison,
    Direction,
    ExitCode,
    GateResult,
    GitInfo,
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
from gate.decide.compare import PairedBaseline, decide
from gate.decide.quality import (
    PARITY,
    apply_tradeoffs,
    parity_failures,
    quality_comparisons,
    quality_unit,
    variant_summaries,
)
from gate.report.content import report_row
from gate.report.jsonreport import comparison_to_dict, result_to_dict
from gate.report.terminal import change_text, render_table, variant_table

scipy_stats = pytest.importorskip("scipy.stats")

ACCURACY = Metric("accuracy", "fraction", Direction.HIGHER)
TOP5 = Metric("top5", "fraction", Direction.HIGHER)
F1 = Metric("f1_macro", "fraction", Direction.HIGHER)
MAE = Metric("mae", "", Direction.LOWER)
RMSE = Metric("rmse", "", Direction.LOWER)
LATENCY = Metric("latency", "s", Direction.LOWER)
MEMORY = Metric("memory.peak", "B", Direction.LOWER)

INT8 = "m[torch-int8]"
FP32 = "m[torch]"

THRESHOLDS = {
    "latency": Threshold(value=0.05),
    "throughput": Threshold(value=0.05),
    "memory": Threshold(value=0.02),
    "accuracy": Threshold(value=0.005, relative=False),
    "top5": Threshold(value=0.005, relative=False),
    "f1_macro": Threshold(value=0.005, relative=False),
    "mae": Threshold(value=0.01),
    "rmse": Threshold(value=0.01),
    "default": Threshold(value=0.05),
}
POLICY = Policy(alpha=0.01, thresholds=THRESHOLDS)
RULE = TradeOff(
    allow={"accuracy": 0.01},
    when={"latency": -0.15},
    text="allow accuracy +1.00 pt when latency -15%",
)


# --------------------------------------------------------------------------------------------
# helpers


def outcomes(n: int, right: int) -> list[float]:
    """``n`` 0/1 outcomes, the first ``right`` of them correct."""
    return [1.0] * right + [0.0] * (n - right)


def flipped(base: Sequence[float], to_wrong: int, to_right: int) -> list[float]:
    """``base`` with the first ``to_wrong`` right examples made wrong and the first
    ``to_right`` wrong examples made right."""
    current = list(base)
    right = [i for i, v in enumerate(base) if v == 1.0]
    wrong = [i for i, v in enumerate(base) if v == 0.0]
    for i in right[:to_wrong]:
        current[i] = 0.0
    for i in wrong[:to_right]:
        current[i] = 1.0
    return current


def value_of(metric: Metric, examples: Sequence[float]) -> float:
    average = math.fsum(examples) / len(examples)
    return math.sqrt(average) if metric.name == "rmse" else average


def quality(
    metric: Metric, examples: Sequence[float], benchmark: str = INT8, *, keep: bool = True
) -> Sample:
    return Sample(
        benchmark=benchmark,
        metric=metric,
        values=(value_of(metric, examples),),
        replication=Replication.EVALUATION,
        examples=tuple(examples) if keep else (),
    )


def eval_info(hash_: str, examples: int) -> dict[str, Any]:
    return {"eval": {"hash": hash_, "examples": examples, "source": "digits.npz"}}


def record(
    *samples: Sample, info: Mapping[str, Mapping[str, Any]] | None = None, commit: str = "c"
) -> RunRecord:
    return RunRecord(
        samples=samples,
        environment={"key": "env"},
        info=info or {},
        git=GitInfo(commit=commit),
    )


def paired_run(
    metric: Metric,
    base: Sequence[float],
    current: Sequence[float],
    *,
    policy: Policy = POLICY,
    extra_base: Sequence[Sample] = (),
    extra_current: Sequence[Sample] = (),
    current_info: Mapping[str, Mapping[str, Any]] | None = None,
) -> GateResult:
    info = {INT8: eval_info("h1", len(base))}
    return decide(
        record(quality(metric, base), *extra_base, info=info, commit="base"),
        record(quality(metric, current), *extra_current, info={**info, **(current_info or {})}),
        policy,
    )


def only(result: GateResult, metric: str, benchmark: str = INT8) -> Comparison:
    found = [c for c in result.comparisons if c.benchmark == benchmark and c.metric.name == metric]
    assert len(found) == 1, found
    return found[0]


BASE_1000 = outcomes(1000, 900)


# --------------------------------------------------------------------------------------------
# accuracy on the same eval set: paired


def test_paired_accuracy_regression() -> None:
    current = flipped(BASE_1000, 30, 5)
    result = paired_run(ACCURACY, BASE_1000, current)
    c = only(result, "accuracy")
    assert c.verdict is Verdict.REGRESSION
    assert c.flips == (30, 5)
    assert c.baseline == pytest.approx(0.900)
    assert c.current == pytest.approx(0.875)
    assert c.absolute_change == pytest.approx(-0.025)
    assert c.relative_change == pytest.approx(-0.025 / 0.9)
    expected_p = scipy_stats.binomtest(5, 35, 0.5).pvalue
    assert c.p_value == pytest.approx(expected_p, rel=1e-9)
    assert c.p_value < 1e-4
    assert c.absolute_ci == pytest.approx(stats.paired_proportion_interval(30, 5, 1000, 0.01))
    assert c.absolute_ci is not None
    assert c.absolute_ci[0] < -0.025 < c.absolute_ci[1] < 0
    assert c.ci_low == pytest.approx(c.absolute_ci[0] / 0.9)
    assert c.ci_high == pytest.approx(c.absolute_ci[1] / 0.9)
    assert c.threshold == Threshold(value=0.005, relative=False)
    assert c.n_baseline == c.n_current == 1000
    assert c.significant
    assert c.fails
    assert c.note == ""
    assert c.rule == ""
    assert result.exit_code is ExitCode.REGRESSION


def test_paired_accuracy_within_tolerance_is_unchanged() -> None:
    current = flipped(BASE_1000, 4, 1)  # -0.3 pt < 0.5 pt
    c = only(paired_run(ACCURACY, BASE_1000, current), "accuracy")
    assert c.verdict is Verdict.UNCHANGED
    assert c.absolute_change == pytest.approx(-0.003)
    assert c.flips == (4, 1)
    assert c.p_value == pytest.approx(scipy_stats.binomtest(1, 5, 0.5).pvalue)
    assert not c.significant
    assert not c.fails


def test_paired_accuracy_identical_outcomes() -> None:
    result = paired_run(ACCURACY, BASE_1000, BASE_1000)
    c = only(result, "accuracy")
    assert c.verdict is Verdict.UNCHANGED
    assert c.flips == (0, 0)
    assert c.absolute_change == 0.0
    assert c.p_value == 1.0
    assert c.absolute_ci is not None
    assert c.absolute_ci[0] < 0 < c.absolute_ci[1]
    assert result.exit_code is ExitCode.OK


def test_flips_that_cancel_are_unchanged_but_counted() -> None:
    c = only(paired_run(ACCURACY, BASE_1000, flipped(BASE_1000, 20, 20)), "accuracy")
    assert c.verdict is Verdict.UNCHANGED
    assert c.flips == (20, 20)
    assert c.absolute_change == 0.0
    assert c.p_value == 1.0


def test_paired_accuracy_improvement() -> None:
    result = paired_run(ACCURACY, BASE_1000, flipped(BASE_1000, 2, 40))
    c = only(result, "accuracy")
    assert c.verdict is Verdict.IMPROVEMENT
    assert c.flips == (2, 40)
    assert c.absolute_change == pytest.approx(0.038)
    assert c.absolute_ci is not None
    assert c.absolute_ci[0] > 0
    assert not c.fails
    assert result.exit_code is ExitCode.OK


def test_top5_is_paired_like_accuracy() -> None:
    c = only(paired_run(TOP5, BASE_1000, flipped(BASE_1000, 12, 0)), "top5")
    assert c.verdict is Verdict.REGRESSION
    assert c.flips == (12, 0)
    assert c.p_value == pytest.approx(2 * 0.5**12)


def test_a_custom_accuracy_threshold_applies() -> None:
    policy = Policy(
        alpha=0.01, thresholds={**THRESHOLDS, "accuracy": Threshold(value=0.03, relative=False)}
    )
    current = flipped(BASE_1000, 30, 5)
    c = only(paired_run(ACCURACY, BASE_1000, current, policy=policy), "accuracy")
    assert c.verdict is Verdict.UNCHANGED  # -2.5 pt, tolerance 3 pt


# --------------------------------------------------------------------------------------------
# require_significance


REQUIRE = Policy(alpha=0.01, thresholds=THRESHOLDS, require_significance=frozenset({"accuracy"}))


def test_require_significance_inconclusive_when_not_significant() -> None:
    base = outcomes(200, 180)
    result = paired_run(ACCURACY, base, flipped(base, 2, 0), policy=REQUIRE)  # -1 pt, p = 0.5
    c = only(result, "accuracy")
    assert c.absolute_change == pytest.approx(-0.01)
    assert c.p_value == pytest.approx(0.5)
    assert c.verdict is Verdict.INCONCLUSIVE
    assert not c.significant
    assert "beyond the tolerance but not significant (p=0.5, require_significance)" in c.note
    assert not c.fails
    assert result.exit_code is ExitCode.OK
    strict = Policy(
        alpha=0.01,
        thresholds=THRESHOLDS,
        require_significance=frozenset({"accuracy"}),
        fail_on_inconclusive=True,
    )
    assert paired_run(ACCURACY, base, flipped(base, 2, 0), policy=strict).exit_code == 1


def test_require_significance_regression_when_significant() -> None:
    result = paired_run(ACCURACY, BASE_1000, flipped(BASE_1000, 30, 5), policy=REQUIRE)
    c = only(result, "accuracy")
    assert c.verdict is Verdict.REGRESSION
    assert c.significant
    assert c.note == ""
    assert result.exit_code is ExitCode.REGRESSION


def test_require_significance_for_another_metric_does_not_apply() -> None:
    policy = Policy(alpha=0.01, thresholds=THRESHOLDS, require_significance=frozenset({"mae"}))
    base = outcomes(200, 180)
    c = only(paired_run(ACCURACY, base, flipped(base, 2, 0), policy=policy), "accuracy")
    assert c.verdict is Verdict.REGRESSION
    assert c.p_value == pytest.approx(0.5)


def test_require_significance_within_tolerance_stays_unchanged() -> None:
    c = only(paired_run(ACCURACY, BASE_1000, flipped(BASE_1000, 3, 0), policy=REQUIRE), "accuracy")
    assert c.verdict is Verdict.UNCHANGED
    assert c.note == ""


# --------------------------------------------------------------------------------------------
# a changed eval set: unpaired


def test_changed_eval_set_compares_unpaired() -> None:
    base_examples, current_examples = outcomes(1000, 900), outcomes(1200, 1020)
    baseline = record(
        quality(ACCURACY, base_examples), info={INT8: eval_info("aaaa", 1000)}, commit="b"
    )
    current = record(quality(ACCURACY, current_examples), info={INT8: eval_info("bbbb", 1200)})
    c = only(decide(baseline, current, POLICY), "accuracy")
    assert c.flips is None
    assert c.note == (
        "eval set changed (1000 -> 1200 examples, content hash differs): compared unpaired"
    )
    assert c.absolute_change == pytest.approx(-0.05)
    assert c.absolute_ci == pytest.approx(stats.newcombe_interval(900, 1000, 1020, 1200, 0.01))
    assert c.p_value == pytest.approx(stats.two_proportion_p(900, 1000, 1020, 1200))
    table = [[900, 100], [1020, 180]]
    assert c.p_value == pytest.approx(
        scipy_stats.chi2_contingency(table, correction=False).pvalue, rel=1e-6
    )
    assert c.n_baseline == 1000
    assert c.n_current == 1200
    assert c.verdict is Verdict.REGRESSION


def test_same_size_but_different_content_is_unpaired() -> None:
    base = outcomes(1000, 900)
    baseline = record(quality(ACCURACY, base), info={INT8: eval_info("aaaa", 1000)})
    current = record(quality(ACCURACY, flipped(base, 30, 5)), info={INT8: eval_info("cccc", 1000)})
    c = only(decide(baseline, current, POLICY), "accuracy")
    assert c.flips is None
    assert "eval set changed (1000 -> 1000 examples" in c.note
    assert c.absolute_ci == pytest.approx(stats.newcombe_interval(900, 1000, 875, 1000, 0.01))


def test_without_per_example_outcomes_the_counts_decide_unpaired() -> None:
    """Over 100,000 examples no outcomes are kept: same hash, but no pairs."""
    baseline = record(
        quality(ACCURACY, outcomes(1000, 900), keep=False), info={INT8: eval_info("h", 1000)}
    )
    current = record(
        quality(ACCURACY, outcomes(1000, 880), keep=False), info={INT8: eval_info("h", 1000)}
    )
    c = only(decide(baseline, current, POLICY), "accuracy")
    assert c.flips is None
    assert c.note == ""
    assert c.absolute_ci == pytest.approx(stats.newcombe_interval(900, 1000, 880, 1000, 0.01))
    assert c.verdict is Verdict.REGRESSION


def test_without_eval_info_only_the_change_decides() -> None:
    baseline = record(quality(ACCURACY, outcomes(100, 90)))
    current = record(quality(ACCURACY, outcomes(100, 80)))
    c = only(decide(baseline, current, POLICY), "accuracy")
    assert c.verdict is Verdict.REGRESSION
    assert c.flips is None
    assert c.absolute_ci is None
    assert math.isnan(c.p_value)
    assert math.isnan(c.ci_low)
    assert c.absolute_change == pytest.approx(-0.1)


def test_f1_macro_is_never_paired() -> None:
    baseline = record(
        Sample(benchmark=INT8, metric=F1, values=(0.90,), replication=Replication.EVALUATION),
        info={INT8: eval_info("h", 500)},
    )
    current = record(
        Sample(benchmark=INT8, metric=F1, values=(0.88,), replication=Replication.EVALUATION),
        info={INT8: eval_info("h", 500)},
    )
    c = only(decide(baseline, current, POLICY), "f1_macro")
    assert c.verdict is Verdict.REGRESSION
    assert c.absolute_change == pytest.approx(-0.02)
    assert c.flips is None
    assert c.absolute_ci is None
    assert math.isnan(c.p_value)


# --------------------------------------------------------------------------------------------
# per-example errors: mae, rmse


def errors(seed: int, n: int = 400) -> list[float]:
    rng = random.Random(seed)
    return [abs(rng.gauss(0.0, 1.0)) for _ in range(n)]


def test_paired_mae_regression() -> None:
    base = errors(1)
    rng = random.Random(2)
    current = [e * 1.10 + abs(rng.gauss(0.0, 0.01)) for e in base]
    c = only(paired_run(MAE, base, current), "mae")
    expected = stats.paired_mean_difference(
        [b - a for a, b in zip(base, current, strict=True)], 0.01
    )
    test = scipy_stats.ttest_rel(current, base)
    assert c.verdict is Verdict.REGRESSION
    assert c.flips is None
    assert c.absolute_change == pytest.approx(value_of(MAE, current) - value_of(MAE, base))
    assert c.relative_change == pytest.approx(c.absolute_change / value_of(MAE, base))
    assert c.absolute_ci == pytest.approx((expected.ci_low, expected.ci_high))
    assert c.p_value == pytest.approx(test.pvalue, rel=1e-5, abs=1e-300)
    assert c.relative_change > 0.10


def test_paired_mae_small_change_is_unchanged() -> None:
    base = errors(3)
    current = [e * 1.005 for e in base]  # +0.5% < 1%
    c = only(paired_run(MAE, base, current), "mae")
    assert c.verdict is Verdict.UNCHANGED
    assert c.relative_change == pytest.approx(0.005)


def test_paired_mae_improvement() -> None:
    base = errors(4)
    c = only(paired_run(MAE, base, [e * 0.8 for e in base]), "mae")
    assert c.verdict is Verdict.IMPROVEMENT
    assert c.relative_change == pytest.approx(-0.2)


def test_paired_rmse_maps_the_interval_from_squared_errors() -> None:
    base = [e * e for e in errors(5)]
    rng = random.Random(6)
    current = [s * 1.2 + rng.random() * 0.01 for s in base]
    c = only(paired_run(RMSE, base, current), "rmse")
    result = stats.paired_mean_difference([b - a for a, b in zip(base, current, strict=True)], 0.01)
    mse = stats.mean(base)
    assert c.verdict is Verdict.REGRESSION
    assert c.absolute_change == pytest.approx(math.sqrt(stats.mean(current)) - math.sqrt(mse))
    assert c.absolute_ci == pytest.approx(
        (
            math.sqrt(mse + result.ci_low) - math.sqrt(mse),
            math.sqrt(mse + result.ci_high) - math.sqrt(mse),
        )
    )
    assert c.absolute_ci is not None
    assert c.absolute_ci[0] < c.absolute_change < c.absolute_ci[1]
    assert c.p_value == pytest.approx(result.p_value)


def test_require_significance_on_mae() -> None:
    policy = Policy(alpha=0.01, thresholds=THRESHOLDS, require_significance=frozenset({"mae"}))
    base = [1.0] * 20
    # Mean up by 5%, but the per-example differences are noisy: not significant.
    current = [1.5, 0.6] * 10
    c = only(paired_run(MAE, base, current, policy=policy), "mae")
    assert c.relative_change == pytest.approx(0.05)
    assert c.p_value == pytest.approx(scipy_stats.ttest_rel(current, base).pvalue, rel=1e-6)
    assert c.p_value > 0.5
    assert c.verdict is Verdict.INCONCLUSIVE
    assert "not significant" in c.note
    strong = [1.06, 1.04] * 10
    c = only(paired_run(MAE, base, strong, policy=policy), "mae")
    assert c.p_value < 1e-6
    assert c.verdict is Verdict.REGRESSION


def test_changed_eval_set_mae_uses_welch() -> None:
    base, current = errors(9, 300), [e * 1.3 for e in errors(10, 350)]
    baseline = record(quality(MAE, base), info={INT8: eval_info("a", 300)})
    now = record(quality(MAE, current), info={INT8: eval_info("b", 350)})
    c = only(decide(baseline, now, POLICY), "mae")
    welch = stats.welch(base, current, 0.01)
    assert "eval set changed (300 -> 350 examples" in c.note
    assert c.absolute_ci == pytest.approx((welch.ci_low, welch.ci_high))
    assert c.p_value == pytest.approx(
        scipy_stats.ttest_ind(current, base, equal_var=False).pvalue, rel=1e-5
    )


# --------------------------------------------------------------------------------------------
# new and missing


def test_quality_metric_not_in_the_baseline_is_new() -> None:
    baseline = record(Sample(benchmark=INT8, metric=LATENCY, values=(0.01, 0.011)))
    current = record(
        Sample(benchmark=INT8, metric=LATENCY, values=(0.01, 0.011)),
        quality(ACCURACY, outcomes(1000, 900)),
        info={INT8: eval_info("h", 1000)},
    )
    result = decide(baseline, current, POLICY)
    c = only(result, "accuracy")
    assert c.verdict is Verdict.NEW
    assert c.current == pytest.approx(0.9)
    assert c.baseline is None
    assert c.n_current == 1000
    assert c.note == "not in the baseline"
    assert result.exit_code is ExitCode.OK


def test_quality_without_any_baseline_is_new() -> None:
    current = record(quality(ACCURACY, outcomes(10, 9)))
    result = decide(None, current, POLICY)
    c = only(result, "accuracy")
    assert c.verdict is Verdict.NEW
    assert c.note == ""
    assert c.n_current == 1
    assert not result.has_baseline


def test_quality_metric_dropped_from_the_run_is_missing() -> None:
    baseline = record(quality(ACCURACY, outcomes(10, 9)))
    result = decide(baseline, record(), POLICY)
    c = only(result, "accuracy")
    assert c.verdict is Verdict.MISSING
    assert c.note == "not measured"


def test_quality_comparisons_only_reads_quality_samples() -> None:
    current = record(
        Sample(benchmark=INT8, metric=LATENCY, values=(0.01, 0.011)),
        quality(ACCURACY, outcomes(10, 9)),
    )
    found = quality_comparisons(None, current, POLICY)
    assert [(c.metric.name, c.verdict) for c in found] == [("accuracy", Verdict.NEW)]
    assert quality_unit("accuracy") == "fraction"
    assert quality_unit("mae") == ""


# --------------------------------------------------------------------------------------------
# parity


def parity_info(ok: bool, **extra: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "ok": ok,
        "reason": "" if ok else "top-1 agreement 97.00% < 99%",
        "reference": FP32,
        "max_abs_diff": 0.31,
        "mean_abs_diff": 0.02,
        "top1_agreement": 0.97 if not ok else 0.995,
        "bounds": {"atol": None, "rtol": 0.0, "top1_agreement": 0.99},
    }
    info.update(extra)
    return info


def test_parity_failure_fails_the_run() -> None:
    current = record(info={INT8: {"parity": parity_info(False)}})
    result = decide(None, current, POLICY)
    (c,) = [c for c in result.comparisons if c.verdict is Verdict.PARITY_FAIL]
    assert c.benchmark == INT8
    assert c.metric == PARITY
    assert c.current == pytest.approx(0.97)
    assert c.note == "outputs differ from m[torch]: top-1 agreement 97.00% < 99%"
    assert c.fails
    assert result.failed
    assert result.exit_code is ExitCode.REGRESSION


def test_parity_failure_without_top1_reports_the_max_difference() -> None:
    info = parity_info(False, top1_agreement=None, reason="max |diff| 0.31 exceeds atol")
    (c,) = parity_failures(record(info={INT8: {"parity": info}}))
    assert c.current == pytest.approx(0.31)
    assert c.note.endswith("max |diff| 0.31 exceeds atol")


def test_parity_ok_passes() -> None:
    current = record(info={INT8: {"parity": parity_info(True)}, FP32: {}})
    result = decide(None, current, POLICY)
    assert parity_failures(current) == []
    assert result.count(Verdict.PARITY_FAIL) == 0
    assert result.exit_code is ExitCode.OK


def test_parity_failures_are_sorted_and_skip_non_dicts() -> None:
    current = record(
        info={
            "z[onnxruntime-int8]": {"parity": parity_info(False)},
            "a[torch-int8]": {"parity": parity_info(False)},
            "b[torch-int8]": {"parity": "broken"},
            "c[torch-int8]": {"parity": {"reason": "no ok key"}},
        }
    )
    assert [c.benchmark for c in parity_failures(current)] == [
        "a[torch-int8]",
        "z[onnxruntime-int8]",
    ]


# --------------------------------------------------------------------------------------------
# trade-off rules


LATENCY_BASE = (0.0100, 0.0101, 0.0099, 0.0102, 0.0098, 0.0100, 0.0101, 0.0099)


def latency(factor: float, benchmark: str = INT8) -> Sample:
    return Sample(
        benchmark=benchmark, metric=LATENCY, values=tuple(v * factor for v in LATENCY_BASE)
    )


def tradeoff_run(
    latency_factor: float | None, to_wrong: int, rules: tuple[TradeOff, ...] = (RULE,)
) -> GateResult:
    policy = Policy(alpha=0.01, thresholds=THRESHOLDS, tradeoffs=rules)
    current = flipped(BASE_1000, to_wrong, 0)
    return paired_run(
        ACCURACY,
        BASE_1000,
        current,
        policy=policy,
        extra_base=[latency(1.0)],
        extra_current=[latency(latency_factor)] if latency_factor is not None else [],
    )


def test_tradeoff_accepted_when_latency_clearly_drops() -> None:
    result = tradeoff_run(0.70, 8)  # -0.8 pt, allowed up to 1 pt, latency -30%
    speed = only(result, "latency")
    assert speed.verdict is Verdict.IMPROVEMENT
    assert speed.significant
    assert speed.relative_change == pytest.approx(-0.30, abs=1e-9)
    assert speed.ci_high <= -0.15
    c = only(result, "accuracy")
    assert c.verdict is Verdict.ACCEPTED_TRADE_OFF
    assert c.rule == RULE.text
    assert c.note == f"accepted by trade-off rule '{RULE.text}'"
    assert c.flips == (8, 0)
    assert not c.fails
    assert result.count(Verdict.ACCEPTED_TRADE_OFF) == 1
    assert result.exit_code is ExitCode.OK


def test_tradeoff_accepted_with_paired_latency_rounds() -> None:
    rng = random.Random(11)
    base_rounds = tuple(0.010 * (1 + rng.gauss(0.0, 0.01)) for _ in range(12))
    head_rounds = tuple(b * 0.7 * (1 + rng.gauss(0.0, 0.01)) for b in base_rounds)
    policy = Policy(alpha=0.01, thresholds=THRESHOLDS, tradeoffs=(RULE,))
    info = {INT8: eval_info("h1", 1000)}
    result = decide(
        record(quality(ACCURACY, BASE_1000), info=info),
        record(
            quality(ACCURACY, flipped(BASE_1000, 8, 0)),
            Sample(benchmark=INT8, metric=LATENCY, values=head_rounds),
            info=info,
        ),
        policy,
        paired=PairedBaseline(
            samples=(Sample(benchmark=INT8, metric=LATENCY, values=base_rounds),),
            modes={INT8: "ab"},
        ),
    )
    speed = only(result, "latency")
    assert speed.mode == "ab"
    assert speed.significant
    assert speed.ci_high < -0.15
    assert only(result, "accuracy").verdict is Verdict.ACCEPTED_TRADE_OFF
    assert result.exit_code is ExitCode.OK


def test_tradeoff_not_met_when_latency_gain_is_too_small() -> None:
    result = tradeoff_run(0.90, 8)  # latency only -10%
    assert only(result, "latency").verdict is Verdict.IMPROVEMENT
    c = only(result, "accuracy")
    assert c.verdict is Verdict.REGRESSION
    assert c.rule == ""
    assert c.note.startswith(f"rule '{RULE.text}' not met: needs latency -15% with confidence")
    assert "measured latency -10.0% [" in c.note
    assert result.exit_code is ExitCode.REGRESSION


def test_tradeoff_not_met_when_latency_was_not_measured() -> None:
    policy = Policy(alpha=0.01, thresholds=THRESHOLDS, tradeoffs=(RULE,))
    result = paired_run(ACCURACY, BASE_1000, flipped(BASE_1000, 8, 0), policy=policy)
    c = only(result, "accuracy")
    assert c.verdict is Verdict.REGRESSION
    assert c.note == f"rule '{RULE.text}' not met: latency was not measured"


def test_tradeoff_note_when_latency_went_missing() -> None:
    result = tradeoff_run(None, 8)
    assert only(result, "latency").verdict is Verdict.MISSING
    c = only(result, "accuracy")
    assert c.verdict is Verdict.REGRESSION
    assert "nan" not in c.note
    assert c.note == f"rule '{RULE.text}' not met: latency was not measured"


def test_tradeoff_not_met_when_the_latency_change_is_not_significant() -> None:
    noisy = TradeOff(allow={"accuracy": 0.01}, when={"latency": -0.15}, text="noisy rule")
    c = Comparison(
        benchmark=INT8,
        metric=LATENCY,
        verdict=Verdict.INCONCLUSIVE,
        relative_change=-0.3,
        ci_low=-0.5,
        ci_high=-0.2,
        significant=False,
    )
    drop = Comparison(
        benchmark=INT8, metric=ACCURACY, verdict=Verdict.REGRESSION, absolute_change=-0.008
    )
    _, judged = apply_tradeoffs([c, drop], (noisy,))
    assert judged.verdict is Verdict.REGRESSION
    assert "rule 'noisy rule' not met: needs latency -15% with confidence" in judged.note


def test_tradeoff_not_met_when_the_drop_exceeds_the_allowance() -> None:
    result = tradeoff_run(0.70, 20)  # -2 pt > 1 pt
    c = only(result, "accuracy")
    assert c.verdict is Verdict.REGRESSION
    assert c.note == f"rule '{RULE.text}': the drop is beyond what it allows"
    assert result.exit_code is ExitCode.REGRESSION


def test_the_first_rule_that_holds_is_applied() -> None:
    strict = TradeOff(allow={"accuracy": 0.002}, when={"latency": -0.15}, text="strict")
    other = TradeOff(allow={"mae": 1.0}, when={"latency": -0.15}, text="for mae only")
    loose = TradeOff(allow={"accuracy": 0.02}, when={"latency": -0.25}, text="loose")
    result = tradeoff_run(0.70, 8, rules=(strict, other, loose))
    c = only(result, "accuracy")
    assert c.verdict is Verdict.ACCEPTED_TRADE_OFF
    assert c.rule == "loose"
    assert c.note == "accepted by trade-off rule 'loose'"


def test_rules_never_touch_other_verdicts() -> None:
    result = tradeoff_run(0.70, 3)  # -0.3 pt: unchanged
    c = only(result, "accuracy")
    assert c.verdict is Verdict.UNCHANGED
    assert c.rule == ""
    assert c.note == ""
    assert only(result, "latency").verdict is Verdict.IMPROVEMENT


def test_tradeoff_conditions_on_another_benchmark_do_not_count() -> None:
    policy = Policy(alpha=0.01, thresholds=THRESHOLDS, tradeoffs=(RULE,))
    result = paired_run(
        ACCURACY,
        BASE_1000,
        flipped(BASE_1000, 8, 0),
        policy=policy,
        extra_base=[latency(1.0, FP32)],
        extra_current=[latency(0.7, FP32)],
    )
    c = only(result, "accuracy")
    assert c.verdict is Verdict.REGRESSION
    assert "latency was not measured" in c.note


def test_tradeoff_on_a_lower_is_better_metric() -> None:
    rule = TradeOff(allow={"mae": 0.5}, when={"latency": -0.15}, text="mae rule")
    policy = Policy(alpha=0.01, thresholds=THRESHOLDS, tradeoffs=(rule,))
    base = errors(12)
    result = paired_run(
        MAE,
        base,
        [e + 0.2 for e in base],
        policy=policy,
        extra_base=[latency(1.0)],
        extra_current=[latency(0.7)],
    )
    c = only(result, "mae")
    assert c.absolute_change == pytest.approx(0.2)
    assert c.verdict is Verdict.ACCEPTED_TRADE_OFF
    assert c.rule == "mae rule"


# --------------------------------------------------------------------------------------------
# variant summaries


def variants_record() -> RunRecord:
    return record(
        quality(ACCURACY, outcomes(1000, 975), FP32),
        quality(ACCURACY, outcomes(1000, 960), INT8),
        Sample(benchmark=FP32, metric=LATENCY, values=(0.004, 0.002, 0.003)),
        Sample(benchmark=INT8, metric=LATENCY, values=(0.001, 0.0012, 0.0011)),
        Sample(benchmark=FP32, metric=MEMORY, values=(2e8, 3e8, 1e8)),
        Sample(benchmark="other[torch]", metric=LATENCY, values=(0.5, 0.6)),
        info={
            FP32: eval_info("h", 1000),
            INT8: {**eval_info("h", 1000), "parity": parity_info(False)},
            "p[onnxruntime]": {"parity": parity_info(True)},
        },
    )


def test_variant_summaries() -> None:
    summaries = variant_summaries(variants_record())
    assert [s.benchmark for s in summaries] == [INT8, FP32, "p[onnxruntime]"]
    int8, fp32, onnx = summaries
    assert int8 == VariantSummary(
        benchmark=INT8,
        model="m",
        variant="torch-int8",
        quality={"accuracy": pytest.approx(0.96)},
        latency=pytest.approx(0.0011),
        memory=None,
        parity=parity_info(False),
    )
    assert fp32.variant == "torch"
    assert fp32.quality == {"accuracy": pytest.approx(0.975)}
    assert fp32.latency == pytest.approx(0.003)
    assert fp32.memory == pytest.approx(2e8)
    assert fp32.parity is None
    assert onnx.model == "p"
    assert onnx.variant == "onnxruntime"
    assert onnx.quality == {}
    assert onnx.latency is None
    assert onnx.parity is not None
    assert onnx.parity["ok"] is True


def test_variant_memory_is_the_models_own_when_recorded() -> None:
    """memory.inference (counted from after the imports) tells variants apart; the process's
    peak, mostly imports, is the fallback for records that lack it."""
    record = variants_record()
    own = Sample(
        benchmark=FP32,
        metric=Metric("memory.inference", "B", Direction.LOWER),
        values=(3e6, 3.2e6, 3.1e6),
    )
    record = replace(record, samples=(*record.samples, own))
    fp32 = next(s for s in variant_summaries(record) if s.benchmark == FP32)
    assert fp32.memory == pytest.approx(3.1e6)


def test_parity_only_models_list_the_reference_variant() -> None:
    current = record(
        Sample(benchmark=FP32, metric=LATENCY, values=(0.004, 0.003)),
        Sample(benchmark="m[onnxruntime]", metric=LATENCY, values=(0.002, 0.003)),
        info={FP32: {}, "m[onnxruntime]": {"parity": parity_info(True)}},
    )
    names = [s.benchmark for s in variant_summaries(current)]
    assert names == ["m[onnxruntime]", FP32]


def test_no_variants_without_evaluation() -> None:
    current = record(Sample(benchmark=FP32, metric=LATENCY, values=(0.01, 0.011)))
    assert variant_summaries(current) == ()
    assert decide(None, current, POLICY).variants == ()


def test_decide_carries_the_variant_summaries() -> None:
    result = decide(None, variants_record(), POLICY)
    assert result.variants == variant_summaries(variants_record())
    assert result.exit_code is ExitCode.REGRESSION  # the int8 parity failure


# --------------------------------------------------------------------------------------------
# reports


def reported() -> GateResult:
    policy = Policy(alpha=0.01, thresholds=THRESHOLDS, tradeoffs=(RULE,))
    info = {FP32: eval_info("h", 1000), INT8: eval_info("h", 1000)}
    base = record(
        quality(ACCURACY, BASE_1000, FP32),
        quality(ACCURACY, BASE_1000, INT8),
        latency(1.0),
        info=info,
        commit="base",
    )
    current = record(
        quality(ACCURACY, flipped(BASE_1000, 30, 5), FP32),
        quality(ACCURACY, flipped(BASE_1000, 8, 0), INT8),
        latency(0.7),
        info={FP32: info[FP32], INT8: {**info[INT8], "parity": parity_info(True)}},
        commit="head",
    )
    return decide(base, current, policy)


def test_json_report_quality_keys() -> None:
    data = result_to_dict(reported())
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data
    assert data["exit_code"] == 1
    assert data["counts"]["accepted-trade-off"] == 1
    assert data["counts"]["regression"] == 1
    by_key = {(c["benchmark"], c["metric"]): c for c in data["comparisons"]}
    regression = by_key[(FP32, "accuracy")]
    assert regression["verdict"] == "regression"
    assert regression["unit"] == "fraction"
    assert regression["absolute_change"] == pytest.approx(-0.025)
    assert regression["absolute_ci"] == pytest.approx(
        list(stats.paired_proportion_interval(30, 5, 1000, 0.01))
    )
    assert regression["flips"] == {"to_wrong": 30, "to_right": 5}
    assert regression["rule"] is None
    assert regression["threshold"] == "0.005"
    assert regression["fails"] is True
    accepted = by_key[(INT8, "accuracy")]
    assert accepted["verdict"] == "accepted-trade-off"
    assert accepted["rule"] == RULE.text
    assert accepted["fails"] is False
    assert accepted["flips"] == {"to_wrong": 8, "to_right": 0}
    speed = by_key[(INT8, "latency")]
    assert speed["absolute_change"] is None
    assert speed["absolute_ci"] is None
    assert speed["flips"] is None
    assert speed["rule"] is None


def test_json_report_variants() -> None:
    data = result_to_dict(reported())
    variants = {v["benchmark"]: v for v in data["variants"]}
    assert set(variants) == {FP32, INT8}
    int8 = variants[INT8]
    assert set(int8) == {
        "benchmark",
        "model",
        "variant",
        "reference",
        "quality",
        "latency",
        "memory",
        "parity",
    }
    assert int8["model"] == "m"
    assert int8["variant"] == "torch-int8"
    assert int8["reference"] == FP32
    assert int8["quality"] == {"accuracy": pytest.approx(0.892)}
    assert int8["latency"] == pytest.approx(0.007)
    assert int8["memory"] is None
    assert int8["parity"] == {
        "max_abs_diff": 0.31,
        "mean_abs_diff": 0.02,
        "top1_agreement": 0.995,
        "near_ties": None,
        "verdict": "ok",
        "bounds": "top-1 agreement >= 99%",
        "reason": None,
    }
    assert variants[FP32]["parity"] is None
    assert variants[FP32]["reference"] is None


def test_json_report_parity_failure_with_atol_bounds() -> None:
    bounds = {"atol": 1e-4, "rtol": 1e-3, "top1_agreement": None}
    current = record(info={INT8: {"parity": parity_info(False, bounds=bounds)}})
    data = result_to_dict(decide(None, current, POLICY))
    (variant,) = [v for v in data["variants"] if v["benchmark"] == INT8]
    assert variant["parity"]["verdict"] == "parity-fail"
    assert variant["parity"]["bounds"] == "atol 0.0001, rtol 0.001"
    assert variant["parity"]["reason"] == "top-1 agreement 97.00% < 99%"
    (failure,) = [c for c in data["comparisons"] if c["verdict"] == "parity-fail"]
    assert failure["metric"] == "parity"
    assert failure["fails"] is True
    assert data["exit_code"] == 1


def test_terminal_shows_points_and_flips() -> None:
    result = reported()
    table = render_table(result)
    regression = only(result, "accuracy", FP32)
    low, high = regression.absolute_ci or (0.0, 0.0)
    expected = (
        f"-2.50 pt [{low * 100:+.2f} pt, {high * 100:+.2f} pt] (30 flipped to wrong, 5 to right)"
    )
    assert change_text(report_row(comparison_to_dict(regression))) == expected
    assert expected in table
    assert "(8 flipped to wrong, 0 to right)" in table
    assert "90.00%" in table
    assert "87.50%" in table
    assert f"accepted-trade-off: accepted by trade-off rule '{RULE.text}'" in table
    assert table.splitlines()[0].startswith("perf-gate: FAILED: 1 regression")


def test_terminal_mae_change_in_its_own_units() -> None:
    c = Comparison(
        benchmark=INT8,
        metric=MAE,
        verdict=Verdict.REGRESSION,
        absolute_change=0.0123,
        absolute_ci=(0.01, 0.015),
    )
    assert change_text(report_row(comparison_to_dict(c))) == "+0.0123 [+0.01, +0.015]"


def test_terminal_variant_table() -> None:
    result = decide(None, variants_record(), POLICY)
    lines = variant_table(result)
    assert lines[0].startswith("What each variant costs")
    header = lines[1].split()
    # the Markdown report's columns (one report model), parity verdict and figures in one
    assert header == ["variant", "reference", "accuracy", "latency", "memory", "parity"]
    rows = {line.split()[0]: line for line in lines[3:]}
    assert set(rows) == {INT8, FP32, "p[onnxruntime]"}
    assert "96.00% (-1.50 pt)" in rows[INT8]
    assert "1.1 ms" in rows[INT8]
    assert "FAIL: max abs diff 0.31" in rows[INT8]
    assert "top-1 agreement 97.00%" in rows[INT8]
    assert "97.50%" in rows[FP32]
    assert "3 ms" in rows[FP32]
    assert "200 MB" in rows[FP32]
    assert rows[FP32].split()[1] == "–"  # the reference itself
    assert rows[INT8].split()[1] == FP32
    assert "ok: max abs diff 0.31" in rows["p[onnxruntime]"]
    table = render_table(result)
    assert "\n".join(lines) in table
    assert "parity-fail: outputs differ from m[torch]" in table
