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

from gate import __version__
from gate.baseline import (
    read_baseline,
    read_record,
    write_baseline,
    write_json_atomic,
    write_record,
)
from gate.compare import PairedBaseline, decide
from gate.config import GateConfig
from gate.diagnosis import Diagnosis
from gate.dvc import file_md5, tracked_files
from gate.environment import environment_key, fingerprint, git_info
from gate.errors import BaselineError
from gate.measure.runner import Measured, Progress, Runner, prepare_all
from gate.model import BenchmarkError, ExitCode, GateResult, RunRecord, Sample
from gate.report.diagnosis import render_diagnoses
from gate.report.jsonreport import result_to_dict
from gate.report.terminal import render_table

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


def measure_models(
    config: GateConfig, selected: set[str] | None = None, progress: Progress = lambda m: None
) -> Measured:
    """Prepare and measure the config's model benchmarks (all, or the ``selected`` names)."""
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
# (gate.investigate.Investigation); never raises for a profiling failure.
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

    Raises BaselineError for a damaged baseline (exit 2) or a refused save.
    """
    baseline_path = baseline_path or config.baseline
    baseline, replaced_damaged = load_baseline(baseline_path, save=save)
    result = decide(baseline, record, config.policy, paired=paired)
    if notes:
        result = replace(result, notes=(*notes, *result.notes))
    diagnoses = diagnose(result) if diagnose is not None and not save else ()
    report_dir = config.report_dir
    results_path = results_path or report_dir / RESULTS_NAME
    files = [results_path, report_dir / COMPARISON_NAME]
    write_record(results_path, record)
    key = record.environment.get("key")
    report = result_to_dict(
        result, environment_key=key if isinstance(key, str) else None, diagnoses=diagnoses
    )
    write_json_atomic(report_dir / COMPARISON_NAME, report)
    table = render_table(result) + render_diagnoses(diagnoses)
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


def compare_files(config: GateConfig, baseline_path: Path, current_path: Path) -> GateResult:
    """Compare two run-record files under the config's policy (no measuring)."""
    return decide(read_record(baseline_path), read_record(current_path), config.policy)


def stderr_progress() -> Progress:
    """Progress lines on stderr when it is a terminal; silent otherwise."""
    if not sys.stderr.isatty():
        return lambda message: None

    def show(message: str) -> None:
        print(f"perf-gate: {message}", file=sys.stderr, flush=True)

    return show
