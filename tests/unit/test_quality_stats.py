"""gate.core.stats, quality section: proportions, McNemar, paired and unpaired intervals for
quality metrics, checked against scipy and published worked examples."""

from __future__ import annotations

import math
import random

import pytest

from gate.core import stats

scipy_stats = pytest.importorskip("scipy.stats")


# --------------------------------------------------------------------------------------------
# normal_ppf


@pytest.mark.parametrize("p", [0.001, 0.005, 0.025, 0.1, 0.5, 0.9, 0.975, 0.995, 0.9995])
def test_normal_ppf_matches_scipy(p: float) -> None:
    assert stats.normal_ppf(p) == pytest.approx(scipy_stats.norm.ppf(p), abs=1e-9)


def test_normal_ppf_known_values() -> None:
    assert stats.normal_ppf(0.5) == 0.0
    assert stats.normal_ppf(0.975) == pytest.approx(1.959964, abs=1e-6)
    assert stats.normal_ppf(0.025) == pytest.approx(-stats.normal_ppf(0.975))


# --------------------------------------------------------------------------------------------
# Wilson's score interval


def test_wilson_published_example() -> None:
    """Newcombe (1998), Statistics in Medicine 17:857, example: 81/263 at 95%."""
    low, high = stats.wilson_interval(81, 263, 0.05)
    assert low == pytest.approx(0.2553, abs=5e-5)
    assert high == pytest.approx(0.3662, abs=5e-5)


@pytest.mark.parametrize(
    ("k", "n", "alpha"),
    [(0, 10, 0.05), (10, 10, 0.05), (1, 20, 0.05), (81, 263, 0.05), (500, 1000, 0.01), (3, 7, 0.1)],
)
def test_wilson_matches_scipy(k: int, n: int, alpha: float) -> None:
    expected = scipy_stats.binomtest(k, n).proportion_ci(1 - alpha, method="wilson")
    low, high = stats.wilson_interval(k, n, alpha)
    assert low == pytest.approx(expected.low, abs=1e-9)
    assert high == pytest.approx(expected.high, abs=1e-9)


def test_wilson_edges() -> None:
    assert stats.wilson_interval(0, 0, 0.05) == (0.0, 1.0)
    low, high = stats.wilson_interval(0, 50, 0.05)
    assert low == 0.0
    assert 0.0 < high < 0.1
    low, high = stats.wilson_interval(50, 50, 0.05)
    assert high == 1.0
    assert 0.9 < low < 1.0


def test_wilson_narrows_with_n_and_widens_with_confidence() -> None:
    small = stats.wilson_interval(80, 100, 0.05)
    large = stats.wilson_interval(8000, 10000, 0.05)
    assert large[1] - large[0] < small[1] - small[0]
    strict = stats.wilson_interval(80, 100, 0.001)
    assert strict[0] < small[0]
    assert strict[1] > small[1]
    assert small[0] < 0.8 < small[1]


# --------------------------------------------------------------------------------------------
# binomial cdf and McNemar's exact test


@pytest.mark.parametrize(("k", "n"), [(0, 1), (0, 5), (2, 5), (3, 10), (10, 40), (49, 100), (7, 7)])
def test_binomial_cdf_half_matches_scipy(k: int, n: int) -> None:
    assert stats.binomial_cdf_half(k, n) == pytest.approx(
        scipy_stats.binom.cdf(k, n, 0.5), rel=1e-9, abs=1e-15
    )


def test_binomial_cdf_half_edges() -> None:
    assert stats.binomial_cdf_half(-1, 10) == 0.0
    assert stats.binomial_cdf_half(10, 10) == 1.0
    assert stats.binomial_cdf_half(12, 10) == 1.0
    assert stats.binomial_cdf_half(0, 10) == pytest.approx(2.0**-10)


@pytest.mark.parametrize(
    ("to_wrong", "to_right"),
    [(1, 0), (0, 1), (5, 0), (10, 2), (2, 10), (7, 7), (8, 7), (25, 10), (100, 130), (3, 40)],
)
def test_mcnemar_exact_matches_scipy_binomtest(to_wrong: int, to_right: int) -> None:
    expected = scipy_stats.binomtest(to_wrong, to_wrong + to_right, 0.5).pvalue
    assert stats.mcnemar_exact_p(to_wrong, to_right) == pytest.approx(expected, rel=1e-9)


def test_mcnemar_is_symmetric_and_bounded() -> None:
    for a, b in [(3, 9), (20, 31), (0, 6)]:
        assert stats.mcnemar_exact_p(a, b) == pytest.approx(stats.mcnemar_exact_p(b, a))
    assert stats.mcnemar_exact_p(5, 5) == 1.0
    assert stats.mcnemar_exact_p(6, 5) == 1.0


def test_mcnemar_without_discordant_pairs_is_one() -> None:
    assert stats.mcnemar_exact_p(0, 0) == 1.0


def test_mcnemar_known_small_values() -> None:
    # 6 flips all one way: 2 * 0.5**6.
    assert stats.mcnemar_exact_p(6, 0) == pytest.approx(2 * 0.5**6)
    assert stats.mcnemar_exact_p(1, 0) == 1.0


def test_mcnemar_large_counts_match_scipy() -> None:
    """Large eval sets: hundreds of thousands of flips still give the exact binomial p."""
    for to_wrong, to_right in [(50_000, 50_400), (500_000, 501_500), (300_000, 310_000)]:
        p = stats.mcnemar_exact_p(to_wrong, to_right)
        expected = scipy_stats.binomtest(to_wrong, to_wrong + to_right, 0.5).pvalue
        assert p == pytest.approx(expected, rel=1e-6, abs=1e-300)
        assert 0.0 <= p <= 1.0


# --------------------------------------------------------------------------------------------
# Bonett-Price adjusted Wald interval for a paired proportion change


def _bonett_price_by_hand(
    to_wrong: int, to_right: int, n: int, alpha: float
) -> tuple[float, float]:
    z = scipy_stats.norm.ppf(1 - alpha / 2)
    p12 = (to_right + 1) / (n + 2)  # gained: wrong -> right
    p21 = (to_wrong + 1) / (n + 2)  # lost: right -> wrong
    d = p12 - p21
    se = math.sqrt((p12 + p21 - d * d) / (n + 2))
    return max(-1.0, d - z * se), min(1.0, d + z * se)


def test_bonett_price_hand_computation() -> None:
    # 1000 examples, 30 flipped to wrong, 12 to right, 95%:
    # p_lost = 31/1002, p_gained = 13/1002, d = -18/1002 = -0.017964
    # se = sqrt((44/1002 - d^2)/1002) = 0.0065965 -> d -+ 1.959964 se
    low, high = stats.paired_proportion_interval(30, 12, 1000, 0.05)
    d = -18 / 1002
    se = math.sqrt((44 / 1002 - d * d) / 1002)
    assert se == pytest.approx(0.0065965, abs=1e-6)
    assert low == pytest.approx(d - 1.959964 * se, abs=1e-6)
    assert high == pytest.approx(d + 1.959964 * se, abs=1e-6)
    assert low == pytest.approx(-0.030893, abs=1e-5)
    assert high == pytest.approx(-0.005035, abs=1e-5)


@pytest.mark.parametrize(
    ("to_wrong", "to_right", "n", "alpha"),
    [(0, 0, 10, 0.05), (5, 0, 20, 0.01), (0, 5, 20, 0.01), (40, 60, 500, 0.05), (3, 3, 3000, 0.1)],
)
def test_bonett_price_matches_formula(to_wrong: int, to_right: int, n: int, alpha: float) -> None:
    expected = _bonett_price_by_hand(to_wrong, to_right, n, alpha)
    assert stats.paired_proportion_interval(to_wrong, to_right, n, alpha) == pytest.approx(
        expected, abs=1e-12
    )


def test_bonett_price_sign_and_symmetry() -> None:
    """The interval is for current - baseline: more flips to wrong lies below zero."""
    low, high = stats.paired_proportion_interval(50, 5, 1000, 0.05)
    assert high < 0
    mirrored = stats.paired_proportion_interval(5, 50, 1000, 0.05)
    assert mirrored == pytest.approx((-high, -low))
    low, high = stats.paired_proportion_interval(0, 0, 100, 0.05)
    assert low < 0 < high
    assert low == pytest.approx(-high)


def test_bonett_price_is_clamped_and_defined_for_tiny_n() -> None:
    low, high = stats.paired_proportion_interval(0, 0, 0, 0.05)
    assert -1.0 <= low < 0 < high <= 1.0
    low, high = stats.paired_proportion_interval(3, 0, 3, 0.001)
    assert low >= -1.0
    assert high <= 1.0


# --------------------------------------------------------------------------------------------
# Newcombe's hybrid score interval (method 10) for two independent proportions


def test_newcombe_published_example() -> None:
    """Newcombe (1998), Statistics in Medicine 17:873, Table II (a): 56/70 - 48/80 = 0.2000,
    method 10 (hybrid score): (0.0524, 0.3339).

    Our function returns p_current - p_base, so 56/70 is the current side."""
    low, high = stats.newcombe_interval(48, 80, 56, 70, 0.05)
    assert 56 / 70 - 48 / 80 == pytest.approx(0.2000)
    assert low == pytest.approx(0.0524, abs=5e-5)
    assert high == pytest.approx(0.3339, abs=5e-5)


def test_newcombe_reversed_sides_negate_the_interval() -> None:
    low, high = stats.newcombe_interval(56, 70, 48, 80, 0.05)
    assert low == pytest.approx(-0.3339, abs=5e-5)
    assert high == pytest.approx(-0.0524, abs=5e-5)


def test_newcombe_second_published_example() -> None:
    """Newcombe (1998) Table II (b): 9/10 - 3/10 = 0.6000, method 10: (0.1705, 0.8090)."""
    low, high = stats.newcombe_interval(3, 10, 9, 10, 0.05)
    assert (low, high) == pytest.approx((0.1705, 0.8090), abs=5e-5)


def test_newcombe_hand_computation_for_the_first_example() -> None:
    """Wilson 56/70 = (0.69183, 0.87695), 48/80 = (0.49045, 0.70038):
    low = 0.2 - sqrt(0.10817^2 + 0.10038^2), high = 0.2 + sqrt(0.07695^2 + 0.10955^2)."""
    assert stats.wilson_interval(56, 70, 0.05) == pytest.approx((0.69183, 0.87695), abs=1e-5)
    assert stats.wilson_interval(48, 80, 0.05) == pytest.approx((0.49045, 0.70038), abs=1e-5)
    low, high = stats.newcombe_interval(48, 80, 56, 70, 0.05)
    assert low == pytest.approx(0.2 - math.hypot(0.8 - 0.69183, 0.70038 - 0.6), abs=2e-5)
    assert high == pytest.approx(0.2 + math.hypot(0.87695 - 0.8, 0.6 - 0.49045), abs=2e-5)


def test_newcombe_matches_wilson_composition() -> None:
    k1, n1, k2, n2, alpha = 430, 500, 880, 1000, 0.01
    l1, u1 = stats.wilson_interval(k1, n1, alpha)
    l2, u2 = stats.wilson_interval(k2, n2, alpha)
    p1, p2 = k1 / n1, k2 / n2
    low, high = stats.newcombe_interval(k1, n1, k2, n2, alpha)
    assert low == pytest.approx(p2 - p1 - math.hypot(p2 - l2, u1 - p1))
    assert high == pytest.approx(p2 - p1 + math.hypot(u2 - p2, p1 - l1))
    assert low < p2 - p1 < high


# --------------------------------------------------------------------------------------------
# pooled two-proportion z-test


@pytest.mark.parametrize(
    ("k1", "n1", "k2", "n2"),
    [(48, 80, 56, 70), (900, 1000, 880, 1000), (10, 50, 30, 60), (500, 1000, 501, 1000)],
)
def test_two_proportion_p_matches_chi_square(k1: int, n1: int, k2: int, n2: int) -> None:
    """The pooled z-test is the uncorrected 2x2 chi-square test."""
    table = [[k1, n1 - k1], [k2, n2 - k2]]
    expected = scipy_stats.chi2_contingency(table, correction=False).pvalue
    assert stats.two_proportion_p(k1, n1, k2, n2) == pytest.approx(expected, rel=1e-7)


def test_two_proportion_p_degenerate() -> None:
    assert stats.two_proportion_p(10, 10, 20, 20) == 1.0  # every example right on both sides
    assert stats.two_proportion_p(0, 10, 0, 20) == 1.0
    assert stats.two_proportion_p(50, 100, 50, 100) == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# paired mean difference (per-example errors)


def test_paired_mean_difference_matches_scipy() -> None:
    rng = random.Random(7)
    differences = [rng.gauss(0.02, 0.1) for _ in range(200)]
    result = stats.paired_mean_difference(differences, 0.05)
    test = scipy_stats.ttest_1samp(differences, 0.0)
    low, high = test.confidence_interval(0.95)
    assert result.estimate == pytest.approx(sum(differences) / len(differences))
    assert result.p_value == pytest.approx(test.pvalue, rel=1e-6)
    assert result.ci_low == pytest.approx(low, rel=1e-6)
    assert result.ci_high == pytest.approx(high, rel=1e-6)


def test_paired_mean_difference_small_sample_against_scipy() -> None:
    differences = [0.5, -0.1, 0.3, 0.25]
    result = stats.paired_mean_difference(differences, 0.01)
    test = scipy_stats.ttest_1samp(differences, 0.0)
    low, high = test.confidence_interval(0.99)
    assert result.p_value == pytest.approx(test.pvalue, rel=1e-6)
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-6)


def test_paired_mean_difference_constant_differences() -> None:
    same = stats.paired_mean_difference([0.0, 0.0, 0.0], 0.05)
    assert same == stats.MeanDifference(0.0, 0.0, 0.0, 1.0)
    shifted = stats.paired_mean_difference([0.25, 0.25], 0.05)
    assert shifted == stats.MeanDifference(0.25, 0.25, 0.25, 0.0)


@pytest.mark.parametrize("differences", [[], [0.1]])
def test_paired_mean_difference_needs_two_examples(differences: list[float]) -> None:
    with pytest.raises(ValueError, match="at least two"):
        stats.paired_mean_difference(differences, 0.05)


def test_paired_mean_difference_on_a_large_eval_set() -> None:
    rng = random.Random(3)
    differences = [rng.gauss(-0.001, 0.05) for _ in range(100_000)]
    result = stats.paired_mean_difference(differences, 0.05)
    test = scipy_stats.ttest_1samp(differences, 0.0)
    assert result.p_value == pytest.approx(test.pvalue, rel=1e-5, abs=1e-12)
    assert result.ci_low < result.estimate < result.ci_high
