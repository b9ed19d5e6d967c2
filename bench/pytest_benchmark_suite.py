"""An existing pytest-benchmark suite gated by ``pytest --perf-gate``: false alarms, catches, cost.

The suite is made here, in a temporary git repository: ``work.py`` holds a dozen small
functions (sorting, JSON, regex, hashing, string and dict work...) and ``hot(n)``, whose work
is ``n * FACTOR`` loop iterations; ``test_suite.py`` holds ``--tests`` tests (default 60) that
use pytest-benchmark's ``benchmark`` fixture as its documentation shows (plain calls,
``pedantic``, parametrized, ``extra_info``, groups). A known subset (every fifth test) calls
``hot`` and nothing else, so slowing ``hot`` by X% slows exactly those tests by about X%.

The base commit has ``FACTOR = 1.0``. Each trial resets the branch ``head`` to it and commits
one change: a README line (A/A), ``FACTOR = 1.1`` (+10%) or ``FACTOR = 1.5`` (+50%); then runs
``pytest --perf-gate --perf-gate-ab BASE`` at the default policy (threshold 5%, alpha 0.01, 8
paired rounds, then 4 more for the inconclusive up to 24, ``time_budget`` 600 s). A test is
"flagged" when its verdict is ``regression`` or ``improvement``; a catch is a hot test with
``regression``. Plain ``pytest --benchmark-only`` on the same suite (pytest-benchmark's default
1 s per test) is the wall-time reference.

Goals (issue 16): A/A no test flagged in >= 9 of 10 runs; every hot test caught at +50%; wall
time <= 4x plain pytest-benchmark.

    .venv/bin/python bench/pytest_benchmark_suite.py                 # 10 A/A, 3 each slowdown
    .venv/bin/python bench/pytest_benchmark_suite.py --quick         # 2 A/A, 1 each, 30 tests
    .venv/bin/python bench/pytest_benchmark_suite.py --noisy         # beside a busy neighbour
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORK = '''"""A small library; ``hot`` is the function the trials slow down."""
import hashlib
import json
import re

FACTOR = {factor}


def hot(n):
    total = 0
    for i in range(int(n * FACTOR)):
        total += i * i
    return total


def sort_desc(n):
    return sorted(range(n), key=lambda i: (i * 7919) % n, reverse=True)


def json_round_trip(n):
    return json.loads(json.dumps({{str(i): [i, i * 2, "x" * (i % 7)] for i in range(n)}}))


WORDS = re.compile(r"[a-z]+")


def regex_words(n):
    return WORDS.findall(" ".join("word%d other" % i for i in range(n)))


def hash_blocks(n):
    return hashlib.sha256(b"x" * (n * 64)).hexdigest()


def join_strings(n):
    return ",".join(str(i) for i in range(n))


def dict_count(n):
    counts = {{}}
    for i in range(n):
        counts[i % 17] = counts.get(i % 17, 0) + 1
    return counts


def set_ops(n):
    a, b = set(range(n)), set(range(n // 2, n * 2))
    return len(a & b) + len(a | b)


def list_comp(n):
    return [i * i for i in range(n) if i % 3]


def float_sum(n):
    return sum(1.0 / (i + 1) for i in range(n))
'''
OTHERS = [
    "sort_desc",
    "json_round_trip",
    "regex_words",
    "hash_blocks",
    "join_strings",
    "dict_count",
    "set_ops",
    "list_comp",
    "float_sum",
]
SIZES = [100, 200, 400, 800, 1600]
CONFIG = "policy: {thresholds: {latency: 5%}}\n"
EFFECTS = {"aa": 1.0, "plus10": 1.1, "plus50": 1.5}


def suite(tests: int) -> tuple[str, list[str]]:
    """The test file (``tests`` benchmark tests) and the node ids of the tests calling ``hot``."""
    lines = ["import pytest", "", "import work", ""]
    hot_nodes: list[str] = []
    for index in range(tests):
        size = SIZES[index % len(SIZES)]
        if index % 5 == 0:  # the known subset: hot and nothing else
            name = f"test_hot_{index}"
            hot_nodes.append(f"test_suite.py::{name}")
            if index % 10 == 0:
                body = f"    benchmark(work.hot, {size * 5})"
            else:  # pedantic, as its documentation shows
                body = (
                    f"    benchmark.pedantic(work.hot, args=({size * 5},), rounds=50, "
                    "iterations=5, warmup_rounds=2)"
                )
            lines += [f"def {name}(benchmark):", body, ""]
            continue
        function = OTHERS[index % len(OTHERS)]
        lines += [
            f'@pytest.mark.benchmark(group="{function}")',
            f"def test_{function}_{index}(benchmark):",
            f'    benchmark.extra_info["size"] = {size}',
            f"    assert benchmark(work.{function}, {size}) is not None",
            "",
        ]
    lines += [
        '@pytest.mark.parametrize("n", [300, 600])',
        "def test_param_join(benchmark, n):",
        "    benchmark(work.join_strings, n)",
        "",
    ]
    return "\n".join(lines), hot_nodes


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    done = subprocess.run(
        ["git", *identity, *args], cwd=repo, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def make_repo(where: Path, tests: int) -> tuple[Path, str, list[str]]:
    repo = where / "suite"
    repo.mkdir()
    text, hot_nodes = suite(tests)
    files = {
        ".gitignore": ".perf-gate/\n__pycache__/\n.benchmarks/\n",
        "pytest.ini": "[pytest]\n",
        "perf-gate.yaml": CONFIG,
        "README.md": "suite\n",
        "work.py": WORK.format(factor=1.0),
        "test_suite.py": text,
    }
    for name, content in files.items():
        (repo / name).write_text(content, encoding="utf-8")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return repo, git(repo, "rev-parse", "HEAD"), hot_nodes


def make_head(repo: Path, base: str, effect: str, trial: int) -> None:
    git(repo, "checkout", "-q", "-B", "head", base)
    if effect == "aa":
        with (repo / "README.md").open("a", encoding="utf-8") as f:
            f.write(f"trial {trial}\n")
    else:
        (repo / "work.py").write_text(WORK.format(factor=EFFECTS[effect]), encoding="utf-8")
    git(repo, "commit", "-q", "-am", f"{effect} {trial}")


def pytest_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]


def timed(command: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    return time.monotonic() - started, done


def gate_trial(repo: Path, base: str, hot: set[str], keep: Path, label: str) -> dict[str, Any]:
    """One gate run on the head; ``hot`` are the tests the change slows (empty for A/A)."""
    shutil.rmtree(repo / ".perf-gate", ignore_errors=True)
    wall, done = timed(pytest_command("--perf-gate", f"--perf-gate-ab={base}"), repo)
    comparison = repo / ".perf-gate" / "comparison.json"
    if not comparison.is_file():
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise SystemExit(f"{label}: no comparison.json (exit {done.returncode}):\n{tail}")
    shutil.copy(comparison, keep / f"{label}.json")
    rows = json.loads(comparison.read_text(encoding="utf-8"))["comparisons"]
    verdicts = {r["benchmark"]: r["verdict"] for r in rows if r["metric"] == "latency"}
    flagged = {b for b, v in verdicts.items() if v in ("regression", "improvement")}
    return {
        "exit": done.returncode,
        "wall": wall,
        "tests": len(verdicts),
        "flagged_other": len(flagged - hot),
        "caught": sum(1 for b in hot if verdicts.get(b) == "regression"),
        "inconclusive": sum(1 for v in verdicts.values() if v == "inconclusive"),
        "budget": sum(1 for r in rows if "time budget" in (r.get("note") or "")),
        "errors": sum(1 for v in verdicts.values() if v == "error"),
    }


def busy(stop: Any) -> None:
    rng = random.Random(os.getpid())
    while not stop.is_set():
        end = time.monotonic() + rng.uniform(0.2, 2.0)
        while time.monotonic() < end:
            pass
        stop.wait(rng.uniform(0.2, 2.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=60, help="benchmark tests (default 60)")
    parser.add_argument("--aa", type=int, default=10, help="A/A trials (default 10)")
    parser.add_argument("--slow", type=int, default=3, help="trials per slowdown (default 3)")
    parser.add_argument("--quick", action="store_true", help="30 tests, 2 A/A, 1 per slowdown")
    parser.add_argument("--noisy", action="store_true", help="beside a bursty busy process")
    parser.add_argument("--keep", type=Path, help="keep each trial's comparison.json here")
    options = parser.parse_args()
    if options.quick:
        options.tests, options.aa, options.slow = 30, 2, 1
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as scratch:
        where = Path(scratch)
        keep = options.keep or where / "kept"
        keep.mkdir(parents=True, exist_ok=True)
        repo, base, hot_nodes = make_repo(where, options.tests)
        hot = set(hot_nodes)
        stop = multiprocessing.Event()
        neighbour = multiprocessing.Process(target=busy, args=(stop,), daemon=True)
        if options.noisy:
            neighbour.start()
        try:
            plain, done = timed(pytest_command("--benchmark-only"), repo)
            if done.returncode != 0:
                raise SystemExit(f"plain pytest-benchmark failed:\n{done.stdout[-2000:]}")
            count = options.tests + 2
            print(
                f"suite: {count} benchmark tests, {len(hot)} call hot(); plain "
                f"`pytest --benchmark-only`: {plain:.1f}s"
            )
            results: dict[str, list[dict[str, Any]]] = {}
            plan = [("aa", options.aa), ("plus10", options.slow), ("plus50", options.slow)]
            for effect, trials in plan:
                for trial in range(trials):
                    make_head(repo, base, effect, trial)
                    changed = set() if effect == "aa" else hot
                    result = gate_trial(repo, base, changed, keep, f"{effect}-{trial}")
                    results.setdefault(effect, []).append(result)
                    print(f"  {effect} trial {trial + 1}/{trials}: {json.dumps(result)}")
        finally:
            stop.set()
            if neighbour.is_alive():
                neighbour.join()
        print_table(results, plain, count, len(hot), options.noisy)


def print_table(
    results: dict[str, list[dict[str, Any]]], plain: float, tests: int, hot: int, noisy: bool
) -> None:
    condition = "beside a busy neighbour" if noisy else "quiet"
    print(f"\npytest --perf-gate --perf-gate-ab BASE on {tests} benchmark tests ({condition})")
    header = (
        f"{'change':7} {'runs':>4} {'exit codes':>12} {'runs w/o false flag':>20} "
        f"{'false flags/run':>15} {'hot caught':>12} {'inconcl./run':>12} {'budget out':>10} "
        f"{'wall s (med)':>12} {'x plain':>7} {'s/test':>6}"
    )
    print(header)
    print("-" * len(header))
    for effect, runs in results.items():
        exits = ",".join(str(c) for c in sorted({r["exit"] for r in runs}))
        clean = sum(1 for r in runs if r["flagged_other"] == 0)
        flags = sum(r["flagged_other"] for r in runs) / len(runs)
        caught = "-" if effect == "aa" else f"{min(r['caught'] for r in runs)}/{hot} min"
        walls = sorted(r["wall"] for r in runs)
        wall = walls[len(walls) // 2]
        inconclusive = sum(r["inconclusive"] for r in runs) / len(runs)
        budget = sum(r["budget"] for r in runs)
        print(
            f"{effect:7} {len(runs):>4} {exits:>12} {clean:>14}/{len(runs):<5} "
            f"{flags:>15.2f} {caught:>12} {inconclusive:>12.1f} {budget:>10} {wall:>12.0f} "
            f"{wall / plain:>7.2f} {wall / tests:>6.2f}"
        )
    print(f"plain pytest --benchmark-only: {plain:.1f}s ({plain / tests:.2f}s per test)")
    print("false flags: regression or improvement on a test the change does not slow")


if __name__ == "__main__":
    main()
