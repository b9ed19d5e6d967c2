"""The ``perf-gate`` console script as a user runs it: help, compare, run, errors, exit codes.

Comparisons use run records written with ``gate.store.records.write_record`` (values chosen so the
verdict is certain) and records produced by a real ``perf-gate run`` on an ONNX-only project.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate import __version__
from gate.core.types import BenchmarkError, Direction, Metric, RunRecord, Sample
from gate.measure.environment import environment_key
from gate.store.records import write_record

from ._support import comparisons_by_key, read_json, run_cli, write_files, write_matmul_onnx

LATENCY = Metric("latency", "s", Direction.LOWER)
THROUGHPUT = Metric("throughput@1", "items/s", Direction.HIGHER)
BASE_MS = (1.00, 1.02, 0.99, 1.01, 1.00)


def record(scale: float = 1.0, *, errors: tuple[BenchmarkError, ...] = ()) -> RunRecord:
    """One model's latency and throughput; ``scale`` multiplies its latency."""
    latency = tuple(v * scale * 1e-3 for v in BASE_MS)
    return RunRecord(
        samples=(
            Sample(benchmark="model[torch]", metric=LATENCY, values=latency),
            Sample(
                benchmark="model[torch]", metric=THROUGHPUT, values=tuple(1 / v for v in latency)
            ),
        ),
        environment={"os": "Linux", "cpu_model": "test", "threads": 1},
        errors=errors,
    )


@pytest.fixture
def records(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "base": record(),
        "same": record(),
        "slower": record(2.0),
        "faster": record(0.5),
        "failed": RunRecord(
            samples=(),
            environment={"os": "Linux"},
            errors=(BenchmarkError(benchmark="model[torch]", message="worker crashed"),),
        ),
    }
    for name, value in paths.items():
        write_record(tmp_path / f"{name}.json", value)
    return {name: tmp_path / f"{name}.json" for name in paths}


def assert_one_line_error(ran, *fragments: str) -> None:
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, ran.output
    assert lines[0].startswith("perf-gate: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in ran.output


# --- help and version -----------------------------------------------------------------------


def test_version(tmp_path):
    ran = run_cli(tmp_path, "--version")
    assert ran.ret == 0
    assert ran.stdout.strip() == f"perf-gate {__version__}"


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("run", ["--config", "--out", "--baseline", "--save", "--select"]),
        ("compare", ["baseline", "current", "--config", "--format"]),
    ],
)
def test_subcommand_help(tmp_path, command, options):
    ran = run_cli(tmp_path, command, "--help")
    assert ran.ret == 0
    assert f"usage: perf-gate {command}" in ran.stdout
    for option in options:
        assert option in ran.stdout


def test_no_command_is_a_usage_error(tmp_path):
    ran = run_cli(tmp_path)
    assert ran.ret == 2
    assert "usage: perf-gate" in ran.stderr


# --- compare --------------------------------------------------------------------------------


def compare_json(cwd: Path, base: Path, current: Path, *extra: str) -> tuple[int, dict]:
    ran = run_cli(cwd, "compare", str(base), str(current), "--format", "json", *extra)
    assert "Traceback" not in ran.output
    return ran.ret, json.loads(ran.stdout)


def test_compare_json_reports_a_regression_with_exit_1(tmp_path, records):
    ret, report = compare_json(tmp_path, records["base"], records["slower"])
    assert ret == 1
    assert report["exit_code"] == 1
    assert report["passed"] is False
    assert report["has_baseline"] is True
    by_key = comparisons_by_key(report)
    latency = by_key[("model[torch]", "latency")]
    assert latency["verdict"] == "regression"
    assert latency["fails"] is True
    assert latency["relative_change"] == pytest.approx(1.0)
    throughput = by_key[("model[torch]", "throughput@1")]
    assert throughput["verdict"] == "regression"  # lower is worse for a rate
    assert throughput["relative_change"] == pytest.approx(-0.5)
    assert report["counts"]["regression"] == 2


def test_compare_json_names_the_current_records_environment_key(tmp_path, records):
    """The records here carry a bare fingerprint (no stored key): the key is derived from it,
    as a gate run would have stored it."""
    current = json.loads(records["same"].read_text(encoding="utf-8"))
    _, report = compare_json(tmp_path, records["base"], records["same"])
    assert report["environment_key"] == environment_key(current["environment"])


def test_compare_json_unchanged_exits_0(tmp_path, records):
    ret, report = compare_json(tmp_path, records["base"], records["same"])
    assert ret == 0
    assert report["passed"] is True
    assert {c["verdict"] for c in report["comparisons"]} == {"unchanged"}


def test_compare_json_improvement_exits_0(tmp_path, records):
    ret, report = compare_json(tmp_path, records["base"], records["faster"])
    assert ret == 0
    verdicts = {c["verdict"] for c in report["comparisons"]}
    assert verdicts == {"improvement"}


def test_compare_failed_benchmark_exits_3(tmp_path, records):
    ret, report = compare_json(tmp_path, records["base"], records["failed"])
    assert ret == 3
    assert report["exit_code"] == 3
    assert report["errors"] == [{"benchmark": "model[torch]", "message": "worker crashed"}]
    assert "error" in {c["verdict"] for c in report["comparisons"]}


def test_compare_uses_the_policy_of_the_config(tmp_path, records):
    config = tmp_path / "policy.yaml"
    config.write_text("policy: {thresholds: {latency: 150%, throughput: 150%}}\n")
    ret, report = compare_json(
        tmp_path, records["base"], records["slower"], "--config", str(config)
    )
    assert ret == 0  # +100% is significant but within the 150% threshold
    latency = comparisons_by_key(report)[("model[torch]", "latency")]
    assert latency["verdict"] == "unchanged"
    assert latency["threshold"] == "150%"


def test_compare_table_names_the_regression(tmp_path, records):
    ran = run_cli(tmp_path, "compare", str(records["base"]), str(records["slower"]))
    assert ran.ret == 1
    rows = [line for line in ran.stdout.splitlines() if line.startswith("model[torch]")]
    assert len(rows) == 2
    assert all("regression" in row for row in rows)


def test_compare_missing_file_exits_2(tmp_path, records):
    missing = tmp_path / "nope.json"
    ran = run_cli(tmp_path, "compare", str(records["base"]), str(missing))
    assert ran.ret == 2
    assert_one_line_error(ran, str(missing), "not found")


def test_compare_truncated_file_exits_2(tmp_path, records):
    text = records["slower"].read_text()
    records["slower"].write_text(text[: len(text) // 3])
    ran = run_cli(tmp_path, "compare", str(records["base"]), str(records["slower"]))
    assert ran.ret == 2
    assert_one_line_error(ran, str(records["slower"]), "not valid JSON")


# --- run ------------------------------------------------------------------------------------


def test_run_without_a_config_exits_2(tmp_path):
    ran = run_cli(tmp_path, "run")
    assert ran.ret == 2
    assert_one_line_error(ran, "no perf-gate.yaml and no pyproject.toml with [tool.perf-gate]")
    assert not (tmp_path / ".perf-gate").exists()


def test_run_with_an_empty_models_section_exits_2(tmp_path):
    (tmp_path / "perf-gate.yaml").write_text("models: {}\n", encoding="utf-8")
    ran = run_cli(tmp_path, "run")
    assert ran.ret == 2
    assert_one_line_error(ran, "perf-gate.yaml: no models to measure; add a 'models:' section")


def test_run_refuses_a_report_folder_it_cannot_create(tmp_path):
    (tmp_path / "blocker").write_text("a file\n", encoding="utf-8")
    (tmp_path / "perf-gate.yaml").write_text(
        "report_dir: blocker/sub\nmodels:\n  m:\n    torch: model:build\n"
        "    input: {shape: [1, 4], dtype: float32}\n",
        encoding="utf-8",
    )
    ran = run_cli(tmp_path, "run")
    assert ran.ret == 2
    assert_one_line_error(ran, "the report folder cannot be created", "is a file, not a folder")


def test_config_option_accepts_a_directory(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "perf-gate.yaml").write_text("models: {}\n", encoding="utf-8")
    ran = run_cli(tmp_path, "run", "--config", str(project))
    assert ran.ret == 2
    assert_one_line_error(ran, f"{project / 'perf-gate.yaml'}: no models to measure")
    empty = tmp_path / "empty"
    empty.mkdir()
    ran = run_cli(tmp_path, "run", "--config", str(empty))
    assert ran.ret == 2
    assert_one_line_error(ran, f"{empty}: no perf-gate.yaml and no pyproject.toml")


def test_run_with_a_missing_config_exits_2(tmp_path):
    ran = run_cli(tmp_path, "run", "--config", "missing.yaml")
    assert ran.ret == 2
    assert_one_line_error(ran, "missing.yaml", "not found")


def test_run_with_an_invalid_config_exits_2_naming_file_and_key(tmp_path):
    write_files(tmp_path, {"perf-gate.yaml": "models:\n  m: {onnx: model.onnx, inputs: x}\n"})
    ran = run_cli(tmp_path, "run")
    assert ran.ret == 2
    assert_one_line_error(ran, "perf-gate.yaml", "models.m")


ONNX_PROJECT = """
models:
  matmul:
    onnx: model.onnx
    input: {shape: [1, 16], dtype: float32}
    variants: [onnxruntime, onnxruntime-int8]
    metrics: [latency, throughput]
    batch_sizes: [1, 8]
measure: {rounds: 2, warmup: 2, min_calls: 20, min_time: 0.02s, probes: 1}
"""


@pytest.fixture(scope="module")
def onnx_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_files(tmp_path_factory.mktemp("cli-run"), {"perf-gate.yaml": ONNX_PROJECT})
    write_matmul_onnx(root / "model.onnx", width=64, layers=2)
    return root


@pytest.mark.slow
def test_run_select_out_then_compare_real_records(onnx_project):
    ran = run_cli(onnx_project, "run", "--select", "matmul[onnxruntime]", "--out", "first.json")
    assert ran.ret == 0, ran.output
    assert "matmul[onnxruntime]" in ran.stdout
    first = read_json(onnx_project / "first.json")
    benchmarks = {s["benchmark"] for s in first["samples"]}
    assert benchmarks == {"matmul[onnxruntime]"}  # --select measured only that variant
    metrics = {s["metric"] for s in first["samples"]}
    assert metrics == {"latency", "throughput@8"}  # throughput@1 would repeat latency
    assert all(len(s["values"]) == 2 for s in first["samples"])
    assert not (onnx_project / "baselines").exists()  # nothing saved without --save
    assert (onnx_project / ".perf-gate" / "comparison.json").is_file()

    first_path = onnx_project / "first.json"
    ret, report = compare_json(onnx_project, first_path, first_path)
    assert ret == 0
    for comparison in report["comparisons"]:
        assert comparison["relative_change"] == pytest.approx(0.0, abs=1e-12)
        # two rounds leave a wide interval: identical records are unchanged or inconclusive
        assert comparison["verdict"] in ("unchanged", "inconclusive")


@pytest.mark.slow
def test_run_save_records_a_baseline_of_every_variant(onnx_project):
    ran = run_cli(onnx_project, "run", "--save", "--baseline", "saved.json")
    assert ran.ret == 0, ran.output
    saved = read_json(onnx_project / "saved.json")
    assert {s["benchmark"] for s in saved["samples"]} == {
        "matmul[onnxruntime]",
        "matmul[onnxruntime-int8]",
    }
    assert saved["errors"] == []
    assert saved["settings"]["rounds"] == 2
    assert list((onnx_project / ".perf-gate" / "cache").glob("model-int8-*.onnx"))
