"""pytest-benchmark's ``benchmark`` fixture under ``--perf-gate``, without importing pytest.

A ``benchmark`` test is measured like a ``perf`` test: one value per worker process, the median
of the rounds pytest-benchmark ran there. This module reads what the fixture measured and sets
how it measures:

- ``round_time``: where the user left ``--benchmark-max-time`` at pytest-benchmark's default,
  the parent run (which only checks that the tests pass) and every worker round give a test
  ``custom.benchmark_round_time`` seconds instead of 1 s;
- ``fix_calls``: in a worker, a test the gate has seen before makes the calls (iterations per
  round x rounds) that its first worker calibrated, so every process of both arms times the
  same work. It replaces the fixture's private calibration step; a pytest-benchmark without
  it (another version) calibrates as usual.
"""

from __future__ import annotations

from typing import Any

from gate.core import stats
from gate.core.types import Direction, Metric, Replication, Sample
from gate.measure.custom import PYTEST_BENCHMARK_MAX_TIME

# pytest-benchmark keeps every round; these are in-process rounds, so a few hundred suffice.
MAX_BENCHMARK_ROUNDS = 1000


def fixture_of(item: Any) -> Any | None:
    """The test's ``benchmark`` fixture object, or None when it does not use one."""
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    return fixture if hasattr(fixture, "_max_time") else None


def shorten(fixture: Any, seconds: float) -> None:
    """Give the fixture ``seconds`` per test where its time is pytest-benchmark's default (not
    set on the command line, in addopts or by a ``benchmark`` marker)."""
    if fixture._max_time == PYTEST_BENCHMARK_MAX_TIME:
        fixture._max_time = seconds


def fix_calls(fixture: Any, iterations: int, rounds: int) -> None:
    """Make the fixture run ``rounds`` rounds of ``iterations`` calls (``benchmark(fn)``;
    ``pedantic`` is fixed by the test itself)."""
    if not callable(getattr(fixture, "_calibrate_timer", None)) or not hasattr(
        fixture, "_min_rounds"
    ):
        return

    def calibrate(runner: Any) -> tuple[float, int, range]:
        loops = range(iterations)
        return max(float(runner(loops)), 1e-12), iterations, loops

    fixture._calibrate_timer = calibrate
    fixture._max_time = 0.0  # rounds = max(ceil(max_time / duration), min_rounds)
    fixture._min_rounds = rounds


def timings(item: Any) -> dict[str, Any] | None:
    """What the ``benchmark`` fixture measured in this test, as a ``perf`` measurement (its
    rounds' median; the rounds, thinned, as the calls; the calls it made), or None when the
    test did not use it (or pytest-benchmark is disabled)."""
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    metadata = getattr(fixture, "stats", None)
    data = [float(v) for v in getattr(getattr(metadata, "stats", None), "data", None) or []]
    if not data:
        return None
    iterations = getattr(metadata, "iterations", None)
    plain = str(getattr(fixture, "_mode", "")).startswith("benchmark(")
    return {
        "metric": "latency",
        "unit": "s",
        "higher_is_better": False,
        "value": stats.median(data),
        "calls": stats.thin(data, MAX_BENCHMARK_ROUNDS),
        "first_call": None,
        "profile": None,
        "benchmark_calls": [int(iterations), len(data)]
        if plain and isinstance(iterations, int)
        else None,
    }


def in_process_samples(session: Any, failed: dict[str, str]) -> list[Sample]:
    """pytest-benchmark's results of the parent run as in-process samples (advisory)."""
    samples = []
    for bench in getattr(session, "benchmarks", None) or []:
        data = [float(v) for v in getattr(bench.stats, "data", [])]
        data = stats.thin(data, MAX_BENCHMARK_ROUNDS)
        if data and bench.fullname not in failed:
            samples.append(
                Sample(
                    benchmark=bench.fullname,
                    metric=Metric("latency", "s", Direction.LOWER),
                    values=tuple(data),
                    replication=Replication.IN_PROCESS,
                )
            )
    return samples
