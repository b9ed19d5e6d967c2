"""gate.decide.compare.decide on synthetic run records: verdicts, budgets, errors,
environment."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import pytest

from gate.core import stats
from gate.core.types import (
    BenchmarkError,
    Budget,
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
    Verdict,
)
from gate.decide.compare import REPORT_ORDER, decide
from gate.decide.limits import check_budgets, matches

LATENCY = Metric("latency", "s", Direction.LOWER)
THROUGHPUT = Metric("throughput", "items/s", Direction.HIGHER)
MEMORY = Metric("memory.peak", "B", Direction.LOWER)

POLICY = Policy(
    alpha=0.01,
    thresholds={
        "latency": Threshold(value=0.05),
        "throughput": Threshold(value=0.05),
        "memory": Threshold(value=0.10),
        "default": Threshold(value=0.05),
    },
)


def lognormal(rng: random.Random, centre: float, sigma: float, n: int) -> tuple[float, ...]:
    return tuple(centre * math.exp(rng.gauss(0.0, sigma)) for _ in range(n))


def sample(
    benchmark: str,
    values: Sequence[float],
    metric: Metric = LATENCY,
    **extra: object,
) -> Sample:
    return Sample(benchmark=benchmark, metric=metric, values=tuple(values), **extra)  # type: ignore[arg-type]


def record(
    *samples: Sample,
    environment: dict[str, object] | None = None,
    errors: Sequence[BenchmarkError] = (),
    commit: str | None = None,
) -> RunRecord:
    return RunRecord(
        samples=samples,
        environment=environment or {},
        errors=tuple(errors),
        git=GitInfo(commit=commit),
    )


def only(result: GateResult, benchmark: str, metric: str = "latency") -> Comparison:
    found = [c for c in result.comparisons if c.benchmark == benchmark and c.metric.name == metric]
    assert len(found) == 1, found
    return found[0]


def shifted_pair(
    seed: int, factor: float, *, sigma: float = 0.02, n: int = 8, centre: float = 0.010
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    rng = random.Random(seed)
    return lognormal(rng, centre, sigma, n), lognormal(rng, centre * factor, sigma, n)


# --------------------------------------------------------------------------------------------
# verdicts


@pytest.mark.parametrize("seed", range(10))
def test_known_latency_shift_is_a_regression(seed: int) -> None:
    base, current = shifted_pair(seed, 1.30)
    result = decide(record(sample("m[torch]", base)), record(sample("m[torch]", current)), POLICY)

    c = only(result, "m[torch]")
    assert c.verdict is Verdict.REGRESSION
    assert c.significant
    assert c.p_value < 0.01
    assert c.fails
    assert not c.advisory
    assert c.ci_low < c.relative_change < c.ci_high
    assert c.ci_low > 0.05
    assert 0.2 < c.relative_change < 0.4
    assert c.ci_low < 0.30 < c.ci_high
    assert c.n_baseline == c.n_current == 8
    assert c.baseline == pytest.approx(math.exp(stats.mean([math.log(v) for v in base])))
    assert c.current / c.baseline - 1 == pytest.approx(c.relative_change)
    assert c.threshold == Threshold(value=0.05)
    assert result.failed
    assert result.exit_code is ExitCode.REGRESSION
    assert result.count(Verdict.REGRESSION) == 1


def test_latency_drop_is_an_improvement() -> None:
    base, current = shifted_pair(1, 0.70)
    result = decide(record(sample("m", base)), record(sample("m", current)), POLICY)
    c = only(result, "m")
    assert c.verdict is Verdict.IMPROVEMENT
    assert c.relative_change == pytest.approx(-0.30, abs=0.05)
    assert not c.fails
    assert result.exit_code is ExitCode.OK


def test_identical_distributions_rarely_alarm() -> None:
    """200 independent 5-vs-5 comparisons of the same distribution, each decided on its own."""
    strict = Policy(alpha=0.01, thresholds={"default": Threshold(value=0.0)})
    alarms_strict = 0
    alarms_default = 0
    for seed in range(200):
        rng = random.Random(1000 + seed)
        base = record(sample("m", lognormal(rng, 0.010, 0.02, 5)))
        current = record(sample("m", lognormal(rng, 0.010, 0.02, 5)))
        alarms_strict += decide(base, current, strict).exit_code != ExitCode.OK
        alarms_default += decide(base, current, POLICY).exit_code != ExitCode.OK
    # With a zero threshold only the test guards: expected rate alpha / 2 = 0.5% (one tail).
    assert alarms_strict <= 6
    # With the 5% threshold a 2%-noise distribution should essentially never fail.
    assert alarms_default <= 2


def test_identical_distribution_verdict_is_unchanged() -> None:
    rng = random.Random(5)
    base = lognormal(rng, 0.010, 0.005, 8)
    current = lognormal(rng, 0.010, 0.005, 8)
    c = only(decide(record(sample("m", base)), record(sample("m", current)), POLICY), "m")
    assert c.verdict is Verdict.UNCHANGED
    assert not c.significant
    assert -0.05 < c.ci_low < c.ci_high < 0.05


def test_throughput_drop_is_a_regression() -> None:
    base, current = shifted_pair(2, 0.75, centre=5000.0)
    result = decide(
        record(sample("m[torch]", base, THROUGHPUT)),
        record(sample("m[torch]", current, THROUGHPUT)),
        POLICY,
    )
    c = only(result, "m[torch]", "throughput")
    assert c.verdict is Verdict.REGRESSION
    assert c.relative_change < -0.05
    assert result.exit_code is ExitCode.REGRESSION


def test_throughput_rise_is_an_improvement() -> None:
    base, current = shifted_pair(3, 1.30, centre=5000.0)
    result = decide(
        record(sample("m[torch]", base, THROUGHPUT)),
        record(sample("m[torch]", current, THROUGHPUT)),
        POLICY,
    )
    c = only(result, "m[torch]", "throughput")
    assert c.verdict is Verdict.IMPROVEMENT
    assert c.relative_change > 0.05
    assert result.exit_code is ExitCode.OK


def test_significant_change_below_threshold_is_unchanged() -> None:
    base, current = shifted_pair(4, 1.02, sigma=0.001)
    c = only(decide(record(sample("m", base)), record(sample("m", current)), POLICY), "m")
    assert c.significant
    assert c.p_value < 1e-6
    assert c.relative_change == pytest.approx(0.02, abs=0.003)
    assert c.verdict is Verdict.UNCHANGED


def test_wide_interval_without_significance_is_inconclusive() -> None:
    base = [1.0, 1.3, 0.8, 1.1, 0.9]
    current = [1.05, 1.25, 0.85, 1.15, 0.95]
    result = decide(record(sample("m", base)), record(sample("m", current)), POLICY)
    c = only(result, "m")
    assert not c.significant
    assert c.p_value > 0.5
    assert c.ci_low < -0.05 or c.ci_high > 0.05
    assert c.verdict is Verdict.INCONCLUSIVE
    assert not c.fails
    assert result.exit_code is ExitCode.OK


def test_fewer_than_two_rounds_is_inconclusive() -> None:
    result = decide(record(sample("m", [1.0])), record(sample("m", [2.0, 2.1])), POLICY)
    c = only(result, "m")
    assert c.verdict is Verdict.INCONCLUSIVE
    assert "fewer than two rounds" in c.note
    assert math.isnan(c.p_value)
    assert result.exit_code is ExitCode.OK


def test_absolute_threshold() -> None:
    policy = Policy(alpha=0.01, thresholds={"latency": Threshold(value=0.002, relative=False)})
    # +10% of 10 ms = 1 ms < 2 ms: significant but not material
    base, current = shifted_pair(6, 1.10, sigma=0.005)
    c = only(decide(record(sample("m", base)), record(sample("m", current)), policy), "m")
    assert c.significant
    assert c.verdict is Verdict.UNCHANGED
    # +30% of 10 ms = 3 ms > 2 ms
    base, current = shifted_pair(6, 1.30, sigma=0.005)
    c = only(decide(record(sample("m", base)), record(sample("m", current)), policy), "m")
    assert c.verdict is Verdict.REGRESSION


def test_per_benchmark_override_threshold() -> None:
    policy = Policy(
        alpha=0.01,
        thresholds={"latency": Threshold(value=0.05)},
        overrides={"loose": Threshold(value=0.50)},
    )
    base, current = shifted_pair(7, 1.30)
    result = decide(
        record(sample("loose", base), sample("tight", base)),
        record(sample("loose", current), sample("tight", current)),
        policy,
    )
    assert only(result, "loose").verdict is Verdict.UNCHANGED
    assert only(result, "loose").threshold == Threshold(value=0.50)
    assert only(result, "tight").verdict is Verdict.REGRESSION


def test_zero_variance_on_both_sides() -> None:
    same = decide(record(sample("m", [2.0, 2.0, 2.0])), record(sample("m", [2.0, 2.0])), POLICY)
    assert only(same, "m").verdict is Verdict.UNCHANGED
    assert only(same, "m").p_value == 1.0
    worse = decide(record(sample("m", [2.0, 2.0, 2.0])), record(sample("m", [3.0, 3.0])), POLICY)
    c = only(worse, "m")
    assert c.p_value == 0.0
    assert c.relative_change == pytest.approx(0.5)
    assert c.verdict is Verdict.REGRESSION


def test_non_positive_values_use_the_raw_scale() -> None:
    metric = Metric("score_delta", "", Direction.HIGHER)
    base = [-0.5, -0.48, -0.52, -0.49, -0.51]
    current = [-1.0, -0.98, -1.02, -0.99, -1.01]
    c = only(
        decide(record(sample("m", base, metric)), record(sample("m", current, metric)), POLICY),
        "m",
        "score_delta",
    )
    # relative to |mean(base)| = 0.5: -0.5 is a change of -100%
    assert c.relative_change == pytest.approx(-1.0)
    assert c.verdict is Verdict.REGRESSION


def test_a_baseline_averaging_zero_has_no_relative_change() -> None:
    metric = Metric("score_delta", "", Direction.HIGHER)
    base = [0.0, 0.02, -0.02, 0.01, -0.01]
    current = [-1.0, -0.98, -1.02, -0.99, -1.01]
    c = only(
        decide(record(sample("m", base, metric)), record(sample("m", current, metric)), POLICY),
        "m",
        "score_delta",
    )
    # no invented scale: the old fallback of 1 called this -100% (and a zero latency +0.0%)
    assert c.verdict is Verdict.INCONCLUSIVE
    assert math.isnan(c.relative_change)
    assert "the baseline averages 0, so a relative change is undefined (now -1)" in c.note


# --------------------------------------------------------------------------------------------
# new, missing, no baseline


def test_no_baseline_everything_is_new() -> None:
    current = record(
        sample("a[torch]", [1.0, 1.1, 0.9]),
        sample("a[torch]", [100.0, 110.0], THROUGHPUT),
        sample("b[onnxruntime]", [2.0, 2.2]),
        commit="abc123",
    )
    result = decide(None, current, POLICY)
    assert {c.verdict for c in result.comparisons} == {Verdict.NEW}
    assert len(result.comparisons) == 3
    assert not result.has_baseline
    assert result.exit_code is ExitCode.OK
    assert result.environment_differences == {}
    assert result.baseline_commit is None
    assert result.current_commit == "abc123"
    assert only(result, "a[torch]").current == 1.0
    assert only(result, "a[torch]", "throughput").current == 105.0
    assert only(result, "b[onnxruntime]").n_current == 2


def test_missing_and_new_benchmarks() -> None:
    base = record(sample("gone", [1.0, 1.1, 0.9]), sample("kept", [1.0, 1.01, 0.99]))
    current = record(sample("kept", [1.0, 1.01, 0.99]), sample("added", [3.0, 3.3]))
    result = decide(base, current, POLICY)
    missing = only(result, "gone")
    assert missing.verdict is Verdict.MISSING
    assert missing.baseline == 1.0
    assert missing.current is None
    assert missing.n_baseline == 3
    new = only(result, "added")
    assert new.verdict is Verdict.NEW
    assert new.note == "not in the baseline"
    assert new.current == pytest.approx(3.15)
    assert only(result, "kept").verdict is Verdict.UNCHANGED
    assert result.exit_code is ExitCode.OK
    assert result.count(Verdict.MISSING) == result.count(Verdict.NEW) == 1


def test_new_metric_of_known_benchmark_is_new() -> None:
    base = record(sample("m", [1.0, 1.1]))
    current = record(sample("m", [1.0, 1.1]), sample("m", [5.0, 5.1], THROUGHPUT))
    result = decide(base, current, POLICY)
    assert only(result, "m", "throughput").verdict is Verdict.NEW


# --------------------------------------------------------------------------------------------
# advisory in-process samples


@pytest.mark.parametrize("side", ["baseline", "current", "both"])
def test_in_process_samples_are_advisory_and_never_fail(side: str) -> None:
    base_values, current_values = shifted_pair(8, 1.40)
    base_rep = Replication.IN_PROCESS if side in ("baseline", "both") else Replication.PROCESS
    current_rep = Replication.IN_PROCESS if side in ("current", "both") else Replication.PROCESS
    result = decide(
        record(sample("test_x", base_values, replication=base_rep)),
        record(sample("test_x", current_values, replication=current_rep)),
        POLICY,
    )
    c = only(result, "test_x")
    assert c.verdict is Verdict.REGRESSION
    assert c.advisory
    assert "advisory" in c.note
    assert not c.fails
    assert not result.failed
    assert result.exit_code is ExitCode.OK


# --------------------------------------------------------------------------------------------
# Holm across comparisons


def test_holm_makes_a_borderline_p_value_not_significant() -> None:
    base = [1.0, 1.08, 0.93, 1.04, 0.96]
    current = [v * 1.17 for v in reversed(base)]
    alone = decide(record(sample("hot", base)), record(sample("hot", current)), POLICY)
    hot = only(alone, "hot")
    others = [f"other{i:02d}" for i in range(19)]
    # precondition: p is between alpha / 20 and alpha
    assert POLICY.alpha / 20 < hot.p_value < POLICY.alpha
    assert hot.significant
    assert hot.verdict is Verdict.REGRESSION
    assert alone.exit_code is ExitCode.REGRESSION

    quiet = [1.0, 1.001, 0.999, 1.0005, 0.9995]  # the same on both sides: p = 1
    crowd = decide(
        record(sample("hot", base), *(sample(name, quiet) for name in others)),
        record(sample("hot", current), *(sample(name, quiet) for name in others)),
        POLICY,
    )
    hot_in_crowd = only(crowd, "hot")
    assert hot_in_crowd.p_value == pytest.approx(hot.p_value)
    assert not hot_in_crowd.significant
    assert hot_in_crowd.verdict is Verdict.INCONCLUSIVE
    assert all(only(crowd, name).verdict is Verdict.UNCHANGED for name in others)
    assert crowd.exit_code is ExitCode.OK


def test_holm_keeps_a_strong_regression_among_many() -> None:
    base, current = shifted_pair(9, 1.30)
    others = [f"other{i:02d}" for i in range(30)]
    result = decide(
        record(sample("hot", base), *(sample(n, base) for n in others)),
        record(sample("hot", current), *(sample(n, base) for n in others)),
        POLICY,
    )
    assert only(result, "hot").verdict is Verdict.REGRESSION
    assert result.exit_code is ExitCode.REGRESSION


# --------------------------------------------------------------------------------------------
# budgets


CALLS_FAST = tuple([0.001] * 95 + [0.0012] * 5)  # p99 ~ 1.2 ms
CALLS_SLOW_TAIL = tuple([0.001] * 90 + [0.005] * 10)  # p99 = 5 ms


def budget_record() -> RunRecord:
    return record(
        sample("m[torch]", [0.001, 0.0011], calls=CALLS_SLOW_TAIL),
        sample("m[onnxruntime]", [0.001, 0.0011], calls=CALLS_SLOW_TAIL),
        sample("mo", [0.001, 0.0011], calls=CALLS_SLOW_TAIL),
        sample("other[torch]", [0.001, 0.0011], calls=CALLS_FAST),
        sample("m[torch]", [800.0, 820.0], THROUGHPUT),
    )


def over_budget(result: GateResult) -> list[tuple[str, str]]:
    return sorted(
        (c.benchmark, c.metric.name) for c in result.comparisons if c.verdict is Verdict.OVER_BUDGET
    )


def test_budget_p99_over_limit_fails() -> None:
    policy = Policy(
        budgets=(Budget(pattern="m[onnxruntime]", metric="latency.p99", limit_text="2ms"),)
    )
    current = budget_record()
    result = decide(current, current, policy)
    # brackets are literal: "m[onnxruntime]" does not match "mo" or "m[torch]"
    assert over_budget(result) == [("m[onnxruntime]", "latency.p99")]
    c = next(c for c in result.comparisons if c.verdict is Verdict.OVER_BUDGET)
    assert c.current == pytest.approx(stats.quantile(CALLS_SLOW_TAIL, 0.99))
    assert c.current == pytest.approx(0.005)
    assert c.note == "budget 2ms"
    assert c.metric.unit == "s"
    assert c.fails
    assert result.exit_code is ExitCode.REGRESSION
    assert result.warnings == ()


def test_budget_applies_without_baseline() -> None:
    policy = Policy(budgets=(Budget(pattern="m[torch]", metric="latency.p99", limit_text="2ms"),))
    result = decide(None, budget_record(), policy)
    assert over_budget(result) == [("m[torch]", "latency.p99")]
    assert result.exit_code is ExitCode.REGRESSION


def test_budget_glob_matches_every_benchmark_of_the_model() -> None:
    policy = Policy(
        budgets=(
            Budget(pattern="m[*", metric="latency.p99", limit_text="2ms"),
            Budget(pattern="m*", metric="latency.p99", limit_text="2ms"),
        )
    )
    over = over_budget(decide(None, budget_record(), policy))
    assert over == sorted(
        [("m[onnxruntime]", "latency.p99"), ("m[torch]", "latency.p99")] * 2
        + [("mo", "latency.p99")]
    )


def test_budget_under_limit_passes() -> None:
    policy = Policy(budgets=(Budget(pattern="other*", metric="latency.p99", limit_text="2ms"),))
    result = decide(None, budget_record(), policy)
    assert over_budget(result) == []
    assert result.warnings == ()
    assert result.exit_code is ExitCode.OK


@pytest.mark.parametrize(
    ("metric", "limit", "over"),
    [
        ("latency.median", "0.9ms", True),
        ("latency.median", "1.1ms", False),
        ("latency.mean", "1.3ms", True),  # mean of the calls is 1.4 ms
        ("latency.mean", "1.5ms", False),
        ("latency.p90", "0.99ms", True),
        ("latency", "1ms", True),  # plain metric: the median of the per-process values, 1.05 ms
        ("latency", "1.1ms", False),
    ],
)
def test_budget_statistics(metric: str, limit: str, over: bool) -> None:
    policy = Policy(budgets=(Budget(pattern="m[torch]", metric=metric, limit_text=limit),))
    result = decide(None, budget_record(), policy)
    assert over_budget(result) == ([("m[torch]", metric)] if over else [])
    assert result.warnings == ()


def test_throughput_budget_is_a_minimum() -> None:
    low = Policy(budgets=(Budget(pattern="m[torch]", metric="throughput", limit_text="1000/s"),))
    result = decide(None, budget_record(), low)
    assert over_budget(result) == [("m[torch]", "throughput")]
    ok = Policy(budgets=(Budget(pattern="m[torch]", metric="throughput", limit_text="500/s"),))
    assert over_budget(decide(None, budget_record(), ok)) == []


def test_budget_matching_nothing_warns() -> None:
    policy = Policy(
        budgets=(
            Budget(pattern="nothing*", metric="latency.p99", limit_text="2ms"),
            Budget(pattern="m[torch]", metric="memory.peak", limit_text="600MB"),
        )
    )
    result = decide(None, budget_record(), policy)
    assert over_budget(result) == []
    assert len(result.warnings) == 2
    assert "'nothing*'" in result.warnings[0]
    assert "latency.p99" in result.warnings[0]
    assert "matched no measured benchmark" in result.warnings[0]
    assert "'m[torch]'" in result.warnings[1]
    assert "memory.peak" in result.warnings[1]
    assert result.exit_code is ExitCode.OK


def test_check_budgets_memory() -> None:
    current = record(sample("m[torch]", [7e8, 7.1e8], MEMORY))
    over, warnings = check_budgets(
        current, [Budget(pattern="m[torch]", metric="memory.peak", limit_text="600MB")]
    )
    assert warnings == []
    assert [(c.benchmark, c.metric.name, c.current) for c in over] == [
        ("m[torch]", "memory.peak", pytest.approx(7.05e8))
    ]


def test_budgets_on_perf_load_metrics_limit_the_rounds_median() -> None:
    node = "test_serve.py::test_serving"
    p99 = Metric("latency.p99@200qps", "s", Direction.LOWER)
    achieved = Metric("load.achieved@200qps", "items/s", Direction.HIGHER)
    current = record(sample(node, [0.020, 0.030, 0.026], p99), sample(node, [180, 185], achieved))
    budgets = [
        Budget(pattern="test_serve.py::*", metric="latency.p99@200qps", limit_text="20ms"),
        Budget(pattern="test_serve.py::*", metric="load.achieved@200qps", limit_text="190/s"),
    ]
    over, warnings = check_budgets(current, budgets)
    assert warnings == []
    assert [(c.metric.name, c.current) for c in over] == [
        ("latency.p99@200qps", pytest.approx(0.026)),
        ("load.achieved@200qps", pytest.approx(182.5)),  # fewer served than the budget asks
    ]


@pytest.mark.parametrize(
    ("name", "pattern", "expected"),
    [
        ("m[onnxruntime]", "m[onnxruntime]", True),
        ("m[torch]", "m[onnxruntime]", False),
        ("mo", "m[onnxruntime]", False),
        ("m[torch]", "m*", True),
        ("m[torch]", "*[torch]", True),
        ("m[torch-int8]", "*[torch]", False),
        ("m[torch]", "m[?orch]", True),
        ("digits-mlp[onnxruntime]", "digits-mlp[onnxruntime]", True),
        ("M[torch]", "m*", False),
    ],
)
def test_matches(name: str, pattern: str, expected: bool) -> None:
    assert matches(name, pattern) is expected


# --------------------------------------------------------------------------------------------
# errors, environment, order


def test_errors_in_current_record_exit_3() -> None:
    base = record(sample("crashed", [1.0, 1.1]), sample("ok", [1.0, 1.01, 0.99]))
    current = record(
        sample("ok", [1.0, 1.01, 0.99]),
        errors=[
            BenchmarkError(benchmark="crashed", message="worker exited with code -9"),
            BenchmarkError(benchmark="brand-new", message="import failed"),
        ],
    )
    result = decide(base, current, POLICY)
    crashed = [c for c in result.comparisons if c.benchmark == "crashed"]
    assert [(c.verdict, c.note) for c in crashed] == [
        (Verdict.ERROR, "failed to measure: worker exited with code -9")
    ]
    brand_new = [c for c in result.comparisons if c.benchmark == "brand-new"]
    assert [(c.verdict, c.metric.name, c.note) for c in brand_new] == [
        (Verdict.ERROR, "measurement", "import failed")
    ]
    assert result.errors == current.errors
    assert result.failed
    assert result.exit_code is ExitCode.INTERNAL
    assert int(result.exit_code) == 3


def test_errors_without_baseline_exit_3() -> None:
    current = record(errors=[BenchmarkError(benchmark="x", message="boom")])
    result = decide(None, current, POLICY)
    assert [c.verdict for c in result.comparisons] == [Verdict.ERROR]
    assert result.exit_code is ExitCode.INTERNAL


def test_regression_wins_over_errors_for_the_exit_code() -> None:
    base, current = shifted_pair(10, 1.30)
    result = decide(
        record(sample("m", base)),
        record(sample("m", current), errors=[BenchmarkError(benchmark="x", message="boom")]),
        POLICY,
    )
    assert result.exit_code is ExitCode.REGRESSION


def test_unit_change_is_an_error() -> None:
    result = decide(
        record(sample("m", [1.0, 1.1], Metric("latency", "ms", Direction.LOWER))),
        record(sample("m", [1.0, 1.1])),
        POLICY,
    )
    c = only(result, "m")
    assert c.verdict is Verdict.ERROR
    assert c.note == "unit changed from ms to s"
    assert result.exit_code is ExitCode.INTERNAL


def test_environment_differences_are_reported() -> None:
    base_env = {"os": "Linux", "cpu_model": "Xeon", "cpu_count": 8, "python": "3.11.7", "x": 1}
    current_env = {"os": "Linux", "cpu_model": "EPYC", "cpu_count": 8, "python": "3.12.1", "x": 2}
    result = decide(
        record(sample("m", [1.0, 1.1]), environment={**base_env, "key": "xeon"}, commit="base"),
        record(sample("m", [1.0, 1.1]), environment={**current_env, "key": "epyc"}, commit="head"),
        POLICY,
    )
    # The key's fields label the environment as another; Python is outside the key.
    assert result.environment_differences == {"cpu_model": ("Xeon", "EPYC")}
    assert result.notes == (
        "the environment also differs from the baseline's, outside the environment key "
        "(verdicts stand, but a change may come from here): python 3.11.7 -> 3.12.1",
    )
    assert result.baseline_commit == "base"
    assert result.current_commit == "head"


def test_key_fields_differing_under_one_key_are_not_called_another_environment() -> None:
    # Equal keys (here: none recorded) mean the timings gate: the label must not say otherwise.
    result = decide(
        record(sample("m", [1.0, 1.1]), environment={"gpu": "H100"}),
        record(sample("m", [1.0, 1.1]), environment={}),
        POLICY,
    )
    assert result.environment_differences == {}
    (note,) = result.notes
    assert note.endswith("(verdicts stand, but a change may come from here): gpu H100 -> none")


def test_comparisons_are_in_report_order() -> None:
    base_reg, cur_reg = shifted_pair(11, 1.30)
    base_imp, cur_imp = shifted_pair(12, 0.70)
    result = decide(
        record(
            sample("c-same", [1.0, 1.0]),
            sample("b-imp", base_imp),
            sample("a-gone", [1.0, 2.0]),
            sample("z-reg", base_reg),
        ),
        record(
            sample("c-same", [1.0, 1.0]),
            sample("b-imp", cur_imp),
            sample("z-reg", cur_reg),
            sample("d-new", [1.0, 2.0]),
        ),
        POLICY,
    )
    verdicts = [c.verdict for c in result.comparisons]
    assert verdicts == [
        Verdict.REGRESSION,
        Verdict.IMPROVEMENT,
        Verdict.NEW,
        Verdict.MISSING,
        Verdict.UNCHANGED,
    ]
    assert verdicts == sorted(verdicts, key=REPORT_ORDER.__getitem__)
    assert set(REPORT_ORDER) == set(Verdict)


# --------------------------------------------------------------------------------------------
# the test family: sizes, memory and cold starts are judged by their own rules

MIB = 2**20
SIZE = Metric("model_size", "B", Direction.LOWER)
COLD = Metric("cold_start", "s", Direction.LOWER)
MEMORY_LOAD = Metric("memory.load", "B", Direction.LOWER)


def test_sizes_memory_and_cold_starts_do_not_widen_the_timing_intervals() -> None:
    base, current = shifted_pair(3, 1.0, sigma=0.03)
    timings_only = decide(record(sample("m", base)), record(sample("m", current)), POLICY)
    probes = (
        sample("m", [4e6, 4e6], SIZE),
        sample("m", [300 * MIB, 301 * MIB, 300.5 * MIB], MEMORY),
        sample("m", [0.5, 0.6, 0.55], COLD),
    )
    everything = decide(
        record(sample("m", base), *probes), record(sample("m", current), *probes), POLICY
    )
    alone, among = only(timings_only, "m"), only(everything, "m")
    assert (among.ci_low, among.ci_high) == (alone.ci_low, alone.ci_high)
    size = only(everything, "m", "model_size")
    assert size.verdict is Verdict.UNCHANGED
    assert math.isnan(size.p_value)


def test_memory_rule_unchanged_regression_and_too_spread() -> None:
    steady = [300 * MIB, 300.2 * MIB, 300.1 * MIB]
    cases = {
        "same": ([v + 1 * MIB for v in steady], Verdict.UNCHANGED),  # within 10% and 8 MiB
        "grew": ([v * 1.3 for v in steady], Verdict.REGRESSION),
        "shrank": ([v * 0.7 for v in steady], Verdict.IMPROVEMENT),
        "spread": ([300 * MIB, 420 * MIB, 310 * MIB], Verdict.INCONCLUSIVE),
    }
    result = decide(
        record(*(sample(name, steady, MEMORY) for name in cases)),
        record(*(sample(name, now, MEMORY) for name, (now, _) in cases.items())),
        POLICY,
    )
    for name, (now, verdict) in cases.items():
        c = only(result, name, "memory.peak")
        assert c.verdict is verdict, (name, c)
        assert math.isnan(c.p_value)
        assert c.ci_low == pytest.approx((min(now) - max(steady)) / stats.median(steady))
        assert c.ci_high == pytest.approx((max(now) - min(steady)) / stats.median(steady))
        assert "memory rule" in c.note
    # A large relative change of a small number stays below the floor: unchanged.
    small = decide(
        record(sample("s", [2 * MIB, 2.1 * MIB], MEMORY_LOAD)),
        record(sample("s", [3 * MIB, 1 * MIB], MEMORY_LOAD)),
        POLICY,
    )
    assert only(small, "s", "memory.load").verdict is Verdict.UNCHANGED


def test_a_cold_start_of_few_probes_is_shown_not_tested() -> None:
    result = decide(
        record(sample("m", [0.50, 0.52], COLD)), record(sample("m", [1.0, 1.1], COLD)), POLICY
    )
    c = only(result, "m", "cold_start")
    assert c.verdict is Verdict.INCONCLUSIVE
    assert c.advisory
    assert not c.fails
    assert math.isnan(c.ci_low)
    assert math.isnan(c.ci_high)
    assert 0.9 < c.relative_change < 1.2
    assert "measure.probes >= 5" in c.note
    many = decide(
        record(sample("m", [0.50, 0.52, 0.51, 0.49, 0.50], COLD)),
        record(sample("m", [1.0, 1.02, 1.01, 0.99, 1.0], COLD)),
        POLICY,
    )
    tested = only(many, "m", "cold_start")
    assert tested.verdict is Verdict.REGRESSION
    assert tested.advisory
    assert not tested.fails
    assert tested.ci_low > 0.5
