"""``perf-gate export openmetrics``: a real run's comparison.json in the Prometheus text
format, read back by prometheus_client's own parser; written for node_exporter's textfile
collector and pushed to a Pushgateway stand-in on 127.0.0.1 (pytest-httpserver)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from gate.core.types import Direction, GitInfo, Metric, RunRecord, Sample
from gate.store.records import write_record

from ._support import run_cli, write_files

LATENCY = Metric("latency", "s", Direction.LOWER)
RATE = Metric("throughput@32", "items/s", Direction.HIGHER)
ACCURACY = Metric("accuracy.top1", "", Direction.HIGHER)
MEMORY = Metric("memory.peak", "B", Direction.LOWER)


def record(latency: float, rate: float, commit: str) -> RunRecord:
    def around(value: float) -> tuple[float, ...]:
        return tuple(value * f for f in (0.99, 1.0, 1.01, 1.005, 0.995, 1.002))

    return RunRecord(
        samples=(
            Sample(benchmark="digits[onnxruntime]", metric=LATENCY, values=around(latency)),
            Sample(benchmark="digits[onnxruntime]", metric=RATE, values=around(rate)),
            Sample(benchmark="tests/test_x.py::test_tok", metric=ACCURACY, values=(0.9, 0.9)),
            Sample(benchmark="digits[onnxruntime]", metric=MEMORY, values=(2e8, 2e8)),
        ),
        environment={},
        git=GitInfo(commit=commit),
    )


@pytest.fixture
def comparison(tmp_path: Path) -> Path:
    """A comparison.json written by ``perf-gate compare`` of a baseline and a slower run."""
    write_files(tmp_path, {"perf-gate.yaml": "policy: {thresholds: {latency: 5%}}\n"})
    write_record(tmp_path / "base.json", record(1e-3, 3000.0, "a" * 40))
    write_record(tmp_path / "head.json", record(2e-3, 1500.0, "b" * 40))
    ran = run_cli(tmp_path, "compare", "base.json", "head.json", "--format", "json")
    assert ran.ret == 1, ran.output
    path = tmp_path / ".perf-gate" / "comparison.json"  # where a run writes it
    path.parent.mkdir()
    path.write_text(ran.stdout, encoding="utf-8")
    return path


def families(text: str) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_the_file_parses_with_units_in_names_labels_and_verdicts(
    tmp_path: Path, comparison: Path
) -> None:
    ran = run_cli(tmp_path, "export", "openmetrics", "--branch", "main", "-o", "perf.prom")
    assert ran.ret == 0, ran.output
    found = families((tmp_path / "perf.prom").read_text(encoding="utf-8"))
    (latency,) = found["perf_gate_result_seconds"]
    assert latency.labels == {
        "benchmark": "digits[onnxruntime]",
        "model": "digits",
        "variant": "onnxruntime",
        "metric": "latency",
        "environment": "",
        "branch": "main",
    }
    assert latency.value == pytest.approx(2e-3, rel=0.01)
    (rate,) = found["perf_gate_result_per_second"]
    assert rate.labels["metric"] == "throughput@32"
    (other,) = found["perf_gate_result"]  # a custom unit stays a label
    assert other.labels["variant"] == ""  # a test's node id has no variant
    assert other.labels["unit"] == ""
    change = {s.labels["metric"]: s.value for s in found["perf_gate_change_ratio"]}
    assert change["latency"] == pytest.approx(1.0, rel=0.05)
    low = {s.labels["metric"]: s.value for s in found["perf_gate_change_low_ratio"]}
    assert 0.5 < low["latency"] < 1.0
    verdicts = {
        (s.labels["metric"], s.labels["verdict"], s.labels["fails"])
        for s in found["perf_gate_verdict"]
    }
    assert ("latency", "regression", "true") in verdicts
    counts = {s.labels["verdict"]: s.value for s in found["perf_gate_verdicts"]}
    assert counts["regression"] == 2
    (exit_code,) = found["perf_gate_exit_code"]
    assert exit_code.value == 1
    assert exit_code.labels["commit"] == "b" * 12
    printed = run_cli(tmp_path, "export", "openmetrics", "--branch", "main")
    assert printed.stdout == (tmp_path / "perf.prom").read_text(encoding="utf-8")


def test_a_push_reaches_the_pushgateway_grouped_by_environment_and_branch(
    tmp_path: Path, comparison: Path, httpserver: HTTPServer
) -> None:
    received: list[Request] = []

    def handler(request: Request) -> Response:
        received.append(request)
        return Response(status=200)

    httpserver.expect_request(
        "/metrics/job/perf-gate/branch/feature-x/environment@base64/=", method="PUT"
    ).respond_with_handler(handler)
    url = f"http://127.0.0.1:{httpserver.port}"
    ran = run_cli(tmp_path, "export", "openmetrics", "--branch", "feature-x", "--push", url)
    assert ran.ret == 0, ran.output
    assert "pushed 4 rows" in ran.stdout  # latency, throughput@32, memory.peak, accuracy.top1
    (request,) = received
    assert request.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found = families(request.get_data(as_text=True))
    assert found["perf_gate_result_seconds"][0].labels["branch"] == "feature-x"


def test_an_unreachable_pushgateway_is_one_line_exit_3(tmp_path: Path, comparison: Path) -> None:
    ran = run_cli(tmp_path, "export", "openmetrics", "--push", "http://127.0.0.1:9")
    assert ran.ret == 3, ran.output
    (line,) = ran.output.strip().splitlines()
    assert line.startswith("perf-gate: error: --push http://127.0.0.1:9: the Pushgateway")
    assert line.endswith("(perf-gate explain export-push)")


def test_a_missing_comparison_names_the_file(tmp_path: Path) -> None:
    write_files(tmp_path, {"perf-gate.yaml": "{}\n"})
    ran = run_cli(tmp_path, "export", "openmetrics")
    assert ran.ret == 2, ran.output
    assert "comparison.json" in ran.output
    assert "Traceback" not in ran.output
    json.dumps(ran.output)


DASHBOARD = (
    Path(__file__).resolve().parents[2] / "examples" / "grafana" / "perf-gate-dashboard.json"
)
METRIC_NAME = re.compile(r"\b(perf_gate_[a-z_]+)\b")
LABEL = re.compile(r"\b([a-z_]+)\s*=~?")


def test_the_grafana_dashboard_loads_and_queries_what_the_export_writes(
    tmp_path: Path, comparison: Path
) -> None:
    grafana = pytest.importorskip("grafana_foundation_sdk.models.dashboard")
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    dashboard = grafana.Dashboard.from_json(data)  # Grafana's own dashboard model
    assert dashboard.uid == "perf-gate"
    assert [p.type_val for p in dashboard.panels] == ["timeseries"] * 4 + ["stat"]
    assert all(p.targets for p in dashboard.panels)
    ran = run_cli(tmp_path, "export", "openmetrics", "--branch", "main")
    exported = families(ran.stdout)
    labels = {name for samples in exported.values() for s in samples for name in s.labels}
    queries = [t["expr"] for p in data["panels"] for t in p["targets"]]
    queries += [v["definition"] for v in data["templating"]["list"] if "definition" in v]
    for query in queries:
        for name in METRIC_NAME.findall(query):
            assert name in exported, f"{name} is not a metric the export writes"
        for label in LABEL.findall(query):
            assert label in labels, f"{label} is not a label the export writes"
    titles = " ".join(p.title for p in dashboard.panels)
    for subject in ("Latency", "Throughput", "Memory", "Verdicts"):
        assert subject in titles
