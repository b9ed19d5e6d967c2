"""What the promoted history says over time (pure): the change points of each benchmark's
metrics (``core/changepoints.py``) with the commits around them, and the drift budgets
(``policy.drift``): how far a metric's level moved over the last N promotions, however small
each step was. docs/history.md."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gate.core import stats
from gate.core.changepoints import ChangePoint, change_points
from gate.store.history import History, TrendPoint, trend
from gate.units import format_value

LEVEL_POINTS = 3  # promotions averaged (median) for a level at each end of a drift window


@dataclass(frozen=True)
class SeriesChange:
    """A change point of one (benchmark, metric) between two promotions."""

    benchmark: str
    metric: str
    unit: str
    higher_is_better: bool
    point: ChangePoint
    from_commit: str | None  # the last promotion at the old level
    to_commit: str | None  # the first at the new level
    promoted: str  # when the first at the new level was promoted

    @property
    def worse(self) -> bool:
        change = self.point.change
        return change < 0 if self.higher_is_better else change > 0

    def describe(self) -> str:
        commits = f"{_short(self.from_commit)}..{_short(self.to_commit)}"
        return (
            f"{self.benchmark} {self.metric}: {format_value(self.point.before, self.unit)} -> "
            f"{format_value(self.point.after, self.unit)} ({self.point.change:+.1%}, "
            f"confidence {self.point.confidence:.1%}) at {commits}"
        )


@dataclass(frozen=True)
class Drift:
    """A metric whose level moved beyond its drift budget over the window."""

    benchmark: str
    metric: str
    change: float  # toward worse: > 0 is a regression whatever the direction
    budget: float
    window: int  # promotions compared
    then: TrendPoint
    now: TrendPoint
    unit: str
    moves: tuple[SeriesChange, ...]  # change points inside the window

    def describe(self) -> str:
        text = (
            f"drift: {self.benchmark} {self.metric} moved {self.change:+.1%} (worse) over the "
            f"last {self.window} promotions, beyond its budget of {self.budget:.0%}: from "
            f"{format_value(self.then.value, self.unit)} at {_short(self.then.commit)} to "
            f"{format_value(self.now.value, self.unit)} at {_short(self.now.commit)}"
        )
        if self.moves:
            return (
                text
                + "; the level moved at "
                + ", ".join(
                    f"{_short(m.from_commit)}..{_short(m.to_commit)} ({m.point.change:+.1%})"
                    for m in self.moves
                )
            )
        return text + "; no single step stands out: a creep of small changes across them"


def _short(commit: str | None) -> str:
    return commit[:12] if commit else "?"


def _unit(history: History, metric: str) -> str:
    return next((e.units[metric] for e in history.entries if metric in e.units), "")


def _higher(history: History, metric: str) -> bool:
    return any(metric in e.higher for e in history.entries)


def series(history: History) -> list[tuple[str, str]]:
    """Every (benchmark, metric) the history holds, sorted."""
    return sorted({(b, m) for e in history.entries for b, ms in e.medians.items() for m in ms})


def series_changes(
    history: History, benchmark: str, metric: str, *, alpha: float = 0.01
) -> list[SeriesChange]:
    """The change points of one metric over the promotions that measured it, oldest first."""
    points = [p for p in trend(history, benchmark, metric) if p.value > 0]
    found = change_points([p.value for p in points], alpha=alpha) if len(points) >= 6 else []
    return [
        SeriesChange(
            benchmark=benchmark,
            metric=metric,
            unit=_unit(history, metric),
            higher_is_better=_higher(history, metric),
            point=c,
            from_commit=points[c.index - 1].commit,
            to_commit=points[c.index].commit,
            promoted=points[c.index].promoted,
        )
        for c in found
    ]


def all_changes(
    history: History, benchmark: str | None = None, *, alpha: float = 0.01
) -> list[SeriesChange]:
    """The change points of every metric (of ``benchmark`` only, when given)."""
    return [
        change
        for name, metric in series(history)
        if benchmark is None or name == benchmark
        for change in series_changes(history, name, metric, alpha=alpha)
    ]


def recent_changes(history: History, promotions: int = 3) -> list[SeriesChange]:
    """Change points whose new level began at one of the newest ``promotions`` promotions: what
    a promotion newly shows (a level is confirmed once 3 promotions stand on each side)."""
    newest = {e.promoted for e in history.entries[:promotions]}
    return [c for c in all_changes(history) if c.promoted in newest]


def _budget(drift: Mapping[str, tuple[float, int]], metric: str) -> tuple[float, int] | None:
    """The budget of ``metric``: its own name first, then its family."""
    if metric in drift:
        return drift[metric]
    return drift.get(metric.split("@", 1)[0].split(".", 1)[0])


def drifts(history: History, drift: Mapping[str, tuple[float, int]]) -> list[Drift]:
    """Each metric with a budget whose level over its window moved beyond it toward worse:
    the median of the newest ``LEVEL_POINTS`` promotions of the window against the median of
    its oldest ones (fewer at each end for short windows), so one noisy promotion moves
    neither end."""
    found: list[Drift] = []
    if not drift:
        return found
    for benchmark, metric in series(history):
        budget = _budget(drift, metric)
        if budget is None:
            continue
        limit, window = budget
        points = [p for p in trend(history, benchmark, metric) if p.value > 0][-(window + 1) :]
        if len(points) < 2:
            continue
        k = max(1, min(LEVEL_POINTS, len(points) // 4))
        then = stats.median([p.value for p in points[:k]])
        now = stats.median([p.value for p in points[-k:]])
        higher = _higher(history, metric)
        change = (then / now - 1.0) if higher else (now / then - 1.0)
        if change <= limit:
            continue
        moves = tuple(
            c for c in series_changes(history, benchmark, metric) if c.worse and _within(points, c)
        )
        found.append(
            Drift(
                benchmark=benchmark,
                metric=metric,
                change=change,
                budget=limit,
                window=len(points) - 1,
                then=points[0],
                now=points[-1],
                unit=_unit(history, metric),
                moves=moves,
            )
        )
    return found


def _within(points: list[TrendPoint], change: SeriesChange) -> bool:
    """Whether ``change`` happened inside the window ``points`` (its new level's first
    promotion is one of them, after the first)."""
    return change.promoted in {p.promoted for p in points[1:]}
