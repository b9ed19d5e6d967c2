"""Tests using pytest-benchmark's ``benchmark`` fixture are paired against the base revision
like ``perf`` tests (each round a pytest process per side), and the "timings paired against
base revision" note says so (real git repository, real ``pytest --perf-gate`` subprocesses)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from gate.measure.lockstep import parallel_possible

from ._support import comparisons_by_key, read_json, run_pytest, write_files

pytestmark = pytest.mark.slow

# the tests' arms run side by side where two cores are free
PAIRED_TESTS = "parallel" if parallel_possible(1) else "ab"

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


def test_benchmark_fixture_tests_are_paired_against_the_base_revision(tmp_path: Path) -> None:
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

    benchmark_only = run_pytest(repo, "--perf-gate", "-k", "test_pb", *BENCH_ARGS)
    assert benchmark_only.ret == 0, benchmark_only.output
    assert mode_of(repo, "test_work.py::test_pb") == PAIRED_TESTS
    assert NOTE in benchmark_only.output
    results = read_json(repo / ".perf-gate" / "results.json")
    (sample,) = [s for s in results["samples"] if s["benchmark"] == "test_work.py::test_pb"]
    assert sample["replication"] == "process"

    paired = run_pytest(repo, "--perf-gate", "-k", "test_perf")
    assert paired.ret == 0, paired.output
    assert mode_of(repo, "test_work.py::test_perf") == "ab"  # its arms run one after the other
    assert NOTE in paired.output
