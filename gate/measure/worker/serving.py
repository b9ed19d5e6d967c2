"""A model variant served under load in a round worker (``models.<name>.load``): the variant's
loaded backend called by ``measure/worker/load.py``'s pool at the configured rate, and the
max-rate search under an SLO. docs/load.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gate.config.load import LoadSpec, max_qps_metric, metric_tag
from gate.core import stats
from gate.core.percentiles import CONFIDENCE
from gate.measure import Backend, Refused
from gate.measure.messages import RoundValue
from gate.measure.worker.load import LoadSettings, max_rate, no_rate_found, run_load
from gate.units import UNIT_RATE, UNIT_SECONDS


def padded_call(backend: Backend, spec: LoadSpec, warmup: int) -> Callable[[int], object]:
    """``call(n)``: one call of the variant for a batch of ``n`` queries, padded to the
    smallest of the load's batch sizes that holds it (as a batching server pads to the sizes
    its model was built for); each size warmed up ``warmup`` times first."""
    sizes = spec.batch_sizes if spec.max_batch > 1 else (1,)
    calls = {size: backend.call_for(size) for size in sizes}
    sync = backend.sync

    def call(n: int) -> object:
        size = next(s for s in sizes if s >= n)
        result = calls[size]()
        if sync is not None:
            sync()
        return result

    for size in sizes:
        for _ in range(max(1, warmup)):
            call(size)
    return call


def serve(
    backend: Backend, spec: LoadSpec, warmup: int, seed: int
) -> tuple[dict[str, RoundValue], dict[str, Any]]:
    """Serve the loaded variant under ``spec``: the round's values (the percentiles from
    arrival, the achieved rate, the highest rate under the SLO) and what the run saw. Raises
    Refused (one line) when queries raised or a percentile lacks its queries."""
    call = padded_call(backend, spec, warmup)
    values: dict[str, RoundValue] = {}
    details: dict[str, Any] = {}
    if spec.rate is not None:
        needed = max(stats.min_calls_for_percentile(q, CONFIDENCE) for q in spec.percentiles)
        settings = LoadSettings(
            rate=spec.rate,
            duration=spec.duration,
            queries=spec.queries,
            threads=spec.threads,
            max_batch=spec.max_batch,
            max_wait=spec.max_wait,
            max_queue=spec.max_queue,
            seed=seed,
            min_queries=needed,
        )
        result = run_load(call, settings)
        if result.failed:
            raise Refused(
                f"load: {result.failed} of {result.offered} queries raised ({result.error})"
            )
        tag = metric_tag(spec.rate)
        for found in result.percentiles(spec.percentiles):
            if not found.valid:
                raise Refused(
                    f"load: {found.name} needs at least {found.needed} completed queries and "
                    f"{result.completed} of {result.offered} completed ({result.dropped} "
                    "dropped by max_queue); raise duration or max_queue"
                )
            values[f"latency.{found.name}{tag}"] = RoundValue(
                value=found.value, unit=UNIT_SECONDS, higher=False
            )
        values[f"load.achieved{tag}"] = RoundValue(
            value=result.achieved_rate, unit=UNIT_RATE, higher=True
        )
        details.update(
            offered=result.offered,
            completed=result.completed,
            dropped=result.dropped,
            mean_batch=sum(result.batches) / len(result.batches) if result.batches else 0.0,
            lateness_p99=stats.quantile(sorted(result.lateness), 0.99) if result.lateness else 0.0,
        )
    if spec.slo is not None:
        search = max_rate(
            call,
            slo=spec.slo,
            q=spec.slo_percentile,
            threads=spec.threads,
            time_budget=spec.search_budget,
            seed=seed,
        )
        if search.best is None:
            raise Refused(f"load: {no_rate_found(search, spec.search_budget, 'search_budget')}")
        values[max_qps_metric(spec.slo_percentile, spec.slo)] = RoundValue(
            value=search.best, unit=UNIT_RATE, higher=True
        )
        details.update(
            search_probes=len(search.probes),
            search_s=search.elapsed,
            search_exhausted=search.exhausted,
        )
    return values, details
