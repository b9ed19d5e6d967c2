"""What every torch module of perf-gate needs: torch itself (imported lazily, with a clear error
when missing), thread pinning, the user's model and its inputs as tensors."""

from __future__ import annotations

import inspect
import io
from collections.abc import Iterable
from typing import Any

from gate.errors import MeasurementError
from gate.measure import BenchmarkPlan, resolve_callable


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MeasurementError(
            "torch is not installed; install it (pip install 'perf-gate[torch]') or drop the "
            "torch variants from the config",
            slug="missing-torch",
        ) from exc
    return torch


def set_threads(threads: int) -> None:
    """Pin torch's intra-op threads to ``threads`` and inter-op threads to 1."""
    torch = _torch()
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # can only be set once per process, before any parallel work


def build_module(plan: BenchmarkPlan) -> Any:
    """Call the config's ``torch:`` factory and check it returned an nn.Module in eval mode.

    Raises BadReference when the factory cannot be resolved, MeasurementError when it returns
    something else; what the factory itself raises propagates."""
    torch = _torch()
    assert plan.torch is not None
    module = resolve_callable(plan.torch, plan.key("torch"))()
    if not isinstance(module, torch.nn.Module):
        raise MeasurementError(
            f"{plan.torch!r} returned {type(module).__name__}, expected a torch.nn.Module",
            slug="model-load",
        )
    return module.eval()


def make_inputs(
    plan: BenchmarkPlan, batch_size: int, given: Any = None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Inputs for one call at ``batch_size`` as (args, kwargs) of torch tensors; ``given``
    (an eval batch: array, tensor, tuple or dict) instead of the plan's own inputs.

    Random inputs (``input: {shape, dtype}``) are the numpy arrays onnxruntime gets too
    (``gate.measure.worker.inputs.random_inputs``), in the plan's dtype."""
    torch = _torch()
    if given is not None:
        produced = given
    elif plan.input_callable:
        make = resolve_callable(plan.input_callable, plan.key("input"), ("batch_size",))
        produced = make(batch_size)
    else:
        from gate.measure.worker.inputs import random_inputs

        produced = torch.from_numpy(random_inputs(plan, batch_size))
        produced = produced.to(getattr(torch, plan.input_dtype))

    def convert(value: Any) -> Any:
        return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)

    if isinstance(produced, dict):
        return (), {str(k): convert(v) for k, v in produced.items()}
    if isinstance(produced, (tuple, list)):
        return tuple(convert(v) for v in produced), {}
    return (convert(produced),), {}


def module_size_bytes(module: Any) -> int:
    """Size of the module's serialized state (in memory only; nothing is written)."""
    torch = _torch()
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.tell()


def first_output(output: Any) -> Any:
    """A model's first output: the tensor itself, or the first of a tuple/list/dict."""
    if isinstance(output, dict):
        return next(iter(output.values()))
    if isinstance(output, (tuple, list)):
        return output[0]
    return output


def forward_order(module: Any, names: Iterable[str]) -> list[str]:
    """``names`` in the order of ``module.forward``'s parameters (the others after them)."""
    try:
        parameters = list(inspect.signature(module.forward).parameters)
    except (TypeError, ValueError):
        parameters = []
    given = list(names)
    return [p for p in parameters if p in given] + [n for n in given if n not in parameters]
