"""gate.measure.worker.load: open-loop Poisson arrivals served by real threads, with a real
onnxruntime session; queueing shows in the tail, a short run's p99 is refused, and bad settings
are one line."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from pathlib import Path

import pytest

from gate.measure.worker.load import (
    LoadSettingError,
    LoadSettings,
    max_rate,
    run_async_load,
    run_load,
)

from ._support import write_matmul_onnx


@pytest.fixture(scope="module")
def session_call(tmp_path_factory: pytest.TempPathFactory):
    """A real onnxruntime session (one intra-op thread; it releases the GIL while it runs) and
    its service time per call."""
    np = pytest.importorskip("numpy")
    ort = pytest.importorskip("onnxruntime")
    path = write_matmul_onnx(tmp_path_factory.mktemp("load") / "m.onnx", width=256, layers=24)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.ones((1, 16), np.float32)

    def call(batch: int) -> None:
        session.run(None, {name: x})

    for _ in range(20):
        call(1)
    started = time.perf_counter()
    for _ in range(50):
        call(1)
    return call, (time.perf_counter() - started) / 50


def test_one_thread_above_its_capacity_queues_and_two_threads_do_not() -> None:
    service = 0.002  # a call that waits 2 ms without holding a core: 500 queries/s per thread

    def call(batch: int) -> None:
        time.sleep(service)

    rate = 650.0  # 130% of what one thread serves, 65% of two
    one = run_load(call, LoadSettings(rate=rate, duration=1.5, threads=1, seed=3))
    two = run_load(call, LoadSettings(rate=rate, duration=1.5, threads=2, seed=3))
    assert one.offered == two.offered > 459
    assert one.completed == one.offered  # every query served, late
    p99_one, p99_two = one.percentiles()[2], two.percentiles()[2]
    assert p99_one.valid
    assert p99_two.valid
    # one thread's backlog grows for the whole run: its tail is many service times long
    assert p99_one.value > 20 * service
    assert p99_one.value > 3 * p99_two.value
    assert one.achieved_rate < 0.9 * rate


def test_a_real_onnxruntime_session_serves_every_query_under_load(session_call) -> None:
    call, service = session_call
    result = run_load(call, LoadSettings(rate=0.4 / service, queries=600, threads=2, seed=8))
    assert result.completed == result.offered == 600
    assert result.failed == result.dropped == 0
    p50, _, p99 = result.percentiles()
    assert p99.valid
    assert p50.value >= 0.3 * service  # from arrival: at least (about) one call long
    assert p99.value >= p50.value


def test_a_short_runs_p99_is_refused_with_the_queries_it_needs(session_call) -> None:
    call, service = session_call
    result = run_load(call, LoadSettings(rate=0.3 / service, queries=100, seed=1))
    assert result.completed == 100
    p50, p90, p99 = result.percentiles()
    assert p50.valid
    assert p90.valid  # 44 queries suffice for p90
    assert not p99.valid
    assert p99.needed == 459
    assert math.isfinite(p99.value)


def test_dynamic_batching_groups_queries_that_wait_together() -> None:
    def call(batch: int) -> None:
        time.sleep(0.002)

    result = run_load(
        call, LoadSettings(rate=2000, queries=400, threads=1, max_batch=8, max_wait=0.001, seed=5)
    )
    assert result.completed == 400
    assert sum(result.batches) == 400
    assert max(result.batches) == 8
    assert len(result.batches) < 400 / 3


def test_a_call_that_raises_is_counted_not_raised() -> None:
    def call(batch: int) -> None:
        raise RuntimeError("model exploded")

    result = run_load(call, LoadSettings(rate=500, queries=50, threads=2, seed=1))
    assert result.failed == 50
    assert result.completed == 0
    assert result.error == "RuntimeError: model exploded"
    assert result.percentiles() == []


def test_a_full_queue_drops_queries() -> None:
    def call(batch: int) -> None:
        time.sleep(0.02)

    result = run_load(call, LoadSettings(rate=400, duration=0.5, max_queue=4, seed=2))
    assert result.dropped > 0
    assert result.completed + result.dropped == result.offered


def test_the_scheduler_keeps_time_without_a_busy_pool() -> None:
    result = run_load(lambda batch: None, LoadSettings(rate=1000, duration=0.5, seed=4))
    assert result.completed == result.offered
    late = sorted(result.lateness)
    assert late[len(late) // 2] < 0.001  # the median query is dispatched on time (< 1 ms)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (LoadSettings(rate=0, duration=1), "load.rate: expected queries per second above 0"),
        (LoadSettings(rate=-5, duration=1), "load.rate: expected"),
        (LoadSettings(rate=float("nan"), duration=1), "load.rate: expected"),
        (LoadSettings(rate=True, duration=1), "load.rate: expected"),  # type: ignore[arg-type]
        (LoadSettings(rate=10), "load: give a duration or a number of queries"),
        (LoadSettings(rate=10, duration=0), "load.duration: expected seconds above 0"),
        (LoadSettings(rate=10, duration=1e9), "load.duration: expected seconds above 0"),
        (LoadSettings(rate=10, queries=0), "load.queries: expected a whole number"),
        (LoadSettings(rate=10, queries=5, threads=0), "load.threads: expected"),
        (LoadSettings(rate=10, queries=5, max_batch=0), "load.max_batch: expected"),
        (LoadSettings(rate=10, queries=5, max_wait=-1), "load.max_wait: expected"),
        (LoadSettings(rate=10, queries=5, max_queue=0), "load.max_queue: expected"),
    ],
)
def test_bad_settings_are_one_line(settings: LoadSettings, message: str) -> None:
    with pytest.raises(LoadSettingError) as caught:
        run_load(lambda batch: None, settings)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_arrivals_are_poisson_at_the_rate(tmp_path: Path) -> None:
    offsets = LoadSettings(rate=1000, duration=20, seed=9).arrivals()
    assert abs(len(offsets) / 20 - 1000) < 30  # 20,000 expected, sd about 141
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    mean = sum(gaps) / len(gaps)
    share_above_mean = sum(g > mean for g in gaps) / len(gaps)
    assert abs(share_above_mean - math.exp(-1)) < 0.02  # exponential: P(gap > mean) = 1/e


def test_a_duration_run_schedules_at_least_the_minimum_queries() -> None:
    for seed in range(20):
        offsets = LoadSettings(rate=459, duration=1.0, seed=seed, min_queries=459).arrivals()
        assert len(offsets) >= 459
    short = LoadSettings(rate=100, duration=1.0, seed=1).arrivals()
    assert 60 < len(short) < 140  # without a minimum: the duration's draw


@pytest.mark.slow
def test_the_max_rate_search_finds_more_capacity_with_more_threads() -> None:
    def call(batch: int) -> None:
        time.sleep(0.002)

    one = max_rate(call, slo=0.02, threads=1, time_budget=10, precision=0.1, seed=1)
    two = max_rate(call, slo=0.02, threads=2, time_budget=10, precision=0.1, seed=1)
    assert one.best is not None
    assert two.best is not None
    assert one.best < 500  # a 2 ms call: one thread cannot serve 500 queries/s
    assert two.best > 1.3 * one.best
    for search in (one, two):
        passed = [p.rate for p in search.probes if p.passed]
        failed = [p.rate for p in search.probes if not p.passed]
        assert search.best == max(passed)
        assert all(p.bound is None or p.bound > 0.02 for p in search.probes if not p.passed)
        assert failed  # the search found where it fails, not only where it passes
        assert search.elapsed < 10 + 15  # the budget, plus the probe that was running


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"slo": 0}, "load.slo: expected seconds above 0"),
        ({"slo": 0.01, "q": 1.0}, "load.percentile: expected a number between 0 and 1"),
        ({"slo": 0.01, "time_budget": 0}, "load.time_budget: expected seconds above 0"),
        ({"slo": 0.01, "threads": 0}, "load.threads: expected 1 to 256"),
        ({"slo": 0.01, "start": -1}, "load.start: expected a rate above 0"),
    ],
)
def test_bad_search_settings_are_one_line(arguments: dict, message: str) -> None:
    with pytest.raises(LoadSettingError) as caught:
        max_rate(lambda batch: None, **arguments)
    assert str(caught.value).startswith(message)


def test_an_async_function_queues_behind_its_concurrency_limit() -> None:
    async def call() -> None:
        await asyncio.sleep(0.002)

    one = run_async_load(call, LoadSettings(rate=650, duration=1.5, threads=1, seed=3))
    four = run_async_load(call, LoadSettings(rate=650, duration=1.5, threads=4, seed=3))
    assert one.completed == one.offered == four.completed == four.offered
    p99_one, p99_four = one.percentiles()[2], four.percentiles()[2]
    assert p99_one.value > 20 * 0.002  # one in flight at a time: the backlog grows
    assert p99_one.value > 3 * p99_four.value


def test_an_async_function_that_raises_is_counted_and_batching_is_refused() -> None:
    async def call() -> None:
        raise ValueError("bad request")

    result = run_async_load(call, LoadSettings(rate=500, queries=30, threads=2, seed=1))
    assert result.failed == 30
    assert result.completed == 0
    assert result.error == "ValueError: bad request"
    with pytest.raises(LoadSettingError, match=r"load\.max_batch: batching needs a plain function"):
        run_async_load(call, LoadSettings(rate=10, queries=5, max_batch=4))
