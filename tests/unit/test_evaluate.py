"""gate.measure.worker.accuracy: metric functions, parity, eval-set readers (.npz, .parquet,
callable) and the worker's eval loop with stand-in backends (numpy only, no model is loaded)."""

from __future__ import annotations

import hashlib
import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gate.errors import ConfigError, MeasurementError
from gate.measure import BenchmarkPlan
from gate.measure.worker import accuracy as ev

# --------------------------------------------------------------------------------------------
# classification metrics

# 6 examples, 4 classes: argmax = [0, 1, 2, 3, 1, 0]
LOGITS = np.array(
    [
        [0.9, 0.05, 0.03, 0.02],
        [0.1, 0.7, 0.1, 0.1],
        [0.2, 0.1, 0.6, 0.1],
        [0.1, 0.2, 0.3, 0.4],
        [0.3, 0.4, 0.2, 0.1],
        [0.5, 0.1, 0.3, 0.1],
    ]
)
LABELS = np.array([0, 1, 1, 3, 2, 0])  # right, right, wrong, right, wrong, right


def test_accuracy_outcomes_by_hand() -> None:
    outcomes = ev.accuracy_outcomes(LOGITS, LABELS)
    assert outcomes.dtype == np.float64
    assert outcomes.tolist() == [1.0, 1.0, 0.0, 1.0, 0.0, 1.0]


def test_accuracy_accepts_column_targets_and_integral_floats() -> None:
    assert ev.accuracy_outcomes(LOGITS, LABELS.reshape(-1, 1)).tolist() == [1, 1, 0, 1, 0, 1]
    floats = LABELS.astype(np.float32)
    assert ev.accuracy_outcomes(LOGITS, floats).tolist() == [1, 1, 0, 1, 0, 1]


def test_top5_outcomes_by_hand() -> None:
    logits = np.array(
        [
            [7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0],  # top5 = classes 0..4
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],  # top5 = classes 2..6
            [0.0, 0.0, 0.0, 0.0, 0.0, 9.0, 0.5],
        ]
    )
    assert ev.top5_outcomes(logits, np.array([4, 1, 6])).tolist() == [1.0, 0.0, 1.0]
    assert ev.top5_outcomes(logits, np.array([5, 6, 5])).tolist() == [0.0, 1.0, 1.0]


def test_top5_with_exactly_five_classes_is_always_right() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 5))
    labels = rng.integers(0, 5, size=50)
    assert ev.top5_outcomes(logits, labels).tolist() == [1.0] * 50


def test_top5_needs_five_classes() -> None:
    with pytest.raises(MeasurementError, match="top5 needs at least 5 classes, the model has 4"):
        ev.top5_outcomes(LOGITS, LABELS)


def test_top5_contains_top1() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(500, 12))
    labels = rng.integers(0, 12, size=500)
    top1 = ev.accuracy_outcomes(logits, labels)
    top5 = ev.top5_outcomes(logits, labels)
    assert np.all(top5 >= top1)
    assert top5.mean() > top1.mean()


def test_f1_macro_by_hand() -> None:
    # predicted [0, 1, 2, 3, 1, 0], labels [0, 1, 1, 3, 2, 0]
    # class 0: tp 2 fp 0 fn 0 -> 1; class 1: tp 1 fp 1 fn 1 -> 0.5;
    # class 2: tp 0 fp 1 fn 1 -> 0; class 3: tp 1 -> 1. Mean 2.5 / 4.
    assert ev.f1_macro(LOGITS, LABELS) == pytest.approx(0.625)


def test_f1_macro_ignores_classes_absent_from_targets_and_predictions() -> None:
    logits = np.zeros((4, 10))
    logits[[0, 1, 2, 3], [0, 0, 1, 1]] = 1.0
    assert ev.f1_macro(logits, np.array([0, 0, 1, 1])) == 1.0
    # A class only in the targets counts (as 0), as does a class only predicted.
    assert ev.f1_macro(logits, np.array([0, 0, 1, 2])) == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)


@pytest.mark.parametrize("seed", range(4))
def test_f1_macro_matches_sklearn(seed: int) -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(300, 7))
    labels = rng.integers(0, 6, size=300)  # class 6 never a target
    expected = metrics.f1_score(labels, logits.argmax(axis=1), average="macro", zero_division=0)
    assert ev.f1_macro(logits, labels) == pytest.approx(expected, abs=1e-12)
    assert ev.accuracy_outcomes(logits, labels).mean() == pytest.approx(
        metrics.accuracy_score(labels, logits.argmax(axis=1))
    )
    assert ev.top5_outcomes(logits, labels).mean() == pytest.approx(
        metrics.top_k_accuracy_score(labels, logits, k=5, labels=np.arange(7))
    )


@pytest.mark.parametrize(
    ("outputs", "targets", "message"),
    [
        (np.zeros(6), LABELS, r"outputs of shape \[examples, classes\], got \[6\]"),
        (np.zeros((2, 3, 4)), LABELS, r"got \[2, 3, 4\]"),
        (LOGITS, LABELS[:5], "6 predictions but 5 targets"),
        (LOGITS, np.eye(4)[LABELS], "6 predictions but 24 targets"),
        (
            LOGITS,
            np.array([0, 1, 4, 3, 2, 0]),
            r"label 4 is outside the model's 4 classes \(0..3\)",
        ),
        (LOGITS, np.array([0, -1, 1, 3, 2, 0]), "label -1 is outside the model's 4 classes"),
        (LOGITS, np.array([0, 1.5, 1, 3, 2, 0]), "classification targets must be class indices"),
        (LOGITS, np.array([0, np.nan, 1, 3, 2, 0]), "must be class indices"),
    ],
)
def test_classification_input_errors(outputs: Any, targets: Any, message: str) -> None:
    for function in (ev.accuracy_outcomes, ev.f1_macro):
        with pytest.raises(MeasurementError, match=message) as info:
            function(outputs, targets)
        assert info.value.slug == "eval-shape"


# --------------------------------------------------------------------------------------------
# regression metrics


def test_absolute_and_squared_errors_by_hand() -> None:
    outputs = np.array([1.0, 2.0, 4.0])
    targets = np.array([[1.5], [2.0], [1.0]])
    assert ev.absolute_errors(outputs, targets).tolist() == [0.5, 0.0, 3.0]
    assert ev.squared_errors(outputs, targets).tolist() == [0.25, 0.0, 9.0]


def test_multi_output_errors_average_per_example() -> None:
    outputs = np.array([[1.0, 2.0], [0.0, 0.0]], dtype=np.float32)
    targets = np.array([[0.0, 4.0], [1.0, -1.0]])
    assert ev.absolute_errors(outputs, targets).tolist() == [1.5, 1.0]
    assert ev.squared_errors(outputs, targets).tolist() == [2.5, 1.0]


def test_regression_shape_mismatch() -> None:
    with pytest.raises(
        MeasurementError,
        match=r"predictions of shape \[3, 2\] do not match "
        r"targets of shape \[3\]",
    ) as info:
        ev.absolute_errors(np.zeros((3, 2)), np.zeros(3))
    assert info.value.slug == "eval-shape"
    with pytest.raises(MeasurementError, match="do not match"):
        ev.squared_errors(np.zeros(4), np.zeros(3))


# --------------------------------------------------------------------------------------------
# quality(): the configured metrics


def test_quality_classification() -> None:
    spec = {"metrics": ["accuracy", "f1_macro"], "custom": []}
    values, outcomes = ev.quality(spec, LOGITS, LABELS)
    assert values == {"accuracy": pytest.approx(4 / 6), "f1_macro": pytest.approx(0.625)}
    assert set(outcomes) == {"accuracy"}  # f1 keeps no per-example outcomes
    assert outcomes["accuracy"].tolist() == [1, 1, 0, 1, 0, 1]


def test_quality_regression() -> None:
    outputs = np.array([1.0, 2.0, 4.0, 0.0])
    targets = np.array([1.5, 2.0, 1.0, 1.0])
    values, outcomes = ev.quality({"metrics": ["mae", "rmse"]}, outputs, targets)
    assert values["mae"] == pytest.approx((0.5 + 0 + 3 + 1) / 4)
    assert values["rmse"] == pytest.approx(math.sqrt((0.25 + 0 + 9 + 1) / 4))
    assert outcomes["rmse"].tolist() == [0.25, 0.0, 9.0, 1.0]
    assert outcomes["mae"].tolist() == [0.5, 0.0, 3.0, 1.0]


@pytest.fixture
def metrics_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "qmetrics_for_tests.py").write_text(
        textwrap.dedent(
            """
            import numpy as np

            def mean_output(predictions, targets):
                return float(np.mean(predictions))

            def broken(predictions, targets):
                raise ValueError("no targets for me")

            def nan(predictions, targets):
                return float("nan")
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "qmetrics_for_tests"


def test_quality_custom_metric(metrics_module: str) -> None:
    spec = {
        "metrics": ["accuracy"],
        "custom": [{"name": "mean_out", "function": f"{metrics_module}:mean_output"}],
    }
    values, outcomes = ev.quality(spec, LOGITS, LABELS)
    assert values["mean_out"] == pytest.approx(LOGITS.mean())
    assert set(outcomes) == {"accuracy"}


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("broken", r"custom metric m \(qmetrics_for_tests:broken\) raised ValueError: no targets"),
        ("nan", "custom metric m returned nan"),
    ],
)
def test_quality_custom_metric_errors(metrics_module: str, function: str, message: str) -> None:
    spec = {"metrics": [], "custom": [{"name": "m", "function": f"{metrics_module}:{function}"}]}
    with pytest.raises(MeasurementError, match=message) as info:
        ev.quality(spec, LOGITS, LABELS)
    assert info.value.slug == "eval-metric"


# --------------------------------------------------------------------------------------------
# parity


def test_parity_within_bounds() -> None:
    reference = np.array([[1.0, 2.0], [3.0, -4.0]])
    outputs = reference + np.array([[1e-5, -2e-5], [0.0, 3e-5]])
    bounds = {"atol": 1e-4, "rtol": 1e-3, "top1_agreement": None}
    result = ev.parity(reference, outputs, bounds, "classification")
    assert result["ok"] is True
    assert result["reason"] == ""
    assert result["max_abs_diff"] == pytest.approx(3e-5)
    assert result["mean_abs_diff"] == pytest.approx(1.5e-5)
    assert result["top1_agreement"] == 1.0
    assert result["bounds"] == bounds


def test_parity_rtol_scales_with_the_reference() -> None:
    reference = np.array([1000.0, 1.0])
    outputs = np.array([1000.5, 1.0])
    assert ev.parity(reference, outputs, {"atol": 0.0, "rtol": 1e-3}, "regression")["ok"]
    result = ev.parity(reference, outputs, {"atol": 0.1, "rtol": 0.0}, "regression")
    assert result["ok"] is False
    assert result["reason"] == (
        "max |diff| 0.5 exceeds atol 0.1 + rtol 0 x |reference|; likely cause: outputs differ "
        "on 1 of 2 examples only: behaviour that depends on input values (control flow, "
        "data-dependent shapes) the variant fixed, or an operator whose conversion is exact "
        "only for some inputs"
    )
    assert result["top1_agreement"] is None


def test_parity_matches_numpy_allclose() -> None:
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(200, 10))
    for scale in (1e-6, 1e-4, 1e-3, 1e-2):
        outputs = reference + rng.normal(scale=scale, size=reference.shape)
        result = ev.parity(reference, outputs, {"atol": 1e-4, "rtol": 1e-3}, "regression")
        assert result["ok"] == np.allclose(outputs, reference, atol=1e-4, rtol=1e-3)


def test_parity_top1_agreement() -> None:
    reference = np.eye(4)[[i % 4 for i in range(20)]]
    outputs = reference.copy()
    outputs[0] = outputs[1] = [0.0, 0.0, 0.0, 1.0]  # two of twenty disagree
    result = ev.parity(reference, outputs, {"top1_agreement": 0.95}, "classification")
    assert result["top1_agreement"] == pytest.approx(0.9)
    assert result["ok"] is False
    assert result["reason"].startswith("top-1 agreement 90.00% < 95%; likely cause: ")
    assert ev.parity(reference, outputs, {"top1_agreement": 0.9}, "classification")["ok"]


def test_parity_top1_agreement_is_not_judged_on_too_few_examples() -> None:
    """With 8 examples one disagreement is 12.5%: against a 99% bound it happens to 7.7% of
    variants that meet the bound, so it is reported, not judged; two (p = 0.27%) fail."""
    reference = np.eye(4)[[i % 4 for i in range(8)]]
    outputs = reference.copy()
    outputs[0] = [0.0, 1.0, 0.0, 0.0]
    result = ev.parity(reference, outputs, {"top1_agreement": 0.99}, "classification")
    assert result["top1_agreement"] == pytest.approx(0.875)
    assert result["ok"] is True
    assert result["top1_judged"] is False
    assert result["reason"].startswith("top-1 agreement not judged: 1 disagreement(s) in 8")
    outputs[1] = [0.0, 0.0, 1.0, 0.0]
    two = ev.parity(reference, outputs, {"top1_agreement": 0.99}, "classification")
    assert two["ok"] is False
    assert two["reason"].startswith("top-1 agreement 75.00% < 99%; likely cause: ")


def test_near_ties_are_left_out_of_top1_agreement_and_counted() -> None:
    """A random-weight network's classes differ by ~1e-5 of its outputs: int8 rounding swaps
    them, which says nothing about the variant. Such examples are counted and held to the loose
    absolute bounds instead."""
    rng = np.random.default_rng(3)
    reference = 0.5 + rng.normal(scale=1e-5, size=(24, 10))
    outputs = reference + rng.normal(scale=1e-5, size=reference.shape)
    assert np.mean(reference.argmax(1) == outputs.argmax(1)) < 0.9  # swapped by the noise
    bounds = {"top1_agreement": 0.99, "ties": 0.01}
    result = ev.parity(reference, outputs, bounds, "classification")
    assert result["ok"] is True
    assert result["near_ties"] == 24
    assert result["top1_agreement"] is None
    assert result["top1_judged"] is False
    assert "all 24 examples are near-ties" in result["reason"]
    # near-tied outputs far from the reference's still fail
    result = ev.parity(reference, outputs + 0.3, bounds, "classification")
    assert result["ok"] is False
    assert "the near-tied outputs differ by more than atol 0.05" in result["reason"]
    # with ties not tolerated, the swaps count
    strict = ev.parity(reference, outputs, {"top1_agreement": 0.99, "ties": 0.0}, "classification")
    assert strict["ok"] is False
    assert strict["near_ties"] == 0


def test_clear_examples_still_judge_top1_beside_near_ties() -> None:
    reference = np.eye(4)[[i % 4 for i in range(40)]]
    reference[:5] = 0.25 + np.arange(4) * 1e-6  # five near-ties
    outputs = reference.copy()
    outputs[:5] = 0.25 - np.arange(4) * 1e-6  # their order reversed
    result = ev.parity(reference, outputs, {"top1_agreement": 0.99}, "classification")
    assert result["ok"] is True
    assert result["near_ties"] == 5
    assert result["top1_agreement"] == 1.0
    assert "5 of 40 examples are near-ties" in result["reason"]
    # the clear examples judge the variant: a near-tie's outputs may move as int8 moves them
    outputs[:5] += 0.3
    assert ev.parity(reference, outputs, {"top1_agreement": 0.99}, "classification")["ok"]
    outputs[:5] -= 0.3
    outputs[12:15] = [0.0, 0.0, 0.0, 1.0]  # classes 0, 1 and 2 read as 3
    failed = ev.parity(reference, outputs, {"top1_agreement": 0.99}, "classification")
    assert failed["ok"] is False
    assert failed["top1_agreement"] == pytest.approx(32 / 35)


def test_a_parity_failure_names_the_variants_export_note() -> None:
    reference = np.array([[1.0, 0.0], [0.0, 1.0]])
    outputs = np.array([[1.0, 0.0], [3.0, 1.0]])
    note = "exported with torch.export because the trace may not be the model"
    result = ev.parity(reference, outputs, {"atol": 1e-4, "rtol": 0.0}, "regression", note)
    assert result["ok"] is False
    assert result["reason"].endswith(f"; {note}")
    assert "differ on 1 of 2 examples only" in result["reason"]


def test_binomial_tail_matches_the_closed_forms() -> None:
    assert ev._binomial_tail(1, 8, 0.01) == pytest.approx(1 - 0.99**8)
    assert ev._binomial_tail(0, 5, 0.3) == pytest.approx(1.0)
    assert ev._binomial_tail(5, 5, 0.3) == pytest.approx(0.3**5)


def test_parity_both_bounds_fail_together() -> None:
    reference = np.eye(3)[[i % 3 for i in range(100)]]
    outputs = reference.copy()
    outputs[:34] = np.eye(3)[[(i + 1) % 3 for i in range(34)]]
    result = ev.parity(
        reference, outputs, {"atol": 0.01, "rtol": 0.0, "top1_agreement": 0.99}, "classification"
    )
    assert result["ok"] is False
    assert result["reason"].startswith("top-1 agreement 66.00% < 99%; max |diff| 1 exceeds atol")


def test_parity_regression_ignores_top1() -> None:
    reference = np.array([[0.0, 1.0]])
    outputs = np.array([[1.0, 0.0]])
    result = ev.parity(reference, outputs, {"top1_agreement": 0.99}, "regression")
    assert result["top1_agreement"] is None
    assert result["ok"] is True


def test_parity_shape_mismatch() -> None:
    result = ev.parity(np.zeros((4, 3)), np.zeros((4, 2)), {"atol": 1.0}, "classification")
    assert result == {
        "ok": False,
        "reason": "output shape [4, 2] differs from the reference's [4, 3]",
    }


def test_parity_on_empty_outputs() -> None:
    result = ev.parity(np.zeros((0, 3)), np.zeros((0, 3)), {"atol": 1e-4, "rtol": 0.0}, "x")
    assert result["ok"] is True
    assert result["max_abs_diff"] == 0.0
    assert result["mean_abs_diff"] == 0.0


# --------------------------------------------------------------------------------------------
# eval sets: .npz


def npz_spec(path: Path, **extra: Any) -> dict[str, Any]:
    return {"data": str(path), "x": ["x"], "y": "y", "batch_size": 4, "dtype": None, **extra}


def test_npz_batches(tmp_path: Path) -> None:
    path = tmp_path / "set.npz"
    x = np.arange(20, dtype=np.float64).reshape(10, 2)
    y = np.arange(10) % 3
    np.savez(path, x=x, y=y)
    batches = list(ev.eval_batches(npz_spec(path)))
    assert [len(t) for _, t in batches] == [4, 4, 2]
    assert np.array_equal(np.concatenate([i for i, _ in batches]), x)
    assert np.array_equal(np.concatenate([t for _, t in batches]), y)
    assert batches[0][0].dtype == np.float64
    assert isinstance(batches[0][1], np.ndarray)


def test_npz_named_arrays_and_dtype_cast(tmp_path: Path) -> None:
    path = tmp_path / "set.npz"
    np.savez(path, images=np.ones((5, 3), dtype=np.float64), labels=np.arange(5))
    spec = npz_spec(path, x=["images"], y="labels", batch_size=2, dtype="float16")
    batches = list(ev.eval_batches(spec))
    assert len(batches) == 3
    assert all(inputs.dtype == np.float16 for inputs, _ in batches)
    assert batches[2][1].tolist() == [4]
    assert batches[0][1].dtype.kind == "i"  # targets are not cast


def test_npz_several_inputs_are_a_tuple(tmp_path: Path) -> None:
    path = tmp_path / "set.npz"
    np.savez(path, a=np.zeros((6, 2)), b=np.ones((6, 1), dtype=np.int64), y=np.arange(6))
    batches = list(ev.eval_batches(npz_spec(path, x=["a", "b"], batch_size=6, dtype="float32")))
    ((inputs, targets),) = batches
    assert isinstance(inputs, tuple)
    assert len(inputs) == 2
    assert inputs[0].shape == (6, 2)
    assert inputs[1].shape == (6, 1)
    assert inputs[0].dtype == inputs[1].dtype == np.float32
    assert targets.tolist() == list(range(6))


def test_npz_missing_array(tmp_path: Path) -> None:
    path = tmp_path / "set.npz"
    np.savez(path, x=np.zeros((3, 2)), target=np.zeros(3))
    with pytest.raises(ConfigError) as info:
        list(ev.eval_batches(npz_spec(path)))
    assert info.value.message == (
        "set.npz: no array named 'y'; it holds x, target (set eval.x / eval.y in the config)"
    )
    assert info.value.slug == "eval-data"


def test_npz_row_count_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "set.npz"
    np.savez(path, x=np.zeros((4, 2)), y=np.zeros(3))
    with pytest.raises(
        MeasurementError, match=r"set.npz: inputs have \[4\] rows but the targets 3"
    ):
        list(ev.eval_batches(npz_spec(path)))


# --------------------------------------------------------------------------------------------
# eval sets: .parquet


@pytest.fixture
def parquet_path(tmp_path: Path) -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "f1": [0.0, 1.0, 2.0, 3.0, 4.0],
            "f2": [10.0, 11.0, 12.0, 13.0, 14.0],
            "vector": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0], [9.0, 10.0]],
            "label": [0, 1, 0, 1, 1],
        }
    )
    path = tmp_path / "set.parquet"
    pq.write_table(table, path)
    return path


def test_parquet_scalar_columns_are_stacked(parquet_path: Path) -> None:
    spec = npz_spec(parquet_path, x=["f1", "f2"], y="label", batch_size=2, dtype="float32")
    batches = list(ev.eval_batches(spec))
    assert [len(t) for _, t in batches] == [2, 2, 1]
    first_inputs, first_targets = batches[0]
    assert first_inputs.shape == (2, 2)
    assert first_inputs.dtype == np.float32
    assert first_inputs.tolist() == [[0.0, 10.0], [1.0, 11.0]]
    assert first_targets.tolist() == [0, 1]
    assert batches[2][0].tolist() == [[4.0, 14.0]]


def test_parquet_list_column_is_one_input(parquet_path: Path) -> None:
    spec = npz_spec(parquet_path, x=["vector"], y="label", batch_size=10)
    ((inputs, targets),) = list(ev.eval_batches(spec))
    assert inputs.shape == (5, 2)
    assert inputs[4].tolist() == [9.0, 10.0]
    assert targets.tolist() == [0, 1, 0, 1, 1]


def test_parquet_missing_column(parquet_path: Path) -> None:
    spec = npz_spec(parquet_path, x=["f1", "f3"], y="target")
    with pytest.raises(ConfigError) as info:
        list(ev.eval_batches(spec))
    message = info.value.message
    assert message.startswith("set.parquet: no column named 'f3', 'target'; it has ")
    assert "f1, f2, vector, label" in message
    assert "(set eval.x / eval.y in the config)" in message


# --------------------------------------------------------------------------------------------
# eval sets: a callable


@pytest.fixture
def batches_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "qbatches_for_tests.py").write_text(
        textwrap.dedent(
            """
            import numpy as np

            def good():
                for start in range(0, 6, 4):
                    stop = min(start + 4, 6)
                    yield np.arange(start, stop, dtype=np.float64).reshape(-1, 1), list(
                        range(start, stop)
                    )

            def as_dicts():
                yield {"ids": np.array([[1, 2]]), "mask": np.array([[1, 1]])}, np.array([0])

            def bad():
                yield np.zeros((2, 1)), np.zeros(2)
                yield np.zeros((2, 1))
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "qbatches_for_tests"


def test_callable_batches(batches_module: str) -> None:
    batches = list(ev.eval_batches({"callable": f"{batches_module}:good", "dtype": "float32"}))
    assert len(batches) == 2
    assert batches[0][0].dtype == np.float32
    assert batches[0][0].ravel().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert isinstance(batches[1][1], np.ndarray)
    assert batches[1][1].tolist() == [4, 5]


def test_callable_dict_inputs_are_cast_per_key(batches_module: str) -> None:
    ((inputs, targets),) = list(
        ev.eval_batches({"callable": f"{batches_module}:as_dicts", "dtype": "int32"})
    )
    assert set(inputs) == {"ids", "mask"}
    assert inputs["ids"].dtype == inputs["mask"].dtype == np.int32
    assert targets.tolist() == [0]


def test_callable_bad_batch(batches_module: str) -> None:
    reference = f"{batches_module}:bad"
    with pytest.raises(MeasurementError) as info:
        list(ev.eval_batches({"callable": reference}))
    assert info.value.message == f"{reference}: batch 1 is not an (inputs, targets) pair"
    assert info.value.slug == "eval-data"


def test_callable_that_cannot_be_imported(batches_module: str) -> None:
    with pytest.raises(MeasurementError, match="has no attribute 'missing'"):
        list(ev.eval_batches({"callable": f"{batches_module}:missing"}))


# --------------------------------------------------------------------------------------------
# the content hash


def digest_of(*values: Any) -> str:
    digest = hashlib.sha256()
    for value in values:
        ev._update_hash(digest, value)
    return digest.hexdigest()


def test_eval_hash_is_stable_and_content_sensitive() -> None:
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    assert digest_of(x, np.arange(4)) == digest_of(x.copy(), np.arange(4))
    changed = x.copy()
    changed[2, 1] += 1
    assert digest_of(changed, np.arange(4)) != digest_of(x, np.arange(4))
    assert digest_of(x.astype(np.float64), np.arange(4)) != digest_of(x, np.arange(4))
    assert digest_of(x.reshape(3, 4), np.arange(4)) != digest_of(x, np.arange(4))
    assert digest_of({"b": x, "a": x}) == digest_of({"a": x, "b": x})


# --------------------------------------------------------------------------------------------
# the worker's eval loop, with stand-in backends


class FakeBackend:
    """Predicts from the inputs with a fixed function; never loads a model."""

    sync = None

    def __init__(self, predict: Any) -> None:
        self._predict = predict

    def import_runtime(self) -> None:
        pass

    def load(self) -> None:
        pass

    def predict(self, inputs: Any, batch_size: int = 8) -> Any:
        return self._predict(inputs)


def plan(variant: str) -> BenchmarkPlan:
    return BenchmarkPlan(name=f"m[{variant}]", model="m", variant=variant, root=".")


@pytest.fixture
def eval_set(tmp_path: Path) -> dict[str, Any]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(30, 4))
    y = x.argmax(axis=1)
    path = tmp_path / "set.npz"
    np.savez(path, x=x, y=y)
    return {
        "data": str(path),
        "x": ["x"],
        "y": "y",
        "task": "classification",
        "batch_size": 8,
        "dtype": None,
        "metrics": ["accuracy"],
        "custom": [],
    }


def run(
    monkeypatch: pytest.MonkeyPatch, backends: dict[str, Any], spec: dict[str, Any]
) -> dict[str, Any]:
    monkeypatch.setattr(ev, "get_backend", lambda p: FakeBackend(backends[p.variant]))
    return ev.run_eval([plan(v) for v in backends], spec, lambda exc: str(exc))


def test_run_eval_quality_and_parity(monkeypatch: pytest.MonkeyPatch, eval_set: dict) -> None:
    def noisy(x: Any) -> Any:
        out = np.array(x, copy=True)
        out[:3] = -out[:3]  # flips the first three examples
        return out

    bounds = {"atol": None, "rtol": 0.0, "top1_agreement": 0.99}
    spec = {
        "eval": eval_set,
        "reference": "m[torch]",
        "bounds": {"m[torch]": bounds, "m[torch-int8]": bounds},
    }
    result = run(monkeypatch, {"torch": lambda x: x, "torch-int8": noisy}, spec)
    assert result["errors"] == {}
    exact, int8 = result["results"]["m[torch]"], result["results"]["m[torch-int8]"]
    assert exact["examples"] == int8["examples"] == 30
    assert exact["metrics"] == {"accuracy": 1.0}
    assert exact["outcomes"]["accuracy"] == [1.0] * 30
    assert exact["hash"] == int8["hash"]
    assert len(exact["hash"]) == 16
    assert "parity" not in exact
    assert int8["metrics"]["accuracy"] < 1.0
    assert int8["parity"]["reference"] == "m[torch]"
    assert int8["parity"]["ok"] is False
    assert int8["parity"]["top1_agreement"] < 0.99


def test_run_eval_nan_outputs_fail_that_variant_only(
    monkeypatch: pytest.MonkeyPatch, eval_set: dict
) -> None:
    def with_nan(x: Any) -> Any:
        out = np.array(x, copy=True)
        out[0, 0] = np.nan
        return out

    result = run(monkeypatch, {"torch": lambda x: x, "onnxruntime": with_nan}, {"eval": eval_set})
    assert result["errors"] == {"m[onnxruntime]": "the model produced NaN or inf outputs"}
    assert set(result["results"]) == {"m[torch]"}


def test_run_eval_wrong_labels_are_a_variant_error(
    monkeypatch: pytest.MonkeyPatch, eval_set: dict
) -> None:
    result = run(monkeypatch, {"torch": lambda x: np.asarray(x)[:, :2]}, {"eval": eval_set})
    assert result["results"] == {}
    assert "is outside the model's 2 classes (0..1)" in result["errors"]["m[torch]"]


def test_run_eval_missing_array_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, eval_set: dict
) -> None:
    spec = {"eval": {**eval_set, "y": "labels"}}
    result = run(monkeypatch, {"torch": lambda x: x, "onnxruntime": lambda x: x}, spec)
    assert result["config_error"] is True
    assert result["fatal"].startswith("set.npz: no array named 'labels'")
    assert set(result["errors"]) == {"m[torch]", "m[onnxruntime]"}


def test_run_eval_empty_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "empty.npz"
    np.savez(path, x=np.zeros((0, 4)), y=np.zeros(0, dtype=np.int64))
    spec = {"eval": npz_spec(path, task="classification", metrics=["accuracy"], custom=[])}
    result = run(monkeypatch, {"torch": lambda x: x}, spec)
    assert result["fatal"] == "the eval set is empty"
    assert result["errors"] == {"m[torch]": "the eval set is empty"}
