"""The pytest plugin in real pytest runs: ``pytest --perf-gate`` on small projects.

The gate flow (save a baseline, rerun unchanged, slow the benchmark-fixture test, slow the model)
runs once per module as real ``python -m pytest`` subprocesses in one temporary project; the
tests read what each run printed and wrote. Error paths use ``pytester`` projects; they exit
before anything is measured, so they take about a second each.

The flow's model is a tiny torch model exported to ONNX (the ``onnxruntime`` variant with a
``{shape, dtype}`` input), so the worker rounds import onnxruntime only: importing torch costs
seconds per process on small CI machines. Its policy keeps verdicts deterministic: ``alpha: 0.2``
keeps a 20x slowdown significant with three rounds even if one round is noisy, and the 300%
thresholds mean unchanged code can never be called a regression.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gate.config import MeasureSettings
from gate.core.types import Direction, Metric, RunRecord, Sample
from gate.errors import ConfigError
from gate.integrations.pytest.perf import Perf
from gate.store.records import write_record

from ._support import (
    SLOW_TORCH_MODULE,
    TINY_TORCH_MODULE,
    comparisons_by_key,
    read_json,
    run_pytest,
    samples_by_key,
    write_files,
)

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

ROUNDS = 3
FLOW_CONFIG = f"""
models:
  tiny:
    torch: tinymodel:build
    input: {{shape: [1, 16], dtype: float32}}
    variants: [onnxruntime]
    metrics: [latency]
policy:
  alpha: 0.2
  thresholds: {{default: 300%, latency: 300%}}
  diagnose: never  # profiling a regression is test_diagnosis.py's subject
measure: {{rounds: {ROUNDS}, warmup: 2, min_calls: 20, min_time: 0.02s, probes: 1, seed: 11}}
"""

WORKLOAD = """
def work(n):
    total = 0
    for i in range(n):
        total += i * i
    return total
"""

PERF_TEST = """
import pytest
from workload import work


@pytest.mark.perf_gate(threshold="400%")
def test_sum_of_squares(perf):
    result = perf.latency(work, 300)
    assert result == sum(i * i for i in range(300))
    perf.record("answer", 42.0, higher_is_better=True)
"""

BENCH_TEST = """
from workload import work

N = {n}


def test_bench_work(benchmark):
    assert benchmark(work, N) == sum(i * i for i in range(N))
"""

BENCH_ARGS = ("--benchmark-max-time=0.05",)
PERF_NODE = "test_perf.py::test_sum_of_squares"
BENCH_NODE = "test_bench.py::test_bench_work"
MODEL = "tiny[onnxruntime]"


@dataclass
class GateRun:
    ret: int
    output: str
    results: dict[str, Any]
    comparison: dict[str, Any]

    @property
    def samples(self) -> dict[tuple[str, str], dict[str, Any]]:
        return samples_by_key(self.results)

    def rows(self, benchmark: str, metric: str = "latency") -> list[str]:
        """The terminal table's rows for (benchmark, metric)."""
        return [
            line
            for line in self.output.splitlines()
            if line.startswith(f"{benchmark} ") and line.split()[1:2] == [metric]
        ]

    @property
    def comparisons(self) -> dict[tuple[str, str], dict[str, Any]]:
        return comparisons_by_key(self.comparison)


def gate_run(project: Path, *args: str) -> GateRun:
    for name in ("results.json", "comparison.json"):
        (project / ".perf-gate" / name).unlink(missing_ok=True)
    ran = run_pytest(project, "--perf-gate", *BENCH_ARGS, *args)
    report = project / ".perf-gate"
    results = read_json(report / "results.json") if (report / "results.json").is_file() else {}
    comparison = (
        read_json(report / "comparison.json") if (report / "comparison.json").is_file() else {}
    )
    return GateRun(ran.ret, ran.output, results, comparison)


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """save -> unchanged -> 20x slower benchmark-fixture test -> 20x slower model."""
    project = write_files(
        tmp_path_factory.mktemp("plugin-flow"),
        {
            "pytest.ini": "[pytest]\n",
            "perf-gate.yaml": FLOW_CONFIG,
            "tinymodel.py": TINY_TORCH_MODULE,
            "workload.py": WORKLOAD,
            "test_perf.py": PERF_TEST,
            "test_bench.py": BENCH_TEST.format(n=200),
        },
    )
    runs: dict[str, Any] = {"project": project}
    runs["save"] = gate_run(project, "--perf-gate-save")
    runs["baseline"] = read_json(project / "baselines" / "main.json")
    runs["unchanged"] = gate_run(project)
    write_files(project, {"test_bench.py": BENCH_TEST.format(n=4000)})
    runs["bench_slow"] = gate_run(project)
    write_files(project, {"test_bench.py": BENCH_TEST.format(n=200)})
    write_files(project, {"tinymodel.py": SLOW_TORCH_MODULE})
    runs["model_slow"] = gate_run(project)
    return runs


# --- the gate flow --------------------------------------------------------------------------


@pytest.mark.slow
def test_save_run_passes_and_writes_baseline_and_reports(flow):
    run = flow["save"]
    assert run.ret == 0, run.output
    assert "3 passed" in run.output  # two tests and the model item from the config
    project = flow["project"]
    assert (project / "baselines" / "main.json").is_file()
    assert run.results["format"] == 1
    assert run.comparison["exit_code"] == 0
    assert run.comparison["has_baseline"] is False
    assert {c["verdict"] for c in run.comparison["comparisons"]} == {"new"}
    assert set(run.samples) == {
        (MODEL, "latency"),
        (PERF_NODE, "latency"),
        (PERF_NODE, "answer"),
        (BENCH_NODE, "latency"),
    }
    assert samples_by_key(flow["baseline"]).keys() == run.samples.keys()


@pytest.mark.slow
def test_model_and_perf_test_are_measured_in_worker_rounds(flow):
    samples = flow["save"].samples
    for key in ((MODEL, "latency"), (PERF_NODE, "latency"), (PERF_NODE, "answer")):
        assert len(samples[key]["values"]) == ROUNDS, key
        assert samples[key]["replication"] == "process"
    latency = samples[(PERF_NODE, "latency")]
    assert len(latency["calls"]) >= ROUNDS * 20  # min_calls in each worker round
    assert samples[(PERF_NODE, "answer")]["values"] == [42.0] * ROUNDS
    assert samples[(PERF_NODE, "answer")]["direction"] == "higher"


@pytest.mark.slow
def test_benchmark_fixture_tests_are_measured_in_worker_rounds(flow):
    # re-run in a fresh pytest process per round, as perf tests are; a value per process
    # (pytest-benchmark's median there), its rounds kept as the calls
    sample = flow["save"].samples[(BENCH_NODE, "latency")]
    assert sample["replication"] == "process"
    assert len(sample["values"]) == ROUNDS
    assert len(sample["calls"]) >= ROUNDS * 5  # pytest-benchmark's own rounds in each
    assert sample["unit"] == "s"


@pytest.mark.slow
def test_unchanged_rerun_passes(flow):
    run = flow["unchanged"]
    assert run.ret == 0, run.output
    assert run.comparison["has_baseline"] is True
    assert run.comparison["passed"] is True
    assert not [c for c in run.comparison["comparisons"] if c["fails"]]
    assert {c["verdict"] for c in run.comparison["comparisons"]} <= {"unchanged", "inconclusive"}
    for benchmark in (MODEL, PERF_NODE, BENCH_NODE):
        (row,) = run.rows(benchmark)
        assert "regression" not in row


@pytest.mark.slow
def test_marker_threshold_applies_to_that_test_only(flow):
    comparisons = flow["unchanged"].comparisons
    assert comparisons[(PERF_NODE, "latency")]["threshold"] == "400%"
    assert comparisons[(PERF_NODE, "answer")]["threshold"] == "400%"
    assert comparisons[(MODEL, "latency")]["threshold"] == "300%"
    assert comparisons[(BENCH_NODE, "latency")]["threshold"] == "300%"


@pytest.mark.slow
def test_a_slower_benchmark_fixture_test_fails_the_run(flow):
    run = flow["bench_slow"]
    assert run.ret == 1, run.output
    (row,) = run.rows(BENCH_NODE)
    assert "regression" in row
    assert "advisory" not in row
    bench = run.comparisons[(BENCH_NODE, "latency")]
    assert bench["verdict"] == "regression"
    assert bench["advisory"] is False
    assert bench["fails"] is True
    assert bench["relative_change"] > 3
    assert run.comparisons[(MODEL, "latency")]["verdict"] != "regression"


@pytest.mark.slow
def test_slower_model_fails_the_run(flow):
    run = flow["model_slow"]
    assert run.ret == 1, run.output
    (row,) = run.rows(MODEL)
    assert "regression" in row
    assert "advisory" not in row
    model = run.comparisons[(MODEL, "latency")]
    assert model["verdict"] == "regression"
    assert model["fails"] is True
    assert model["relative_change"] > 3
    assert run.comparison["exit_code"] == 1
    assert run.comparisons[(PERF_NODE, "latency")]["verdict"] != "regression"
    assert run.comparisons[(BENCH_NODE, "latency")]["verdict"] != "regression"


# --- pytester projects: errors and quick mode ----------------------------------------------


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\n")
    write_files(pytester.path, {"tinymodel.py": TINY_TORCH_MODULE, "workload.py": WORKLOAD})
    return pytester


def config(pytester: pytest.Pytester, text: str) -> None:
    write_files(pytester.path, {"perf-gate.yaml": text})


def output_of(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


def error_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in output_of(result).splitlines() if "perf-gate: error:" in line]


TINY_MODEL = """
models:
  tiny:
    torch: tinymodel:build
    input: tinymodel:inputs
    variants: [{variants}]
"""


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        pytest.param(
            TINY_MODEL.format(variants="torch, torch-int4"),
            ["perf-gate.yaml", "models.tiny.variants[1]", "torch-int4"],
            id="unknown-variant",
        ),
        pytest.param(
            "models:\n  tiny: [\n", ["perf-gate.yaml", "invalid YAML", "line 3"], id="invalid-yaml"
        ),
        pytest.param("measure: {rounds: 1}\n", ["perf-gate.yaml", "measure.rounds"], id="rounds-1"),
        pytest.param(
            "measure: {round: 3}\n", ["perf-gate.yaml", "measure.round", "unknown key"], id="typo"
        ),
        pytest.param(
            "models:\n  tiny: {torch: 'tinymodel:build'}\n",
            ["perf-gate.yaml", "models.tiny.input"],
            id="missing-input",
        ),
        pytest.param(
            "policy: {thresholds: {latency: fast}}\n",
            ["perf-gate.yaml", "policy.thresholds.latency"],
            id="bad-threshold",
        ),
    ],
)
def test_bad_config_exits_2_with_one_line_naming_file_and_key(project, text, fragments):
    config(project, text)
    project.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = project.runpytest_subprocess("--perf-gate")
    assert result.ret == 2
    lines = error_lines(result)
    assert len(lines) == 1, output_of(result)
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in output_of(result)


def bench_only_project(pytester: pytest.Pytester) -> Path:
    config(pytester, "baseline: baselines/main.json\n")
    write_files(pytester.path, {"test_bench.py": BENCH_TEST.format(n=50)})
    return pytester.path / "baselines" / "main.json"


def valid_record_text(tmp_path: Path) -> str:
    record = RunRecord(
        samples=(
            Sample(
                benchmark=BENCH_NODE,
                metric=Metric("latency", "s", Direction.LOWER),
                values=(1e-5, 1.1e-5, 0.9e-5),
            ),
        ),
        environment={"os": "test"},
    )
    write_record(tmp_path / "record.json", record)
    return (tmp_path / "record.json").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        pytest.param(lambda text: text[: len(text) // 2], "not valid JSON", id="truncated"),
        pytest.param(lambda text: "", "empty", id="empty"),
        pytest.param(
            lambda text: text.replace('"format": 1', '"format": 99'),
            "format 99 is not supported",
            id="unsupported-format",
        ),
        pytest.param(
            lambda text: json.dumps({**json.loads(text), "samples": [{"benchmark": 1}]}),
            "samples[0]",
            id="damaged-sample",
        ),
    ],
)
def test_damaged_baseline_exits_2_naming_the_file(project, tmp_path, damage, fragment):
    baseline = bench_only_project(project)
    baseline.parent.mkdir()
    baseline.write_text(damage(valid_record_text(tmp_path)), encoding="utf-8")
    result = project.runpytest_subprocess("--perf-gate", *BENCH_ARGS)
    output = output_of(result)
    assert result.ret == 2, output
    lines = error_lines(result)
    assert len(lines) == 1, output
    assert str(baseline) in lines[0]
    assert fragment in lines[0]
    assert "Traceback" not in output


QUICK_TEST = """
def test_quick_mode(perf):
    calls = []
    assert perf.latency(lambda: calls.append("latency") or 7) == 7
    assert perf.throughput(lambda: calls.append("throughput"), items=10) is None
    assert len(perf.memory(lambda: bytearray(1000))) == 1000
    perf.record("score", 0.5, higher_is_better=True)
    assert calls == ["latency", "throughput"]  # each function ran exactly once
"""


def test_perf_fixture_without_perf_gate_runs_once_and_compares_nothing(project):
    config(project, FLOW_CONFIG)
    project.makepyfile(test_quick=QUICK_TEST)
    result = project.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert not (project.path / ".perf-gate").exists()
    assert not (project.path / "baselines").exists()
    assert "= perf-gate =" not in output_of(result)
    assert "tiny[" not in output_of(result)


TWICE_TEST = """
def test_twice(perf):
    perf.latency(sum, [1, 2])
    perf.latency(sum, [3, 4])


def test_twice_named(perf):
    perf.latency(sum, [1, 2], name="small")
    perf.latency(sum, [3, 4], name="large")
"""


def test_measuring_the_same_metric_twice_needs_a_name(project):
    project.makepyfile(test_twice=TWICE_TEST)
    result = project.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*test_twice.py::test_twice: metric 'latency' is measured twice in one test*name=*"]
    )


@pytest.mark.slow
def test_perf_gate_measures_named_metrics_and_skips_failed_perf_tests(project):
    config(project, "measure: {rounds: 2, warmup: 1, min_calls: 5, min_time: 0.01s}\n")
    project.makepyfile(test_twice=TWICE_TEST)
    result = project.runpytest_subprocess("--perf-gate")
    assert result.ret == 1  # the failing test fails the run
    samples = samples_by_key(read_json(project.path / ".perf-gate" / "results.json"))
    assert set(samples) == {
        ("test_twice.py::test_twice_named", "latency.small"),
        ("test_twice.py::test_twice_named", "latency.large"),
    }
    assert all(len(s["values"]) == 2 for s in samples.values())


def test_marker_is_registered_and_harmless_without_perf_gate(project):
    project.makepyfile(
        test_marker="import pytest\n\n\n@pytest.mark.perf_gate(threshold='3%')\n"
        "def test_x():\n    pass\n"
    )
    result = project.runpytest_subprocess("--strict-markers")
    result.assert_outcomes(passed=1)


BROKEN_MODEL_CONFIG = """
models:
  bad:
    torch: badmodel:build
    input: {shape: [1, 16]}
    variants: [torch]
    metrics: [latency]
measure: {rounds: 2, warmup: 1, min_calls: 5, min_time: 0.01s}
"""


@pytest.mark.slow
def test_broken_model_fails_its_item_in_one_line_and_is_not_saved(project):
    config(project, BROKEN_MODEL_CONFIG)
    write_files(project.path, {"badmodel.py": "def build():\n    return 42\n"})
    result = project.runpytest_subprocess("--perf-gate", "--perf-gate-save")
    output = output_of(result)
    assert result.ret == 1, output
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["perf-gate: error: bad?torch?: 'badmodel:build' returned int, expected a torch.nn.Module*"]
    )
    assert "Traceback" not in output
    assert not (project.path / "baselines").exists()  # an incomplete run is never saved
    report = read_json(project.path / ".perf-gate" / "comparison.json")
    assert [e["benchmark"] for e in report["errors"]] == ["bad[torch]"]


FAILS_WHEN_MEASURED = """
def test_measured(perf):
    if perf.measuring:
        raise RuntimeError("fails only in the worker")
    perf.latency(sum, [1, 2])
"""


@pytest.mark.slow
def test_perf_test_failing_in_its_worker_is_an_error_exit_3(project):
    config(project, "measure: {rounds: 2, warmup: 1, min_calls: 5, min_time: 0.01s}\n")
    project.makepyfile(test_measured=FAILS_WHEN_MEASURED)
    result = project.runpytest_subprocess("--perf-gate")
    assert result.ret == 3, output_of(result)
    result.assert_outcomes(passed=1)  # the quick run in the parent passed
    report = read_json(project.path / ".perf-gate" / "comparison.json")
    (error,) = report["errors"]
    assert error["benchmark"] == "test_measured.py::test_measured"
    assert "round 1" in error["message"]
    assert "RuntimeError" in error["message"]


ONE_PERF_TEST_FAILS = """
def test_ok(perf):
    perf.latency(sum, [1, 2])


def test_broken(perf):
    perf.latency(sum, [1, 2])
    assert False, "a broken perf test"
"""


@pytest.mark.slow
def test_failed_perf_test_is_an_error_and_blocks_saving(project):
    config(project, "measure: {rounds: 2, warmup: 1, min_calls: 5, min_time: 0.01s}\n")
    project.makepyfile(test_two=ONE_PERF_TEST_FAILS)
    result = project.runpytest_subprocess("--perf-gate", "--perf-gate-save")
    assert result.ret == 1  # the failed test fails the run either way
    report = read_json(project.path / ".perf-gate" / "comparison.json")
    assert "test_two.py::test_broken" in [e["benchmark"] for e in report["errors"]]
    assert not (project.path / "baselines" / "main.json").exists()


MARKED_BENCH_TEST = """
import pytest
from workload import work


@pytest.mark.perf_gate(threshold="3%")
def test_bench_work(benchmark):
    benchmark(work, 50)
"""


def test_config_baseline_and_report_options(project):
    write_files(
        project.path,
        {
            "conf/gate.yaml": "measure: {rounds: 2}\n",
            "test_bench.py": MARKED_BENCH_TEST,
        },
    )
    result = project.runpytest_subprocess(
        "--perf-gate",
        "--perf-gate-save",
        "--perf-gate-config=conf/gate.yaml",
        "--perf-gate-baseline=store/base.json",
        "--perf-gate-report=reports",
        *BENCH_ARGS,
    )
    assert result.ret == 0, output_of(result)
    assert (project.path / "store" / "base.json").is_file()
    assert (project.path / "reports" / "results.json").is_file()
    assert (project.path / "reports" / "comparison.json").is_file()
    assert not (project.path / ".perf-gate").exists()
    assert not (project.path / "baselines").exists()
    saved = read_json(project.path / "store" / "base.json")
    assert saved["settings"]["rounds"] == 2  # the config given on the command line was used
    assert [s["benchmark"] for s in saved["samples"]] == [BENCH_NODE]


# --- the perf object in a measuring worker --------------------------------------------------


def test_perf_in_a_worker_times_many_calls():
    settings = MeasureSettings(rounds=2, warmup=2, min_calls=15, min_time=0.0)
    handle = Perf("t.py::test_x", settings, measuring=True)
    calls = []
    assert handle.latency(lambda: calls.append(1) or "done") == "done"
    measurement = handle.measurements["latency"]
    assert len(measurement.calls) >= 15
    assert measurement.value > 0
    assert not math.isnan(measurement.value)
    assert measurement.first_call is not None
    assert handle.to_json()["latency"]["unit"] == "s"


def test_perf_in_a_worker_reports_the_real_first_call():
    settings = MeasureSettings(rounds=2, warmup=1, min_calls=5, min_time=0.0)
    handle = Perf("t.py::test_x", settings, measuring=True)
    count = []

    def lazily_initialised() -> int:
        if not count:
            time.sleep(0.2)  # e.g. a cache filled on the first call
        count.append(1)
        return len(count)

    handle.latency(lazily_initialised)
    assert handle.measurements["latency"].first_call >= 0.2


@pytest.mark.parametrize(
    ("value", "unit", "problem"),
    [(math.inf, "", "needs a finite number"), (1e308, "s", "beyond any plausible value")],
)
def test_perf_record_refuses_what_a_record_could_not_hold(value, unit, problem):
    handle = Perf("t.py::test_x", MeasureSettings(), measuring=True)
    with pytest.raises(ConfigError) as raised:
        handle.record("size", value, unit=unit)
    assert problem in raised.value.message
    assert "t.py::test_x: perf.record('size'" in raised.value.message
    assert handle.measurements == {}
