"""Rounds for custom pytest benchmarks: each round is a fresh ``pytest`` process.

The parent pytest run has already run every test once (quick mode). Here each round starts
``python -m pytest --perf-gate-worker OUT <node ids in random order>``; the ``perf`` fixture in
that process measures for real and the plugin writes what it measured to OUT.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from gate.errors import MeasurementError
from gate.measure.runner import Measured, Progress, worker_environment
from gate.model import BenchmarkError, Direction, Metric, Sample


def run_rounds(
    nodeids: list[str],
    *,
    rounds: int,
    root: Path,
    work_dir: Path,
    extra_args: list[str],
    threads: int,
    progress: Progress,
    rng: random.Random,
) -> Measured:
    """Run ``rounds`` worker pytest processes over ``nodeids``; one sample value per round."""
    per_round: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    work_dir.mkdir(parents=True, exist_ok=True)
    for index in range(rounds):
        live = [n for n in nodeids if n not in failed]
        if not live:
            break
        rng.shuffle(live)
        progress(
            f"round {index + 1}/{rounds}: {len(live)} custom benchmark(s) in a fresh pytest process"
        )
        with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
            out = Path(scratch) / "perf.json"
            command = [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:randomly",
                "-o",
                "addopts=",
                f"--perf-gate-worker={out}",
                *extra_args,
                *live,
            ]
            completed = subprocess.run(
                command,
                cwd=root,
                env=worker_environment(root, threads),
                capture_output=True,
                text=True,
                check=False,
                timeout=1800,
            )
            if not out.is_file():
                tail = " | ".join(completed.stdout.strip().splitlines()[-3:])
                raise MeasurementError(
                    f"the pytest worker for round {index + 1} wrote no results (exit "
                    f"{completed.returncode}): {tail}",
                    slug="worker",
                )
            document = json.loads(out.read_text(encoding="utf-8"))
        for nodeid, message in document.get("errors", {}).items():
            failed.setdefault(nodeid, f"round {index + 1}: {message}")
        for nodeid in live:
            if nodeid not in document["results"] and nodeid not in failed:
                failed[nodeid] = f"round {index + 1}: the test did not run in the worker"
        per_round.append(document["results"])
    measured = Measured()
    for nodeid in nodeids:
        if nodeid in failed:
            measured.errors.append(BenchmarkError(benchmark=nodeid, message=failed[nodeid]))
            continue
        measured.samples.extend(_samples(nodeid, [r[nodeid] for r in per_round]))
    return measured


def _samples(nodeid: str, rounds: list[dict[str, Any]]) -> list[Sample]:
    samples = []
    for metric_name, first in rounds[0].items():
        entries = [r[metric_name] for r in rounds if metric_name in r]
        direction = Direction.HIGHER if first["higher_is_better"] else Direction.LOWER
        samples.append(
            Sample(
                benchmark=nodeid,
                metric=Metric(metric_name, first["unit"], direction),
                values=tuple(float(e["value"]) for e in entries),
                calls=tuple(c for e in entries for c in e.get("calls", [])),
                first_calls=tuple(
                    e["first_call"] for e in entries if e.get("first_call") is not None
                ),
            )
        )
    return samples
