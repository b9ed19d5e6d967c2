"""User code that ends, crashes or misbehaves never takes the gate down, and never leaves the
previous run's result to be read as this one's (real ``perf-gate run`` and ``pytest
--perf-gate`` processes on real torch models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ._support import read_json, run_cli, run_pytest, write_files

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.slow

MODELS = """
import os
import sys

import torch
from torch import nn


class ExitsInForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 2)

    def forward(self, x):
        os._exit(0)


def exits_in_forward():
    return ExitsInForward()


def fine():
    torch.manual_seed(0)
    return nn.Linear(8, 2)
"""

EXITS_AT_IMPORT = """
import sys

sys.exit(0)


def build():
    raise AssertionError("never reached")
"""

CONFIG = """
models:
  exits:
    torch: pg_faults:exits_in_forward
    input: {{shape: [1, 8]}}
    variants: [{variants}]
    metrics: [latency]
  fine:
    torch: pg_faults:fine
    input: {{shape: [1, 8]}}
    variants: [torch]
    metrics: [latency]
measure: {{rounds: 2, warmup: 1, min_calls: 5, min_time: 0.01s, probes: 1}}
policy: {{min_rounds: 2, max_rounds: 2}}
"""

STALE = {"format": 1, "exit_code": 0, "passed": True, "comparisons": [], "stale": "marker"}


def project(tmp_path: Path, variants: str, extra: dict[str, str] | None = None) -> Path:
    root = write_files(
        tmp_path,
        {
            "pg_faults.py": MODELS,
            "perf-gate.yaml": CONFIG.format(variants=variants),
            "pytest.ini": "[pytest]\n",
            **(extra or {}),
        },
    )
    (root / ".perf-gate").mkdir()
    (root / ".perf-gate" / "comparison.json").write_text(json.dumps(STALE), encoding="utf-8")
    (root / ".perf-gate" / "results.json").write_text('{"stale": "marker"}', encoding="utf-8")
    return root


def assert_fresh_outputs(root: Path) -> dict[str, object]:
    comparison = read_json(root / ".perf-gate" / "comparison.json")
    assert "stale" not in comparison
    assert comparison["run"]["id"]
    assert "stale" not in read_json(root / ".perf-gate" / "results.json")
    return comparison


def test_a_model_that_exits_in_forward_is_an_error_of_its_variant_not_a_silent_pass(tmp_path):
    root = project(tmp_path, "onnxruntime, torch")
    ran = run_cli(root, "run")
    assert ran.ret == 3, ran.output  # a benchmark failed: the run's status is an error
    assert "Traceback" not in ran.output
    comparison = assert_fresh_outputs(root)
    errors = {e["benchmark"]: e["message"] for e in comparison["errors"]}
    assert set(errors) == {"exits[onnxruntime]", "exits[torch]"}, errors
    assert "ended (exit code 0) before writing its result" in errors["exits[onnxruntime]"]
    assert "os._exit" in errors["exits[onnxruntime]"]
    measured = {c["benchmark"] for c in comparison["comparisons"] if c["verdict"] != "error"}
    assert "fine[torch]" in measured  # the other model is measured all the same


def test_under_pytest_the_models_user_code_runs_in_workers_only(tmp_path):
    root = project(tmp_path, "onnxruntime")
    ran = run_pytest(root, "--perf-gate")
    # pytest itself survives: the model item fails, the gate reports it and exits non-zero
    assert ran.ret not in (0, 5), ran.output
    assert "Traceback" not in ran.output
    assert ran.lines_with("exits[onnxruntime]"), ran.output
    comparison = assert_fresh_outputs(root)
    errors = {e["benchmark"]: e["message"] for e in comparison["errors"]}
    assert "before writing its result" in errors["exits[onnxruntime]"], errors


def test_a_module_that_exits_at_import_is_named(tmp_path):
    root = project(
        tmp_path,
        "torch",
        {
            "pg_exits.py": EXITS_AT_IMPORT,
            "perf-gate.yaml": CONFIG.format(variants="torch").replace(
                "pg_faults:exits_in_forward", "pg_exits:build"
            ),
        },
    )
    ran = run_cli(root, "run")
    assert ran.ret == 3, ran.output
    assert "Traceback" not in ran.output
    comparison = assert_fresh_outputs(root)
    errors = {e["benchmark"]: e["message"] for e in comparison["errors"]}
    assert "exits[torch]" in errors, errors
    assert "exit code 0" in errors["exits[torch]"], errors
