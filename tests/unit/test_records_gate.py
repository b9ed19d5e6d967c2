"""What a decision on run records tells the user: report folders that cannot be made, baselines
that share nothing with the run, measurement errors, environment labels, the mean and the first
call of latency, zero baselines and the decision interval. Real records, real files, no mocks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gate import pipeline as app
from gate.config import load_config
from gate.core import stats
from gate.core.environment_fields import (
    ENVIRONMENT_KEY_FIELDS,
    ENVIRONMENT_MAPPINGS,
    ENVIRONMENT_OTHER_FIELDS,
)
from gate.core.types import (
    BenchmarkError,
    Direction,
    ExitCode,
    Metric,
    Policy,
    RunRecord,
    Sample,
    Verdict,
)
from gate.decide.compare import decide
from gate.errors import BaselineError, ConfigError
from gate.measure.environment import environment_key, fingerprint
from gate.report.jsonreport import result_to_dict
from gate.report.terminal import render_table
from gate.store.records import write_record

LATENCY = Metric("latency", "s", Direction.LOWER)
MEMORY = Metric("memory.peak", "B", Direction.LOWER)
ROUNDS = (1.00, 1.01, 0.99, 1.02, 0.98)


def latency(benchmark: str, scale: float = 1e-3, **extra: tuple[float, ...]) -> Sample:
    return Sample(
        benchmark=benchmark, metric=LATENCY, values=tuple(scale * v for v in ROUNDS), **extra
    )


def record(*samples: Sample, **fields: object) -> RunRecord:
    fields.setdefault("environment", {"os": "Linux"})
    return RunRecord(samples=samples, **fields)  # type: ignore[arg-type]


def config_in(root: Path, text: str = "measure: {rounds: 3}\n"):
    root.mkdir(parents=True, exist_ok=True)
    (root / "perf-gate.yaml").write_text(text, encoding="utf-8")
    return load_config(root=root)


# --------------------------------------------------------------------------------------------
# report folder and report files


def test_a_report_folder_under_a_file_is_a_one_line_config_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("not a folder", encoding="utf-8")
    config = config_in(tmp_path, "report_dir: blocker/sub\n")
    with pytest.raises(ConfigError) as raised:
        app.gate_record(config, record(latency("m[torch]")))
    assert str(raised.value) == (
        f"{tmp_path / 'blocker' / 'sub'}: the report folder cannot be created "
        f"({tmp_path / 'blocker'} is a file, not a folder); point report_dir in "
        f"{tmp_path / 'perf-gate.yaml'} or --perf-gate-report at a folder perf-gate can "
        f"write, or move {tmp_path / 'blocker'} away"
    )
    assert raised.value.exit_code == 2
    with pytest.raises(ConfigError, match="the report folder cannot be created"):
        app.measure_models(config)  # before any worker needs its work folder
    with pytest.raises(ConfigError, match="blocker is a file"):
        app.check_report_dir(config)


def test_a_comparison_json_that_cannot_be_written_is_a_baseline_write_error(
    tmp_path: Path,
) -> None:
    config = config_in(tmp_path)
    config.report_dir.mkdir()
    (config.report_dir / "comparison.json").mkdir()  # a folder where the file goes
    with pytest.raises(BaselineError) as raised:
        app.gate_record(config, record(latency("m[torch]")))
    assert str(raised.value).startswith(f"{config.report_dir / 'comparison.json'}: cannot write")
    assert raised.value.slug == "baseline-write"


def test_a_results_file_in_a_folder_that_cannot_be_made_is_a_baseline_write_error(
    tmp_path: Path,
) -> None:
    config = config_in(tmp_path)
    (tmp_path / "out").write_text("a file", encoding="utf-8")
    with pytest.raises(BaselineError, match="cannot write"):
        app.gate_record(
            config, record(latency("m[torch]")), results_path=tmp_path / "out" / "r.json"
        )


# --------------------------------------------------------------------------------------------
# a baseline that has nothing to compare with


@pytest.mark.parametrize(
    "baseline",
    [record(), record(latency("renamed[torch]"))],
    ids=["no samples", "other benchmarks"],
)
def test_a_baseline_sharing_no_benchmark_passes_with_a_note(
    tmp_path: Path, baseline: RunRecord
) -> None:
    config = config_in(tmp_path)
    write_record(config.baseline, baseline)
    outcome = app.gate_record(config, record(latency("m[torch]")))
    note = (
        f"baseline {config.baseline} has no results for any benchmark of this run; every "
        "result is new. Check the baseline path and the benchmark names, or record a new "
        "baseline"
    )
    assert outcome.exit_code == ExitCode.OK  # a note, not a failure
    assert f"Note: {note}" in outcome.table
    written = json.loads((config.report_dir / "comparison.json").read_text(encoding="utf-8"))
    assert note in written["notes"]
    # A baseline that shares a benchmark says nothing of the kind.
    write_record(config.baseline, record(latency("m[torch]")))
    assert (
        "has no results for any benchmark"
        not in app.gate_record(config, record(latency("m[torch]"), latency("new[torch]"))).table
    )


def test_compare_records_fills_the_environment_key_and_the_note(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    base, current = tmp_path / "base.json", tmp_path / "current.json"
    write_record(base, record(latency("a[torch]")))
    write_record(current, record(latency("b[torch]"), environment={"key": "5d41402abc4b"}))
    result, report = app.compare_records(config, base, current)
    assert report["environment_key"] == "5d41402abc4b"  # as a run's comparison.json has it
    assert any("has no results for any benchmark" in note for note in report["notes"])
    assert report["notes"] == list(result.notes)
    assert app.compare_files(config, base, current) == result


# --------------------------------------------------------------------------------------------
# measurement errors keep their message


def test_the_error_message_of_a_failed_benchmark_reaches_the_table() -> None:
    baseline = record(
        latency("m[torch]"),
        Sample(benchmark="m[torch]", metric=MEMORY, values=(1e8, 1e8)),
        latency("ok[torch]"),
    )
    message = "torch is not installed; install it (pip install 'perf-gate[torch]')"
    current = record(
        latency("ok[torch]"), errors=(BenchmarkError(benchmark="m[torch]", message=message),)
    )
    result = decide(baseline, current, Policy())
    errors = [c for c in result.comparisons if c.verdict is Verdict.ERROR]
    assert [c.note for c in errors] == [f"failed to measure: {message}"] * 2
    table = render_table(result)
    rows = [line for line in table.splitlines() if line.startswith("m[torch]")]
    assert rows[0].endswith(f"error: failed to measure: {message}")
    assert rows[1].endswith("error: as above")  # the message once per benchmark
    assert result.exit_code is ExitCode.INTERNAL


# --------------------------------------------------------------------------------------------
# environment labels


def test_the_key_fields_are_the_ones_environment_key_hashes() -> None:
    reference = fingerprint(1)
    for name in ENVIRONMENT_KEY_FIELDS:
        changed = {**reference, name: f"other-{reference.get(name)}"}
        assert environment_key(changed) != environment_key(reference), name
    for name in (*ENVIRONMENT_OTHER_FIELDS, *ENVIRONMENT_MAPPINGS):
        changed = {**reference, name: "other"}
        assert environment_key(changed) == environment_key(reference), name


def environment(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "os": "Linux 6.8",
        "machine": "x86_64",
        "cpu_model": "Xeon",
        "gpu": None,
        "cpu_count": 8,
        "python": "3.11.7",
        "memory_bytes": 16e9,
        "threads": 1,
        "packages": {"torch": "2.4.0", "onnxruntime": "1.18.0", "numpy": "2.1.0"},
        "gpus": [],
    }
    base.update(changes)
    base["key"] = environment_key(base)
    return base


def test_a_torch_upgrade_is_named_without_making_timings_advisory() -> None:
    baseline = record(latency("m[torch]"), environment=environment())
    current = record(
        latency("m[torch]", 1.5e-3),
        environment=environment(
            packages={"torch": "2.13.0", "onnxruntime": None, "numpy": "2.1.0"},
            memory_bytes=32e9,
            thread_env={"OMP_NUM_THREADS": "4"},
        ),
    )
    result = decide(baseline, current, Policy())
    assert result.environment_differences == {}
    (note,) = result.notes
    assert note == (
        "the environment also differs from the baseline's, outside the environment key "
        "(verdicts stand, but a change may come from here): memory_bytes 16 GB -> 32 GB, "
        "onnxruntime 1.18.0 -> not installed, torch 2.4.0 -> 2.13.0, OMP_NUM_THREADS unset -> 4"
    )
    (c,) = result.comparisons
    assert (c.verdict, c.advisory) == (Verdict.REGRESSION, False)
    table = render_table(result)
    assert "Baseline measured in a different environment" not in table
    assert f"Note: {note}" in table


def test_another_key_is_labelled_advisory_and_other_fields_apart() -> None:
    baseline = record(latency("m[torch]"), environment=environment())
    current = record(
        latency("m[torch]", 1.5e-3), environment=environment(cpu_model="EPYC", python="3.12.1")
    )
    result = decide(baseline, current, Policy())
    assert result.environment_differences == {"cpu_model": ("Xeon", "EPYC")}
    assert result.notes[0].endswith("python 3.11.7 -> 3.12.1")
    assert result.comparisons[0].advisory
    table = render_table(result)
    assert (
        "Baseline measured in a different environment (environment key differs: timings "
        "advisory): cpu_model: 'Xeon' -> 'EPYC'."
    ) in table
    skip = decide(baseline, current, Policy(on_environment_mismatch="skip-timing"))
    assert "(environment key differs: stored timings not compared)" in render_table(skip)


def test_a_key_chosen_by_hand_is_named_when_no_field_differs() -> None:
    baseline = record(latency("m[torch]"), environment={"key": "gpu-runners"})
    current = record(latency("m[torch]"), environment={"key": "cpu-runners"})
    result = decide(baseline, current, Policy())
    assert result.environment_differences == {"key": ("gpu-runners", "cpu-runners")}


# --------------------------------------------------------------------------------------------
# latency: mean and first call


def test_the_mean_and_the_first_call_are_reported() -> None:
    calls = (1e-3,) * 90 + (2e-3,) * 10
    baseline = record(latency("m[torch]", calls=calls, first_calls=(2e-3, 2e-3, 2e-3)))
    compiled = latency("m[torch-compile]", calls=calls, first_calls=(1.5, 1.4, 1.6, 1.5, 1.5))
    current = record(latency("m[torch]", calls=calls, first_calls=(3e-3,) * 5), compiled)
    result = decide(baseline, current, Policy())
    report = result_to_dict(result)
    by_name = {t["benchmark"]: t for t in report["tail_latency"]}
    eager = by_name["m[torch]"]
    assert eager["baseline"]["mean"] == pytest.approx(1.1e-3)
    assert eager["current"]["mean"] == pytest.approx(1.1e-3)
    assert eager["current"]["p90"] == pytest.approx(stats.quantile(calls, 0.9))
    assert eager["first_call"] == {
        "baseline": pytest.approx(2e-3),
        "current": pytest.approx(3e-3),
        "ratio": pytest.approx(3.0),
    }
    assert by_name["m[torch-compile]"]["first_call"]["ratio"] == pytest.approx(1500.0)
    note = (
        "first calls over 10x the median call (compilation, lazy loading, cold caches; kept "
        "out of the timings): m[torch-compile] 1.5 s (1,500x)"
    )
    assert note in result.notes  # the eager model's 3x is not worth a line
    table = render_table(result)
    assert "m[torch] mean / p90 / p99: 1.1 ms / 1.1 ms / 2 ms -> 1.1 ms / 1.1 ms / 2 ms" in table
    assert f"Note: {note}" in table
    json.dumps(report, allow_nan=False)


def test_a_record_without_first_calls_reports_none() -> None:
    current = record(latency("m[torch]", calls=(1e-3,) * 10))
    (tail,) = result_to_dict(decide(None, current, Policy()))["tail_latency"]
    assert tail["first_call"] is None
    assert tail["baseline"] == {"mean": None, "p90": None, "p99": None}


# --------------------------------------------------------------------------------------------
# a zero baseline, and the interval the verdict used


def test_a_zero_latency_baseline_is_inconclusive_not_unchanged() -> None:
    zero = Sample(benchmark="m[torch]", metric=LATENCY, values=(0.0, 0.0, 0.0))
    now = Sample(benchmark="m[torch]", metric=LATENCY, values=(21.4e-6, 21.5e-6, 21.3e-6))
    (c,) = decide(record(zero), record(now), Policy()).comparisons
    assert c.verdict is Verdict.INCONCLUSIVE
    assert math.isnan(c.relative_change)
    assert c.note == (
        "the baseline averages 0, so a relative change is undefined (now 21.4 us); record a "
        "new baseline, or gate this metric with a budget"
    )
    assert "+0.0%" not in render_table(decide(record(zero), record(now), Policy()))
    (same,) = decide(record(zero), record(zero), Policy()).comparisons
    assert (same.verdict, same.relative_change) == (Verdict.UNCHANGED, 0.0)


def spread(centre: float, width: float) -> tuple[float, ...]:
    return tuple(centre * math.exp(width * k) for k in (-2, -1, 0, 1, 2))


def test_the_verdict_is_the_printed_interval_s() -> None:
    # Two tests at alpha 0.01: "edge" has p = 0.0065, below alpha but above alpha / 2, so its
    # simultaneous interval (at 0.005) includes 0. The decision is that interval's: a change
    # shown as [-x%, +y%] is never a regression (Holm's later steps would have called it one).
    baseline = record(
        Sample(benchmark="clear", metric=LATENCY, values=spread(1e-3, 0.001)),
        Sample(benchmark="edge", metric=LATENCY, values=spread(1e-3, 0.05)),
    )
    current = record(
        Sample(benchmark="clear", metric=LATENCY, values=spread(1.2e-3, 0.001)),
        Sample(benchmark="edge", metric=LATENCY, values=spread(1.2e-3, 0.05)),
    )
    result = decide(baseline, current, Policy(alpha=0.01))
    edge = next(c for c in result.comparisons if c.benchmark == "edge")
    clear = next(c for c in result.comparisons if c.benchmark == "clear")
    assert 0.005 < edge.p_value < 0.01
    assert edge.ci_low < 0 < edge.ci_high
    assert edge.verdict is Verdict.INCONCLUSIVE
    assert not edge.significant
    assert clear.verdict is Verdict.REGRESSION
    assert clear.ci_low > 0
    for c in result.comparisons:  # significant exactly when the printed interval excludes 0
        assert c.significant == (c.ci_low > 0 or c.ci_high < 0)
