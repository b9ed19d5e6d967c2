"""perf-gate.yaml (or ``[tool.perf-gate]`` in pyproject.toml) -> a validated :class:`GateConfig`.

This module reads the file and assembles the config; the sections are parsed in ``models.py``
(``models:``), ``policy.py`` (``policy:``), ``gate/config/quality.py`` (``eval:``, ``parity:``,
trade-offs) and ``gate/core/diagnosis.py`` (``policy.diagnose``), all through one
:class:`~gate.config.checks.Checker`. Every error is a :class:`ConfigError` whose message names the
file, the key path and what was expected, e.g.
``perf-gate.yaml: models.digits-mlp.variants[1]: unknown value 'torch-int4'; expected ...``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gate import units
from gate.config.checks import MAX_NAME, NAME, Checker, kind, path_value
from gate.config.models import (
    CPU_ONLY_VARIANTS,
    CUDA_ONLY_VARIANTS,
    DTYPES,
    MAX_THREADS,
    MODEL_METRICS,
    TORCH_ONLY_VARIANTS,
    VARIANTS,
    InputSpec,
    ModelSpec,
    benchmark_name,
    parse_model,
)
from gate.config.policy import DEFAULT_THRESHOLDS, parse_policy, parse_threshold
from gate.core.diagnosis import DiagnoseSettings, parse_diagnose
from gate.core.types import Policy
from gate.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "CONFIG_NAMES",
    "CPU_ONLY_VARIANTS",
    "CUDA_ONLY_VARIANTS",
    "DEFAULT_THRESHOLDS",
    "DTYPES",
    "MODEL_METRICS",
    "TORCH_ONLY_VARIANTS",
    "VARIANTS",
    "GateConfig",
    "InputSpec",
    "MeasureSettings",
    "ModelSpec",
    "benchmark_name",
    "find_config",
    "load_config",
    "parse_threshold",
]

CONFIG_NAMES = ("perf-gate.yaml", "perf-gate.yml")


@dataclass(frozen=True, kw_only=True)
class MeasureSettings:
    rounds: int = 5
    warmup: int = 20
    min_calls: int = 200
    min_time: float = 0.5
    threads: int = 1
    probes: int = 3
    seed: int | None = None
    memory_limit: int | None = None  # bytes per worker process; None: no limit


@dataclass(frozen=True, kw_only=True)
class ExportSettings:
    """``export:``: the exports applied after every ``run`` and ``ci`` (docs/export.md)."""

    openmetrics_path: Path | None = None
    openmetrics_push: str | None = None
    openmetrics_job: str = "perf-gate"
    mlflow: bool = False
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str = "perf-gate"

    @property
    def any(self) -> bool:
        return bool(self.openmetrics_path or self.openmetrics_push or self.mlflow)


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
    # export: where `perf-gate run` and `perf-gate ci` send each run's results (docs/export.md)
    export: ExportSettings = field(default_factory=lambda: ExportSettings())

    @property
    def label(self) -> str:
        return self.path.name if self.path else "defaults"

    def no_models(self) -> str:
        """Why there is nothing to measure: an empty ``models:`` or no config file at all."""
        if self.path is None:
            return (
                f"{self.root}: no perf-gate.yaml and no pyproject.toml with [tool.perf-gate] here; "
                "create one with a 'models:' section (see docs/config.md)"
            )
        return f"{self.path}: no models to measure; add a 'models:' section (see docs/config.md)"


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
    if path.is_dir():
        found = find_config(path)
        if found is None:
            raise ConfigError(
                f"{path}: no perf-gate.yaml and no pyproject.toml with [tool.perf-gate] in this "
                "directory; create one (see docs/config.md) or pass the file itself",
                slug="config-not-found",
            )
        path = found
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
            raw = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
        except _DuplicateKey as exc:
            raise ConfigError(
                f"{path.name}: line {exc.line}: key {exc.key!r} appears twice in one mapping; "
                "YAML would silently keep the last one, so merge them into one",
                slug="config-syntax",
            ) from None
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
        raise ConfigError(f"{path.name}: expected a mapping at the top level, got {kind(raw)}")
    return raw


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: object, line: int) -> None:
        super().__init__(f"duplicate key {key!r} at line {line}")
        self.key = key
        self.line = line


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise _DuplicateKey(key, key_node.start_mark.line + 1)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


TOP_KEYS = (
    "baseline",
    "baseline_key",
    "baseline_history",
    "report_dir",
    "models",
    "policy",
    "measure",
    "export",
)
MEASURE_KEYS = (
    "rounds",
    "warmup",
    "min_calls",
    "min_time",
    "threads",
    "probes",
    "seed",
    "memory_limit",
)
# measure.memory_limit "auto": this share of the machine's physical memory per worker process;
# below the floor a Python interpreter with torch cannot start.
AUTO_MEMORY_SHARE = 0.75
MIN_MEMORY_LIMIT = 256 * 2**20
# The ranges of measure's numbers and the history's length (docs/config.md): a round is a fresh
# process (seconds each), warm-up calls are not bounded by time, timed calls stop at 10 s anyway.
MAX_MEASURE_ROUNDS = 1000
MAX_WARMUP = 100_000
MAX_MIN_CALLS = 1_000_000
MAX_MIN_TIME = 60.0
MAX_PROBES = 100
MAX_SEED = 2**63 - 1
MAX_HISTORY = 1000


def _build(raw: dict[str, Any], path: Path | None, root: Path) -> GateConfig:
    # In pyproject.toml the keys live under [tool.perf-gate]; messages give the full path.
    prefix = "tool.perf-gate." if path is not None and path.suffix == ".toml" else ""
    ctx = Checker(path.name if path else "config", prefix=prefix)
    ctx.mapping(raw, "", TOP_KEYS)
    baseline = path_value(ctx, raw.get("baseline", "baselines/main.json"), "baseline", root)
    baseline_key = _baseline_key(ctx, raw.get("baseline_key", "auto"))
    baseline_history = ctx.integer(
        raw.get("baseline_history", 30), "baseline_history", 1, MAX_HISTORY
    )
    report_dir = path_value(ctx, raw.get("report_dir", ".perf-gate"), "report_dir", root)
    models_raw = ctx.mapping(raw.get("models") or {}, "models", None)
    models = tuple(parse_model(ctx, str(name), spec, root) for name, spec in models_raw.items())
    custom = {c.name for model in models if model.eval for c in model.eval.custom}
    policy = parse_policy(ctx, raw.get("policy") or {}, custom, root)
    diagnose = parse_diagnose(ctx, (raw.get("policy") or {}).get("diagnose"), "policy.diagnose")
    if not math.isfinite(diagnose.max_trace):
        raise ctx.error(
            "policy.diagnose.max_trace", "expected a finite size like '50MB', got an infinity"
        )
    measure = _measure(ctx, raw.get("measure") or {})
    export = _export(ctx, raw.get("export") or {}, root)
    # where results are sent is not what was measured: it stays out of the config's digest
    measured = {k: v for k, v in raw.items() if k != "export"}
    digest = hashlib.sha256(json.dumps(measured, sort_keys=True, default=str).encode()).hexdigest()
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
        export=export,
    )


def _text(ctx: Checker, value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ctx.error(key, f"expected a non-empty string, got {value!r}")
    return value


def _export(ctx: Checker, raw: Any, root: Path) -> ExportSettings:
    """``export: {openmetrics: {path, push, job}, mlflow: true | {tracking_uri, experiment}}``."""
    spec = ctx.mapping(raw, "export", ("openmetrics", "mlflow"))
    metrics = ctx.mapping(
        spec.get("openmetrics") or {}, "export.openmetrics", ("path", "push", "job")
    )
    mlflow_raw = spec.get("mlflow", False)
    if isinstance(mlflow_raw, bool):
        mlflow_spec: dict[str, Any] = {}
        mlflow = mlflow_raw
    else:
        mlflow_spec = ctx.mapping(mlflow_raw, "export.mlflow", ("tracking_uri", "experiment"))
        mlflow = True
    push = metrics.get("push")
    if push is not None and not (
        isinstance(push, str) and push.startswith(("http://", "https://"))
    ):
        raise ctx.error("export.openmetrics.push", f"expected an http(s) URL, got {push!r}")
    return ExportSettings(
        openmetrics_path=(
            path_value(ctx, metrics["path"], "export.openmetrics.path", root)
            if "path" in metrics
            else None
        ),
        openmetrics_push=push,
        openmetrics_job=_text(ctx, metrics.get("job", "perf-gate"), "export.openmetrics.job"),
        mlflow=mlflow,
        mlflow_tracking_uri=(
            _text(ctx, mlflow_spec["tracking_uri"], "export.mlflow.tracking_uri")
            if "tracking_uri" in mlflow_spec
            else None
        ),
        mlflow_experiment=_text(
            ctx, mlflow_spec.get("experiment", "perf-gate"), "export.mlflow.experiment"
        ),
    )


def _baseline_key(ctx: Checker, value: Any) -> str:
    """``auto``, ``none`` or a name that can stand in a file name (``main@<key>.json``)."""
    if not isinstance(value, str) or not NAME.match(value) or len(value) > MAX_NAME:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise ctx.error(
            "baseline_key",
            f"expected 'auto', 'none' or a name of letters, digits, '_', '-' and '.' (at most "
            f"{MAX_NAME} characters), got {shown}",
        )
    return value


def _measure(ctx: Checker, raw: Any) -> MeasureSettings:
    raw = ctx.mapping(raw, "measure", MEASURE_KEYS)
    min_time = raw.get("min_time", "0.5s")
    seed = raw.get("seed")
    if seed is not None:
        seed = ctx.integer(seed, "measure.seed", 0, MAX_SEED)
    return MeasureSettings(
        rounds=ctx.integer(raw.get("rounds", 5), "measure.rounds", 2, MAX_MEASURE_ROUNDS),
        warmup=ctx.integer(raw.get("warmup", 20), "measure.warmup", 0, MAX_WARMUP),
        min_calls=ctx.integer(raw.get("min_calls", 200), "measure.min_calls", 1, MAX_MIN_CALLS),
        min_time=ctx.quantity(
            min_time,
            "measure.min_time",
            units.parse_duration,
            MAX_MIN_TIME,
            show=lambda seconds: f"{seconds:g}s",
        ),
        threads=ctx.integer(raw.get("threads", 1), "measure.threads", 1, MAX_THREADS),
        # One probe is allowed (quick test projects); docs/config.md says that memory and cold
        # start are then reported but never tested (one value per side).
        probes=ctx.integer(raw.get("probes", 3), "measure.probes", 1, MAX_PROBES),
        seed=seed,
        memory_limit=_memory_limit(ctx, raw.get("memory_limit", "auto")),
    )


def _memory_limit(ctx: Checker, value: Any) -> int | None:
    """``measure.memory_limit``: ``auto`` (a share of the machine's memory), ``none``, or a
    size such as ``8GB``; bytes per worker process, None for no limit."""
    if value in ("auto", "none"):
        total = _machine_memory() if value == "auto" else None
        return int(total * AUTO_MEMORY_SHARE) if total else None
    key = "measure.memory_limit"
    size = ctx.quantity(value, key, units.parse_size, float(2**60))
    if size < MIN_MEMORY_LIMIT:
        raise ctx.error(
            key, f"{value!r} is too small for a worker (at least 256MiB); or write 'none'"
        )
    return int(size)


def _machine_memory() -> int | None:
    """Physical memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
