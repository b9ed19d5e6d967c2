"""Change points of promoted histories (E-Divisive means with a t-test, core/changepoints.py):
known level shifts found where they are, flat noisy histories left alone, and a creep of small
steps that each pass the pull-request gate but together exceed the drift budget."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from gate.core.changepoints import _within_sums, best_split, change_points
from gate.core.types import Direction, GitInfo, Metric, Policy, RunRecord, Sample, Threshold
from gate.decide.compare import decide
from gate.store import history as hist
from gate.store.changes import all_changes, drifts

LATENCY = Metric("latency", "s", Direction.LOWER)
RATE = Metric("throughput@32", "items/s", Direction.HIGHER)


def noisy(rng: random.Random, level: float, n: int, sigma: float = 0.03) -> list[float]:
    return [level * math.exp(rng.gauss(0.0, sigma)) for _ in range(n)]


def test_the_pair_sums_from_ranks_equal_the_direct_sums() -> None:
    rng = random.Random(3)
    values = [rng.random() for _ in range(40)]
    sums = _within_sums(values)
    for t in (0, 1, 7, 40):
        direct = sum(abs(values[i] - values[j]) for i in range(t) for j in range(i + 1, t))
        assert sums[t] == pytest.approx(direct)
    assert best_split([1.0] * 5) is None  # too short for two segments of 3


@pytest.mark.parametrize(("shift", "at"), [(1.10, 15), (0.90, 8), (1.25, 24)])
def test_a_level_shift_is_found_within_one_promotion(shift: float, at: int) -> None:
    rng = random.Random(int(shift * 100) + at)
    located = 0
    for _ in range(200):
        values = noisy(rng, 100.0, at) + noisy(rng, 100.0 * shift, 30 - at)
        found = change_points(values)
        located += any(abs(c.index - at) <= 1 for c in found)
    assert located >= 180, located  # 90% of 200 histories, 3% noise per promotion


def test_flat_noisy_histories_have_no_change_point_in_95_percent() -> None:
    rng = random.Random(11)
    false = sum(bool(change_points(noisy(rng, 1e-3, 30))) for _ in range(200))
    assert false <= 10, false  # at most 5% of 200
    heavy = 0
    for _ in range(200):  # one promotion in twenty on a slow runner, 1.5x
        values = [v * (1.5 if rng.random() < 0.05 else 1.0) for v in noisy(rng, 1e-3, 30)]
        heavy += bool(change_points(values))
    assert heavy <= 10, heavy


def test_a_change_point_says_its_levels_and_confidence() -> None:
    rng = random.Random(5)
    (point,) = change_points(noisy(rng, 2.0, 12, 0.01) + noisy(rng, 3.0, 12, 0.01))
    assert point.index == 12
    assert point.before == pytest.approx(2.0, rel=0.02)
    assert point.change == pytest.approx(0.5, rel=0.05)
    assert point.confidence > 0.99
    with pytest.raises(ValueError, match="positive"):
        change_points([1.0, 0.0, 2.0])


def history_of(values: list[float], metric: Metric = LATENCY) -> hist.History:
    history = hist.History(limit=1000)
    for index, value in enumerate(values):
        record = RunRecord(
            samples=(Sample(benchmark="m[torch]", metric=metric, values=(value,) * 5),),
            environment={},
            git=GitInfo(commit=f"c{index:02d}" + "0" * 37),
        )
        entry = hist.summarize(record, key="k", promoted=f"2026-01-01T00:00:{index:02d}")
        history = hist.add(history, entry, 1000)
    return history


def test_the_history_names_the_commits_around_a_change() -> None:
    rng = random.Random(8)
    history = history_of(noisy(rng, 1e-3, 10, 0.01) + noisy(rng, 1.3e-3, 10, 0.01))
    (change,) = all_changes(history)
    assert (change.from_commit, change.to_commit) == ("c09" + "0" * 37, "c10" + "0" * 37)
    assert change.worse
    assert change.describe().startswith("m[torch] latency: 1.01 ms -> 1.3 ms (+29.7%")
    assert "at c09000000000..c10000000000" in change.describe()
    rate = history_of([100.0] * 8 + [150.0] * 8, RATE)
    (better,) = all_changes(rate)
    assert not better.worse  # more items per second


def test_a_creep_of_small_steps_passes_each_pull_request_and_fails_the_drift_budget() -> None:
    rng = random.Random(2)
    policy = Policy(alpha=0.01, thresholds={"latency": Threshold(value=0.05)})
    levels = [1e-3 * 1.02**step for step in range(11)]  # ten +2% steps: +21.9%
    for before, after in itertools.pairwise(levels):
        base = Sample(
            benchmark="m[torch]", metric=LATENCY, values=tuple(noisy(rng, before, 8, 0.005))
        )
        head = Sample(
            benchmark="m[torch]", metric=LATENCY, values=tuple(noisy(rng, after, 8, 0.005))
        )
        result = decide(
            RunRecord(samples=(base,), environment={}),
            RunRecord(samples=(head,), environment={}),
            policy,
        )
        assert not result.comparisons[0].fails  # +2% is under the 5% threshold
    promoted = [level * math.exp(rng.gauss(0.0, 0.005)) for level in levels for _ in range(2)]
    history = history_of(promoted)
    (drift,) = drifts(history, {"latency": (0.10, 20)})
    assert drift.change > 0.15
    text = drift.describe()
    assert text.startswith("drift: m[torch] latency moved +")
    assert "beyond its budget of 10%" in text
    assert drifts(history, {"latency": (0.30, 20)}) == []  # within a wider budget
    assert drifts(history, {"throughput": (0.10, 20)}) == []  # no budget on latency
    assert drifts(history_of([1e-3] * 22), {"latency": (0.10, 20)}) == []


def test_an_improvement_never_spends_the_drift_budget() -> None:
    history = history_of([1e-3 * 0.97**step for step in range(21)])
    assert drifts(history, {"latency": (0.10, 20)}) == []


def test_a_promotion_reports_a_level_that_began_among_the_newest_three() -> None:
    from gate.store.changes import recent_changes

    just = history_of([1e-3] * 10 + [1.4e-3] * 3)  # the new level's third promotion
    (change,) = recent_changes(just)
    assert change.to_commit == "c10" + "0" * 37
    later = history_of([1e-3] * 10 + [1.4e-3] * 8)
    assert all_changes(later)
    assert recent_changes(later) == []  # reported when it began, not at every promotion since
