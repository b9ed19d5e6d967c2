"""The runtimes a worker measures with: ``get_backend`` picks one for a plan's variant and
``profile_plan`` its profiler. Each backend module imports its runtime lazily (torch, onnxruntime),
so importing this package costs nothing."""

from __future__ import annotations

from pathlib import Path

from gate.core.diagnosis import OperatorProfile
from gate.errors import MeasurementError
from gate.measure import ONNX_VARIANTS, TORCH_VARIANTS, Backend, BenchmarkPlan
from gate.measure.worker.operators import MIN_WARMUP, Calls, per_call


def get_backend(plan: BenchmarkPlan) -> Backend:
    """The backend for ``plan.variant``. Raises MeasurementError for an unknown variant."""
    if plan.variant in TORCH_VARIANTS:
        from gate.measure.backends.torch_backend import TorchBackend

        return TorchBackend(plan)
    if plan.variant in ONNX_VARIANTS:
        from gate.measure.backends.onnx_backend import OnnxBackend

        return OnnxBackend(plan)
    raise MeasurementError(f"{plan.name}: unknown variant {plan.variant!r}")


def profile_plan(plan: BenchmarkPlan, batch_size: int, trace: Path, warmup: int) -> OperatorProfile:
    """Profile a model variant at ``batch_size``; the Chrome trace goes to ``trace``.

    Raises MeasurementError for a variant no profiler covers; the backends' errors propagate."""
    trace.parent.mkdir(parents=True, exist_ok=True)
    how = Calls(warmup=max(warmup, MIN_WARMUP))
    if plan.variant in TORCH_VARIANTS:
        from gate.measure.backends.torch_profiler import profile_operators

        recorded = profile_operators(plan, batch_size, trace, how)
        tool = "torch.profiler"
    elif plan.variant in ONNX_VARIANTS:
        from gate.measure.backends.onnx_backend import profile_nodes

        recorded = profile_nodes(plan, batch_size, trace, how)
        tool = "onnxruntime"
    else:
        raise MeasurementError(f"{plan.name}: no profiler for variant {plan.variant!r}")
    if recorded.calls < 1:
        raise MeasurementError(f"{plan.name}: the profiler recorded no complete call")
    return OperatorProfile(
        tool=tool,
        calls=recorded.calls,
        items=batch_size,
        rows=per_call(recorded.rows, recorded.calls),
        trace=str(trace),
        wall=recorded.wall,
        note=recorded.note,
    )
