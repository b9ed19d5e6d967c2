"""After the decision: profile base and head of the benchmarks that need a diagnosis, diff them.

The pipeline calls an :class:`Investigation` with the GateResult while the base revision's
worktree still exists; it picks the benchmarks (``diff.targets``), runs one profiling worker
per side (``measure.profiles``), and diffs the profiles (``diff.diff``). Every failure becomes
a Diagnosis that says why it is missing: profiling can never change a verdict or the exit
code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gate.config import GateConfig
from gate.core.diagnosis import Diagnosis, OperatorProfile
from gate.core.types import Comparison, GateResult
from gate.diagnose.diff import diff, missing, targets
from gate.measure import BenchmarkPlan
from gate.measure.profiles import PROFILES, Profiled, Profiler
from gate.measure.runner import Runner

NO_BASE = (
    "no base revision to profile against (timings compared as stored); give one with "
    "--ab REF (perf-gate run) or --perf-gate-ab REF (pytest), or keep the baseline's commit in "
    "the clone (actions/checkout fetch-depth: 0)"
)
NOT_RERUNNABLE = (
    "not profiled: perf-gate re-runs only the config's models and tests using the perf "
    "fixture, and this result came from elsewhere (pytest-benchmark's in-process rounds)"
)


@dataclass(frozen=True, kw_only=True)
class BaseSide:
    """The base revision as the profiling workers need it (inside its worktree)."""

    root: Path  # the config directory in the worktree
    plans: Mapping[str, BenchmarkPlan]  # prepared in the worktree, by benchmark name
    pytest_root: Path | None = None


@dataclass(frozen=True, kw_only=True)
class Investigation:
    """Called with the gate's decision; returns one Diagnosis per benchmark that needs one."""

    config: GateConfig
    runner: Runner
    when: str
    head_plans: Mapping[str, BenchmarkPlan]
    base: BaseSide | None
    no_base: str = NO_BASE
    perf_nodes: tuple[str, ...] = ()
    pytest_root: Path | None = None
    pytest_args: tuple[str, ...] = ()

    def __call__(self, result: GateResult) -> tuple[Diagnosis, ...]:
        chosen = targets(result, self.when)
        try:
            return self._diagnose(chosen)
        except Exception as exc:  # the one boundary: a diagnosis must never cost the verdict
            reason = (
                f"the diagnosis failed: {type(exc).__name__}: {exc} (a bug in perf-gate; "
                "please report it)"
            )
            return tuple(missing(c, reason) for c in chosen)

    def _diagnose(self, chosen: list[Comparison]) -> tuple[Diagnosis, ...]:
        profiler = Profiler(
            self.runner, self.config.report_dir / PROFILES, self.config.diagnose.max_trace
        )
        profiler.reset()
        if not chosen:
            return ()
        if self.base is None:
            return tuple(missing(c, self.no_base) for c in chosen)
        done: dict[str, Diagnosis] = {}
        models: list[Comparison] = []
        tests: dict[str, str] = {}
        for comparison in chosen:
            name = comparison.benchmark
            if name in self.head_plans and name in self.base.plans:
                models.append(comparison)
            elif name in self.head_plans:
                done[name] = missing(comparison, "the base revision could not prepare it")
            elif name in self.perf_nodes and self.pytest_root and self.base.pytest_root:
                tests[name] = comparison.metric.name
            else:
                done[name] = missing(comparison, NOT_RERUNNABLE)
        if models or tests:
            self.runner.progress(
                f"diagnosis: profiling {len(models) + len(tests)} benchmark(s) in base and head"
            )
            profiles = self._profile(profiler, models, tests)
            for comparison in [*models, *(c for c in chosen if c.benchmark in tests)]:
                done[comparison.benchmark] = self._diagnosis(comparison, profiles)
        return tuple(done[c.benchmark] for c in chosen)

    def _profile(
        self, profiler: Profiler, models: list[Comparison], tests: dict[str, str]
    ) -> dict[str, dict[str, Profiled]]:
        """Both sides, in random order (neither always runs on the fresher machine)."""
        assert self.base is not None
        sides = ["base", "head"]
        self.runner.random.shuffle(sides)
        profiles: dict[str, dict[str, Profiled]] = {}
        for side in sides:
            plans = self.base.plans if side == "base" else self.head_plans
            root = self.base.root if side == "base" else self.config.root
            pytest_root = self.base.pytest_root if side == "base" else self.pytest_root
            work = [(plans[c.benchmark], batch_size(c, plans[c.benchmark])) for c in models]
            profiled = profiler.models(side, work, root)
            if tests and pytest_root is not None:
                profiled.update(
                    profiler.tests(
                        side,
                        tests,
                        pytest_root,
                        list(self.pytest_args),
                        self.config.measure.threads,
                    )
                )
            profiles[side] = profiled
        return profiles

    def _diagnosis(
        self, comparison: Comparison, profiles: dict[str, dict[str, Profiled]]
    ) -> Diagnosis:
        sides: dict[str, OperatorProfile] = {}
        for side, label in (("base", "the base revision"), ("head", "the head")):
            profiled = profiles[side].get(comparison.benchmark)
            if profiled is None:
                return missing(comparison, f"profiling {label} returned nothing for it")
            if isinstance(profiled, str):
                return missing(comparison, f"profiling {label} failed: {profiled}")
            sides[side] = profiled
        traces = {
            side: self._shown(profile.trace)
            for side, profile in sides.items()
            if profile.trace is not None
        }
        return diff(comparison, sides["base"], sides["head"], traces=traces)

    def _shown(self, trace: str) -> str:
        """A trace path relative to the config directory (where .perf-gate lives) if inside."""
        path = Path(trace)
        if path.is_relative_to(self.config.root):
            return os.path.relpath(path, self.config.root)
        return str(path)


def batch_size(comparison: Comparison, plan: BenchmarkPlan) -> int:
    """The batch size a model metric was timed at: ``throughput@N`` -> N, else the first."""
    _, _, suffix = comparison.metric.name.partition("@")
    return int(suffix) if suffix.isdigit() else plan.batch_sizes[0]
