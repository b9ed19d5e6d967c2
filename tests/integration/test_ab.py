"""The paired timing modes on real git histories: ``ab`` (worktree), ``duet`` (ONNX files),
fallbacks, a base revision that cannot import, and worktree clean-up."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gate.measure.lockstep import parallel_possible

from ._support import (
    SLOW_TORCH_MODULE,
    TINY_TORCH_MODULE,
    comparisons_by_key,
    read_json,
    run_cli,
    run_pytest,
    write_files,
    write_matmul_onnx,
)

# Models' ab rounds run base and head side by side on two cores or more (gate.measure.lockstep).
MODEL_AB = "parallel" if parallel_possible(1) else "ab"

pytestmark = pytest.mark.slow

# Diagnosis (profiling a regression) has its own tests (test_diagnosis.py); here it would only
# add two profiling processes to every regression.
SETTINGS = """
policy: {min_rounds: 3, max_rounds: 3, thresholds: {latency: 20%}, diagnose: never}
measure: {rounds: 3, warmup: 2, min_calls: 20, min_time: 0.02s, probes: 1}
"""
# Tests that expect a regression allow one sequential look more: three rounds on a loaded
# 2-core machine can leave even a 30x slowdown inconclusive (df=2 makes the interval wide).
SEQUENTIAL = (
    "policy: {min_rounds: 3, max_rounds: 8, round_step: 5, thresholds: {latency: 20%}, "
    "diagnose: never}"
)
TORCH_CONFIG = (
    """
models:
  tiny:
    torch: tinymodel:build
    input: tinymodel:inputs
    variants: [torch]
    metrics: [latency]
"""
    + SETTINGS
)
ONNX_CONFIG = (
    """
models:
  chain:
    onnx: chain.onnx
    input: {shape: [1, 16], dtype: float32}
    variants: [onnxruntime]
    metrics: [latency]
"""
    + SETTINGS
)


def sequential(config: str) -> str:
    return config.replace(SETTINGS.strip().splitlines()[0], SEQUENTIAL)


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    completed = subprocess.run(
        ["git", *identity, *args], cwd=repo, capture_output=True, text=True, check=True
    )
    return completed.stdout.strip()


def repo_with(tmp_path: Path, files: dict[str, str]) -> Path:
    write_files(tmp_path, {".gitignore": ".perf-gate/\n__pycache__/\n", **files})
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "base")
    return tmp_path


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)


def worktrees(repo: Path) -> list[str]:
    return [line for line in git(repo, "worktree", "list").splitlines() if line]


def latency(repo: Path, benchmark: str) -> dict:
    comparison = read_json(repo / ".perf-gate" / "comparison.json")
    return comparisons_by_key(comparison)[(benchmark, "latency")]


def test_ab_catches_a_ten_times_slower_commit_and_cleans_up(tmp_path: Path) -> None:
    repo = repo_with(
        tmp_path, {"perf-gate.yaml": sequential(TORCH_CONFIG), "tinymodel.py": TINY_TORCH_MODULE}
    )
    saved = run_cli(repo, "run", "--save")
    assert saved.ret == 0, saved.output
    write_files(repo, {"tinymodel.py": SLOW_TORCH_MODULE})
    commit_all(repo, "slower")
    ran = run_cli(repo, "run")
    assert ran.ret == 1, ran.output
    entry = latency(repo, "tiny[torch]")
    assert entry["verdict"] == "regression"
    assert entry["mode"] == MODEL_AB
    assert entry["n_current"] == entry["n_baseline"] in (3, 8)
    assert entry["relative_change"] > 1.0
    assert entry["mde"] is not None
    assert "paired against base revision" in ran.output
    assert len(worktrees(repo)) == 1  # the temporary worktree is gone


def test_ab_same_code_is_not_a_regression(tmp_path: Path) -> None:
    repo = repo_with(tmp_path, {"perf-gate.yaml": TORCH_CONFIG, "tinymodel.py": TINY_TORCH_MODULE})
    assert run_cli(repo, "run", "--save").ret == 0
    write_files(repo, {"README.md": "docs only\n"})
    commit_all(repo, "docs")
    ran = run_cli(repo, "run")
    assert ran.ret == 0, ran.output
    entry = latency(repo, "tiny[torch]")
    assert entry["mode"] == MODEL_AB
    assert entry["verdict"] in ("unchanged", "inconclusive")


def test_duet_pairs_two_onnx_files_in_one_process(tmp_path: Path) -> None:
    repo = tmp_path
    write_matmul_onnx(repo / "chain.onnx", width=32, layers=1)
    repo_with(repo, {"perf-gate.yaml": sequential(ONNX_CONFIG)})
    assert run_cli(repo, "run", "--save").ret == 0
    write_matmul_onnx(repo / "chain.onnx", width=512, layers=6)  # far more work per call
    commit_all(repo, "bigger model")
    ran = run_cli(repo, "run")
    assert ran.ret == 1, ran.output
    entry = latency(repo, "chain[onnxruntime]")
    assert entry["mode"] == "duet"
    assert entry["verdict"] == "regression"


def test_explicit_base_ref_without_a_baseline(tmp_path: Path) -> None:
    repo = repo_with(
        tmp_path, {"perf-gate.yaml": sequential(TORCH_CONFIG), "tinymodel.py": TINY_TORCH_MODULE}
    )
    write_files(repo, {"tinymodel.py": SLOW_TORCH_MODULE})
    commit_all(repo, "slower")
    ran = run_cli(repo, "run", "--ab", "HEAD~1")
    assert ran.ret == 1, ran.output
    assert latency(repo, "tiny[torch]")["verdict"] == "regression"


def test_missing_base_revision_falls_back_to_stored_and_names_the_fix(tmp_path: Path) -> None:
    repo = repo_with(tmp_path, {"perf-gate.yaml": TORCH_CONFIG, "tinymodel.py": TINY_TORCH_MODULE})
    assert run_cli(repo, "run", "--save").ret == 0
    commit_all(repo, "next")
    ran = run_cli(repo, "run", "--ab", "0123456789abcdef0123456789abcdef01234567")
    assert ran.ret in (0, 1), ran.output
    assert "is not in this clone" in ran.output
    assert "timings compared as stored" in ran.output
    assert latency(repo, "tiny[torch]")["mode"] == "stored"


def test_base_revision_that_cannot_import_is_an_error_not_a_pass(tmp_path: Path) -> None:
    broken = "raise ImportError('this revision is broken')\n"
    repo = repo_with(tmp_path, {"perf-gate.yaml": TORCH_CONFIG, "tinymodel.py": broken})
    write_files(repo, {"tinymodel.py": TINY_TORCH_MODULE})
    commit_all(repo, "fixed")
    ran = run_cli(repo, "run", "--ab", "HEAD~1")
    assert ran.ret == 3, ran.output
    comparison = read_json(repo / ".perf-gate" / "comparison.json")
    errors = [c for c in comparison["comparisons"] if c["verdict"] == "error"]
    assert errors
    assert any("base revision" in c["note"] for c in errors)
    assert len(worktrees(repo)) == 1


def test_worktree_is_removed_when_a_worker_crashes(tmp_path: Path) -> None:
    crashing = TINY_TORCH_MODULE + "\nimport os\n\ndef crash(batch_size):\n    os._exit(9)\n"
    config = TORCH_CONFIG.replace("tinymodel:inputs", "tinymodel:crash")
    repo = repo_with(tmp_path, {"perf-gate.yaml": config, "tinymodel.py": crashing})
    write_files(repo, {"README.md": "x\n"})
    commit_all(repo, "next")
    ran = run_cli(repo, "run", "--ab", "HEAD~1")
    assert ran.ret == 3, ran.output
    assert "Traceback" not in ran.output
    assert len(worktrees(repo)) == 1


def test_calibrate_records_the_spread_and_runs_warn_about_unresolvable_thresholds(
    tmp_path: Path,
) -> None:
    repo = repo_with(tmp_path, {"perf-gate.yaml": ONNX_CONFIG})
    write_matmul_onnx(repo / "chain.onnx", width=32, layers=1)
    ran = run_cli(repo, "calibrate", "--rounds", "3")
    assert ran.ret == 0, ran.output
    assert "chain[onnxruntime]" in ran.stdout
    assert "n@5%" in ran.stdout
    stored = read_json(repo / "baselines" / "main.calibration.json")
    (entries,) = stored["environments"].values()
    entry = entries["chain[onnxruntime] latency"]
    assert entry["mode"] == "duet"
    assert entry["rounds"] == 3
    assert entry["sd"] >= 0.0
    # a threshold far below the measured spread cannot be resolved in max_rounds rounds
    config = (repo / "perf-gate.yaml").read_text(encoding="utf-8")
    (repo / "perf-gate.yaml").write_text(
        config.replace("thresholds: {latency: 20%}", "thresholds: {latency: 0.001%}"),
        encoding="utf-8",
    )
    gated = run_cli(repo, "run", "--mode", "stored")
    assert gated.ret == 0, gated.output
    assert "paired rounds on this runner" in gated.output


def test_calibrate_needs_rounds(tmp_path: Path) -> None:
    repo = repo_with(tmp_path, {"perf-gate.yaml": TORCH_CONFIG, "tinymodel.py": TINY_TORCH_MODULE})
    ran = run_cli(repo, "calibrate", "--rounds", "1")
    assert ran.ret == 2
    assert "at least 3 rounds" in ran.stderr


PERF_TEST = """
import work


def test_work(perf):
    assert perf.latency(work.compute) > 0
"""
FAST = "def compute():\n    return sum(range(200))\n"
SLOW = "def compute():\n    return sum(range(200)) + sum(range(20_000))\n"


def perf_test_history(tmp_path: Path, config: str, head_work: str) -> Path:
    """A repository whose perf test times FAST in HEAD~1 and ``head_work`` in HEAD."""
    files = {"pytest.ini": "[pytest]\n", "perf-gate.yaml": config, "test_work.py": PERF_TEST}
    repo = repo_with(tmp_path, {**files, "work.py": FAST})
    write_files(repo, {"work.py": head_work})
    commit_all(repo, "work.py changed")
    return repo


def test_perf_tests_are_paired_against_the_base_revision(tmp_path: Path) -> None:
    config = SEQUENTIAL + "\n"
    config += "measure: {warmup: 2, min_calls: 50, min_time: 0.02s}\n"
    repo = perf_test_history(tmp_path, config, SLOW)
    ran = run_pytest(repo, "--perf-gate", "--perf-gate-ab", "HEAD~1")
    assert ran.ret == 1, ran.output
    entry = latency(repo, "test_work.py::test_work")
    # a perf test's calls are not fixed, so its arms run one after the other: ab, as reported
    assert entry["mode"] == "ab"
    assert entry["verdict"] == "regression"
    assert entry["n_baseline"] == entry["n_current"] in (3, 8)
    assert len(worktrees(repo)) == 1


# Every process that imports it runs four times as long as the one before: no two rounds agree,
# so the paired ratios stay far apart and the verdict stays inconclusive, whatever the machine.
DOUBLING = """
from pathlib import Path

_RUNS = Path(__file__).parent / ".perf-gate" / "runs"
_RUNS.parent.mkdir(exist_ok=True)
_RUNS.write_text(_RUNS.read_text() + "x" if _RUNS.exists() else "x")
SIZE = 50 * 4 ** len(_RUNS.read_text())


def compute():
    return sum(range(SIZE))
"""


def test_perf_tests_still_inconclusive_get_more_paired_rounds(tmp_path: Path) -> None:
    config = "policy: {min_rounds: 2, max_rounds: 4, round_step: 2, thresholds: {latency: 20%}, "
    config += "diagnose: never}\n"
    config += "measure: {warmup: 2, min_calls: 20, min_time: 0.01s}\n"
    repo = perf_test_history(tmp_path, config, DOUBLING)
    ran = run_pytest(repo, "--perf-gate", "--perf-gate-ab", "HEAD~1")
    assert ran.ret in (0, 1), ran.output
    entry = latency(repo, "test_work.py::test_work")
    assert entry["mode"] == "ab"  # a perf test's arms run one after the other
    # inconclusive after min_rounds (2), so round_step (2) more, and no more than max_rounds
    assert entry["n_baseline"] == entry["n_current"] == 4, (entry, ran.output)
    results = read_json(repo / ".perf-gate" / "results.json")
    (sample,) = [s for s in results["samples"] if s["benchmark"] == "test_work.py::test_work"]
    assert len(sample["values"]) == 4
    assert sample["values"] == sorted(sample["values"])  # each round slower than the last
