"""A model's input pipeline in a round worker (``models.<name>.data``): ``loader()`` called in
this fresh process, its first batch timed apart (it includes starting the loader's worker
processes and opening files), then ``batches`` more batches timed for items and bytes per
second; the CPU each of the loader's worker processes used. docs/load.md."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gate.measure import BenchmarkPlan, Refused, resolve_callable
from gate.measure.messages import RoundValue
from gate.units import UNIT_RATE, UNIT_SECONDS

MAX_DEPTH = 8  # nesting of dicts/lists/tuples a batch is searched to


def items_in(batch: Any, depth: int = 0) -> int:
    """The examples in one batch: the first dimension of its first array or tensor (``(x, y)``
    and ``{"x": ..., "y": ...}`` batches read through), a table's rows, a list's length."""
    if depth < MAX_DEPTH:
        if isinstance(batch, dict) and batch:
            return items_in(next(iter(batch.values())), depth + 1)
        if isinstance(batch, (tuple, list)) and batch and _is_array(batch[0]):
            return items_in(batch[0], depth + 1)
    rows = getattr(batch, "num_rows", None)  # pyarrow Table / RecordBatch
    if isinstance(rows, int):
        return rows
    shape = getattr(batch, "shape", None)
    if shape is not None and len(shape) > 0:
        return int(shape[0])
    if isinstance(batch, (list, tuple)):
        return len(batch)
    return 1


def _is_array(value: Any) -> bool:
    return hasattr(value, "shape") or hasattr(value, "num_rows") or isinstance(value, (dict, list))


def bytes_in(batch: Any, depth: int = 0) -> int:
    """The bytes a batch's arrays, tensors, tables and byte strings hold."""
    nbytes = getattr(batch, "nbytes", None)  # numpy, pyarrow
    if isinstance(nbytes, int):
        return nbytes
    if hasattr(batch, "element_size") and hasattr(batch, "nelement"):  # a torch tensor
        return int(batch.element_size() * batch.nelement())
    if isinstance(batch, (bytes, bytearray, memoryview)):
        return len(batch)
    if isinstance(batch, str):
        return len(batch.encode())
    if depth < MAX_DEPTH:
        if isinstance(batch, dict):
            return sum(bytes_in(v, depth + 1) for v in batch.values())
        if isinstance(batch, (list, tuple)):
            return sum(bytes_in(v, depth + 1) for v in batch)
    return 0


def _children_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of each live child process of this one (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    cpu: dict[int, float] = {}
    try:
        tasks = list(Path(f"/proc/{os.getpid()}/task").iterdir())
    except OSError:
        return cpu
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                fields = Path(f"/proc/{child}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            cpu[int(child)] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return cpu


def measure_data(plan: BenchmarkPlan) -> tuple[dict[str, RoundValue], dict[str, Any]]:
    """Time ``plan.data``'s loader in this process: the round's values (items per second over
    the timed batches, the first batch's seconds) and details (batches, items, bytes and bytes
    per second, the main process's and each loader worker's share of a core). Bytes per second
    is reported, not gated: it moves with items per second, except where the batches' contents
    changed (float64 -> float32 halves it at the same items/s), and then it is not a slowdown.
    Raises Refused (one line) for a loader that yields too few batches or nothing countable."""
    assert plan.data is not None
    loader = resolve_callable(plan.data["loader"], plan.key("data.loader"))
    wanted = int(plan.data["batches"])
    started = time.perf_counter()
    cpu_started = time.process_time()
    iterable = loader()
    try:
        batches: Iterator[Any] = iter(iterable)
    except TypeError:
        raise Refused(
            f"{plan.key('data.loader')}: {plan.data['loader']!r} returned a "
            f"{type(iterable).__name__}, not an iterable of batches"
        ) from None
    sentinel = object()
    first = next(batches, sentinel)
    if first is sentinel:
        raise Refused(f"{plan.key('data.loader')}: the loader yielded no batch")
    first_s = time.perf_counter() - started
    items = total_bytes = seen = 0
    timed_from = time.perf_counter()
    for batch in batches:
        items += items_in(batch)
        total_bytes += bytes_in(batch)
        seen += 1
        if seen == wanted:
            break
    elapsed = time.perf_counter() - timed_from
    cpu_main = time.process_time() - cpu_started
    workers = _children_cpu()  # before the loader is closed: its workers still run
    whole = time.perf_counter() - started
    close = getattr(batches, "close", None) or getattr(iterable, "close", None)
    del batches
    if callable(close):
        try:
            close()
        except Exception:  # a generator's cleanup error is not the measurement's
            pass
    if seen < wanted:
        raise Refused(
            f"{plan.key('data.batches')}: the loader yielded {seen + 1} batches and the "
            f"benchmark times {wanted} after the first; lower batches to at most {seen}, or "
            "make the loader yield more"
        )
    if items == 0 or elapsed <= 0:
        raise Refused(
            f"{plan.key('data.loader')}: its batches hold no countable examples (arrays, "
            "tensors, tables or lists)"
        )
    values = {
        "data.items_per_s": RoundValue(value=items / elapsed, unit=UNIT_RATE, higher=True),
        "cold_start.first_batch": RoundValue(value=first_s, unit=UNIT_SECONDS, higher=False),
    }
    details = {
        "batches": seen,
        "items": items,
        "bytes": total_bytes,
        "bytes_per_s": total_bytes / elapsed,
        "main_cpu": cpu_main / whole if whole > 0 else 0.0,
        "worker_cpu": [round(cpu / whole, 3) for cpu in workers.values()] if whole > 0 else [],
    }
    return values, details


def first_batch(plan: BenchmarkPlan) -> None:
    """One batch of the loader (``pytest --perf-gate``'s smoke test of a ``data:`` item)."""
    assert plan.data is not None
    loader = resolve_callable(plan.data["loader"], plan.key("data.loader"))
    for _ in loader():
        return
    raise Refused(f"{plan.key('data.loader')}: the loader yielded no batch")
