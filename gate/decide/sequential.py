"""Sequential paired rounds (``ab`` and ``duet``): the orchestration of a paired gate run.

The base revision's plans are prepared in its worktree; every benchmark (config models and
``perf`` tests alike) gets ``min_rounds`` paired rounds, then those still inconclusive get
``round_step`` more, up to ``max_rounds`` or ``time_budget``. Each look is a trial decision over
the whole run, and the alpha of every look is split ``looks`` ways, so stopping early cannot
inflate the false-alarm rate (docs/STATISTICS.md, section 6).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gate.config import GateConfig, benchmark_name
from gate.core import stats
from gate.core.types import (
    BenchmarkError,
    Direction,
    Metric,
    RequestedMode,
    RunRecord,
    Sample,
    TimingMode,
)
from gate.decide.compare import TIMING_FAMILIES, PairedBaseline, decide, inconclusive_benchmarks
from gate.measure import ONNX_VARIANTS, BenchmarkPlan
from gate.measure.custom import CustomRounds
from gate.measure.paired import PairedRounds, PairedRunner, prepare_base
from gate.measure.runner import Progress, Runner, names_of, plan_model
from gate.measure.samples import round_samples, round_value

# Replacement rounds per benchmark for slow processes, at most: policy.max_rounds (beyond it,
# slow rounds stay and the decision's gross-outlier rule and interval deal with them). With 8,
# every quiet A/A live run of 2026-12-06 used them all and a third still ended inconclusive.


@dataclass
class BaseRevision:
    """The base revision checked out in a temporary worktree."""

    commit: str
    root: Path  # the config directory inside the worktree
    pytest_root: Path | None
    python: str | None = None  # the base environment's interpreter (None: this one)


def looks(config: GateConfig) -> int:
    """How often a benchmark can be looked at: min_rounds, then every round_step to max_rounds."""
    policy = config.policy
    return 1 + math.ceil(max(0, policy.max_rounds - policy.min_rounds) / policy.round_step)


def rebase_plan(plan: BenchmarkPlan, head_root: Path, base_root: Path) -> BenchmarkPlan:
    """The same benchmark as seen from the base revision's worktree."""
    onnx = plan.onnx
    if onnx and Path(onnx).is_relative_to(head_root):
        onnx = str(base_root / Path(onnx).relative_to(head_root))
    return replace(plan, root=str(base_root), onnx=onnx)


@dataclass
class PairedTiming:
    """What the paired rounds of a run produced."""

    head: list[Sample]  # the head's timing samples, and every sample of its custom benchmarks
    base: list[Sample]  # the base revision's, same benchmarks and rounds
    modes: dict[str, TimingMode]  # benchmark -> ab | parallel | duet
    base_plans: dict[str, BenchmarkPlan]  # the base revision's prepared plans by name
    errors: list[BenchmarkError]
    notes: dict[str, str] = field(default_factory=dict)  # benchmark -> rounds replaced, why
    info: dict[str, dict[str, Any]] = field(default_factory=dict)  # the tests' row notes
    # the base side's tests' other samples (perf.record values, memory): a baseline of the run
    # where none is stored (gate/base_run.py)
    base_other: list[Sample] = field(default_factory=list)

    def paired_baseline(self, looks: int) -> PairedBaseline:
        """The base side for the decision; ``looks`` is 1 when nothing was paired."""
        return PairedBaseline(
            samples=tuple(self.base),
            modes=self.modes,
            looks=looks if self.base else 1,
            notes=self.notes,
        )


def paired_timing(
    config: GateConfig,
    runner: Runner,
    base: BaseRevision,
    head_plans: list[BenchmarkPlan],
    mode: RequestedMode,
    progress: Progress,
    tests: CustomRounds | None = None,
    baseline: RunRecord | None = None,
) -> PairedTiming:
    """Sequential paired rounds of the config's models and of the ``perf`` tests in ``tests``:
    ``min_rounds``, then ``round_step`` more for those still inconclusive, judged together as one
    run (with ``baseline`` for what is compared as stored, so every look tests the same family).
    A round in which one side's process ran slow as a whole (``stats.slow_processes``, against
    that side's own rounds) is replaced by a fresh pair, up to ``policy.max_rounds`` per
    benchmark."""
    policy = config.policy
    by_name: dict[str, BenchmarkPlan] = {}
    rounds = PairedRounds()
    ab_pairs: list[tuple[BenchmarkPlan, BenchmarkPlan]] = []
    duet_pairs: list[tuple[BenchmarkPlan, BenchmarkPlan]] = []
    if head_plans:
        by_name = _prepare_base(config, runner, base, head_plans, rounds, progress)
        for head in head_plans:
            if head.name not in by_name:
                continue
            pair = (by_name[head.name], head)
            # one process cannot hold two environments: a base environment of its own -> ab
            use_duet = (
                head.variant in ONNX_VARIANTS
                and mode in ("auto", "duet")
                and base.python is None
                and head.load is None  # a load run needs the process to itself
            )
            (duet_pairs if use_duet else ab_pairs).append(pair)
    nodes = list(tests.nodes) if tests is not None else []
    paired = PairedRunner(
        runner, base.root, parallel=policy.parallel != "never", pinned=policy.parallel == "pinned"
    )

    def more(names: set[str] | None, count: int) -> None:
        def chosen(pair: tuple[BenchmarkPlan, BenchmarkPlan]) -> bool:
            return names is None or pair[1].name in names

        paired.run(
            [p for p in ab_pairs if chosen(p)], [p for p in duet_pairs if chosen(p)], count, rounds
        )
        if tests is not None:
            tests.run([n for n in nodes if names is None or n in names], count)

    def rounds_of(name: str) -> int:
        return (
            tests.rounds_of(name) if tests is not None and name in nodes else rounds.rounds_of(name)
        )

    def collected() -> PairedTiming:
        heads, bases = _timing_samples(head_plans, by_name, rounds)
        modes = dict(rounds.modes)
        errors = [BenchmarkError(benchmark=n, message=m) for n, m in rounds.errors.items()]
        info: dict[str, dict[str, Any]] = {}
        others: list[Sample] = []
        if tests is not None:
            head_tests, base_tests = tests.measured()
            heads += head_tests.samples  # perf.record values and memory too, compared as stored
            for sample in base_tests.samples if base_tests else []:
                timed = sample.metric.family in TIMING_FAMILIES
                (bases if timed else others).append(sample)
            errors += head_tests.errors
            info = head_tests.info
            modes.update({n: tests.mode_of(n) for n in nodes})
        notes = replaced.notes()
        for name, note in out_of_time.items():
            notes[name] = "; ".join(filter(None, [notes.get(name), note]))
        return PairedTiming(heads, bases, modes, by_name, errors, notes, info, others)

    extendable = {h.name for _, h in ab_pairs + duet_pairs} | set(nodes)
    replaced = _Replaced(limit=policy.max_rounds)
    # Only pairs measured by two processes can have one slow side: a duet's arms share one.
    two_process = {h.name for _, h in ab_pairs} | set(nodes)
    started = time.monotonic()
    out_of_time: dict[str, str] = {}  # benchmark -> the note of a budget that ran out

    def within_budget() -> bool:
        return time.monotonic() - started <= policy.time_budget

    def replace_slow() -> None:
        owed: dict[str, int] = {}  # rounds dropped and not yet run again, per benchmark
        while within_budget():
            missing = replaced.drop_slow(rounds, tests, two_process)
            if missing:
                progress(
                    "slow process(es), rounds to run again: "
                    + names_of([f"{name} round {r}" for name, r in missing])
                )
            for name, _ in missing:
                owed[name] = owed.get(name, 0) + 1
            due = {name for name, count in owed.items() if count > 0}
            if not due:
                return
            more(due, 1)
            for name in due:
                owed[name] -= 1

    def pending() -> set[str]:
        """Benchmarks still inconclusive and below max_rounds: only they get more rounds, so
        no benchmark is looked at more often than the alpha split assumes."""
        so_far = collected()
        trial = decide(
            baseline,
            RunRecord(samples=tuple(so_far.head), environment={}),
            policy,
            paired=so_far.paired_baseline(looks(config)),
        )
        return {
            name
            for name in inconclusive_benchmarks(trial)
            if name in extendable and rounds_of(name) < policy.max_rounds
        }

    more(None, policy.min_rounds)
    replace_slow()
    undecided = pending()
    while undecided and within_budget():
        done = max(rounds_of(name) for name in undecided)
        step = min(policy.round_step, policy.max_rounds - done)
        progress(f"inconclusive after {done} rounds, {step} more: {names_of(sorted(undecided))}")
        more(undecided, step)
        replace_slow()
        undecided = pending()
    if undecided:  # the budget ran out with these still inconclusive: their rows say so
        for name in undecided:
            out_of_time[name] = (
                f"the time budget (policy.time_budget {policy.time_budget:g}s) ran out after "
                f"{rounds_of(name)} rounds"
            )
        progress(
            f"time budget spent ({time.monotonic() - started:.0f}s), still inconclusive: "
            + names_of(sorted(undecided))
        )
    return collected()


def _timing_logs(entry: Mapping[str, Any], custom: bool) -> list[float]:
    """One round's timing values of one side, on the log scale with slower = larger: every
    batch size's median of a model round, every timing metric of a ``perf`` test round."""
    if not custom:
        values = [round_value(b) for b in entry["batches"].values()]
        return [math.log(v) for v in values if v > 0]
    logs = []
    for name, value in entry.items():
        if Metric(name, "", Direction.LOWER).family in TIMING_FAMILIES and value["value"] > 0:
            sign = -1.0 if value.get("higher_is_better") else 1.0
            logs.append(sign * math.log(value["value"]))
    return logs


@dataclass
class _Replaced:
    """Rounds dropped because one side's process ran slow as a whole, per benchmark."""

    limit: int = 24  # replacements per benchmark, at most
    why: dict[str, list[str]] = field(default_factory=dict)

    def drop_slow(
        self, rounds: PairedRounds, tests: CustomRounds | None, names: set[str]
    ) -> list[tuple[str, int]]:
        """Drop (from both arms) each round of ``names`` where a side's process was slow
        against that side's own rounds; returns (benchmark, round number) per dropped round."""
        dropped: list[tuple[str, int]] = []
        for name in sorted(names):
            custom = tests is not None and name in tests.nodes
            arms = (
                {arm: tests.entries[arm].get(name, []) for arm in ("base", "head")}
                if tests is not None and custom
                else {"base": rounds.base.get(name, []), "head": rounds.head.get(name, [])}
            )
            n = min(len(entries) for entries in arms.values())
            if n < 3 or len(self.why.get(name, [])) >= self.limit:
                continue
            slow: dict[int, str] = {}
            for arm, entries in arms.items():
                series = list(zip(*(_timing_logs(e, custom) for e in entries[:n]), strict=False))
                for values in series:
                    for index, factor in stats.slow_processes(values):
                        slow.setdefault(index, f"{arm} {factor:.1f}x")
            room = self.limit - len(self.why.get(name, []))
            for index in sorted(slow, reverse=True)[:room]:
                for entries in arms.values():
                    del entries[index]
                self.why.setdefault(name, []).append(slow[index])
                dropped.append((name, index + 1))
        return dropped

    def notes(self) -> dict[str, str]:
        return {
            name: f"{len(why)} round(s) replaced by a fresh pair: slow process ({', '.join(why)} "
            "its side's median)"
            for name, why in self.why.items()
        }


def _prepare_base(
    config: GateConfig,
    runner: Runner,
    base: BaseRevision,
    head_plans: list[BenchmarkPlan],
    rounds: PairedRounds,
    progress: Progress,
) -> dict[str, BenchmarkPlan]:
    """The base revision's prepared plans by name; what failed to prepare goes to ``rounds``."""
    wanted = {p.name for p in head_plans}
    originals = [  # unprepared: the base's own code is exported, the base's own files used
        rebase_plan(plan_model(model, variant, config), config.root, base.root)
        for model in config.models
        for variant in model.plan_variants
        if benchmark_name(model.name, variant) in wanted
    ]
    calibrated = {p.name: p.calibration for p in head_plans}  # both sides on the same batches
    originals = [replace(p, calibration=calibrated.get(p.name)) for p in originals]
    progress(f"preparing the base revision {base.commit[:12]} in a worktree")
    cache = config.report_dir / "cache" / "base"
    base_plans, base_errors = prepare_base(runner, originals, base.root, cache)
    for name, message in base_errors.items():
        rounds.errors[name] = f"base revision {base.commit[:12]}: {message}"
    return {p.name: p for p in base_plans}


def _timing_samples(
    head_plans: list[BenchmarkPlan], base_by_name: dict[str, BenchmarkPlan], rounds: PairedRounds
) -> tuple[list[Sample], list[Sample]]:
    heads: list[Sample] = []
    bases: list[Sample] = []
    for plan in head_plans:
        n = rounds.rounds_of(plan.name)
        if plan.name in rounds.errors or n == 0 or plan.name not in base_by_name:
            continue
        heads.extend(round_samples(plan, rounds.head[plan.name][:n]))
        bases.extend(round_samples(base_by_name[plan.name], rounds.base[plan.name][:n]))
    return heads, bases
