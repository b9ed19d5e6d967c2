"""The CPU-side parts of GPU support: device config, the GPU fingerprint and state readings,
launch-bound notes, and the GPU memory metric. (tests/gpu runs the rest where CUDA exists.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.config import load_config
from gate.core.types import Direction, Metric, RunRecord, Sample
from gate.decide.limits import launch_bound_notes
from gate.errors import ConfigError
from gate.measure.environment import (
    GPU_STATE_FIELDS,
    environment_key,
    gpu_state_changes,
    parse_gpu_query,
)
from gate.units import budget_unit

MODEL = """
models:
  m:
    torch: mod:build
    input: {{shape: [1, 8]}}
{extra}
"""


def config_with(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "perf-gate.yaml"
    path.write_text(MODEL.format(extra=extra), encoding="utf-8")
    return path


def test_cuda_device_defaults_to_gpu_variants(tmp_path: Path) -> None:
    config = load_config(config_with(tmp_path, "    device: cuda:1"))
    model = config.models[0]
    assert model.device == "cuda:1"
    assert model.variants == ("torch", "onnxruntime-cuda")


def test_cpu_is_the_default_device(tmp_path: Path) -> None:
    model = load_config(config_with(tmp_path, "")).models[0]
    assert model.device == "cpu"
    assert model.variants == ("torch", "onnxruntime")


@pytest.mark.parametrize(
    ("extra", "key", "fix"),
    [
        ("    device: gpu", "models.m.device", "expected cpu, cuda or cuda:N"),
        ("    variants: [torch-fp16]", "models.m.variants[0]", "add 'device: cuda'"),
        ("    variants: [torch, torch-cuda-graphs]", "models.m.variants[1]", "GPU only"),
        (
            "    device: cuda\n    variants: [torch-int8]",
            "models.m.variants[0]",
            "on a GPU use torch-fp16 or torch-bf16",
        ),
        (
            "    device: cuda\n    variants: [onnxruntime]",
            "models.m.variants[0]",
            "on a GPU use onnxruntime-cuda",
        ),
        ("    metrics: [latency, gpu_memory]", "models.m.metrics", "needs 'device: cuda'"),
    ],
)
def test_device_mistakes_name_the_key_and_the_fix(
    tmp_path: Path, extra: str, key: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(config_with(tmp_path, extra))
    message = raised.value.message
    assert message.startswith("perf-gate.yaml: ")
    assert key in message
    assert fix in message


def test_gpu_memory_is_a_byte_metric_with_its_own_threshold(tmp_path: Path) -> None:
    config = load_config(config_with(tmp_path, "    device: cuda\n    metrics: [gpu_memory]"))
    assert budget_unit("gpu_memory.allocated") == "B"
    threshold = config.policy.threshold_for("m[torch]", "gpu_memory")
    assert threshold.relative
    assert threshold.value == pytest.approx(0.02)


NVIDIA_SMI = (
    "NVIDIA H200, 570.86.15, 143771, 700.00, Disabled, 1980, 2619, 34, 0x0000000000000000\n"
)


def test_nvidia_smi_lines_become_one_dict_per_gpu() -> None:
    fields = ("name", "driver_version", "memory.total", "power.limit", "mig.mode.current")
    gpus = parse_gpu_query(NVIDIA_SMI * 2 + "garbage\n", fields + GPU_STATE_FIELDS)
    assert len(gpus) == 2
    assert gpus[0]["name"] == "NVIDIA H200"
    assert gpus[0]["mig.mode.current"] == "Disabled"
    assert gpus[1]["temperature.gpu"] == "34"


def test_gpu_and_cpu_runners_get_different_environment_keys() -> None:
    cpu = {"os": "Linux 6", "machine": "x86_64", "cpu_model": "Xeon", "gpu": None}
    gpu = dict(cpu, gpu="NVIDIA H200")
    assert environment_key(cpu) != environment_key(gpu)


def state(sm: str, temp: str, throttle: str = "0x0000000000000000") -> list[dict[str, str]]:
    return parse_gpu_query(f"{sm}, 2619, {temp}, {throttle}\n", GPU_STATE_FIELDS)


def test_clock_and_thermal_changes_are_flagged() -> None:
    (note,) = gpu_state_changes(state("1980", "35"), state("1755", "61", "0x0000000000000004"))
    assert "SM clock 1980 -> 1755 MHz" in note
    assert "temperature 35 -> 61 C" in note
    assert "throttle" in note


def test_a_steady_or_idle_gpu_is_not_flagged() -> None:
    assert gpu_state_changes(state("1980", "35"), state("1975", "40")) == []
    assert gpu_state_changes(state("1980", "35"), state("1980", "36", "0x0000000000000001")) == []
    assert gpu_state_changes([], []) == []


LATENCY = Metric("latency", "s", Direction.LOWER)


def record(values: tuple[float, ...], gpu_ms: float, wall_ms: float) -> RunRecord:
    return RunRecord(
        samples=(Sample(benchmark="m[torch]", metric=LATENCY, values=values),),
        environment={},
        info={"m[torch]": {"gpu_ms_per_call": gpu_ms, "wall_ms_per_call": wall_ms}},
    )


def test_launch_bound_models_get_the_cuda_graphs_advice() -> None:
    (note,) = launch_bound_notes(record((1.0e-4, 1.3e-4, 0.9e-4, 1.2e-4), 0.02, 0.1))
    assert "m[torch] looks launch-bound" in note
    assert "busy 20%" in note
    assert "torch-cuda-graphs" in note


def test_compute_bound_or_steady_models_get_no_advice() -> None:
    assert launch_bound_notes(record((1.0e-3, 1.001e-3, 0.999e-3), 0.95, 1.0)) == []
    assert launch_bound_notes(record((1.0e-4, 1.3e-4, 0.9e-4), 0.95, 1.0)) == []
    assert launch_bound_notes(record((1.0e-4, 1.0001e-4, 1.0e-4), 0.02, 0.1)) == []
