"""Paired statistics and the paired decision (ab / duet modes) on synthetic data."""

from __future__ import annotations

import math
import random

import pytest

from gate.core import stats
from gate.core.types import Direction, Metric, Policy, RunRecord, Sample, Threshold, Verdict
from gate.decide.compare import PairedBaseline, decide, inconclusive_benchmarks

scipy_stats = pytest.importorskip("scipy.stats")

LATENCY = Metric("latency", "s", Direction.LOWER)
THROUGHPUT = Metric("throughput@32", "items/s", Direction.HIGHER)
POLICY = Policy(thresholds={"latency": Threshold(value=0.05), "throughput": Threshold(value=0.05)})


@pytest.mark.parametrize("n", [5, 8, 13, 20])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paired_t_matches_scipy(n: int, seed: int) -> None:
    rng = random.Random(seed)
    d = [rng.gauss(0.01, 0.03) for _ in range(n)]
    result = stats.paired(d, 0.01)
    expected = scipy_stats.ttest_1samp(d, 0.0, alternative="greater").pvalue
    assert result.p_worse == pytest.approx(expected, rel=1e-9)
    assert result.p_better == pytest.approx(1 - expected, rel=1e-9)
    low, high = scipy_stats.t.interval(0.98, n - 1, loc=stats.mean(d), scale=scipy_stats.sem(d))
    assert result.lower == pytest.approx(low, rel=1e-7)
    assert result.upper == pytest.approx(high, rel=1e-7)


@pytest.mark.parametrize("n", [4, 7, 10, 16])
def test_wilcoxon_exact_matches_scipy_without_ties(n: int) -> None:
    rng = random.Random(n)
    d = [rng.gauss(0.2, 1.0) for _ in range(n)]
    expected = scipy_stats.wilcoxon(d, method="exact").pvalue
    assert stats.wilcoxon_signed_rank_p(d) == pytest.approx(expected, rel=1e-12)


def test_wilcoxon_edge_cases() -> None:
    assert stats.wilcoxon_signed_rank_p([0.0, 0.0]) == 1.0
    # all 8 positive: the most extreme of 2^8 sign patterns, two-sided
    assert stats.wilcoxon_signed_rank_p([1.0 + i for i in range(8)]) == pytest.approx(2 / 256)


def test_minimum_detectable_effect_textbook() -> None:
    # (t_{0.99,9} + t_{0.8,9}) * se with se = 0.01
    expected = (scipy_stats.t.ppf(0.99, 9) + scipy_stats.t.ppf(0.8, 9)) * 0.01
    assert stats.minimum_detectable_effect(0.01, 9, 0.01) == pytest.approx(expected, rel=1e-8)
    assert stats.minimum_detectable_effect(0.0, 9, 0.01) == 0.0


def test_min_calls_for_percentile() -> None:
    assert stats.min_calls_for_percentile(0.99, 0.999) == 688
    assert 0.99**688 <= 0.001 < 0.99**687


def _paired_records(
    ratios: list[float], metric: Metric = LATENCY, base_value: float = 1e-3
) -> tuple[RunRecord, PairedBaseline]:
    rng = random.Random(7)
    base = [base_value * math.exp(rng.gauss(0, 0.03)) for _ in ratios]  # round-level drift
    current = [b * r for b, r in zip(base, ratios, strict=True)]
    sample = Sample(benchmark="m[torch]", metric=metric, values=tuple(current))
    base_sample = Sample(benchmark="m[torch]", metric=metric, values=tuple(base))
    record = RunRecord(samples=(sample,), environment={"key": "x"})
    return record, PairedBaseline(samples=(base_sample,), modes={"m[torch]": "ab"})


def _verdict(ratios: list[float], metric: Metric = LATENCY) -> Verdict:
    record, paired = _paired_records(ratios, metric)
    result = decide(None, record, POLICY, paired=paired)
    (comparison,) = result.comparisons
    assert comparison.mode == "ab"
    return comparison.verdict


def test_clear_regression_in_paired_mode() -> None:
    rng = random.Random(1)
    ratios = [1.20 * math.exp(rng.gauss(0, 0.01)) for _ in range(8)]
    assert _verdict(ratios) is Verdict.REGRESSION


def test_clear_no_change_in_paired_mode() -> None:
    rng = random.Random(2)
    ratios = [math.exp(rng.gauss(0, 0.005)) for _ in range(8)]
    assert _verdict(ratios) is Verdict.UNCHANGED


def test_borderline_is_inconclusive_and_asks_for_more_rounds() -> None:
    rng = random.Random(0)
    ratios = [1.04 * math.exp(rng.gauss(0, 0.03)) for _ in range(8)]
    record, paired = _paired_records(ratios)
    result = decide(None, record, POLICY, paired=paired)
    assert result.comparisons[0].verdict is Verdict.INCONCLUSIVE
    assert inconclusive_benchmarks(result) == {"m[torch]"}
    assert result.exit_code == 0  # inconclusive does not fail by default
    strict = Policy(thresholds=POLICY.thresholds, fail_on_inconclusive=True)
    assert decide(None, record, strict, paired=paired).exit_code == 1


def test_throughput_drop_is_a_regression_in_paired_mode() -> None:
    rng = random.Random(4)
    ratios = [0.8 * math.exp(rng.gauss(0, 0.01)) for _ in range(8)]
    assert _verdict(ratios, THROUGHPUT) is Verdict.REGRESSION


def test_paired_ab_false_alarm_rate_is_low() -> None:
    rng = random.Random(5)
    alarms = 0
    for _ in range(300):
        ratios = [math.exp(rng.gauss(0, 0.03)) for _ in range(8)]
        alarms += _verdict(ratios) is Verdict.REGRESSION
    assert alarms <= 3  # well under 1%: needs significance AND a change beyond 5%


def test_pairing_cancels_round_drift_that_welch_cannot() -> None:
    # Rounds drift together by +-10%; the head is 8% slower in every round.
    rng = random.Random(6)
    drift = [math.exp(rng.gauss(0, 0.10)) for _ in range(10)]
    base = [1e-3 * d for d in drift]
    head = [b * 1.08 * math.exp(rng.gauss(0, 0.005)) for b in base]
    current = RunRecord(
        samples=(Sample(benchmark="m", metric=LATENCY, values=tuple(head)),), environment={}
    )
    stored = RunRecord(
        samples=(Sample(benchmark="m", metric=LATENCY, values=tuple(base)),), environment={}
    )
    unpaired = decide(stored, current, POLICY).comparisons[0]
    paired = decide(
        None,
        current,
        POLICY,
        paired=PairedBaseline(samples=stored.samples, modes={"m": "duet"}),
    ).comparisons[0]
    assert unpaired.verdict is Verdict.INCONCLUSIVE
    assert paired.verdict is Verdict.REGRESSION
    assert paired.mode == "duet"
    assert paired.mde < unpaired.mde


def test_memory_change_below_the_floor_never_fails() -> None:
    memory = Metric("memory.peak", "B", Direction.LOWER)
    base = RunRecord(
        samples=(Sample(benchmark="m", metric=memory, values=(100e6, 100e6, 100e6)),),
        environment={},
    )
    small = RunRecord(  # +5% but only 5 MB: under the 8 MiB floor
        samples=(Sample(benchmark="m", metric=memory, values=(105e6, 105e6, 105e6)),),
        environment={},
    )
    big = RunRecord(
        samples=(Sample(benchmark="m", metric=memory, values=(120e6, 120e6, 120e6)),),
        environment={},
    )
    policy = Policy(thresholds={"memory": Threshold(value=0.02)})
    assert decide(base, small, policy).comparisons[0].verdict is Verdict.UNCHANGED
    assert decide(base, big, policy).comparisons[0].verdict is Verdict.REGRESSION


def test_stored_timings_from_another_environment_are_advisory() -> None:
    base = RunRecord(
        samples=(Sample(benchmark="m", metric=LATENCY, values=(1e-3, 1.01e-3, 0.99e-3)),),
        environment={"key": "laptop"},
    )
    current = RunRecord(
        samples=(Sample(benchmark="m", metric=LATENCY, values=(2e-3, 2.02e-3, 1.98e-3)),),
        environment={"key": "ci-runner"},
    )
    result = decide(base, current, POLICY)
    comparison = result.comparisons[0]
    assert comparison.verdict is Verdict.REGRESSION
    assert comparison.advisory
    assert "another environment" in comparison.note
    assert result.exit_code == 0


def test_tail_latency_is_reported_but_not_gated() -> None:
    from gate.report.jsonreport import result_to_dict
    from gate.report.terminal import render_table

    calls = tuple(1e-3 + i * 1e-6 for i in range(1000))
    slow_tail = calls[:-20] + tuple(0.05 for _ in range(20))  # p99 far worse, median the same
    values = (1e-3, 1.001e-3, 0.999e-3, 1.0005e-3)
    base = RunRecord(
        samples=(Sample(benchmark="m", metric=LATENCY, values=values, calls=calls),),
        environment={},
    )
    current = RunRecord(
        samples=(Sample(benchmark="m", metric=LATENCY, values=values, calls=slow_tail),),
        environment={},
    )
    result = decide(base, current, POLICY)
    (tail,) = result.tails
    assert tail.baseline_p99 == pytest.approx(stats.quantile(calls, 0.99))
    assert tail.current_p99 == pytest.approx(0.05)
    assert tail.calls == 1000
    assert result.exit_code == 0
    (row,) = result_to_dict(result)["tail_latency"]
    assert row["gated"] is False
    assert "Tail latency (report only, not gated)" in render_table(result)


def test_gross_outliers_flags_a_round_that_ran_twice_as_slow() -> None:
    logs = [math.log(v) for v in (1.00, 1.01, 0.99, 1.02, 2.05, 1.00, 0.98, 1.01)]
    assert stats.gross_outliers(logs) == [4]
    # small samples, modest deviations and more than 20% odd values are never dropped
    assert stats.gross_outliers(logs[:4]) == []
    assert stats.gross_outliers([math.log(v) for v in (1.0, 1.01, 0.99, 1.08, 1.0)]) == []
    bimodal = [math.log(v) for v in (1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0)]
    assert stats.gross_outliers(bimodal) == []


def test_one_outlier_round_does_not_hide_a_doubling() -> None:
    base = (29.1e-6, 29.3e-6, 29.0e-6, 58.5e-6, 29.2e-6)  # one base round ran 2x slow
    head = (58.9e-6, 59.3e-6, 59.0e-6, 59.4e-6, 58.8e-6)
    result = decide(
        RunRecord(samples=(Sample(benchmark="m", metric=LATENCY, values=base),), environment={}),
        RunRecord(samples=(Sample(benchmark="m", metric=LATENCY, values=head),), environment={}),
        POLICY,
    )
    (comparison,) = result.comparisons
    assert comparison.verdict is Verdict.REGRESSION
    assert "1 outlier round(s) excluded" in comparison.note
