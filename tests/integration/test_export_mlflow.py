"""``perf-gate export mlflow``: a comparison.json logged as one MLflow run to a real local
store, read back through MLflow's own client: params, metrics with their interval bounds,
verdicts as tags, comparison.json and the report as artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.integrations.mlflow_export import mlflow_name

from ._support import run_cli
from .test_export import comparison  # noqa: F401 - the fixture

mlflow = pytest.importorskip("mlflow")
# MLflow's SQL store reads its runs with a loader strategy SQLAlchemy 2.1 deprecates
pytestmark = [
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning"),
    pytest.mark.slow,  # MLflow creates its SQLite schema (alembic migrations): seconds
]


def test_a_run_is_logged_and_read_back(tmp_path: Path, comparison: Path) -> None:  # noqa: F811
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # MLflow's default local store
    ran = run_cli(
        tmp_path,
        "export",
        "mlflow",
        "--tracking-uri",
        uri,
        "--branch",
        "main",
        "--experiment",
        "gates",
    )
    assert ran.ret == 0, ran.output
    assert "logged MLflow run" in ran.stdout
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("gates")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["commit"] == "b" * 40
    assert run.data.params["branch"] == "main"
    assert run.data.params["models"] == "digits"
    assert run.data.params["variants"] == "onnxruntime"
    latency = mlflow_name("digits[onnxruntime]/latency")
    assert latency == "digits_onnxruntime_/latency"
    assert run.data.metrics[latency] == pytest.approx(2e-3, rel=0.01)
    assert run.data.metrics[latency + "/ci_low"] < run.data.metrics[latency + "/ci_high"]
    assert run.data.metrics[mlflow_name("digits[onnxruntime]/throughput@32")] > 0
    assert run.data.tags[f"verdict.{latency}"] == "regression"
    assert run.data.tags["perf_gate.status"] == "failed"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"comparison.json", "report.md"}
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())
    folder = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "got")))
    assert json.loads((folder / "comparison.json").read_text())["current_commit"] == "b" * 40
    assert "perf-gate" in (folder / "report.md").read_text()
    again = run_cli(tmp_path, "export", "mlflow", "--tracking-uri", uri, "--experiment", "gates")
    assert again.ret == 0, again.output
    assert len(client.search_runs([experiment.experiment_id])) == 2  # a run per gate run


def test_an_unusable_tracking_uri_is_one_line(tmp_path: Path, comparison: Path) -> None:  # noqa: F811
    ran = run_cli(tmp_path, "export", "mlflow", "--tracking-uri", "nosuch://x")
    assert ran.ret == 3, ran.output
    (line,) = ran.output.strip().splitlines()[-1:]
    assert line.startswith("perf-gate: error: mlflow nosuch://x: ")
    assert line.endswith("(perf-gate explain export-mlflow)")


def test_the_configs_export_section_runs_after_perf_gate_run(tmp_path: Path) -> None:
    config = (
        "models:\n  pipe: {data: {loader: pipeline:batches, batches: 5}}\n"
        "measure: {rounds: 2}\n"
        "export:\n"
        "  openmetrics: {path: out/perf-gate.prom, push: 'http://127.0.0.1:9'}\n"
        f"  mlflow: {{tracking_uri: 'sqlite:///{tmp_path / 'm.db'}', experiment: ci}}\n"
    )
    pipeline = "def batches():\n    for _ in range(10):\n        yield [0.0] * 64\n"
    (tmp_path / "out").mkdir()
    (tmp_path / "perf-gate.yaml").write_text(config, encoding="utf-8")
    (tmp_path / "pipeline.py").write_text(pipeline, encoding="utf-8")
    ran = run_cli(tmp_path, "run")
    assert ran.ret == 0, ran.output  # no baseline: new rows; a failed export is a warning
    warnings = [line for line in ran.output.splitlines() if "warning: export" in line]
    assert len(warnings) == 1, ran.output
    assert "export.openmetrics: --push http://127.0.0.1:9: the Pushgateway" in warnings[0]
    assert "export: logged MLflow run" in ran.stdout
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("ci").experiment_id])
    assert run.data.metrics[mlflow_name("pipe[data]/data.items_per_s")] > 0
    # the file is written before the push is tried
    assert "perf_gate_result_per_second" in (tmp_path / "out" / "perf-gate.prom").read_text()
