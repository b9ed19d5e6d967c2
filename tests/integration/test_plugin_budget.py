"""A suite that runs out of ``policy.time_budget`` says so (real git repository, real ``pytest
--perf-gate`` runs): in ``ab`` the rows still inconclusive name the budget, in ``stored`` the
rounds stop early (never before 3) with a note giving the cost per test and round."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ._support import read_json, run_pytest, write_files

pytestmark = pytest.mark.slow

WORK = """
def part(n):
    return sum(i * i for i in range(n))
"""
TESTS = """
from work import part


def test_small(benchmark):
    benchmark(part, 200)


def test_large(benchmark):
    benchmark(part, 800)
"""
# A threshold no A/A interval can clear (inconclusive until max_rounds) and a budget spent by
# the first rounds.
CONFIG = """
policy: {min_rounds: 3, max_rounds: 9, round_step: 3, time_budget: 1s, thresholds: {latency: 0.1%}}
measure: {rounds: 5}
"""
ARGS = ("--benchmark-max-time=0.02",)


def git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", *identity, *args], cwd=repo, capture_output=True, check=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = write_files(
        tmp_path,
        {
            ".gitignore": ".perf-gate/\n__pycache__/\n.benchmarks/\n",
            "pytest.ini": "[pytest]\n",
            "perf-gate.yaml": CONFIG,
            "work.py": WORK,
            "test_suite.py": TESTS,
        },
    )
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root


def test_ab_rows_still_inconclusive_name_the_budget(repo: Path) -> None:
    write_files(repo, {"README.md": "an unrelated change\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "head")
    ran = run_pytest(repo, "--perf-gate", "--perf-gate-ab=HEAD~1", *ARGS)
    assert ran.ret == 0, ran.output
    rows = read_json(repo / ".perf-gate" / "comparison.json")["comparisons"]
    timed = [r for r in rows if r["metric"] == "latency"]
    assert len(timed) == 2
    inconclusive = [r for r in timed if r["verdict"] == "inconclusive"]
    assert inconclusive, timed  # a 0.1% threshold leaves A/A undecided
    for row in inconclusive:
        assert "the time budget (policy.time_budget 1s) ran out after 3 rounds" in row["note"]
    assert "time budget (policy.time_budget 1s) ran out" in ran.output


def test_stored_rounds_stop_at_the_budget_after_three(repo: Path) -> None:
    saved = run_pytest(repo, "--perf-gate", "--perf-gate-save", *ARGS)
    assert saved.ret == 0, saved.output
    samples = read_json(repo / "baselines" / "main.json")["samples"]
    assert {len(s["values"]) for s in samples} == {3}  # 3 of the 5 rounds
    notes = read_json(repo / ".perf-gate" / "comparison.json")["notes"]
    (note,) = [n for n in notes if "time budget" in n]
    assert "ran out after 3 of 5 rounds" in note
    assert "per test and round" in note
