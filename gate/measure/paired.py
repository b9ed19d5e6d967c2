"""Paired timing: the base revision and the head measured side by side, round by round.

``ab``: each round runs a base worker (in the base revision's worktree) and a head worker, in
random order, each a fresh process; the per-round ratio head/base cancels whatever slowed the
whole round down (a noisy neighbour, a thermal step). ``duet``: one fresh process loads both
artifacts of an onnxruntime variant and alternates calls between them, so even the
between-process noise cancels. Running all of the base first and then all of the head would
turn drift into a "difference"; interleaving is the point. Benchmarks of different thread
counts never share a process (thread pools are sized when a process starts): each round runs
one group of processes per thread count.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.core.types import TimingMode
from gate.errors import MeasurementError
from gate.measure import BenchmarkPlan
from gate.measure.lockstep import Barrier, parallel_possible
from gate.measure.messages import BenchmarkRound, RoundResult
from gate.measure.runner import Runner, names_of

Pair = tuple[BenchmarkPlan, BenchmarkPlan]  # (base, head)


@dataclass
class PairedRounds:
    """Per-benchmark, per-round worker entries for both arms, plus failures and the modes used."""

    base: dict[str, list[BenchmarkRound]] = field(default_factory=dict)
    head: dict[str, list[BenchmarkRound]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    modes: dict[str, TimingMode] = field(default_factory=dict)

    def rounds_of(self, name: str) -> int:
        return min(len(self.base.get(name, [])), len(self.head.get(name, [])))


def prepare_base(
    runner: Runner, plans: list[BenchmarkPlan], base_root: Path, cache_dir: Path
) -> tuple[list[BenchmarkPlan], dict[str, str]]:
    """Prepare the base revision's plans in a subprocess rooted in its worktree.

    A subprocess, because the head's modules are already imported here and would shadow the
    base's (same module names, different code).
    """
    result = runner.worker(plans, ["prepare", "--cache-dir", str(cache_dir)], 900.0, root=base_root)
    return [BenchmarkPlan.from_dict(p) for p in result["plans"]], dict(result["errors"])


def alone(plan: BenchmarkPlan) -> bool:
    """A load run (its serving pool and dispatcher) or a data pipeline (its loader's worker
    processes) uses more cores than its ``threads``: its rounds never run side by side with
    the other side's (``parallel``), whose load would shape its tail."""
    return plan.load is not None or plan.data is not None


class PairedRunner:
    """Runs ``ab`` rounds (two processes) and ``duet`` rounds (one process) for plan pairs."""

    def __init__(
        self, runner: Runner, base_root: Path, parallel: bool = True, pinned: bool = False
    ) -> None:
        self.runner = runner
        self.base_root = base_root
        self.random = runner.random
        self.parallel = parallel  # base and head workers side by side where the cores allow
        self.pinned = pinned  # ... each on a core of its own, assigned at random per round

    def _collect(self, into: PairedRounds, arm: str, result: RoundResult, index: int) -> None:
        for name, message in result["errors"].items():
            label = "base revision" if arm == "base" else "head"
            into.errors.setdefault(name, f"{label}, round {index}: {message}")
        target = into.base if arm == "base" else into.head
        for name, entry in result["results"].items():
            target.setdefault(name, []).append(entry)

    def run(
        self,
        ab_pairs: list[tuple[BenchmarkPlan, BenchmarkPlan]],
        duet_pairs: list[tuple[BenchmarkPlan, BenchmarkPlan]],
        rounds: int,
        into: PairedRounds,
    ) -> None:
        """Add ``rounds`` rounds for the given pairs (benchmarks that failed are skipped)."""
        for _, head in ab_pairs:
            side_by_side = self.parallel and parallel_possible(head.threads) and not alone(head)
            into.modes[head.name] = "parallel" if side_by_side else "ab"
        for _, head in duet_pairs:
            into.modes[head.name] = "duet"
        for _ in range(rounds):
            ab = [(b, h) for b, h in ab_pairs if h.name not in into.errors]
            duet = [(b, h) for b, h in duet_pairs if h.name not in into.errors]
            if not ab and not duet:
                return
            index = 1 + max((into.rounds_of(h.name) for _, h in ab + duet), default=0)
            groups = self._groups(ab, duet)
            names = names_of(sorted({h.name for _, h in ab + duet}))
            order = " | ".join(" / ".join(jobs) for _, _, jobs in groups)
            self.runner.progress(f"paired round {index}: {order} ({names})")
            for group_ab, group_duet, jobs in groups:
                self._round(group_ab, group_duet, jobs, index, into)

    def _groups(
        self,
        ab: list[tuple[BenchmarkPlan, BenchmarkPlan]],
        duet: list[tuple[BenchmarkPlan, BenchmarkPlan]],
    ) -> list[tuple[list[Pair], list[Pair], list[str]]]:
        """The round's pairs by thread count (a process's thread pools are sized at its start)
        and whether they need the machine alone (``alone``), the groups in a random order and
        each group's jobs (base, head, duet) in a random order; a group's jobs run back to
        back, so its arms are measured close together."""
        keys = sorted({(h.threads, alone(h)) for _, h in ab + duet})
        self.random.shuffle(keys)
        groups = []
        for count, solo in keys:
            group_ab = [pair for pair in ab if (pair[1].threads, alone(pair[1])) == (count, solo)]
            group_duet = [
                pair for pair in duet if (pair[1].threads, alone(pair[1])) == (count, solo)
            ]
            if group_ab and self.parallel and parallel_possible(count) and not solo:
                jobs = ["parallel"]  # base and head at the same time (gate.measure.lockstep)
            else:
                jobs = ["base", "head"] if group_ab else []
            jobs += ["duet"] if group_duet else []
            self.random.shuffle(jobs)
            groups.append((group_ab, group_duet, jobs))
        return groups

    def _side_by_side(self, ab: list[Pair], seed: str, load_seed: str) -> dict[str, dict[str, Any]]:
        """The base and head workers of a round at the same time, in step: one seed (the same
        benchmark order) and a barrier before each timed measurement. Raises MeasurementError
        when either fails."""
        barrier = Barrier()
        # mode -> the worker's answer (messages.RoundResult, DuetResult)
        outcome: dict[str, Any] = {}
        failures: list[MeasurementError] = []
        arms = ["base", "head"]
        self.random.shuffle(arms)  # which one is spawned first

        cores = sorted(os.sched_getaffinity(0))
        threads = max(h.threads for _, h in ab)

        def run(index: int, arm: str) -> None:
            side = [b if arm == "base" else h for b, h in ab]
            if self.pinned:  # a child inherits the affinity of the thread that spawns it
                own = cores[index * threads : (index + 1) * threads]
                os.sched_setaffinity(0, own)
            try:
                outcome[arm] = self.runner.worker(
                    side,
                    [
                        *("round", "--seed", seed, "--load-seed", load_seed),
                        *("--barrier", barrier.spec(index)),
                    ],
                    self.runner.round_timeout(side),
                    root=self.base_root if arm == "base" else None,
                    pass_fds=barrier.fds(index),
                    on_start=lambda: barrier.started(index),
                )
            except MeasurementError as exc:
                failures.append(exc)
            finally:
                barrier.started(index)

        workers = [threading.Thread(target=run, args=(i, arm)) for i, arm in enumerate(arms)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        barrier.join(timeout=10.0)
        if failures:
            raise failures[0]
        return outcome

    def _round(
        self,
        ab: list[Pair],
        duet: list[Pair],
        jobs: list[str],
        index: int,
        into: PairedRounds,
    ) -> None:
        """One round of one thread count's pairs; a worker that fails fails its pairs."""
        # mode -> the worker's answer (messages.RoundResult, DuetResult)
        outcome: dict[str, Any] = {}
        load_seed = str(self.random.randrange(2**31))  # both sides' load runs: one arrival draw
        try:
            for job in jobs:
                seed = str(self.random.randrange(2**31))
                if job == "parallel":
                    outcome.update(self._side_by_side(ab, seed, load_seed))
                elif job == "duet":
                    outcome["duet"] = self.runner.worker(
                        [h for _, h in duet],
                        ["duet", "--seed", seed],
                        self.runner.round_timeout([h for _, h in duet]) * 2,
                        extra={"base_plans": [b.to_dict() for b, _ in duet]},
                    )
                else:
                    side = [b if job == "base" else h for b, h in ab]
                    outcome[job] = self.runner.worker(
                        side,
                        ["round", "--seed", seed, "--load-seed", load_seed],
                        self.runner.round_timeout(side),
                        root=self.base_root if job == "base" else None,
                    )
        except MeasurementError as exc:
            for _, head in ab + duet:
                into.errors.setdefault(head.name, f"paired round {index}: {exc}")
            return
        # Keep the pairing: a round counts for a benchmark only if both arms measured it.
        if ab:
            failed = set(outcome["base"]["errors"]) | set(outcome["head"]["errors"])
            for arm in ("base", "head"):
                result: RoundResult = outcome[arm]
                kept = RoundResult(
                    order=result["order"],
                    results={k: v for k, v in result["results"].items() if k not in failed},
                    errors=result["errors"],
                )
                self._collect(into, arm, kept, index)
            self.runner.observe(outcome["head"]["results"])
        if duet:
            self._collect(into, "base", outcome["duet"]["base"], index)
            self._collect(into, "head", outcome["duet"]["head"], index)
            self.runner.observe(outcome["duet"]["head"]["results"])
