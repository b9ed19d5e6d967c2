"""Bad run records as a user meets them: ``perf-gate compare``, ``perf-gate run`` and
``pytest --perf-gate`` as subprocesses on an ONNX-only project; and a real onnxruntime profile of
a model that went from 1 to 10 Gemm layers, whose nodes are shorter than the profiler resolves."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.core.types import (
    BenchmarkError,
    Comparison,
    Direction,
    Metric,
    RunRecord,
    Sample,
    Verdict,
)
from gate.diagnose.diff import diff
from gate.measure import BenchmarkPlan
from gate.measure.backends import profile_plan
from gate.store.records import write_record

from ._support import run_cli, run_pytest, write_files, write_matmul_onnx

LATENCY = Metric("latency", "s", Direction.LOWER)
PROJECT = """
models:
  matmul:
    onnx: model.onnx
    input: {shape: [1, 16], dtype: float32}
    variants: [onnxruntime]
    metrics: [latency]
measure: {rounds: 2, warmup: 2, min_calls: 20, min_time: 0.02s, probes: 1}
"""


def one_line_error(output: str, *fragments: str) -> str:
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.startswith("perf-gate: error: ")]
    assert len(lines) == 1, output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = write_files(
        tmp_path / "project", {"perf-gate.yaml": PROJECT, "pytest.ini": "[pytest]\n"}
    )
    write_matmul_onnx(root / "model.onnx")
    (root / "deep.json").write_text("[" * 100_000, encoding="utf-8")
    return root


def test_compare_with_a_deeply_nested_record_exits_2(project: Path) -> None:
    good = project / "good.json"
    write_record(good, RunRecord(samples=(), environment={}))
    for args in (("deep.json", "good.json"), ("good.json", "deep.json")):
        ran = run_cli(project, "compare", *args)
        assert ran.ret == 2, ran.output
        one_line_error(ran.stderr, "deep.json: content: JSON nested too deeply")


def test_pytest_with_a_deeply_nested_baseline_exits_2(project: Path) -> None:
    ran = run_pytest(project, "--perf-gate", "--perf-gate-baseline=deep.json")
    assert ran.ret == 2, ran.output
    one_line_error(ran.output, "deep.json: content: JSON nested too deeply", "perf-gate-save")


def test_run_with_a_dangling_baseline_link_exits_2_instead_of_passing(project: Path) -> None:
    (project / "baselines").mkdir()
    gone = project / ".dvc" / "cache" / "files" / "md5" / "0f" / "343b0931126a20f133d67c2b018a3b"
    (project / "baselines" / "main.json").symlink_to(gone)
    ran = run_cli(project, "run")
    assert ran.ret == 2, ran.output
    one_line_error(ran.stderr, f"a symlink to {gone}, which does not exist", "baseline pull")
    assert not (project / ".perf-gate" / "comparison.json").exists()  # nothing was measured


def test_compare_table_shows_why_a_benchmark_failed(project: Path) -> None:
    values = (1e-3, 1.01e-3, 0.99e-3)
    base = RunRecord(
        samples=(Sample(benchmark="matmul[onnxruntime]", metric=LATENCY, values=values),),
        environment={},
    )
    message = "worker process exited with code 1: RuntimeError: boom"
    failed = RunRecord(
        samples=(),
        environment={},
        errors=(BenchmarkError(benchmark="matmul[onnxruntime]", message=message),),
    )
    write_record(project / "base.json", base)
    write_record(project / "failed.json", failed)
    ran = run_cli(project, "compare", "base.json", "failed.json")
    assert ran.ret == 3
    (row,) = [line for line in ran.stdout.splitlines() if line.startswith("matmul[")]
    assert row.endswith(f"error: failed to measure: {message}")


@pytest.mark.slow
def test_a_real_onnxruntime_profile_of_nine_added_layers_names_their_invocations(
    tmp_path: Path,
) -> None:
    def profiled(layers: int):
        # 128 wide: ten layers are several times one even when a busy neighbour slows one
        # profiling process 2x (16 wide, a run's call overhead hid them)
        model = write_matmul_onnx(tmp_path / f"l{layers}.onnx", width=128, layers=layers)
        plan = BenchmarkPlan(
            name=f"l{layers}",
            model="m",
            variant="onnxruntime",
            root=str(tmp_path),
            onnx=str(model),
            input_shape=(1, 16),
        )
        return profile_plan(plan, 1, tmp_path / f"l{layers}-trace.json", 20)

    base, head = profiled(1), profiled(10)
    assert base.wall is not None
    assert head.wall is not None
    # The rounds are stood in for by the unprofiled time per call of each profiling process.
    change = head.wall / base.wall - 1
    decided = Comparison(
        benchmark="m[onnxruntime]",
        metric=LATENCY,
        verdict=Verdict.REGRESSION,
        baseline=base.wall,
        current=head.wall,
        relative_change=change,
        significant=True,
    )
    diagnosis = diff(decided, base, head)
    assert diagnosis.explained is not None
    counts = {c.operator: (c.base_calls, c.head_calls) for c in diagnosis.changes}
    assert counts["MatMul"] == (1, 10)
    if diagnosis.explained < 0.5:  # nodes under the resolution: the counts must be named
        (note,) = [n for n in diagnosis.notes if "invocations per call changed" in n]
        assert "MatMul 1 -> 10" in note
        assert "Relu 1 -> 10" in note
