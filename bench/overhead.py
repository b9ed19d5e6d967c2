"""The timing harness's own overhead per timed call.

For callables of about 1 us, 10 us and 1 ms (a busy loop calibrated once) and an empty function,
compares the median per-call time that ``gate.measure.worker.timing.time_calls`` reports with a bare
loop (``t0 = perf_counter_ns(); fn(); t1 = perf_counter_ns()``, appended to a list) over the same
number of calls. The two methods alternate in short slices (``--min-time``, order alternating):
on a shared machine the speed of the same code drifts by several percent from one slice to the
next, and pairing adjacent slices cancels that drift, so the median of the paired differences
(with a distribution-free 95% interval) measures the harness and not the machine. Also shown for
reference: the amortized time per call of a plain ``for`` loop between two clock reads (median
over batches of ~100 us), which contains no clock read per call: for the empty function, bare
loop minus amortized is the cost of the clock read inside each timed interval, common to both
methods.

Goal: time_calls adds < 2% over the bare loop at 10 us.

    .venv/bin/python bench/overhead.py [--quick] [--repeats N] [--min-time S]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import os
import statistics
import sys
import time
from collections.abc import Callable

from gate.measure.worker.timing import time_calls

GOAL_PERCENT = 2.0
GOAL_TARGET_NS = 10_000


def busy(iterations: int) -> Callable[[], object]:
    """A pure-Python busy loop of ``iterations`` steps (no allocation, no I/O)."""

    def fn() -> object:
        total = 0
        for i in range(iterations):
            total += i
        return total

    return fn


def empty() -> object:
    return None


def amortized_ns(fn: Callable[[], object], calls: int) -> float:
    """Time per call of ``calls`` calls between two clock reads (no clock read per call)."""
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - start) / calls


def amortized_median_ns(fn: Callable[[], object], calls: int, per_call_ns: float) -> float:
    """Median over batches of ~100 us (at least one call) of the amortized time per call."""
    batch = max(1, int(100_000 / max(1.0, per_call_ns)))
    return statistics.median(amortized_ns(fn, batch) for _ in range(max(5, calls // batch)))


def calibrate(target_ns: float) -> int:
    """Busy-loop iterations whose call takes about ``target_ns`` (median of amortized batches)."""
    iterations = 8
    for _ in range(4):
        fn = busy(iterations)
        calls = max(20, int(50e6 / max(1.0, amortized_ns(fn, 20))))  # ~50 ms per batch
        per_call = statistics.median(amortized_ns(fn, calls) for _ in range(5))
        iterations = max(1, round(iterations * target_ns / per_call))
    return iterations


def bare_loop(fn: Callable[[], object], calls: int, warmup: int) -> list[int]:
    """The reference: per-call ns with the clock bound to a local name, like time_calls does."""
    perf_counter_ns = time.perf_counter_ns
    fn()
    for _ in range(warmup):
        fn()
    times: list[int] = []
    append = times.append
    for _ in range(calls):
        t0 = perf_counter_ns()
        fn()
        t1 = perf_counter_ns()
        append(t1 - t0)
    return times


def harness(
    fn: Callable[[], object], warmup: int, min_calls: int, min_time: float
) -> tuple[float, int]:
    """Median per-call ns reported by time_calls, and how many calls it timed."""
    timed = time_calls(fn, warmup=warmup, min_calls=min_calls, min_time=min_time)
    return statistics.median(timed.times) * 1e9, len(timed.times)


def spread(values: list[float]) -> str:
    return f"{min(values):.0f}..{max(values):.0f}"


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free interval for the median (order statistics, binomial ranks).

    None when there are too few values for ``level`` (fewer than 6 at 95%).
    """
    n = len(values)
    tail = (1.0 - level) / 2.0
    k = 0  # the largest k with P(Binomial(n, 1/2) < k) <= tail
    cumulative = 0.0
    while k < n:
        cumulative += math.comb(n, k) / 2.0**n
        if cumulative > tail:
            break
        k += 1
    if k == 0:
        return None
    ordered = sorted(values)
    return ordered[k - 1], ordered[n - k]


def interval_text(interval: tuple[float, float] | None, digits: int) -> str:
    if interval is None:
        return "n/a"
    return f"{interval[0]:+.{digits}f}..{interval[1]:+.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=41, help="interleaved repeats (41)")
    parser.add_argument(
        "--min-time", type=float, default=0.02, help="time_calls min_time per repeat, s (0.02)"
    )
    parser.add_argument("--min-calls", type=int, default=200, help="time_calls min_calls (200)")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up calls (20)")
    parser.add_argument("--quick", action="store_true", help="15 repeats of 0.01 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.min_time = 15, 0.01
    if args.repeats < 2:
        parser.error("--repeats must be at least 2")

    targets: list[tuple[str, float | None]] = [
        ("empty fn", None),
        ("~1 us", 1_000),
        ("~10 us", 10_000),
        ("~1 ms", 1_000_000),
    ]
    callables = []
    for label, target in targets:
        fn = empty if target is None else busy(calibrate(target))
        callables.append((label, target, fn))

    print(
        f"timing harness overhead: {args.repeats} interleaved repeats, time_calls(warmup="
        f"{args.warmup}, min_calls={args.min_calls}, min_time={args.min_time}s); "
        f"python {sys.version.split()[0]}, gc {'on' if gc.isenabled() else 'off'}"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} at start")
    print("per repeat: the median per-call ns of each method (the bare loop runs as many calls")
    print("as time_calls timed, the order alternates); range = min..max over repeats;")
    print("overhead = median over repeats of (time_calls - bare loop), with its 95% interval")
    print()
    header = (
        f"{'callable':<9} {'calls/rep':>9} {'amortized':>10} {'bare loop':>10} "
        f"{'(range)':>15} {'time_calls':>10} {'(range)':>15} {'overhead':>9} "
        f"{'(95% int.)':>13} {'overhead %':>10} {'(95% int.)':>13}"
    )
    print(header)
    print("-" * len(header))
    goal: tuple[float, tuple[float, float] | None, list[float]] | None = None
    clock_ns = float("nan")
    for label, target, fn in callables:
        bare: list[float] = []
        timed: list[float] = []
        amortized: list[float] = []
        counts: list[int] = []
        for repeat in range(args.repeats):
            # Alternate which method goes first so that slow drift does not favour one.
            # Repeat 0 starts with time_calls, so counts[-1] is always set for the bare loop.
            order = ("harness", "bare") if repeat % 2 == 0 else ("bare", "harness")
            for method in order:
                if method == "harness":
                    median_ns, count = harness(fn, args.warmup, args.min_calls, args.min_time)
                    timed.append(median_ns)
                    counts.append(count)
                else:
                    # As many calls as time_calls timed (in its latest repeat).
                    calls = counts[-1]
                    bare.append(statistics.median(bare_loop(fn, calls, args.warmup)))
            amortized.append(amortized_median_ns(fn, counts[-1], bare[-1]))
        diffs = [t - b for t, b in zip(timed, bare, strict=True)]
        percents = [100.0 * d / b for d, b in zip(diffs, bare, strict=True)]
        percent = statistics.median(percents)
        print(
            f"{label:<9} {int(statistics.median(counts)):>9} "
            f"{statistics.median(amortized):>8.0f}ns "
            f"{statistics.median(bare):>8.0f}ns {spread(bare):>15} "
            f"{statistics.median(timed):>8.0f}ns {spread(timed):>15} "
            f"{statistics.median(diffs):>+7.0f}ns {interval_text(median_interval(diffs), 0):>13} "
            f"{percent:>+9.2f}% {interval_text(median_interval(percents), 2):>13}"
        )
        if target is None:
            clock_ns = statistics.median(bare) - statistics.median(amortized)
        if target == GOAL_TARGET_NS:
            goal = (percent, median_interval(percents), percents)
    print()
    if goal is not None:
        percent, interval, percents = goal
        if interval is None:
            verdict = "too few repeats for an interval"
        elif interval[1] < GOAL_PERCENT:
            verdict = "MET (the whole 95% interval is below the goal)"
        elif interval[0] >= GOAL_PERCENT:
            verdict = "NOT MET (the whole 95% interval is above the goal)"
        else:
            verdict = "INCONCLUSIVE (the 95% interval straddles the goal: noise)"
        print(
            f"goal: overhead < {GOAL_PERCENT:.0f}% at 10 us: median {percent:+.2f}%, "
            f"95% interval {interval_text(interval, 2)}% -> {verdict}"
        )
        print(
            f"      single pairs range {min(percents):+.2f}..{max(percents):+.2f}%: adjacent "
            f"{args.min_time:g} s slices differ this much here; the median over pairs is robust"
        )
    reads = [time.perf_counter_ns() for _ in range(100_000)]
    deltas = sorted({b - a for a, b in itertools.pairwise(reads) if b > a})
    print(
        f"clock: perf_counter_ns, consecutive reads differ by {', '.join(map(str, deltas[:6]))}"
        " ... ns (its granularity bounds the resolution of the medians)"
    )
    print(
        f"clock read inside each timed interval (empty fn, bare loop - amortized): "
        f"{clock_ns:.0f} ns; it is in both methods, so it is not counted as overhead above."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
