"""gate.config + gate.config.quality: eval sets, parity bounds, require_significance and trade-off
rules in perf-gate.yaml; every bad input is a ConfigError naming the file and the key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from gate import units
from gate.config import DEFAULT_THRESHOLDS, GateConfig, load_config
from gate.config.quality import (
    LOOSE_BOUNDS,
    PAIRED_METRICS,
    STRICT_BOUNDS,
    CustomMetric,
    EvalSpec,
    ParityBounds,
    ParitySpec,
)
from gate.core.types import Direction, Threshold
from gate.errors import ConfigError

FILE = "perf-gate.yaml"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A project folder with a small eval set (data/digits.npz) and a Parquet file."""
    (tmp_path / "data").mkdir()
    np.savez(
        tmp_path / "data" / "digits.npz",
        x=np.zeros((10, 4), dtype=np.float32),
        y=np.arange(10) % 3,
    )
    (tmp_path / "data" / "table.parquet").write_bytes(b"PAR1")
    return tmp_path


def write(root: Path, *, model: dict[str, Any] | None = None, **top: Any) -> Path:
    spec: dict[str, Any] = {
        "torch": "pkg.models:build",
        "input": {"shape": [4], "dtype": "float32"},
        "variants": ["torch", "torch-int8", "onnxruntime"],
    }
    spec.update(model or {})
    data = {"models": {"m": spec}, **top}
    path = root / FILE
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def load(root: Path, **kwargs: Any) -> GateConfig:
    return load_config(write(root, **kwargs))


def error(root: Path, **kwargs: Any) -> str:
    path = write(root, **kwargs)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = info.value.message
    assert message.startswith(f"{FILE}: "), message
    assert info.value.exit_code == 2
    return message


# --------------------------------------------------------------------------------------------
# valid eval sets


def test_model_without_eval(root: Path) -> None:
    model = load(root).models[0]
    assert model.eval is None
    assert model.parity == ParitySpec()
    assert model.parity.enabled


def test_minimal_eval_defaults(root: Path) -> None:
    spec = load(root, model={"eval": {"data": "data/digits.npz"}}).models[0].eval
    assert spec == EvalSpec(data=root / "data" / "digits.npz")
    assert spec is not None
    assert spec.x == ("x",)
    assert spec.y == "y"
    assert spec.task == "classification"
    assert spec.metrics == ("accuracy",)
    assert spec.batch_size == 256
    assert spec.dtype is None
    assert spec.custom == ()


def test_full_classification_eval(root: Path) -> None:
    config = load(
        root,
        model={
            "eval": {
                "data": "data/digits.npz",
                "x": ["pixels", "mask"],
                "y": "label",
                "task": "classification",
                "batch_size": 64,
                "dtype": "float16",
                "metrics": ["accuracy", "top5", "f1_macro"],
                "custom": {"ece": {"function": "pkg.metrics:ece", "direction": "lower"}},
            }
        },
    )
    spec = config.models[0].eval
    assert spec is not None
    assert spec.x == ("pixels", "mask")
    assert spec.y == "label"
    assert spec.batch_size == 64
    assert spec.dtype == "float16"
    assert spec.metrics == ("accuracy", "top5", "f1_macro")
    assert spec.custom == (
        CustomMetric(name="ece", function="pkg.metrics:ece", direction=Direction.LOWER),
    )
    assert spec.direction("ece") is Direction.LOWER
    assert spec.direction("accuracy") is Direction.HIGHER
    assert spec.direction("f1_macro") is Direction.HIGHER
    assert spec.to_dict() == {
        "data": str(root / "data" / "digits.npz"),
        "callable": None,
        "x": ["pixels", "mask"],
        "y": "label",
        "task": "classification",
        "batch_size": 64,
        "dtype": "float16",
        "metrics": ["accuracy", "top5", "f1_macro"],
        "custom": [{"name": "ece", "function": "pkg.metrics:ece", "direction": "lower"}],
    }


def test_regression_eval_defaults_to_mae_and_rmse(root: Path) -> None:
    spec = (
        load(root, model={"eval": {"data": "data/digits.npz", "task": "regression"}}).models[0].eval
    )
    assert spec is not None
    assert spec.metrics == ("mae", "rmse")
    assert spec.direction("mae") is Direction.LOWER
    assert spec.direction("rmse") is Direction.LOWER


def test_single_metric_as_a_string(root: Path) -> None:
    spec = load(root, model={"eval": {"data": "data/digits.npz", "metrics": "top5"}}).models[0].eval
    assert spec is not None
    assert spec.metrics == ("top5",)


def test_callable_eval_source(root: Path) -> None:
    spec = load(root, model={"eval": {"callable": "pkg.data:eval_batches"}}).models[0].eval
    assert spec is not None
    assert spec.data is None
    assert spec.callable == "pkg.data:eval_batches"
    assert spec.to_dict()["data"] is None


def test_parquet_and_absolute_paths(root: Path) -> None:
    spec = (
        load(root, model={"eval": {"data": "data/table.parquet", "x": "features"}}).models[0].eval
    )
    assert spec is not None
    assert spec.data == root / "data" / "table.parquet"
    assert spec.x == ("features",)
    absolute = str(root / "data" / "digits.npz")
    spec = load(root, model={"eval": {"data": absolute}}).models[0].eval
    assert spec is not None
    assert spec.data == Path(absolute)


def test_eval_changes_the_config_digest(root: Path) -> None:
    plain = load(root)
    evaluated = load(root, model={"eval": {"data": "data/digits.npz"}})
    assert plain.digest != evaluated.digest


# --------------------------------------------------------------------------------------------
# invalid eval sets


@pytest.mark.parametrize(
    ("eval_spec", "key", "fragment"),
    [
        (
            {"data": "data/digits.npz", "metrics": ["accuracy", "mae"]},
            "models.m.eval.metrics[1]",
            "unknown metric 'mae' for task classification; expected one of accuracy, top5, "
            "f1_macro (mae is a regression metric: set task: regression)",
        ),
        (
            {"data": "data/digits.npz", "task": "regression", "metrics": ["accuracy"]},
            "models.m.eval.metrics[0]",
            "(accuracy is a classification metric: set task: classification)",
        ),
        (
            {"data": "data/digits.npz", "metrics": ["auc"]},
            "models.m.eval.metrics[0]",
            "unknown metric 'auc' for task classification",
        ),
        (
            {"data": "data/digits.npz", "metrics": ["accuracy", "accuracy"]},
            "models.m.eval.metrics",
            "lists a metric twice",
        ),
        (
            {"data": "data/digits.npz", "metrics": {"accuracy": 1}},
            "models.m.eval.metrics",
            "expected a list of metric names",
        ),
        (
            {"data": "data/digits.npz", "callable": "pkg.data:batches"},
            "models.m.eval",
            "needs exactly one of 'data: path.npz|path.parquet' or 'callable: module:function'",
        ),
        ({"task": "classification"}, "models.m.eval", "needs exactly one of"),
        (
            {"data": "data/missing.npz"},
            "models.m.eval.data",
            "file 'data/missing.npz' not found (relative to",
        ),
        (
            {"data": "data/digits.csv"},
            "models.m.eval.data",
            "expected a .npz or .parquet file, got 'data/digits.csv'",
        ),
        ({"data": 5}, "models.m.eval.data", "expected a path, got 5"),
        ({"data": "  "}, "models.m.eval.data", "expected a path"),
        (
            {"callable": "pkg.data"},
            "models.m.eval.callable",
            "expected 'module:function', got 'pkg.data'",
        ),
        (
            {"data": "data/digits.npz", "task": "ranking"},
            "models.m.eval.task",
            "unknown task 'ranking'; expected one of classification, regression",
        ),
        (
            {"data": "data/digits.npz", "batch_size": 0},
            "models.m.eval.batch_size",
            "expected an integer >= 1, got 0",
        ),
        (
            {"data": "data/digits.npz", "batch_size": "32"},
            "models.m.eval.batch_size",
            "expected an integer >= 1",
        ),
        (
            {"data": "data/digits.npz", "dtype": "bfloat16"},
            "models.m.eval.dtype",
            "expected float32, float64, float16, int64 or int32, got 'bfloat16'",
        ),
        (
            {"data": "data/digits.npz", "x": ["a", 3]},
            "models.m.eval.x",
            "expected a column/array name or a list of them",
        ),
        ({"data": "data/digits.npz", "x": ""}, "models.m.eval.x", "expected a column/array name"),
        ({"data": "data/digits.npz", "y": ["a"]}, "models.m.eval.y", "expected a column/array"),
        (
            {"data": "data/digits.npz", "labels": "y"},
            "models.m.eval.labels",
            "unknown key; expected one of data, callable, x, y, task",
        ),
        (
            {"data": "data/digits.npz", "custom": {"ece": {"function": "pkg.m:ece"}}},
            "models.m.eval.custom.ece.direction",
            "expected 'higher' or 'lower' (which is better), got None",
        ),
        (
            {
                "data": "data/digits.npz",
                "custom": {"ece": {"function": "pkg.m:ece", "direction": "down"}},
            },
            "models.m.eval.custom.ece.direction",
            "got 'down'",
        ),
        (
            {
                "data": "data/digits.npz",
                "custom": {"ece": {"function": "ece", "direction": "lower"}},
            },
            "models.m.eval.custom.ece.function",
            "expected 'module:function', got 'ece'",
        ),
        (
            {
                "data": "data/digits.npz",
                "custom": {"accuracy": {"function": "pkg.m:acc", "direction": "higher"}},
            },
            "models.m.eval.custom.accuracy",
            "custom metric names are identifiers other than the built-in ones",
        ),
        (
            {
                "data": "data/digits.npz",
                "custom": {"my-metric": {"function": "pkg.m:f", "direction": "higher"}},
            },
            "models.m.eval.custom.my-metric",
            "custom metric names are identifiers",
        ),
        (
            {
                "data": "data/digits.npz",
                "custom": {"ece": {"function": "pkg.m:ece", "direction": "lower", "weight": 1}},
            },
            "models.m.eval.custom.ece.weight",
            "unknown key; expected one of function, direction",
        ),
        ({"data": "data/digits.npz", "custom": ["ece"]}, "models.m.eval.custom", "a mapping"),
        ("data/digits.npz", "models.m.eval", "expected a mapping, got a string"),
    ],
)
def test_invalid_eval(root: Path, eval_spec: Any, key: str, fragment: str) -> None:
    message = error(root, model={"eval": eval_spec})
    assert message.startswith(f"{FILE}: {key}: "), message
    assert fragment in message


def test_missing_eval_file_hints_at_dvc(root: Path) -> None:
    message = error(root, model={"eval": {"data": "data/missing.parquet"}})
    assert message.startswith(f"{FILE}: models.m.eval.data: ")
    assert str(root) in message
    assert "if it is tracked by DVC, run 'dvc pull' first" in message


def test_eval_data_that_is_a_folder_is_not_found(root: Path) -> None:
    (root / "data" / "folder.npz").mkdir()
    message = error(root, model={"eval": {"data": "data/folder.npz"}})
    assert "models.m.eval.data: file 'data/folder.npz' not found" in message


def test_empty_x_list_is_rejected(root: Path) -> None:
    message = error(root, model={"eval": {"data": "data/digits.npz", "x": []}})
    assert "models.m.eval.x" in message


# --------------------------------------------------------------------------------------------
# parity


def test_parity_defaults_by_variant_kind() -> None:
    spec = ParitySpec()
    for variant in ("torch", "torch-compile", "onnxruntime"):
        for task in ("classification", "regression"):
            assert spec.bounds(variant, task) == ParityBounds(**STRICT_BOUNDS)
    for variant in ("torch-int8", "torch-bf16", "onnxruntime-int8"):
        assert spec.bounds(variant, "classification") == ParityBounds(
            top1_agreement=LOOSE_BOUNDS["top1_agreement"]
        )
        assert spec.bounds(variant, "regression") == ParityBounds(atol=0.05, rtol=0.05)
    assert ParityBounds(**STRICT_BOUNDS).describe() == "atol 0.0001, rtol 0.001"
    assert spec.bounds("torch-int8", "classification").describe() == (
        "top-1 agreement >= 99% (near-ties within 1% not counted)"
    )


def test_parity_overrides(root: Path) -> None:
    parity = (
        load(
            root,
            model={
                "parity": {
                    "reference": "onnxruntime",
                    "torch-int8": {"top1_agreement": "97.5%", "atol": 0.1, "ties": "0.1%"},
                    "torch": {"atol": 1e-5, "rtol": 0},
                }
            },
        )
        .models[0]
        .parity
    )
    assert parity.enabled
    assert parity.reference == "onnxruntime"
    assert parity.bounds("torch-int8", "classification") == ParityBounds(
        atol=0.1, rtol=0.0, top1_agreement=pytest.approx(0.975), ties=pytest.approx(0.001)
    )
    assert parity.bounds("torch", "classification") == ParityBounds(atol=1e-5, rtol=0.0)
    # Variants without an override keep the default for their kind.
    assert parity.bounds("onnxruntime", "regression") == ParityBounds(**STRICT_BOUNDS)
    text = parity.bounds("torch-int8", "classification").describe()
    assert text == "atol 0.1, rtol 0; top-1 agreement >= 97.5% (near-ties within 0.1% not counted)"


@pytest.mark.parametrize("ties", ["100%", "-1%", "0.5", "lots"])
def test_parity_ties_must_be_a_share_below_one(root: Path, ties: object) -> None:
    with pytest.raises(ConfigError, match=r"models\.m\.parity\.torch-int8\.ties"):
        load(root, model={"parity": {"torch-int8": {"top1_agreement": "99%", "ties": ties}}})


def test_parity_off(root: Path) -> None:
    parity = load(root, model={"parity": False}).models[0].parity
    assert not parity.enabled
    assert parity.overrides == {}


@pytest.mark.parametrize(
    ("parity", "key", "fragment"),
    [
        (
            {"reference": "onnxruntime-int8"},
            "models.m.parity.reference",
            "'onnxruntime-int8' is not one of this model's variants "
            "(torch, torch-int8, onnxruntime)",
        ),
        (
            {"torch-int8": {"top1_agreement": 0.99}},
            "models.m.parity.torch-int8.top1_agreement",
            "expected a percentage like '5%', got 0.99",
        ),
        (
            {"torch-int8": {"top1_agreement": "high"}},
            "models.m.parity.torch-int8.top1_agreement",
            "cannot read 'high'",
        ),
        (
            {"torch-int8": {"rtol": 0.1}},
            "models.m.parity.torch-int8",
            "set 'atol' (with 'rtol') and/or 'top1_agreement'",
        ),
        (
            {"torch-int8": {"atol": -1e-3}},
            "models.m.parity.torch-int8.atol",
            "expected a non-negative number like 1e-4, got -0.001",
        ),
        (
            {"torch-int8": {"atol": True}},
            "models.m.parity.torch-int8.atol",
            "expected a non-negative number",
        ),
        (
            {"torch-int8": {"atol": 0.1, "rtol": "1%"}},
            "models.m.parity.torch-int8.rtol",
            "expected a non-negative number like 1e-4, got '1%'",
        ),
        (
            {"torch-int8": {"atol": 0.1, "max": 1}},
            "models.m.parity.torch-int8.max",
            "unknown key; expected one of atol, rtol, top1_agreement",
        ),
        (
            {"onnxruntime-int8": {"atol": 0.1}},
            "models.m.parity.onnxruntime-int8",
            "unknown key; expected one of reference, torch, torch-int8, onnxruntime",
        ),
        ({"torch-int8": 0.1}, "models.m.parity.torch-int8", "expected a mapping"),
        ("strict", "models.m.parity", "expected a mapping, got a string"),
    ],
)
def test_invalid_parity(root: Path, parity: Any, key: str, fragment: str) -> None:
    message = error(root, model={"parity": parity})
    assert message.startswith(f"{FILE}: {key}: "), message
    assert fragment in message


# --------------------------------------------------------------------------------------------
# thresholds, require_significance


def test_quality_default_thresholds(root: Path) -> None:
    policy = load(root).policy
    assert DEFAULT_THRESHOLDS["accuracy"] == "0.5pt"
    assert policy.thresholds["accuracy"] == Threshold(value=pytest.approx(0.005), relative=False)
    assert policy.thresholds["top5"] == Threshold(value=pytest.approx(0.005), relative=False)
    assert policy.thresholds["f1_macro"] == Threshold(value=pytest.approx(0.005), relative=False)
    assert policy.thresholds["mae"] == Threshold(value=pytest.approx(0.01), relative=True)
    assert policy.thresholds["rmse"] == Threshold(value=pytest.approx(0.01), relative=True)
    assert policy.threshold_for("m[torch]", "accuracy").relative is False
    assert policy.require_significance == frozenset()
    assert policy.tradeoffs == ()


def test_quality_thresholds_in_points_and_percent(root: Path) -> None:
    policy = load(
        root, policy={"thresholds": {"accuracy": "1.5pt", "top5": "0.2pp", "f1_macro": "2%"}}
    ).policy
    assert policy.thresholds["accuracy"] == Threshold(value=pytest.approx(0.015), relative=False)
    assert policy.thresholds["top5"] == Threshold(value=pytest.approx(0.002), relative=False)
    assert policy.thresholds["f1_macro"] == Threshold(value=pytest.approx(0.02), relative=True)


def test_accuracy_threshold_without_points_names_the_key(root: Path) -> None:
    message = error(root, policy={"thresholds": {"accuracy": "0.5"}})
    assert message.startswith(f"{FILE}: policy.thresholds.accuracy: ")
    assert "percentage points like '0.5pt'" in message


def test_units_points() -> None:
    assert units.parse_points("0.5pt") == pytest.approx(0.005)
    assert units.parse_points("2pp") == pytest.approx(0.02)
    assert units.format_points(-0.0042) == "-0.42 pt"
    assert units.format_points(0.01) == "+1.00 pt"
    assert units.budget_unit("accuracy") == units.UNIT_FRACTION
    assert units.budget_unit("mae") == ""
    with pytest.raises(ValueError, match="percentage points"):
        units.parse_points("0.5")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, frozenset()),
        (False, frozenset()),
        (True, PAIRED_METRICS),
        ("accuracy", frozenset({"accuracy"})),
        (["top5", "mae"], frozenset({"top5", "mae"})),
        ([], frozenset()),
    ],
)
def test_require_significance(root: Path, value: Any, expected: frozenset[str]) -> None:
    policy = load(root, policy={"require_significance": value}).policy
    assert policy.require_significance == expected
    assert PAIRED_METRICS == frozenset({"accuracy", "top5", "mae", "rmse"})


@pytest.mark.parametrize(
    ("value", "key", "fragment"),
    [
        (
            ["accuracy", "f1_macro"],
            "policy.require_significance[1]",
            "'f1_macro' keeps no per-example outcomes to test; require_significance supports "
            "accuracy, mae, rmse, top5",
        ),
        (["latency"], "policy.require_significance[0]", "'latency' keeps no per-example"),
        (1, "policy.require_significance", "expected true, false or a list of metric names"),
        ({"accuracy": True}, "policy.require_significance", "got {'accuracy': True}"),
    ],
)
def test_invalid_require_significance(root: Path, value: Any, key: str, fragment: str) -> None:
    message = error(root, policy={"require_significance": value})
    assert message.startswith(f"{FILE}: {key}: "), message
    assert fragment in message


# --------------------------------------------------------------------------------------------
# trade-off rules


def test_tradeoff_rule(root: Path) -> None:
    policy = load(
        root,
        policy={
            "tradeoffs": [
                {"allow": {"accuracy": "0.3pt"}, "when": {"throughput": "15%"}},
                {
                    "allow": {"mae": 0.02, "top5": "1pt"},
                    "when": {"latency": "20%", "memory": "10%"},
                },
            ]
        },
    ).policy
    first, second = policy.tradeoffs
    assert first.allow == {"accuracy": pytest.approx(0.003)}
    assert first.when == {"throughput": pytest.approx(0.15)}
    assert first.text == "allow accuracy +0.30 pt when throughput +15%"
    assert first.allowance("accuracy") == pytest.approx(0.003)
    assert first.allowance("top5") is None
    assert second.allow == {"mae": pytest.approx(0.02), "top5": pytest.approx(0.01)}
    assert second.when == {"latency": pytest.approx(0.2), "memory": pytest.approx(0.1)}
    assert second.text == "allow mae +0.02, top5 +1.00 pt when latency +20%, memory +10%"


def test_tradeoff_rule_with_signed_values(root: Path) -> None:
    """The documented form: a drop written negative, a latency reduction as -15%."""
    policy = load(
        root,
        policy={
            "tradeoffs": [
                {"allow": {"accuracy": "-0.3pt"}, "when": {"latency": "-15%"}},
                {"allow": {"mae": "-0.5", "top5": "+1pt"}, "when": {"throughput": "+20%"}},
            ]
        },
    ).policy
    first, second = policy.tradeoffs
    assert first.allow == {"accuracy": pytest.approx(-0.003)}
    assert first.allowance("accuracy") == pytest.approx(0.003)
    assert first.when == {"latency": pytest.approx(-0.15)}
    assert first.text == "allow accuracy -0.30 pt when latency -15%"
    assert second.allow == {"mae": pytest.approx(-0.5), "top5": pytest.approx(0.01)}
    assert second.allowance("mae") == pytest.approx(0.5)
    assert second.when == {"throughput": pytest.approx(0.2)}
    assert second.text == "allow mae -0.5, top5 +1.00 pt when throughput +20%"


def test_the_documented_tradeoff_config_loads(root: Path) -> None:
    text = (
        "models:\n"
        "  m:\n"
        "    torch: pkg.models:build\n"
        "    input: {shape: [4]}\n"
        "policy:\n"
        "  tradeoffs:\n"
        "    - allow: {accuracy: -0.3pt}     # accept up to this accuracy drop...\n"
        "      when: {latency: -15%}         # ...if latency improved at least this much\n"
    )
    (root / FILE).write_text(text, encoding="utf-8")
    (rule,) = load_config(root / FILE).policy.tradeoffs
    assert rule.when == {"latency": pytest.approx(-0.15)}
    assert rule.allowance("accuracy") == pytest.approx(0.003)


def test_tradeoff_percent_allowance_on_an_error_metric_is_not_read_as_absolute(
    root: Path,
) -> None:
    try:
        policy = load(
            root, policy={"tradeoffs": [{"allow": {"mae": "5%"}, "when": {"throughput": "10%"}}]}
        ).policy
    except ConfigError:
        return
    assert policy.tradeoffs[0].allow["mae"] != 5.0


@pytest.mark.parametrize(
    ("rules", "key", "fragment"),
    [
        (
            [{"allow": {"accuracy": "0.3pt"}}],
            "policy.tradeoffs[0]",
            "needs both 'allow: {metric: drop}' and 'when: {metric: change}'",
        ),
        ([{"when": {"throughput": "15%"}}], "policy.tradeoffs[0]", "needs both"),
        (
            [
                {"allow": {"accuracy": "0.3pt"}, "when": {"throughput": "15%"}},
                {"allow": {"accuracy": "0.3pt"}, "when": {}},
            ],
            "policy.tradeoffs[1]",
            "'allow' and 'when' each need at least one metric",
        ),
        (
            [{"allow": {"accuracy": "0.3"}, "when": {"throughput": "15%"}}],
            "policy.tradeoffs[0].allow.accuracy",
            "expected percentage points like '0.5pt'",
        ),
        (
            [{"allow": {"accuracy": "0.3pt"}, "when": {"throughput": "15"}}],
            "policy.tradeoffs[0].when.throughput",
            "expected a percentage like '5%', got '15' (e.g. latency: -15%)",
        ),
        (
            [{"allow": {"accuracy": "0.3pt"}, "when": {"latency": "fast"}}],
            "policy.tradeoffs[0].when.latency",
            "cannot read 'fast'",
        ),
        (
            [{"allow": {"accuracy": "0.3pt"}, "when": {"throughput": "15%"}, "why": "x"}],
            "policy.tradeoffs[0].why",
            "unknown key; expected one of allow, when",
        ),
        (
            [{"allow": ["accuracy"], "when": {"throughput": "15%"}}],
            "policy.tradeoffs[0].allow",
            "expected a mapping, got a list",
        ),
        (
            {"allow": {"accuracy": "0.3pt"}, "when": {"throughput": "15%"}},
            "policy.tradeoffs",
            "expected a list of rules like",
        ),
        (["fast"], "policy.tradeoffs[0]", "expected a mapping, got a string"),
        (
            [{"allow": {"accuracy": "--0.3pt"}, "when": {"latency": "-15%"}}],
            "policy.tradeoffs[0].allow.accuracy",
            "cannot read '-0.3pt'",
        ),
        (
            [{"allow": {"accuracy": "-0.3pt"}, "when": {"latency": "-15"}}],
            "policy.tradeoffs[0].when.latency",
            "expected a percentage like '5%', got '15' (e.g. latency: -15%)",
        ),
    ],
)
def test_invalid_tradeoffs(root: Path, rules: Any, key: str, fragment: str) -> None:
    message = error(root, policy={"tradeoffs": rules})
    assert message.startswith(f"{FILE}: {key}: "), message
    assert fragment in message


def test_unknown_policy_key_lists_the_quality_keys(root: Path) -> None:
    message = error(root, policy={"trade_offs": []})
    assert message.startswith(f"{FILE}: policy.trade_offs: unknown key")
    assert "require_significance" in message
    assert "tradeoffs" in message


def test_unknown_model_key_lists_eval_and_parity(root: Path) -> None:
    message = error(root, model={"evaluation": {}})
    assert message.startswith(f"{FILE}: models.m.evaluation: unknown key")
    assert "eval" in message
    assert "parity" in message
