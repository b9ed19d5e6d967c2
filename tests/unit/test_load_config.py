"""``models.<name>.load`` and ``models.<name>.data``: parsed settings, and one line naming the
file and the key for every setting that cannot run (docs/load.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.config import load_config
from gate.config.load import LoadSpec, load_from_dict
from gate.errors import ConfigError


def write(tmp_path: Path, **spec: Any) -> Path:
    model: dict[str, Any] = {"torch": "pkg.models:build", "input": {"shape": [1, 8]}}
    model.update(spec)
    path = tmp_path / "perf-gate.yaml"
    path.write_text(yaml.safe_dump({"models": {"m": model}}), encoding="utf-8")
    return path


def error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = info.value.message
    assert "\n" not in message
    assert str(path.name) in message
    return message


def test_a_load_section_is_parsed_with_units_and_defaults(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            load={
                "rate": "200/s",
                "duration": "3s",
                "threads": 4,
                "max_batch": 8,
                "max_wait": "2ms",
                "percentiles": ["p50", "p99"],
                "slo": "20ms",
            },
        )
    )
    (model,) = config.models
    assert model.load == LoadSpec(
        rate=200.0,
        duration=3.0,
        threads=4,
        max_batch=8,
        max_wait=0.002,
        percentiles=(0.5, 0.99),
        slo=0.02,
    )
    assert model.load.batch_sizes == (1, 2, 4, 8)
    assert load_from_dict(model.load.to_dict()) == model.load
    assert model.benchmark_names() == ["m[torch]", "m[onnxruntime]"]


def test_a_data_section_adds_a_benchmark_and_may_stand_alone(tmp_path: Path) -> None:
    (model,) = load_config(write(tmp_path, data="pkg.data:loader")).models
    assert model.data is not None
    assert model.data.batches == 20
    assert model.benchmark_names() == ["m[torch]", "m[onnxruntime]", "m[data]"]
    path = tmp_path / "alone.yaml"
    path.write_text(
        yaml.safe_dump({"models": {"pipe": {"data": {"loader": "pkg:f", "batches": 5}}}}),
        encoding="utf-8",
    )
    (alone,) = load_config(path).models
    assert alone.variants == ()
    assert alone.benchmark_names() == ["pipe[data]"]


@pytest.mark.parametrize(
    ("load", "message"),
    [
        ({"rate": 0, "duration": "1s"}, "models.m.load.rate: must be above 0"),
        ({"rate": -5, "duration": "1s"}, "models.m.load.rate: must not be negative"),
        ({"rate": "fast", "duration": "1s"}, "models.m.load.rate: cannot read 'fast'"),
        ({"rate": 2e6, "duration": "1s"}, "models.m.load.rate: must be at most 1e+06/s"),
        ({"rate": 100}, "models.m.load: with 'rate', give 'duration'"),
        ({"rate": 100, "duration": "7200s"}, "models.m.load.duration: must be at most 3600s"),
        ({"rate": 100, "duration": 5}, "models.m.load.duration: expected a duration like '2ms'"),
        ({"rate": 100, "duration": "0s"}, "models.m.load.duration: must be above 0"),
        ({"rate": 100, "duration": "1s"}, "p99 needs at least 459 queries"),
        ({"rate": 1000, "duration": "1s", "threads": 0}, "models.m.load.threads"),
        ({"rate": 1000, "duration": "1s", "percentiles": ["p100"]}, "expected a percentile"),
        (
            {"rate": 1000, "duration": "1s", "percentiles": ["p99", 0.99]},
            "lists a percentile twice",
        ),
        ({"rate": 1000, "duration": "1s", "qps": 3}, "models.m.load.qps"),
        ({"duration": "1s"}, "needs 'rate'"),
        ({"slo": "20ms", "duration": "1s"}, "'duration' and 'queries' need a 'rate'"),
        ({"rate": 1000, "duration": "1s", "search_budget": "10s"}, "need an 'slo'"),
        ({"slo": "0ms"}, "models.m.load.slo: must be above 0"),
        ("fast", "models.m.load"),
    ],
)
def test_bad_load_settings_are_one_line_naming_the_key(
    tmp_path: Path, load: Any, message: str
) -> None:
    assert message in error(write(tmp_path, load=load))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"loader": "not a reference"}, "models.m.data.loader: expected 'module:function'"),
        ({"loader": "pkg:f", "batches": 0}, "models.m.data.batches"),
        ({"loader": "pkg:f", "workers": 2}, "models.m.data.workers"),
        (3, "models.m.data"),
    ],
)
def test_bad_data_settings_are_one_line_naming_the_key(
    tmp_path: Path, data: Any, message: str
) -> None:
    assert message in error(write(tmp_path, data=data))


def test_a_data_only_entry_refuses_model_keys(tmp_path: Path) -> None:
    path = tmp_path / "perf-gate.yaml"
    path.write_text(
        yaml.safe_dump({"models": {"p": {"data": "pkg:f", "variants": ["torch"]}}}),
        encoding="utf-8",
    )
    assert "models.p.variants: needs a model" in error(path)
