"""Serving under load, in the worker: open-loop Poisson arrivals at a target rate, served by a
pool of threads (with optional dynamic batching), latency measured from each query's scheduled
arrival so queueing counts.

MLPerf LoadGen's server scenario is the reference: queries arrive whether or not the system
kept up (open loop), at exponential gaps of mean 1/rate, and a percentile is reported only with
enough queries (``core/percentiles.py``). Here one dispatcher thread sleeps to about 200 us
before each arrival and spins the rest, puts the query on a queue (or drops it when the queue
holds ``max_queue``) and records how late it was; ``threads`` workers take queries off the
queue, up to ``max_batch`` at a time, waiting at most ``max_wait`` after the first for the
batch to fill, and call ``call(batch_size)``. The interpreter's thread switch interval is
lowered to 50 us for the run, so a worker running Python code does not hold the dispatcher up
for the default 5 ms.

Everything here runs in a worker process (the user's code is called); the parent reads the
result it returns.
"""

from __future__ import annotations

import asyncio
import math
import queue
import random
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from gate.config.load import (
    MAX_DURATION,
    MAX_LOAD_BATCH,
    MAX_QUERIES,
    MAX_RATE,
    MAX_THREADS,
    MAX_WAIT,
)
from gate.core.percentiles import Percentile, percentile

SPIN = 200e-6  # seconds before an arrival the dispatcher stops sleeping and spins
SWITCH_INTERVAL = 50e-6
PROBE_QUERIES = 4  # a max-rate probe runs at most this many times the queries it needs


class LoadSettingError(ValueError):
    """A load setting that cannot run; the message names the setting and what it accepts."""


@dataclass(frozen=True)
class LoadSettings:
    """One load run: ``rate`` queries per second for ``duration`` seconds or ``queries``
    queries (the first reached ends the arrivals), served by ``threads``."""

    rate: float
    duration: float | None = None
    queries: int | None = None
    threads: int = 1
    max_batch: int = 1
    max_wait: float = 0.0  # seconds a batch waits to fill after its first query
    max_queue: int | None = None  # queries waiting beyond this are dropped (None: never)
    seed: int | None = None
    # arrivals go on past ``duration`` until this many are scheduled (LoadGen's minimum query
    # count: a Poisson draw must not leave a percentile short of the queries it needs)
    min_queries: int = 0

    def check(self) -> None:
        """Raise LoadSettingError for a setting that cannot run."""

        def bad(name: str, expected: str, value: object) -> LoadSettingError:
            return LoadSettingError(f"load.{name}: expected {expected}, got {value!r}")

        if not _number(self.rate) or not 0 < self.rate <= MAX_RATE:
            raise bad("rate", f"queries per second above 0 and at most {MAX_RATE:g}", self.rate)
        if self.duration is None and self.queries is None:
            raise LoadSettingError("load: give a duration or a number of queries")
        if self.duration is not None and (
            not _number(self.duration) or not 0 < self.duration <= MAX_DURATION
        ):
            raise bad("duration", f"seconds above 0 and at most {MAX_DURATION:g}", self.duration)
        if self.queries is not None and (
            not isinstance(self.queries, int) or not 1 <= self.queries <= MAX_QUERIES
        ):
            raise bad("queries", f"a whole number from 1 to {MAX_QUERIES}", self.queries)
        if not isinstance(self.threads, int) or not 1 <= self.threads <= MAX_THREADS:
            raise bad("threads", f"a whole number from 1 to {MAX_THREADS}", self.threads)
        if not isinstance(self.max_batch, int) or not 1 <= self.max_batch <= MAX_LOAD_BATCH:
            raise bad("max_batch", f"a whole number from 1 to {MAX_LOAD_BATCH}", self.max_batch)
        if not _number(self.max_wait) or not 0 <= self.max_wait <= MAX_WAIT:
            raise bad("max_wait", f"seconds from 0 to {MAX_WAIT:g}", self.max_wait)
        if self.max_queue is not None and (
            not isinstance(self.max_queue, int) or self.max_queue < 1
        ):
            raise bad("max_queue", "a whole number of 1 or more", self.max_queue)

    def arrivals(self) -> list[float]:
        """Scheduled arrival offsets in seconds: exponential gaps of mean 1/rate."""
        rng = random.Random(self.seed)
        limit = self.queries if self.queries is not None else MAX_QUERIES
        end = self.duration if self.duration is not None else math.inf
        offsets: list[float] = []
        at = 0.0
        while len(offsets) < limit:
            at += rng.expovariate(self.rate)
            if at > end and len(offsets) >= self.min_queries:
                break
            offsets.append(at)
        return offsets


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class LoadResult:
    """What a load run measured (seconds throughout)."""

    offered: int  # queries scheduled
    completed: int
    dropped: int  # queries refused by a full queue
    failed: int  # queries whose call raised
    elapsed: float  # first arrival to last completion
    latencies: list[float] = field(default_factory=list)  # arrival -> completion, completed
    lateness: list[float] = field(default_factory=list)  # dispatcher: actual - scheduled
    batches: list[int] = field(default_factory=list)  # the size of every call
    error: str | None = None  # the first exception a call raised

    @property
    def achieved_rate(self) -> float:
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0

    def percentiles(self, qs: tuple[float, ...] = (0.5, 0.9, 0.99)) -> list[Percentile]:
        return [percentile(self.latencies, q) for q in qs] if self.latencies else []


_DONE = None  # the workers' stop signal


def _dispatch(
    offsets: list[float], lateness: list[float], send: Callable[[int, float], object]
) -> float:
    """Hand each query to ``send(index, scheduled)`` at its arrival (sleep, then spin); its
    lateness goes in ``lateness``. Returns the start time the offsets count from."""
    start = time.perf_counter() + 0.01
    for index, offset in enumerate(offsets):
        target = start + offset
        ahead = target - time.perf_counter()
        if ahead > SPIN:
            time.sleep(ahead - SPIN)
        now = time.perf_counter()
        while now < target:
            now = time.perf_counter()
        lateness[index] = now - target
        send(index, target)
    return start


def run_async_load(
    call: Callable[[], Coroutine[Any, Any, object]], settings: LoadSettings
) -> LoadResult:
    """Serve ``settings.rate`` queries per second with an ``async`` function on an asyncio
    event loop of its own thread, at most ``settings.threads`` queries in flight (the rest wait,
    and count); no batching. Raises LoadSettingError for settings that cannot run."""
    settings.check()
    if settings.max_batch > 1:
        raise LoadSettingError("load.max_batch: batching needs a plain function, not an async one")
    offsets = settings.arrivals()
    lateness = [0.0] * len(offsets)
    latencies: list[float] = []
    failures: list[str] = []
    counts = {"failed": 0, "dropped": 0, "waiting": 0, "done": 0}
    last_done = [0.0]
    loop = asyncio.new_event_loop()
    finished = threading.Event()
    limit: list[asyncio.Semaphore] = []
    tasks: set[asyncio.Task[None]] = set()

    async def serve(scheduled: float) -> None:
        counts["waiting"] += 1
        async with limit[0]:
            counts["waiting"] -= 1
            try:
                await call()
                error = None
            except Exception as exc:  # the user's code: counted and reported, never raised
                error = f"{type(exc).__name__}: {exc}"
        done = time.perf_counter()
        last_done[0] = max(last_done[0], done)
        if error is None:
            latencies.append(done - scheduled)
        else:
            counts["failed"] += 1
            if not failures:
                failures.append(error)
        counts["done"] += 1
        if counts["done"] + counts["dropped"] == len(offsets):
            finished.set()

    def arrive(index: int, scheduled: float) -> None:  # on the loop's thread
        if settings.max_queue is not None and counts["waiting"] >= settings.max_queue:
            counts["dropped"] += 1
            if counts["done"] + counts["dropped"] == len(offsets):
                finished.set()
            return
        task = loop.create_task(serve(scheduled))
        tasks.add(task)  # kept until done: the loop holds only weak references
        task.add_done_callback(tasks.discard)

    def run_loop() -> None:
        asyncio.set_event_loop(loop)
        limit.append(asyncio.Semaphore(settings.threads))
        loop.run_forever()

    runner = threading.Thread(target=run_loop, daemon=True)
    runner.start()
    while not limit:
        time.sleep(0.001)
    saved_interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        start = _dispatch(offsets, lateness, lambda i, t: loop.call_soon_threadsafe(arrive, i, t))
        if offsets:
            finished.wait()
    finally:
        sys.setswitchinterval(saved_interval)
        loop.call_soon_threadsafe(loop.stop)
        runner.join()
        loop.close()
    first = start + offsets[0] if offsets else start
    return LoadResult(
        offered=len(offsets),
        completed=len(latencies),
        dropped=counts["dropped"],
        failed=counts["failed"],
        elapsed=max(last_done[0] - first, 0.0),
        latencies=latencies,
        lateness=lateness,
        batches=[1] * (len(latencies) + counts["failed"]),
        error=failures[0] if failures else None,
    )


def run_load(call: Callable[[int], object], settings: LoadSettings) -> LoadResult:
    """Serve ``settings.rate`` queries per second with ``call(batch_size)``; returns what
    happened to every query. Raises LoadSettingError for settings that cannot run."""
    settings.check()
    offsets = settings.arrivals()
    waiting: queue.SimpleQueue[tuple[int, float] | None] = queue.SimpleQueue()
    latencies: list[float] = []
    batches: list[int] = []
    lateness: list[float] = [0.0] * len(offsets)
    failures: list[str] = []
    failed = [0]
    lock = threading.Lock()
    last_done = [0.0]

    def serve() -> None:
        while True:
            first = waiting.get()
            if first is _DONE:
                return
            batch = [first]
            if settings.max_batch > 1:
                until = time.perf_counter() + settings.max_wait
                while len(batch) < settings.max_batch:
                    left = until - time.perf_counter()
                    try:
                        item = waiting.get(timeout=left) if left > 0 else waiting.get_nowait()
                    except queue.Empty:
                        break
                    if item is _DONE:
                        waiting.put(_DONE)  # the others stop too
                        break
                    batch.append(item)
            try:
                call(len(batch))
                error = None
            except Exception as exc:  # the user's code: counted and reported, never raised
                error = f"{type(exc).__name__}: {exc}"
            done = time.perf_counter()
            with lock:
                last_done[0] = max(last_done[0], done)
                batches.append(len(batch))
                if error is None:
                    latencies.extend(done - item[1] for item in batch if item is not None)
                else:
                    failed[0] += len(batch)
                    if not failures:
                        failures.append(error)

    workers = [threading.Thread(target=serve, daemon=True) for _ in range(settings.threads)]
    saved_interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    dropped = [0]

    def send(index: int, target: float) -> None:
        if settings.max_queue is not None and waiting.qsize() >= settings.max_queue:
            dropped[0] += 1
        else:
            waiting.put((index, target))

    try:
        for worker in workers:
            worker.start()
        start = _dispatch(offsets, lateness, send)
        for _ in workers:
            waiting.put(_DONE)
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(saved_interval)
    first = start + offsets[0] if offsets else start
    return LoadResult(
        offered=len(offsets),
        completed=len(latencies),
        dropped=dropped[0],
        failed=failed[0],
        elapsed=max(last_done[0] - first, 0.0),
        latencies=latencies,
        lateness=lateness,
        batches=batches,
        error=failures[0] if failures else None,
    )


@dataclass(frozen=True)
class Probe:
    """One load run of a max-rate search."""

    rate: float
    passed: bool
    bound: float | None  # the percentile's bound (None: refused)
    achieved: float


@dataclass
class Search:
    """The highest rate found whose percentile stays under the SLO, and every probe."""

    slo: float
    q: float
    best: float | None  # None: even the lowest rate tried missed the SLO
    probes: list[Probe] = field(default_factory=list)
    elapsed: float = 0.0
    exhausted: bool = False  # the time budget ran out before the precision was reached


def no_rate_found(search: Search, time_budget: float, budget_name: str) -> str:
    """Why a search found no rate, in one line (``budget_name``: the setting to raise)."""
    lowest = min(probe.rate for probe in search.probes) if search.probes else math.nan
    text = (
        f"no rate tried kept p{search.q * 100:g} under {search.slo * 1000:g} ms (lowest "
        f"tried {lowest:.3g}/s)"
    )
    if search.elapsed >= time_budget:
        text += f"; the {time_budget:g} s time budget ran out first: raise {budget_name}"
    return text


def max_rate_check(slo: float, q: float, time_budget: float, precision: float = 0.05) -> None:
    """Raise LoadSettingError for a max-rate search that cannot run."""
    if not _number(slo) or slo <= 0:
        raise LoadSettingError(f"load.slo: expected seconds above 0, got {slo!r}")
    if not _number(q) or not 0 < q < 1:
        raise LoadSettingError(f"load.percentile: expected a number between 0 and 1, got {q!r}")
    if not _number(precision) or not 0 < precision < 1:
        raise LoadSettingError(f"load.precision: expected 0 < precision < 1, got {precision!r}")
    if not _number(time_budget) or not 0 < time_budget <= MAX_DURATION:
        raise LoadSettingError(
            f"load.time_budget: expected seconds above 0 and at most {MAX_DURATION:g}, "
            f"got {time_budget!r}"
        )


def max_rate(
    call: Callable[[int], object],
    *,
    slo: float,
    q: float = 0.99,
    threads: int = 1,
    start: float | None = None,
    precision: float = 0.05,
    time_budget: float = 60.0,
    seed: int | None = None,
    serve: Callable[[LoadSettings], LoadResult] | None = None,
) -> Search:
    """The highest Poisson arrival rate at which the ``q``-percentile latency's bound stays
    under ``slo`` seconds and the pool keeps up (achieved >= 95% of offered): doubling from
    ``start`` (default: half of what ``threads`` serve at the time of 20 calls in a row) until
    a rate fails, then bisection until the bracket is within ``precision``
    (relative) or ``time_budget`` seconds are spent. Each probe runs the queries the percentile
    needs (``core/percentiles.py``) and at least one second. ``serve`` runs each probe's
    load (default: ``run_load`` of ``call``; an async function's ``run_async_load``)."""
    max_rate_check(slo, q, time_budget, precision)
    if not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise LoadSettingError(f"load.threads: expected 1 to {MAX_THREADS}, got {threads!r}")
    from gate.core.stats import min_calls_for_percentile

    needed = min_calls_for_percentile(q, 0.99)
    began = time.perf_counter()
    search = Search(slo=slo, q=q, best=None)

    def probe(rate: float) -> bool:
        # a second of arrivals, at least the queries the percentile needs, at most four
        # times that: a rate far above capacity must not take long to drain
        queries = max(needed, min(round(rate), PROBE_QUERIES * needed))
        settings = LoadSettings(
            rate=rate, queries=queries, threads=threads, seed=seed, min_queries=needed
        )
        result = serve(settings) if serve is not None else run_load(call, settings)
        bound = percentile(result.latencies, q).bound if result.latencies else None
        # a growing backlog shows in the tail itself; every query must have been served
        passed = bound is not None and bound <= slo and result.completed == result.offered
        search.probes.append(Probe(rate, passed, bound, result.achieved_rate))
        return passed

    def spent() -> bool:
        return time.perf_counter() - began >= time_budget

    if start is None:
        for _ in range(5):
            call(1)
        timed = time.perf_counter()
        for _ in range(20):
            call(1)
        service = max((time.perf_counter() - timed) / 20, 1e-6)
        # half of one thread's pace: more threads rarely scale in step (the GIL, shared
        # cores), and doubling up from too low costs less than draining a backlog
        start = min(0.5 / service, MAX_RATE / 2)
    elif not _number(start) or not 0 < start <= MAX_RATE:
        raise LoadSettingError(f"load.start: expected a rate above 0, got {start!r}")
    low, high = 0.0, start
    if probe(start):
        low, high = start, start * 2
        while high <= MAX_RATE and not spent() and probe(high):  # double until a rate fails
            low, high = high, high * 2
    else:
        candidate = start / 2
        while candidate >= 0.01 and not spent():  # halve until a rate passes
            if probe(candidate):
                low = candidate
                break
            high, candidate = candidate, candidate / 2
    while low > 0 and (high - low) / low > precision and not spent():
        middle = (low + high) / 2
        if probe(middle):
            low = middle
        else:
            high = middle
    search.best = low if low > 0 else None
    search.elapsed = time.perf_counter() - began
    search.exhausted = spent() and low > 0 and (high - low) / low > precision
    return search
