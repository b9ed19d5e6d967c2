"""The bounded history of promoted baselines: one summary per promotion, newest first. Pure.

A baseline keeps raw samples; its history keeps only what a trend needs: per (benchmark, metric)
the median of the per-round values and how many rounds back it, plus the commit, dates and
environment of the promotion. The list is cut to ``limit`` entries (default 30) at every
promotion, so the file grows with the number of benchmarks, never with time: about 40 bytes per
metric per promotion (docs/baselines.md gives the sizes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.core import stats
from gate.core.types import Direction, RunRecord
from gate.errors import BaselineError
from gate.store.records import PLAUSIBLE_OTHER

# Format history:
#   1 (perf-gate 0.1): entries newest first; per entry commit, ref, created, promoted,
#     environment key, tool version, config digest, file hashes, units and medians.
FORMAT = 1
KIND = "perf-gate baseline history"
DEFAULT_LIMIT = 30
SIGNIFICANT_DIGITS = 6


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One promoted baseline, summarized: ``medians[benchmark][metric] = (median, rounds)``."""

    commit: str | None
    ref: str | None
    created: str
    promoted: str
    environment_key: str
    tool_version: str = ""
    config_digest: str = ""
    files: Mapping[str, str] = field(default_factory=dict)
    units: Mapping[str, str] = field(default_factory=dict)
    medians: Mapping[str, Mapping[str, tuple[float, int]]] = field(default_factory=dict)
    higher: frozenset[str] = frozenset()  # the metrics where higher is better


@dataclass(frozen=True, kw_only=True)
class History:
    """Promotions newest first, at most ``limit`` of them."""

    entries: tuple[Entry, ...] = ()
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True)
class TrendPoint:
    commit: str | None
    promoted: str
    value: float
    rounds: int


def _rounded(value: float) -> float:
    """Six significant digits: far finer than run-to-run noise, and half the bytes of repr."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value))))


def summarize(record: RunRecord, *, key: str, promoted: str) -> Entry:
    """The history entry of ``record`` promoted at ``promoted`` under environment ``key``."""
    medians: dict[str, dict[str, tuple[float, int]]] = {}
    units: dict[str, str] = {}
    higher = frozenset(
        s.metric.name for s in record.samples if s.metric.direction is Direction.HIGHER
    )
    for sample in record.samples:
        medians.setdefault(sample.benchmark, {})[sample.metric.name] = (
            _rounded(stats.median(sample.values)),
            len(sample.values),
        )
        units[sample.metric.name] = sample.metric.unit
    return Entry(
        commit=record.git.commit,
        ref=record.git.ref,
        created=record.created,
        promoted=promoted,
        environment_key=key,
        tool_version=record.tool_version,
        config_digest=record.config_digest,
        files=dict(record.files),
        units=units,
        medians=medians,
        higher=higher,
    )


def add(history: History, entry: Entry, limit: int | None = None) -> History:
    """``history`` with ``entry`` first, cut to ``limit`` (default: the history's own) entries."""
    limit = limit or history.limit
    return History(entries=(entry, *history.entries)[:limit], limit=limit)


def trend(history: History, benchmark: str, metric: str) -> list[TrendPoint]:
    """The medians of one metric over the promotions that measured it, oldest first."""
    points = []
    for entry in reversed(history.entries):
        value = entry.medians.get(benchmark, {}).get(metric)
        if value is not None:
            points.append(TrendPoint(entry.commit, entry.promoted, value[0], value[1]))
    return points


def to_dict(history: History) -> dict[str, Any]:
    """The JSON-ready form (format ``FORMAT``)."""
    return {
        "format": FORMAT,
        "kind": KIND,
        "limit": history.limit,
        "entries": [
            {
                "commit": e.commit,
                "ref": e.ref,
                "created": e.created,
                "promoted": e.promoted,
                "environment_key": e.environment_key,
                "tool_version": e.tool_version,
                "config_digest": e.config_digest,
                "files": dict(e.files),
                "units": dict(e.units),
                "medians": {
                    bench: {metric: [v, n] for metric, (v, n) in metrics.items()}
                    for bench, metrics in e.medians.items()
                },
                **({"higher": sorted(e.higher)} if e.higher else {}),
            }
            for e in history.entries
        ],
    }


def _fail(path: Path, key: str, message: str) -> BaselineError:
    return BaselineError(
        f"{path}: {key}: {message}; the history is damaged: restore it with "
        "`perf-gate baseline pull --force` or `git checkout` of its .dvc pointer",
        slug="baseline-corrupt",
    )


def _strings(path: Path, raw: Any, key: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise _fail(path, key, "expected an object of strings")
    return {str(k): v for k, v in raw.items()}


def _medians(path: Path, raw: Any, key: str) -> dict[str, dict[str, tuple[float, int]]]:
    if not isinstance(raw, dict):
        raise _fail(path, key, "expected an object")
    result: dict[str, dict[str, tuple[float, int]]] = {}
    for bench, metrics in raw.items():
        if not isinstance(metrics, dict):
            raise _fail(path, f"{key}.{bench}", "expected an object")
        for metric, pair in metrics.items():
            ok = (
                isinstance(pair, list)
                and len(pair) == 2
                and isinstance(pair[0], (int, float))
                and isinstance(pair[1], int)
                and not isinstance(pair[0], bool)
            )
            if not ok:
                raise _fail(path, f"{key}.{bench}.{metric}", "expected [median, rounds]")
            try:  # an integer of hundreds of digits does not fit a float
                median = float(pair[0])
            except OverflowError:
                median = math.inf
            if not math.isfinite(median) or abs(median) > PLAUSIBLE_OTHER or pair[1] < 0:
                raise _fail(
                    path,
                    f"{key}.{bench}.{metric}",
                    f"[{pair[0]!r:.40}, {pair[1]}] is not a median a run can give",
                )
            result.setdefault(str(bench), {})[str(metric)] = (median, int(pair[1]))
    return result


def _string_list(path: Path, raw: Any, key: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise _fail(path, key, "expected a list of metric names")
    return list(raw)


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def from_dict(data: Any, path: Path) -> History:
    """Validate a parsed history file. Raises BaselineError naming the file and the key."""
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise _fail(path, "top level", f"expected a JSON object of kind {KIND!r}")
    if data.get("format") != FORMAT:
        raise BaselineError(
            f"{path}: history format {data.get('format')!r} is not supported (this perf-gate "
            f"reads {FORMAT}); upgrade perf-gate",
            slug="baseline-format",
        )
    limit = data.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise _fail(path, "limit", f"expected a positive integer, found {limit!r}")
    raw_entries = data.get("entries")
    if not isinstance(raw_entries, list):
        raise _fail(path, "entries", "expected a list")
    entries = []
    for index, raw in enumerate(raw_entries):
        key = f"entries[{index}]"
        if not isinstance(raw, dict):
            raise _fail(path, key, "expected an object")
        entries.append(
            Entry(
                commit=_optional_text(raw.get("commit")),
                ref=_optional_text(raw.get("ref")),
                created=str(raw.get("created", "")),
                promoted=str(raw.get("promoted", "")),
                environment_key=str(raw.get("environment_key", "")),
                tool_version=str(raw.get("tool_version", "")),
                config_digest=str(raw.get("config_digest", "")),
                files=_strings(path, raw.get("files", {}), f"{key}.files"),
                units=_strings(path, raw.get("units", {}), f"{key}.units"),
                medians=_medians(path, raw.get("medians", {}), f"{key}.medians"),
                higher=frozenset(_string_list(path, raw.get("higher", []), f"{key}.higher")),
            )
        )
    return History(entries=tuple(entries), limit=limit)
