"""Runner.measure end to end: real worker processes, real rounds and probes, failures isolated.

One module-scoped measurement (2 rounds, 1 probe) of three benchmarks from a real config: a tiny
torch model as ``torch`` and ``onnxruntime``, plus a model whose forward raises. Each test reads
that one result.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gate.config import load_config
from gate.core.types import BenchmarkError, Replication
from gate.measure import BenchmarkPlan
from gate.measure.runner import Runner, prepare_all

from ._support import write_files, write_matmul_onnx

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.slow

MODELS = """
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


class Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(16, 4)

    def forward(self, x):
        raise RuntimeError("deliberately broken forward")


def build_broken():
    return Broken()
"""

CRASH = """
import os

os._exit(7)  # the worker process dies while importing the inputs


def inputs(batch_size):
    raise AssertionError("never reached")
"""

CONFIG = """
models:
  tiny:
    torch: pg_runner_models:build
    input: {shape: [1, 16], dtype: float32}
    variants: [torch, onnxruntime]
    metrics: [latency, throughput, memory, cold_start]
    batch_sizes: [1, 4]
  rate:
    torch: pg_runner_models:build
    input: {shape: [1, 16]}
    variants: [onnxruntime]
    metrics: [throughput]
    batch_sizes: [1, 4]
  broken:
    torch: pg_runner_models:build_broken
    input: {shape: [1, 16]}
    variants: [torch]
    metrics: [latency, memory]
measure: {rounds: 2, warmup: 2, min_calls: 20, min_time: 0.02s, probes: 1, seed: 3}
"""

GOOD = ("tiny[torch]", "tiny[onnxruntime]")
# throughput at the first batch size is the latency measurement again: it is not sampled twice
ALL_METRICS = {
    "latency",
    "throughput@4",
    "memory.peak",
    "memory.load",
    "memory.inference",
    "model_size",
    "cold_start",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_files(
        tmp_path_factory.mktemp("runner"),
        {"pg_runner_models.py": MODELS, "pg_runner_crash.py": CRASH, "perf-gate.yaml": CONFIG},
    )
    yield root
    while str(root) in sys.path:
        sys.path.remove(str(root))
    sys.modules.pop("pg_runner_models", None)


@pytest.fixture(scope="module")
def prepared(project):
    config = load_config(project / "perf-gate.yaml")
    plans, errors, skipped = prepare_all(config, None, lambda message: None)
    assert skipped == []
    assert errors == []
    return config, plans


@pytest.fixture(scope="module")
def measured(project, prepared):
    config, plans = prepared
    messages: list[str] = []
    runner = Runner(config.measure, config.root, config.report_dir / "work", messages.append)
    return runner.measure(plans), messages


def sample(measured_result, benchmark: str, metric: str):
    matches = [
        s for s in measured_result.samples if s.benchmark == benchmark and s.metric.name == metric
    ]
    assert len(matches) == 1, f"{benchmark} {metric}: {len(matches)} samples"
    return matches[0]


def test_plans_come_from_the_config_with_onnx_prepared(prepared):
    _, plans = prepared
    assert [p.name for p in plans] == [
        "tiny[torch]",
        "tiny[onnxruntime]",
        "rate[onnxruntime]",
        "broken[torch]",
    ]
    onnx = next(p for p in plans if p.variant == "onnxruntime").onnx
    assert onnx is not None
    assert Path(onnx).is_file()


def test_every_metric_is_sampled_for_the_working_variants(measured):
    result, _ = measured
    for benchmark in GOOD:
        names = {s.metric.name for s in result.samples if s.benchmark == benchmark}
        assert names == ALL_METRICS


@pytest.mark.parametrize("name", GOOD)
@pytest.mark.parametrize("metric", ["latency", "throughput@4"])
def test_round_metrics_have_one_value_per_round(measured, name, metric):
    result, _ = measured
    found = sample(result, name, metric)
    assert len(found.values) == 2
    assert all(v > 0 for v in found.values)
    assert found.replication is Replication.PROCESS


@pytest.mark.parametrize("name", GOOD)
@pytest.mark.parametrize(
    "metric", ["memory.peak", "memory.load", "memory.inference", "model_size", "cold_start"]
)
def test_probe_metrics_have_one_value_per_probe(measured, name, metric):
    result, _ = measured
    found = sample(result, name, metric)
    assert len(found.values) == 1
    assert all(v >= 0 for v in found.values)


@pytest.mark.parametrize("name", GOOD)
def test_latency_keeps_calls_and_first_calls_of_every_round(measured, name):
    result, _ = measured
    latency = sample(result, name, "latency")
    assert len(latency.first_calls) == 2
    assert len(latency.calls) >= 2 * 20  # min_calls per round
    assert all(c > 0 for c in latency.calls)


def test_throughput_only_model_samples_every_batch_size(measured):
    result, _ = measured
    names = {s.metric.name for s in result.samples if s.benchmark == "rate[onnxruntime]"}
    assert names == {"throughput@1", "throughput@4"}  # no probes: no memory or cold start
    for metric in names:
        found = sample(result, "rate[onnxruntime]", metric)
        assert len(found.values) == 2
        assert found.metric.unit == "items/s"
        assert found.metric.direction.value == "higher"


@pytest.mark.parametrize("name", GOOD)
def test_memory_samples_are_consistent(measured, name):
    result, _ = measured
    peak = sample(result, name, "memory.peak").values[0]
    load = sample(result, name, "memory.load").values[0]
    inference = sample(result, name, "memory.inference").values[0]
    assert peak > 10 * 2**20  # a Python process with a runtime loaded
    # both peaks count from the RSS after the imports; inference includes loading
    assert 0 <= load <= inference < peak
    assert sample(result, name, "memory.inference").metric.unit == "B"
    assert sample(result, name, "memory.inference").metric.direction.value == "lower"
    assert result.info[name]["memory_peak_since"] == "imports (VmHWM reset after them)"


def test_model_size_is_the_real_artifact_size(measured, prepared):
    from gate.measure.backends.torch_backend import module_size_bytes

    result, _ = measured
    _, plans = prepared
    onnx = Path(next(p for p in plans if p.variant == "onnxruntime").onnx)
    assert sample(result, "tiny[onnxruntime]", "model_size").values == (onnx.stat().st_size,)
    sys.path.insert(0, str(plans[0].root))
    import pg_runner_models

    expected = module_size_bytes(pg_runner_models.build().eval())
    assert sample(result, "tiny[torch]", "model_size").values == (expected,)


def test_info_describes_each_measured_variant(measured):
    result, _ = measured
    assert set(result.info) == {*GOOD, "rate[onnxruntime]"}
    torch_info = result.info["tiny[torch]"]
    assert torch_info["model"] == "tiny"
    assert torch_info["variant"] == "torch"
    assert torch_info["threads"] == 1
    assert torch_info["batch_sizes"] == [1, 4]
    assert torch_info["params"] == 16 * 32 + 32 + 32 * 4 + 4
    assert torch_info["import_s"] > 0
    onnx_info = result.info["tiny[onnxruntime]"]
    assert onnx_info["model_size"] > 0
    assert onnx_info["params"] == torch_info["params"]  # the initializers are the weights


def test_info_records_the_thread_settings_the_workers_reported(measured):
    result, _ = measured
    one = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    assert result.info["tiny[torch]"]["threading"] == {
        "torch_intra_op_threads": 1,
        "torch_inter_op_threads": 1,
        **one,
    }
    for name in ("tiny[onnxruntime]", "rate[onnxruntime]"):  # rate has no probes: from a round
        assert result.info[name]["threading"] == {
            "ort_intra_op_threads": 1,
            "ort_inter_op_threads": 1,
            "ort_execution_mode": "ORT_SEQUENTIAL",
            **one,
        }


def test_a_model_that_raises_in_forward_is_an_error_for_that_benchmark_only(measured):
    result, _ = measured
    assert len(result.errors) == 1
    (error,) = result.errors
    assert isinstance(error, BenchmarkError)
    assert error.benchmark == "broken[torch]"
    assert error.message.startswith("round 1: RuntimeError: deliberately broken forward")
    assert "pg_runner_models.py" in error.message
    assert not [s for s in result.samples if s.benchmark == "broken[torch]"]
    assert "broken[torch]" not in result.info


def test_progress_reports_rounds_and_probes(measured):
    _, messages = measured
    assert any(m.startswith("round 1/2") for m in messages)
    assert any(m.startswith("round 2/2") for m in messages)
    # the broken model failed in round 1 and is not measured again
    (first,) = [m for m in messages if m.startswith("round 1/2: ")]
    (second,) = [m for m in messages if m.startswith("round 2/2: ")]
    assert first.count("[") == 4
    assert "broken[torch]" in first
    assert second.count("[") == 3
    assert "broken[torch]" not in second
    assert any(m.startswith("probes: 2 fresh") for m in messages)
    assert [m for m in messages if m.startswith("probe 1/1: ")]


def test_a_crashing_worker_fails_its_benchmarks_with_the_exit_code(project, tmp_path):
    config = load_config(project / "perf-gate.yaml")
    plan = BenchmarkPlan(
        name="crash[onnxruntime]",
        model="crash",
        variant="onnxruntime",
        root=str(project),
        onnx=str(write_matmul_onnx(tmp_path / "crash.onnx")),
        input_callable="pg_runner_crash:inputs",
        metrics=("latency", "memory"),
    )
    result = Runner(config.measure, project, tmp_path / "work").measure([plan])
    assert result.samples == []
    (error,) = result.errors
    assert error.benchmark == "crash[onnxruntime]"
    assert error.message.startswith("round 1: ")
    assert "ended with exit code 7" in error.message
    assert not list((tmp_path / "work").iterdir())  # scratch files are cleaned up
