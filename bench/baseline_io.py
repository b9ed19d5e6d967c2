"""Baseline files: size on disk, load-and-validate time, and pull/promote wall time on real DVC.

A synthetic run record of 200 benchmarks x 6 metrics (latency, throughput@32, memory.peak,
memory.load, model_size, cold_start) with raw samples: 8 per-round values per sample, and for
latency the per-call times a fast model fills up to the record's bound (10,000). It is written
as results.json (``write_record``, the run's record) and in the baseline form that ``promote``
and ``--save`` write (``baseline_bytes``: compact JSON, per-call times thinned to 500 at 4
significant digits); both are loaded with ``read_record`` (parse + validate) several times.
The history of 30 promotions of that baseline is sized and loaded too. With DVC installed, a
git + DVC repository with a local-directory remote in a temporary directory measures
``perf-gate baseline promote`` and ``perf-gate baseline pull`` (cache deleted first) as
subprocesses, as a CI job runs them.

Goal: the baseline <= 2 MB and < 200 ms to load and validate.

    .venv/bin/python bench/baseline_io.py [--quick] [--benchmarks N] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gate.core.types import Direction, GitInfo, Metric, RunRecord, Sample
from gate.measure.environment import environment_key, fingerprint
from gate.store import history as hist
from gate.store.baseline_store import load_history
from gate.store.dvc import find_dvc
from gate.store.records import baseline_bytes, read_record, write_bytes_atomic, write_record

GOAL_BYTES = 2_000_000
GOAL_SECONDS = 0.200
METRICS = (
    Metric("latency", "s", Direction.LOWER),
    Metric("throughput@32", "items/s", Direction.HIGHER),
    Metric("memory.peak", "B", Direction.LOWER),
    Metric("memory.load", "B", Direction.LOWER),
    Metric("model_size", "B", Direction.LOWER),
    Metric("cold_start", "s", Direction.LOWER),
)
ROUNDS = 8
CALLS = 10_000


def synthetic_record(benchmarks: int, seed: int = 1) -> RunRecord:
    """A record shaped like a real one: lognormal per-round values, per-call latencies."""
    rng = random.Random(seed)
    environment = fingerprint(1)
    environment["key"] = environment_key(environment)
    samples = []
    for index in range(benchmarks):
        name = f"model-{index:03d}[onnxruntime-int8]"
        centre = 1e-4 * (1 + index % 17)
        for metric in METRICS:
            scale = {"s": centre, "items/s": 32 / centre, "B": 2.5e8}[metric.unit]
            values = tuple(scale * rng.lognormvariate(0, 0.03) for _ in range(ROUNDS))
            calls = ()
            if metric.name == "latency":
                calls = tuple(centre * rng.lognormvariate(0, 0.1) for _ in range(CALLS))
            samples.append(
                Sample(
                    benchmark=name,
                    metric=metric,
                    values=values,
                    calls=calls,
                    first_calls=values[:1] if metric.name == "latency" else (),
                )
            )
    return RunRecord(
        samples=tuple(samples),
        environment=environment,
        git=GitInfo(commit="0" * 40, ref="main", dirty=False),
        created="2026-01-01T00:00:00+00:00",
        tool_version="bench",
        settings={"rounds": ROUNDS},
        info={s.benchmark: {"variant": "onnxruntime-int8"} for s in samples[:: len(METRICS)]},
    )


def load_times(path: Path, repeats: int, load: object) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        load(path)  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return times


def spread(times: list[float]) -> str:
    return (
        f"{statistics.median(times) * 1e3:7.1f} ms  "
        f"({min(times) * 1e3:.1f}..{max(times) * 1e3:.1f})"
    )


def run(command: list[str], cwd: Path) -> float:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stdout}{done.stderr}")
    return elapsed


def dvc_timings(record: RunRecord, repeats: int, work: Path) -> list[tuple[str, list[float]]]:
    """Wall seconds of promote and of pull (cache and file deleted) in a real DVC repository."""
    dvc = find_dvc()
    perf_gate = Path(sys.executable).parent / "perf-gate"
    if dvc is None or not perf_gate.is_file():
        return []
    repo, remote = work / "repo", work / "remote"
    repo.mkdir()
    remote.mkdir()
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    run([*git, "init", "-q", "-b", "main"], repo)
    run([dvc, "init", "-q"], repo)
    run([dvc, "remote", "add", "-d", "store", str(remote)], repo)
    (repo / "perf-gate.yaml").write_text("baseline: baselines/main.json\n")
    run([*git, "add", "-A"], repo)
    run([*git, "commit", "-q", "-m", "init"], repo)
    source = repo / "results.json"
    write_record(source, record)
    promote, pull = [], []
    for _ in range(repeats):
        promote.append(run([str(perf_gate), "baseline", "promote", "--from", str(source)], repo))
    key = str(record.environment["key"])
    for _ in range(repeats):
        shutil.rmtree(repo / ".dvc" / "cache")
        for suffix in (".json", ".history.json"):
            (repo / "baselines" / f"main@{key}{suffix}").unlink()
        pull.append(run([str(perf_gate), "baseline", "pull"], repo))
    return [("perf-gate baseline promote", promote), ("perf-gate baseline pull", pull)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmarks", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7, help="loads per file (default 7)")
    parser.add_argument("--quick", action="store_true", help="3 loads, 2 promotes and pulls")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    record = synthetic_record(args.benchmarks)
    with tempfile.TemporaryDirectory(prefix="perf-gate-bench-") as folder:
        work = Path(folder)
        results, baseline = work / "results.json", work / "baseline.json"
        write_record(results, record)
        write_bytes_atomic(baseline, baseline_bytes(record))
        history = hist.History()
        for index in range(hist.DEFAULT_LIMIT):
            entry = hist.summarize(record, key="k", promoted=f"2026-01-{index + 1:02d}")
            history = hist.add(history, entry)
        history_file = work / "history.json"
        history_text = json.dumps(hist.to_dict(history), separators=(",", ":")) + "\n"
        write_bytes_atomic(history_file, history_text.encode())
        rows = [
            ("results.json (run record)", results, read_record),
            ("baseline (promoted form)", baseline, read_record),
            (f"history, {hist.DEFAULT_LIMIT} promotions", history_file, load_history),
        ]
        print(
            f"\n{args.benchmarks} benchmarks x {len(METRICS)} metrics, {ROUNDS} rounds, "
            f"{CALLS} latency calls per sample in the record"
        )
        print(f"{'file':<28} {'size':>10}  {'load + validate: median (min..max)':<36}")
        measured = {}
        for label, path, load in rows:
            times = load_times(path, repeats, load)
            measured[label] = (path.stat().st_size, statistics.median(times))
            print(f"{label:<28} {path.stat().st_size / 1e6:>7.2f} MB  {spread(times)}")
        per_benchmark = history_file.stat().st_size / args.benchmarks / hist.DEFAULT_LIMIT
        print(f"history per benchmark per promotion: {per_benchmark:.0f} B")
        size, seconds = measured["baseline (promoted form)"]
        met = size <= GOAL_BYTES and seconds < GOAL_SECONDS
        print(
            f"\ngoal: baseline <= {GOAL_BYTES / 1e6:.0f} MB and < {GOAL_SECONDS * 1e3:.0f} ms: "
            f"{'met' if met else 'NOT met'} ({size / 1e6:.2f} MB, {seconds * 1e3:.0f} ms)"
        )
        timings = dvc_timings(record, 2 if args.quick else 3, work)
        if not timings:
            print(
                "\nDVC is not installed: pull/promote not measured (pip install 'perf-gate[dvc]')"
            )
            return 0
        print("\nagainst a local-directory DVC remote (subprocesses, wall time)")
        for label, times in timings:
            print(
                f"{label:<28} {statistics.median(times):6.2f} s  "
                f"({min(times):.2f}..{max(times):.2f}, n={len(times)})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
