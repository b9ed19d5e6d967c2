"""app.gate_record: files written, exit codes, saving, and a damaged baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate import pipeline as app
from gate.config import load_config
from gate.core.types import Direction, Metric, RunRecord, Sample
from gate.errors import BaselineError
from gate.store.records import read_record

LATENCY = Metric("latency", "s", Direction.LOWER)


def record(scale: float) -> RunRecord:
    values = tuple(scale * v for v in (1.00, 1.01, 0.99, 1.02, 0.98))
    return RunRecord(
        samples=(Sample(benchmark="m[torch]", metric=LATENCY, values=values),),
        environment={"os": "Linux"},
    )


@pytest.fixture
def config(tmp_path: Path):
    (tmp_path / "perf-gate.yaml").write_text("measure: {rounds: 3}\n", encoding="utf-8")
    return load_config(root=tmp_path)


def test_no_baseline_passes_and_writes_results_and_comparison(config) -> None:
    outcome = app.gate_record(config, record(1e-3))
    assert outcome.exit_code == 0
    assert "no baseline yet" in outcome.table
    results = read_record(config.report_dir / "results.json")
    assert results.samples[0].values == record(1e-3).samples[0].values
    comparison = json.loads((config.report_dir / "comparison.json").read_text())
    assert comparison["comparisons"][0]["verdict"] == "new"


def test_save_then_regression_exits_1(config) -> None:
    assert app.gate_record(config, record(1e-3), save=True).exit_code == 0
    assert config.baseline.is_file()
    outcome = app.gate_record(config, record(2e-3))
    assert outcome.exit_code == 1
    assert "regression" in outcome.table


def test_damaged_baseline_is_an_error_but_save_replaces_it(config) -> None:
    config.baseline.parent.mkdir(parents=True)
    config.baseline.write_text('{"format": 1, "samples": [', encoding="utf-8")
    with pytest.raises(BaselineError, match=r"main\.json: line 1"):
        app.gate_record(config, record(1e-3))
    outcome = app.gate_record(config, record(1e-3), save=True)
    assert outcome.exit_code == 0
    assert "could not be read and was replaced" in outcome.table
    assert read_record(config.baseline).samples[0].benchmark == "m[torch]"
