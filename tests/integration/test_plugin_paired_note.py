"""The "timings paired against base revision" note appears only when a row was paired: a
pytest-benchmark test runs in process and stays ``stored`` even when a base revision exists
(real git repository, real ``pytest --perf-gate`` subprocesses)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from ._support import comparisons_by_key, read_json, run_pytest, write_files

pytestmark = pytest.mark.slow

CONFIG = """
policy: {min_rounds: 3, max_rounds: 3, thresholds: {default: 300%, latency: 300%}}
measure: {rounds: 3, warmup: 1, min_calls: 5, min_time: 0.01s}
"""
TESTS = """
def work():
    return sum(range(200))


def test_pb(benchmark):
    assert benchmark(work) == 19900


def test_perf(perf):
    assert perf.latency(work) == 19900
"""
BENCH_ARGS = ("--benchmark-max-time=0.05",)
NOTE = "timings paired against base revision"


def git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", *identity, *args], cwd=repo, capture_output=True, check=True)


def mode_of(repo: Path, benchmark: str) -> Any:
    comparisons = comparisons_by_key(read_json(repo / ".perf-gate" / "comparison.json"))
    return comparisons[(benchmark, "latency")]["mode"]


def test_the_paired_note_needs_a_paired_row(tmp_path: Path) -> None:
    repo = write_files(
        tmp_path,
        {
            ".gitignore": ".perf-gate/\n__pycache__/\n",
            "pytest.ini": "[pytest]\n",
            "perf-gate.yaml": CONFIG,
            "test_work.py": TESTS,
        },
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    saved = run_pytest(repo, "--perf-gate", "--perf-gate-save", *BENCH_ARGS)
    assert saved.ret == 0, saved.output
    # A dirty tree at the baseline's commit: a base revision exists for paired timing.
    write_files(repo, {"test_work.py": TESTS + "\n# changed\n"})

    only_in_process = run_pytest(repo, "--perf-gate", "-k", "test_pb", *BENCH_ARGS)
    assert only_in_process.ret == 0, only_in_process.output
    assert mode_of(repo, "test_work.py::test_pb") == "stored"
    assert NOTE not in only_in_process.output

    paired = run_pytest(repo, "--perf-gate", "-k", "test_perf")
    assert paired.ret == 0, paired.output
    assert mode_of(repo, "test_work.py::test_perf") == "ab"
    assert NOTE in paired.output
