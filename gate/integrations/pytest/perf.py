"""The ``perf`` fixture's object: custom benchmarks written as ordinary pytest tests.

Three modes. ``quick`` (no --perf-gate, and the parent process of a --perf-gate run): each
measurement calls the function once, so the test runs fast and never rots. ``measure`` (inside a
round's worker process): real timing, kept for the parent. The parent then turns the worker
rounds into samples with one value per process. A worker started for a diagnosis
(``profile_dir`` set) profiles the timed functions with cProfile instead of timing them.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.config import MeasureSettings
from gate.core import stats
from gate.core.percentiles import CONFIDENCE
from gate.errors import ConfigError
from gate.measure.worker.load import (
    LoadResult,
    LoadSettingError,
    LoadSettings,
    Search,
    max_rate,
    max_rate_check,
    no_rate_found,
    run_async_load,
    run_load,
)
from gate.measure.worker.memory import (
    current_rss_bytes,
    high_water_rss_bytes,
    peak_rss_bytes,
    reset_peak_rss,
)
from gate.measure.worker.operators import MIN_WARMUP, profile_python
from gate.measure.worker.timing import time_calls
from gate.store.records import PLAUSIBLE, PLAUSIBLE_OTHER
from gate.units import UNIT_BYTES, UNIT_RATE, UNIT_SECONDS

MAX_CALLS = 2000


@dataclass
class PerfMeasurement:
    """What one ``perf.*`` call measured in one process (JSON-able)."""

    metric: str
    unit: str
    higher_is_better: bool
    value: float
    calls: list[float] = field(default_factory=list)
    first_call: float | None = None
    profile: dict[str, Any] | None = None  # a diagnosis worker's operator profile


class Perf:
    """``perf.latency``, ``perf.throughput``, ``perf.memory`` and ``perf.record`` for one test."""

    def __init__(
        self,
        nodeid: str,
        settings: MeasureSettings,
        *,
        measuring: bool,
        profile_dir: Path | None = None,
        root: Path | None = None,
    ) -> None:
        self.nodeid = nodeid
        self.settings = settings
        self.measuring = measuring
        self.profile_dir = profile_dir
        self.root = root or Path.cwd()
        self.measurements: dict[str, PerfMeasurement] = {}
        self._profiles: dict[str, dict[str, Any]] = {}

    def _add(self, measurement: PerfMeasurement) -> None:
        if measurement.metric in self.measurements:
            raise ConfigError(
                f"{self.nodeid}: metric {measurement.metric!r} is measured twice in one test; "
                "pass name='...' to tell them apart",
                slug="perf-fixture",
            )
        self.measurements[measurement.metric] = measurement

    @staticmethod
    def _name(kind: str, name: str | None) -> str:
        return kind if name is None else f"{kind}.{name}"

    def _time(
        self, fn: Callable[[], object], metric: str, items: int = 1
    ) -> tuple[object, list[float], float | None]:
        if not self.measuring:
            return fn(), [], None
        if self.profile_dir is not None:
            return self._profile(fn, metric, items)
        timed = time_calls(
            fn,
            warmup=self.settings.warmup,
            min_calls=self.settings.min_calls,
            min_time=self.settings.min_time,
        )
        # The result comes from one more, untimed call, so the first timed call is the real first.
        return fn(), list(timed.times), timed.first_call

    def _profile(
        self, fn: Callable[[], object], metric: str, items: int
    ) -> tuple[object, list[float], float | None]:
        """Warm-up, then cProfile over repeated calls; the profile goes with the measurement
        (its time per call stands in for the timing, which the parent does not use)."""
        assert self.profile_dir is not None
        for _ in range(max(self.settings.warmup, MIN_WARMUP)):
            fn()
        digest = hashlib.sha1(self.nodeid.encode()).hexdigest()[:12]
        profile = profile_python(
            fn, trace=self.profile_dir / f"{digest}-{metric}.json", root=self.root, items=items
        )
        self._profiles[metric] = profile.to_dict()
        return fn(), [profile.total] if profile.total > 0 else [], None

    def latency(
        self, fn: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any
    ) -> Any:
        """Time ``fn(*args, **kwargs)`` per call; returns its result. Metric ``latency[.name]``."""
        metric = self._name("latency", name)
        result, times, first = self._time(lambda: fn(*args, **kwargs), metric)
        value = stats.best_block(times) if times else math.nan
        self._add(
            PerfMeasurement(
                metric,
                UNIT_SECONDS,
                False,
                value,
                stats.thin(times, MAX_CALLS),
                first,
                self._profiles.pop(metric, None),
            )
        )
        return result

    def throughput(
        self, fn: Callable[..., Any], *args: Any, items: int, name: str | None = None, **kwargs: Any
    ) -> Any:
        """Items per second of ``fn`` handling ``items`` items a call; ``throughput[.name]``."""
        if isinstance(items, bool) or not isinstance(items, int) or items < 1:
            raise ConfigError(
                f"{self.nodeid}: perf.throughput(items=...) must be a positive integer"
            )
        metric = self._name("throughput", name)
        result, times, first = self._time(lambda: fn(*args, **kwargs), metric, items)
        value = items / stats.best_block(times) if times else math.nan
        self._add(
            PerfMeasurement(
                metric, UNIT_RATE, True, value, [], first, self._profiles.pop(metric, None)
            )
        )
        return result

    def memory(
        self, fn: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any
    ) -> Any:
        """Peak RSS growth while ``fn`` runs, in bytes. Metric ``memory[.name]``."""
        before = current_rss_bytes() or peak_rss_bytes()
        reset = reset_peak_rss()
        result = fn(*args, **kwargs)
        after = (high_water_rss_bytes() if reset else None) or peak_rss_bytes()
        self._add(
            PerfMeasurement(
                self._name("memory", name), UNIT_BYTES, False, float(max(0, after - before))
            )
        )
        return result

    def load(
        self,
        fn: Callable[..., Any],
        *,
        rate: float,
        duration: float | None = None,
        queries: int | None = None,
        threads: int = 1,
        max_batch: int = 1,
        max_wait: float = 0.0,
        max_queue: int | None = None,
        percentiles: tuple[float, ...] = (0.5, 0.9, 0.99),
        name: str | None = None,
    ) -> LoadResult | None:
        """Serve ``fn`` under open-loop Poisson arrivals at ``rate`` queries per second for
        ``duration`` seconds or ``queries`` queries, with ``threads`` serving (``fn()`` per
        query; with ``max_batch`` > 1, ``fn(batch_size)`` per batch of queries that waited
        together, up to ``max_wait`` seconds; an ``async def`` function runs on an asyncio
        loop, ``threads`` queries in flight at most). Metrics, latency from each query's arrival:
        ``latency.p50@<rate>qps`` ... (lower is better) and ``load.achieved@<rate>qps``
        (queries per second served, higher is better); ``[.name]`` after the kind. A
        percentile the run has too few queries for is refused (docs/load.md). Returns the
        ``LoadResult`` where measuring, else None (one call, so the test stays quick)."""
        needed = [stats.min_calls_for_percentile(q, CONFIDENCE) for q in percentiles if 0 < q < 1]
        settings = LoadSettings(
            rate=rate,
            duration=duration,
            queries=queries,
            threads=threads,
            max_batch=max_batch,
            max_wait=max_wait,
            max_queue=max_queue,
            min_queries=max(needed, default=0),
        )
        try:
            settings.check()
        except LoadSettingError as exc:
            raise ConfigError(f"{self.nodeid}: perf.{exc}", slug="perf-fixture") from None
        expected = min(
            rate * duration if duration is not None else math.inf,
            queries if queries is not None else math.inf,
        )
        for q in percentiles:
            if not 0 < q < 1:
                raise ConfigError(
                    f"{self.nodeid}: perf.load(percentiles=...): {q!r} is not between 0 and 1 "
                    "(0.99 is p99)",
                    slug="perf-fixture",
                )
            least = stats.min_calls_for_percentile(q, CONFIDENCE)
            if expected < least:
                raise ConfigError(
                    f"{self.nodeid}: perf.load: p{q * 100:g} needs at least {least} queries to "
                    f"be bounded at {CONFIDENCE:.0%} confidence, and this run schedules about "
                    f"{expected:.0f}; raise duration, rate or queries, or drop p{q * 100:g} "
                    "from percentiles",
                    slug="perf-fixture",
                )

        def call(batch: int) -> object:
            return fn(batch) if max_batch > 1 else fn()

        is_async = inspect.iscoroutinefunction(fn)
        if not self.measuring or self.profile_dir is not None:
            if is_async:
                asyncio.run(fn())
            else:
                call(1)
            return None
        try:
            result = run_async_load(fn, settings) if is_async else run_load(call, settings)
        except LoadSettingError as exc:
            raise ConfigError(f"{self.nodeid}: perf.{exc}", slug="perf-fixture") from None
        if result.failed:
            raise ConfigError(
                f"{self.nodeid}: perf.load: {result.failed} of {result.offered} queries raised "
                f"({result.error})",
                slug="perf-fixture",
            )
        tag = f"@{rate:g}qps"
        for found in result.percentiles(percentiles):
            if not found.valid:  # fewer queries than scheduled (a Poisson draw, drops)
                raise ConfigError(
                    f"{self.nodeid}: perf.load: {found.name} needs at least {found.needed} "
                    f"queries; this run completed {result.completed}; raise duration or rate",
                    slug="perf-fixture",
                )
            metric = self._name(f"latency.{found.name}", name) + tag
            self._add(PerfMeasurement(metric, UNIT_SECONDS, False, found.value))
        metric = self._name("load.achieved", name) + tag
        self._add(PerfMeasurement(metric, UNIT_RATE, True, result.achieved_rate))
        return result

    def max_rate(
        self,
        fn: Callable[..., Any],
        *,
        slo: float,
        percentile: float = 0.99,
        threads: int = 1,
        time_budget: float = 30.0,
        name: str | None = None,
    ) -> Search | None:
        """The highest Poisson arrival rate at which ``fn``'s ``percentile`` latency (from
        arrival, its bound) stays under ``slo`` seconds with ``threads`` serving: metric
        ``max_qps@p99<20ms`` (queries per second, higher is better). A bisection of load runs
        within ``time_budget`` seconds per round (docs/load.md); an ``async def`` function is
        served on an asyncio loop, ``threads`` queries in flight. Returns the search where
        measuring, else None (one call)."""
        is_async = inspect.iscoroutinefunction(fn)
        loop = asyncio.new_event_loop() if is_async else None

        def once(batch: int = 1) -> object:
            return loop.run_until_complete(fn()) if loop is not None else fn()

        try:
            if not self.measuring or self.profile_dir is not None:
                max_rate_check(slo, percentile, time_budget)
                once()
                return None
            search = max_rate(
                once,
                slo=slo,
                q=percentile,
                threads=threads,
                time_budget=time_budget,
                serve=(lambda settings: run_async_load(fn, settings)) if is_async else None,
            )
        except LoadSettingError as exc:
            raise ConfigError(f"{self.nodeid}: perf.max_rate: {exc}", slug="perf-fixture") from None
        finally:
            if loop is not None:
                loop.close()
        if search.best is None:
            why = no_rate_found(search, time_budget, "time_budget")
            raise ConfigError(f"{self.nodeid}: perf.max_rate: {why}", slug="perf-fixture")
        metric = self._name("max_qps", name) + f"@p{percentile * 100:g}<{slo * 1000:g}ms"
        self._add(PerfMeasurement(metric, UNIT_RATE, True, search.best))
        return search

    def record(
        self, name: str, value: float, *, unit: str = "", higher_is_better: bool = False
    ) -> None:
        """Any number the test computed itself (an accuracy, a size, a count)."""
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise ConfigError(
                f"{self.nodeid}: perf.record({name!r}) needs a finite number, got {value!r}"
            )
        largest = PLAUSIBLE.get(unit, PLAUSIBLE_OTHER)
        if abs(value) > largest:  # it would be written, then refused as a damaged record
            raise ConfigError(
                f"{self.nodeid}: perf.record({name!r}, {value!r}): beyond any plausible value "
                f"(at most {largest:g} {unit or 'without a unit'} in magnitude); record it in "
                "a larger unit or check the computation"
            )
        self._add(PerfMeasurement(name, unit, higher_is_better, float(value)))

    def to_json(self) -> dict[str, Any]:
        return {m.metric: vars(m) for m in self.measurements.values()}
