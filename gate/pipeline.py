"""One gate run, top to bottom: request -> mode -> measure -> record -> decide -> diagnose ->
write -> render (``run_gate``); and the same without measuring for two records
(``compare_records``).

Timing modes: ``stored`` (timing rounds compared with the baseline's stored rounds), ``ab``
(the base revision checked out in a worktree and measured in rounds paired with the head's;
``parallel`` when both run at once), ``duet`` (onnxruntime variants of base and head in one
process, calls alternated). ``auto`` picks ``ab`` (with ``duet`` for onnxruntime variants) when a
base revision is available, else ``stored``. The paired rounds follow the sequential rule of
``gate/decide/sequential.py``.

Entry points (``gate/integrations``) parse their arguments, build a :class:`GateRequest` and
call in here; collaborators (the progress callback, the clock) are passed in, not imported.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gate import __version__
from gate.base_run import BaseCheckout, base_baseline, base_checkout, resolve_mode
from gate.config import GateConfig
from gate.core.diagnosis import Diagnosis
from gate.core.environment_fields import environment_label
from gate.core.types import (
    BenchmarkError,
    ExitCode,
    GateResult,
    RequestedMode,
    RunRecord,
    Sample,
)
from gate.decide.calibrate import unresolvable
from gate.decide.compare import PairedBaseline, decide, unrelated_baseline
from gate.decide.limits import launch_bound_notes
from gate.decide.sequential import looks, paired_timing
from gate.diagnose.investigation import BaseSide, Investigation
from gate.errors import BaselineError, ConfigError, MeasurementError
from gate.measure import BenchmarkPlan, custom
from gate.measure.environment import (
    environment_key,
    fingerprint,
    git_info,
    gpu_state,
    gpu_state_changes,
)
from gate.measure.lockstep import parallel_possible
from gate.measure.quality import evaluate
from gate.measure.runner import Measured, Prepared, Progress, Runner, prepare_all
from gate.report.content import report_from
from gate.report.diagnosis import render_diagnoses
from gate.report.jsonreport import result_to_dict
from gate.report.terminal import render_table
from gate.store import baseline_store as baselines
from gate.store.dvc import file_md5, tracked_files
from gate.store.records import (
    FileState,
    file_state,
    read_baseline,
    read_record,
    write_json_atomic,
    write_record,
)

# Stored-mode rounds of the tests never stop for the time budget before this many.
MIN_STORED_ROUNDS = 3
RESULTS_NAME = "results.json"
COMPARISON_NAME = "comparison.json"


@dataclass(frozen=True, kw_only=True)
class PytestPart:
    """What only ``pytest --perf-gate`` brings: its ``perf`` tests (measured in worker rounds
    of ``pytest --perf-gate-worker``) and what pytest already measured or saw fail."""

    root: Path
    nodes: tuple[str, ...] = ()
    args: tuple[str, ...] = ()  # the user's options that the worker rounds repeat
    samples: tuple[Sample, ...] = ()  # pytest-benchmark's in-process results
    benchmark_nodes: tuple[str, ...] = ()  # the ``nodes`` that use pytest-benchmark's fixture
    benchmark_time: float | None = None  # the user's --benchmark-max-time (None: the default)
    errors: tuple[BenchmarkError, ...] = ()  # model items and perf tests that failed


@dataclass(frozen=True, kw_only=True)
class GateRequest:
    """What to run: from the CLI, the action or the pytest plugin (``pytest``)."""

    selected: set[str] | None = None  # model benchmark names; None: all of the config's
    mode: RequestedMode | None = None  # overrides policy.timing_mode
    base_ref: str | None = None
    base_env: str | None = None  # overrides policy.base_environment (--base-env)
    baseline_path: Path | None = None
    baseline_key: str | None = None
    results_path: Path | None = None
    save: bool = False
    diagnose: str | None = None  # overrides policy.diagnose.when (--profile: "always")
    pytest: PytestPart | None = None
    # pytest --perf-gate: its model items prepared the selected variants already (in workers)
    prepared: Prepared | None = None


@dataclass
class Outcome:
    """What a gate run produced: the record, the decision, the table and where files went."""

    record: RunRecord
    result: GateResult
    table: str
    exit_code: ExitCode
    files: list[Path] = field(default_factory=list)
    diagnoses: tuple[Diagnosis, ...] = ()


@dataclass(frozen=True)
class Baseline:
    """The baseline a run is compared with, read once: where, what (None: none yet) and, when
    a damaged one is being replaced by ``--save``, what was wrong with it."""

    path: Path
    record: RunRecord | None
    replaced: str = ""
    state: FileState = None  # the file as it was read: --save writes only over that one


# Called with the decision, returns the profile diffs of the benchmarks that need one
# (gate.diagnose.investigation.Investigation); never raises for a profiling failure.
Diagnose = Callable[[GateResult], tuple[Diagnosis, ...]]


def run_gate(config: GateConfig, request: GateRequest, progress: Progress) -> Outcome:
    """Measure, compare and write the reports; returns the Outcome (exit code, table, files).

    Raises GateError subclasses for what the user must fix (bad baseline, refused save)."""
    check_report_dir(config)  # workers exchange files there: before anything is measured
    if request.save:
        baselines.refuse_pull_request_save()
    baseline, notes = _read_baseline(config, request)
    clear_outputs(config, request.results_path, baseline.path)
    mode, commit, mode_notes = resolve_mode(config, request.mode, request.base_ref, baseline.record)
    notes += mode_notes
    # before preparing: the runner reads the compile cache's place from the environment
    # before torch (quantizing in preparation) writes its default there
    runner = Runner(config.measure, config.root, config.report_dir / "work", progress)
    # pytest --perf-gate: its model items prepared (and smoke-ran) them in workers already
    plans, prepare_errors, skipped = request.prepared or prepare_all(
        config, request.selected, progress, runner
    )
    gpu_before = gpu_state() if any(p.cuda for p in plans) else []
    measured = Measured(
        errors=[*prepare_errors, *(request.pytest.errors if request.pytest else ())]
    )
    notes += skipped
    # closing: the runner's preloaded interpreters stop with the run
    pytest_root = request.pytest.root if request.pytest else None
    checkout = base_checkout(config, pytest_root, commit, notes, request.base_env, progress)
    with closing(runner), checkout as base:
        paired = _measure(config, request, runner, plans, measured, base, mode, baseline, notes)
        evaluated = evaluate(config, runner, plans, progress)  # accuracy and parity
        measured.samples += evaluated.samples
        measured.errors += evaluated.errors
        for name, info in evaluated.info.items():
            measured.info.setdefault(name, {}).update(info)
        if request.pytest:  # what worker rounds measured is not also compared in-process
            nodes = set(request.pytest.nodes)
            measured.samples += [s for s in request.pytest.samples if s.benchmark not in nodes]
        if not measured.samples and not measured.errors:
            raise ConfigError(
                "nothing was measured: no config models, no tests using the 'perf' fixture and "
                "no pytest-benchmark results were selected",
                slug="nothing-measured",
            )
        record = make_record(config, measured.samples, measured.info, measured.errors)
        calibrated = request.baseline_path or config.baseline
        notes += unresolvable(config, calibrated, str(record.environment.get("key")))
        if gpu_before:
            notes += gpu_state_changes(gpu_before, gpu_state())
        notes += launch_bound_notes(record)
        if baseline.record is None and not request.save:  # zero-setup: the base is the baseline
            stand_in, base_notes = base_baseline(config, runner, base, record, progress)
            baseline = replace(baseline, record=stand_in)
            notes += base_notes
        # The diagnosis comes after the decision, while the base worktree still exists.
        investigation = _investigation(config, request, runner, plans, base)
        return _decide_and_write(
            config,
            record,
            baseline,
            results_path=request.results_path,
            save=request.save,
            paired=paired,
            notes=tuple(notes),
            diagnose=investigation,
            dependencies=base.dependencies,
        )


def _read_baseline(config: GateConfig, request: GateRequest) -> tuple[Baseline, list[str]]:
    """The run's baseline file (this environment's, or the one given), its record, and notes
    on local changes to it.

    Raises ConfigError for a baseline named on the command line that does not exist,
    BaselineError for a damaged one (unless saving) or a DVC pointer without its content."""
    path = request.baseline_path or baselines.locate(config, request.baseline_key)
    if request.baseline_path and not request.save and not path.exists():
        raise ConfigError(
            f"{path}: the baseline given on the command line does not exist; check the "
            "path, or record one with --save / --perf-gate-save",
            slug="baseline-missing",
        )
    notes = baselines.check_local(path, save=request.save)
    state = file_state(path)
    record, replaced = load_baseline(path, save=request.save)
    return Baseline(path, record, replaced, state), list(notes)


def _measure(
    config: GateConfig,
    request: GateRequest,
    runner: Runner,
    plans: list[BenchmarkPlan],
    measured: Measured,
    base: BaseCheckout,
    mode: RequestedMode,
    baseline: Baseline,
    notes: list[str],
) -> PairedBaseline | None:
    """Timing rounds (stored, or paired with the base revision), probes and the ``perf``
    tests' rounds into ``measured``; the paired baseline when timings were paired."""
    rng = random.Random(config.measure.seed)
    progress = runner.progress
    revision = base.revision
    if revision is None:  # stored: the head alone
        if plans:
            head = runner.measure(plans)
            measured.samples += head.samples
            measured.errors += head.errors
            measured.info.update(head.info)
        if request.pytest and request.pytest.nodes:
            rounds = _custom_arms(config, request.pytest, progress, rng, None)
            _stored_rounds(config, rounds, notes)
            head_tests, _ = rounds.measured()
            measured.samples += head_tests.samples
            measured.errors += head_tests.errors
            _add_info(measured, head_tests.info)
        return None
    assert base.imports is not None
    tests: custom.CustomRounds | None = None
    if request.pytest and request.pytest.nodes and revision.pytest_root:
        tests = _custom_arms(config, request.pytest, progress, rng, revision.pytest_root)
    try:
        timing = paired_timing(
            config, runner, revision, plans, mode, progress, tests, baseline=baseline.record
        )
    except MeasurementError:
        base.imports.check()  # a base worker that ran head code failed: say so, exit 2
        raise
    base.imports.check()
    measured.samples += timing.head
    measured.errors += timing.errors
    _add_info(measured, timing.info)
    if plans:
        probes = runner.measure(plans, timing=False)
        measured.samples += probes.samples
        measured.info.update(probes.info)
        measured.errors += probes.errors
    if timing.base:  # rows measured in process (pytest-benchmark) stay stored
        packages = (
            "its own environment's packages" if revision.python else "this interpreter's packages"
        )
        notes.append(
            f"timings paired against base revision {revision.commit[:12]} ({mode}), measured "
            f"from a worktree with {packages}"
        )
    base.side = BaseSide(
        root=revision.root, plans=timing.base_plans, pytest_root=revision.pytest_root
    )
    base.timing = timing
    return timing.paired_baseline(looks(config))


def _custom_arms(
    config: GateConfig,
    tests: PytestPart,
    progress: Progress,
    rng: random.Random,
    base_root: Path | None,
) -> custom.CustomRounds:
    """Rounds of the ``perf`` and ``benchmark`` tests: the head's pytest root, and the base's
    in ``ab`` mode; a ``benchmark`` test's time per round sized to the time budget."""
    arms = {"head": tests.root}
    if base_root is not None:
        arms["base"] = base_root
    planned = config.policy.min_rounds if base_root is not None else config.measure.rounds
    round_time = tests.benchmark_time or custom.benchmark_round_time(
        len(tests.benchmark_nodes), planned, len(arms), config.policy.time_budget
    )
    fallback: dict[str, list[Sample]] = {}
    for sample in tests.samples:
        if sample.benchmark in tests.benchmark_nodes:
            fallback.setdefault(sample.benchmark, []).append(sample)
    return custom.CustomRounds(
        list(tests.nodes),
        arms,
        work_dir=config.report_dir / "work",
        extra_args=list(tests.args),
        threads=config.measure.threads,
        progress=progress,
        rng=rng,
        round_time=round_time if tests.benchmark_nodes else None,
        fallback=fallback,
        parallel=config.policy.parallel != "never" and parallel_possible(config.measure.threads),
        memory_limit=config.measure.memory_limit,
    )


def _stored_rounds(config: GateConfig, rounds: custom.CustomRounds, notes: list[str]) -> None:
    """``measure.rounds`` rounds of the tests, one at a time, stopping early (after at least
    ``MIN_STORED_ROUNDS``) where the next would end past ``policy.time_budget``."""
    planned = config.measure.rounds
    started = time.monotonic()
    for done in range(planned):
        elapsed = time.monotonic() - started
        if done >= MIN_STORED_ROUNDS and elapsed + elapsed / done > config.policy.time_budget:
            notes.append(
                f"the tests' time budget (policy.time_budget {config.policy.time_budget:g}s) "
                f"ran out after {done} of {planned} rounds ({elapsed:.0f}s, "
                f"{elapsed / done / max(1, len(rounds.nodes)):.2f}s per test and round); "
                "their intervals are wider"
            )
            return
        rounds.run(rounds.nodes, 1, planned=planned)


def _add_info(measured: Measured, info: dict[str, dict[str, Any]]) -> None:
    for name, entries in info.items():
        target = measured.info.setdefault(name, {})
        for key, value in entries.items():
            if key == "row_notes":
                target.setdefault(key, []).extend(value)
            else:
                target[key] = value


def _investigation(
    config: GateConfig,
    request: GateRequest,
    runner: Runner,
    plans: list[BenchmarkPlan],
    base: BaseCheckout,
) -> Investigation:
    """The diagnosis step of this run (no base side: nothing to profile against)."""
    tests = request.pytest
    return Investigation(
        config=config,
        runner=runner,
        when=request.diagnose or config.diagnose.when,
        head_plans={p.name: p for p in plans},
        base=base.side,
        no_base=base.no_base,
        perf_nodes=tests.nodes if tests else (),
        pytest_root=tests.root if tests else None,
        pytest_args=tests.args if tests else (),
    )


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def make_record(
    config: GateConfig,
    samples: list[Sample],
    info: dict[str, dict[str, object]],
    errors: list[BenchmarkError],
    *,
    clock: Callable[[], str] = utc_now,
) -> RunRecord:
    """A run record of what was measured now, with the environment and git context."""
    environment = fingerprint(config.measure.threads)
    environment["key"] = environment_key(environment)
    return RunRecord(
        samples=tuple(samples),
        environment=environment,
        git=git_info(config.root),
        created=clock(),
        tool_version=__version__,
        config_digest=config.digest,
        settings={
            "rounds": config.measure.rounds,
            "warmup": config.measure.warmup,
            "min_calls": config.measure.min_calls,
            "min_time": config.measure.min_time,
            "threads": config.measure.threads,
            "probes": config.measure.probes,
        },
        info=info,
        errors=tuple(errors),
        files=input_files(config),
    )


def input_files(config: GateConfig) -> dict[str, str]:
    """md5 of the files the results depend on besides code: the config's ONNX models and every
    DVC-tracked file under the config directory, except the baselines themselves."""
    folder = config.baseline.parent
    skip = [folder] if folder != config.root else []
    files = {
        path: digest
        for path, digest in tracked_files(config.root, skip).items()
        if not (config.root / path).name.startswith(config.baseline.stem)
        or (config.root / path).parent != folder
    }
    for model in config.models:
        if model.onnx is not None and model.onnx.is_file():
            relative = (
                model.onnx.relative_to(config.root).as_posix()
                if model.onnx.is_relative_to(config.root)
                else str(model.onnx)
            )
            files.setdefault(relative, file_md5(model.onnx))
    return files


def check_report_dir(config: GateConfig) -> None:
    """Create the report folder (``report_dir``) now, before anything is measured into it.

    Raises ConfigError naming the folder, what is in the way and the fix (exit 2)."""
    folder = config.report_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next(
            (p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None
        )
        reason = f"{blocker} is a file, not a folder" if blocker else exc.strerror or str(exc)
        where = f"report_dir in {config.path}" if config.path else "report_dir"
        raise ConfigError(
            f"{folder}: the report folder cannot be created ({reason}); point {where} or "
            "--perf-gate-report at a folder perf-gate can write"
            + (f", or move {blocker} away" if blocker else ""),
            slug="config",
        ) from None


def measure_models(
    config: GateConfig, selected: set[str] | None = None, progress: Progress = lambda m: None
) -> Measured:
    """Prepare and measure the config's model benchmarks (all, or the ``selected`` names).

    Raises ConfigError when the report folder (where workers exchange files) cannot be made."""
    check_report_dir(config)
    runner = Runner(config.measure, config.root, config.report_dir / "work", progress)
    plans, errors, _ = prepare_all(config, selected, progress, runner)
    with closing(runner):
        measured = runner.measure(plans) if plans else Measured()
    measured.errors[:0] = errors
    return measured


def load_baseline(path: Path, *, save: bool) -> tuple[RunRecord | None, str]:
    """The baseline, or None; with ``save``, a damaged one is replaced (its error is the note).

    Raises BaselineError for a damaged baseline when not saving (exit 2).
    """
    try:
        return read_baseline(path), ""
    except BaselineError as exc:
        if not save:
            raise
        # The error message tells users to re-record with --save: that must work.
        return None, f"The previous baseline could not be read and was replaced: {exc}"


def gate_record(
    config: GateConfig,
    record: RunRecord,
    *,
    baseline_path: Path | None = None,
    results_path: Path | None = None,
    save: bool = False,
) -> Outcome:
    """Compare a record made elsewhere (bench/, tests) with the config's baseline: the steps
    of ``run_gate`` after measuring, with the report folder checked and the baseline read.

    Raises as ``_decide_and_write``, and ConfigError for a report folder that cannot be made.
    """
    check_report_dir(config)
    path = baseline_path or config.baseline
    state = file_state(path)
    baseline = Baseline(path, *load_baseline(path, save=save), state=state)
    return _decide_and_write(config, record, baseline, results_path=results_path, save=save)


def _decide_and_write(
    config: GateConfig,
    record: RunRecord,
    baseline: Baseline,
    *,
    results_path: Path | None = None,
    save: bool = False,
    paired: PairedBaseline | None = None,
    notes: tuple[str, ...] = (),
    diagnose: Diagnose | None = None,
    dependencies: Mapping[str, object] | None = None,
) -> Outcome:
    """Decide (timings against ``paired`` when given), diagnose what ``diagnose`` picks (after
    the decision, which it cannot change), write results.json and comparison.json, save the
    baseline if asked, render the terminal table.

    Raises BaselineError for a refused save or a report that cannot be written (exit 2).
    """
    result = decide(baseline.record, record, config.policy, paired=paired)
    if not save:  # a save replaces the baseline: whatever it held no longer matters
        notes = (*notes, *_unrelated_note(baseline.path, baseline.record, record, paired))
    if notes:
        result = replace(result, notes=(*notes, *result.notes))
    diagnoses = diagnose(result) if diagnose is not None and not save else ()
    report_dir = config.report_dir
    results_path = results_path or report_dir / RESULTS_NAME
    comparison_path = report_dir / COMPARISON_NAME
    files = [results_path, comparison_path]
    write_record(results_path, record)
    data = report_dict(result, record, diagnoses)  # comparison.json, and the report model's source
    if dependencies is not None:  # the base side's own environment (base_run.dependencies_block)
        data["dependencies"] = dict(dependencies)
    try:
        write_json_atomic(comparison_path, data)
    except OSError as exc:
        raise BaselineError(
            f"{comparison_path}: cannot write: {exc}", slug="baseline-write"
        ) from exc
    table = render_table(report_from(data), saving=save) + render_diagnoses(diagnoses)
    exit_code = result.exit_code
    if save:
        if record.errors:
            names = ", ".join(e.benchmark for e in record.errors)
            raise BaselineError(
                f"{baseline.path}: not saved because some benchmarks failed ({names}); fix "
                "them or drop them from the config, then save again",
                slug="baseline-incomplete",
            )
        baselines.save(baseline.path, record, baseline.state, results=results_path)
        files.append(baseline.path)
        table += f"\n\nSaved the baseline to {baseline.path} ({len(record.samples)} samples)."
        if baseline.replaced:
            table += "\n" + baseline.replaced
        exit_code = ExitCode.OK
    return Outcome(
        record=record,
        result=result,
        table=table,
        exit_code=exit_code,
        files=files,
        diagnoses=diagnoses,
    )


def _unrelated_note(
    path: Path, baseline: RunRecord | None, record: RunRecord, paired: PairedBaseline | None
) -> tuple[str, ...]:
    """A baseline that shares no benchmark with the run passes everything as ``new``: say so."""
    # a stand-in (the base revision measured in this run, nothing stored) is not a file's
    if baseline is None or not path.is_file() or not unrelated_baseline(baseline, record):
        return ()
    paired_timings = " (timings were compared with the base revision)" if paired else ""
    return (
        f"baseline {path} has no results for any benchmark of this run; every result is "
        f"new{paired_timings}. Check the baseline path and the benchmark names, or record a "
        "new baseline",
    )


def report_dict(
    result: GateResult, record: RunRecord, diagnoses: tuple[Diagnosis, ...] = ()
) -> dict[str, Any]:
    """comparison.json of a decision on ``record`` (its environment key goes in the footer)."""
    key = record.environment.get("key")
    if not isinstance(key, str) and record.environment:  # a record written by hand or elsewhere
        key = environment_key(dict(record.environment))
    data = result_to_dict(
        result,
        environment_key=key if isinstance(key, str) else None,
        environment_label=environment_label(record.environment) or None,
        diagnoses=diagnoses,
    )
    data["run"] = run_stamp()
    return data


def run_stamp(env: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """What says which run wrote a comparison.json: an id of its own, when it finished, and
    the GitHub Actions run (``run_id/attempt``) it belongs to, where it ran in one; ``comment``
    and ``summary`` refuse a comparison from another workflow run (a step that did not
    finish leaves none: the run removed the previous one when it started)."""
    env = os.environ if env is None else env
    run_id, attempt = env.get("GITHUB_RUN_ID"), env.get("GITHUB_RUN_ATTEMPT") or "1"
    return {
        "id": uuid.uuid4().hex[:16],
        "finished": utc_now(),
        "github_run": f"{run_id}/{attempt}" if run_id else None,
    }


def clear_outputs(config: GateConfig, results_path: Path | None, baseline: Path) -> None:
    """Remove the previous run's results and comparison before this one measures anything,
    so that a run that dies (its process killed, a crash) leaves nothing that reads as its
    result; never the ``baseline``. Raises ConfigError when one cannot be removed."""
    for path in (
        results_path or config.report_dir / RESULTS_NAME,
        config.report_dir / COMPARISON_NAME,
    ):
        if path.resolve() == baseline.resolve():
            continue
        try:
            path.unlink(missing_ok=True)
        except IsADirectoryError:
            raise ConfigError(
                f"{path}: a folder stands where this run writes its output; move it away",
                slug="config",
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"{path}: the previous run's output cannot be removed ({exc.strerror}); "
                "make it writable or remove it",
                slug="config",
            ) from None


def compare_records(
    config: GateConfig, baseline_path: Path, current_path: Path
) -> tuple[GateResult, dict[str, Any]]:
    """Compare two run-record files under the config's policy (no measuring): the decision
    and its comparison.json, as a gate run would have written it.

    Raises BaselineError for a file that is missing, damaged or not a run record."""
    baseline, current = read_record(baseline_path), read_record(current_path)
    result = decide(baseline, current, config.policy)
    notes = _unrelated_note(baseline_path, baseline, current, None)
    if notes:
        result = replace(result, notes=(*notes, *result.notes))
    return result, report_dict(result, current)


def compare_files(config: GateConfig, baseline_path: Path, current_path: Path) -> GateResult:
    """Compare two run-record files under the config's policy (no measuring)."""
    return compare_records(config, baseline_path, current_path)[0]


def stderr_progress() -> Progress:
    """Progress lines on stderr when it is a terminal; silent otherwise."""
    if not sys.stderr.isatty():
        return lambda message: None

    def show(message: str) -> None:
        print(f"perf-gate: {message}", file=sys.stderr, flush=True)

    return show
