"""The composition root: load -> measure -> record -> compare -> write reports -> exit code.

Entry points (cli.py, pytest_plugin.py) parse their arguments, build a :class:`RunRequest` and
call in here; collaborators (the progress callback, the clock) are passed in, not imported.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gate import __version__
from gate.config import GateConfig
from gate.core.diagnosis import Diagnosis
from gate.core.types import BenchmarkError, ExitCode, GateResult, RunRecord, Sample
from gate.decide.compare import PairedBaseline, decide, unrelated_baseline
from gate.errors import BaselineError, ConfigError
from gate.measure.environment import environment_key, fingerprint, git_info
from gate.measure.runner import Measured, Progress, Runner, prepare_all
from gate.report.diagnosis import render_diagnoses
from gate.report.jsonreport import result_to_dict
from gate.report.terminal import render_table
from gate.store.dvc import file_md5, tracked_files
from gate.store.records import (
    read_baseline,
    read_record,
    write_baseline,
    write_json_atomic,
    write_record,
)

RESULTS_NAME = "results.json"
COMPARISON_NAME = "comparison.json"


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
    plans, errors, _ = prepare_all(config, selected, progress)
    runner = Runner(config.measure, config.root, config.report_dir / "work", progress)
    measured = runner.measure(plans) if plans else Measured()
    measured.errors[:0] = errors
    return measured


@dataclass
class Outcome:
    """What a gate run produced: the record, the decision, the table and where files went."""

    record: RunRecord
    result: GateResult
    table: str
    exit_code: ExitCode
    files: list[Path] = field(default_factory=list)
    diagnoses: tuple[Diagnosis, ...] = ()


# Called with the decision, returns the profile diffs of the benchmarks that need one
# (gate.diagnose.investigation.Investigation); never raises for a profiling failure.
Diagnose = Callable[[GateResult], tuple[Diagnosis, ...]]


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
    paired: PairedBaseline | None = None,
    notes: tuple[str, ...] = (),
    diagnose: Diagnose | None = None,
) -> Outcome:
    """Compare ``record`` with the baseline (timings with ``paired`` when given), diagnose
    what ``diagnose`` picks (after the decision, which it cannot change), write results.json
    and comparison.json, save the baseline if asked.

    Raises BaselineError for a damaged baseline, a refused save or a report that cannot be
    written, ConfigError for a report folder that cannot be created (all exit 2).
    """
    check_report_dir(config)
    baseline_path = baseline_path or config.baseline
    baseline, replaced_damaged = load_baseline(baseline_path, save=save)
    result = decide(baseline, record, config.policy, paired=paired)
    if not save:  # a save replaces the baseline: whatever it held no longer matters
        notes = (*notes, *_unrelated_note(baseline_path, baseline, record, paired))
    if notes:
        result = replace(result, notes=(*notes, *result.notes))
    diagnoses = diagnose(result) if diagnose is not None and not save else ()
    report_dir = config.report_dir
    results_path = results_path or report_dir / RESULTS_NAME
    files = [results_path, report_dir / COMPARISON_NAME]
    write_record(results_path, record)
    comparison_path = report_dir / COMPARISON_NAME
    try:
        write_json_atomic(comparison_path, report_dict(result, record, diagnoses))
    except OSError as exc:
        raise BaselineError(
            f"{comparison_path}: cannot write: {exc}", slug="baseline-write"
        ) from exc
    table = render_table(result, saving=save) + render_diagnoses(diagnoses)
    exit_code = result.exit_code
    if save:
        if record.errors:
            names = ", ".join(e.benchmark for e in record.errors)
            raise BaselineError(
                f"{baseline_path}: not saved because some benchmarks failed ({names}); fix them "
                "or drop them from the config, then save again",
                slug="baseline-incomplete",
            )
        write_baseline(baseline_path, record)
        files.append(baseline_path)
        table += f"\n\nSaved the baseline to {baseline_path} ({len(record.samples)} samples)."
        if replaced_damaged:
            table += "\n" + replaced_damaged
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
    if baseline is None or not unrelated_baseline(baseline, record):
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
    return result_to_dict(
        result, environment_key=key if isinstance(key, str) else None, diagnoses=diagnoses
    )


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
