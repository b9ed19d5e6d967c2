"""Measurement: what a worker process needs to load and run one benchmark.

``BenchmarkPlan`` is the JSON-able description handed to worker processes; ``get_backend``
returns the backend for its variant, importing torch or onnxruntime only then.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from gate.errors import MeasurementError

TORCH_VARIANTS = (
    "torch",
    "torch-bf16",
    "torch-int8",
    "torch-compile",
    "torch-fp16",
    "torch-cuda-graphs",
)
ONNX_VARIANTS = ("onnxruntime", "onnxruntime-int8", "onnxruntime-cuda", "onnxruntime-tensorrt")


class VariantUnavailable(MeasurementError):
    """This machine cannot run the variant by design (e.g. no TensorRT execution provider):
    the variant is skipped with a note instead of failing the run."""


@dataclass(frozen=True, kw_only=True)
class BenchmarkPlan:
    """One model variant as a worker sees it; ``onnx`` is the prepared artifact for ORT variants."""

    name: str
    model: str
    variant: str
    root: str
    torch: str | None = None
    onnx: str | None = None
    input_callable: str | None = None
    input_shape: tuple[int, ...] = ()
    input_dtype: str = "float32"
    batch_sizes: tuple[int, ...] = (1,)
    metrics: tuple[str, ...] = ("latency",)
    threads: int = 1
    device: str = "cpu"  # or cuda / cuda:N

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def device_index(self) -> int:
        return int(self.device.partition(":")[2] or 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchmarkPlan:
        data = dict(data)
        data["input_shape"] = tuple(data.get("input_shape", ()))
        data["batch_sizes"] = tuple(data.get("batch_sizes", (1,)))
        data["metrics"] = tuple(data.get("metrics", ("latency",)))
        return cls(**data)


class Backend(Protocol):
    """How one variant is imported, loaded and called; ``sync`` waits for queued device work."""

    sync: Callable[[], None] | None

    def import_runtime(self) -> None: ...

    def load(self) -> None: ...

    def call_for(self, batch_size: int) -> Callable[[], object]: ...

    def predict(self, inputs: Any, batch_size: int = 8) -> Any: ...

    def info(self) -> dict[str, float]: ...


def get_backend(plan: BenchmarkPlan) -> Backend:
    """The backend for ``plan.variant``. Raises MeasurementError for an unknown variant."""
    if plan.variant in TORCH_VARIANTS:
        from gate.measure.torch_backend import TorchBackend

        return TorchBackend(plan)
    if plan.variant in ONNX_VARIANTS:
        from gate.measure.onnx_backend import OnnxBackend

        return OnnxBackend(plan)
    raise MeasurementError(f"{plan.name}: unknown variant {plan.variant!r}")


def import_object(reference: str) -> Any:
    """``"package.module:attr.sub"`` -> the object. Raises MeasurementError naming the reference."""
    module_name, _, attribute = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise MeasurementError(
            f"cannot import {module_name!r} for {reference!r}: {exc}; check the module path "
            "(relative to the config file's directory)",
            slug="import",
        ) from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise MeasurementError(
                f"{reference!r}: module {module_name!r} has no attribute {attribute!r}",
                slug="import",
            ) from None
    return target
