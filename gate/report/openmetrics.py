"""comparison.json -> Prometheus metrics (docs/export.md): the text exposition format that
node_exporter's textfile collector and a Pushgateway read, written by prometheus_client.

Names follow Prometheus's conventions: a ``perf_gate_`` prefix, base units as suffixes
(``_seconds``, ``_bytes``, ``_ratio``), one metric per unit so that a name never mixes them.
Every series of a row carries ``benchmark``, ``model``, ``variant``, ``metric``,
``environment`` and ``branch`` labels; ``metric`` is perf-gate's name (``latency``,
``throughput@32``, ``latency.p99@200qps``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from gate.units import UNIT_BYTES, UNIT_FRACTION, UNIT_RATE, UNIT_SECONDS

PREFIX = "perf_gate"
VERDICTS = (
    "regression",
    "improvement",
    "unchanged",
    "inconclusive",
    "new",
    "missing",
    "over-budget",
    "parity-fail",
    "accepted-trade-off",
    "error",
)
# perf-gate's units -> the Prometheus suffix of the value's metric name
SUFFIX = {
    UNIT_SECONDS: "seconds",
    UNIT_BYTES: "bytes",
    UNIT_RATE: "per_second",
    UNIT_FRACTION: "ratio",
    "B/s": "bytes_per_second",
}
ROW_LABELS = ("benchmark", "model", "variant", "metric", "environment", "branch")
_VARIANT = re.compile(r"^(?P<model>.*)\[(?P<variant>[^\[\]]*)\]$")


def split_benchmark(name: str) -> tuple[str, str]:
    """``digits-mlp[onnxruntime]`` -> (``digits-mlp``, ``onnxruntime``); a test's node id has
    no variant: (the name, "")."""
    found = _VARIANT.match(name)
    return (found["model"], found["variant"]) if found else (name, "")


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


class ComparisonCollector:
    """A prometheus_client collector of one comparison report."""

    def __init__(self, data: Mapping[str, Any], *, branch: str = "") -> None:
        self.data = data
        self.branch = branch

    def describe(self) -> list[Any]:
        return []  # an unchecked collector: its metrics depend on the report

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        environment = str(self.data.get("environment_label") or "")
        key = str(self.data.get("environment_key") or "")
        values: dict[str, Any] = {}
        baselines: dict[str, Any] = {}

        def family(store: dict[str, Any], stem: str, unit: str, doc: str) -> Any:
            suffix = SUFFIX.get(unit, "")
            name = f"{PREFIX}_{stem}" + (f"_{suffix}" if suffix else "")
            if name not in store:
                labels = [*ROW_LABELS, *([] if suffix else ["unit"])]
                store[name] = GaugeMetricFamily(name, doc, labels=labels)
            return store[name]

        change = GaugeMetricFamily(
            f"{PREFIX}_change_ratio",
            "current / baseline - 1 of the row's estimate",
            labels=list(ROW_LABELS),
        )
        low = GaugeMetricFamily(
            f"{PREFIX}_change_low_ratio",
            "lower bound of the interval the decision used (current / baseline - 1)",
            labels=list(ROW_LABELS),
        )
        high = GaugeMetricFamily(
            f"{PREFIX}_change_high_ratio",
            "upper bound of the interval the decision used (current / baseline - 1)",
            labels=list(ROW_LABELS),
        )
        verdict = GaugeMetricFamily(
            f"{PREFIX}_verdict",
            "1 for the row's verdict (label verdict); fails: whether it fails the run",
            labels=[*ROW_LABELS, "verdict", "fails"],
        )
        counts: dict[str, int] = dict.fromkeys(VERDICTS, 0)
        for row in self.data.get("comparisons", []):
            benchmark, metric = str(row["benchmark"]), str(row["metric"])
            model, variant = split_benchmark(benchmark)
            labels = [benchmark, model, variant, metric, environment, self.branch]
            unit = str(row.get("unit") or "")
            extra = [] if unit in SUFFIX else [unit]
            current = _finite(row.get("current"))
            if current is not None:
                doc = "the row's current value (the median of the run's values)"
                family(values, "result", unit, doc).add_metric(labels + extra, current)
            baseline = _finite(row.get("baseline"))
            if baseline is not None:
                doc = "the row's baseline value"
                family(baselines, "baseline", unit, doc).add_metric(labels + extra, baseline)
            for gauge, field in ((change, "relative_change"), (low, "ci_low"), (high, "ci_high")):
                value = _finite(row.get(field))
                if value is not None:
                    gauge.add_metric(labels, value)
            state = str(row["verdict"])
            counts[state] = counts.get(state, 0) + 1
            verdict.add_metric([*labels, state, str(bool(row.get("fails"))).lower()], 1.0)
        yield from values.values()
        yield from baselines.values()
        yield from (change, low, high, verdict)
        total = GaugeMetricFamily(
            f"{PREFIX}_verdicts",
            "rows of the run per verdict",
            labels=["environment", "branch", "verdict"],
        )
        for state, count in counts.items():
            total.add_metric([environment, self.branch, state], float(count))
        yield total
        run = GaugeMetricFamily(
            f"{PREFIX}_exit_code",
            "the run's exit code (0 passed, 1 regression, 2 usage, 3 measurement error)",
            labels=["environment", "environment_key", "branch", "commit"],
        )
        commit = str(self.data.get("current_commit") or "")[:12]
        run.add_metric(
            [environment, key, self.branch, commit], float(self.data.get("exit_code", 0))
        )
        yield run


def exposition(data: Mapping[str, Any], *, branch: str = "") -> bytes:
    """The report's metrics in the Prometheus text format (version 0.0.4)."""
    registry, _ = registry_of(data, branch=branch)
    from prometheus_client import generate_latest

    return bytes(generate_latest(registry))


def registry_of(data: Mapping[str, Any], *, branch: str = "") -> tuple[Any, ComparisonCollector]:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    collector = ComparisonCollector(data, branch=branch)
    registry.register(collector)
    return registry, collector


def push(
    data: Mapping[str, Any], url: str, *, job: str, branch: str = "", timeout: float = 30.0
) -> None:
    """PUT the report's metrics to a Pushgateway at ``url``, grouped by job, environment and
    branch (a later push of the same group replaces them). Raises what urllib raises."""
    from prometheus_client import push_to_gateway

    registry, _ = registry_of(data, branch=branch)
    grouping = {"environment": str(data.get("environment_label") or ""), "branch": branch}
    push_to_gateway(url, job=job, registry=registry, grouping_key=grouping, timeout=timeout)
