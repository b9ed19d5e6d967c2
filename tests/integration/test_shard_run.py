"""``perf-gate run --shard I/N`` and ``perf-gate merge`` on real runs: two shards of one commit
measure disjoint models and merge into one record and one report; a shard of another commit is
refused by name."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ._support import read_json, run_cli, write_files, write_matmul_onnx

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow

CONFIG = """
models:
  small:
    onnx: small.onnx
    input: {shape: [1, 16], dtype: float32}
    variants: [onnxruntime]
    metrics: [latency]
  large:
    onnx: large.onnx
    input: {shape: [1, 16], dtype: float32}
    variants: [onnxruntime]
    metrics: [latency]
policy: {timing_mode: stored}
measure: {rounds: 2, warmup: 2, min_calls: 10, min_time: 0.01s, probes: 1}
"""


def git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", *identity, *args], cwd=repo, check=True, capture_output=True)


def test_shards_measure_disjoint_models_and_merge(tmp_path: Path) -> None:
    write_files(tmp_path, {"perf-gate.yaml": CONFIG, ".gitignore": ".perf-gate/\n"})
    write_matmul_onnx(tmp_path / "small.onnx")
    write_matmul_onnx(tmp_path / "large.onnx", layers=3)
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "two models")
    for index in (1, 2):
        ran = run_cli(
            tmp_path, "run", "--shard", f"{index}/2", "--out", f"shards/results-{index}.json"
        )
        assert ran.ret == 0, ran.output
    one, two = (read_json(tmp_path / "shards" / f"results-{i}.json") for i in (1, 2))
    assert {s["benchmark"] for s in one["samples"]} == {"large[onnxruntime]"}
    assert {s["benchmark"] for s in two["samples"]} == {"small[onnxruntime]"}
    assert one["settings"]["shard"] == {"index": 1, "count": 2}
    assert read_json(tmp_path / "shards" / "comparison-1.json")["alpha"] == pytest.approx(0.005)

    merged = run_cli(
        tmp_path,
        "merge",
        "shards/results-1.json",
        "shards/results-2.json",
        "-o",
        "out/results.json",
    )
    assert merged.ret == 0, merged.output
    assert "merged 2 results of commit" in merged.output
    record = read_json(tmp_path / "out" / "results.json")
    assert {s["benchmark"] for s in record["samples"]} == {
        "large[onnxruntime]",
        "small[onnxruntime]",
    }
    report = read_json(tmp_path / "out" / "comparison.json")
    assert report["alpha"] == pytest.approx(0.01)
    assert {c["benchmark"] for c in report["comparisons"]} == {
        "large[onnxruntime]",
        "small[onnxruntime]",
    }
    summary = run_cli(tmp_path, "summary", "--comparison", "out/comparison.json")
    assert summary.ret == 0, summary.output

    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "later")
    again = run_cli(tmp_path, "run", "--shard", "2/2", "--out", "shards/results-3.json")
    assert again.ret == 0, again.output
    refused = run_cli(tmp_path, "merge", "shards/results-1.json", "shards/results-3.json")
    assert refused.ret == 2
    assert "the shards come from different commits" in refused.output
    assert "shards/results-1.json" in refused.output
    assert "shards/results-3.json" in refused.output
