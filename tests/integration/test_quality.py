"""Quality gates on real models: eval sets (.npz, Parquet, callables), accuracy against the
baseline with flipped examples, output parity between variants, and every bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ._support import comparisons_by_key, read_json, run_cli, samples_by_key, write_files

pytestmark = pytest.mark.slow

CLASSIFIER = """
import numpy as np
import torch
from torch import nn


def data(n=400):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    w = rng.standard_normal((8, 4)).astype(np.float32)
    return x, (x @ w).argmax(1), w


def build(noise=0.0):
    _, _, w = data()
    layer = nn.Linear(8, 4, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w.T.copy()))
        if noise:
            layer.weight.add_(torch.randn(4, 8, generator=torch.Generator().manual_seed(3)) * noise)
    return nn.Sequential(layer).eval()


def build_damaged():
    return build(noise=1.0)


def inputs(batch_size):
    return torch.ones(batch_size, 8)


def batches():
    x, y, _ = data()
    for start in range(0, len(y), 128):
        yield torch.from_numpy(x[start:start + 128]), torch.from_numpy(y[start:start + 128])


def raising():
    raise RuntimeError("the eval loader is broken")


def empty():
    return []


def wrong_labels():
    x, y, _ = data(16)
    yield torch.from_numpy(x), torch.from_numpy(y + 7)


def wrong_targets():
    x, _, _ = data(16)
    yield torch.from_numpy(x), torch.zeros(16, 3)


class NaNModel(nn.Module):
    def forward(self, x):
        return x[:, :4] * float("nan")


def build_nan():
    return NaNModel()
"""

SETTINGS = """
policy: {min_rounds: 2, max_rounds: 2}
measure: {rounds: 2, warmup: 2, min_calls: 10, min_time: 0.01s, probes: 1}
"""


def model_config(name: str, eval_block: str, *, torch: str = "clf:build", extra: str = "") -> str:
    return f"""
  {name}:
    torch: {torch}
    input: clf:inputs
    variants: [torch]
    metrics: [latency]
    eval: {eval_block}
{extra}"""


def project(tmp_path: Path, models: str) -> Path:
    write_files(tmp_path, {"clf.py": CLASSIFIER, "perf-gate.yaml": "models:" + models + SETTINGS})
    return tmp_path


def write_npz(path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 8)).astype(np.float32)
    w = rng.standard_normal((8, 4)).astype(np.float32)
    np.savez(path, x=x, y=(x @ w).argmax(1))


def test_variants_are_evaluated_paired_against_the_baseline_and_damage_fails(
    tmp_path: Path,
) -> None:
    config = """
  clf:
    torch: clf:build
    input: clf:inputs
    variants: [torch, torch-int8, onnxruntime]
    metrics: [latency]
    eval: {data: eval.npz, metrics: [accuracy, f1_macro]}
"""
    repo = project(tmp_path, config)
    write_npz(repo / "eval.npz")
    saved = run_cli(repo, "run", "--save", "--mode", "stored")
    assert saved.ret == 0, saved.output
    assert "What each variant costs" in saved.output
    report = read_json(repo / ".perf-gate" / "comparison.json")
    variants = {v["variant"]: v for v in report["variants"]}
    assert set(variants) == {"torch", "torch-int8", "onnxruntime"}
    assert variants["torch"]["quality"]["accuracy"] == 1.0  # the exact weights: every example
    assert variants["torch"]["parity"] is None  # the reference
    onnx = variants["onnxruntime"]["parity"]
    assert onnx["verdict"] == "ok"
    assert onnx["max_abs_diff"] < 1e-4
    assert onnx["top1_agreement"] == 1.0
    int8 = variants["torch-int8"]
    assert int8["parity"]["bounds"] == "top-1 agreement >= 99% (near-ties within 1% not counted)"
    assert 0.9 <= int8["quality"]["accuracy"] <= 1.0  # its cost is visible, and small
    record = read_json(repo / ".perf-gate" / "results.json")
    accuracy = samples_by_key(record)[("clf[torch]", "accuracy")]
    assert accuracy["replication"] == "evaluation"
    assert accuracy["examples"]["n"] == 400
    assert record["info"]["clf[torch]"]["eval"]["examples"] == 400

    text = (repo / "perf-gate.yaml").read_text(encoding="utf-8")
    (repo / "perf-gate.yaml").write_text(text.replace("clf:build", "clf:build_damaged"))
    damaged = run_cli(repo, "run", "--mode", "stored")
    assert damaged.ret == 1, damaged.output
    entry = comparisons_by_key(read_json(repo / ".perf-gate" / "comparison.json"))[
        ("clf[torch]", "accuracy")
    ]
    assert entry["verdict"] == "regression"
    assert entry["absolute_change"] < -0.005
    assert entry["flips"]["to_wrong"] > entry["flips"]["to_right"]
    low, high = entry["absolute_ci"]
    assert low <= entry["absolute_change"] <= high < 0
    assert "flipped to wrong" in damaged.output


def test_a_variant_outside_its_parity_bounds_fails_the_run(tmp_path: Path) -> None:
    config = """
  clf:
    torch: clf:build
    input: clf:inputs
    variants: [torch, torch-int8]
    metrics: [latency]
    parity: {torch-int8: {atol: 0.0}}
"""
    repo = project(tmp_path, config)
    ran = run_cli(repo, "run", "--mode", "stored")
    assert ran.ret == 1, ran.output
    entry = comparisons_by_key(read_json(repo / ".perf-gate" / "comparison.json"))[
        ("clf[torch-int8]", "parity")
    ]
    assert entry["verdict"] == "parity-fail"
    assert "exceeds atol 0" in entry["note"]
    assert "parity-fail" in ran.output


def test_parquet_eval_set_and_a_missing_column(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 8)).astype(np.float32)
    w = rng.standard_normal((8, 4)).astype(np.float32)
    columns = {f"f{i}": x[:, i] for i in range(8)}
    columns["label"] = (x @ w).argmax(1)
    eval_block = "{data: eval.parquet, x: [f0, f1, f2, f3, f4, f5, f6, f7], y: label}"
    repo = project(tmp_path, model_config("clf", eval_block))
    pq.write_table(pa.table(columns), repo / "eval.parquet")
    ran = run_cli(repo, "run", "--mode", "stored")
    assert ran.ret == 0, ran.output
    accuracy = comparisons_by_key(read_json(repo / ".perf-gate" / "comparison.json"))[
        ("clf[torch]", "accuracy")
    ]
    assert accuracy["current"] == 1.0

    text = (repo / "perf-gate.yaml").read_text(encoding="utf-8")
    (repo / "perf-gate.yaml").write_text(text.replace("y: label", "y: target"))
    missing = run_cli(repo, "run", "--mode", "stored")
    assert missing.ret == 2, missing.output
    error_lines = [line for line in missing.stderr.splitlines() if "error" in line]
    assert len(error_lines) == 1, missing.stderr
    assert "models.clf.eval" in error_lines[0]
    assert "'target'" in error_lines[0]
    assert "Traceback" not in missing.stderr


def test_every_bad_eval_input_is_an_error_and_the_others_still_run(tmp_path: Path) -> None:
    models = (
        model_config("good", "{callable: clf:batches}")
        + model_config("raises", "{callable: clf:raising}")
        + model_config("empty", "{callable: clf:empty}")
        + model_config("labels", "{callable: clf:wrong_labels}")
        + model_config("shape", "{callable: clf:wrong_targets, task: regression}")
        + model_config("nan", "{callable: clf:batches}", torch="clf:build_nan")
    )
    repo = project(tmp_path, models)
    ran = run_cli(repo, "run", "--mode", "stored")
    assert ran.ret == 3, ran.output
    report = read_json(repo / ".perf-gate" / "comparison.json")
    by_key = comparisons_by_key(report)
    assert by_key[("good[torch]", "accuracy")]["current"] == 1.0
    errors = {e["benchmark"]: e["message"] for e in report["errors"]}
    assert "the eval loader is broken" in errors["raises[torch]"]
    assert "empty" in errors["empty[torch]"]
    assert "outside the model's 4 classes" in errors["labels[torch]"]
    assert "do not match targets" in errors["shape[torch]"]
    assert "NaN or inf" in errors["nan[torch]"]
    for name in ("raises", "empty", "labels", "shape", "nan"):
        assert by_key[(f"{name}[torch]", "latency")]["verdict"] == "new"  # timing still ran
    assert "Traceback" not in ran.stderr
