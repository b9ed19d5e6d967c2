"""Reading run records that are not what they claim: nesting, dangling links, negative times,
repeated samples, other perf-gate files. Each is a one-line BaselineError naming the file, the
key and the fix (exit 2), never a traceback and never a silent "no baseline"."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from gate.core.types import Direction, Metric, RunRecord, Sample
from gate.errors import BaselineError
from gate.store.records import read_baseline, read_record, write_record

RECORD_FIX = "record a new one with `perf-gate run --save` or `pytest --perf-gate --perf-gate-save`"


def sample(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "benchmark": "m[torch]",
        "metric": "latency",
        "unit": "s",
        "direction": "lower",
        "values": [0.001, 0.0011],
    }
    raw.update(changes)
    return raw


def write(tmp_path: Path, data: Any, name: str = "main.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def error_of(path: Path) -> BaselineError:
    with pytest.raises(BaselineError) as raised:
        read_record(path)
    return raised.value


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a": ' * 100_000])
def test_deeply_nested_json_is_a_damaged_file_not_a_recursion_error(
    tmp_path: Path, text: str
) -> None:
    path = write(tmp_path, text)
    error = error_of(path)
    assert str(error) == (
        f"{path}: content: JSON nested too deeply to be a run record; the file is damaged: "
        f"restore it (git checkout / dvc checkout) or {RECORD_FIX}"
    )
    assert (error.slug, error.exit_code) == ("baseline-corrupt", 2)
    with pytest.raises(BaselineError):
        read_baseline(path)


def test_a_dangling_symlink_is_a_missing_baseline_not_no_baseline(tmp_path: Path) -> None:
    target = tmp_path / ".dvc" / "cache" / "files" / "md5" / "ab" / "cdef"
    link = tmp_path / "baselines" / "main.json"
    link.parent.mkdir()
    link.symlink_to(target)  # DVC's symlink cache, after the cache was cleared
    assert not link.exists()
    with pytest.raises(BaselineError) as raised:
        read_baseline(link)
    message = str(raised.value)
    assert message == (
        f"{link}: a symlink to {target}, which does not exist (a DVC cache file that is gone?); "
        "restore it with `perf-gate baseline pull` (or `dvc pull`)"
    )
    assert (raised.value.slug, raised.value.exit_code) == ("baseline-missing", 2)
    assert str(error_of(link)) == message
    # A path with nothing at all is still "no baseline yet".
    assert read_baseline(tmp_path / "baselines" / "other.json") is None


@pytest.mark.parametrize(
    ("changes", "key", "found"),
    [
        ({"values": [0.001, -0.001]}, "samples[1].values", "-0.001"),
        ({"calls": [0.001, -1e-9]}, "samples[1].calls", "-1e-09"),
        ({"first_calls": [-0.5]}, "samples[1].first_calls", "-0.5"),
        (
            {"metric": "memory.peak", "unit": "B", "values": [-1, 2]},
            "samples[1].values",
            "-1",
        ),
        (
            {"metric": "throughput@8", "unit": "items/s", "direction": "higher", "values": [-3]},
            "samples[1].values",
            "-3",
        ),
    ],
)
def test_negative_times_sizes_and_rates_are_rejected(
    tmp_path: Path, changes: dict[str, Any], key: str, found: str
) -> None:
    other = sample(benchmark="other")
    path = write(tmp_path, {"format": 1, "samples": [other, sample(**changes)]})
    error = error_of(path)
    assert str(error).startswith(
        f"{path}: {key}: found {found}; times, sizes and rates cannot be negative; "
    )
    assert error.slug == "baseline-corrupt"


def test_negative_values_of_a_custom_metric_are_kept(tmp_path: Path) -> None:
    custom = sample(metric="score_delta", unit="", direction="higher", values=[-0.5, 0.25])
    path = write(tmp_path, {"format": 1, "samples": [custom]})
    assert read_record(path).samples[0].values == (-0.5, 0.25)


def test_a_repeated_benchmark_and_metric_is_rejected(tmp_path: Path) -> None:
    samples = [sample(), sample(metric="throughput@8"), sample(values=[9.0, 9.0])]
    path = write(tmp_path, {"format": 1, "samples": samples})
    error = error_of(path)
    assert str(error).startswith(
        f"{path}: samples[2]: a second sample of m[torch] latency (the first is samples[0]); "
        "a record holds one sample per benchmark and metric; the file is damaged"
    )
    assert error.exit_code == 2


def test_a_record_written_by_perf_gate_reads_back(tmp_path: Path) -> None:
    latency = Metric("latency", "s", Direction.LOWER)
    record = RunRecord(
        samples=(
            Sample(benchmark="a", metric=latency, values=(0.0, 1e-3), first_calls=(0.5,)),
            Sample(benchmark="b", metric=latency, values=(1e-3, 1e-3)),
        ),
        environment={},
    )
    write_record(tmp_path / "r.json", record)
    assert read_record(tmp_path / "r.json") == record  # zeros are values, not errors


@pytest.mark.parametrize(
    ("name", "content", "what"),
    [
        (
            "comparison.json",
            {"format": 1, "exit_code": 0, "comparisons": []},
            "it looks like a comparison.json, the report of a run",
        ),
        (
            "main.history.json",
            {"format": 1, "kind": "perf-gate baseline history", "entries": []},
            "its kind is 'perf-gate baseline history'",
        ),
        (
            "perf-gate.yaml",
            "models:\n  m: {onnx: m.onnx}\n",
            "it looks like YAML, e.g. a perf-gate.yaml",
        ),
        ("config.json", "# gate\nbaseline: baselines/main.json\n", "it looks like YAML"),
        ("nofmt.json", {"samples": []}, "no 'format' key"),
    ],
)
def test_other_files_are_named_as_not_a_run_record(
    tmp_path: Path, name: str, content: Any, what: str
) -> None:
    path = write(tmp_path, content, name)
    error = error_of(path)
    assert str(error).startswith(f"{path}: not a perf-gate run record ({what}")
    assert str(error).endswith(
        "; pass a run record (.perf-gate/results.json, or a baseline under baselines/)"
    )
    assert "format None" not in str(error)
    assert (error.slug, error.exit_code) == ("baseline-format", 2)


def test_the_fix_for_a_damaged_file_names_both_ways_to_record(tmp_path: Path) -> None:
    path = write(tmp_path, '{"format": 1, "samples": [')
    message = str(error_of(path))
    assert message.endswith(RECORD_FIX)  # `perf-gate compare` users are not all pytest users


def test_a_missing_file_says_how_to_get_one(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    error = error_of(path)
    assert str(error).startswith(f"{path}: file not found; check the path")
    assert "`perf-gate run --save` or `pytest --perf-gate --perf-gate-save`" in str(error)
    assert not os.path.lexists(path)
