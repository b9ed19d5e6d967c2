"""The ``policy:`` section: alpha, thresholds, budgets, timing mode and round limits."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gate import units
from gate.config.checks import Checker, closest, path_value
from gate.config.quality import MAX_BATCH, parse_require_significance, parse_tradeoffs
from gate.core.types import PARALLEL_SETTINGS, REQUESTED_MODES, Budget, Policy, Threshold

DEFAULT_THRESHOLDS = {
    "latency": "5%",
    "throughput": "5%",
    "memory": "2%",
    "gpu_memory": "2%",
    "cold_start": "25%",
    "model_size": "5%",
    # Quality: absolute drops in percentage points for fractions; relative for errors.
    "accuracy": "0.5pt",
    "top5": "0.5pt",
    "f1_macro": "0.5pt",
    "mae": "1%",
    "rmse": "1%",
    "default": "5%",
}
POLICY_KEYS = (
    "alpha",
    "thresholds",
    "budgets",
    "timing_mode",
    "parallel",
    "base_environment",
    "min_rounds",
    "max_rounds",
    "round_step",
    "time_budget",
    "fail_on_inconclusive",
    "memory_floor",
    "on_environment_mismatch",
    "require_significance",
    "tradeoffs",
    "diagnose",
    "drift",
)
ENVIRONMENT_MISMATCH = ("warn", "fail", "skip-timing")
# The ranges of the policy's numbers (docs/config.md): a relative threshold of at most 1000% (a
# change beyond that is a broken build, not a threshold), at most 100 percentage points for a
# fraction, paired rounds that end in hours, not weeks.
MAX_RELATIVE = 10.0
MAX_POINTS = 1.0
MAX_ROUNDS = 1000
MAX_TIME_BUDGET = 24 * 3600.0
MAX_MEMORY_FLOOR = float(2**40)


def parse_threshold(text: Any, unit: str | None = None) -> Threshold:
    """``"5%"`` -> relative 0.05; otherwise absolute, in ``unit`` when the metric's unit is known
    (``"2ms"`` for latency, ``"10MB"`` for memory, ``"1000/s"`` for throughput), else a duration,
    a size, a rate or a bare number (all finite and not negative: ``0%`` makes every significant
    change count). Raises ValueError naming what was expected, and for a relative threshold
    above 1000% or more than 100pt on a fraction."""
    threshold = _threshold(text, unit)
    if threshold.relative and threshold.value > MAX_RELATIVE:
        raise ValueError(
            f"expected a relative threshold from 0% to {MAX_RELATIVE * 100:g}%, got {text!r}"
        )
    if unit == units.UNIT_FRACTION and threshold.value > MAX_POINTS:
        raise ValueError(f"expected a tolerance from 0pt to {MAX_POINTS * 100:g}pt, got {text!r}")
    return threshold


def _threshold(text: Any, unit: str | None) -> Threshold:
    if isinstance(text, str) and text.strip().endswith("%"):
        try:
            return Threshold(value=units.parse_percent(text), relative=True)
        except ValueError as exc:
            raise ValueError(
                f"{exc} (a relative threshold is from 0% to {MAX_RELATIVE * 100:g}%)"
            ) from None
    if unit:
        try:
            return Threshold(value=units.parse_for_unit(text, unit), relative=False)
        except ValueError as exc:
            raise ValueError(f"{exc} (or a percentage like '5%')") from None
    for parse in (units.parse_duration, units.parse_size, units.parse_rate):
        try:
            return Threshold(value=parse(text), relative=False)
        except ValueError:
            continue
    raise ValueError(f"expected a percentage like '5%' or an absolute value, got {text!r}")


# Metric families with a threshold of their own (``default``: custom metrics without one).
BUILTIN_FAMILIES = tuple(DEFAULT_THRESHOLDS)


def check_metric_family(ctx: Checker, key: str, family: str, custom: Iterable[str] = ()) -> None:
    """A threshold's key is a metric family: a built-in one, ``default`` or a custom metric's
    name (``eval.custom`` or ``perf.record``). A name with ``.`` or ``@`` is a metric, not a
    family, and a near miss of a built-in family (``latncy``) is a typo, not a custom metric:
    both are errors naming the family meant."""
    builtin = BUILTIN_FAMILIES
    if family in builtin or family in custom:
        return
    base = family.split("@", 1)[0].split(".", 1)[0]
    if base != family:
        raise ctx.error(
            key,
            f"thresholds are per metric family (the part before '@' or '.'); write {base!r}",
        )
    guess = closest(family, builtin, strict=True)
    if guess is not None:
        raise ctx.error(
            key,
            f"unknown metric family; did you mean {guess!r}? (expected one of "
            f"{', '.join(builtin)}, or a custom metric's exact name)",
        )


# perf.load's percentiles: latency.p99@200qps, latency.p99.search@50qps
LOAD_LATENCY = re.compile(r"^latency\.p\d+(\.\d+)?(\.[^@]+)?@[0-9.e+]+qps$")
_BUDGET_FAMILIES = {
    "latency": ("latency", *(f"latency.{s}" for s in units.BUDGET_STATISTICS)),
    "memory": ("memory.peak", "memory.load", "memory.inference"),
    "gpu_memory": ("gpu_memory.allocated",),
    "cold_start": ("cold_start",),
    "model_size": ("model_size",),
}


def _check_budget_metric(ctx: Checker, key: str, metric: str) -> None:
    """Budgets on built-in families must name a metric that exists; custom names pass."""
    family = metric.split("@", 1)[0].split(".", 1)[0]
    if family == "throughput":
        suffix = metric.partition("@")[2]
        if not suffix.isdigit() or len(suffix) > 9 or not 1 <= int(suffix) <= MAX_BATCH:
            raise ctx.error(
                key,
                f"throughput budgets name a batch size (1 to {MAX_BATCH}), e.g. throughput@32",
            )
    elif family == "latency" and LOAD_LATENCY.match(metric):
        return  # a perf.load percentile (docs/load.md): latency.p99@200qps
    elif family in _BUDGET_FAMILIES and metric not in _BUDGET_FAMILIES[family]:
        raise ctx.error(
            key, f"unknown metric; expected one of {', '.join(_BUDGET_FAMILIES[family])}"
        )


def _custom_hint(metric: str) -> str:
    """For a budget whose metric is not built in: say so, and name the built-in one it resembles
    (``latncy.p99`` -> ``latency.p99``), since a typo otherwise reads as a custom metric."""
    family = metric.split("@", 1)[0].split(".", 1)[0]
    if family in _BUDGET_FAMILIES or family == "throughput":
        return ""
    known = [name for names in _BUDGET_FAMILIES.values() for name in names]
    close = closest(metric, [*known, "throughput@1"])
    guess = f"; did you mean {close!r}?" if close else ""
    return f" ({metric!r} is not a built-in metric, so it is read as a custom one{guess})"


def parse_policy(
    ctx: Checker, raw: Any, custom_metrics: Iterable[str] = (), root: Path | None = None
) -> Policy:
    """``policy:`` -> Policy; ``custom_metrics`` are the names of the config's ``eval.custom``
    metrics, which a threshold or trade-off may name."""
    custom = frozenset(custom_metrics)
    raw = ctx.mapping(raw, "policy", POLICY_KEYS)
    alpha = raw.get("alpha", 0.01)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 0.5:
        raise ctx.error("policy.alpha", f"expected a number between 0 and 0.5, got {alpha!r}")
    merged: dict[str, Any] = dict(DEFAULT_THRESHOLDS)
    given = ctx.mapping(raw.get("thresholds") or {}, "policy.thresholds", None)
    for family in given:
        check_metric_family(ctx, f"policy.thresholds.{family}", str(family), custom)
    merged.update(given)
    thresholds: dict[str, Threshold] = {}
    for family, text in merged.items():
        try:
            thresholds[str(family)] = parse_threshold(text, units.budget_unit(str(family)) or None)
        except ValueError as exc:
            raise ctx.error(f"policy.thresholds.{family}", str(exc)) from None
    budgets: list[Budget] = []
    for pattern, limits in ctx.mapping(raw.get("budgets") or {}, "policy.budgets", None).items():
        key = f"policy.budgets.{pattern}"
        for metric, limit in ctx.mapping(limits, key, None).items():
            _check_budget_metric(ctx, f"{key}.{metric}", str(metric))
            budget = Budget(pattern=str(pattern), metric=str(metric), limit_text=str(limit))
            unit = units.budget_unit(budget.metric)
            try:
                value = budget.limit(unit)
            except ValueError as exc:
                raise ctx.error(f"{key}.{metric}", str(exc) + _custom_hint(str(metric))) from None
            if unit and value <= 0:
                raise ctx.error(f"{key}.{metric}", f"expected a limit above 0, got {limit!r}")
            budgets.append(budget)
    mode = next((m for m in REQUESTED_MODES if m == raw.get("timing_mode", "auto")), None)
    if mode is None:
        raise ctx.error(
            "policy.timing_mode",
            f"unknown mode {raw.get('timing_mode')!r}; expected one of "
            f"{', '.join(REQUESTED_MODES)}",
        )
    parallel = next((p for p in PARALLEL_SETTINGS if p == raw.get("parallel", "auto")), None)
    if parallel is None:
        raise ctx.error(
            "policy.parallel",
            f"unknown value {raw.get('parallel')!r}; expected auto, pinned or never",
        )
    base_environment = parse_base_environment(
        ctx, raw.get("base_environment", "auto"), root or Path.cwd()
    )
    min_rounds = ctx.integer(raw.get("min_rounds", 8), "policy.min_rounds", 2, MAX_ROUNDS)
    max_rounds = ctx.integer(raw.get("max_rounds", 24), "policy.max_rounds", 2, MAX_ROUNDS)
    if max_rounds < min_rounds:
        raise ctx.error(
            "policy.max_rounds", f"must be >= policy.min_rounds ({min_rounds}), got {max_rounds}"
        )
    fail_on_inconclusive = raw.get("fail_on_inconclusive", False)
    if not isinstance(fail_on_inconclusive, bool):
        raise ctx.error(
            "policy.fail_on_inconclusive", f"expected true or false, got {fail_on_inconclusive!r}"
        )
    return Policy(
        alpha=float(alpha),
        thresholds=thresholds,
        budgets=tuple(budgets),
        timing_mode=mode,
        parallel=parallel,
        base_environment=base_environment,
        min_rounds=min_rounds,
        max_rounds=max_rounds,
        round_step=ctx.integer(raw.get("round_step", 4), "policy.round_step", 1, MAX_ROUNDS),
        time_budget=ctx.quantity(
            raw.get("time_budget", "600s"),
            "policy.time_budget",
            units.parse_duration,
            MAX_TIME_BUDGET,
            show=lambda seconds: f"{seconds:g}s ({seconds / 3600:g} hours)",
        ),
        fail_on_inconclusive=fail_on_inconclusive,
        memory_floor=ctx.quantity(
            raw.get("memory_floor", "8MiB"),
            "policy.memory_floor",
            units.parse_size,
            MAX_MEMORY_FLOOR,
            show=lambda size: f"{size / 2**30:g}GiB",
        ),
        on_environment_mismatch=_choice(
            ctx, raw.get("on_environment_mismatch", "warn"), "policy.on_environment_mismatch"
        ),
        require_significance=parse_require_significance(
            ctx, raw.get("require_significance"), "policy.require_significance"
        ),
        tradeoffs=parse_tradeoffs(ctx, raw.get("tradeoffs"), "policy.tradeoffs", custom),
        drift=parse_drift(ctx, raw.get("drift")),
    )


_DRIFT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s+over\s+(\d+)\s+promotions?\s*$")
MAX_DRIFT_WINDOW = 1000  # promotions: the longest history a baseline keeps (baseline_history)


def parse_drift(ctx: Checker, raw: Any) -> dict[str, tuple[float, int]]:
    """``policy.drift``: ``{latency: 10% over 20 promotions}`` -> {"latency": (0.10, 20)}."""
    if raw is None:
        return {}
    spec = ctx.mapping(raw, "policy.drift", None)
    drift: dict[str, tuple[float, int]] = {}
    for name, text in spec.items():
        key = f"policy.drift.{name}"
        found = _DRIFT.match(text) if isinstance(text, str) else None
        if found is None:
            raise ctx.error(key, f"expected like '10% over 20 promotions', got {text!r}")
        fraction, window = float(found.group(1)) / 100, int(found.group(2))
        if not 0 < fraction <= MAX_RELATIVE:
            raise ctx.error(key, f"the drift must be above 0% and at most 1000%, got {text!r}")
        if not 2 <= window <= MAX_DRIFT_WINDOW:
            raise ctx.error(
                key, f"the window must be 2 to {MAX_DRIFT_WINDOW} promotions, got {text!r}"
            )
        drift[str(name)] = (fraction, window)
    return drift


def _choice(ctx: Checker, value: Any, key: str) -> str:
    if value not in ENVIRONMENT_MISMATCH:
        raise ctx.error(
            key, f"unknown value {value!r}; expected one of {', '.join(ENVIRONMENT_MISMATCH)}"
        )
    return str(value)


BASE_ENVIRONMENTS = ("auto", "current")


def parse_base_environment(
    ctx: Checker, raw: Any, root: Path, key: str = "policy.base_environment"
) -> str:
    """``auto`` (the base revision's own environment, built when its dependencies differ),
    ``current`` (this interpreter for both sides) or the path of an interpreter or virtual
    environment for the base side (relative to the config's folder), returned absolute."""
    if raw in BASE_ENVIRONMENTS:
        return str(raw)
    if not isinstance(raw, str) or not raw.strip():
        raise ctx.error(
            key, f"expected auto, current, or the path of a Python interpreter or venv, got {raw!r}"
        )
    where = path_value(ctx, raw, key, root)
    if not where.exists():
        raise ctx.error(
            key,
            f"{raw!r} does not exist; expected auto, current, or the path of a Python "
            "interpreter or virtual environment for the base revision's workers",
        )
    return str(where)


def base_env_option(value: str | None) -> str | None:
    """A ``--base-env`` value as the run needs it: ``auto``/``current`` as given, a path made
    absolute from the working directory (it is checked when the base side starts)."""
    if value is None or value in BASE_ENVIRONMENTS:
        return value
    return str(Path(value).expanduser().absolute())
