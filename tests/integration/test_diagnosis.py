"""Diagnosis on real git histories: a torch model with one Linear layer more, an ONNX model with a
MatMul more, a slower Python function in a perf test; and profiling failures that must not
change the verdict. Large injected changes only, so the named operator is not up to chance."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ._support import (
    comparisons_by_key,
    read_json,
    run_cli,
    run_pytest,
    write_files,
    write_matmul_onnx,
)

pytestmark = pytest.mark.slow

SETTINGS = """
policy: {min_rounds: 3, max_rounds: 12, round_step: 5, thresholds: {latency: 20%}}
measure: {rounds: 3, warmup: 2, min_calls: 20, min_time: 0.02s, probes: 1}
"""
MODELS = """
models:
  tiny:
    torch: tinymodel:build
    input: tinymodel:inputs
    variants: [torch]
    metrics: [latency]
  chain:
    onnx: chain.onnx
    input: {shape: [1, 16], dtype: float32}
    variants: [onnxruntime]
    metrics: [latency]
"""
TORCH_MODEL = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, extra):
        super().__init__()
        torch.manual_seed(0)
        layers = [nn.Linear(64, 512), nn.ReLU()] + ([nn.Linear(512, 512)] if extra else [])
        self.net = nn.Sequential(*layers, nn.Linear(512, 8))

    def forward(self, x):
        {guard}
        return self.net(x)


def build():
    return Net(extra={extra})


def inputs(batch_size):
    return torch.ones(batch_size, 64)
"""
REFUSES_PROFILER = (
    "if torch.autograd._profiler_enabled():\n"
    "            raise RuntimeError('this model refuses to run under a profiler')"
)


def torch_model(*, extra: bool, guard: str = "pass") -> str:
    return TORCH_MODEL.replace("{extra}", str(extra)).replace("{guard}", guard)


def git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", *identity, *args], cwd=repo, capture_output=True, check=True)


def two_commits(
    repo: Path, base: dict[str, str], head: dict[str, str], onnx: tuple[int, int]
) -> None:
    """A repository whose HEAD~1 holds ``base`` (and a MatMul chain of ``onnx[0]`` layers) and
    HEAD ``head`` (``onnx[1]`` layers)."""
    write_files(repo, {".gitignore": ".perf-gate/\n__pycache__/\n", **base})
    if onnx[0]:
        write_matmul_onnx(repo / "chain.onnx", width=256, layers=onnx[0])
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    write_files(repo, head)
    if onnx[1]:
        write_matmul_onnx(repo / "chain.onnx", width=256, layers=onnx[1])
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "head")


def diagnoses(repo: Path) -> dict[str, dict[str, Any]]:
    comparison = read_json(repo / ".perf-gate" / "comparison.json")
    return {d["benchmark"]: d for d in comparison["diagnosis"]}


def trace_events(repo: Path, relative: str) -> list[dict[str, Any]]:
    data = json.loads((repo / relative).read_text(encoding="utf-8"))
    return data["traceEvents"] if isinstance(data, dict) else data


def test_an_extra_linear_layer_and_an_extra_matmul_are_named(tmp_path: Path) -> None:
    config = MODELS + SETTINGS
    two_commits(
        tmp_path,
        {"perf-gate.yaml": config, "tinymodel.py": torch_model(extra=False)},
        {"tinymodel.py": torch_model(extra=True)},
        onnx=(1, 2),
    )
    ran = run_cli(tmp_path, "run", "--ab", "HEAD~1")
    assert ran.ret == 1, ran.output
    verdicts = comparisons_by_key(read_json(tmp_path / ".perf-gate" / "comparison.json"))
    assert verdicts[("tiny[torch]", "latency")]["verdict"] == "regression"
    assert verdicts[("chain[onnxruntime]", "latency")]["verdict"] == "regression"
    found = diagnoses(tmp_path)

    torch_diagnosis = found["tiny[torch]"]
    assert torch_diagnosis["available"], torch_diagnosis
    assert torch_diagnosis["tool"] == "torch.profiler"
    assert torch_diagnosis["top"][0] in ("aten::addmm", "aten::linear")
    addmm = next(o for o in torch_diagnosis["operators"] if o["operator"] == "aten::addmm")
    assert addmm["head_calls"] == addmm["base_calls"] + 1
    assert any("[512, 512]" in shape for shape in addmm["added_shapes"])
    # The layers whose time in it grew, by path: net.2 is 512 -> 512 wide now (net.3 the old
    # 512 -> 8 one); a layer's own operators did not change, so none switched kernels.
    assert addmm["layers"][0]["layer"] == "net.2"
    assert torch_diagnosis["switched"] == []
    assert torch_diagnosis["measured_change"] > 0
    assert torch_diagnosis["explained"] > 0

    onnx_diagnosis = found["chain[onnxruntime]"]
    assert onnx_diagnosis["available"], onnx_diagnosis
    assert onnx_diagnosis["tool"] == "onnxruntime"
    assert onnx_diagnosis["top"][0] == "MatMul"
    matmul = onnx_diagnosis["operators"][0]
    assert matmul["head_calls"] == matmul["base_calls"] + 1
    assert matmul["nodes"]  # the node names that grew

    for diagnosis in (torch_diagnosis, onnx_diagnosis):
        assert set(diagnosis["traces"]) == {"base", "head"}
        for side, relative in diagnosis["traces"].items():
            assert relative.startswith(".perf-gate/profiles/")
            assert relative.endswith(f"/{side}.json")
            assert any(e.get("ph") == "X" for e in trace_events(tmp_path, relative))
    assert "Diagnosis: where the time went" in ran.stdout
    assert "aten::addmm" in ran.stdout
    assert "MatMul" in ran.stdout


def test_a_slower_python_function_in_a_perf_test_is_named_by_cprofile(tmp_path: Path) -> None:
    work = """
    def tokenize(text):
        return text.split()


    def normalise(words):
        return [w.lower() for w in words]


    def pipeline(text):
        return normalise(tokenize(text))
    """
    slower = textwrap.dedent(work).replace(
        "    return [w.lower() for w in words]",
        "    checksum = 0\n"
        "    for word in words:\n"
        "        for i in range(100):\n"
        "            checksum += i * len(word)\n"
        "    return [w.lower() for w in words if checksum]",
    )
    tests = """
    from work import pipeline, tokenize

    TEXT = "The Quick brown fox " * 50


    def test_pipeline(perf):
        assert perf.latency(pipeline, TEXT)


    def test_tokenize(perf):
        assert perf.latency(tokenize, TEXT)
    """
    two_commits(
        tmp_path,
        {
            # the unchanged test's verdict is not this test's: no rounds beyond the minimum
            "perf-gate.yaml": SETTINGS.replace("max_rounds: 12", "max_rounds: 3"),
            "pytest.ini": "[pytest]\n",
            "work.py": work,
            "test_perf.py": tests,
        },
        {"work.py": slower},
        onnx=(0, 0),
    )
    # --perf-gate-profile: every timed benchmark, the unchanged one too.
    ran = run_pytest(
        tmp_path, "-q", "--perf-gate", "--perf-gate-ab", "HEAD~1", "--perf-gate-profile"
    )
    assert ran.ret == 1, ran.output
    found = diagnoses(tmp_path)
    assert set(found) == {"test_perf.py::test_pipeline", "test_perf.py::test_tokenize"}, ran.output
    pipeline = found["test_perf.py::test_pipeline"]
    assert pipeline["verdict"] == "regression"
    assert pipeline["available"], pipeline
    assert pipeline["tool"] == "cProfile"
    assert pipeline["top"][0] == "normalise (work.py)"
    assert pipeline["operators"][0]["increase"] > 0
    unchanged = found["test_perf.py::test_tokenize"]  # diagnosed whatever its verdict
    assert unchanged["metric"] == "latency"
    assert unchanged["available"], unchanged
    for relative in pipeline["traces"].values():
        names = {e["name"] for e in trace_events(tmp_path, relative) if e["ph"] == "X"}
        assert "normalise (work.py)" in names
    assert "normalise (work.py)" in ran.stdout


def test_profiling_failures_leave_the_verdict_and_say_why(tmp_path: Path) -> None:
    config = MODELS + SETTINGS.replace(
        "thresholds: {latency: 20%}", "thresholds: {latency: 20%}, diagnose: {max_trace: 1kB}"
    )
    guard = REFUSES_PROFILER
    two_commits(
        tmp_path,
        {"perf-gate.yaml": config, "tinymodel.py": torch_model(extra=False, guard=guard)},
        {"tinymodel.py": torch_model(extra=True, guard=guard)},
        onnx=(1, 2),
    )
    ran = run_cli(tmp_path, "run", "--ab", "HEAD~1")
    assert ran.ret == 1, ran.output
    verdicts = comparisons_by_key(read_json(tmp_path / ".perf-gate" / "comparison.json"))
    assert verdicts[("tiny[torch]", "latency")]["verdict"] == "regression"
    assert verdicts[("chain[onnxruntime]", "latency")]["verdict"] == "regression"
    found = diagnoses(tmp_path)
    refused = found["tiny[torch]"]
    assert not refused["available"]
    assert "refuses to run under a profiler" in refused["missing"]
    assert refused["operators"] == []
    too_large = found["chain[onnxruntime]"]
    assert too_large["available"]
    assert too_large["traces"] == {}
    assert any("trace not kept" in note and "max_trace" in note for note in too_large["notes"])
    assert not list((tmp_path / ".perf-gate" / "profiles").rglob("*.json"))
    assert "tiny[torch] latency (regression): diagnosis missing: profiling" in ran.stdout
    assert "Traceback" not in ran.output
