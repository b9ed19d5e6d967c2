"""One gate run from start to finish, in the timing mode that applies (orchestration layer).

``stored``: timing rounds compared with the baseline's stored rounds. ``ab``: the base revision
checked out in a worktree and measured in interleaved rounds with the head, paired per round.
``duet``: onnxruntime variants of base and head in one process, calls alternated. ``auto`` picks
``ab`` (with ``duet`` for onnxruntime variants) when a base revision is available, else
``stored``. Paired rounds are sequential (``gate/decide/sequential.py``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from gate import records_app as app
from gate.config import GateConfig
from gate.core.types import BenchmarkError, RunRecord, Sample
from gate.decide.calibrate import unresolvable
from gate.decide.compare import PairedBaseline
from gate.decide.limits import launch_bound_notes
from gate.decide.sequential import BaseRevision, looks, paired_timing
from gate.diagnose.investigation import NO_BASE, BaseSide, Investigation
from gate.errors import ConfigError, MeasurementError
from gate.measure import BenchmarkPlan, base_imports, custom
from gate.measure.environment import git_info, gpu_state, gpu_state_changes
from gate.measure.quality import evaluate
from gate.measure.runner import (
    Measured,
    Progress,
    Runner,
    prepare_all,
)
from gate.store import baselines
from gate.store.git import BaseRevisionUnavailable, Git


@dataclass(frozen=True, kw_only=True)
class GateRequest:
    """What to run: from the CLI or the pytest plugin."""

    selected: set[str] | None = None
    perf_nodes: tuple[str, ...] = ()
    pytest_root: Path | None = None
    pytest_args: tuple[str, ...] = ()
    extra_samples: tuple[Sample, ...] = ()
    extra_errors: tuple[BenchmarkError, ...] = ()
    mode: str | None = None
    base_ref: str | None = None
    baseline_path: Path | None = None
    baseline_key: str | None = None
    results_path: Path | None = None
    save: bool = False
    diagnose: str | None = None  # overrides policy.diagnose.when (--profile: "always")


@dataclass
class _Run:
    """What a gate run carries from preparation to the decision."""

    config: GateConfig
    request: GateRequest
    runner: Runner
    plans: list[BenchmarkPlan]
    measured: Measured
    notes: list[str]
    baseline_path: Path
    gpu_before: list[dict[str, str]]


def resolve_mode(
    config: GateConfig, request: GateRequest, baseline: RunRecord | None
) -> tuple[str, str | None, list[str]]:
    """(mode, base commit or None, notes): ``stored`` whenever no base revision can be used."""
    mode = request.mode or config.policy.timing_mode
    if mode == "stored":
        return "stored", None, []
    ref = request.base_ref or (baseline.git.commit if baseline else None)
    if ref is None:
        note = "no base revision (no baseline commit, no --ab REF): timings compared as stored"
        return "stored", None, [note] if mode != "auto" else []
    git = Git(config.root)
    try:
        commit = git.resolve(ref)
    except BaseRevisionUnavailable as exc:
        return "stored", None, [f"{exc.message}; timings compared as stored instead"]
    head = git_info(config.root)
    if head.commit == commit and not head.dirty:
        return (
            "stored",
            None,
            ["the base revision is the current commit: timings compared as stored"],
        )
    return mode, commit, []


def _measure_stored(
    config: GateConfig,
    request: GateRequest,
    runner: Runner,
    plans: list[BenchmarkPlan],
    measured: Measured,
    rng: random.Random,
    progress: Progress,
) -> None:
    """Timing rounds, probes and custom rounds of the head alone (``stored`` mode)."""
    if plans:
        head = runner.measure(plans)
        measured.samples += head.samples
        measured.errors += head.errors
        measured.info.update(head.info)
    if request.perf_nodes and request.pytest_root:
        tests = _custom_arms(config, request, progress, rng, None)
        tests.run(tests.nodes, config.measure.rounds, planned=config.measure.rounds)
        head_tests, _ = tests.measured()
        measured.samples += head_tests.samples
        measured.errors += head_tests.errors


def _custom_arms(
    config: GateConfig,
    request: GateRequest,
    progress: Progress,
    rng: random.Random,
    base_root: Path | None,
) -> custom.CustomRounds:
    """Rounds of the ``perf`` tests: the head's pytest root, and the base's in ``ab`` mode."""
    assert request.pytest_root is not None
    arms = {"head": request.pytest_root}
    if base_root is not None:
        arms["base"] = base_root
    return custom.CustomRounds(
        list(request.perf_nodes),
        arms,
        work_dir=config.report_dir / "work",
        extra_args=list(request.pytest_args),
        threads=config.measure.threads,
        progress=progress,
        rng=rng,
    )


def run_gate(config: GateConfig, request: GateRequest, progress: Progress) -> app.Outcome:
    """Measure, compare and write the reports; returns the Outcome (exit code, table, files).

    Raises GateError subclasses for what the user must fix (bad baseline, refused save)."""
    app.check_report_dir(config)
    if request.save:
        baselines.refuse_pull_request_save()
    baseline_path = request.baseline_path or baselines.locate(config, request.baseline_key)
    if request.baseline_path and not request.save and not baseline_path.exists():
        raise ConfigError(
            f"{baseline_path}: the baseline given on the command line does not exist; check the "
            "path, or record one with --save / --perf-gate-save",
            slug="baseline-missing",
        )
    local_notes = baselines.check_local(baseline_path, save=request.save)
    baseline, _ = app.load_baseline(baseline_path, save=request.save)
    mode, commit, notes = resolve_mode(config, request, baseline)
    notes = [*local_notes, *notes]
    plans, prepare_errors, skipped = prepare_all(config, request.selected, progress)
    notes += skipped
    gpu_before = gpu_state() if any(p.cuda for p in plans) else []
    runner = Runner(config.measure, config.root, config.report_dir / "work", progress)
    rng = random.Random(config.measure.seed)
    measured = Measured(errors=list(prepare_errors) + list(request.extra_errors))
    run = _Run(config, request, runner, plans, measured, notes, baseline_path, gpu_before)
    paired: PairedBaseline | None = None
    if commit is None:
        _measure_stored(config, request, runner, plans, measured, rng, progress)
        investigation = _investigation(config, request, runner, plans, None)
    else:
        git = Git(config.root)
        top = git.toplevel()
        with git.worktree(commit) as tree, base_imports.isolated(top, tree) as imports:
            base = BaseRevision(
                commit=commit,
                root=tree / config.root.relative_to(top),
                pytest_root=tree / request.pytest_root.relative_to(top)
                if request.pytest_root
                else None,
            )
            if not base.root.is_dir():
                notes.append(
                    f"{config.root.relative_to(top)} does not exist in the base revision "
                    f"{commit[:12]}: timings compared as stored"
                )
                _measure_stored(config, request, runner, plans, measured, rng, progress)
                investigation = _investigation(
                    config,
                    request,
                    runner,
                    plans,
                    None,
                    f"{config.root.relative_to(top)} does not exist in the base revision "
                    f"{commit[:12]}: nothing to profile against",
                )
                return _finish(
                    run,
                    None,
                    diagnose=investigation,
                )
            tests = None
            if request.perf_nodes and request.pytest_root and base.pytest_root:
                tests = _custom_arms(config, request, progress, rng, base.pytest_root)
            try:
                timing = paired_timing(
                    config, runner, base, plans, mode, progress, tests, baseline=baseline
                )
            except MeasurementError:
                imports.check()  # a base worker that ran head code failed: say so, exit 2
                raise
            imports.check()
            measured.samples += timing.head
            measured.errors += timing.errors
            if plans:
                probes = runner.measure(plans, timing=False)
                measured.samples += probes.samples
                measured.info.update(probes.info)
                measured.errors += probes.errors
            if timing.base:  # rows measured in process (pytest-benchmark) stay stored
                notes.append(
                    f"timings paired against base revision {commit[:12]} ({mode}), measured "
                    "from a worktree with this interpreter and packages"
                )
            paired = timing.paired_baseline(looks(config))
            # Diagnosis happens after the decision, while the worktree still exists.
            side = BaseSide(root=base.root, plans=timing.base_plans, pytest_root=base.pytest_root)
            return _finish(
                run,
                paired,
                diagnose=_investigation(config, request, runner, plans, side),
            )
    return _finish(
        run,
        paired,
        diagnose=investigation,
    )


def _investigation(
    config: GateConfig,
    request: GateRequest,
    runner: Runner,
    plans: list[BenchmarkPlan],
    base: BaseSide | None,
    no_base: str = NO_BASE,
) -> Investigation:
    """The diagnosis step of this run (``base`` None: nothing to profile against)."""
    return Investigation(
        config=config,
        runner=runner,
        when=request.diagnose or config.diagnose.when,
        head_plans={p.name: p for p in plans},
        base=base,
        no_base=no_base,
        perf_nodes=request.perf_nodes,
        pytest_root=request.pytest_root,
        pytest_args=request.pytest_args,
    )


def _finish(
    run: _Run, paired: PairedBaseline | None, *, diagnose: app.Diagnose | None = None
) -> app.Outcome:
    """Evaluate quality, write the record, decide, diagnose; notes on GPU state changes and
    launch-bound benchmarks join the run's notes."""
    config, request, measured = run.config, run.request, run.measured
    evaluated = evaluate(config, run.runner, run.plans, run.runner.progress)
    measured.samples += evaluated.samples + list(request.extra_samples)
    measured.errors += evaluated.errors
    for name, info in evaluated.info.items():
        measured.info.setdefault(name, {}).update(info)
    if not measured.samples and not measured.errors:
        raise ConfigError(
            "nothing was measured: no config models, no tests using the 'perf' fixture and no "
            "pytest-benchmark results were selected",
            slug="nothing-measured",
        )
    record = app.make_record(config, measured.samples, measured.info, measured.errors)
    calibrated = request.baseline_path or config.baseline
    notes = run.notes + unresolvable(config, calibrated, str(record.environment.get("key")))
    if run.gpu_before:
        notes += gpu_state_changes(run.gpu_before, gpu_state())
    notes += launch_bound_notes(record)
    return app.gate_record(
        config,
        record,
        baseline_path=run.baseline_path,
        results_path=request.results_path,
        save=request.save,
        paired=paired,
        notes=tuple(notes),
        diagnose=diagnose,
    )
