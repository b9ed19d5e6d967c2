"""The only module that imports torch: eager, autocast (bf16/fp16), dynamic int8, compiled and
CUDA-graph variants on the CPU or a CUDA device, plus the ONNX export that the onnxruntime
variants are prepared from."""

from __future__ import annotations

import inspect
import io
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from gate.errors import MeasurementError
from gate.measure import BenchmarkPlan, check_references, resolve_callable


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
    """Eager torch in inference mode on the plan's device.

    ``torch-bf16`` / ``torch-fp16`` wrap calls in autocast; ``torch-int8`` is dynamic int8
    (CPU); ``torch-compile`` is ``torch.compile``; ``torch-cuda-graphs`` captures one call per
    batch size into a CUDA graph and replays it (the remedy for launch-bound small models).
    On CUDA, ``sync`` is ``torch.cuda.synchronize`` so the timing loop reads the host clock only
    after the queued kernels finished; peak GPU memory counts from ``load``.
    """

    sync: Callable[[], None] | None = None

    def __init__(self, plan: BenchmarkPlan) -> None:
        self.plan = plan
        self.module: Any = None
        self.device: Any = None

    def import_runtime(self) -> None:
        set_threads(self.plan.threads)
        check_references(self.plan)

    def load(self) -> None:
        torch = _torch()
        self.device = cuda_device(self.plan) if self.plan.cuda else torch.device("cpu")
        if self.plan.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
            self.sync = lambda: torch.cuda.synchronize(self.device)
        module = build_module(self.plan)
        # Counted before quantizing: dynamic int8 packs Linear weights, which are then no
        # longer nn.Parameters (the count would drop to the biases of other layers, or 0).
        self.params = sum(p.numel() for p in module.parameters())
        if self.plan.variant == "torch-int8":
            module = quantize_int8(module)
        self.size = module_size_bytes(module)
        module = module.to(self.device)
        if self.plan.variant == "torch-compile":
            module = torch.compile(module)
        self.module = module

    def _autocast_dtype(self) -> Any:
        torch = _torch()
        return {"torch-bf16": torch.bfloat16, "torch-fp16": torch.float16}.get(self.plan.variant)

    def _forward(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        torch = _torch()
        dtype = self._autocast_dtype()
        with torch.inference_mode():
            if dtype is None:
                return self.module(*args, **kwargs)
            with torch.autocast(self.device.type, dtype=dtype):
                return self.module(*args, **kwargs)

    def _on_device(
        self, batch_size: int, given: Any = None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args, kwargs = make_inputs(self.plan, batch_size, given)
        device = self.device
        return (
            tuple(a.to(device) for a in args),
            {k: v.to(device) for k, v in kwargs.items()},
        )

    def call_for(self, batch_size: int) -> Callable[[], object]:
        args, kwargs = self._on_device(batch_size)
        if self.plan.variant == "torch-cuda-graphs":
            return capture_graph(self.module, args, kwargs, self.device)
        forward = self._forward

        def run() -> object:
            return forward(args, kwargs)

        return run

    def predict(self, inputs: Any, batch_size: int = 8) -> Any:
        """The first output for an eval batch (or, when None, the plan's own inputs at
        ``batch_size``) as a float32 numpy array on the host (bf16/fp16 widened)."""
        args, kwargs = self._on_device(batch_size, inputs)
        output = first_output(self._forward(args, kwargs))
        return output.detach().float().cpu().numpy()

    def launch(self, batch_size: int) -> dict[str, float]:
        """Kernel time against wall time per call at ``batch_size`` (CUDA only)."""
        return launch_profile(self.call_for(batch_size), self.device)

    def info(self) -> dict[str, float]:
        info = {"model_size": float(self.size), "params": float(self.params)}
        if self.plan.cuda:
            info.update(cuda_info(self.device))
        return info

    def threading(self) -> dict[str, Any]:
        """torch's thread pools as they are now (read back, not as asked)."""
        torch = _torch()
        return {
            "torch_intra_op_threads": torch.get_num_threads(),
            "torch_inter_op_threads": torch.get_num_interop_threads(),
        }


def cuda_device(plan: BenchmarkPlan) -> Any:
    """The plan's CUDA device; a clear error when this machine has none (or not that one)."""
    torch = _torch()
    if not torch.cuda.is_available():
        raise MeasurementError(
            f"{plan.name}: device {plan.device!r} requested but CUDA is not available here "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); run on a GPU "
            "runner or set 'device: cpu'",
            slug="cuda-unavailable",
        )
    if plan.device_index >= torch.cuda.device_count():
        raise MeasurementError(
            f"{plan.name}: device {plan.device!r} requested but only "
            f"{torch.cuda.device_count()} GPU(s) are visible",
            slug="cuda-unavailable",
        )
    return torch.device("cuda", plan.device_index)


def capture_graph(
    module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], device: Any
) -> Callable[[], object]:
    """Capture one forward pass into a CUDA graph (after warm-up on a side stream, as CUDA
    graphs require) and return a call that replays it on the same static input tensors."""
    torch = _torch()
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.inference_mode(), torch.cuda.stream(stream):
        for _ in range(3):
            module(*args, **kwargs)
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        static_output = module(*args, **kwargs)

    def replay() -> object:
        graph.replay()
        return static_output

    return replay


def cuda_info(device: Any) -> dict[str, float]:
    """Peak GPU memory since ``load`` and the math settings that change results and speed."""
    torch = _torch()
    return {
        "gpu_allocated": float(torch.cuda.max_memory_allocated(device)),
        "gpu_reserved": float(torch.cuda.max_memory_reserved(device)),
        "tf32_matmul": float(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": float(torch.backends.cudnn.allow_tf32),
        "cudnn_benchmark": float(torch.backends.cudnn.benchmark),
    }


def launch_profile(call: Callable[[], object], device: Any, calls: int = 20) -> dict[str, float]:
    """Kernel time against wall time per call: a GPU-busy share far below 1 means the host
    cannot issue kernels as fast as the GPU runs them (launch-bound).

    Wall time: each call synchronized. Kernel time: CUDA events around a call queued behind a
    GPU spin (``torch.cuda._sleep``) long enough for the host to enqueue the whole call first,
    so the events see the kernels back to back, not the gaps between launches.
    """
    torch = _torch()
    torch.cuda.synchronize(device)
    wall_start = time.perf_counter()
    for _ in range(calls):
        call()
        torch.cuda.synchronize(device)
    wall_s = (time.perf_counter() - wall_start) / calls
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    busy_ms = 0.0
    spin_cycles = int(min(wall_s * 4e9, 4e9))  # ~2x the wall time at <= 2 GHz, at most ~2 s
    for _ in range(calls):
        torch.cuda._sleep(spin_cycles)
        start.record()
        call()
        end.record()
        end.synchronize()
        busy_ms += start.elapsed_time(end)
    return {"gpu_ms_per_call": busy_ms / calls, "wall_ms_per_call": wall_s * 1e3}


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
