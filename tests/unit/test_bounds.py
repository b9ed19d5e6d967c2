"""Every number has a range where it is read: the config (each section), the command line and
baseline/run records. A value outside it, an infinity or NaN, and an unknown key are one line
naming the file and the key (exit 2) with the range or the key meant, never a traceback; the
statistics never overflow on values inside the ranges."""

from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate import units
from gate.config import load_config
from gate.config.checks import closest, distance
from gate.errors import BaselineError, ConfigError
from gate.integrations.cli import main as cli
from gate.integrations.cli.explain import explain, guide, sections
from gate.pipeline import compare_records, load_baseline
from gate.store.records import MAX_SHARDS, read_record
from gate.store.shard import Shard

MODEL: dict[str, Any] = {"torch": "pkg.models:build", "input": {"shape": [1, 8]}}
TWO_VARIANTS: dict[str, Any] = {**MODEL, "variants": ["torch", "torch-int8"]}
EVAL: dict[str, Any] = {**MODEL, "eval": {"callable": "pkg.data:batches"}}


def config(**sections: Any) -> dict[str, Any]:
    """A valid config (one model ``m``) with top-level ``sections`` replaced."""
    return {"models": {"m": MODEL}, **sections}


def one_line(error: ConfigError | BaselineError) -> str:
    line = error.one_line()
    assert "\n" not in line
    assert "Traceback" not in line
    assert line.startswith("perf-gate: error: ")
    assert error.exit_code == 2
    return line


# --------------------------------------------------------------------------------------------
# the config: (config, key named, fragments of the message)

CONFIG_CASES = [
    # measure: durations and counts
    (config(measure={"min_time": "1e999s"}), "measure.min_time", ["not a finite", "0 to 60s"]),
    (config(measure={"min_time": "61s"}), "measure.min_time", ["at most 60s"]),
    (config(measure={"min_time": math.inf}), "measure.min_time", ["not a finite"]),
    (config(measure={"min_time": "1e308min"}), "measure.min_time", ["not a finite"]),
    (config(measure={"rounds": 99999999999}), "measure.rounds", ["<= 1000", "2 to 1000"]),
    (config(measure={"warmup": 10**6}), "measure.warmup", ["0 to 100000"]),
    (config(measure={"min_calls": 10**7}), "measure.min_calls", ["1 to 1000000"]),
    (config(measure={"probes": 1000}), "measure.probes", ["1 to 100"]),
    (config(measure={"threads": 5000}), "measure.threads", ["1 to 1024"]),
    (config(measure={"seed": 10**30}), "measure.seed", ["<= 9223372036854775807"]),
    (config(measure={"rounds": 10**400}), "measure.rounds", ["2 to 1000"]),
    (config(measure={"rund": 5}), "measure.rund", ["unknown key", "did you mean 'rounds'?"]),
    (config(measure={"memory_limit": "1MB"}), "measure.memory_limit", ["at least 256MiB"]),
    (config(measure={"memory_limit": "1e999GB"}), "measure.memory_limit", ["not a finite"]),
    (config(measure={"memory_limit": "lots"}), "measure.memory_limit", ["lots"]),
    # top level
    (config(baseline_history=10**5), "baseline_history", ["1 to 1000"]),
    (config(baseline_key="k" * 200), "baseline_key", ["at most 100 characters"]),
    (config(baseline_key="ci/cpu"), "baseline_key", ["letters, digits"]),
    ({"mesure": {}}, "mesure", ["unknown key", "did you mean 'measure'?"]),
    # policy: thresholds
    (
        config(policy={"thresholds": {"latency": "1e999%"}}),
        "policy.thresholds.latency",
        ["not a finite", "from 0% to 1000%"],
    ),
    (
        config(policy={"thresholds": {"latency": "2000%"}}),
        "policy.thresholds.latency",
        ["from 0% to 1000%"],
    ),
    (
        config(policy={"thresholds": {"latency": math.nan}}),
        "policy.thresholds.latency",
        ["not a finite"],
    ),
    (
        config(policy={"thresholds": {"latency": "1e999ms"}}),
        "policy.thresholds.latency",
        ["not a finite"],
    ),
    (
        config(policy={"thresholds": {"accuracy": "200pt"}}),
        "policy.thresholds.accuracy",
        ["from 0pt to 100pt"],
    ),
    (
        config(policy={"thresholds": {"latncy": "5%"}}),
        "policy.thresholds.latncy",
        ["unknown metric family", "did you mean 'latency'?"],
    ),
    (
        config(policy={"thresholds": {"througput": "5%"}}),
        "policy.thresholds.througput",
        ["did you mean 'throughput'?"],
    ),
    (
        config(policy={"thresholds": {"latency.p99": "5%"}}),
        "policy.thresholds.latency.p99",
        ["per metric family", "write 'latency'"],
    ),
    # policy: budgets, rounds, durations, sizes
    (
        config(policy={"budgets": {"m*": {"latency": "1e999ms"}}}),
        "policy.budgets.m*.latency",
        ["not a finite"],
    ),
    (
        config(policy={"budgets": {"m*": {"latency": "0ms"}}}),
        "policy.budgets.m*.latency",
        ["above 0"],
    ),
    (
        config(policy={"budgets": {"m*": {"throughput@99999999999": "5/s"}}}),
        "policy.budgets.m*.throughput@99999999999",
        ["1 to 100000"],
    ),
    (config(policy={"min_rounds": 5000}), "policy.min_rounds", ["2 to 1000"]),
    (config(policy={"max_rounds": 5000}), "policy.max_rounds", ["2 to 1000"]),
    (config(policy={"round_step": 10**6}), "policy.round_step", ["1 to 1000"]),
    (config(policy={"time_budget": "1e999s"}), "policy.time_budget", ["not a finite"]),
    (config(policy={"time_budget": "100000s"}), "policy.time_budget", ["at most 86400s"]),
    (config(policy={"memory_floor": "2000GiB"}), "policy.memory_floor", ["at most 1024GiB"]),
    (config(policy={"memory_floor": "1e999MB"}), "policy.memory_floor", ["not a finite"]),
    (config(policy={"alpha": math.nan}), "policy.alpha", ["between 0 and 0.5"]),
    (config(policy={"alpah": 0.1}), "policy.alpah", ["unknown key", "did you mean 'alpha'?"]),
    (
        config(policy={"diagnose": {"max_trace": math.inf}}),
        "policy.diagnose.max_trace",
        ["finite size"],
    ),
    (
        config(policy={"diagnose": {"max_trce": "1MB"}}),
        "policy.diagnose.max_trce",
        ["did you mean 'max_trace'?"],
    ),
    # policy: trade-offs
    (
        config(policy={"tradeoffs": [{"allow": {"acuracy": "-1pt"}, "when": {"latency": "-15%"}}]}),
        "policy.tradeoffs[0].allow.acuracy",
        ["did you mean 'accuracy'?"],
    ),
    (
        config(policy={"tradeoffs": [{"allow": {"accuracy": "-1pt"}, "when": {"latncy": "-15%"}}]}),
        "policy.tradeoffs[0].when.latncy",
        ["did you mean 'latency'?"],
    ),
    (
        config(
            policy={"tradeoffs": [{"allow": {"accuracy": "-1pt"}, "when": {"latency": "-150%"}}]}
        ),
        "policy.tradeoffs[0].when.latency",
        ["above -100% and at most +1000%"],
    ),
    (
        config(
            policy={"tradeoffs": [{"allow": {"accuracy": "-1e999pt"}, "when": {"latency": "-1%"}}]}
        ),
        "policy.tradeoffs[0].allow.accuracy",
        ["not a finite"],
    ),
    (
        config(
            policy={"tradeoffs": [{"allow": {"accuracy": "-200pt"}, "when": {"latency": "-1%"}}]}
        ),
        "policy.tradeoffs[0].allow.accuracy",
        ["at most 100pt"],
    ),
    # models
    (
        config(models={"m": {**MODEL, "batch_sizes": [10**6]}}),
        "models.m.batch_sizes[0]",
        ["1 to 100000"],
    ),
    (
        config(models={"m": {**MODEL, "batch_sizes": list(range(1, 30))}}),
        "models.m.batch_sizes",
        ["at most 16"],
    ),
    (
        config(models={"m": {**MODEL, "input": {"shape": [1, 100_000, 100_000]}}}),
        "models.m.input.shape",
        ["elements", "at most 2,147,483,648"],
    ),
    (config(models={"m": {**MODEL, "threads": 10**5}}), "models.m.threads", ["1 to 1024"]),
    (
        config(models={"m": {**MODEL, "device": "cuda:" + "9" * 50}}),
        "models.m.device",
        ["cuda:N"],
    ),
    (config(models={"m" * 150: MODEL}), "models." + "m" * 150, ["at most 100 characters"]),
    (
        config(models={"m": {**MODEL, "varients": ["torch"]}}),
        "models.m.varients",
        ["did you mean 'variants'?"],
    ),
    (
        config(models={"m": {**MODEL, "variants": ["torch-int4"]}}),
        "models.m.variants[0]",
        ["did you mean 'torch-int8'?"],
    ),
    (
        config(
            models={"m": {**TWO_VARIANTS, "parity": {"torch-int8": {"top1_agreement": "150%"}}}}
        ),
        "models.m.parity.torch-int8.top1_agreement",
        ["at most 100%"],
    ),
    (
        config(models={"m": {**TWO_VARIANTS, "parity": {"torch-int8": {"atol": math.inf}}}}),
        "models.m.parity.torch-int8.atol",
        ["finite"],
    ),
    (
        config(models={"m": {**TWO_VARIANTS, "parity": {"torch-int8": {"atoll": 1e-3}}}}),
        "models.m.parity.torch-int8.atoll",
        ["did you mean 'atol'?"],
    ),
    (
        config(models={"m": {**EVAL, "eval": {**EVAL["eval"], "batch_size": 10**7}}}),
        "models.m.eval.batch_size",
        ["1 to 100000"],
    ),
    (
        config(models={"m": {**EVAL, "eval": {**EVAL["eval"], "metircs": ["accuracy"]}}}),
        "models.m.eval.metircs",
        ["did you mean 'metrics'?"],
    ),
]


@pytest.mark.parametrize(
    ("data", "key", "fragments"), CONFIG_CASES, ids=[case[1] for case in CONFIG_CASES]
)
def test_a_number_out_of_range_or_an_unknown_key_is_one_line_naming_file_and_key(
    tmp_path: Path, data: dict[str, Any], key: str, fragments: list[str]
) -> None:
    path = tmp_path / "perf-gate.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    line = one_line(raised.value)
    assert f"perf-gate.yaml: {key}: " in line, line
    for fragment in fragments:
        assert fragment in line, line


def test_the_same_ranges_hold_in_pyproject_toml(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.perf-gate.measure]\nmin_time = "1e999s"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert "pyproject.toml: tool.perf-gate.measure.min_time: " in one_line(raised.value)


@pytest.mark.parametrize(
    "data",
    [
        config(
            measure={"rounds": 1000, "warmup": 100_000, "min_calls": 10**6, "min_time": "60s"}
        ),
        config(measure={"threads": 1024, "probes": 100, "seed": 2**63 - 1}),
        config(baseline_history=1000, baseline_key="k" * 100),
        config(policy={"min_rounds": 1000, "max_rounds": 1000, "round_step": 1000}),
        config(policy={"time_budget": "1440min", "memory_floor": "1024GiB"}),
        config(policy={"thresholds": {"latency": "1000%", "throughput": "0%"}}),
        config(policy={"thresholds": {"accuracy": "100pt"}}),
        # a family that is no near miss of a built-in one is a custom metric's (perf.record)
        config(policy={"thresholds": {"tokens_per_s": "3%", "map": "1%", "memory_mb": "2%"}}),
        config(models={"m": {**MODEL, "batch_sizes": [1, 100_000], "threads": 1024}}),
        config(models={"m": {**MODEL, "input": {"shape": [1, 3, 224, 224]}}}),
    ],
    ids=["measure-max", "measure-max-2", "top-max", "rounds-max", "time-max", "thresholds-max",
         "points-max", "custom-families", "batch-max", "image"],
)  # fmt: skip
def test_values_at_the_ends_of_the_ranges_are_accepted(
    tmp_path: Path, data: dict[str, Any]
) -> None:
    path = tmp_path / "perf-gate.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    load_config(path)


def test_a_declared_custom_metric_may_be_a_near_miss_of_a_built_in_one(tmp_path: Path) -> None:
    custom = {"maes": {"function": "pkg.m:maes", "direction": "lower"}}
    data = config(
        models={"m": {**EVAL, "eval": {**EVAL["eval"], "custom": custom}}},
        policy={
            "thresholds": {"maes": "2%"},
            "tradeoffs": [{"allow": {"maes": "-1"}, "when": {"latency": "-10%"}}],
        },
    )
    path = tmp_path / "perf-gate.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert load_config(path).policy.thresholds["maes"].value == pytest.approx(0.02)


# --------------------------------------------------------------------------------------------
# units and names


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (units.parse_duration, "1e999s"),
        (units.parse_duration, "1e308min"),
        (units.parse_duration, math.inf),
        (units.parse_duration, math.nan),
        (units.parse_size, "1e999MB"),
        (units.parse_size, "1e300GiB"),
        (units.parse_rate, "1e999/s"),
        (units.parse_rate, 10**400),
        (units.parse_percent, "1e999%"),
        (units.parse_points, "1e999pt"),
        (units.split_quantity, -math.inf),
    ],
)
def test_quantities_are_finite(parse: Any, text: Any) -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        parse(text)


def test_distance_and_closest() -> None:
    assert distance("latncy", "latency") == 1
    assert distance("memroy", "memory") == 1  # a swap is one edit
    assert distance("", "abc") == 3
    assert closest("latncy", ["latency", "throughput"]) == "latency"
    assert closest("zzzz", ["latency", "throughput"]) is None
    assert closest("map", ["mae"]) == "mae"  # a hint ...
    assert closest("map", ["mae"], strict=True) is None  # ... but not a refusal


# --------------------------------------------------------------------------------------------
# --shard, and the command line


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("1/100000000000000000000000", f"at most {MAX_SHARDS} shards"),
        ("1/1001", f"at most {MAX_SHARDS} shards"),
        ("1/" + "9" * 5000, f"at most {MAX_SHARDS} shards"),
        ("9" * 5000 + "/3", "between 1 and 3"),
        ("1/0", "expected I/N"),
        ("1/10^23", "expected I/N"),
    ],
)
def test_a_shard_count_is_bounded(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Shard.parse(text)
    line = one_line(raised.value)
    assert fragment in line
    assert "(perf-gate explain shard)" in line
    assert len(line) < 300  # a huge argument is not echoed whole


def test_the_largest_shard_count_is_accepted() -> None:
    assert Shard.parse(f"{MAX_SHARDS}/{MAX_SHARDS}") == Shard(MAX_SHARDS, MAX_SHARDS)


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["baseline", "status", "--name", "a/b"], ["--name 'a/b'", "file name"]),
        (["baseline", "history", "--name", "../main"], ["--name '../main'"]),
        (["baseline", "pull", "--baseline-key", "a/b"], ["--baseline-key 'a/b'"]),
        (["baseline", "status", "--baseline-key", "k" * 500], ["--baseline-key", "at most 100"]),
        (["run", "--baseline-key", "ci/cpu"], ["--baseline-key 'ci/cpu'"]),
        (["ci", "--baseline-key", "a b"], ["--baseline-key 'a b'"]),
        (["calibrate", "--rounds", "100000"], ["calibrate --rounds 100000", "at most 1,000"]),
        (["baseline", "history", "--limit", "0"], ["baseline history --limit 0"]),
        (["comment", "--pr", "-3"], ["comment --pr -3", "at least 1"]),
    ],
)
def test_arguments_with_a_bad_shape_or_range_are_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    fragments: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    assert list(tmp_path.iterdir()) == []  # refused before anything was read or written


# --------------------------------------------------------------------------------------------
# perf-gate explain


def test_parity_fail_has_a_guide(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["explain", "parity-fail"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## parity-fail\n")
    assert "models.<name>.parity" in out
    assert "parity: false" in out


@pytest.mark.parametrize(
    ("slug", "suggested"),
    [("parity-fial", "parity-fail"), ("shards", "shard"), ("zzzz", None), ("regression", None)],
)
def test_a_slug_suggestion_is_the_closest_by_edit_distance_or_none(
    slug: str, suggested: str | None
) -> None:
    with pytest.raises(ConfigError) as raised:
        explain(slug)
    message = str(raised.value)
    if suggested is None:
        assert "did you mean" not in message
    else:
        assert f"did you mean '{suggested}'?" in message
    assert suggested is None or suggested in sections(guide())


# --------------------------------------------------------------------------------------------
# baseline and run records


def sample(metric: str, unit: str, values: list[Any], **extra: Any) -> dict[str, Any]:
    direction = "higher" if metric.startswith(("throughput", "accuracy", "score")) else "lower"
    return {
        "benchmark": "m[torch]",
        "metric": metric,
        "unit": unit,
        "direction": direction,
        "values": values,
        **extra,
    }


def record(*samples: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "format": 1,
        "kind": "perf-gate run record",
        "samples": list(samples) or [sample("latency", "s", [0.001, 0.0011])],
        **extra,
    }


RECORD_CASES = [
    (record(sample("latency", "s", [0.001, 1e308])), "samples[0].values", ["m[torch] latency"]),
    (record(sample("latency", "s", [0.001], calls=[2e6])), "samples[0].calls", ["1e+06 s"]),
    (
        record(sample("cold_start", "s", [1.0], first_calls=[1e300])),
        "samples[0].first_calls",
        ["m[torch] cold_start"],
    ),
    (record(sample("memory.peak", "B", [1e19])), "samples[0].values", ["1e+18 B"]),
    (record(sample("throughput@1", "items/s", [1e16])), "samples[0].values", ["1e+15 items/s"]),
    (record(sample("accuracy", "fraction", [1.5])), "samples[0].values", ["at most 1 fraction"]),
    (record(sample("score", "", [-1e31])), "samples[0].values", ["m[torch] score", "1e+30"]),
    (record(sample("latency", "s", [10**400])), "samples[0].values", ["too large for a float"]),
    (
        record(info={"m[torch]": {"eval": {"examples": 1e308}}}),
        "info.m[torch].eval.examples",
        ["a count of examples"],
    ),
    (
        record(info={"m[torch]": {"parity": {"ok": False, "max_abs_diff": 10**400}}}),
        "info.m[torch].parity.max_abs_diff",
        ["expected a number from 0"],
    ),
    (
        record(info={"m[torch]": {"parity": {"ok": False, "bounds": 5}}}),
        "info.m[torch].parity.bounds",
        ["expected a JSON object"],
    ),
    (
        record(info={"m[torch]": {"gpu_ms_per_call": -1}}),
        "info.m[torch].gpu_ms_per_call",
        ["from 0"],
    ),
    (record(info={"m[torch]": {"notes": 7}}), "info.m[torch].notes", ["a list of texts"]),
    (
        record(settings={"shard": {"index": 1, "count": 10**20}}),
        "settings.shard",
        [f"N <= {MAX_SHARDS}"],
    ),
    (record(environment={"memory_bytes": 10**400}), "environment.memory_bytes", ["from 0"]),
]


@pytest.mark.parametrize(
    ("data", "key", "fragments"), RECORD_CASES, ids=[case[1] for case in RECORD_CASES]
)
def test_an_absurd_number_in_a_record_is_refused_naming_file_key_and_fix(
    tmp_path: Path, data: dict[str, Any], key: str, fragments: list[str]
) -> None:
    path = tmp_path / "main.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    before = path.read_bytes()
    with pytest.raises(BaselineError) as raised:
        read_record(path)
    line = one_line(raised.value)
    assert line.startswith(f"perf-gate: error: {path}: {key}: "), line
    for fragment in fragments:
        assert fragment in line, line
    assert "perf-gate run --save" in line
    assert "(perf-gate explain baseline-corrupt)" in line
    assert path.read_bytes() == before


def test_a_number_of_thousands_of_digits_is_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "main.json"
    text = json.dumps(record(sample("latency", "s", [0.001]))).replace("0.001", "9" * 5000)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BaselineError) as raised:
        read_record(path)
    assert f"{path}: content: a number of thousands of digits" in one_line(raised.value)


def test_a_save_replaces_an_absurd_baseline_instead_of_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "main.json"
    path.write_text(json.dumps(record(sample("latency", "s", [1e308]))), encoding="utf-8")
    baseline, note = load_baseline(path, save=True)
    assert baseline is None
    assert "m[torch] latency holds 1e+308 s" in note
    with pytest.raises(BaselineError):
        load_baseline(path, save=False)


# The ends of every unit's range, against each other: no overflow anywhere in the decision.
LARGEST = {"s": 1e6, "B": 1e18, "items/s": 1e15, "fraction": 1.0, "": 1e30}
METRICS = {
    "latency": "s",
    "throughput@1": "items/s",
    "memory.peak": "B",
    "cold_start": "s",
    "accuracy": "fraction",
    "score": "",
}


def extreme_record(kind: str) -> dict[str, Any]:
    samples = []
    for metric, unit in METRICS.items():
        big, tiny = LARGEST[unit], 5e-324
        values = {
            "big": [big] * 5,
            "tiny": [tiny] * 5,
            "zero": [0.0] * 5,
            "mixed": [big, tiny, 0.0, big, tiny],
            "spread": [big, -big, big, -big, 0.0] if unit == "" else [big, 0.0, big, 0.0, big],
        }[kind]
        replication = "evaluation" if metric == "accuracy" else "process"
        samples.append(sample(metric, unit, values, calls=values * 3, replication=replication))
    return record(*samples)


def test_the_decision_never_overflows_on_values_inside_the_ranges(tmp_path: Path) -> None:
    kinds = ("big", "tiny", "zero", "mixed", "spread")
    for kind in kinds:
        (tmp_path / f"{kind}.json").write_text(json.dumps(extreme_record(kind)), encoding="utf-8")
    defaults = load_config(root=tmp_path)
    for base, current in itertools.product(kinds, kinds):
        result, report = compare_records(
            defaults, tmp_path / f"{base}.json", tmp_path / f"{current}.json"
        )
        assert int(result.exit_code) in (0, 1), (base, current)
        json.dumps(report, allow_nan=True)  # the report is data, whatever the values


@pytest.mark.parametrize(
    ("value", "expected"),
    [("none", None), ("2GiB", 2 * 2**30), ("512MB", 512 * 10**6)],
)
def test_memory_limit_values(tmp_path: Path, value: str, expected: int | None) -> None:
    path = tmp_path / "perf-gate.yaml"
    path.write_text(yaml.safe_dump(config(measure={"memory_limit": value})), encoding="utf-8")
    assert load_config(path).measure.memory_limit == expected


def test_memory_limit_auto_is_a_share_of_the_machine(tmp_path: Path) -> None:
    path = tmp_path / "perf-gate.yaml"
    path.write_text(yaml.safe_dump(config()), encoding="utf-8")
    limit = load_config(path).measure.memory_limit
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert limit == int(total * 0.75)
