"""What a variant needs before its rounds, made once per run in a ``prepare`` worker (one per
model; for a base revision, in its worktree; the pytest plugin's model items call it in the
pytest process, where the user's tests run anyway): references checked,
the ONNX export, its int8 quantization and the ``input:`` callable's inputs as .npz files, each
named by the graph it belongs to (``artifacts``); and a smoke test of one call per batch size."""

from __future__ import annotations

import sys
from pathlib import Path

from gate.measure import (
    INT8_VARIANTS,
    ONNX_VARIANTS,
    BenchmarkPlan,
    VariantUnavailable,
    check_references,
)


def prepare(plan: BenchmarkPlan, cache_dir: Path) -> BenchmarkPlan:
    """Check the plan's references, then prepare what an ONNX variant needs under
    ``cache_dir``: the export (run every time, named by the graph's bytes), its int8
    quantization, and the ``input:`` callable's inputs per batch size as .npz files (so that
    its workers never call the callable nor import what it needs, usually torch); each is
    named by the graph it belongs to, so nothing prepared for another graph is ever reused.

    Raises BadReference for a ``torch:`` or ``input:`` that cannot be resolved, before any
    round runs; other failures raise what the export (or the user's code) raised."""
    if plan.root not in sys.path:
        sys.path.insert(0, plan.root)
    check_references(plan)
    if plan.variant in INT8_VARIANTS and not plan.calibration:  # prepare_all shares one
        from gate.measure import quant_inputs

        calibration = quant_inputs.write(plan, None, cache_dir)
        plan = BenchmarkPlan.from_dict({**plan.to_dict(), "calibration": str(calibration)})
    if plan.variant == "torch-int8":
        return _torch_int8(plan)
    if plan.variant not in ONNX_VARIANTS:
        return plan
    graph = Path(plan.onnx) if plan.onnx else None
    notes: list[str] = list(plan.notes)
    if graph is None:
        from gate.measure.backends.torch_export import export_onnx

        exported = export_onnx(plan, cache_dir)
        graph = exported.path
        notes += exported.notes
    if plan.variant == "onnxruntime-tensorrt":
        from gate.measure.backends.onnx_backend import unavailable_reason

        reason = unavailable_reason(plan.variant)
        if reason:
            raise VariantUnavailable(reason, slug="variant-unavailable")
    onnx_path = graph
    if plan.variant == "onnxruntime-int8":
        from gate.measure.backends.onnx_int8 import quantize_int8

        quantized = quantize_int8(plan, graph, cache_dir)
        onnx_path = quantized.path
        notes.append(quantized.note)
    inputs: dict[str, str] = {}
    if plan.input_callable:
        from gate.measure.backends.onnx_backend import prepare_inputs

        inputs = prepare_inputs(plan, graph, cache_dir)
    return BenchmarkPlan.from_dict(
        {**plan.to_dict(), "onnx": str(onnx_path), "inputs": inputs, "notes": notes}
    )


def _torch_int8(plan: BenchmarkPlan) -> BenchmarkPlan:
    """Quantize once here: a model with nothing to quantize is refused before any round
    (BadReference, exit 2), and the note says what int8 covers and the fp32 size."""
    from gate import units
    from gate.measure.backends.torch_int8 import quantize_int8
    from gate.measure.backends.torch_runtime import build_module, module_size_bytes, set_threads

    set_threads(plan.threads)
    module = build_module(plan)
    fp32 = module_size_bytes(module)
    quantized = quantize_int8(plan, module)
    int8 = module_size_bytes(quantized.module)
    note = (
        f"{quantized.note}; size {units.format_value(fp32, units.UNIT_BYTES)} in fp32 -> "
        f"{units.format_value(int8, units.UNIT_BYTES)}"
    )
    return BenchmarkPlan.from_dict({**plan.to_dict(), "notes": [*plan.notes, note]})


def smoke_test(plan: BenchmarkPlan) -> None:
    """Load the variant and run one call per batch size here, so that errors surface early."""
    from gate.measure.backends import get_backend

    if plan.root not in sys.path:
        sys.path.insert(0, plan.root)
    if plan.data is not None:
        from gate.measure.worker.data import first_batch

        first_batch(plan)
        return
    backend = get_backend(plan)
    backend.import_runtime()
    backend.load()
    for batch_size in plan.batch_sizes:
        backend.call_for(batch_size)()
