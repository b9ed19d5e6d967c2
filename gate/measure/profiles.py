"""The parent side of diagnosis: profiling workers for one side (base or head), traces kept.

Model variants are profiled by one ``python -m gate.measure.worker.main profile`` process per side
(all benchmarks of the diagnosis in it, so torch is imported once), ``perf`` tests by one
``pytest --perf-gate-worker`` process per side with ``--perf-gate-worker-profile``. Traces land
in ``<report_dir>/profiles/<benchmark>/{base,head}.json``; one over the size limit is deleted
and the profile says why. A failure is returned as text per benchmark, never raised: a
diagnosis that cannot be made must not change the verdict.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import replace
from pathlib import Path

from gate.core.diagnosis import OperatorProfile
from gate.errors import MeasurementError
from gate.measure import BenchmarkPlan
from gate.measure.custom import run_pytest_worker
from gate.measure.runner import Runner
from gate.units import UNIT_BYTES, format_value

PROFILES = "profiles"
WORKER_OPTION = "--perf-gate-worker-profile"
# A profile, or the reason there is none (one line).
Profiled = OperatorProfile | str
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-\[\]]")


def trace_folder(benchmark: str) -> str:
    """The folder name of a benchmark's traces: the name itself where it is safe in paths and
    artifact names, else with other characters as ``_`` and a short hash (still unique)."""
    safe = _UNSAFE.sub("_", benchmark)
    if safe == benchmark and not safe.startswith("."):
        return safe
    digest = hashlib.sha1(benchmark.encode()).hexdigest()[:8]
    return f"{safe.lstrip('.')[:100]}-{digest}"


class Profiler:
    """Runs the profiling workers of a diagnosis and puts their traces in place."""

    def __init__(self, runner: Runner, folder: Path, max_trace: float) -> None:
        self.runner = runner
        self.folder = folder
        self.max_trace = max_trace

    def reset(self) -> None:
        """Remove the traces of an earlier run, so the artifact holds this run's only."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def models(
        self, side: str, targets: list[tuple[BenchmarkPlan, int]], root: Path
    ) -> dict[str, Profiled]:
        """Profile each (plan, batch size) in a worker rooted at ``root``: one worker per
        thread count, as in the rounds (thread variables are read when the libraries load)."""
        if not targets:
            return {}
        scratch = self.folder / f".{side}"
        document = {
            plan.name: {"batch_size": batch_size, "trace": str(scratch / f"{index}.json")}
            for index, (plan, batch_size) in enumerate(targets)
        }
        profiled: dict[str, Profiled] = {}
        for plans in self.runner.thread_groups([plan for plan, _ in targets]):
            try:
                result = self.runner.worker(
                    plans,
                    ["profile"],
                    120.0 + 60.0 * len(plans),
                    root=root,
                    extra={"profile": {plan.name: document[plan.name] for plan in plans}},
                )
            except MeasurementError as exc:
                profiled.update({plan.name: exc.message for plan in plans})
                continue
            profiled.update(result["errors"])
            for name, data in result["profiles"].items():
                profiled[name] = self._place(OperatorProfile.from_dict(data), name, side)
        shutil.rmtree(scratch, ignore_errors=True)
        return profiled

    def tests(
        self,
        side: str,
        metrics: dict[str, str],
        root: Path,
        extra_args: list[str],
        threads: int,
    ) -> dict[str, Profiled]:
        """Profile ``perf`` tests (node id -> the metric to diagnose) in one pytest worker."""
        if not metrics:
            return {}
        scratch = self.folder / f".{side}"
        try:
            document = run_pytest_worker(
                root,
                list(metrics),
                [*extra_args, f"{WORKER_OPTION}={scratch}"],
                threads,
                self.runner.work_dir,
            )
        except MeasurementError as exc:
            return {nodeid: exc.message for nodeid in metrics}
        profiled: dict[str, Profiled] = {}
        for nodeid, metric in metrics.items():
            failure = document.get("errors", {}).get(nodeid)
            measured = document["results"].get(nodeid, {}).get(metric) or {}
            if failure:
                profiled[nodeid] = f"the test failed while profiled: {failure}"
            elif measured.get("profile") is None:
                profiled[nodeid] = f"the test measured no {metric} in the profiling run"
            else:
                profile = OperatorProfile.from_dict(measured["profile"])
                profiled[nodeid] = self._place(profile, nodeid, side)
        shutil.rmtree(scratch, ignore_errors=True)
        return profiled

    def _place(self, profile: OperatorProfile, benchmark: str, side: str) -> OperatorProfile:
        if profile.trace is None:
            return profile
        source = Path(profile.trace)
        if not source.is_file():
            return replace(profile, trace=None, trace_note=f"the {side} trace was not written")
        size = source.stat().st_size
        if size > self.max_trace:
            source.unlink()
            note = (
                f"{side} trace not kept: {format_value(size, UNIT_BYTES)} is over "
                f"policy.diagnose.max_trace ({format_value(self.max_trace, UNIT_BYTES)})"
            )
            return replace(profile, trace=None, trace_note=note)
        target = self.folder / trace_folder(benchmark) / f"{side}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        source.replace(target)
        return replace(profile, trace=str(target))
