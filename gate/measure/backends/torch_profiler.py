"""The torch side of diagnosis: the operators one variant's calls spend their time in, under
torch's profiler (``gate.measure.backends.profile_plan`` calls it in a ``profile`` worker)."""

from __future__ import annotations

from pathlib import Path

from gate.measure import BenchmarkPlan
from gate.measure.backends.torch_backend import TorchBackend, _torch
from gate.measure.worker.operators import Calls, Recorded, robust_total


def profile_operators(plan: BenchmarkPlan, batch_size: int, trace: Path, calls: Calls) -> Recorded:
    """Profile calls of the variant under torch's profiler, input shapes recorded (CUDA
    activities too when the plan runs on CUDA); writes the Chrome trace to ``trace``.

    Returns self time and invocations per operator and input shapes (totals over the profiled
    calls), their number, and the seconds per call without the profiler.
    ``torch.autograd.profiler.profile`` is the recorder that ``torch.profiler.profile`` wraps;
    the wrapper's first use imports torch._dynamo (about a second and a half per process here)
    and adds nothing this needs."""
    torch = _torch()
    backend = TorchBackend(plan)
    backend.import_runtime()
    backend.load()
    call = backend.call_for(batch_size)
    calls.warm(call)
    wall = calls.unprofiled(call, backend.sync)
    device = "cuda" if plan.cuda else None
    with torch.autograd.profiler.profile(
        record_shapes=True, use_kineto=True, use_device=device
    ) as first:  # one call: how many events a call records
        call()
        if backend.sync is not None:
            backend.sync()
    events = len(first.function_events)
    with torch.autograd.profiler.profile(
        record_shapes=True, use_kineto=True, use_device=device
    ) as recorder:
        count = calls.profiled(call, backend.sync, events_per_call=events)
    recorder.export_chrome_trace(str(trace))
    durations: dict[tuple[str, str], list[float]] = {}
    for event in recorder.function_events:
        if event.device_type != torch.autograd.DeviceType.CPU:
            continue  # device kernels count in their CPU operator's self device time
        shapes = ", ".join(str(list(s)) for s in (event.input_shapes or ()) if s)
        own = event.self_cpu_time_total + getattr(event, "self_device_time_total", 0.0)
        durations.setdefault((event.name, shapes), []).append(own * 1e-6)  # from microseconds
    rows = [
        robust_total(operator=name, shapes=shapes, durations=values)
        for (name, shapes), values in durations.items()
    ]
    return Recorded(rows=rows, calls=count, wall=wall)
