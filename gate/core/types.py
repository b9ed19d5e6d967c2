"""Frozen value types shared by every layer: metrics, samples, run records, comparisons.

Nothing here does I/O or imports a third-party package; these types are what the measuring code
produces, what the baseline file stores and what the decision and the reports read.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gate.units import parse_for_unit

# How a run's timings were compared (a comparison's ``mode``): with the baseline's stored
# rounds, or paired with the base revision's rounds: one after the other (ab), at the same time
# (parallel) or alternated in one process (duet, onnxruntime).
TimingMode = Literal["stored", "ab", "parallel", "duet"]
PAIRED_MODES: tuple[TimingMode, ...] = ("ab", "parallel", "duet")
# What a run asks for (policy.timing_mode, --ab/--perf-gate-mode): auto picks ab with a base
# revision (duet for onnxruntime variants), else stored.
RequestedMode = Literal["auto", "stored", "ab", "duet"]
REQUESTED_MODES: tuple[RequestedMode, ...] = ("auto", "stored", "ab", "duet")
# policy.parallel: ab rounds side by side where the cores allow (auto), on a core each (pinned)
ParallelSetting = Literal["auto", "pinned", "never"]
PARALLEL_SETTINGS: tuple[ParallelSetting, ...] = ("auto", "pinned", "never")


class Direction(str, enum.Enum):
    """Which way is better for a metric."""

    LOWER = "lower"
    HIGHER = "higher"


class Verdict(str, enum.Enum):
    """The outcome of comparing one (benchmark, metric) with its baseline."""

    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    UNCHANGED = "unchanged"
    INCONCLUSIVE = "inconclusive"
    NEW = "new"
    MISSING = "missing"
    OVER_BUDGET = "over-budget"
    PARITY_FAIL = "parity-fail"  # a variant's outputs left its parity bounds with the reference
    ACCEPTED_TRADE_OFF = "accepted-trade-off"  # a quality regression a trade-off rule allowed
    ERROR = "error"


class Replication(str, enum.Enum):
    """What one value of a sample stands for.

    ``process``: one value per fresh worker process, so the spread includes the between-process
    variation that dominates real noise; verdicts on these can fail the build.
    ``in-process``: rounds inside one process (pytest-benchmark's own rounds); their spread
    underestimates the noise, so verdicts on them are advisory only.
    """

    PROCESS = "process"
    IN_PROCESS = "in-process"
    EVALUATION = "evaluation"  # one deterministic evaluation over an eval set (quality metrics)


class ExitCode(enum.IntEnum):
    """The process exit codes of perf-gate (DESIGN section 7)."""

    OK = 0
    REGRESSION = 1
    USAGE = 2
    INTERNAL = 3


@dataclass(frozen=True)
class Metric:
    """One kind of number of a benchmark: ``latency``, ``throughput@32``, ``memory.peak``...

    ``family`` (the part before ``@`` or ``.``) selects the policy's threshold.
    """

    name: str
    unit: str
    direction: Direction

    @property
    def family(self) -> str:
        return self.name.split("@", 1)[0].split(".", 1)[0]


@dataclass(frozen=True, kw_only=True)
class Sample:
    """The raw values measured for one (benchmark, metric); statistics are derived, never stored.

    ``values`` holds one value per replication unit (a fresh process for ``Replication.PROCESS``):
    the round's call time for latency (its fastest block median, ``stats.best_block``), items/s
    for throughput, bytes for memory.
    ``calls`` holds per-call times pooled over rounds (bounded) for percentiles; ``first_calls``
    the first, excluded call of each round.
    """

    benchmark: str
    metric: Metric
    values: tuple[float, ...]
    replication: Replication = Replication.PROCESS
    calls: tuple[float, ...] = ()
    first_calls: tuple[float, ...] = ()
    # Quality metrics: per-example outcomes (1/0 correct for accuracy and top5, the absolute
    # error for mae, the squared error for rmse) so that the same eval set compares paired.
    examples: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError(f"{self.benchmark} {self.metric.name}: a sample needs values")
        if any(not math.isfinite(v) for v in self.values):
            raise ValueError(f"{self.benchmark} {self.metric.name}: values must be finite")


@dataclass(frozen=True, kw_only=True)
class GitInfo:
    commit: str | None = None
    ref: str | None = None
    dirty: bool | None = None


@dataclass(frozen=True, kw_only=True)
class BenchmarkError:
    """A benchmark that could not be measured; shown in reports and fails the run (exit 3)."""

    benchmark: str
    message: str


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """Everything one run measured: samples plus the context needed to trust a comparison."""

    samples: tuple[Sample, ...]
    environment: Mapping[str, Any]
    git: GitInfo = field(default_factory=GitInfo)
    created: str = ""
    tool_version: str = ""
    config_digest: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)
    info: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    errors: tuple[BenchmarkError, ...] = ()
    # md5 of the model and data files the run used (ONNX files, DVC-tracked files), by path
    # relative to the config directory: a report says when they changed since the baseline.
    files: Mapping[str, str] = field(default_factory=dict)

    def sample(self, benchmark: str, metric: str) -> Sample | None:
        for sample in self.samples:
            if sample.benchmark == benchmark and sample.metric.name == metric:
                return sample
        return None


@dataclass(frozen=True, kw_only=True)
class Threshold:
    """How large a change must be to matter: relative (``5%`` -> 0.05) or absolute (in the unit)."""

    value: float
    relative: bool = True

    def exceeded_by(self, relative_change: float, absolute_change: float) -> bool:
        change = relative_change if self.relative else absolute_change
        return abs(change) > self.value

    def describe(self) -> str:
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"


@dataclass(frozen=True, kw_only=True)
class Budget:
    """An absolute limit: ``pattern`` matches benchmark names, ``metric`` e.g. ``latency.p99``."""

    pattern: str
    metric: str
    limit_text: str

    def limit(self, unit: str) -> float:
        return parse_for_unit(self.limit_text, unit)


@dataclass(frozen=True, kw_only=True)
class TradeOff:
    """Accept a quality drop up to ``allow`` (per metric, in its units) when every ``when``
    relative change (e.g. latency -0.15) holds significantly in the same benchmark."""

    allow: Mapping[str, float]
    when: Mapping[str, float]
    text: str

    def allowance(self, metric: str) -> float | None:
        value = self.allow.get(metric)
        return None if value is None else abs(value)


@dataclass(frozen=True, kw_only=True)
class Policy:
    """How the gate decides; see docs/STATISTICS.md for the meaning of each field."""

    alpha: float = 0.01
    thresholds: Mapping[str, Threshold] = field(default_factory=dict)
    budgets: tuple[Budget, ...] = ()
    overrides: Mapping[str, Threshold] = field(default_factory=dict)
    timing_mode: RequestedMode = "auto"
    parallel: ParallelSetting = "auto"
    # the base revision's workers: auto (its own environment when its dependencies differ),
    # current (this interpreter), or an interpreter's or virtual environment's absolute path
    base_environment: str = "auto"
    min_rounds: int = 8
    max_rounds: int = 24
    round_step: int = 4
    time_budget: float = 600.0  # seconds of paired rounds before giving up on inconclusive ones
    fail_on_inconclusive: bool = False
    memory_floor: float = 8 * 2**20  # bytes: memory changes below this never fail
    # Stored timings against a baseline from another environment: warn (advisory), fail
    # (an error verdict) or skip-timing (not compared).
    on_environment_mismatch: str = "warn"
    # Quality metrics that fail only when their drop is also significant (paired test).
    require_significance: frozenset[str] = frozenset()
    tradeoffs: tuple[TradeOff, ...] = ()
    # drift budgets on the promoted history: family or metric -> (fraction, promotions)
    drift: Mapping[str, tuple[float, int]] = field(default_factory=dict)

    def threshold_for(self, benchmark: str, metric_family: str) -> Threshold:
        """Per-benchmark override first (pytest marker), then the family, then ``default``."""
        if benchmark in self.overrides:
            return self.overrides[benchmark]
        if metric_family in self.thresholds:
            return self.thresholds[metric_family]
        return self.thresholds.get("default", Threshold(value=0.05))


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """Baseline against current for one (benchmark, metric), with the verdict and its evidence.

    ``relative_change`` is current/baseline - 1 of the estimate (NaN when undefined);
    ``ci_low``/``ci_high`` bound it (simultaneous interval, see docs/STATISTICS.md); ``mode`` is
    how the baseline side was measured (``stored``, ``ab``, ``duet``); ``mde`` the minimum
    detectable relative change at 80% power; ``p_value`` is the raw test p-value
    and ``significant`` the decision after multiple-comparison correction.
    """

    benchmark: str
    metric: Metric
    verdict: Verdict
    baseline: float | None = None
    current: float | None = None
    relative_change: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    p_value: float = math.nan
    significant: bool = False
    threshold: Threshold | None = None
    advisory: bool = False
    note: str = ""
    mode: TimingMode | Literal[""] = ""  # "": not a timing
    mde: float = math.nan
    n_baseline: int = 0
    n_current: int = 0
    # Quality metrics: the change in the metric's own units with its interval, the examples
    # that flipped (to wrong, to right) on an unchanged eval set, and the trade-off rule applied.
    absolute_change: float = math.nan
    absolute_ci: tuple[float, float] | None = None
    flips: tuple[int, int] | None = None
    rule: str = ""

    @property
    def fails(self) -> bool:
        """Whether this comparison alone fails the gate."""
        return (
            self.verdict in (Verdict.REGRESSION, Verdict.OVER_BUDGET, Verdict.PARITY_FAIL)
            and not self.advisory
        ) or self.verdict is Verdict.ERROR


@dataclass(frozen=True, kw_only=True)
class VariantSummary:
    """What one model variant costs: its quality next to its speed and memory, and how far its
    outputs are from the reference variant's (``parity``: the evaluation's numbers)."""

    benchmark: str
    model: str
    variant: str
    quality: Mapping[str, float] = field(default_factory=dict)
    latency: float | None = None
    memory: float | None = None
    parity: Mapping[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class TailLatency:
    """A latency sample's per-call summary beyond the gated median, baseline and current: mean,
    p90 and p99 of the pooled per-call times, and the first call of each round (kept out of the
    timings: compilation, lazy loading and cold caches show there).

    Reported, not gated: ``calls`` says how many calls back the current figures. ``first_call``
    is the median over rounds, ``first_call_ratio`` its multiple of the median call; None where
    the record has no first calls.
    """

    benchmark: str
    metric: str
    baseline_p90: float | None
    baseline_p99: float | None
    current_p90: float
    current_p99: float
    calls: int
    baseline_mean: float | None = None
    current_mean: float | None = None
    baseline_first_call: float | None = None
    first_call: float | None = None
    first_call_ratio: float | None = None


@dataclass(frozen=True, kw_only=True)
class GateResult:
    """The whole decision of a run: comparisons plus what a reader needs to trust them."""

    comparisons: tuple[Comparison, ...]
    alpha: float
    has_baseline: bool
    environment_differences: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    tails: tuple[TailLatency, ...] = ()
    variants: tuple[VariantSummary, ...] = ()
    errors: tuple[BenchmarkError, ...] = ()
    baseline_commit: str | None = None
    current_commit: str | None = None
    fail_on_inconclusive: bool = False

    def _fails(self, comparison: Comparison) -> bool:
        if comparison.fails:
            return True
        return (
            self.fail_on_inconclusive
            and comparison.verdict is Verdict.INCONCLUSIVE
            and not comparison.advisory
        )

    @property
    def failed(self) -> bool:
        return any(self._fails(c) for c in self.comparisons)

    def count(self, verdict: Verdict) -> int:
        return sum(1 for c in self.comparisons if c.verdict is verdict)

    @property
    def exit_code(self) -> ExitCode:
        """Regression or over budget -> 1; a benchmark that could not be measured -> 3."""
        if any(self._fails(c) and c.verdict is not Verdict.ERROR for c in self.comparisons):
            return ExitCode.REGRESSION
        if self.errors or any(c.verdict is Verdict.ERROR for c in self.comparisons):
            return ExitCode.INTERNAL
        return ExitCode.OK
