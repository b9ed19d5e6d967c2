"""The ``onnxruntime-int8`` variant: the quantization that fits the graph.

- A graph with convolutions: **static** QDQ quantization (int8 weights per channel, uint8
  activations, the x86 CPU recommendation), its activation ranges calibrated on the model's
  calibration batches (``gate.measure.calibration``). Dynamic quantization turns a Conv into
  ConvInteger, which made CNNs 2.6-12x slower than fp32.
- A graph with MatMul, attention or recurrent nodes (transformers, LSTMs): **dynamic**
  quantization (int8 weights, activations quantized per call), robust to activation ranges
  that vary per input. Its Gemm nodes (nn.Linear on 2-D inputs) stay fp32: onnxruntime's
  dynamic quantizer has no Gemm kernel.
- A graph whose only quantizable nodes are Gemm (an MLP): **static**, which quantizes Gemm.
- Nothing quantizable: refused before any round, with the reason.

The result is named by the source graph's bytes, the mode, the calibration's bytes and
onnxruntime's version, so the same inputs reuse it and anything else gets a new file.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import MeasurementError
from gate.measure import BadReference, BenchmarkPlan, artifacts

STATIC_FIRST = ("Conv", "ConvTranspose")
DYNAMIC_KINDS = ("MatMul", "Attention", "LSTM", "GRU", "EmbedLayerNormalization")
STATIC_ONLY = ("Gemm",)
# What a quantized graph's nodes are called once quantized (QDQ pairs around a float op, or an
# integer op in place of one).
_QDQ = "DequantizeLinear"
_INTEGER = ("MatMulInteger", "ConvInteger", "DynamicQuantizeLSTM", "QAttention", "QGemm")


@dataclass(frozen=True)
class Int8:
    path: Path
    note: str


def _ops(path: Path) -> Counter[str]:
    import onnx

    return Counter(
        node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node
    )


def choose(ops: Counter[str]) -> str | None:
    """``static``, ``dynamic`` or None (nothing to quantize) for a graph's node types."""
    if any(ops[op] for op in STATIC_FIRST):
        return "static"
    if any(ops[op] for op in DYNAMIC_KINDS):
        return "dynamic"
    if any(ops[op] for op in STATIC_ONLY):
        return "static"
    return None


def _show(ops: Counter[str], kinds: tuple[str, ...]) -> str:
    return ", ".join(f"{ops[op]} {op}" for op in kinds if ops[op])


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over the calibration batches."""

    def __init__(self, feeds: list[dict[str, Any]]) -> None:
        self._feeds = feeds
        self._iterator: Iterator[dict[str, Any]] = iter(feeds)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._iterator, None)

    def rewind(self) -> None:
        self._iterator = iter(self._feeds)


def _feeds(plan: BenchmarkPlan, source: Path, batches: list[Any]) -> list[dict[str, Any]]:
    """Each calibration batch as {graph input name: array}."""
    import numpy as np
    import onnx

    graph = onnx.load(str(source), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    names = [i.name for i in graph.input if i.name not in weights]
    feeds = []
    for batch in batches:
        if isinstance(batch, dict):
            missing = [n for n in names if n not in batch]
            if missing:
                raise MeasurementError(
                    f"{plan.name}: calibration inputs lack {missing}; the graph expects {names}",
                    slug="inputs",
                )
            feeds.append({n: np.asarray(batch[n]) for n in names})
        else:
            values = list(batch) if isinstance(batch, (tuple, list)) else [batch]
            feeds.append({n: np.asarray(v) for n, v in zip(names, values, strict=False)})
    return feeds


def quantize_int8(plan: BenchmarkPlan, source: Path, cache_dir: Path) -> Int8:
    """``source`` quantized as ``choose`` says, with a note naming the mode and the nodes.

    Raises MeasurementError when the graph has nothing to quantize or the quantizer fails."""
    import onnxruntime
    from onnxruntime.quantization import (
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    ops = _ops(source)
    mode = choose(ops)
    if mode is None:
        raise BadReference(
            plan.key("variants"),
            "onnxruntime-int8 would quantize nothing: the exported graph has no Conv, Gemm, "
            "MatMul, attention or recurrent node; drop onnxruntime-int8 from the variants",
        )
    calibration_bytes = ""
    source_text = ""
    batches: list[Any] = []
    if mode == "static":
        if not plan.calibration:
            raise MeasurementError(f"{plan.name}: no calibration inputs prepared", slug="variant")
        from gate.measure.worker.inputs import read_calibration

        source_text, batches = read_calibration(Path(plan.calibration))
        calibration_bytes = artifacts.file_digest(Path(plan.calibration))
    key = artifacts.text_digest(
        f"{artifacts.file_digest(source)} {mode} {calibration_bytes} {onnxruntime.__version__}"
    )
    target = cache_dir / artifacts.quantized_name(source, key)
    if mode == "static":
        quantized_kinds = tuple(op for op in (*STATIC_FIRST, *STATIC_ONLY, "MatMul") if ops[op])
        note = (
            f"int8 static QDQ (onnxruntime; int8 weights per channel, uint8 activations "
            f"calibrated on {source_text}): {_show(ops, quantized_kinds)}"
        )
    else:
        note = (
            "int8 dynamic (onnxruntime; int8 weights, activations quantized per call): "
            f"{_show(ops, DYNAMIC_KINDS)}"
        )
        if ops["Gemm"]:
            note += f"; {ops['Gemm']} Gemm kept in fp32 (no dynamic Gemm kernel)"
    if artifacts.reuse(target):
        return Int8(target, _sized(note, source, target))
    partial = artifacts.partial_file(cache_dir, target.stem)
    root_logger = logging.getLogger()
    level = root_logger.level
    root_logger.setLevel(logging.ERROR)  # the quantizers log advice on every call
    try:
        if mode == "static":
            quantize_static(
                str(source),
                str(partial),
                _Reader(_feeds(plan, source, batches)),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
        else:
            quantize_dynamic(str(source), str(partial), weight_type=QuantType.QInt8)
    except MeasurementError:
        partial.unlink(missing_ok=True)
        raise
    except Exception as exc:  # onnxruntime raises assorted types for models it cannot quantize
        partial.unlink(missing_ok=True)
        raise MeasurementError(
            f"{source.name}: onnxruntime int8 quantization ({mode}) failed: "
            f"{type(exc).__name__}: {exc}",
            slug="onnx-quantize",
        ) from exc
    finally:
        root_logger.setLevel(level)
    done = _ops(partial)
    if not done[_QDQ] and not any(done[op] for op in _INTEGER):
        partial.unlink(missing_ok=True)
        raise MeasurementError(
            f"{plan.name}: onnxruntime-int8 quantized nothing ({mode} mode over "
            f"{', '.join(sorted(ops))}); drop onnxruntime-int8 from the variants",
            slug="nothing-to-quantize",
        )
    artifacts.publish(partial, target)
    artifacts.prune(cache_dir, artifacts.quantized_family(source))
    return Int8(target, _sized(note, source, target))


def _sized(note: str, source: Path, target: Path) -> str:
    from gate import units

    before = units.format_value(source.stat().st_size, units.UNIT_BYTES)
    after = units.format_value(target.stat().st_size, units.UNIT_BYTES)
    return f"{note}; size {before} in fp32 -> {after}"
