"""gate.store.history: summaries of promoted baselines, the bound, trends and the file format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gate.core.types import Direction, GitInfo, Metric, RunRecord, Sample
from gate.errors import BaselineError
from gate.store import history as hist

LATENCY = Metric("latency", "s", Direction.LOWER)
MEMORY = Metric("memory.peak", "B", Direction.LOWER)


def record(commit: str, latency: float, calls: int = 1000) -> RunRecord:
    return RunRecord(
        samples=(
            Sample(
                benchmark="m[torch]",
                metric=LATENCY,
                values=(latency * 0.99, latency, latency * 1.01),
                calls=tuple(latency for _ in range(calls)),
            ),
            Sample(benchmark="m[torch]", metric=MEMORY, values=(2.5e8, 2.5e8)),
        ),
        environment={"key": "abc"},
        git=GitInfo(commit=commit, ref="main"),
        created="2026-01-01T00:00:00+00:00",
        files={"model.onnx": "0" * 32},
    )


def test_summary_keeps_medians_and_rounds_not_raw_samples() -> None:
    entry = hist.summarize(record("c1", 1.234567891e-4), key="abc", promoted="t1")
    assert entry.medians == {"m[torch]": {"latency": (1.23457e-4, 3), "memory.peak": (2.5e8, 2)}}
    assert entry.units == {"latency": "s", "memory.peak": "B"}
    assert (entry.commit, entry.ref, entry.environment_key) == ("c1", "main", "abc")
    assert entry.files == {"model.onnx": "0" * 32}
    text = json.dumps(hist.to_dict(hist.History(entries=(entry,))))
    assert "1.234567891e-4" not in text  # no raw values, and medians rounded


def test_history_is_newest_first_and_bounded() -> None:
    history = hist.History(limit=3)
    for index in range(5):
        entry = hist.summarize(
            record(f"c{index}", 1e-4 * (index + 1)), key="k", promoted=f"t{index}"
        )
        history = hist.add(history, entry)
    assert [e.commit for e in history.entries] == ["c4", "c3", "c2"]
    assert history.limit == 3
    shorter = hist.add(history, history.entries[0], limit=2)
    assert len(shorter.entries) == 2
    assert shorter.limit == 2


def test_trend_is_oldest_first_and_skips_promotions_without_the_metric() -> None:
    history = hist.History()
    for index, latency in enumerate((1e-4, 2e-4, 3e-4)):
        history = hist.add(
            history, hist.summarize(record(f"c{index}", latency), key="k", promoted=f"t{index}")
        )
    points = hist.trend(history, "m[torch]", "latency")
    assert [p.value for p in points] == [1e-4, 2e-4, 3e-4]
    assert [p.commit for p in points] == ["c0", "c1", "c2"]
    assert points[0].rounds == 3
    assert hist.trend(history, "m[torch]", "throughput@32") == []
    assert hist.trend(history, "other", "latency") == []


def test_round_trip_through_json(tmp_path: Path) -> None:
    history = hist.add(
        hist.History(limit=5), hist.summarize(record("c", 1e-4), key="k", promoted="t")
    )
    data = json.loads(json.dumps(hist.to_dict(history)))
    assert hist.from_dict(data, tmp_path / "h.json") == history


def test_size_grows_with_benchmarks_not_with_raw_calls() -> None:
    small = hist.summarize(record("c", 1e-4, calls=10), key="k", promoted="t")
    large = hist.summarize(record("c", 1e-4, calls=10_000), key="k", promoted="t")
    assert hist.to_dict(hist.History(entries=(small,))) == hist.to_dict(
        hist.History(entries=(large,))
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(kind="something else"), "top level: expected a JSON object of kind"),
        (lambda d: d.update(limit=0), "limit: expected a positive integer"),
        (lambda d: d.update(entries={}), "entries: expected a list"),
        (lambda d: d["entries"].append(3), "entries[1]: expected an object"),
        (
            lambda d: d["entries"][0]["medians"]["m[torch]"].update(latency="fast"),
            "entries[0].medians.m[torch].latency: expected [median, rounds]",
        ),
        (lambda d: d["entries"][0].update(files={"a": 1}), "entries[0].files: expected an object"),
        (
            lambda d: d["entries"][0]["medians"]["m[torch]"].update(latency=[10**400, 5]),
            "entries[0].medians.m[torch].latency: [1000000000",
        ),
        (
            lambda d: d["entries"][0]["medians"]["m[torch]"].update(latency=[math.inf, 5]),
            "is not a median a run can give",
        ),
        (
            lambda d: d["entries"][0]["medians"]["m[torch]"].update(latency=[1e-4, -1]),
            "is not a median a run can give",
        ),
    ],
)
def test_damaged_history_names_the_key(change, message: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    history = hist.add(hist.History(), hist.summarize(record("c", 1e-4), key="k", promoted="t"))
    data = hist.to_dict(history)
    change(data)
    with pytest.raises(BaselineError) as raised:
        hist.from_dict(data, tmp_path / "h.json")
    assert message in str(raised.value)
    assert raised.value.slug == "baseline-corrupt"


def test_unknown_history_format_names_the_version(tmp_path: Path) -> None:
    data = hist.to_dict(hist.History())
    data["format"] = 9
    with pytest.raises(BaselineError, match="history format 9 is not supported") as raised:
        hist.from_dict(data, tmp_path / "h.json")
    assert raised.value.slug == "baseline-format"
