"""The repository's dvc.yaml ``perf`` stage, run with real DVC on a tiny project in tmp_path:
``dvc repro``, ``dvc metrics diff`` and ``dvc exp run`` + ``perf-gate compare``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ._support import clean_env, read_json, write_matmul_onnx

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
models:
  chain:
    onnx: chain.onnx
    input: {shape: [1, 16], dtype: float32}
    variants: [onnxruntime]
    metrics: [latency]
policy: {timing_mode: stored}
measure: {rounds: 3, warmup: 2, min_calls: 20, min_time: 0.02s, probes: 1}
"""

if not (BIN / "dvc").is_file():  # pragma: no cover - `make test` installs the dvc extra
    pytest.skip("dvc is not installed in this environment", allow_module_level=True)


def sh(cwd: Path, *command: str) -> str:
    path = f"{BIN}:{clean_env()['PATH']}"  # dvc runs `perf-gate` from the stage's cmd
    done = subprocess.run(
        list(command),
        cwd=cwd,
        env=clean_env(DVC_NO_ANALYTICS="1", PATH=path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    return done.stdout


def git(repo: Path, *args: str) -> str:
    return sh(repo, "git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args)


def repo_stage() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["perf"]


def test_the_repository_stage_runs_the_gate_on_the_example() -> None:
    stage = repo_stage()
    assert stage["cmd"].startswith("perf-gate run --config examples/digits/perf-gate.yaml")
    assert stage["cmd"].endswith("--out .perf-gate/results.json")
    assert stage["metrics"] == [".perf-gate/results.json"]
    for dep in stage["deps"]:
        assert (ROOT / dep).is_file(), dep
    assert (ROOT / ".dvc" / "config").is_file()  # the repository is a DVC repository


def test_dvc_repro_metrics_diff_and_experiments(tmp_path: Path) -> None:
    stage = repo_stage()
    stage["cmd"] = stage["cmd"].replace("examples/digits/perf-gate.yaml", "perf-gate.yaml")
    stage["deps"] = ["chain.onnx", "perf-gate.yaml"]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"perf": stage}}))
    (tmp_path / "perf-gate.yaml").write_text(CONFIG)
    (tmp_path / ".gitignore").write_text(".perf-gate/\n")
    write_matmul_onnx(tmp_path / "chain.onnx")
    git(tmp_path, "init", "-q", "-b", "main")
    sh(tmp_path, str(BIN / "dvc"), "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "init")

    sh(tmp_path, str(BIN / "dvc"), "repro")
    record = read_json(tmp_path / ".perf-gate" / "results.json")
    assert set(record["summary"]) == {"chain[onnxruntime]"}
    git(tmp_path, "add", "dvc.lock")
    git(tmp_path, "commit", "-q", "-m", "measured")
    assert "up to date" in sh(tmp_path, str(BIN / "dvc"), "status")

    write_matmul_onnx(tmp_path / "chain.onnx", width=256, layers=4)
    assert "modified:" in sh(tmp_path, str(BIN / "dvc"), "status")
    sh(tmp_path, str(BIN / "dvc"), "repro")
    diff = json.loads(sh(tmp_path, str(BIN / "dvc"), "metrics", "diff", "--json"))
    (changes,) = diff.values()
    latency = changes["summary.chain[onnxruntime].latency"]
    assert latency["new"] > latency["old"] > 0
    assert changes["files.chain.onnx"]["old"] != changes["files.chain.onnx"]["new"]
    git(tmp_path, "commit", "-q", "-am", "bigger model")

    (tmp_path / "perf-gate.yaml").write_text(CONFIG.replace("min_calls: 20", "min_calls: 30"))
    sh(tmp_path, str(BIN / "dvc"), "exp", "run", "-n", "more-calls")
    sh(
        tmp_path,
        *(str(BIN / "dvc"), "get", ".", ".perf-gate/results.json"),
        *("--rev", "more-calls", "-o", "experiment.json"),
    )
    assert read_json(tmp_path / "experiment.json")["settings"]["min_calls"] == 30
    sh(
        tmp_path,
        str(BIN / "dvc"),
        "get",
        ".",
        ".perf-gate/results.json",
        "--rev",
        "main",
        "-o",
        "head.json",
    )
    assert read_json(tmp_path / "head.json")["settings"]["min_calls"] == 20  # the committed run
    compared = subprocess.run(
        [str(BIN / "perf-gate"), "compare", "head.json", "experiment.json", "--format", "json"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert compared.returncode in (0, 1), compared.stderr  # a verdict, whichever it is
    (entry,) = json.loads(compared.stdout)["comparisons"]
    assert (entry["benchmark"], entry["metric"], entry["mode"]) == (
        "chain[onnxruntime]",
        "latency",
        "stored",
    )
