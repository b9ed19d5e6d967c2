"""``perf-gate export mlflow``: one MLflow run per gate run (docs/export.md).

Params say what was measured (the models, variants, the environment key, the commit, the
branch), metrics carry each row's value with the bounds of the interval the decision used,
tags carry the verdicts, and comparison.json and the Markdown report are the run's artifacts.
MLflow's names allow letters, digits and ``_ - . / space``: ``digits-mlp[onnxruntime]`` and
``latency.p99@200qps`` are written ``digits-mlp_onnxruntime_`` and ``latency.p99_200qps``,
and the original names are kept in the tags. ``mlflow`` is imported only here.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import ConfigError, PublishError

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_\-. /]")
MAX_PARAM = 500  # MLflow's limit on a param's value (6000 on newer servers; the safe one)


def mlflow_name(text: str) -> str:
    """``text`` with the characters MLflow refuses in a metric, param or tag key replaced."""
    return _NOT_ALLOWED.sub("_", text)


@dataclass(frozen=True)
class Exported:
    run_id: str
    experiment: str
    tracking_uri: str
    metrics: int


def _artifacts(tracking_uri: str) -> str | None:
    """A local SQLite store keeps its artifacts beside the database (``mlartifacts/``), not in
    whatever folder the command ran from; other stores use their own default."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri[len("sqlite:///") :])
    return (database.parent / "mlartifacts").resolve().as_uri()


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def log_run(
    data: Mapping[str, Any],
    *,
    tracking_uri: str,
    experiment: str,
    report: str,
    branch: str = "",
    run_name: str | None = None,
) -> Exported:
    """Log ``data`` (a comparison report) as one MLflow run; ``report`` is its Markdown.
    Raises ConfigError when mlflow is not installed, PublishError when the tracking server
    or store refuses."""
    try:
        import mlflow
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError(
            "perf-gate export mlflow needs MLflow: pip install 'perf-gate[mlflow]'",
            slug="missing-mlflow",
        ) from None
    rows = list(data.get("comparisons", []))
    benchmarks = sorted({str(r["benchmark"]) for r in rows})
    models = sorted({b.split("[", 1)[0] for b in benchmarks if b.endswith("]")})
    variants = sorted({b[b.rindex("[") + 1 : -1] for b in benchmarks if b.endswith("]")})
    commit = str(data.get("current_commit") or "")
    params = {
        "models": ", ".join(models) or "-",
        "variants": ", ".join(variants) or "-",
        "benchmarks": str(len(benchmarks)),
        "environment_key": str(data.get("environment_key") or ""),
        "environment": str(data.get("environment_label") or ""),
        "commit": commit,
        "baseline_commit": str(data.get("baseline_commit") or ""),
        "branch": branch,
        "alpha": str(data.get("alpha", "")),
    }
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {
        "perf_gate.status": "passed" if data.get("passed") else "failed",
        "perf_gate.exit_code": str(data.get("exit_code", "")),
    }
    for row in rows:
        key = mlflow_name(f"{row['benchmark']}/{row['metric']}")
        for suffix, field in (("", "current"), ("/ci_low", "ci_low"), ("/ci_high", "ci_high")):
            value = _finite(row.get(field))
            if value is not None:
                metrics[key + suffix] = value
        change = _finite(row.get("relative_change"))
        if change is not None:
            metrics[key + "/change"] = change
        tags[f"verdict.{key}"] = str(row["verdict"])
    for state, count in (data.get("counts") or {}).items():
        metrics[mlflow_name(f"verdicts/{state}")] = float(count)
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # not its schema migrations' chatter
    try:
        mlflow.set_tracking_uri(tracking_uri)
        client = MlflowClient(tracking_uri=tracking_uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = (
            found.experiment_id
            if found is not None
            else client.create_experiment(experiment, artifact_location=_artifacts(tracking_uri))
        )
        name = run_name or f"perf-gate {commit[:12] or 'run'}"
        run = client.create_run(experiment_id, run_name=name, tags=tags)
        run_id = run.info.run_id
        from mlflow.entities import Metric, Param, RunTag

        stamp = int(run.info.start_time)
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, stamp, 0) for k, v in metrics.items()],
            params=[Param(k, v[:MAX_PARAM]) for k, v in params.items()],
            tags=[RunTag("perf_gate.benchmarks", json.dumps(benchmarks)[:MAX_PARAM])],
        )
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            (folder / "comparison.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
            (folder / "report.md").write_text(report, encoding="utf-8")
            client.log_artifact(run_id, str(folder / "comparison.json"))
            client.log_artifact(run_id, str(folder / "report.md"))
        client.set_terminated(run_id, status="FINISHED")
    except Exception as exc:  # MLflow's own errors: a store or server that refuses
        raise PublishError(
            f"mlflow {tracking_uri}: {type(exc).__name__}: {first_line(exc)}",
            slug="export-mlflow",
        ) from None
    return Exported(run_id, experiment, tracking_uri, len(metrics))
