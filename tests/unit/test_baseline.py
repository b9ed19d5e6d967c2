"""gate.store.records: run records <-> versioned JSON, validation of damaged files, atomic
writes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from gate.core import stats
from gate.core.types import (
    BenchmarkError,
    Direction,
    GitInfo,
    Metric,
    Replication,
    RunRecord,
    Sample,
)
from gate.errors import BaselineError
from gate.store.records import (
    FORMAT,
    KIND,
    MAX_CALLS,
    SUPPORTED_FORMATS,
    read_baseline,
    read_record,
    record_to_dict,
    write_json_atomic,
    write_record,
)

LATENCY = Metric("latency", "s", Direction.LOWER)
THROUGHPUT = Metric("throughput@32", "items/s", Direction.HIGHER)


def full_record() -> RunRecord:
    return RunRecord(
        samples=(
            Sample(
                benchmark="m[torch]",
                metric=LATENCY,
                values=(0.0011, 0.00105, 0.00112),
                calls=(0.001, 0.0012, 0.0011, 0.00099),
                first_calls=(0.05, 0.048, 0.051),
            ),
            Sample(benchmark="m[torch]", metric=THROUGHPUT, values=(2900.5, 3010.25, 2950.0)),
            Sample(
                benchmark="test_tokenizer",
                metric=LATENCY,
                values=(1e-6, 2e-6),
                replication=Replication.IN_PROCESS,
            ),
        ),
        environment={"os": "Linux", "cpu_count": 8, "gpu": None, "packages": {"torch": "2.13"}},
        git=GitInfo(commit="0123abc", ref="main", dirty=False),
        created="2026-11-02T10:00:00Z",
        tool_version="0.1.0",
        config_digest="deadbeefdeadbeef",
        settings={"rounds": 5, "min_time": 0.5},
        info={"m[torch]": {"parameters": 1234, "onnx_opset": 17}},
        errors=(BenchmarkError(benchmark="m[onnxruntime]", message="worker exited with -9"),),
    )


def minimal_sample(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "benchmark": "m[torch]",
        "metric": "latency",
        "unit": "s",
        "direction": "lower",
        "values": [0.001, 0.0011],
    }
    raw.update(changes)
    return raw


def write_text(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "baselines" / "main.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_data(tmp_path: Path, data: Any) -> Path:
    return write_text(tmp_path, json.dumps(data))


def baseline_error(path: Path) -> BaselineError:
    with pytest.raises(BaselineError) as info:
        read_record(path)
    return info.value


# --------------------------------------------------------------------------------------------
# round trip


def test_round_trip_preserves_everything(tmp_path: Path) -> None:
    record = full_record()
    path = tmp_path / "results.json"
    write_record(path, record)
    again = read_record(path)
    assert again == record
    assert again.samples[2].replication is Replication.IN_PROCESS
    assert again.samples[0].calls == (0.001, 0.0012, 0.0011, 0.00099)
    assert again.samples[0].first_calls == (0.05, 0.048, 0.051)
    assert again.samples[1].metric == THROUGHPUT
    assert again.errors == record.errors
    assert again.git == GitInfo(commit="0123abc", ref="main", dirty=False)


def test_written_file_is_versioned_json(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_record(path, full_record())
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == FORMAT
    assert FORMAT in SUPPORTED_FORMATS
    assert data["kind"] == KIND
    assert data["samples"][0] == {
        "benchmark": "m[torch]",
        "metric": "latency",
        "unit": "s",
        "direction": "lower",
        "replication": "process",
        "values": [0.0011, 0.00105, 0.00112],
        "calls": [0.001, 0.0012, 0.0011, 0.00099],
        "first_calls": [0.05, 0.048, 0.051],
    }


def test_minimal_record_uses_defaults(tmp_path: Path) -> None:
    path = write_data(tmp_path, {"format": 1, "samples": [minimal_sample()]})
    record = read_record(path)
    (sample,) = record.samples
    assert sample.replication is Replication.PROCESS
    assert sample.calls == ()
    assert sample.first_calls == ()
    assert record.environment == {}
    assert record.git == GitInfo()
    assert record.errors == ()


def test_integer_values_are_read_as_floats(tmp_path: Path) -> None:
    path = write_data(tmp_path, {"format": 1, "samples": [minimal_sample(values=[1, 2])]})
    values = read_record(path).samples[0].values
    assert values == (1.0, 2.0)
    assert all(type(v) is float for v in values)


def test_read_baseline_missing_file_is_none(tmp_path: Path) -> None:
    assert read_baseline(tmp_path / "baselines" / "main.json") is None


def test_read_baseline_reads_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "main.json"
    write_record(path, full_record())
    assert read_baseline(path) == full_record()


def test_read_baseline_still_raises_for_a_damaged_file(tmp_path: Path) -> None:
    path = write_text(tmp_path, "{")
    with pytest.raises(BaselineError):
        read_baseline(path)


def test_read_record_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    error = baseline_error(path)
    assert str(error) == (
        f"{path}: file not found; check the path (a run writes .perf-gate/results.json; "
        "`perf-gate run --save` or `pytest --perf-gate --perf-gate-save` records a baseline)"
    )
    assert error.slug == "baseline-missing"
    assert error.exit_code == 2


# --------------------------------------------------------------------------------------------
# damaged files


DAMAGED: list[Any] = [
    pytest.param("", "content: the file is empty", id="empty"),
    pytest.param("   \n\t\n", "content: the file is empty", id="whitespace"),
    pytest.param('{"format": 1, "samples": [', "line 1, column 27: not valid JSON", id="truncated"),
    pytest.param(
        '{"format": 1,\n "samples": [}', "line 2, column 14: not valid JSON", id="bad-json"
    ),
    pytest.param("[1, 2]", "top level: expected a JSON object", id="list"),
    pytest.param('"text"', "top level: expected a JSON object", id="string"),
    pytest.param("null", "top level: expected a JSON object", id="null"),
    pytest.param('{"format": 1}', "samples: expected a list", id="no-samples"),
    pytest.param('{"format": 1, "samples": {}}', "samples: expected a list", id="samples-object"),
    pytest.param(
        '{"format": 1, "samples": [3]}', "samples[0]: expected an object", id="sample-int"
    ),
]


def sample_case(changes: dict[str, Any], fragment: str, case_id: str) -> Any:
    text = json.dumps({"format": 1, "samples": [minimal_sample(), minimal_sample(**changes)]})
    return pytest.param(text, fragment, id=case_id)


DAMAGED += [
    sample_case(
        {"values": ["fast", 1.0]}, "samples[1].values: expected numbers, found 'fast'", "values-str"
    ),
    sample_case(
        {"values": [True, 1.0]}, "samples[1].values: expected numbers, found True", "values-bool"
    ),
    sample_case(
        {"values": [None]}, "samples[1].values: expected numbers, found None", "values-null"
    ),
    sample_case({"values": [[1.0]]}, "samples[1].values: expected numbers", "values-nested"),
    sample_case({"values": []}, "samples[1].values: expected a non-empty list", "values-empty"),
    sample_case({"values": 1.0}, "samples[1].values: expected a non-empty list", "values-scalar"),
    sample_case({"values": None}, "samples[1].values: expected a non-empty list", "values-null"),
    sample_case({"calls": ["x"]}, "samples[1].calls: expected numbers", "calls-str"),
    sample_case({"calls": 5}, "samples[1].calls: expected a non-empty list", "calls-int"),
    sample_case({"first_calls": [None]}, "samples[1].first_calls: expected numbers", "first-calls"),
    sample_case({"benchmark": 5}, "samples[1].benchmark: expected a string", "benchmark"),
    sample_case({"metric": None}, "samples[1].metric: expected a string", "metric"),
    sample_case({"unit": 1}, "samples[1].unit: expected a string", "unit"),
    sample_case(
        {"direction": "sideways"}, "samples[1]: 'sideways' is not a valid Direction", "direction"
    ),
    sample_case(
        {"replication": "thread"}, "samples[1]: 'thread' is not a valid Replication", "replication"
    ),
]
for _token in ("NaN", "Infinity", "-Infinity"):
    DAMAGED.append(
        pytest.param(
            '{"format": 1, "samples": [{"benchmark": "m", "metric": "latency", "unit": "s", '
            f'"direction": "lower", "values": [0.001, {_token}]}}]}}',
            "samples[0].values: expected finite numbers",
            id=f"values-{_token}",
        )
    )
DAMAGED += [
    pytest.param(
        '{"format": 1, "samples": [], "git": ["main"]}',
        "git: expected a JSON object",
        id="git-list",
    ),
    pytest.param(
        '{"format": 1, "samples": [], "errors": {"m": "x"}}',
        "errors: expected a JSON array",
        id="errors-obj",
    ),
    pytest.param(
        '{"format": 1, "samples": [], "info": [1]}', "info: expected a JSON object", id="info-list"
    ),
]


@pytest.mark.parametrize(("text", "fragment"), DAMAGED)
def test_damaged_file_raises_baseline_error(tmp_path: Path, text: str, fragment: str) -> None:
    path = write_text(tmp_path, text)
    error = baseline_error(path)
    message = str(error)
    assert message.startswith(f"{path}: "), message
    assert fragment in message, message
    assert "the file is damaged" in message
    assert error.exit_code == 2
    assert error.slug == "baseline-corrupt"
    assert error.one_line().startswith(f"perf-gate: error: {path}: ")


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "main.json"
    path.write_bytes(b'{"format": 1, "samples": ["\xff\xfe"]}')
    error = baseline_error(path)
    assert str(error).startswith(f"{path}: cannot read: ")
    assert error.exit_code == 2


@pytest.mark.parametrize("version", [7, 0, 2, "1", None])
def test_unsupported_format(tmp_path: Path, version: Any) -> None:
    data: dict[str, Any] = {"format": version, "samples": [minimal_sample()]}
    path = write_data(tmp_path, data)
    error = baseline_error(path)
    message = str(error)
    assert message.startswith(f"{path}: format {version!r} is not supported"), message
    assert "this perf-gate reads 1" in message
    assert error.slug == "baseline-format"
    assert error.exit_code == 2


def test_unsupported_format_7_message() -> None:
    # the exact wording users see for a file written by a newer perf-gate
    path = Path("baselines/main.json")
    with pytest.raises(BaselineError) as info:
        read_record_from(path, {"format": 7, "samples": []})
    assert str(info.value) == (
        "baselines/main.json: format 7 is not supported (this perf-gate reads 1); upgrade "
        "perf-gate or record a new one with `perf-gate run --save` or "
        "`pytest --perf-gate --perf-gate-save`"
    )


def read_record_from(path: Path, data: Any) -> RunRecord:
    from gate.store.records import _Reader

    return _Reader(path).record(data)


def test_huge_integer_value_is_a_baseline_error(tmp_path: Path) -> None:
    text = (
        '{"format": 1, "samples": [{"benchmark": "m", "metric": "latency", "unit": "s", '
        '"direction": "lower", "values": [1' + "0" * 400 + ", 1]}]}"
    )
    path = write_text(tmp_path, text)
    error = baseline_error(path)
    assert str(error).startswith(f"{path}: samples[0].values: ")


def test_boolean_format_is_not_supported(tmp_path: Path) -> None:
    path = write_data(tmp_path, {"format": True, "samples": [minimal_sample()]})
    error = baseline_error(path)
    assert error.slug == "baseline-format"


@pytest.mark.parametrize(
    "extra",
    [{"environment": [1, 2]}, {"environment": "linux"}, {"settings": [1]}, {"info": {"m": 1}}],
    ids=["environment-list", "environment-str", "settings-list", "info-value-int"],
)
def test_non_object_context_fields_are_baseline_errors(
    tmp_path: Path, extra: dict[str, Any]
) -> None:
    path = write_data(tmp_path, {"format": 1, "samples": [minimal_sample()], **extra})
    error = baseline_error(path)
    assert str(error).startswith(f"{path}: ")


# --------------------------------------------------------------------------------------------
# atomic writes


def test_write_json_atomic_creates_parents_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "out.json"
    write_json_atomic(path, {"a": [1, 2.5], "b": None})
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": [1, 2.5], "b": None}
    assert path.read_text(encoding="utf-8").endswith("\n")
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.json"]
    write_json_atomic(path, {"a": 3})
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": 3}
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.json"]


@pytest.mark.parametrize(
    ("data", "exception"),
    [
        ({"fine": 1, "broken": object()}, TypeError),
        ({"value": math.nan}, ValueError),
        ({"value": [1.0, math.inf]}, ValueError),
    ],
    ids=["not-serializable", "nan", "inf"],
)
def test_failed_dump_keeps_the_old_file(tmp_path: Path, data: Any, exception: type) -> None:
    path = tmp_path / "main.json"
    write_json_atomic(path, {"old": True})
    before = path.read_bytes()
    with pytest.raises(exception):
        write_json_atomic(path, data)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["main.json"]


def test_failed_first_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "new.json", {"x": {1, 2}})
    assert list(tmp_path.iterdir()) == []


def test_write_record_reports_os_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    path = blocker / "main.json"
    with pytest.raises(BaselineError) as info:
        write_record(path, full_record())
    assert str(info.value).startswith(f"{path}: cannot write: ")
    assert info.value.slug == "baseline-write"
    assert info.value.exit_code == 2


# --------------------------------------------------------------------------------------------
# thinning


def test_calls_beyond_max_calls_are_thinned(tmp_path: Path) -> None:
    calls = tuple(0.001 + i * 1e-8 for i in range(25_000))  # distinct and increasing
    record = RunRecord(
        samples=(
            Sample(
                benchmark="m",
                metric=LATENCY,
                values=tuple(0.001 + i * 1e-6 for i in range(20)),
                calls=calls,
                first_calls=tuple(0.05 + i * 1e-4 for i in range(20)),
            ),
        ),
        environment={},
    )
    path = tmp_path / "r.json"
    write_record(path, record)
    (sample,) = read_record(path).samples
    assert len(sample.calls) == MAX_CALLS
    assert sample.calls[0] == calls[0]
    assert set(sample.calls) <= set(calls)
    assert list(sample.calls) == sorted(sample.calls)  # evenly picked in order
    assert sample.calls[1] == calls[2]  # step 2.5: indexes 0, 2, 5, 7, 10, ...
    assert sample.calls[2] == calls[5]
    assert sample.calls[-1] == calls[int((MAX_CALLS - 1) * 2.5)]
    # the percentiles barely move
    for q in (0.5, 0.9, 0.99):
        assert stats.quantile(sample.calls, q) == pytest.approx(stats.quantile(calls, q), rel=1e-4)
    # values and first calls are never thinned
    assert sample.values == record.samples[0].values
    assert sample.first_calls == record.samples[0].first_calls


def test_calls_at_the_limit_are_kept(tmp_path: Path) -> None:
    calls = tuple(float(i + 1) for i in range(MAX_CALLS))
    record = RunRecord(
        samples=(Sample(benchmark="m", metric=LATENCY, values=(1.0, 2.0), calls=calls),),
        environment={},
    )
    assert record_to_dict(record)["samples"][0]["calls"] == list(calls)
