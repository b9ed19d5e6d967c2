"""The only module that imports torch: eager, autocast (bf16/fp16), dynamic int8, compiled and
CUDA-graph variants on the CPU or a CUDA device, plus the ONNX export that the onnxruntime
variants are prepared from."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gate.errors import MeasurementError
from gate.measure import BenchmarkPlan, check_references
from gate.measure.backends.torch_runtime import _torch as _torch  # torch_profiler's too
from gate.measure.backends.torch_runtime import (
    build_module,
    first_output,
    make_inputs,
    module_size_bytes,
    set_threads,
)


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
            from gate.measure.backends.torch_int8 import quantize_int8

            module = quantize_int8(self.plan, module).module
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
