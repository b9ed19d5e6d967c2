"""Change points in a series of promoted values: E-Divisive means (Matteson & James 2014, the
method of MongoDB's performance CI, Daly et al. ICPE 2020, and of Hunter / Apache Otava), with
a Student's t significance test on each split as in Hunter. Pure Python.

A series (oldest first) is split where the energy statistic

    Q(t) = m k / (m + k) * ( 2/(m k) sum|x_i - y_j|
                             - 1/C(m,2) sum|x_i - x_i'| - 1/C(k,2) sum|y_j - y_j'| )

between its left part x (m values) and right part y (k values) is largest. The split stands
when Welch's t-test of the two parts' logs gives a p-value below ``alpha`` after multiplying it
by the number of places the split could have been (Bonferroni: the split was chosen as the
most different one, so its own p-value alone would be optimistic); each part is then searched
the same way. Every change point found is re-tested against its neighbours' segments at the
end, and dropped when it no longer stands (Hunter's merge step).

The sums of distances come from ranks (a Fenwick tree over the sorted values), so a search of
n values costs O(n log n), not O(n^2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gate.core.stats import welch

DEFAULT_ALPHA = 0.01
MIN_SEGMENT = 3  # values on each side of a change point, at least


@dataclass(frozen=True)
class ChangePoint:
    """The level moved between ``index - 1`` and ``index`` (0-based, oldest first)."""

    index: int
    before: float  # geometric mean of the segment before it
    after: float  # geometric mean of the segment after it
    p_value: float  # Welch's, times the places the split could have been (at most 1)

    @property
    def change(self) -> float:
        """after / before - 1."""
        return self.after / self.before - 1.0

    @property
    def confidence(self) -> float:
        return 1.0 - self.p_value


class _Fenwick:
    """Counts and sums of the values inserted so far, by rank."""

    def __init__(self, size: int) -> None:
        self.count = [0] * (size + 1)
        self.total = [0.0] * (size + 1)

    def add(self, rank: int, value: float) -> None:
        i = rank + 1
        while i < len(self.count):
            self.count[i] += 1
            self.total[i] += value
            i += i & -i

    def below(self, rank: int) -> tuple[int, float]:
        """Count and sum of the inserted values of rank < ``rank``."""
        count, total, i = 0, 0.0, rank
        while i > 0:
            count += self.count[i]
            total += self.total[i]
            i -= i & -i
        return count, total


def _within_sums(values: Sequence[float]) -> list[float]:
    """``out[t]``: the sum of |a - b| over pairs of ``values[:t]`` (t = 0..n)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    rank = [0] * len(values)
    for position, index in enumerate(order):
        rank[index] = position
    tree = _Fenwick(len(values))
    out = [0.0]
    seen_total = 0.0
    for t, value in enumerate(values):
        below_count, below_sum = tree.below(rank[t])
        above_count = t - below_count
        above_sum = seen_total - below_sum
        added = (below_count * value - below_sum) + (above_sum - above_count * value)
        out.append(out[-1] + added)
        tree.add(rank[t], value)
        seen_total += value
    return out


def best_split(values: Sequence[float], min_segment: int = MIN_SEGMENT) -> tuple[int, float] | None:
    """The split ``t`` (``values[:t]`` | ``values[t:]``) with the largest energy statistic, and
    the statistic; None when the series is too short to have two segments."""
    n = len(values)
    if n < 2 * min_segment:
        return None
    left = _within_sums(values)
    right = _within_sums(values[::-1])  # right[k]: pairs among the last k values
    total = left[n]
    best: tuple[int, float] | None = None
    for t in range(min_segment, n - min_segment + 1):
        m, k = t, n - t
        within_left, within_right = left[t], right[k]
        between = total - within_left - within_right
        q = (m * k / n) * (
            2.0 * between / (m * k)
            - within_left / (m * (m - 1) / 2)
            - within_right / (k * (k - 1) / 2)
        )
        if best is None or q > best[1]:
            best = (t, q)
    return best


def _p_value(left: Sequence[float], right: Sequence[float], places: int) -> float:
    return min(1.0, welch(left, right, DEFAULT_ALPHA).p_value * max(1, places))


def _geomean(logs: Sequence[float]) -> float:
    return math.exp(math.fsum(logs) / len(logs))


def change_points(
    values: Sequence[float], *, alpha: float = DEFAULT_ALPHA, min_segment: int = MIN_SEGMENT
) -> list[ChangePoint]:
    """The change points of ``values`` (positive numbers, oldest first), oldest first."""
    if any(not (v > 0 and math.isfinite(v)) for v in values):
        raise ValueError("change points need positive, finite values")
    logs = [math.log(v) for v in values]
    found: set[int] = set()
    pending = [(0, len(logs))]
    while pending:
        start, end = pending.pop()
        split = best_split(logs[start:end], min_segment)
        if split is None:
            continue
        t = start + split[0]
        places = (end - start) - 2 * min_segment + 1
        if _p_value(logs[start:t], logs[t:end], places) < alpha:
            found.add(t)
            pending += [(start, t), (t, end)]
    return _settled(logs, sorted(found), alpha, min_segment)


def _settled(
    logs: list[float], points: list[int], alpha: float, min_segment: int
) -> list[ChangePoint]:
    """Re-test each change point between its neighbours; drop the weakest that no longer
    stands, until all do."""
    while True:
        bounds = [0, *points, len(logs)]
        tested = []
        for i, t in enumerate(points):
            left, right = logs[bounds[i] : t], logs[t : bounds[i + 2]]
            places = len(left) + len(right) - 2 * min_segment + 1
            tested.append(
                ChangePoint(
                    index=t,
                    before=_geomean(left),
                    after=_geomean(right),
                    p_value=_p_value(left, right, places),
                )
            )
        weak = [c for c in tested if c.p_value >= alpha]
        if not weak:
            return tested
        points.remove(max(weak, key=lambda c: c.p_value).index)
