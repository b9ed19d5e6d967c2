"""The ``torch-int8`` variant: int8 where the model's time goes, through torch.ao.

- Convolutions: static quantization in FX graph mode (``prepare_fx`` / ``convert_fx`` with the
  ``x86`` qconfig mapping; Linear layers come along), activations calibrated on the model's
  calibration batches (``gate.measure.calibration``: its eval set, else its inputs). Dynamic
  quantization has no int8 convolution kernels: a CNN would stay fp32.
- Linear and recurrent layers only (MLPs, transformers, LSTM/GRU): dynamic quantization
  (int8 weights, activations quantized per call), LSTM and GRU included.
- A model FX cannot trace (data-dependent control flow): dynamic quantization of its
  Linear/recurrent layers, the convolutions kept fp32, and the note says so.
- Nothing quantizable: ``plan_int8`` says why, and preparation refuses the variant before any
  round (exit 2).

``quantize`` is what a worker runs at load; preparation runs it once too, to refuse early and
to write the note (which layers, which mode, the fp32 size) kept in the record.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.measure import BadReference, BenchmarkPlan
from gate.measure.backends.torch_runtime import _torch, forward_order, make_inputs

CONVOLUTIONS = ("Conv1d", "Conv2d", "Conv3d")
DYNAMIC = ("Linear", "LSTM", "GRU", "LSTMCell", "GRUCell", "RNNCell")


@dataclass(frozen=True)
class Quantized:
    module: Any
    mode: str  # "static" or "dynamic"
    layers: dict[str, int]  # quantized layer types (by their float name) and how many
    note: str


def census(module: Any) -> Counter[str]:
    """The model's float layers that int8 can quantize, by type name."""
    torch = _torch()
    wanted = {getattr(torch.nn, name) for name in (*CONVOLUTIONS, *DYNAMIC)}
    return Counter(type(m).__name__ for m in module.modules() if type(m) in wanted)


def nothing_to_quantize(module: Any) -> str | None:
    """Why int8 would change nothing in ``module``, or None when it has layers to quantize."""
    if census(module):
        return None
    return (
        f"torch-int8 would quantize nothing: {type(module).__name__} has no Conv, Linear, "
        "LSTM or GRU layer; drop torch-int8 from the variants"
    )


def _show(layers: dict[str, int]) -> str:
    return ", ".join(f"{count} {name}" for name, count in sorted(layers.items()))


def quantize(
    module: Any, example: tuple[Any, ...], calibration: list[tuple[Any, ...]], source: str
) -> Quantized:
    """``module`` (float, eval mode) in int8: static when it has convolutions and FX traces
    it, else dynamic. ``example`` and ``calibration`` are positional inputs (tensors)."""
    torch = _torch()
    found = census(module)
    reason = ""
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated upstream in favour of torchao; it still works.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        if any(name in found for name in CONVOLUTIONS):
            try:
                return _static(module, example, calibration, source)
            except Exception as exc:  # FX tracing raises many types; all mean "cannot trace"
                first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
                reason = f"FX cannot trace forward ({type(exc).__name__}: {first})"
        wanted = {getattr(torch.nn, name) for name in DYNAMIC}
        quantized = torch.ao.quantization.quantize_dynamic(module, wanted, dtype=torch.qint8)
    layers = {n: c for n, c in found.items() if n in DYNAMIC}
    kept = {n: c for n, c in found.items() if n in CONVOLUTIONS}
    note = f"int8 dynamic (torch.ao, int8 weights, activations per call): {_show(layers)}"
    if kept:
        note += f"; {_show(kept)} kept in fp32: {reason}"
    return Quantized(quantized, "dynamic", layers, note)


def _static(
    module: Any, example: tuple[Any, ...], calibration: list[tuple[Any, ...]], source: str
) -> Quantized:
    torch = _torch()
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "qnnpack"
    torch.backends.quantized.engine = engine
    prepared = prepare_fx(module, get_default_qconfig_mapping(engine), example_inputs=example)
    with torch.no_grad():
        for inputs in calibration:
            prepared(*inputs)
    converted = convert_fx(prepared)
    found = census(module)
    layers = {n: c for n, c in found.items() if n in (*CONVOLUTIONS, "Linear")}
    kept = {n: c for n, c in found.items() if n not in layers}
    note = (
        f"int8 static (torch.ao FX, {engine}; activations calibrated on {source}): {_show(layers)}"
    )
    if kept:
        note += f"; {_show(kept)} kept in fp32 (static FX mode has no recurrent kernels)"
    return Quantized(converted, "static", layers, note)


def quantize_int8(plan: BenchmarkPlan, module: Any) -> Quantized:
    """``module`` in int8 (``gate.measure.backends.torch_int8``): static for convolutional
    models, calibrated on the plan's calibration batches; dynamic for Linear/recurrent ones.

    Raises MeasurementError when there is nothing to quantize."""
    reason = nothing_to_quantize(module)
    if reason:
        raise BadReference(plan.key("variants"), reason)
    source, batches = calibration_batches(plan, module)
    return quantize(module, batches[0], batches, source)


def calibration_batches(plan: BenchmarkPlan, module: Any) -> tuple[str, list[tuple[Any, ...]]]:
    """The plan's calibration batches (prepared, else its own inputs at 8 examples) as
    positional tensors, named inputs in ``forward``'s order."""
    if plan.calibration:
        from gate.measure.worker.inputs import read_calibration

        source, given = read_calibration(Path(plan.calibration))
    else:
        source, given = "the model's inputs", [None]
    batches = []
    for inputs in given:
        args, kwargs = make_inputs(plan, 8, inputs)
        if kwargs:
            args = tuple(kwargs[name] for name in forward_order(module, kwargs))
        batches.append(args)
    return source, batches
