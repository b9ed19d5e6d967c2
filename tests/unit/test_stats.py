"""gate.core.stats against scipy (and numpy, which scipy brings): t, Welch, Holm, summaries."""

from __future__ import annotations

import math
import random

import pytest

from gate.core import stats

scipy_stats = pytest.importorskip("scipy.stats")
np = pytest.importorskip("numpy")

DFS = [1, 1.5, 2, 2.7, 3, 4, 5, 7, 8.3, 10, 15, 20, 30, 50, 100, 1000]
TS = [0.0, 1e-6, 0.01, 0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 10.0, 20.0, 50.0, 100.0]


@pytest.mark.parametrize("df", DFS)
def test_t_sf_two_sided_matches_scipy(df: float) -> None:
    for t in TS:
        expected = 2.0 * float(scipy_stats.t.sf(t, df))
        assert stats.t_sf_two_sided(t, df) == pytest.approx(expected, rel=1e-8, abs=1e-300), t
        # symmetric in t
        assert stats.t_sf_two_sided(-t, df) == pytest.approx(expected, rel=1e-8, abs=1e-300), -t


def test_t_sf_two_sided_limits() -> None:
    assert stats.t_sf_two_sided(0.0, 5) == 1.0
    assert stats.t_sf_two_sided(math.inf, 5) == 0.0
    assert stats.t_sf_two_sided(-math.inf, 5) == 0.0
    # df = 1 is the Cauchy distribution: P(|T| >= 1) = 1/2
    assert stats.t_sf_two_sided(1.0, 1) == pytest.approx(0.5, rel=1e-12)


PS = [0.0005, 0.005, 0.01, 0.025, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.975, 0.99, 0.995, 0.9995]


@pytest.mark.parametrize("df", DFS)
def test_t_ppf_matches_scipy(df: float) -> None:
    for p in PS:
        expected = float(scipy_stats.t.ppf(p, df))
        assert stats.t_ppf(p, df) == pytest.approx(expected, rel=1e-9, abs=1e-12), p


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5])
def test_t_ppf_rejects_p_outside_open_interval(p: float) -> None:
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\)"):
        stats.t_ppf(p, 5)


def test_t_ppf_inverts_t_sf() -> None:
    for df in (2, 9, 40):
        for p in (0.9, 0.975, 0.995):
            t = stats.t_ppf(p, df)
            assert stats.t_sf_two_sided(t, df) / 2 == pytest.approx(1 - p, rel=1e-9)


def _random_pairs(count: int, seed: int) -> list[tuple[list[float], list[float], float]]:
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        a = [rng.gauss(10.0, rng.uniform(0.1, 3.0)) for _ in range(rng.randint(2, 12))]
        b = [
            rng.gauss(10.0 + rng.uniform(-3, 3), rng.uniform(0.1, 3.0))
            for _ in range(rng.randint(2, 12))
        ]
        alpha = rng.choice([0.01, 0.05, 0.1])
        cases.append((a, b, alpha))
    return cases


@pytest.mark.parametrize(("a", "b", "alpha"), _random_pairs(60, seed=20260101))
def test_welch_matches_scipy(a: list[float], b: list[float], alpha: float) -> None:
    result = stats.welch(a, b, alpha)
    reference = scipy_stats.ttest_ind(b, a, equal_var=False)
    interval = reference.confidence_interval(1 - alpha)
    assert result.difference == pytest.approx(float(np.mean(b) - np.mean(a)), rel=1e-12, abs=1e-12)
    assert result.p_value == pytest.approx(float(reference.pvalue), rel=1e-8, abs=1e-15)
    assert result.df == pytest.approx(float(reference.df), rel=1e-10)
    assert result.ci_low == pytest.approx(float(interval.low), rel=1e-8, abs=1e-10)
    assert result.ci_high == pytest.approx(float(interval.high), rel=1e-8, abs=1e-10)
    assert result.ci_low < result.difference < result.ci_high


def test_welch_one_side_constant_matches_scipy() -> None:
    a = [1.0, 1.0, 1.0]
    b = [1.0, 2.5, 3.0, 2.0]
    result = stats.welch(a, b, 0.05)
    # all the variance comes from b: a one-sample t-test of b against mean(a), df = len(b) - 1
    reference = scipy_stats.ttest_1samp(b, 1.0)
    assert result.p_value == pytest.approx(float(reference.pvalue), rel=1e-8)
    assert result.df == pytest.approx(3.0, rel=1e-12)
    half_width = float(scipy_stats.t.ppf(0.975, 3)) * math.sqrt(float(np.var(b, ddof=1)) / 4)
    assert result.ci_low == pytest.approx(result.difference - half_width, rel=1e-9)
    assert result.ci_high == pytest.approx(result.difference + half_width, rel=1e-9)


def test_welch_zero_variance_equal_means() -> None:
    result = stats.welch([2.0, 2.0, 2.0], [2.0, 2.0], 0.01)
    assert result.p_value == 1.0
    assert result.difference == 0.0
    assert result.ci_low == result.ci_high == 0.0


def test_welch_zero_variance_different_means() -> None:
    result = stats.welch([2.0, 2.0, 2.0], [3.0, 3.0], 0.01)
    assert result.p_value == 0.0
    assert result.difference == 1.0
    assert result.ci_low == result.ci_high == 1.0


def test_welch_interval_narrows_with_larger_alpha() -> None:
    a, b = [1.0, 1.2, 0.9, 1.1], [1.3, 1.5, 1.2, 1.4]
    wide = stats.welch(a, b, 0.01)
    narrow = stats.welch(a, b, 0.10)
    assert wide.ci_low < narrow.ci_low < narrow.ci_high < wide.ci_high
    assert wide.p_value == narrow.p_value


@pytest.mark.parametrize(("a", "b"), [([1.0], [1.0, 2.0]), ([1.0, 2.0], [3.0]), ([], [])])
def test_welch_needs_two_values_per_side(a: list[float], b: list[float]) -> None:
    with pytest.raises(ValueError, match="at least two values"):
        stats.welch(a, b, 0.05)


# --------------------------------------------------------------------------------------------
# Holm


def test_holm_known_example() -> None:
    # sorted: 0.005 <= 0.05/4, 0.01 <= 0.05/3, 0.03 > 0.05/2 -> stop; 0.04 is not tested.
    assert stats.holm([0.01, 0.04, 0.03, 0.005], 0.05) == [True, False, False, True]


def test_holm_rejects_more_than_bonferroni() -> None:
    p_values = [0.001, 0.02, 0.021]
    assert stats.holm(p_values, 0.05) == [True, True, True]
    bonferroni = [p <= 0.05 / len(p_values) for p in p_values]
    assert bonferroni == [True, False, False]


def test_holm_step_down_stops_at_first_failure() -> None:
    # 0.03 > 0.05/2 stops the procedure, so 0.04 (<= 0.05/1) is not rejected either
    assert stats.holm([0.04, 0.03], 0.05) == [False, False]
    assert stats.holm([0.04, 0.03], 0.08) == [True, True]


def test_holm_single_and_empty() -> None:
    assert stats.holm([], 0.05) == []
    assert stats.holm([0.01], 0.01) == [True]
    assert stats.holm([0.0100001], 0.01) == [False]


def test_holm_many_borderline_values() -> None:
    assert stats.holm([0.005] * 10, 0.01) == [False] * 10
    assert stats.holm([0.0005] * 10, 0.01) == [True] * 10


def test_holm_against_reference_implementation() -> None:
    rng = random.Random(7)
    for _ in range(200):
        p_values = [rng.random() ** 3 for _ in range(rng.randint(1, 12))]
        alpha = rng.choice([0.01, 0.05, 0.1])
        # adjusted p-values (step-down maxima), the textbook form of Holm's procedure
        order = sorted(range(len(p_values)), key=lambda i: p_values[i])
        adjusted = [0.0] * len(p_values)
        running = 0.0
        for rank, index in enumerate(order):
            running = max(running, (len(p_values) - rank) * p_values[index])
            adjusted[index] = min(1.0, running)
        assert stats.holm(p_values, alpha) == [a <= alpha for a in adjusted], (p_values, alpha)


# --------------------------------------------------------------------------------------------
# summaries


SUMMARY_SETS = [
    [1.0],
    [3.0, 1.0],
    [5.0, 1.0, 4.0, 2.0, 3.0],
    [0.0012, 0.0011, 0.0019, 0.00105, 0.0013, 0.0011],
    [float(x) for x in random.Random(3).sample(range(1000), 37)],
    [-2.5, 7.0, 0.0, 3.25, -1.0, 9.5, 2.0, 2.0],
]


@pytest.mark.parametrize("values", SUMMARY_SETS)
def test_quantile_matches_numpy_linear(values: list[float]) -> None:
    for q in (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0):
        expected = float(np.quantile(values, q))
        assert stats.quantile(values, q) == pytest.approx(expected, rel=1e-12, abs=1e-15), q
    assert stats.median(values) == pytest.approx(float(np.median(values)), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("values", [v for v in SUMMARY_SETS if len(v) >= 2])
def test_variance_and_mean_match_scipy(values: list[float]) -> None:
    assert stats.variance(values) == pytest.approx(float(scipy_stats.tvar(values)), rel=1e-12)
    assert stats.mean(values) == pytest.approx(float(np.mean(values)), rel=1e-12, abs=1e-15)
    expected_cv = float(scipy_stats.variation(values, ddof=1))
    assert stats.coefficient_of_variation(values) == pytest.approx(abs(expected_cv), rel=1e-10)


def test_quantile_does_not_modify_input() -> None:
    values = [3.0, 1.0, 2.0]
    assert stats.median(values) == 2.0
    assert values == [3.0, 1.0, 2.0]


def test_small_sample_edge_cases() -> None:
    assert stats.variance([4.0]) == 0.0
    assert math.isnan(stats.coefficient_of_variation([4.0]))
    assert stats.median([4.0]) == 4.0
    assert stats.median([1.0, 2.0, 10.0, 11.0]) == 6.0
    with pytest.raises(ValueError, match="no values"):
        stats.quantile([], 0.5)
    with pytest.raises(ValueError, match="no values"):
        stats.median([])
