"""The only module that imports torch: eager, bf16 autocast, dynamic int8 and compiled variants,
plus the ONNX export that the onnxruntime variants are prepared from."""

from __future__ import annotations

import hashlib
import io
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gate.errors import MeasurementError
from gate.measure import BenchmarkPlan, import_object

_FLOAT_DTYPES = {"float32", "float16", "bfloat16", "float64"}


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
    """Call the config's ``torch:`` factory and check it returned an nn.Module in eval mode."""
    torch = _torch()
    assert plan.torch is not None
    factory = import_object(plan.torch)
    module = factory() if callable(factory) else factory
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
    (an eval batch: array, tensor, tuple or dict) instead of the plan's own inputs."""
    torch = _torch()
    if given is not None:
        produced = given
    elif plan.input_callable:
        produced = import_object(plan.input_callable)(batch_size)
    else:
        generator = torch.Generator().manual_seed(0)
        shape = (batch_size, *plan.input_shape[1:])
        dtype = getattr(torch, plan.input_dtype)
        if plan.input_dtype in _FLOAT_DTYPES:
            produced = torch.randn(shape, generator=generator).to(dtype)
        elif plan.input_dtype == "bool":
            produced = torch.rand(shape, generator=generator) > 0.5
        else:
            produced = torch.randint(0, 10, shape, generator=generator, dtype=dtype)

    def convert(value: Any) -> Any:
        return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)

    if isinstance(produced, dict):
        return (), {str(k): convert(v) for k, v in produced.items()}
    if isinstance(produced, (tuple, list)):
        return tuple(convert(v) for v in produced), {}
    return (convert(produced),), {}


def quantize_int8(module: Any) -> Any:
    """Dynamic int8 quantization of Linear layers: int8 weights, activations quantized per call."""
    torch = _torch()
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated upstream in favour of torchao; it still works.
        # (and quantized tensor creation warns as deprecated too); both still work.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantized = torch.ao.quantization.quantize_dynamic(
            module, {torch.nn.Linear}, dtype=torch.qint8
        )
    if not any("quantized" in type(m).__module__ for m in quantized.modules()):
        raise MeasurementError(
            f"torch-int8: the model has no Linear layers to quantize ({type(module).__name__})",
            slug="variant",
        )
    return quantized


def module_size_bytes(module: Any) -> int:
    """Size of the module's serialized state (in memory only; nothing is written)."""
    torch = _torch()
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.tell()


class TorchBackend:
    """Eager torch in inference mode; ``torch-bf16`` wraps calls in CPU/CUDA autocast."""

    sync: Callable[[], None] | None = None

    def __init__(self, plan: BenchmarkPlan) -> None:
        self.plan = plan
        self.module: Any = None

    def import_runtime(self) -> None:
        set_threads(self.plan.threads)
        if self.plan.input_callable:
            import_object(self.plan.input_callable)
        if self.plan.torch:
            import_object(self.plan.torch)

    def load(self) -> None:
        module = build_module(self.plan)
        if self.plan.variant == "torch-int8":
            module = quantize_int8(module)
        self.size = module_size_bytes(module)
        self.params = sum(p.numel() for p in module.parameters())
        if self.plan.variant == "torch-compile":
            module = _torch().compile(module)
        self.module = module

    def call_for(self, batch_size: int) -> Callable[[], object]:
        torch = _torch()
        args, kwargs = make_inputs(self.plan, batch_size)
        module = self.module
        if self.plan.variant == "torch-bf16":

            def run_autocast() -> object:
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                    return module(*args, **kwargs)

            return run_autocast

        def run() -> object:
            with torch.inference_mode():
                return module(*args, **kwargs)

        return run

    def predict(self, inputs: Any, batch_size: int = 8) -> Any:
        """The first output for an eval batch (or, when None, the plan's own inputs at
        ``batch_size``) as a float32 numpy array (bf16 widened)."""
        torch = _torch()
        args, kwargs = make_inputs(self.plan, batch_size, inputs)
        with torch.inference_mode():
            if self.plan.variant == "torch-bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    output = self.module(*args, **kwargs)
            else:
                output = self.module(*args, **kwargs)
        output = first_output(output)
        return output.detach().float().cpu().numpy()

    def info(self) -> dict[str, float]:
        return {"model_size": float(self.size), "params": float(self.params)}


def first_output(output: Any) -> Any:
    """A model's first output: the tensor itself, or the first of a tuple/list/dict."""
    if isinstance(output, dict):
        return next(iter(output.values()))
    if isinstance(output, (tuple, list)):
        return output[0]
    return output


def _source_files(plan: BenchmarkPlan, module: Any) -> set[str]:
    """Python files of the factory's module and of every class in the model, outside torch."""
    names = {type(m).__module__ for m in module.modules()}
    if plan.torch:
        names.add(plan.torch.partition(":")[0])
    files = set()
    for name in names:
        if name.split(".")[0] == "torch":
            continue
        path = getattr(sys.modules.get(name), "__file__", None)
        if path and path.endswith(".py") and Path(path).is_file():
            files.add(path)
    return files


def content_key(plan: BenchmarkPlan, module: Any) -> str:
    """A hash of everything an ONNX export depends on: code repr, weights, inputs, torch version."""
    torch = _torch()
    digest = hashlib.sha256()
    digest.update(torch.__version__.encode())
    digest.update(repr(module).encode())
    # repr() does not show forward(): hash the source files that define the model's classes.
    for source in sorted(_source_files(plan, module)):
        digest.update(source.encode())
        digest.update(Path(source).read_bytes())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        if isinstance(tensor, torch.Tensor):
            flat = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(str(flat.dtype).encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes())
    spec = (plan.input_callable, plan.input_shape, plan.input_dtype, plan.batch_sizes)
    digest.update(repr(spec).encode())
    if plan.input_callable:
        args, kwargs = make_inputs(plan, 2)
        for tensor in (*args, *kwargs.values()):
            digest.update(repr((tuple(tensor.shape), str(tensor.dtype))).encode())
    return digest.hexdigest()[:20]


def export_onnx(plan: BenchmarkPlan, cache_dir: Path) -> Path:
    """Export the plan's torch model to ONNX with a dynamic batch axis, cached by content.

    Returns the path of the .onnx file. Raises MeasurementError when export fails.
    """
    torch = _torch()
    set_threads(plan.threads)
    module = build_module(plan)
    target = cache_dir / f"{plan.model}-{content_key(plan, module)}.onnx"
    if target.is_file():
        return target
    args, kwargs = make_inputs(plan, 2)
    if kwargs:
        input_names = list(kwargs)
    elif len(args) == 1:
        input_names = ["input"]
    else:
        input_names = [f"input_{i}" for i in range(len(args))]
    dynamic_axes = {name: {0: "batch"} for name in input_names}
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".onnx.partial")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                str(partial),
                kwargs=kwargs or None,
                input_names=input_names,
                dynamic_axes=dynamic_axes,
                dynamo=False,
            )
    except Exception as exc:  # the exporter raises many types; all mean "cannot export"
        partial.unlink(missing_ok=True)
        raise MeasurementError(
            f"{plan.model}: torch.onnx.export failed: {type(exc).__name__}: {exc}; give an ONNX "
            "file with 'onnx:' or drop the onnxruntime variants",
            slug="onnx-export",
        ) from exc
    partial.replace(target)
    return target
