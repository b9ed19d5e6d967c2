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
policy: {min_rounds: 3, max_rounds: 6, thresholds: {latency: 50%}, diagnose: never}
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


def base_commit(root: Path, tests: str) -> Path:
    """A git repository in ``root`` whose one commit holds the suite ``tests``."""
    repo = write_files(
        root,
        {
            ".gitignore": ".perf-gate/\n__pycache__/\n.benchmarks/\n",
            "pytest.ini": "[pytest]\n",
            "perf-gate.yaml": CONFIG,
            "work.py": WORK.format(factor=1),
            "test_suite.py": tests,
        },
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return repo


def test_a_slowed_function_fails_the_benchmark_tests_that_call_it_and_only_them(tmp_path):
    repo = base_commit(tmp_path, TESTS)
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


HEAD_TESTS = """
import sys

from work import other_part, slow_part


def test_plain(benchmark):
    assert benchmark(slow_part, 300) >= 0


def test_fixed_in_head(benchmark):
    assert benchmark(other_part, 5) == 1


def test_session_only(benchmark):
    # a test that cannot run in a worker (it needs what the whole session set up)
    if any(arg.startswith("--perf-gate-worker") for arg in sys.argv):
        raise RuntimeError("needs the session's state")
    assert benchmark(other_part, 5) == 1


def test_new(benchmark):
    assert benchmark(slow_part, 100) >= 0
"""


def test_ab_pairs_what_the_base_has_and_says_why_a_test_is_not_paired(tmp_path):
    base_tests = HEAD_TESTS.replace(
        "other_part, 5) == 1\n\n\ndef test_session", "other_part, 5) == 2\n\n\ndef test_session"
    )
    base_tests = base_tests[: base_tests.index("def test_new")]
    repo = base_commit(tmp_path, base_tests)
    write_files(repo, {"test_suite.py": HEAD_TESTS})
    git(repo, "commit", "-q", "-am", "head")
    result = run_pytest(repo, "--perf-gate", "--perf-gate-ab=HEAD~1", *ARGS)
    assert result.ret == 0, result.output
    rows = {
        name: c
        for (name, metric), c in comparisons_by_key(
            read_json(repo / ".perf-gate" / "comparison.json")
        ).items()
        if metric == "latency"
    }
    notes = {name: c.get("note") or "" for name, c in rows.items()}
    assert rows["test_suite.py::test_plain"]["mode"] in ("ab", "parallel"), notes
    assert rows["test_suite.py::test_new"]["verdict"] == "new", notes
    assert "not paired: the base revision has no such test" in notes["test_suite.py::test_new"]
    fixed = notes["test_suite.py::test_fixed_in_head"]
    assert "not paired: the base revision's test failed" in fixed, notes
    assert "assert 1 == 2" in fixed, fixed
    session_only = rows["test_suite.py::test_session_only"]
    # no stored baseline to compare an in-process value with: new, and said to be advisory
    assert session_only["verdict"] == "new", session_only
    assert "measured only in the test's own process" in session_only["note"]
    assert "needs the session's state" in session_only["note"]


def test_a_worker_makes_the_calls_it_is_given(tmp_path):
    """Every worker after the first makes the calls (iterations x rounds) the first calibrated;
    a test without given calls calibrates its own."""
    repo = write_files(
        tmp_path,
        {"pytest.ini": "[pytest]\n", "work.py": WORK.format(factor=1), "test_suite.py": TESTS},
    )
    calls = tmp_path / "calls.json"
    calls.write_text('{"test_suite.py::test_plain": [7, 13]}', encoding="utf-8")
    out = tmp_path / "out.json"
    result = run_pytest(
        repo,
        f"--perf-gate-worker={out}",
        f"--perf-gate-worker-calls={calls}",
        "--benchmark-max-time=0.02",
        "test_suite.py::test_plain",
        "test_suite.py::test_other",
    )
    assert result.ret == 0, result.output
    document = read_json(out)
    latency = {node: r["latency"] for node, r in document["results"].items()}
    assert latency["test_suite.py::test_plain"]["benchmark_calls"] == [7, 13]
    own = latency["test_suite.py::test_other[200]"]["benchmark_calls"]
    assert own != [7, 13]
    assert own[1] >= 5, own  # pytest-benchmark's min_rounds
    assert set(document["collected"]) == {
        "test_suite.py::test_plain",
        "test_suite.py::test_other[200]",
        "test_suite.py::test_other[400]",
    }
