"""The worker side of diagnosis: profile a benchmark's calls, aggregate per operator, keep a trace.

torch variants run under ``torch.autograd.profiler`` (in ``torch_backend``), onnxruntime variants
under the session's own profiler (in ``onnx_backend``), ``perf`` tests under cProfile (here).
Each profile is a fresh process after the measurement rounds, so profiling never touches the
timing samples. Times are self times per benchmark call: the operator's own time, without what
it called, so that the rows of one profile add up to the profiled time of a call.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gate.core import stats
from gate.core.diagnosis import OperatorProfile, OperatorTime
from gate.measure.worker.timing import time_calls
from gate.units import UNIT_SECONDS, format_value

# Profiled calls per benchmark and side: enough for a stable per-call average of every operator,
# few enough that a trace stays small (its size grows with the calls).
MIN_CALLS = 10
MAX_CALLS = 100
MIN_TIME = 0.3  # seconds
MIN_WARMUP = 10  # calls before profiling starts (lazy initialisation, caches, allocator)
# Recorded operator events per profile: torch builds its event list in Python (about 80,000
# events a second here), so a small model of many operators is profiled over fewer calls.
EVENT_BUDGET = 15_000
# Flame-graph slices of a cProfile trace narrower than this share of the total are left out.
MIN_SLICE = 0.002
MAX_DEPTH = 64

_GATE_DIR = str(Path(__file__).resolve().parents[1])
Function = tuple[str, int, str]  # pstats' (file, line, name)


def repeat_calls(
    fn: Callable[[], object],
    *,
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    max_calls: int = MAX_CALLS,
) -> int:
    """Call ``fn`` at least MIN_CALLS times and MIN_TIME seconds, at most ``max_calls`` times;
    returns how many calls were made."""
    start = clock()
    count = 0
    while count < max(MIN_CALLS, max_calls):
        fn()
        if sync is not None:
            sync()
        count += 1
        if count >= MIN_CALLS and clock() - start >= MIN_TIME:
            break
    return count


@dataclass(frozen=True)
class Calls:
    """How a profiling worker calls a benchmark: ``warmup`` calls, a short timing without the
    profiler (the time per call that the operators' self times are set against: what they do
    not cover ran outside any operator), then the profiled calls."""

    warmup: int

    def warm(self, fn: Callable[[], object]) -> None:
        for _ in range(self.warmup):
            fn()

    def unprofiled(self, fn: Callable[[], object], sync: Callable[[], None] | None = None) -> float:
        """The median seconds per call of ``fn`` (already warm), no profiler running."""
        timed = time_calls(
            fn, warmup=0, min_calls=MIN_CALLS, min_time=0.1, max_time=MIN_TIME, sync=sync
        )
        return stats.median(list(timed.times))

    def profiled(
        self,
        fn: Callable[[], object],
        sync: Callable[[], None] | None = None,
        events_per_call: int = 0,
    ) -> int:
        """Profiled calls of ``fn``; with ``events_per_call`` known, no more than keep the
        recorded events within EVENT_BUDGET (but at least MIN_CALLS)."""
        limit = MAX_CALLS if events_per_call <= 0 else EVENT_BUDGET // events_per_call
        return repeat_calls(fn, sync=sync, max_calls=min(MAX_CALLS, limit))


@dataclass(frozen=True)
class Recorded:
    """What a backend's profiler recorded: rows totalled over ``calls`` profiled calls, the
    seconds per call without the profiler, and how the times were adjusted, if they were."""

    rows: list[OperatorTime]
    calls: int
    wall: float
    note: str = ""


def interquartile_mean(values: list[float]) -> float:
    """The mean of the middle half of ``values``: as robust as the median to the few that waited
    for a core, and not stuck on one value when the profiler counts whole microseconds
    (onnxruntime), where a median jumps by a microsecond at a time."""
    ordered = sorted(values)
    quarter = len(ordered) // 4
    middle = ordered[quarter : len(ordered) - quarter] or ordered
    return sum(middle) / len(middle)


def robust_total(
    *,
    operator: str,
    durations: list[float],
    node: str = "",
    shapes: str = "",
    module: str = "",
    module_type: str = "",
) -> OperatorTime:
    """One operator's row from the self times of its invocations: their interquartile mean
    times their number. A plain mean would let a few invocations that waited for a core (or for
    a page fault) speak for all of them; the rows would then explain changes that are not
    there."""
    return OperatorTime(
        operator=operator,
        node=node,
        shapes=shapes,
        module=module,
        module_type=module_type,
        calls=float(len(durations)),
        time=interquartile_mean(durations) * len(durations),
    )


def per_call(rows: list[OperatorTime], calls: int) -> tuple[OperatorTime, ...]:
    """Totals over ``calls`` benchmark calls -> values per call, largest time first."""
    scaled = [replace(r, calls=r.calls / calls, time=r.time / calls) for r in rows]
    return tuple(sorted(scaled, key=lambda r: (-r.time, r.operator, r.module, r.node, r.shapes)))


def profile_python(
    fn: Callable[[], object], *, trace: Path, root: Path, items: int = 1
) -> OperatorProfile:
    """cProfile over repeated calls of ``fn`` (already warmed up): self time per function.

    Functions are named ``name (path)`` with the path relative to ``root`` (or to site-packages),
    without the line number, so that the base revision's worktree and moved code still match.
    cProfile adds a fixed cost to every function call it sees, which inflates code that makes
    many small calls (a loop over ``str.lower``) several-fold; the rows are scaled down so that
    they add up to the time per call measured without the profiler just before.
    Raises ValueError when another profiler is active (Python 3.12+)."""
    unprofiled = stats.median(
        list(time_calls(fn, warmup=0, min_calls=MIN_CALLS, min_time=0.1, max_time=MIN_TIME).times)
    )
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        calls = repeat_calls(fn)
    finally:
        profiler.disable()
    recorded: dict[Function, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    dropped = _harness_functions(recorded)
    totals: dict[str, list[float]] = {}
    for function, (_, count, own, _, _) in recorded.items():
        if function in dropped:
            continue
        entry = totals.setdefault(function_name(function, root), [0.0, 0.0])
        entry[0] += count
        entry[1] += own
    profiled = sum(t for _, t in totals.values()) / calls
    scale = min(1.0, unprofiled / profiled) if profiled > 0 else 1.0
    note = ""
    if scale < 0.95:
        note = (
            f"cProfile times scaled by {scale:.2g} to the {format_value(unprofiled, UNIT_SECONDS)} "
            "per call measured without it (its per-call overhead inflates many small calls)"
        )
    rows = [OperatorTime(operator=name, calls=c, time=t * scale) for name, (c, t) in totals.items()]
    trace.parent.mkdir(parents=True, exist_ok=True)
    events = _flame_events(recorded, dropped, root)
    trace.write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}), "utf-8")
    return OperatorProfile(
        tool="cProfile",
        calls=calls,
        items=items,
        rows=per_call(rows, calls),
        trace=str(trace),
        note=note,
        wall=unprofiled,
    )


def _harness_functions(stats: dict[Function, Any]) -> set[Function]:
    """perf-gate's own frames (the call loop) and built-ins only they call (the clock)."""
    dropped = {f for f in stats if f[0].startswith(_GATE_DIR) or "_lsprof.Profiler" in f[2]}
    for function, (_, _, _, _, callers) in stats.items():
        if function[0] == "~" and callers and set(callers) <= dropped:
            dropped.add(function)
    return dropped


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def function_name(function: Function, root: Path) -> str:
    """``slow_step (bench/model.py)``; built-ins keep cProfile's own name, without the memory
    address some carry (``<built-in method __new__ of type object at 0x7f..>``): it differs
    from one process to the next, and the diff would list the function as new and vanished."""
    file, _, name = function
    if file == "~":
        return _ADDRESS.sub("", name)
    path = Path(file)
    if path.is_relative_to(root):
        where = path.relative_to(root).as_posix()
    elif "site-packages" in path.parts:
        where = Path(*path.parts[path.parts.index("site-packages") + 1 :]).as_posix()
    else:
        where = path.name
    return f"{name} ({where})"


def _flame_events(
    stats: dict[Function, Any], dropped: set[Function], root: Path
) -> list[dict[str, Any]]:
    """A flame graph of cumulative time as Chrome trace slices (cProfile keeps no timeline).

    A function's children get the time they took when called from it; deeper levels are scaled
    by the share of the parent's time that came through this path (gprof's approximation)."""
    children: dict[Function, list[tuple[Function, float]]] = {}
    roots: list[tuple[Function, float]] = []
    for function, (_, _, _, cumulative, callers) in stats.items():
        if function in dropped:
            continue
        kept = {c: v for c, v in callers.items() if c not in dropped}
        if not kept:
            roots.append((function, cumulative))
        for caller, (_, _, _, from_caller) in kept.items():
            children.setdefault(caller, []).append((function, from_caller))
    total = sum(t for _, t in roots) or 1.0
    events: list[dict[str, Any]] = []

    def place(function: Function, start: float, length: float, path: frozenset[Function]) -> None:
        events.append(
            {
                "name": function_name(function, root),
                "ph": "X",
                "ts": start * 1e6,
                "dur": length * 1e6,
                "pid": 1,
                "tid": 1,
                "args": {"calls": stats[function][1], "self_s": stats[function][2]},
            }
        )
        cumulative = stats[function][3] or length
        offset = start
        ordered = sorted(children.get(function, []), key=lambda item: -item[1])
        for child, time_from_here in ordered:
            width = time_from_here * length / cumulative
            if child in path or width < MIN_SLICE * total or len(path) >= MAX_DEPTH:
                continue
            place(child, offset, width, path | {child})
            offset += width

    offset = 0.0
    for function, cumulative in sorted(roots, key=lambda item: -item[1]):
        if cumulative >= MIN_SLICE * total:
            place(function, offset, cumulative, frozenset({function}))
            offset += cumulative
    return [
        {"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "cProfile (aggregate)"}},
        *events,
    ]
