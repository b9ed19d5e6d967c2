"""Live gate runs: how often the gate is right on this machine, quiet and beside a noisy neighbour.

Not resampled rounds: every trial is a real ``perf-gate run`` on a real git history, at the
default policy (threshold 5%, alpha 0.01, 8 paired rounds then 4 more while inconclusive, up to
24), in ``auto`` mode (torch: parallel ab rounds where two cores are free, else ab; onnxruntime:
duet).

The model is one the test suite does not use: ``Linear(256, 256) + ReLU`` applied N times (the
same block, so each application costs the same), N read from ``blocks.txt``. The base commit
has N = 40; a head commit changes only that file: N = 40 (A/A: a README change instead), 44
(+10%) or 80 (+100%), so the slowdown is exact by construction up to the fixed cost of a call
(measured and printed). Variants ``torch`` and ``onnxruntime``, batch sizes 1 and 16: four
timing rows per run (latency at 1, throughput at 16, per variant), and memory rows from three
probes per side.

Each condition records one baseline (``perf-gate run --save`` on the base commit), then for
every trial resets the branch ``head`` to the base commit, makes the head commit and runs
``perf-gate run``, keeping its comparison.json and results.json under ``--out``. Beside it, in
the same trial, pytest-benchmark's own gate (``--benchmark-compare-fail=median:5%``) compares a
``benchmark`` test of the same torch model at batch 1 with its saved base run.

The noisy neighbour is a CPU-bound process that runs in bursts of 0.2-2 s with pauses of
0.2-2 s (about 50% duty), started before the first trial of the condition and stopped after it.
``--demo K`` also runs ``examples/digits/demo.py`` K times in the condition (its 2x change:
every timing row should be a regression).

    .venv/bin/python bench/live_verdicts.py --condition quiet --aa 10 --plus10 10 --plus100 5
    .venv/bin/python bench/live_verdicts.py --condition noisy --aa 20 --plus10 10 --plus100 5 \
        --demo 5

``--no-baseline`` records no baseline: each trial is ``perf-gate run --ab main``, the way a
pull request is gated with nothing stored (zero-setup): timings paired with the base commit,
memory and model size from the base commit's own probes in the same run (``rows new`` in the
table should be 0).
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

ROOT = Path(__file__).resolve().parents[1]
BASE_N = 40
EFFECTS = {"aa": BASE_N, "plus10": 44, "plus100": 80}

MODEL = '''"""N applications of one Linear(256, 256) + ReLU block; N from blocks.txt."""
from pathlib import Path

import torch

WIDTH = 256


class Blocks(torch.nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.block = torch.nn.Sequential(torch.nn.Linear(WIDTH, WIDTH), torch.nn.ReLU())
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.n):
            x = self.block(x)
        return x


def build() -> Blocks:
    n = int(Path(__file__).with_name("blocks.txt").read_text().strip())
    return Blocks(n).eval()


def example(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, WIDTH, generator=torch.Generator().manual_seed(1))
'''

CONFIG = """baseline: baselines/main.json
models:
  blocks:
    torch: blocks:build
    input: blocks:example
    variants: [torch, onnxruntime]
    metrics: [latency, throughput, memory]
    batch_sizes: [1, 16]
policy:
  alpha: 0.01
  thresholds: {latency: 5%, throughput: 5%, memory: 2%}
  diagnose: never
measure: {threads: 1, probes: 3}
"""

BENCHMARK_TEST = """import torch
import blocks

MODEL = blocks.build()
X = blocks.example(1)


def test_blocks(benchmark):
    with torch.inference_mode():
        benchmark(MODEL, X)
"""


def neighbour(stop: Any, seed: int) -> None:
    """A CPU-bound process in bursts of 0.2-2 s, pausing 0.2-2 s between them."""
    rng = random.Random(seed)
    while not stop.is_set():
        until = time.monotonic() + rng.uniform(0.2, 2.0)
        x = 0
        while time.monotonic() < until:
            x += 1
        stop.wait(rng.uniform(0.2, 2.0))


def git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run(["git", *identity, *args], cwd=repo, check=True, capture_output=True)


def gate(repo: Path, *args: str) -> tuple[int, float, str]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "gate", "run", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, time.monotonic() - started, done.stdout + done.stderr


def pytest_benchmark(repo: Path, *args: str) -> int:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_bench.py"]
    command += ["--benchmark-storage", str(repo / ".benchmarks"), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=repo, capture_output=True, env=env, check=False).returncode


def make_repo(where: Path) -> Path:
    repo = where / "project"
    repo.mkdir()
    (repo / "blocks.py").write_text(MODEL, encoding="utf-8")
    (repo / "blocks.txt").write_text(f"{BASE_N}\n", encoding="utf-8")
    (repo / "perf-gate.yaml").write_text(CONFIG, encoding="utf-8")
    (repo / "test_bench.py").write_text(BENCHMARK_TEST, encoding="utf-8")
    (repo / "README.md").write_text("blocks\n", encoding="utf-8")
    (repo / ".gitignore").write_text(
        ".perf-gate/\n__pycache__/\nbaselines/\n.benchmarks/\n", encoding="utf-8"
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return repo


def head_commit(repo: Path, effect: str, trial: int) -> None:
    git(repo, "checkout", "-q", "-B", "head", "main")
    if effect == "aa":
        (repo / "README.md").write_text(f"blocks, trial {trial}\n", encoding="utf-8")
    else:
        (repo / "blocks.txt").write_text(f"{EFFECTS[effect]}\n", encoding="utf-8")
    git(repo, "commit", "-q", "-am", f"{effect} trial {trial}")


def rows(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in comparison["comparisons"] if c.get("metric") != "measurement"]


def trial(
    repo: Path, effect: str, index: int, out: Path, gate_args: tuple[str, ...] = ()
) -> dict[str, Any]:
    head_commit(repo, effect, index)
    code, wall, output = gate(repo, *gate_args)
    keep = out / f"{effect}-{index:02d}"
    keep.mkdir(parents=True, exist_ok=True)
    for name in ("comparison.json", "results.json"):
        if (repo / ".perf-gate" / name).is_file():
            shutil.copy2(repo / ".perf-gate" / name, keep / name)
    (keep / "output.txt").write_text(output, encoding="utf-8")
    comparison = json.loads((repo / ".perf-gate" / "comparison.json").read_text())
    timing = [r for r in rows(comparison) if r["metric"].split("@")[0] in ("latency", "throughput")]
    memory = [r for r in rows(comparison) if r["metric"].startswith("memory")]
    flagged = pytest_benchmark(
        repo, "--benchmark-compare=0001", "--benchmark-compare-fail=median:5%"
    )
    return {
        "effect": effect,
        "exit": code,
        "wall": wall,
        "timing": {f"{r['benchmark']} {r['metric']}": r["verdict"] for r in timing},
        "rounds": max((r.get("n_current") or 0) for r in timing) if timing else 0,
        "memory_regressions": sum(1 for r in memory if r["verdict"] == "regression"),
        # zero-setup: every metric should have the base revision's value to compare with
        "rows_new": sum(1 for r in rows(comparison) if r["verdict"] == "new"),
        "pytest_benchmark_flagged": flagged != 0,
    }


def summarize(results: list[dict[str, Any]], condition: str) -> str:
    lines = [
        f"condition: {condition}",
        "| effect | runs | runs with a timing regression | timing rows regression | "
        "rows unchanged | rows inconclusive | memory regressions | rounds (median) | "
        "wall per run (median, max) | rows new | pytest-benchmark median:5% flagged |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for effect in EFFECTS:
        runs = [r for r in results if r["effect"] == effect]
        if not runs:
            continue
        verdicts = [v for r in runs for v in r["timing"].values()]
        walls = sorted(r["wall"] for r in runs)
        rounds = sorted(r["rounds"] for r in runs)
        flagged_runs = sum(1 for r in runs if "regression" in r["timing"].values())
        lines.append(
            f"| {effect} | {len(runs)} | {flagged_runs} of {len(runs)} | "
            f"{verdicts.count('regression')} of {len(verdicts)} | "
            f"{verdicts.count('unchanged') / max(1, len(verdicts)):.0%} | "
            f"{verdicts.count('inconclusive') / max(1, len(verdicts)):.0%} | "
            f"{sum(r['memory_regressions'] for r in runs)} | {rounds[len(rounds) // 2]} | "
            f"{walls[len(walls) // 2]:.0f} s, {walls[-1]:.0f} s | "
            f"{sum(r.get('rows_new', 0) for r in runs)} | "
            f"{sum(r['pytest_benchmark_flagged'] for r in runs)} of {len(runs)} |"
        )
    return "\n".join(lines)


def run_demo(times: int, out: Path) -> list[dict[str, Any]]:
    results = []
    for index in range(times):
        with tempfile.TemporaryDirectory() as where:
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, str(ROOT / "examples" / "digits" / "demo.py")],
                cwd=where,
                capture_output=True,
                text=True,
                check=False,
            )
            wall = time.monotonic() - started
            report = Path(where) / ".perf-gate" / "demo" / "project" / ".perf-gate"
            comparison = json.loads((report / "comparison.json").read_text())
            keep = out / f"demo-{index:02d}"
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy2(report / "comparison.json", keep / "comparison.json")
            (keep / "output.txt").write_text(done.stdout + done.stderr, encoding="utf-8")
        timing = [
            r for r in rows(comparison) if r["metric"].split("@")[0] in ("latency", "throughput")
        ]
        verdicts = [r["verdict"] for r in timing]
        results.append({"exit": done.returncode, "wall": wall, "verdicts": verdicts})
        print(
            f"demo {index + 1}: exit {done.returncode}, {wall:.0f} s, "
            f"{verdicts.count('regression')} of {len(verdicts)} timing rows regression",
            flush=True,
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--condition", choices=("quiet", "noisy"), default="quiet")
    parser.add_argument("--aa", type=int, default=10)
    parser.add_argument("--plus10", type=int, default=10)
    parser.add_argument("--plus100", type=int, default=5)
    parser.add_argument("--demo", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / ".perf-gate" / "live-verdicts")
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="zero-setup: record no baseline; each trial runs `perf-gate run --ab main`, so the "
        "base commit is measured in the run (timings paired, memory from its own probes)",
    )
    args = parser.parse_args()
    out = args.out / (f"{args.condition}-no-baseline" if args.no_baseline else args.condition)
    gate_args: tuple[str, ...] = ("--ab", "main") if args.no_baseline else ()
    out.mkdir(parents=True, exist_ok=True)
    stop = multiprocessing.Event()
    noisy = None
    if args.condition == "noisy":
        noisy = multiprocessing.Process(target=neighbour, args=(stop, args.seed), daemon=True)
        noisy.start()
    results: list[dict[str, Any]] = []
    demo: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as where:
            repo = make_repo(Path(where))
            if not args.no_baseline:
                code, wall, output = gate(repo, "--save")
                if code != 0:
                    print(output, file=sys.stderr)
                    return 1
                print(f"baseline recorded in {wall:.0f} s", flush=True)
            pytest_benchmark(repo, "--benchmark-save=base")
            plan = [
                e
                for e, n in (("aa", args.aa), ("plus10", args.plus10), ("plus100", args.plus100))
                for _ in range(n)
            ]
            random.Random(args.seed).shuffle(plan)  # effects interleaved over the sitting
            counts: dict[str, int] = {}
            for effect in plan:
                counts[effect] = counts.get(effect, 0) + 1
                result = trial(repo, effect, counts[effect], out, gate_args)
                results.append(result)
                verdicts = ", ".join(f"{k.split('[')[1]} {v}" for k, v in result["timing"].items())
                print(
                    f"{effect} {counts[effect]}: exit {result['exit']}, {result['wall']:.0f} s, "
                    f"{result['rounds']} rounds: {verdicts}; pytest-benchmark "
                    f"{'flagged' if result['pytest_benchmark_flagged'] else 'passed'}",
                    flush=True,
                )
        if args.demo:
            demo = run_demo(args.demo, out)
    finally:
        stop.set()
        if noisy is not None:
            noisy.join(timeout=5)
    (out / "trials.json").write_text(json.dumps({"trials": results, "demo": demo}, indent=1))
    print()
    print(summarize(results, args.condition + (", no baseline" if args.no_baseline else "")))
    if demo:
        caught = sum(1 for d in demo if d["verdicts"] and set(d["verdicts"]) == {"regression"})
        walls = sorted(d["wall"] for d in demo)
        print(
            f"\ndemo (2x wider network): every timing row a regression in {caught} of "
            f"{len(demo)} runs; wall median {walls[len(walls) // 2]:.0f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
