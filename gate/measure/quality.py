"""The parent side of evaluation: one ``eval`` worker per model -> quality samples and parity.

A model is evaluated when it has an ``eval:`` set (quality metrics for every variant) or when
it has two or more variants and parity is on (outputs compared with the reference variant's,
on the eval set, or on the model's own example inputs when there is none).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from gate.config import GateConfig, ModelSpec, benchmark_name
from gate.config.quality import PAIRED_METRICS
from gate.core.types import BenchmarkError, Metric, Replication, Sample
from gate.errors import ConfigError, MeasurementError
from gate.measure import BenchmarkPlan
from gate.measure.runner import Measured, Progress, Runner
from gate.units import UNIT_FRACTION, budget_unit

EVAL_TIMEOUT_S = 3600.0


def reference_variant(model: ModelSpec) -> str:
    """The parity reference: configured, else ``torch`` (fp32), else the first variant."""
    if model.parity.reference:
        return model.parity.reference
    return "torch" if "torch" in model.variants else model.variants[0]


def eval_document(model: ModelSpec, plans: list[BenchmarkPlan]) -> dict[str, Any] | None:
    """What the eval worker needs for ``model``, or None when there is nothing to evaluate."""
    parity = model.parity.enabled and len(plans) >= 2
    if model.eval is None and not parity:
        return None
    task = model.eval.task if model.eval else "classification"
    reference = benchmark_name(model.name, reference_variant(model))
    return {
        "eval": model.eval.to_dict() if model.eval else None,
        "reference": reference if parity and any(p.name == reference for p in plans) else None,
        "bounds": {p.name: asdict(model.parity.bounds(p.variant, task)) for p in plans},
    }


def _metric(name: str, model: ModelSpec) -> Metric:
    assert model.eval is not None
    unit = UNIT_FRACTION if budget_unit(name) == UNIT_FRACTION else ""
    return Metric(name, unit, model.eval.direction(name))


def _samples(model: ModelSpec, name: str, entry: dict[str, Any]) -> list[Sample]:
    outcomes = entry.get("outcomes") or {}
    return [
        Sample(
            benchmark=name,
            metric=_metric(metric, model),
            values=(float(value),),
            replication=Replication.EVALUATION,
            examples=tuple(outcomes.get(metric, ())) if metric in PAIRED_METRICS else (),
        )
        for metric, value in (entry.get("metrics") or {}).items()
    ]


def _info(model: ModelSpec, entry: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = {}
    if model.eval is not None and "hash" in entry:
        source = model.eval.data.name if model.eval.data else model.eval.callable
        info["eval"] = {"hash": entry["hash"], "examples": entry["examples"], "source": source}
    if "parity" in entry:
        info["parity"] = entry["parity"]
    return info


def evaluate(
    config: GateConfig,
    runner: Runner,
    plans: list[BenchmarkPlan],
    progress: Progress,
    root: Path | None = None,
) -> Measured:
    """Evaluate every model among ``plans`` that has an eval set or parity to check; ``root``:
    the project the worker imports (the base revision's worktree; default this one).

    Raises ConfigError when the eval set itself is misconfigured (a missing column or array)."""
    measured = Measured()
    for model in config.models:
        model_plans = [p for p in plans if p.model == model.name and p.data is None]
        document = eval_document(model, model_plans)
        if not model_plans or document is None:
            continue
        what = "evaluating" if model.eval else "checking output parity of"
        side = " of the base revision" if root is not None else ""
        progress(f"{what} {model.name}{side} ({len(model_plans)} variant(s))")
        try:
            result = runner.worker(
                model_plans,
                ["eval"],
                EVAL_TIMEOUT_S,
                root=root,
                extra={"eval": document},
                live=True,
            )
        except MeasurementError as exc:
            result = {"results": {}, "errors": {p.name: exc.message for p in model_plans}}
        if result.get("config_error"):
            raise ConfigError(f"{config.label}: models.{model.name}.eval: {result['fatal']}")
        for name, entry in result.get("results", {}).items():
            measured.samples += _samples(model, name, entry)
            measured.info.setdefault(name, {}).update(_info(model, entry))
        for name, message in result.get("errors", {}).items():
            measured.errors.append(BenchmarkError(benchmark=name, message=f"evaluation: {message}"))
    return measured
