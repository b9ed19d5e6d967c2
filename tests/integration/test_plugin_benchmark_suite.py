"""An existing pytest-benchmark suite gated for real (real git repository, real ``pytest
--perf-gate`` subprocesses): plain, ``pedantic`` and parametrized ``benchmark`` tests are
measured in worker rounds, and a slowed function fails exactly the tests that call it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ._support import comparisons_by_key, read_json, run_pytest, write_files

pytestmark = pytest.mark.slow

CONFIG = """
policy: {min_rounds: 3, max_rounds: 6, thresholds: {latency: 50%}}
measure: {rounds: 3}
"""
WORK = """
def slow_part(n):
    return sum(i * i for i in range(n * {factor}))


def other_part(n):
    return sorted(range(n, 0, -1))[0]
"""
TESTS = """
import pytest

from work import other_part, slow_part


def test_plain(benchmark):
    assert benchmark(slow_part, 300) >= 0


def test_pedantic(benchmark):
    result = benchmark.pedantic(slow_part, args=(300,), rounds=20, iterations=5, warmup_rounds=2)
    assert result >= 0


@pytest.mark.parametrize("n", [200, 400])
def test_other(benchmark, n):
    benchmark.extra_info["n"] = n
    assert benchmark(other_part, n) == 1
"""
ARGS = ("--benchmark-max-time=0.05", "-p", "no:cacheprovider")
SLOWED = {"test_suite.py::test_plain", "test_suite.py::test_pedantic"}


def git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", *identity, *args], cwd=repo, capture_output=True, check=True)


def test_a_slowed_function_fails_the_benchmark_tests_that_call_it_and_only_them(tmp_path):
    repo = write_files(
        tmp_path,
        {
            ".gitignore": ".perf-gate/\n__pycache__/\n.benchmarks/\n",
            "pytest.ini": "[pytest]\n",
            "perf-gate.yaml": CONFIG,
            "work.py": WORK.format(factor=1),
            "test_suite.py": TESTS,
        },
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    saved = run_pytest(repo, "--perf-gate", "--perf-gate-save", *ARGS)
    assert saved.ret == 0, saved.output
    samples = {s["benchmark"]: s for s in read_json(repo / "baselines" / "main.json")["samples"]}
    assert set(samples) == {
        "test_suite.py::test_plain",
        "test_suite.py::test_pedantic",
        "test_suite.py::test_other[200]",
        "test_suite.py::test_other[400]",
    }
    assert {s["replication"] for s in samples.values()} == {"process"}

    # (unchanged code passing is tests/integration/test_plugin.py's flow)
    write_files(repo, {"work.py": WORK.format(factor=8)})
    slowed = run_pytest(repo, "--perf-gate", *ARGS)
    assert slowed.ret == 1, slowed.output
    comparisons = comparisons_by_key(read_json(repo / ".perf-gate" / "comparison.json"))
    failing = {name for (name, _), c in comparisons.items() if c["fails"]}
    assert failing == SLOWED, {k: (c["verdict"], c.get("note")) for k, c in comparisons.items()}
    for name in SLOWED:
        assert comparisons[(name, "latency")]["verdict"] == "regression"
        assert comparisons[(name, "latency")]["advisory"] is False
