"""The torch side of diagnosis: the operators one variant's calls spend their time in, under
torch's profiler (``gate.measure.backends.profile_plan`` calls it in a ``profile`` worker), and
the layer (module) each of them ran in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gate.measure import BenchmarkPlan
from gate.measure.backends.torch_backend import TorchBackend, _torch
from gate.measure.worker.operators import Calls, Recorded, robust_total

# The profiler range opened around each submodule's forward: ``module::features.3.conv``.
LAYER_RANGE = "module::"
# Variants whose calls run no submodule's Python forward: a compiled graph (hooks would be
# traced into it, changing what is measured) and a replayed CUDA graph.
UNHOOKED_VARIANTS = ("torch-compile", "torch-cuda-graphs")


def profile_operators(plan: BenchmarkPlan, batch_size: int, trace: Path, calls: Calls) -> Recorded:
    """Profile calls of the variant under torch's profiler, input shapes recorded (CUDA
    activities too when the plan runs on CUDA); writes the Chrome trace to ``trace``.

    Returns self time and invocations per layer, operator and input shapes (totals over the
    profiled calls), their number, and the seconds per call without the profiler. The layer is
    the innermost submodule whose forward was running (``layer_ranges``); operators outside any
    submodule, and every operator of a variant in UNHOOKED_VARIANTS, have none.

    Three sessions run under the same settings: one call (how many events a call records, which
    sizes the others), a discarded one, and the measured one of exactly as many calls, so that
    it needs no memory the discarded one did not already take. The first long session in a
    process grows the process's memory: on a 2-core VM a small CNN then paid about 550 page
    faults per call and its im2col convolutions (``_slow_conv2d_forward``) ran 2.5-3.5x slower
    than in a later session. A discarded session of 5 calls did not help (the measured one
    still faulted about 450 times a call); one as long as the measured one left it under 60 a
    call in 6 of 7 runs (163 in the other) and the convolutions at the later session's speed
    (``tests/integration/test_diagnosis_layers.py`` holds the first profile of a process to
    the second's). The unprofiled time per call is taken before all three.
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

    def session() -> Any:
        return torch.autograd.profiler.profile(
            record_shapes=True, use_kineto=True, use_device=device
        )

    root = None if plan.variant in UNHOOKED_VARIANTS else backend.module
    with layer_ranges(torch, root) as kinds:
        with session() as first:  # one call: how many events a call records
            call()
            if backend.sync is not None:
                backend.sync()
        events = len(first.function_events)
        del first
        with session():  # discarded: the process's memory grows here, not in the measurement
            count = calls.profiled(call, backend.sync, events_per_call=events)
        with session() as recorder:  # as many calls: no more memory than the discarded one's
            for _ in range(count):
                call()
                if backend.sync is not None:
                    backend.sync()
    recorder.export_chrome_trace(str(trace))
    durations: dict[tuple[str, str, str], list[float]] = {}
    for event in recorder.function_events:
        if event.device_type != torch.autograd.DeviceType.CPU:
            continue  # device kernels count in their CPU operator's self device time
        if event.name.startswith(LAYER_RANGE):
            continue  # a layer's own range: Python between its operators (outside operators)
        shapes = ", ".join(str(list(s)) for s in (event.input_shapes or ()) if s)
        own = event.self_cpu_time_total + getattr(event, "self_device_time_total", 0.0)
        key = (layer_of(event), event.name, shapes)
        durations.setdefault(key, []).append(own * 1e-6)  # from microseconds
    rows = [
        robust_total(
            operator=name,
            shapes=shapes,
            module=module,
            module_type=kinds.get(module, ""),
            durations=values,
        )
        for (module, name, shapes), values in durations.items()
    ]
    return Recorded(rows=rows, calls=count, wall=wall)


@contextmanager
def layer_ranges(torch: Any, root: Any) -> Iterator[dict[str, str]]:
    """While open, every submodule of ``root`` (None: none) runs its forward inside a profiler
    range named ``module::`` and its dotted path from ``root`` (``features.3.conv``), opened by
    a forward pre-hook and closed by a forward hook that runs even when the forward raises.
    Yields the class name of each hooked module by path (the diff tells a layer whose kernel
    changed from another layer that now has its path). The hooks are removed on leaving.

    ``root`` itself gets no range (its operators are the model's own); a TorchScript module
    refuses Python hooks and is left without (its operators count in the nearest hooked
    module). A module reached under two paths is hooked under the first."""
    kinds: dict[str, str] = {}
    handles: list[Any] = []
    opened: list[Any] = []
    record_function = torch.autograd.profiler.record_function

    def enter(path: str) -> Callable[[Any, Any], None]:
        name = LAYER_RANGE + path

        def hook(module: Any, args: Any) -> None:
            opened.append(record_function(name).__enter__())

        return hook

    def leave(module: Any, args: Any, output: Any) -> None:
        if opened:
            opened.pop().__exit__(None, None, None)

    try:
        for path, module in root.named_modules() if root is not None else ():
            if not path or isinstance(module, torch.jit.ScriptModule):
                continue
            try:
                handles.append(module.register_forward_pre_hook(enter(path)))
            except RuntimeError:
                continue  # a module type that takes no Python hooks
            handles.append(module.register_forward_hook(leave, always_call=True))
            kinds[path] = type(module).__name__
        yield kinds
    finally:
        for handle in handles:
            handle.remove()


def layer_of(event: Any) -> str:
    """The dotted path of the innermost layer range around a profiler event ('' if none)."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(LAYER_RANGE):
            return str(parent.name[len(LAYER_RANGE) :])
        parent = parent.cpu_parent
    return ""
