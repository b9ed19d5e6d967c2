"""perf-gate.yaml (or ``[tool.perf-gate]`` in pyproject.toml) -> a validated :class:`GateConfig`.

All validation lives here. Every error is a :class:`ConfigError` whose message names the file, the
key path and what was expected, e.g.
``perf-gate.yaml: models.digits-mlp.variants[1]: unknown value 'torch-int4'; expected ...``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gate import units
from gate.diagnosis import DiagnoseSettings, parse_diagnose
from gate.errors import ConfigError
from gate.model import Budget, Policy, Threshold
from gate.quality.spec import (
    EvalSpec,
    ParitySpec,
    parse_eval,
    parse_parity,
    parse_require_significance,
    parse_tradeoffs,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

CONFIG_NAMES = ("perf-gate.yaml", "perf-gate.yml")
VARIANTS = (
    "torch",
    "torch-bf16",
    "torch-int8",
    "torch-compile",
    "onnxruntime",
    "onnxruntime-int8",
    "torch-fp16",
    "torch-cuda-graphs",
    "onnxruntime-cuda",
    "onnxruntime-tensorrt",
)
TORCH_ONLY_VARIANTS = frozenset(
    {"torch", "torch-bf16", "torch-int8", "torch-compile", "torch-fp16", "torch-cuda-graphs"}
)
# Variants that exist only on a GPU, and those that exist only on the CPU.
CUDA_ONLY_VARIANTS = frozenset(
    {"torch-fp16", "torch-cuda-graphs", "onnxruntime-cuda", "onnxruntime-tensorrt"}
)
CPU_ONLY_VARIANTS = frozenset({"torch-int8", "onnxruntime", "onnxruntime-int8"})
MODEL_METRICS = ("latency", "throughput", "memory", "cold_start", "gpu_memory")
_DEVICE = re.compile(r"^(cpu|cuda(:[0-9]+)?)$")
DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "uint8", "bool")
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
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True, kw_only=True)
class InputSpec:
    """Where a model's inputs come from: a ``module:function(batch_size)`` or a random tensor."""

    callable: str | None = None
    shape: tuple[int, ...] = ()
    dtype: str = "float32"


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    name: str
    torch: str | None
    onnx: Path | None
    input: InputSpec
    variants: tuple[str, ...]
    metrics: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    threads: int | None = None
    device: str = "cpu"
    eval: EvalSpec | None = None
    parity: ParitySpec = field(default_factory=ParitySpec)

    def benchmark_names(self) -> list[str]:
        return [benchmark_name(self.name, variant) for variant in self.variants]


@dataclass(frozen=True, kw_only=True)
class MeasureSettings:
    rounds: int = 5
    warmup: int = 20
    min_calls: int = 200
    min_time: float = 0.5
    threads: int = 1
    probes: int = 3
    seed: int | None = None


@dataclass(frozen=True, kw_only=True)
class GateConfig:
    path: Path | None
    root: Path
    baseline: Path
    report_dir: Path
    models: tuple[ModelSpec, ...] = ()
    policy: Policy = field(default_factory=Policy)
    measure: MeasureSettings = field(default_factory=MeasureSettings)
    digest: str = ""
    # How the environment key enters the baseline's name (docs/baselines.md): "auto" (from the
    # fingerprint), "none" (one un-keyed baseline) or a fixed name; promotions kept in history.
    baseline_key: str = "auto"
    baseline_history: int = 30
    # policy.diagnose: when to profile base and head of timed benchmarks (docs/diagnosis.md).
    diagnose: DiagnoseSettings = field(default_factory=DiagnoseSettings)

    @property
    def label(self) -> str:
        return self.path.name if self.path else "defaults"


def benchmark_name(model: str, variant: str) -> str:
    return f"{model}[{variant}]"


def find_config(start: Path) -> Path | None:
    """The config in ``start``: perf-gate.yaml, or a pyproject.toml with [tool.perf-gate]."""
    for name in CONFIG_NAMES:
        candidate = start / name
        if candidate.is_file():
            return candidate
    pyproject = start / "pyproject.toml"
    if pyproject.is_file():
        try:
            text = pyproject.read_text(encoding="utf-8")
        except OSError:
            return None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            # Report the syntax error if the file meant to configure perf-gate.
            return pyproject if "tool.perf-gate" in text else None
        if "perf-gate" in data.get("tool", {}):
            return pyproject
    return None


def load_config(path: Path | None = None, *, root: Path | None = None) -> GateConfig:
    """Read and validate the config. ``path=None`` looks in ``root`` (default: cwd).

    Returns defaults (no models) when no config exists. Raises ConfigError on any invalid input.
    """
    root = (root or Path.cwd()).resolve()
    if path is None:
        path = find_config(root)
        if path is None:
            return _build({}, None, root)
    path = Path(path)
    if not path.is_absolute():
        path = (root / path).resolve()
    if not path.is_file():
        raise ConfigError(
            f"{path}: config file not found; create it (see docs/config.md) or pass another path",
            slug="config-not-found",
        )
    raw = _read(path)
    return _build(raw, path, path.parent)


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path.name}: cannot read the file: {exc}") from exc
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path.name}: invalid TOML: {exc}", slug="config-syntax") from exc
        section = data.get("tool", {}).get("perf-gate")
        if section is None:
            raise ConfigError(
                f"{path.name}: no [tool.perf-gate] table; add one or use perf-gate.yaml",
                slug="config-not-found",
            )
        raw: Any = section
    else:
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            where = ""
            mark = getattr(exc, "problem_mark", None)
            if mark is not None:
                where = f" at line {mark.line + 1}, column {mark.column + 1}"
            problem = getattr(exc, "problem", None) or "syntax error"
            raise ConfigError(
                f"{path.name}: invalid YAML{where}: {problem}", slug="config-syntax"
            ) from exc
        if raw is None:
            raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path.name}: expected a mapping at the top level, got {_kind(raw)}")
    return raw


class _Ctx:
    """Carries the file label so that every message names the file and the key path."""

    def __init__(self, label: str) -> None:
        self.label = label

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.label}: {key}: {message}")

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping, got {_kind(value)}")
        if allowed is not None:
            for name in value:
                if name not in allowed:
                    raise self.error(
                        f"{key}.{name}" if key else str(name),
                        f"unknown key; expected one of {', '.join(allowed)}",
                    )
        return value

    def integer(self, value: Any, key: str, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer >= {minimum}, got {value!r}")
        if value < minimum:
            raise self.error(key, f"expected an integer >= {minimum}, got {value}")
        return value

    def string_list(self, value: Any, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.error(key, f"expected a non-empty list, got {_kind(value)}")
        for index, item in enumerate(value):
            if item not in allowed:
                raise self.error(
                    f"{key}[{index}]",
                    f"unknown value {item!r}; expected one of {', '.join(allowed)}",
                )
        if len(set(value)) != len(value):
            raise self.error(key, "lists a value twice")
        return tuple(value)

    def quantity(self, value: Any, key: str, parse: Any) -> float:
        try:
            result = float(parse(value))
        except ValueError as exc:
            raise self.error(key, str(exc)) from None
        if result < 0:
            raise self.error(key, f"must not be negative, got {value!r}")
        return result


TOP_KEYS = (
    "baseline",
    "baseline_key",
    "baseline_history",
    "report_dir",
    "models",
    "policy",
    "measure",
)
MODEL_KEYS = (
    "torch",
    "onnx",
    "input",
    "variants",
    "metrics",
    "batch_sizes",
    "threads",
    "device",
    "eval",
    "parity",
)
POLICY_KEYS = (
    "alpha",
    "thresholds",
    "budgets",
    "timing_mode",
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
)
TIMING_MODES = ("auto", "stored", "ab", "duet")
ENVIRONMENT_MISMATCH = ("warn", "fail", "skip-timing")
MEASURE_KEYS = ("rounds", "warmup", "min_calls", "min_time", "threads", "probes", "seed")


def _build(raw: dict[str, Any], path: Path | None, root: Path) -> GateConfig:
    ctx = _Ctx(path.name if path else "config")
    ctx.mapping(raw, "", TOP_KEYS)
    baseline = _path_value(ctx, raw.get("baseline", "baselines/main.json"), "baseline", root)
    baseline_key = _baseline_key(ctx, raw.get("baseline_key", "auto"))
    baseline_history = ctx.integer(raw.get("baseline_history", 30), "baseline_history", 1)
    report_dir = _path_value(ctx, raw.get("report_dir", ".perf-gate"), "report_dir", root)
    models_raw = ctx.mapping(raw.get("models") or {}, "models", None)
    models = tuple(_model(ctx, str(name), spec, root) for name, spec in models_raw.items())
    policy = _policy(ctx, raw.get("policy") or {})
    diagnose = parse_diagnose(ctx, (raw.get("policy") or {}).get("diagnose"), "policy.diagnose")
    measure = _measure(ctx, raw.get("measure") or {})
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
    return GateConfig(
        path=path,
        root=root,
        baseline=baseline,
        report_dir=report_dir,
        models=models,
        policy=policy,
        measure=measure,
        digest=digest[:16],
        baseline_key=baseline_key,
        baseline_history=baseline_history,
        diagnose=diagnose,
    )


def _baseline_key(ctx: _Ctx, value: Any) -> str:
    """``auto``, ``none`` or a name that can stand in a file name (``main@<key>.json``)."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ctx.error(
            "baseline_key",
            f"expected 'auto', 'none' or a name of letters, digits, '_', '-' and '.', "
            f"got {value!r}",
        )
    return value


def _choice(ctx: _Ctx, value: Any, key: str) -> str:
    if value not in ENVIRONMENT_MISMATCH:
        raise ctx.error(
            key, f"unknown value {value!r}; expected one of {', '.join(ENVIRONMENT_MISMATCH)}"
        )
    return str(value)


def _path_value(ctx: _Ctx, value: Any, key: str, root: Path) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ctx.error(key, f"expected a path, got {value!r}")
    candidate = Path(value)
    return candidate if candidate.is_absolute() else root / candidate


def _model(ctx: _Ctx, name: str, spec: Any, root: Path) -> ModelSpec:
    key = f"models.{name}"
    if not _NAME.match(name):
        raise ctx.error(key, "model names may use letters, digits, '_', '-' and '.' only")
    spec = ctx.mapping(spec, key, MODEL_KEYS)
    torch_ref = spec.get("torch")
    onnx_ref = spec.get("onnx")
    if torch_ref is None and onnx_ref is None:
        raise ctx.error(key, "needs 'torch: module:function' or 'onnx: path/to/model.onnx'")
    if torch_ref is not None and (not isinstance(torch_ref, str) or not _CALLABLE.match(torch_ref)):
        raise ctx.error(f"{key}.torch", f"expected 'module:function', got {torch_ref!r}")
    onnx_path: Path | None = None
    if onnx_ref is not None:
        onnx_path = _path_value(ctx, onnx_ref, f"{key}.onnx", root)
        if not onnx_path.is_file():
            raise ctx.error(f"{key}.onnx", f"file {onnx_ref!r} not found (relative to {root})")
    on_gpu = str(spec.get("device", "cpu")).startswith("cuda")
    onnx_default = "onnxruntime-cuda" if on_gpu else "onnxruntime"
    default_variants = ["torch", onnx_default] if torch_ref else [onnx_default]
    variants = ctx.string_list(spec.get("variants", default_variants), f"{key}.variants", VARIANTS)
    if torch_ref is None:
        for index, variant in enumerate(variants):
            if variant in TORCH_ONLY_VARIANTS:
                raise ctx.error(
                    f"{key}.variants[{index}]",
                    f"variant {variant!r} needs a torch model; add 'torch: module:function'",
                )
    metrics = ctx.string_list(
        spec.get("metrics", ["latency", "throughput"]), f"{key}.metrics", MODEL_METRICS
    )
    batch_raw = spec.get("batch_sizes", [1])
    if not isinstance(batch_raw, list) or not batch_raw:
        raise ctx.error(f"{key}.batch_sizes", f"expected a list of integers, got {batch_raw!r}")
    batch_sizes = tuple(
        ctx.integer(b, f"{key}.batch_sizes[{i}]", 1) for i, b in enumerate(batch_raw)
    )
    threads = spec.get("threads")
    if threads is not None:
        threads = ctx.integer(threads, f"{key}.threads", 1)
    device = _device(ctx, spec.get("device", "cpu"), key, variants, metrics)
    return ModelSpec(
        name=name,
        torch=torch_ref,
        onnx=onnx_path,
        input=_input(ctx, spec.get("input"), f"{key}.input"),
        variants=variants,
        metrics=metrics,
        batch_sizes=batch_sizes,
        threads=threads,
        device=device,
        eval=parse_eval(ctx, spec["eval"], f"{key}.eval", root) if "eval" in spec else None,
        parity=parse_parity(ctx, spec.get("parity"), f"{key}.parity", variants),
    )


def _device(
    ctx: _Ctx, value: Any, key: str, variants: tuple[str, ...], metrics: tuple[str, ...]
) -> str:
    """``cpu`` or ``cuda[:N]``; variants and metrics must exist on that device."""
    if not isinstance(value, str) or not _DEVICE.match(value):
        raise ctx.error(f"{key}.device", f"expected cpu, cuda or cuda:N, got {value!r}")
    cuda = value.startswith("cuda")
    for index, variant in enumerate(variants):
        if not cuda and variant in CUDA_ONLY_VARIANTS:
            raise ctx.error(
                f"{key}.variants[{index}]",
                f"variant {variant!r} runs on a GPU only; add 'device: cuda' or remove it",
            )
        if cuda and variant in CPU_ONLY_VARIANTS:
            hint = {"onnxruntime": "onnxruntime-cuda"}.get(variant, "torch-fp16 or torch-bf16")
            raise ctx.error(
                f"{key}.variants[{index}]",
                f"variant {variant!r} runs on the CPU only; on a GPU use {hint}",
            )
    if "gpu_memory" in metrics and not cuda:
        raise ctx.error(f"{key}.metrics", "gpu_memory needs 'device: cuda'")
    return value


def _input(ctx: _Ctx, value: Any, key: str) -> InputSpec:
    if value is None:
        raise ctx.error(
            key, "is required: 'module:function' (called with the batch size) or {shape, dtype}"
        )
    if isinstance(value, str):
        if not _CALLABLE.match(value):
            raise ctx.error(key, f"expected 'module:function', got {value!r}")
        return InputSpec(callable=value)
    spec = ctx.mapping(value, key, ("shape", "dtype"))
    shape = spec.get("shape")
    if not isinstance(shape, list) or not shape:
        raise ctx.error(f"{key}.shape", f"expected a list of positive integers, got {shape!r}")
    dims = tuple(ctx.integer(d, f"{key}.shape[{i}]", 1) for i, d in enumerate(shape))
    dtype = spec.get("dtype", "float32")
    if dtype not in DTYPES:
        raise ctx.error(
            f"{key}.dtype", f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}"
        )
    return InputSpec(shape=dims, dtype=dtype)


def parse_threshold(text: Any, unit: str | None = None) -> Threshold:
    """``"5%"`` -> relative 0.05; otherwise absolute, in ``unit`` when the metric's unit is known
    (``"2ms"`` for latency, ``"10MB"`` for memory, ``"1000/s"`` for throughput), else a duration,
    a size, a rate or a bare number. Raises ValueError naming what was expected."""
    if isinstance(text, str) and text.strip().endswith("%"):
        return Threshold(value=units.parse_percent(text), relative=True)
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


_BUDGET_FAMILIES = {
    "latency": ("latency", *(f"latency.{s}" for s in units.BUDGET_STATISTICS)),
    "memory": ("memory.peak", "memory.load"),
    "gpu_memory": ("gpu_memory.allocated",),
    "cold_start": ("cold_start",),
    "model_size": ("model_size",),
}


def _check_budget_metric(ctx: _Ctx, key: str, metric: str) -> None:
    """Budgets on built-in families must name a metric that exists; custom names pass."""
    family = metric.split("@", 1)[0].split(".", 1)[0]
    if family == "throughput":
        suffix = metric.partition("@")[2]
        if not suffix.isdigit() or int(suffix) < 1:
            raise ctx.error(key, "throughput budgets name a batch size, e.g. throughput@32")
    elif family in _BUDGET_FAMILIES and metric not in _BUDGET_FAMILIES[family]:
        raise ctx.error(
            key, f"unknown metric; expected one of {', '.join(_BUDGET_FAMILIES[family])}"
        )


def _policy(ctx: _Ctx, raw: Any) -> Policy:
    raw = ctx.mapping(raw, "policy", POLICY_KEYS)
    alpha = raw.get("alpha", 0.01)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 0.5:
        raise ctx.error("policy.alpha", f"expected a number between 0 and 0.5, got {alpha!r}")
    merged: dict[str, Any] = dict(DEFAULT_THRESHOLDS)
    merged.update(ctx.mapping(raw.get("thresholds") or {}, "policy.thresholds", None))
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
                budget.limit(unit)
            except ValueError as exc:
                raise ctx.error(f"{key}.{metric}", str(exc)) from None
            budgets.append(budget)
    mode = raw.get("timing_mode", "auto")
    if mode not in TIMING_MODES:
        raise ctx.error(
            "policy.timing_mode",
            f"unknown mode {mode!r}; expected one of {', '.join(TIMING_MODES)}",
        )
    min_rounds = ctx.integer(raw.get("min_rounds", 8), "policy.min_rounds", 2)
    max_rounds = ctx.integer(raw.get("max_rounds", 24), "policy.max_rounds", 2)
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
        min_rounds=min_rounds,
        max_rounds=max_rounds,
        round_step=ctx.integer(raw.get("round_step", 4), "policy.round_step", 1),
        time_budget=ctx.quantity(
            raw.get("time_budget", "600s"), "policy.time_budget", units.parse_duration
        ),
        fail_on_inconclusive=fail_on_inconclusive,
        memory_floor=ctx.quantity(
            raw.get("memory_floor", "8MiB"), "policy.memory_floor", units.parse_size
        ),
        on_environment_mismatch=_choice(
            ctx, raw.get("on_environment_mismatch", "warn"), "policy.on_environment_mismatch"
        ),
        require_significance=parse_require_significance(
            ctx, raw.get("require_significance"), "policy.require_significance"
        ),
        tradeoffs=parse_tradeoffs(ctx, raw.get("tradeoffs"), "policy.tradeoffs"),
    )


def _measure(ctx: _Ctx, raw: Any) -> MeasureSettings:
    raw = ctx.mapping(raw, "measure", MEASURE_KEYS)
    min_time = raw.get("min_time", "0.5s")
    seed = raw.get("seed")
    if seed is not None:
        seed = ctx.integer(seed, "measure.seed", 0)
    return MeasureSettings(
        rounds=ctx.integer(raw.get("rounds", 5), "measure.rounds", 2),
        warmup=ctx.integer(raw.get("warmup", 20), "measure.warmup", 0),
        min_calls=ctx.integer(raw.get("min_calls", 200), "measure.min_calls", 1),
        min_time=ctx.quantity(min_time, "measure.min_time", units.parse_duration),
        threads=ctx.integer(raw.get("threads", 1), "measure.threads", 1),
        probes=ctx.integer(raw.get("probes", 3), "measure.probes", 1),
        seed=seed,
    )


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)
