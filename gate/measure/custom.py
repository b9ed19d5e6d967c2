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

Tests using pytest-benchmark's ``benchmark`` fixture are measured the same way, one value per
process (the median of its rounds). Where the user left ``--benchmark-max-time`` at its default,
each gets ``benchmark_round_time`` seconds per worker; the first worker that runs a test
calibrates its calls (iterations x rounds) and every later worker, in both arms, makes the same
calls (``--perf-gate-worker-calls``). In ``ab`` mode the base revision's worktree is asked
which of the tests it has (a collect-only worker); a test it lacks, or one that fails there, is
measured in the head only and its row says why. A ``benchmark`` test that fails in a worker but
passed in the parent run keeps its in-process result (advisory), with the reason on its row.
"""

from __future__ import annotations

import concurrent.futures
import json
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from gate.core.types import BenchmarkError, Direction, Metric, Sample, TimingMode
from gate.errors import MeasurementError
from gate.measure import base_imports, processes
from gate.measure.base_imports import ForeignImport
from gate.measure.runner import (
    Measured,
    Progress,
    names_of,
    wait_for_worker,
    worker_environment,
)

# Seconds a ``benchmark`` test runs per worker round where the user left pytest-benchmark's
# --benchmark-max-time at its default (1 s): the decision rests on the spread between processes,
# and a round per test is paid rounds x arms times. A large suite gets less, so that the planned
# rounds take at most half of policy.time_budget, but never under the floor.
BENCHMARK_ROUND_TIME = 0.05
MIN_BENCHMARK_ROUND_TIME = 0.005
PYTEST_BENCHMARK_MAX_TIME = 1.0  # pytest-benchmark's own default
PYTEST_WORKER_TIMEOUT_S = 1800.0  # one round of all selected tests in one arm


def benchmark_round_time(tests: int, rounds: int, arms: int, budget: float) -> float:
    """Seconds per ``benchmark`` test and worker round, so that ``rounds`` rounds of ``tests``
    tests in ``arms`` arms take at most half of ``budget`` (between the floor and the
    default)."""
    if tests <= 0:
        return BENCHMARK_ROUND_TIME
    share = budget / 2 / (tests * max(1, rounds) * max(1, arms))
    return max(MIN_BENCHMARK_ROUND_TIME, min(BENCHMARK_ROUND_TIME, share))


def run_pytest_worker(
    root: Path,
    nodeids: list[str],
    extra_args: list[str],
    threads: int,
    work_dir: Path,
    *,
    calls: dict[str, list[int]] | None = None,
    memory_limit: int | None = None,
    timeout: float = PYTEST_WORKER_TIMEOUT_S,
) -> dict[str, Any]:
    """One ``pytest --perf-gate-worker`` process in ``root``; returns its JSON results.

    ``calls`` fixes the calls (iterations, rounds) of ``benchmark`` tests by node id. Raises
    MeasurementError when the process wrote nothing (a crash, a collection error), and
    ForeignImport (exit 2) when a worker in the base revision's worktree imported the head's
    code (``base_imports``)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
        out = Path(scratch) / "perf.json"
        fixed = []
        if calls:
            plan = Path(scratch) / "calls.json"
            plan.write_text(json.dumps(calls), encoding="utf-8")
            fixed = [f"--perf-gate-worker-calls={plan}"]
        command = [
            base_imports.interpreter(root),  # a base environment's, in its worktree
            "-m",
            "pytest",
            "-q",
            "--rootdir=.",
            f"--perf-gate-worker={out}",
            *fixed,
            *extra_args,
            *nodeids,
        ]
        process = subprocess.Popen(
            command,
            cwd=root,
            env=worker_environment(root, threads, memory_limit),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: see processes.py
        )
        assert process.stdout is not None
        tail = processes.Tail(process.stdout)
        try:
            code = wait_for_worker(process, timeout)
            output = tail.last()
        finally:
            process.stdout.close()
        if code is None:
            raise MeasurementError(
                f"a pytest worker in {root} ran past {timeout:.0f}s and was stopped, with all it "
                f"started; its last output: {output}",
                slug="worker",
            )
        if not out.is_file():
            raise MeasurementError(
                f"a pytest worker in {root} wrote no results "
                f"({processes.exit_description(code)}): {processes.memory_hint(output)}",
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
    ``round_time`` is the --benchmark-max-time of every worker (None: the user's own, which
    ``extra_args`` then carries); ``fallback`` holds the parent run's in-process samples of
    ``benchmark`` tests, kept (advisory) for a test that fails in a worker.
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
        round_time: float | None = None,
        fallback: dict[str, list[Sample]] | None = None,
        parallel: bool = False,
        memory_limit: int | None = None,
    ) -> None:
        self.nodes = nodes
        self.arms = arms
        self.work_dir = work_dir
        self.extra_args = list(extra_args)
        if round_time is not None:
            self.extra_args.append(f"--benchmark-max-time={round_time:g}")
        self.threads = threads
        self.memory_limit = memory_limit
        self.progress = progress
        self.rng = rng
        self.fallback = fallback or {}
        # ab: the two arms' workers side by side (each on a core of its own), same test order
        self.parallel = parallel and len(arms) == 2
        self.entries: dict[str, dict[str, list[dict[str, Any]]]] = {arm: {} for arm in arms}
        self.failed: dict[str, str] = {}
        self.unpaired: dict[str, str] = {}  # measured in the head only, and why
        self.calls: dict[str, list[int]] = {}  # benchmark tests' (iterations, rounds)
        self._base_nodes: set[str] | None = None
        self._side_by_side: dict[str, int] = {}  # rounds a node ran with both arms at once

    @property
    def mode(self) -> TimingMode:
        """The timing mode asked for: ``parallel`` (side by side) or ``ab``."""
        return "parallel" if self.parallel else "ab"

    def mode_of(self, nodeid: str) -> TimingMode:
        """How a node's rounds really ran: ``parallel`` when at least half of them had both
        arms at once (a ``benchmark`` test's first round runs them one after the other while
        it calibrates its calls), else ``ab`` (a ``perf`` test has no calls to fix, so its
        arms always run one after the other)."""
        rounds = self.rounds_of(nodeid)
        together = self._side_by_side.get(nodeid, 0)
        return "parallel" if rounds > 0 and 2 * together >= rounds else "ab"

    def arms_of(self, nodeid: str) -> list[str]:
        """The arms a node is measured in: the head, and the base where it has the test."""
        if nodeid in self.unpaired:
            return ["head"]
        if "base" in self.arms and nodeid not in self.base_nodes():
            self.unpaired[nodeid] = "the base revision has no such test"
            return ["head"]
        return list(self.arms)

    def base_nodes(self) -> set[str]:
        """The nodes the base revision's worktree collects (once, by a collect-only worker)."""
        if self._base_nodes is None:
            root = self.arms["base"]
            files = sorted({n.split("::")[0] for n in self.nodes})
            present = [f for f in files if (root / f).exists()]
            self._base_nodes = set()
            if present:
                document = run_pytest_worker(
                    root,
                    present,
                    [*self.extra_args, "--collect-only"],
                    self.threads,
                    self.work_dir,
                )
                self._base_nodes = set(document.get("collected", [])) & set(self.nodes)
        return self._base_nodes

    def rounds_of(self, nodeid: str) -> int:
        return min(len(self.entries[arm].get(nodeid, [])) for arm in self.arms_of(nodeid))

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
            self.rng.shuffle(live)  # one order for both arms: side by side, they keep pace
            selections = {arm: [n for n in live if arm in self.arms_of(n)] for arm in order}
            documents = self._workers({arm: s for arm, s in selections.items() if s})
            for arm, document in documents.items():
                for nodeid in selections[arm]:
                    message = document.get("errors", {}).get(nodeid)
                    if message is None and nodeid not in document["results"]:
                        message = "the test did not run in the worker"
                    if message is not None:
                        self._fail(arm, nodeid, f"{arm} round {index}: {message}")
            for arm, document in documents.items():
                for nodeid in selections[arm]:
                    if nodeid in document["results"] and arm in self.arms_of(nodeid):
                        self.entries[arm].setdefault(nodeid, []).append(document["results"][nodeid])

    def _workers(self, selections: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
        """One worker per arm, one after the other (or side by side); the first to run a
        ``benchmark`` test calibrates its calls, the others make them."""

        def run(arm: str) -> dict[str, Any]:
            selection = selections[arm]
            return run_pytest_worker(
                self.arms[arm],
                selection,
                self.extra_args,
                self.threads,
                self.work_dir,
                calls={n: self.calls[n] for n in selection if n in self.calls},
                memory_limit=self.memory_limit,
            )

        documents: dict[str, dict[str, Any]] = {}
        if (
            self.parallel
            and len(selections) == 2
            and all(n in self.calls for s in selections.values() for n in s)
        ):  # every call already fixed: nothing for one arm to learn from the other
            with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
                futures = {arm: pool.submit(run, arm) for arm in selections}
                documents = {arm: future.result() for arm, future in futures.items()}
            for nodeid in set(selections["head"]) & set(selections.get("base", [])):
                self._side_by_side[nodeid] = self._side_by_side.get(nodeid, 0) + 1
            return documents
        for arm in selections:  # one after the other (always while calls are calibrated)
            documents[arm] = run(arm)
            self._learn_calls(documents[arm])
        return documents

    def _learn_calls(self, document: dict[str, Any]) -> None:
        """Keep the calls the first worker to run a ``benchmark`` test calibrated."""
        for nodeid, entry in document["results"].items():
            calls = entry.get("latency", {}).get("benchmark_calls")
            if nodeid not in self.calls and calls:
                self.calls[nodeid] = [int(c) for c in calls]

    def _fail(self, arm: str, nodeid: str, message: str) -> None:
        """A node failed in ``arm``: in the base it goes on in the head alone; in the head it
        is an error (or its in-process result, for a ``benchmark`` test)."""
        if arm == "head":
            self.failed.setdefault(nodeid, message)
        elif nodeid not in self.unpaired:
            self.unpaired[nodeid] = f"the base revision's test failed ({message})"
            self.entries[arm].pop(nodeid, None)

    def measured(self) -> tuple[Measured, Measured | None]:
        """(head, base) measurements, one value per round a node had in both arms; base is None
        without a base arm. A node that failed in the head is an error of the head, or its
        in-process result where the parent run has one; why a row is not paired goes to the
        head's info (``row_notes``)."""
        measured = {arm: Measured() for arm in self.arms}
        head = measured["head"]
        for nodeid in self.nodes:
            if nodeid in self.failed:
                if self.fallback.get(nodeid):
                    head.samples.extend(self.fallback[nodeid])
                    _row_note(
                        head,
                        nodeid,
                        "measured only in the test's own process (advisory): it failed in a "
                        f"worker: {self.failed[nodeid]}",
                    )
                else:
                    error = BenchmarkError(benchmark=nodeid, message=self.failed[nodeid])
                    head.errors.append(error)
                continue
            n = self.rounds_of(nodeid)
            if n == 0:
                continue
            for arm in self.arms_of(nodeid):
                measured[arm].samples.extend(_samples(nodeid, self.entries[arm][nodeid][:n]))
            if nodeid in self.unpaired:
                _row_note(head, nodeid, f"not paired: {self.unpaired[nodeid]}")
        return head, measured.get("base")


def _row_note(measured: Measured, nodeid: str, note: str) -> None:
    measured.info.setdefault(nodeid, {}).setdefault("row_notes", []).append(note)


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
