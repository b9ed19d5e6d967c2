"""Rounds for custom pytest benchmarks: each round is a fresh ``pytest`` process.

The parent pytest run has already run every test once (quick mode). Here each round starts
``python -m pytest --perf-gate-worker OUT <node ids in random order>``; the ``perf`` fixture in
that process measures for real and the plugin writes what it measured to OUT. In ``ab`` mode a
round runs one worker in the base revision's worktree and one in the head, in random order.

A worker runs in the parent's rootdir, pinned to it with ``--rootdir=.``, so the parent's node
ids name the same tests there. The project's ini ``addopts`` apply as in any pytest run (plugins
loaded with ``-p``, warnings filters, plugin settings); the parent passes the rest in
``extra_args`` (the collection options of its command line, and the switches that keep a round
one quiet process: see ``pytest_options.worker_args``).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from gate.core.types import BenchmarkError, Direction, Metric, Sample
from gate.errors import MeasurementError
from gate.measure.base_imports import ForeignImport
from gate.measure.runner import Measured, Progress, names_of, worker_environment


def run_pytest_worker(
    root: Path, nodeids: list[str], extra_args: list[str], threads: int, work_dir: Path
) -> dict[str, Any]:
    """One ``pytest --perf-gate-worker`` process in ``root``; returns its JSON results.

    Raises MeasurementError when the process wrote nothing (a crash, a collection error), and
    ForeignImport (exit 2) when a worker in the base revision's worktree imported the head's
    code (``base_imports``)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
        out = Path(scratch) / "perf.json"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--rootdir=.",
            f"--perf-gate-worker={out}",
            *extra_args,
            *nodeids,
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
            output = f"{completed.stdout}\n{completed.stderr}".strip().splitlines()
            tail = " | ".join(line for line in output[-3:] if line.strip())
            raise MeasurementError(
                f"a pytest worker in {root} wrote no results (exit {completed.returncode}): {tail}",
                slug="worker",
            )
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        if result.get("base_imports"):  # a base-revision worker ran head code
            raise ForeignImport(str(result["base_imports"]))
        return result


class CustomRounds:
    """Rounds of custom benchmarks, added a few at a time: per arm and node id, the worker entry
    of each round, and the nodes that failed.

    ``nodes`` are the node ids measured; ``arms`` maps "head" (and "base" in ``ab`` mode) to
    the directory each arm's workers run in. Nodes still undecided can get more rounds than the
    rest (sequential rounds), so rounds are kept per node, not per worker process.
    """

    def __init__(
        self,
        nodes: list[str],
        arms: dict[str, Path],
        *,
        work_dir: Path,
        extra_args: list[str],
        threads: int,
        progress: Progress,
        rng: random.Random,
    ) -> None:
        self.nodes = nodes
        self.arms = arms
        self.work_dir = work_dir
        self.extra_args = extra_args
        self.threads = threads
        self.progress = progress
        self.rng = rng
        self.entries: dict[str, dict[str, list[dict[str, Any]]]] = {arm: {} for arm in arms}
        self.failed: dict[str, str] = {}

    def rounds_of(self, nodeid: str) -> int:
        return min(len(self.entries[arm].get(nodeid, [])) for arm in self.arms)

    def run(self, nodeids: list[str], rounds: int, *, planned: int | None = None) -> None:
        """Add ``rounds`` rounds for ``nodeids`` (nodes that failed are skipped); ``planned``
        is the round count the progress line counts towards."""
        for _ in range(rounds):
            live = [n for n in nodeids if n not in self.failed]
            if not live:
                return
            index = 1 + max(self.rounds_of(n) for n in live)
            order = list(self.arms)
            self.rng.shuffle(order)
            of = f"/{planned}" if planned else ""
            self.progress(f"round {index}{of}: {names_of(live)} ({' / '.join(order)})")
            documents = {}
            for arm in order:
                selection = list(live)
                self.rng.shuffle(selection)
                documents[arm] = run_pytest_worker(
                    self.arms[arm], selection, self.extra_args, self.threads, self.work_dir
                )
            for arm, document in documents.items():
                for nodeid, message in document.get("errors", {}).items():
                    self.failed.setdefault(nodeid, f"{arm} round {index}: {message}")
                for nodeid in live:
                    if nodeid not in document["results"] and nodeid not in self.failed:
                        self.failed[nodeid] = (
                            f"{arm} round {index}: the test did not run in the worker"
                        )
            for arm, document in documents.items():
                for nodeid in live:
                    if nodeid in document["results"]:
                        self.entries[arm].setdefault(nodeid, []).append(document["results"][nodeid])

    def measured(self) -> tuple[Measured, Measured | None]:
        """(head, base) measurements, one value per round a node had in both arms; base is None
        without a base arm. A node that failed anywhere is an error of the head."""
        measured = {arm: Measured() for arm in self.arms}
        for nodeid in self.nodes:
            if nodeid in self.failed:
                measured["head"].errors.append(
                    BenchmarkError(benchmark=nodeid, message=self.failed[nodeid])
                )
                continue
            n = self.rounds_of(nodeid)
            if n == 0:
                continue
            for arm in self.arms:
                measured[arm].samples.extend(_samples(nodeid, self.entries[arm][nodeid][:n]))
        return measured["head"], measured.get("base")


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
