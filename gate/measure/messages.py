"""What a worker process writes back (its JSON ``out`` file), typed: the round protocol that
timing, paired rounds and the record's info are built from. Workers write these with
``json.dump``; the parent reads them back with ``json.load`` and these names.

The other modes' answers (probe readings, prepare, eval, profile) stay plain dicts, read in one
place each (``samples.probe_samples``, ``paired.prepare_base``, ``quality``, ``profiles``).
"""

from __future__ import annotations

from typing import Any, TypedDict


class TimedBatch(TypedDict):
    """One benchmark's calls at one batch size in one process (seconds)."""

    first_call: float
    value: float  # what the round contributes: stats.best_block of the calls
    median: float
    calls: list[float]  # thinned, for percentiles


class RoundCost(TypedDict):
    """Where one benchmark's share of a round process went (seconds)."""

    import_s: float
    load_s: float
    inputs_s: float
    warmup_s: float
    timing_s: float


class _BenchmarkRound(TypedDict):
    batches: dict[str, TimedBatch]  # batch size (as text) -> its timings
    threading: dict[str, Any]  # what the runtime and the thread variables really were


class RoundValue(TypedDict):
    """A metric a round measured once for the whole process (a load run's p99, a data
    pipeline's items per second): the round's value, its unit, and whether higher is better."""

    value: float
    unit: str
    higher: bool


class BenchmarkRound(_BenchmarkRound, total=False):
    cost: RoundCost  # round workers only (not duet's arms)
    values: dict[str, RoundValue]  # metric name -> value (load: and data: benchmarks)
    details: dict[str, Any]  # what the load run or data pipeline saw (queries, workers' CPU)


class _RoundResult(TypedDict):
    order: list[str]  # benchmarks in the order they were measured
    results: dict[str, BenchmarkRound]
    errors: dict[str, str]  # benchmark -> one-line error


class RoundResult(_RoundResult, total=False):
    """A ``round`` worker's answer, or one arm of a ``duet`` worker's."""

    runtimes: list[str]  # the runtimes the process imported


class DuetResult(TypedDict):
    base: RoundResult
    head: RoundResult
