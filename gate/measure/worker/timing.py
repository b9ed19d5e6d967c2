"""The timing loop: first call apart, warm-up, then calibrated calls, raw times kept.

Competing goals: enough calls for a stable per-process median (>= ``min_calls`` and >=
``min_time``), a bounded time per benchmark (``max_time``), and as little harness overhead per
call as possible (two clock reads and a list append; the synchronising variant adds one call).
The clock and the device sync are injected so that tests can drive the loop deterministically.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], int]


@dataclass(frozen=True)
class CallTimes:
    """Per-call times of one benchmark in one process, in seconds."""

    first_call: float
    times: tuple[float, ...]


def time_calls(
    fn: Callable[[], object],
    *,
    warmup: int = 20,
    min_calls: int = 200,
    min_time: float = 0.5,
    max_time: float = 10.0,
    clock: Clock = time.perf_counter_ns,
    sync: Callable[[], None] | None = None,
) -> CallTimes:
    """Time ``fn`` until it ran ``min_calls`` times and ``min_time`` seconds (or ``max_time``).

    The first call (lazy initialisation, autotuning, compilation) is reported apart as
    ``first_call``; then ``warmup`` untimed calls; then timed calls. Returns per-call seconds.
    """
    start = clock()
    fn()
    if sync is not None:
        sync()
    first_call_ns = clock() - start
    for _ in range(warmup):
        fn()
    if sync is not None:
        sync()
    min_ns, max_ns = int(min_time * 1e9), int(max_time * 1e9)
    times: list[int] = []
    append = times.append
    loop_start = clock()
    count = 0
    if sync is None:
        while True:
            begin = clock()
            fn()
            end = clock()
            append(end - begin)
            count += 1
            elapsed = end - loop_start
            if (count >= min_calls and elapsed >= min_ns) or (elapsed >= max_ns and count >= 3):
                break
    else:
        while True:
            begin = clock()
            fn()
            sync()
            end = clock()
            append(end - begin)
            count += 1
            elapsed = end - loop_start
            if (count >= min_calls and elapsed >= min_ns) or (elapsed >= max_ns and count >= 3):
                break
    return CallTimes(first_call=first_call_ns / 1e9, times=tuple(t / 1e9 for t in times))
