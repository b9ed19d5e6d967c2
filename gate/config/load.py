"""A model's ``load:`` (serving under open-loop load) and ``data:`` (its input pipeline)
sections; docs/load.md. The limits here are the worker's too (``measure/worker/load.py``)."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from gate import units
from gate.config.checks import CALLABLE, Checker
from gate.core.percentiles import CONFIDENCE
from gate.core.stats import min_calls_for_percentile

MAX_RATE = 1e6  # queries per second
MAX_DURATION = 3600.0  # seconds of arrivals, and of a max-rate search per round
MAX_QUERIES = 10_000_000
MAX_THREADS = 256
MAX_LOAD_BATCH = 4096
MAX_WAIT = 10.0
MAX_DATA_BATCHES = 100_000
LOAD_KEYS = (
    "rate",
    "duration",
    "queries",
    "threads",
    "max_batch",
    "max_wait",
    "max_queue",
    "percentiles",
    "slo",
    "slo_percentile",
    "search_budget",
)
DATA_KEYS = ("loader", "batches")
_PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d{1,3})?)$")


@dataclass(frozen=True, kw_only=True)
class LoadSpec:
    """``models.<name>.load``: every variant of the model served at ``rate`` queries per
    second by ``threads`` (dynamic batching up to ``max_batch``), each round; with ``slo``,
    also the highest rate whose ``slo_percentile`` stays under it."""

    rate: float | None = None
    duration: float | None = None
    queries: int | None = None
    threads: int = 1
    max_batch: int = 1
    max_wait: float = 0.0
    max_queue: int | None = None
    percentiles: tuple[float, ...] = (0.5, 0.9, 0.99)
    slo: float | None = None
    slo_percentile: float = 0.99
    search_budget: float = 30.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes a dynamically batched call runs at: a batch of n queries is padded
        to the smallest of these that holds it (powers of two, and ``max_batch``)."""
        sizes = {1, self.max_batch}
        size = 2
        while size < self.max_batch:
            sizes.add(size)
            size *= 2
        return tuple(sorted(sizes))

    def seconds(self) -> float:
        """An upper bound on one round's seconds of load (a worker's timeout adds it)."""
        total = 0.0
        if self.rate is not None:
            expected = self.duration if self.duration is not None else MAX_DURATION
            if self.queries is not None:
                expected = min(expected, self.queries / self.rate)
            total += 2 * expected + 10
        if self.slo is not None:
            total += self.search_budget + 60
        return total


@dataclass(frozen=True, kw_only=True)
class DataSpec:
    """``models.<name>.data``: the model's input pipeline, ``loader()`` an iterable of
    batches, timed over ``batches`` batches after the first."""

    loader: str
    batches: int = 20

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile_value(ctx: Checker, value: Any, key: str) -> float:
    """``p99``, ``p99.9`` or a fraction like 0.99 -> 0.99."""
    if isinstance(value, str) and _PERCENTILE.match(value):
        q = float(value[1:]) / 100
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        q = float(value)
    else:
        q = math.nan
    if not 0 < q < 1:
        raise ctx.error(key, f"expected a percentile like p99 or p99.9 (or 0.99), got {value!r}")
    return q


def _positive(ctx: Checker, value: Any, key: str, parse: Any, maximum: float, show: Any) -> float:
    result = ctx.quantity(value, key, parse, maximum, show=show)
    if result <= 0:
        raise ctx.error(
            key, f"must be above 0, got {value!r} (allowed: above 0 to {show(maximum)})"
        )
    return result


def _seconds(limit: float) -> str:
    return f"{limit:g}s"


def parse_load(ctx: Checker, raw: Any, key: str) -> LoadSpec:
    spec = ctx.mapping(raw, key, LOAD_KEYS)
    if "rate" not in spec and "slo" not in spec:
        raise ctx.error(
            key,
            "needs 'rate' (queries per second to serve, e.g. rate: 200) or 'slo' (a latency "
            "limit, e.g. slo: 20ms, to find the highest rate that meets it), or both",
        )
    rate = duration = None
    queries: int | None = None
    if "rate" in spec:
        rate = _positive(
            ctx, spec["rate"], f"{key}.rate", units.parse_rate, MAX_RATE, lambda v: f"{v:g}/s"
        )
        if "duration" not in spec and "queries" not in spec:
            raise ctx.error(key, "with 'rate', give 'duration' (e.g. 3s) or 'queries' (e.g. 1000)")
        if "duration" in spec:
            duration = _positive(
                ctx,
                spec["duration"],
                f"{key}.duration",
                units.parse_duration,
                MAX_DURATION,
                _seconds,
            )
        if "queries" in spec:
            queries = ctx.integer(spec["queries"], f"{key}.queries", 1, MAX_QUERIES)
    elif "duration" in spec or "queries" in spec:
        raise ctx.error(key, "'duration' and 'queries' need a 'rate'")
    raw_percentiles = spec.get("percentiles", ["p50", "p90", "p99"])
    if not isinstance(raw_percentiles, list) or not raw_percentiles:
        raise ctx.error(
            f"{key}.percentiles", f"expected a list like [p50, p99], got {raw_percentiles!r}"
        )
    percentiles = tuple(
        percentile_value(ctx, q, f"{key}.percentiles[{i}]") for i, q in enumerate(raw_percentiles)
    )
    if len(set(percentiles)) != len(percentiles):
        raise ctx.error(f"{key}.percentiles", "lists a percentile twice")
    if rate is not None:
        scheduled = min(
            rate * duration if duration is not None else math.inf,
            queries if queries is not None else math.inf,
        )
        for index, q in enumerate(percentiles):
            needed = min_calls_for_percentile(q, CONFIDENCE)
            if scheduled < needed:
                raise ctx.error(
                    f"{key}.percentiles[{index}]",
                    f"p{q * 100:g} needs at least {needed} queries to be bounded at "
                    f"{CONFIDENCE:.0%} confidence, and rate x duration schedules about "
                    f"{scheduled:.0f}; raise duration, rate or queries, or drop p{q * 100:g}",
                )
    max_queue = spec.get("max_queue")
    if max_queue is not None:
        max_queue = ctx.integer(max_queue, f"{key}.max_queue", 1)
    slo = None
    if "slo" in spec:
        slo = _positive(ctx, spec["slo"], f"{key}.slo", units.parse_duration, 60.0, _seconds)
    elif "slo_percentile" in spec or "search_budget" in spec:
        raise ctx.error(key, "'slo_percentile' and 'search_budget' need an 'slo' (e.g. slo: 20ms)")
    return LoadSpec(
        rate=rate,
        duration=duration,
        queries=queries,
        threads=ctx.integer(spec.get("threads", 1), f"{key}.threads", 1, MAX_THREADS),
        max_batch=ctx.integer(spec.get("max_batch", 1), f"{key}.max_batch", 1, MAX_LOAD_BATCH),
        max_wait=ctx.quantity(
            spec.get("max_wait", "0s"),
            f"{key}.max_wait",
            units.parse_duration,
            MAX_WAIT,
            show=_seconds,
        ),
        max_queue=max_queue,
        percentiles=percentiles,
        slo=slo,
        slo_percentile=percentile_value(
            ctx, spec.get("slo_percentile", "p99"), f"{key}.slo_percentile"
        ),
        search_budget=_positive(
            ctx,
            spec.get("search_budget", "30s"),
            f"{key}.search_budget",
            units.parse_duration,
            MAX_DURATION,
            _seconds,
        ),
    )


def parse_data(ctx: Checker, raw: Any, key: str) -> DataSpec:
    if isinstance(raw, str):
        raw = {"loader": raw}
    spec = ctx.mapping(raw, key, DATA_KEYS)
    loader = spec.get("loader")
    if not isinstance(loader, str) or not CALLABLE.match(loader):
        raise ctx.error(
            f"{key}.loader",
            f"expected 'module:function' (called with no arguments, returning an iterable of "
            f"batches: a torch DataLoader, a Parquet reader, a generator), got {loader!r}",
        )
    return DataSpec(
        loader=loader,
        batches=ctx.integer(spec.get("batches", 20), f"{key}.batches", 1, MAX_DATA_BATCHES),
    )


def load_from_dict(data: dict[str, Any] | None) -> LoadSpec | None:
    if data is None:
        return None
    return LoadSpec(**{**data, "percentiles": tuple(data.get("percentiles", (0.5, 0.9, 0.99)))})


def metric_tag(rate: float) -> str:
    """``@200qps``: the rate a load metric was measured at, in its name."""
    return f"@{rate:g}qps"


def max_qps_metric(q: float, slo: float) -> str:
    """``max_qps@p99<20ms``."""
    return f"max_qps@p{q * 100:g}<{slo * 1000:g}ms"
