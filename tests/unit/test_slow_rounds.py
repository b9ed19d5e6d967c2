"""Slow whole processes: detected per side against that side's own rounds, their rounds dropped
from both arms so that a fresh pair replaces them (gate.core.stats.slow_processes and
gate.decide.sequential's replacement), and the decision's note."""

from __future__ import annotations

import math

from gate.core import stats
from gate.core.types import Direction, Metric, Policy, RunRecord, Sample
from gate.decide.compare import PairedBaseline, decide
from gate.decide.sequential import _Replaced
from gate.measure.paired import PairedRounds


def logs(values: list[float]) -> list[float]:
    return [math.log(v) for v in values]


def test_the_issue_s_two_slow_base_processes_are_found() -> None:
    base = [23.7, 23.5, 52.6, 41.7, 24.0]
    head = [48.6, 48.1, 48.9, 48.7, 48.3]
    assert [i for i, _ in stats.slow_processes(logs(base))] == [2, 3]
    assert stats.slow_processes(logs(head)) == []
    (_, factor), _ = stats.slow_processes(logs(base))
    assert 2.1 < factor < 2.3


def test_ordinary_spread_and_fast_rounds_are_not_slow() -> None:
    assert stats.slow_processes(logs([10.0, 10.3, 9.8, 10.6, 9.9, 10.2])) == []
    assert stats.slow_processes(logs([10.0, 10.1, 5.0, 10.0])) == []  # faster is not slower
    assert stats.slow_processes(logs([10.0, 30.0])) == []  # too few to judge


def entry(median: float) -> dict[str, object]:
    return {"batches": {"1": {"median": median}}}


def test_a_slow_round_is_dropped_from_both_arms_and_noted() -> None:
    rounds = PairedRounds()
    rounds.base["m[torch]"] = [entry(v) for v in (1.0, 1.01, 2.0, 0.99, 1.0)]
    rounds.head["m[torch]"] = [entry(v) for v in (1.5, 1.52, 1.49, 1.51, 1.5)]
    replaced = _Replaced()
    assert replaced.drop_slow(rounds, None, {"m[torch]"}) == [("m[torch]", 3)]
    assert rounds.rounds_of("m[torch]") == 4
    assert [e["batches"]["1"]["median"] for e in rounds.head["m[torch]"]] == [1.5, 1.52, 1.51, 1.5]
    assert replaced.drop_slow(rounds, None, {"m[torch]"}) == []
    assert replaced.notes()["m[torch]"].startswith("1 round(s) replaced by a fresh pair")
    assert "base 2.0x" in replaced.notes()["m[torch]"]


def test_replacements_are_capped_per_benchmark() -> None:
    rounds = PairedRounds()
    replaced = _Replaced(limit=5)
    for _ in range(5 + 3):
        rounds.base["m"] = [entry(v) for v in (1.0, 1.0, 1.0, 1.0, 3.0)]
        rounds.head["m"] = [entry(1.0) for _ in range(5)]
        replaced.drop_slow(rounds, None, {"m"})
    assert len(replaced.why["m"]) == 5


def test_the_replacement_note_reaches_the_row() -> None:
    latency = Metric("latency", "s", Direction.LOWER)
    head = Sample(benchmark="m", metric=latency, values=(1.0, 1.01, 0.99, 1.0))
    base = Sample(benchmark="m", metric=latency, values=(1.0, 1.0, 1.0, 1.01))
    result = decide(
        None,
        RunRecord(samples=(head,), environment={}),
        Policy(),
        paired=PairedBaseline(
            samples=(base,), modes={"m": "ab"}, notes={"m": "1 round(s) replaced by a fresh pair"}
        ),
    )
    (row,) = result.comparisons
    assert row.note.startswith("1 round(s) replaced by a fresh pair")


def test_a_round_s_value_is_its_fastest_block() -> None:
    fast, slow = [1.0, 1.01, 0.99, 1.0, 1.02], [1.8, 1.9, 1.85, 1.8, 1.75]
    # a slow phase over most of the round moves the median, not the fastest block
    times = slow * 6 + fast * 2 + slow * 2
    assert stats.median(times) > 1.7
    assert stats.best_block(times) == 1.0
    # too few calls for two blocks of five: the median of all
    assert stats.best_block([3.0, 1.0, 2.0]) == 2.0
    # a change that scales every call scales the value by as much
    assert stats.best_block([t * 1.1 for t in times]) == 1.1


def test_a_run_with_nothing_paired_has_one_look() -> None:
    # pytest --perf-gate with stored timings only: the same intervals as perf-gate compare
    from gate.decide.sequential import PairedTiming

    latency = Metric("latency", "s", Direction.LOWER)
    nothing = PairedTiming(head=[], base=[], modes={}, base_plans={}, errors=[])
    assert nothing.paired_baseline(5).looks == 1
    base = Sample(benchmark="m", metric=latency, values=(1.0, 1.1))
    some = PairedTiming(head=[], base=[base], modes={"m": "ab"}, base_plans={}, errors=[])
    assert some.paired_baseline(5).looks == 5
