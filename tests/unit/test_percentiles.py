"""gate.core.percentiles: the distribution-free bound of a tail percentile, and when a run has
too few queries for one."""

from __future__ import annotations

import random

import pytest

from gate.core.percentiles import bound_index, percentile
from gate.core.stats import min_calls_for_percentile


def test_the_fewest_queries_for_a_bound_match_the_order_statistic_rule() -> None:
    # no query above the bound: q^n <= 1 - confidence
    assert min_calls_for_percentile(0.99, 0.99) == 459
    assert bound_index(459, 0.99) == 459
    assert bound_index(458, 0.99) is None
    assert min_calls_for_percentile(0.9, 0.99) == 44
    assert bound_index(44, 0.9) == 44
    assert bound_index(43, 0.9) is None


def test_the_bound_moves_from_the_maximum_towards_the_empirical_percentile() -> None:
    ranks = [bound_index(n, 0.99) for n in (459, 1000, 10_000, 100_000)]
    assert ranks[0] == 459
    fractions = [k / n for k, n in zip(ranks, (459, 1000, 10_000, 100_000), strict=True)]
    assert fractions == sorted(fractions, reverse=True)  # closer to 0.99 with more queries
    assert 0.99 < fractions[-1] < 0.9915


def test_a_percentile_from_too_few_queries_is_refused_and_says_how_many_it_needs() -> None:
    result = percentile([0.001 * i for i in range(1, 101)], 0.99)
    assert result.name == "p99"
    assert not result.valid
    assert result.bound is None
    assert result.needed == 459
    assert result.value == pytest.approx(0.09901)


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_the_bound_covers_the_true_percentile_at_least_as_often_as_promised(q: float) -> None:
    rng = random.Random(7)
    true = {0.5: 0.6931471805599453, 0.9: 2.302585092994046, 0.99: 4.605170185988091}[q]
    trials, covered = 400, 0
    for _ in range(trials):
        sample = [rng.expovariate(1.0) for _ in range(600)]
        bound = percentile(sample, q).bound
        assert bound is not None
        covered += bound >= true
    assert covered / trials >= 0.97  # promised 0.99; binomial slack over 400 trials


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="expected 0 < q < 1"):
        bound_index(10, 1.0)
    with pytest.raises(ValueError, match="no latencies"):
        percentile([], 0.5)
