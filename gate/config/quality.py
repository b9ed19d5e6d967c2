"""The quality side of the config: eval sets, quality metrics, parity bounds, trade-off rules.

Parsed by :mod:`gate.config` (which owns the YAML and the error context); the dataclasses here
are what the evaluation worker and the decision read. See docs/config.md for the schema.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gate import units
from gate.config.checks import closest
from gate.core.types import Direction, TradeOff
from gate.errors import ConfigError

CLASSIFICATION_METRICS = ("accuracy", "top5", "f1_macro")
REGRESSION_METRICS = ("mae", "rmse")
BUILTIN_METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS
# Metrics whose per-example outcomes are kept, so an unchanged eval set compares paired.
PAIRED_METRICS = frozenset({"accuracy", "top5", "mae", "rmse"})
DIRECTIONS = {
    "accuracy": Direction.HIGHER,
    "top5": Direction.HIGHER,
    "f1_macro": Direction.HIGHER,
    "mae": Direction.LOWER,
    "rmse": Direction.LOWER,
}
TASKS = ("classification", "regression")
EVAL_KEYS = ("data", "callable", "x", "y", "task", "batch_size", "dtype", "metrics", "custom")
DATA_SUFFIXES = (".npz", ".parquet")
# Parity defaults by variant kind: exact conversions are held to allclose bounds; reduced
# precision is judged by top-1 agreement (classification) or looser bounds (regression).
EXACT_VARIANTS = frozenset(
    {"torch", "torch-compile", "torch-cuda-graphs", "onnxruntime", "onnxruntime-cuda"}
)
STRICT_BOUNDS = {"atol": 1e-4, "rtol": 1e-3}
LOOSE_BOUNDS = {"atol": 5e-2, "rtol": 5e-2, "top1_agreement": 0.99}
PARITY_KEYS = ("atol", "rtol", "top1_agreement", "ties")
# Top-1 agreement leaves out examples whose reference's two best outputs are this close (a
# share of the example's largest |output|): their order is decided by rounding, not the model.
DEFAULT_TIES = 0.01
MAX_EXAMPLES = 100_000  # per-example outcomes kept in the run record, at most
MAX_BATCH = 100_000  # examples per call: eval.batch_size, and models' batch_sizes
# A trade-off's condition is a relative change: above -100% (a time cannot shrink by all of
# it), at most +1000%.
MIN_CHANGE, MAX_CHANGE = -1.0, 10.0
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ErrorContext(Protocol):
    """What the parser needs from the config's context: errors that name file and key."""

    def error(self, key: str, message: str) -> ConfigError: ...

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...] | None) -> dict[str, Any]: ...

    def integer(self, value: Any, key: str, minimum: int, maximum: int | None = None) -> int: ...


@dataclass(frozen=True, kw_only=True)
class CustomMetric:
    """``module:function(predictions, targets) -> float`` with the direction that is better."""

    name: str
    function: str
    direction: Direction


@dataclass(frozen=True, kw_only=True)
class EvalSpec:
    """An eval set and the quality metrics computed on it."""

    data: Path | None = None
    callable: str | None = None
    x: tuple[str, ...] = ("x",)
    y: str = "y"
    task: str = "classification"
    batch_size: int = 256
    dtype: str | None = None
    metrics: tuple[str, ...] = ("accuracy",)
    custom: tuple[CustomMetric, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": str(self.data) if self.data else None,
            "callable": self.callable,
            "x": list(self.x),
            "y": self.y,
            "task": self.task,
            "batch_size": self.batch_size,
            "dtype": self.dtype,
            "metrics": list(self.metrics),
            "custom": [
                {"name": c.name, "function": c.function, "direction": c.direction.value}
                for c in self.custom
            ],
        }

    def direction(self, metric: str) -> Direction:
        for custom in self.custom:
            if custom.name == metric:
                return custom.direction
        return DIRECTIONS[metric]


@dataclass(frozen=True, kw_only=True)
class ParityBounds:
    """A variant's outputs agree with the reference's when |a - r| <= atol + rtol * |r|
    everywhere, and (when set, classification only) the top-1 classes agree this often on the
    examples whose reference's two best outputs are more than ``ties`` x its largest |output|
    apart (closer ones are near-ties: counted and shown, their outputs held to the loose
    bounds instead)."""

    atol: float | None = None
    rtol: float = 0.0
    top1_agreement: float | None = None
    ties: float = DEFAULT_TIES

    def describe(self, ties: bool = True) -> str:
        """The bounds in words; ``ties=False`` for a record made before near-ties were left
        out (its bounds do not name them)."""
        parts = []
        if self.atol is not None:
            parts.append(f"atol {self.atol:g}, rtol {self.rtol:g}")
        if self.top1_agreement is not None:
            parts.append(f"top-1 agreement >= {self.top1_agreement * 100:g}%")
            if ties:
                parts[-1] += f" (near-ties within {self.ties * 100:g}% not counted)"
        return "; ".join(parts)


@dataclass(frozen=True, kw_only=True)
class ParitySpec:
    """Which variant is the reference, and the bounds per variant (defaults by kind)."""

    enabled: bool = True
    reference: str | None = None
    overrides: dict[str, ParityBounds] = field(default_factory=dict)

    def bounds(self, variant: str, task: str) -> ParityBounds:
        if variant in self.overrides:
            return self.overrides[variant]
        if variant in EXACT_VARIANTS:
            return ParityBounds(**STRICT_BOUNDS)
        if task == "classification":
            return ParityBounds(top1_agreement=LOOSE_BOUNDS["top1_agreement"])
        return ParityBounds(atol=LOOSE_BOUNDS["atol"], rtol=LOOSE_BOUNDS["rtol"])


# --------------------------------------------------------------------------------------------
# Parsing (called by gate.config with its error context)


def parse_eval(ctx: ErrorContext, value: Any, key: str, root: Path) -> EvalSpec:
    raw = ctx.mapping(value, key, EVAL_KEYS)
    data_ref, callable_ref = raw.get("data"), raw.get("callable")
    if (data_ref is None) == (callable_ref is None):
        raise ctx.error(
            key, "needs exactly one of 'data: path.npz|path.parquet' or 'callable: module:function'"
        )
    data: Path | None = None
    if data_ref is not None:
        if not isinstance(data_ref, str) or not data_ref.strip():
            raise ctx.error(f"{key}.data", f"expected a path, got {data_ref!r}")
        data = Path(data_ref) if Path(data_ref).is_absolute() else root / data_ref
        if data.suffix not in DATA_SUFFIXES:
            raise ctx.error(f"{key}.data", f"expected a .npz or .parquet file, got {data_ref!r}")
        if not data.is_file():
            raise ctx.error(
                f"{key}.data",
                f"file {data_ref!r} not found (relative to {root}); if it is tracked by DVC, "
                "run 'dvc pull' first",
            )
    if callable_ref is not None and (
        not isinstance(callable_ref, str) or not _CALLABLE.match(callable_ref)
    ):
        raise ctx.error(f"{key}.callable", f"expected 'module:function', got {callable_ref!r}")
    task = raw.get("task", "classification")
    if task not in TASKS:
        raise ctx.error(f"{key}.task", f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    default_metrics = ["accuracy"] if task == "classification" else ["mae", "rmse"]
    metrics = _metric_list(ctx, raw.get("metrics", default_metrics), f"{key}.metrics", task)
    custom = _custom_metrics(ctx, raw.get("custom") or {}, f"{key}.custom")
    x = raw.get("x", "x")
    x_columns = (x,) if isinstance(x, str) else x
    if (
        not isinstance(x_columns, (list, tuple))
        or not x_columns
        or not all(isinstance(c, str) and c for c in x_columns)
    ):
        raise ctx.error(f"{key}.x", f"expected a column/array name or a list of them, got {x!r}")
    y = raw.get("y", "y")
    if not isinstance(y, str) or not y:
        raise ctx.error(f"{key}.y", f"expected a column/array name, got {y!r}")
    dtype = raw.get("dtype")
    if dtype is not None and dtype not in ("float32", "float64", "float16", "int64", "int32"):
        raise ctx.error(
            f"{key}.dtype", f"expected float32, float64, float16, int64 or int32, got {dtype!r}"
        )
    return EvalSpec(
        data=data,
        callable=callable_ref,
        x=tuple(x_columns),
        y=y,
        task=task,
        batch_size=ctx.integer(raw.get("batch_size", 256), f"{key}.batch_size", 1, MAX_BATCH),
        dtype=dtype,
        metrics=metrics,
        custom=custom,
    )


def _metric_list(ctx: ErrorContext, value: Any, key: str, task: str) -> tuple[str, ...]:
    allowed = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ctx.error(key, f"expected a list of metric names, got {value!r}")
    for index, name in enumerate(value):
        if name not in allowed:
            other = "regression" if task == "classification" else "classification"
            hint = (
                f" ({name} is a {other} metric: set task: {other})"
                if name in BUILTIN_METRICS
                else ""
            )
            raise ctx.error(
                f"{key}[{index}]",
                f"unknown metric {name!r} for task {task}; expected one of "
                f"{', '.join(allowed)}{hint}",
            )
    if len(set(value)) != len(value):
        raise ctx.error(key, "lists a metric twice")
    return tuple(value)


def _custom_metrics(ctx: ErrorContext, value: Any, key: str) -> tuple[CustomMetric, ...]:
    metrics = []
    for name, spec in ctx.mapping(value, key, None).items():
        where = f"{key}.{name}"
        if not _NAME.match(str(name)) or name in BUILTIN_METRICS:
            raise ctx.error(
                where, "custom metric names are identifiers other than the built-in ones"
            )
        spec = ctx.mapping(spec, where, ("function", "direction"))
        function = spec.get("function")
        if not isinstance(function, str) or not _CALLABLE.match(function):
            raise ctx.error(f"{where}.function", f"expected 'module:function', got {function!r}")
        direction = spec.get("direction")
        if direction not in ("higher", "lower"):
            raise ctx.error(
                f"{where}.direction",
                f"expected 'higher' or 'lower' (which is better), got {direction!r}",
            )
        metrics.append(
            CustomMetric(name=str(name), function=function, direction=Direction(direction))
        )
    return tuple(metrics)


def parse_parity(ctx: ErrorContext, value: Any, key: str, variants: tuple[str, ...]) -> ParitySpec:
    if value is None:
        return ParitySpec()
    if value is False:
        return ParitySpec(enabled=False)
    raw = ctx.mapping(value, key, ("reference", *variants))
    reference = raw.get("reference")
    if reference is not None and reference not in variants:
        raise ctx.error(
            f"{key}.reference",
            f"{reference!r} is not one of this model's variants ({', '.join(variants)})",
        )
    overrides = {}
    for variant in variants:
        if variant not in raw:
            continue
        where = f"{key}.{variant}"
        spec = ctx.mapping(raw[variant], where, PARITY_KEYS)
        atol = _non_negative(ctx, spec.get("atol"), f"{where}.atol")
        rtol = _non_negative(ctx, spec.get("rtol", 0.0), f"{where}.rtol")
        agreement = spec.get("top1_agreement")
        if agreement is not None:
            try:
                agreement = units.parse_percent(agreement)
            except ValueError as exc:
                raise ctx.error(f"{where}.top1_agreement", str(exc)) from None
            if not 0.0 < agreement <= 1.0:
                raise ctx.error(
                    f"{where}.top1_agreement",
                    f"expected above 0% and at most 100%, got {spec['top1_agreement']!r}",
                )
        if atol is None and agreement is None:
            raise ctx.error(where, "set 'atol' (with 'rtol') and/or 'top1_agreement'")
        ties = DEFAULT_TIES
        if spec.get("ties") is not None:
            try:
                ties = units.parse_percent(spec["ties"])
            except ValueError as exc:
                raise ctx.error(f"{where}.ties", f"{exc} (e.g. ties: 1%)") from None
            if not 0.0 <= ties < 1.0:
                raise ctx.error(f"{where}.ties", f"expected 0% to 99%, got {spec['ties']!r}")
        overrides[variant] = ParityBounds(
            atol=atol, rtol=rtol or 0.0, top1_agreement=agreement, ties=ties
        )
    return ParitySpec(reference=reference, overrides=overrides)


def _non_negative(ctx: ErrorContext, value: Any, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ctx.error(key, f"expected a non-negative number like 1e-4, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        number = math.inf
    if number < 0:
        raise ctx.error(key, f"expected a non-negative number like 1e-4, got {value!r}")
    if not math.isfinite(number):
        raise ctx.error(key, f"expected a finite number like 1e-4, got {value!r}")
    return number


def parse_tradeoffs(
    ctx: ErrorContext, value: Any, key: str, custom: Collection[str] = ()
) -> tuple[TradeOff, ...]:
    """``policy.tradeoffs``; ``custom`` are the config's custom quality metrics, which ``allow``
    may name besides the built-in ones (a near miss of a built-in name is refused)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ctx.error(
            key, "expected a list of rules like {allow: {accuracy: -0.3pt}, when: {latency: -15%}}"
        )
    rules = []
    for index, item in enumerate(value):
        where = f"{key}[{index}]"
        spec = ctx.mapping(item, where, ("allow", "when"))
        if "allow" not in spec or "when" not in spec:
            raise ctx.error(
                where, "needs both 'allow: {metric: drop}' and 'when: {metric: change}'"
            )
        allow: dict[str, float] = {}
        for metric, text in ctx.mapping(spec["allow"], f"{where}.allow", None).items():
            _known_metric(ctx, f"{where}.allow.{metric}", str(metric), BUILTIN_METRICS, custom)
            try:
                threshold = _quality_tolerance(str(metric), text)
            except ValueError as exc:
                raise ctx.error(f"{where}.allow.{metric}", str(exc)) from None
            if units.budget_unit(str(metric)) == units.UNIT_FRACTION and abs(threshold) > 1.0:
                raise ctx.error(f"{where}.allow.{metric}", f"expected at most 100pt, got {text!r}")
            allow[str(metric)] = threshold
        when: dict[str, float] = {}
        for metric, text in ctx.mapping(spec["when"], f"{where}.when", None).items():
            _known_metric(ctx, f"{where}.when.{metric}", str(metric), TIMING_FAMILIES, ())
            try:
                change = _signed(units.parse_percent, text)
            except ValueError as exc:
                raise ctx.error(f"{where}.when.{metric}", f"{exc} (e.g. latency: -15%)") from None
            if not MIN_CHANGE < change <= MAX_CHANGE:
                raise ctx.error(
                    f"{where}.when.{metric}",
                    f"expected a change above -100% and at most +1000%, got {text!r}",
                )
            when[str(metric)] = change
        if not allow or not when:
            raise ctx.error(where, "'allow' and 'when' each need at least one metric")
        text = (
            "allow "
            + ", ".join(f"{m} {_show(m, v)}" for m, v in allow.items())
            + " when "
            + ", ".join(f"{m} {v * 100:+g}%" for m, v in when.items())
        )
        rules.append(TradeOff(allow=allow, when=when, text=text))
    return tuple(rules)


# What a trade-off's ``when`` may name: a metric family measured per benchmark (or one of its
# metrics, ``throughput@32``), or a custom metric.
TIMING_FAMILIES = ("latency", "throughput", "memory", "gpu_memory", "cold_start", "model_size")


def _known_metric(
    ctx: ErrorContext, key: str, metric: str, builtin: tuple[str, ...], custom: Collection[str]
) -> None:
    """A metric a rule names is built in (its family, for ``throughput@32``), custom, or an
    error when it is a near miss of a built-in name (a typo would make the rule never apply)."""
    family = metric.split("@", 1)[0].split(".", 1)[0]
    if metric in builtin or family in builtin or metric in custom:
        return
    guess = closest(family, builtin, strict=True)
    if guess is not None:
        raise ctx.error(
            key,
            f"unknown metric; did you mean {guess!r}? (expected one of {', '.join(builtin)}, "
            "or a custom metric's exact name)",
        )


def _signed(parse: Callable[[Any], float], text: Any) -> float:
    """A signed quantity (``-15%``, ``-0.3pt``): the sign says which way a change goes."""
    if isinstance(text, str) and text.strip()[:1] in ("-", "+"):
        stripped = text.strip()
        magnitude = parse(stripped[1:])
        return -magnitude if stripped[0] == "-" else magnitude
    return parse(text)


def _quality_tolerance(metric: str, text: Any) -> float:
    unit = units.budget_unit(metric)
    if unit:
        return _signed(lambda t: units.parse_for_unit(t, unit), text)
    return _signed(lambda t: units.parse_for_unit(t, ""), text)


def _show(metric: str, value: float) -> str:
    if units.budget_unit(metric) == units.UNIT_FRACTION:
        return units.format_points(value)
    return f"{value:+g}"


def parse_require_significance(ctx: ErrorContext, value: Any, key: str) -> frozenset[str]:
    """``true`` (every paired quality metric), a list of metric names, or ``false``."""
    if value is None or value is False:
        return frozenset()
    if value is True:
        return frozenset(PAIRED_METRICS)
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list):
        raise ctx.error(key, f"expected true, false or a list of metric names, got {value!r}")
    for index, name in enumerate(names):
        if name not in PAIRED_METRICS:
            raise ctx.error(
                f"{key}[{index}]",
                f"{name!r} keeps no per-example outcomes to test; require_significance supports "
                f"{', '.join(sorted(PAIRED_METRICS))}",
            )
    return frozenset(names)
