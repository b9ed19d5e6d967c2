"""Real architectures on day one: the zoo of bench/zoo/zoo_models.py through ``perf-gate run``.

One run measures every CPU variant where it applies (real torch, onnxruntime and worker
processes; random weights, small inputs, 2 rounds):
- a ``forward`` that branches on its inputs' values is never timed as a one-branch graph: its
  ONNX variant is refused with the place and the reason;
- a transformer-style block called with a dict of named inputs (beside ``use_cache``-like
  keyword arguments of its own) exports and agrees with torch;
- a classifier whose outputs tie (random weights) passes parity, its near-ties counted;
- a conv-only net gets static int8 (its convolutions quantized), an LSTM dynamic int8;
- torch.compile's second worker reuses what the first compiled.
A model with nothing to quantize is refused before any round (exit 2, one line).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ._support import read_json, run_cli, write_files

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

pytestmark = pytest.mark.slow

ZOO = Path(__file__).resolve().parents[2] / "bench" / "zoo" / "zoo_models.py"
CONFIG = """
models:
  branchy:
    torch: zoo_models:build_branchy
    input: zoo_models:inputs_branchy
    variants: [torch, onnxruntime]
    metrics: [latency]
  kwblock:
    torch: zoo_models:build_kwblock
    input: zoo_models:inputs_kwblock
    variants: [torch, onnxruntime]
    metrics: [latency]
  tied:
    torch: zoo_models:build_tied
    input: {shape: [1, 32]}
    variants: [torch, torch-int8, torch-compile, onnxruntime-int8]
    metrics: [latency]
  convnet:
    torch: zoo_models:build_convnet
    input: {shape: [1, 3, 16, 16]}
    variants: [torch, torch-int8, onnxruntime-int8]
    metrics: [latency]
  lstm:
    torch: zoo_models:build_lstm
    input: {shape: [1, 12, 32]}
    variants: [torch, torch-int8]
    metrics: [latency]
measure: {rounds: 2, warmup: 1, min_calls: 3, min_time: 0.0s, probes: 1}
"""


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = write_files(tmp_path_factory.mktemp("zoo"), {"perf-gate.yaml": CONFIG})
    shutil.copy2(ZOO, root / "zoo_models.py")
    # inductor compiles on every core by default: one here, so the other xdist worker's
    # timing tests are not crowded out by a burst of compiler processes
    saved = os.environ.get("TORCHINDUCTOR_COMPILE_THREADS")
    os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = "1"
    try:
        ran = run_cli(root, "run", "--out", "results.json", timeout=600)
    finally:
        if saved is None:
            del os.environ["TORCHINDUCTOR_COMPILE_THREADS"]
        else:
            os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = saved
    record = read_json(root / "results.json") if (root / "results.json").is_file() else None
    return {"root": root, "ran": ran, "record": record}


def _info(zoo: dict[str, object], name: str) -> dict:
    record = zoo["record"]
    assert isinstance(record, dict), zoo["ran"]
    return record["info"][name]


def _error(zoo: dict[str, object], name: str) -> str | None:
    record = zoo["record"]
    assert isinstance(record, dict), zoo["ran"]
    return next((e["message"] for e in record["errors"] if e["benchmark"] == name), None)


def test_a_value_dependent_branch_is_refused_with_the_place_and_the_reason(zoo):
    ran = zoo["ran"]
    assert ran.ret != 0, ran.output  # never a pass: the graph would hold one branch
    message = _error(zoo, "branchy[onnxruntime]")
    assert message is not None
    assert "no faithful ONNX export" in message
    assert "zoo_models.py:" in message  # the line of the `if`
    assert "data-dependent control flow" in message
    assert "torch.export refused too" in message
    assert "\n" not in message
    assert _error(zoo, "branchy[torch]") is None


def test_named_inputs_with_keyword_arguments_export_and_agree(zoo):
    assert _error(zoo, "kwblock[onnxruntime]") is None
    parity = _info(zoo, "kwblock[onnxruntime]")["parity"]
    assert parity["ok"], parity
    assert parity["max_abs_diff"] < 1e-4


def test_tied_outputs_pass_parity_and_the_ties_are_counted(zoo):
    for variant in ("torch-int8", "onnxruntime-int8", "torch-compile"):
        parity = _info(zoo, f"tied[{variant}]")["parity"]
        assert parity["ok"], (variant, parity)
        assert parity["near_ties"] > 0, (variant, parity)
    int8 = _info(zoo, "tied[onnxruntime-int8]")["parity"]
    assert "near-ties" in int8["reason"]


def test_convolutions_are_quantized_statically_and_an_lstm_dynamically(zoo):
    torch_int8 = " ".join(_info(zoo, "convnet[torch-int8]")["notes"])
    assert "int8 static" in torch_int8, torch_int8
    assert "3 Conv2d" in torch_int8, torch_int8
    assert "in fp32 ->" in torch_int8  # the sizes before and after
    onnx_int8 = " ".join(_info(zoo, "convnet[onnxruntime-int8]")["notes"])
    assert "int8 static QDQ" in onnx_int8, onnx_int8
    assert "Conv" in onnx_int8, onnx_int8
    assert _info(zoo, "convnet[torch-int8]")["parity"]["ok"]
    lstm = " ".join(_info(zoo, "lstm[torch-int8]")["notes"])
    assert "int8 dynamic" in lstm, lstm
    assert "1 LSTM" in lstm, lstm
    # the notes reach the report
    assert "convnet[torch-int8]: int8 static" in zoo["ran"].output


def test_the_second_compiling_worker_reuses_the_first_ones_compilation(zoo):
    record = zoo["record"]
    assert isinstance(record, dict)
    latency = next(
        s
        for s in record["samples"]
        if s["benchmark"] == "tied[torch-compile]" and s["metric"] == "latency"
    )
    first, second = latency["first_calls"][:2]
    assert second < first / 2, latency["first_calls"]  # ~6x here: the cache was empty
    cache = Path(zoo["root"]) / ".perf-gate" / "cache" / "inductor"
    assert any(cache.iterdir())
    assert "torch.compile's first call took" in zoo["ran"].output


def test_a_model_with_nothing_to_quantize_is_refused_before_any_round(tmp_path):
    config = """
    models:
      ew:
        torch: zoo_models:build_elementwise
        input: {shape: [1, 8]}
        variants: [torch, torch-int8]
    """
    root = write_files(tmp_path, {"perf-gate.yaml": config})
    shutil.copy2(ZOO, root / "zoo_models.py")
    ran = run_cli(root, "run")
    assert ran.ret == 2, ran.output
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    assert "perf-gate.yaml: models.ew.variants: torch-int8 would quantize nothing" in lines[0]
    assert "Traceback" not in ran.output


def test_a_model_that_ends_its_process_while_exported_is_an_error_not_a_pass(tmp_path):
    """Preparation (import, build, export) runs in a worker: a forward that calls os._exit(0)
    takes down that worker, not the gate, and the run says so."""
    model = """
    import os

    import torch


    class Leaver(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 2)

        def forward(self, x):
            os._exit(0)


    def build():
        return Leaver()
    """
    config = """
    models:
      leaver:
        torch: leaver:build
        input: {shape: [1, 4]}
        variants: [onnxruntime]
    measure: {rounds: 2, min_time: 0.0s, probes: 1}
    """
    root = write_files(tmp_path, {"perf-gate.yaml": config, "leaver.py": model})
    ran = run_cli(root, "run", "--out", "results.json")
    assert ran.ret == 3, ran.output
    (error,) = read_json(root / "results.json")["errors"]
    assert error["benchmark"] == "leaver[onnxruntime]"
    assert "ended (exit code 0) before writing its result" in error["message"]
