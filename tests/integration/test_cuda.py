"""CUDA measurement on a real GPU: variants, GPU memory, fingerprint, parity. Skipped where torch
sees no CUDA device; on a CPU machine the last test checks the clear error instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.config import load_config
from gate.measure.runner import prepare_all

from ._support import (
    comparisons_by_key,
    read_json,
    run_cli,
    samples_by_key,
    write_files,
    write_matmul_onnx,
)

torch = pytest.importorskip("torch")
HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device visible to torch")
pytestmark = pytest.mark.slow

MODEL = """
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 10))


def inputs(batch_size):
    return torch.randn(batch_size, 256, generator=torch.Generator().manual_seed(0))


def batches():
    for index in range(4):
        x = torch.randn(64, 256, generator=torch.Generator().manual_seed(index))
        yield x, torch.zeros(64, dtype=torch.long)
"""


def config(variants: str, extra: str = "") -> str:
    return f"""
models:
  mlp:
    torch: gpumodel:build
    input: gpumodel:inputs
    device: cuda
    variants: {variants}
    metrics: [latency, gpu_memory]
    batch_sizes: [32]
{extra}
policy: {{min_rounds: 3, max_rounds: 3}}
measure: {{rounds: 3, warmup: 10, min_calls: 50, min_time: 0.05s, probes: 1}}
"""


@pytest.mark.gpu
@needs_cuda
def test_gpu_variants_are_measured_with_gpu_memory_and_a_gpu_fingerprint(tmp_path: Path) -> None:
    variants = "[torch, torch-fp16, torch-bf16, torch-cuda-graphs]"
    eval_block = "    eval: {callable: gpumodel:batches}"
    write_files(tmp_path, {"gpumodel.py": MODEL, "perf-gate.yaml": config(variants, eval_block)})
    ran = run_cli(tmp_path, "run", "--save", "--mode", "stored")
    assert ran.ret == 0, ran.output
    record = read_json(tmp_path / ".perf-gate" / "results.json")
    samples = samples_by_key(record)
    for variant in ("torch", "torch-fp16", "torch-bf16", "torch-cuda-graphs"):
        name = f"mlp[{variant}]"
        assert len(samples[(name, "latency")]["values"]) == 3
        assert samples[(name, "gpu_memory.allocated")]["values"][0] > 0
        info = record["info"][name]
        assert info["device"] == "cuda"
        assert {"tf32_matmul", "cudnn_benchmark", "gpu_reserved"} <= set(info)
        assert info["gpu_ms_per_call"] > 0
    environment = record["environment"]
    assert environment["gpu"]
    assert environment["gpu_count"] >= 1
    assert environment["gpus"][0]["driver_version"]
    variants_report = {
        v["variant"]: v for v in read_json(tmp_path / ".perf-gate" / "comparison.json")["variants"]
    }
    graphs = variants_report["torch-cuda-graphs"]["parity"]
    assert graphs["verdict"] == "ok", graphs  # the same kernels, replayed


@pytest.mark.gpu
@needs_cuda
def test_onnxruntime_cuda_binds_its_io_on_the_device(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu (CUDAExecutionProvider) is not installed")
    write_files(
        tmp_path, {"gpumodel.py": MODEL, "perf-gate.yaml": config("[torch, onnxruntime-cuda]")}
    )
    ran = run_cli(tmp_path, "run", "--mode", "stored")
    assert ran.ret == 0, ran.output
    entry = comparisons_by_key(read_json(tmp_path / ".perf-gate" / "comparison.json"))[
        ("mlp[onnxruntime-cuda]", "latency")
    ]
    assert entry["verdict"] == "new"
    assert entry["current"] > 0


@pytest.mark.skipif(HAS_CUDA, reason="checks the message on machines without CUDA")
def test_cuda_requested_without_a_gpu_is_a_clear_error(tmp_path: Path) -> None:
    write_files(tmp_path, {"gpumodel.py": MODEL, "perf-gate.yaml": config("[torch]")})
    ran = run_cli(tmp_path, "run", "--mode", "stored")
    assert ran.ret == 3, ran.output
    report = read_json(tmp_path / ".perf-gate" / "comparison.json")
    messages = " ".join(e["message"] for e in report["errors"])
    assert "CUDA is not available here" in messages
    assert "set 'device: cpu'" in messages
    assert "Traceback" not in ran.output


def test_tensorrt_without_its_provider_is_skipped_with_a_note(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has TensorRT: nothing to skip")
    write_matmul_onnx(tmp_path / "chain.onnx")
    text = """
models:
  chain:
    onnx: chain.onnx
    input: {shape: [1, 16], dtype: float32}
    device: cuda
    variants: [onnxruntime-tensorrt]
    metrics: [latency]
"""
    write_files(tmp_path, {"perf-gate.yaml": text})
    prepared = prepare_all(load_config(tmp_path / "perf-gate.yaml"), None, lambda message: None)
    assert prepared.plans == []
    assert prepared.errors == []
    (note,) = prepared.skipped
    assert note.startswith("chain[onnxruntime-tensorrt] skipped: ")
    assert "TensorrtExecutionProvider" in note
