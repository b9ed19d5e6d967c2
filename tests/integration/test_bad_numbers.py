"""Numbers without bounds, through the real ``perf-gate`` command: each bad input is one line on
stderr naming the file and the key, exit 2, no traceback, and the baseline left byte for byte as
it was. All of them are refused before anything is measured (about a second each)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ._support import Ran, read_json, run_cli, run_cli_here, write_files, write_matmul_onnx

GOOD_SAMPLE = {
    "benchmark": "matmul[onnxruntime]",
    "metric": "latency",
    "unit": "s",
    "direction": "lower",
    "values": [0.001, 0.0011, 0.00105],
}
CONFIG = """
models:
  matmul:
    onnx: model.onnx
    input: {shape: [1, 16], dtype: float32}
    variants: [onnxruntime]
    metrics: [latency]
measure: {rounds: 2, warmup: 2, min_calls: 20, min_time: 0.02s, probes: 1}
"""


def baseline_text(*values: float) -> str:
    sample = {**GOOD_SAMPLE, "values": list(values) or GOOD_SAMPLE["values"]}
    return json.dumps({"format": 1, "kind": "perf-gate run record", "samples": [sample]})


def project(root: Path, config: str = CONFIG, baseline: str | None = None) -> Path:
    write_files(
        root, {"perf-gate.yaml": config, "baselines/main.json": baseline or baseline_text()}
    )
    (root / "model.onnx").write_bytes(b"")  # never loaded: every case stops before measuring
    return root


def assert_refused(ran: Ran, root: Path, before: bytes, *fragments: str) -> str:
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert ran.ret == 2, ran.output
    assert len(lines) == 1, ran.output
    assert "Traceback" not in ran.output
    assert lines[0].startswith("perf-gate: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert (root / "baselines" / "main.json").read_bytes() == before
    assert not (root / ".perf-gate" / "results.json").exists()
    return lines[0]


CONFIG_CASES = [
    pytest.param(
        CONFIG.replace("min_time: 0.02s", "min_time: 1e999s"),
        ["perf-gate.yaml: measure.min_time: ", "not a finite number", "0 to 60s"],
        id="min-time-infinite",
    ),
    pytest.param(
        CONFIG.replace("rounds: 2", "rounds: 99999999999"),
        ["perf-gate.yaml: measure.rounds: ", "(allowed: 2 to 1000)"],
        id="rounds-forever",
    ),
    pytest.param(
        CONFIG + "policy: {thresholds: {latency: '1e999%'}}\n",
        ["perf-gate.yaml: policy.thresholds.latency: ", "not a finite number", "1000%"],
        id="threshold-infinite",
    ),
    pytest.param(
        CONFIG + "policy: {thresholds: {latncy: 5%}}\n",
        ["perf-gate.yaml: policy.thresholds.latncy: ", "did you mean 'latency'?"],
        id="threshold-family-typo",
    ),
    pytest.param(
        CONFIG + "policy: {time_budget: 1e6min}\n",
        ["perf-gate.yaml: policy.time_budget: ", "at most 86400s"],
        id="time-budget",
    ),
    pytest.param(
        CONFIG.replace(
            "variants: [onnxruntime]", "variants: [onnxruntime]\n    batch_sizes: [1e9]"
        ),
        ["perf-gate.yaml: models.matmul.batch_sizes[0]: "],
        id="batch-size-float",
    ),
    pytest.param(
        CONFIG.replace("variants: [onnxruntime]", "variants: [onnxruntime]\n    threds: 2"),
        ["perf-gate.yaml: models.matmul.threds: unknown key", "did you mean 'threads'?"],
        id="model-key-typo",
    ),
]


@pytest.mark.parametrize(("config", "fragments"), CONFIG_CASES)
def test_run_refuses_a_config_number_out_of_range(
    tmp_path: Path, config: str, fragments: list[str]
) -> None:
    root = project(tmp_path, config)
    before = (root / "baselines" / "main.json").read_bytes()
    assert_refused(run_cli_here(root, "run", "--save"), root, before, *fragments)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        pytest.param(
            ["run", "--shard", "1/100000000000000000000000"],
            ["--shard", "at most 1000 shards", "(perf-gate explain shard)"],
            id="shard-count",
        ),
        pytest.param(
            ["run", "--baseline-key", "ci/cpu"],
            ["--baseline-key 'ci/cpu'", "file name"],
            id="baseline-key-slash",
        ),
        pytest.param(
            ["baseline", "status", "--name", "main/x"],
            ["--name 'main/x'", "file name"],
            id="baseline-name-slash",
        ),
        pytest.param(
            ["baseline", "history", "--baseline-key", "../up"],
            ["--baseline-key '../up'"],
            id="baseline-key-dots",
        ),
        pytest.param(
            ["calibrate", "--rounds", "99999999999"],
            ["calibrate --rounds 99999999999", "at most 1,000"],
            id="calibrate-rounds",
        ),
    ],
)
def test_arguments_out_of_range_are_refused(
    tmp_path: Path, args: list[str], fragments: list[str]
) -> None:
    root = project(tmp_path)
    before = (root / "baselines" / "main.json").read_bytes()
    assert_refused(run_cli_here(root, *args), root, before, *fragments)


@pytest.mark.parametrize("command", [["compare"], ["run"]])
def test_an_absurd_baseline_value_is_refused_naming_file_benchmark_and_fix(
    tmp_path: Path, command: list[str]
) -> None:
    root = project(tmp_path, baseline=baseline_text(0.001, 1e308))
    baseline = root / "baselines" / "main.json"
    before = baseline.read_bytes()
    if command == ["compare"]:
        (root / "current.json").write_text(baseline_text(), encoding="utf-8")
        command = ["compare", str(baseline), "current.json"]
    line = assert_refused(
        run_cli_here(root, *command),
        root,
        before,
        f"{baseline}: samples[0].values: matmul[onnxruntime] latency holds 1e+308 s",
        "perf-gate run --save",
        "(perf-gate explain baseline-corrupt)",
    )
    assert "OverflowError" not in line


def test_explain_parity_fail(tmp_path: Path) -> None:
    ran = run_cli_here(tmp_path, "explain", "parity-fail")
    assert ran.ret == 0, ran.output
    assert ran.stdout.startswith("## parity-fail")


@pytest.mark.slow
def test_run_save_replaces_an_absurd_baseline(tmp_path: Path) -> None:
    """The fix every message names works: ``run --save`` records over the damaged baseline."""
    root = project(tmp_path, baseline=baseline_text(0.001, 1e308))
    write_matmul_onnx(root / "model.onnx")
    ran = run_cli(root, "run", "--save")
    assert ran.ret == 0, ran.output
    assert "Traceback" not in ran.output
    saved = read_json(root / "baselines" / "main.json")
    assert all(max(s["values"]) < 1 for s in saved["samples"])
