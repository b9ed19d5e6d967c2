"""The trend of the key metric over recent baselines: input points and Mermaid charts.

The history of baselines is an optional input (``--history F``, shape in docs/report.md). Each
chart is a Mermaid ``xychart-beta`` (GitHub renders it) and always comes with a table of the
same numbers, for readers whose renderer does not draw Mermaid.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gate.core.changepoints import change_points
from gate.errors import ConfigError
from gate.report.content import SEVERITY, UNIT_FRACTION, number
from gate.report.escape import chart_text, escape_html, escape_text, safe
from gate.report.view import format_quantity
from gate.units import UNIT_BYTES, UNIT_RATE, UNIT_SECONDS

if TYPE_CHECKING:
    from markupsafe import Markup

_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")
# The line's colour: GitHub draws Mermaid in the reader's theme, and the themes' own first plot
# colours (#ECECFF on white, #FFF4DD...) are barely visible. This blue has a contrast of 3.7:1
# on GitHub's light background and 5:1 on its dark one.
LINE_COLOUR = "#2f81f7"
THEME = '%%{init: {"themeVariables": {"xyChart": {"plotColorPalette": "' + LINE_COLOUR + '"}}}}%%'


@dataclass(frozen=True, kw_only=True)
class TrendPoint:
    commit: str
    date: str | None
    value: float


@dataclass(frozen=True, kw_only=True)
class TrendSeries:
    """The key metric of one benchmark over recent baselines, oldest first."""

    benchmark: str
    metric: str
    unit: str
    points: tuple[TrendPoint, ...]


HISTORY_KIND = "perf-gate baseline history"


def _history_points(data: Mapping[str, Any], source: str) -> list[dict[str, Any]]:
    """Points from a baseline history file: ``entries`` newest first, each with commit,
    ``promoted`` date, ``units`` per metric and ``medians[benchmark][metric] = [median, n]``."""
    entries = data.get("entries")
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: entries: expected a list", slug="history-file")
    points = []
    for index, entry in enumerate(reversed(entries)):
        where = f"{source}: entries[{len(entries) - 1 - index}]"
        medians = entry.get("medians") if isinstance(entry, Mapping) else None
        if not isinstance(medians, Mapping):
            raise ConfigError(f"{where}.medians: expected an object", slug="history-file")
        units = entry.get("units") if isinstance(entry.get("units"), Mapping) else {}
        for benchmark, metrics in medians.items():
            if not isinstance(metrics, Mapping):
                raise ConfigError(
                    f"{where}.medians.{benchmark}: expected an object", slug="history-file"
                )
            for metric, pair in metrics.items():
                value = pair[0] if isinstance(pair, list) and pair else None
                points.append(
                    {
                        "benchmark": benchmark,
                        "metric": metric,
                        "commit": entry.get("commit") or "unknown",
                        "date": entry.get("promoted") or None,
                        "value": value,
                        "unit": units.get(metric),
                    }
                )
    return points


def trend_from_json(data: object, source: str) -> tuple[TrendSeries, ...]:
    """Trend series from ``--history`` (docs/report.md): a list of points, ``{"points": [...]}``,
    or a baseline history file (kind ``perf-gate baseline history``).

    Each point: benchmark, metric, commit, date (or null), value, optional unit. Points are
    grouped by (benchmark, metric) in file order (oldest first). Raises ConfigError naming the
    point and key that are wrong.
    """
    if isinstance(data, Mapping) and data.get("kind") == HISTORY_KIND:
        data = _history_points(data, source)
    points = data.get("points") if isinstance(data, Mapping) else data
    if not isinstance(points, list):
        raise ConfigError(
            f"{source}: expected a list of points or an object with 'points'", slug="history-file"
        )
    grouped: dict[tuple[str, str], list[TrendPoint]] = {}
    units: dict[tuple[str, str], str] = {}
    for index, point in enumerate(points):
        where = f"{source}: points[{index}]"
        if not isinstance(point, Mapping):
            raise ConfigError(f"{where}: expected an object", slug="history-file")
        for name in ("benchmark", "metric", "commit"):
            if not isinstance(point.get(name), str):
                raise ConfigError(f"{where}.{name}: expected a string", slug="history-file")
        value = point.get("value")
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise ConfigError(f"{where}.value: expected a finite number", slug="history-file")
        date = point.get("date")
        if date is not None and not isinstance(date, str):
            raise ConfigError(f"{where}.date: expected a string or null", slug="history-file")
        key = (point["benchmark"], point["metric"])
        grouped.setdefault(key, []).append(
            TrendPoint(commit=point["commit"], date=date, value=float(value))
        )
        units[key] = str(point.get("unit") or units.get(key) or "")
    return tuple(
        TrendSeries(benchmark=b, metric=m, unit=units[(b, m)], points=tuple(p))
        for (b, m), p in grouped.items()
    )


@dataclass(frozen=True, kw_only=True)
class Chart:
    title: Markup
    mermaid: Markup
    rows: tuple[tuple[Markup, Markup, Markup], ...]


def _display_scale(unit: str, values: Sequence[float]) -> tuple[str, float]:
    """A unit to plot in (``ms``, ``MB``...) chosen from the median value."""
    middle = sorted(values)[len(values) // 2]
    if unit == UNIT_SECONDS:
        for name, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
            if middle >= scale:
                return name, scale
        return "ns", 1e-9
    if unit == UNIT_BYTES:
        for name, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
            if middle >= scale:
                return name, scale
        return "B", 1.0
    if unit == UNIT_FRACTION:
        return "%", 0.01
    if unit == UNIT_RATE:
        return "items/s", 1.0
    return unit, 1.0


def level_moves(series: TrendSeries) -> dict[int, float]:
    """Point index -> the change of the level that starts there (core/changepoints.py)."""
    values = [p.value for p in series.points]
    if len(values) < 6 or any(not (v > 0 and math.isfinite(v)) for v in values):
        return {}
    return {c.index: c.change for c in change_points(values)}


def _chart(series: TrendSeries, current: float | None) -> Chart:
    moves = level_moves(series)
    labels = [
        (p.commit[:7] if _COMMIT.match(p.commit) else chart_text(p.commit, 12))
        + (" ▲" if index in moves else "")
        for index, p in enumerate(series.points)
    ]
    values = [p.value for p in series.points]
    if current is not None:
        labels.append("this PR")
        values.append(current)
    unit_name, scale = _display_scale(series.unit, values)
    scaled = [v / scale for v in values]
    title = chart_text(f"{series.metric} of {series.benchmark}", 60)
    lines = [
        THEME,
        "xychart-beta",
        f'    title "{title}"',
        "    x-axis [" + ", ".join(f'"{label}"' for label in labels) + "]",
        f'    y-axis "{chart_text(unit_name, 12)}"',
        "    line [" + ", ".join(f"{v:.4g}" for v in scaled) + "]",
    ]
    rows = []
    for index, point in enumerate(series.points):
        moved = f" ▲ level moved {moves[index]:+.1%}" if index in moves else ""
        rows.append(
            (
                safe(escape_text(point.commit[:12], 12)),
                safe(escape_text(point.date or "–", 30)),
                safe(format_quantity(point.value, series.unit) + moved),
            )
        )
    if current is not None:
        rows.append((safe("this PR"), safe("–"), safe(format_quantity(current, series.unit))))
    return Chart(
        # the <summary> is raw HTML: entities, not Markdown's backslashes
        title=safe(f"{escape_html(series.metric, 40)} of {escape_html(series.benchmark)}"),
        mermaid=safe("\n".join(lines)),
        rows=tuple(rows),
    )


def charts(
    data: Mapping[str, Any], trend: Sequence[TrendSeries], metric: str, limit: int
) -> list[Chart]:
    """Charts of ``metric``, at most ``limit``: benchmarks whose verdict is worst first."""
    current: dict[tuple[str, str], tuple[float | None, int, float]] = {}
    for item in data["comparisons"]:
        verdict = str(item.get("verdict"))
        severity = SEVERITY.index(verdict) if verdict in SEVERITY else len(SEVERITY)
        relative = number(item.get("relative_change"))
        key = (str(item.get("benchmark")), str(item.get("metric")))
        current[key] = (number(item.get("current")), severity, -abs(relative or 0.0))
    wanted = [s for s in trend if s.metric == metric and s.points]
    wanted.sort(key=lambda s: current.get((s.benchmark, s.metric), (None, len(SEVERITY), 0.0))[1:])
    return [
        _chart(s, current.get((s.benchmark, s.metric), (None, 0, 0.0))[0]) for s in wanted[:limit]
    ]
