"""onnxruntime sessions with pinned threads, the inputs prepared for them, their profiler,
and the parameter count of an ONNX file (read from its protobuf without the onnx package)."""

from __future__ import annotations

import bisect
import hashlib
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gate.errors import MeasurementError
from gate.measure import BenchmarkPlan, artifacts, resolve_callable
from gate.measure.worker.operators import Calls, Recorded, interquartile_mean, robust_total


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise MeasurementError(
            "onnxruntime is not installed; install it (pip install 'perf-gate[onnx]') or drop "
            "the onnxruntime variants from the config",
            slug="missing-onnxruntime",
        ) from exc
    return onnxruntime


def prepare_inputs(plan: BenchmarkPlan, graph: Path, cache_dir: Path) -> dict[str, str]:
    """The plan's own inputs (its ``input:`` callable's results) per batch size as .npz files
    under ``cache_dir``, for a worker to read instead of calling the callable: the callable
    usually builds torch tensors, and an onnxruntime worker that imports torch pays its
    import time and its memory. Named by the model, the batch size, ``graph``'s digest and
    the arrays' own digest (kept when unchanged); the model's older ones beyond the few most
    recently used at each batch size are deleted.

    Returns ``{batch size: path}``. Raises MeasurementError for inputs that are not arrays."""
    import numpy as np

    from gate.measure.worker.inputs import plan_inputs

    graph_digest = artifacts.file_digest(graph)
    paths: dict[str, str] = {}
    for batch_size in plan.input_batch_sizes:
        kind, arrays = _input_arrays(plan, plan_inputs(plan, batch_size))
        digest = hashlib.sha256(f"{graph_digest} {kind}".encode())
        for entry, array in arrays.items():
            digest.update(f"{entry} {array.dtype.str} {array.shape}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        key = digest.hexdigest()
        target = cache_dir / artifacts.inputs_name(plan.model, batch_size, graph_digest, key)
        if not artifacts.reuse(target):
            partial = artifacts.partial_file(cache_dir, target.stem)
            try:
                payload: dict[str, Any] = {_KIND: np.array(kind)}
                payload.update({_ARRAY + entry: array for entry, array in arrays.items()})
                with partial.open("wb") as stream:
                    np.savez(stream, **payload)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            artifacts.publish(partial, target)
            artifacts.prune(cache_dir, artifacts.inputs_family(plan.model, batch_size))
        paths[str(batch_size)] = str(target)
    return paths


_KIND = "kind"  # the .npz entry that says how the arrays were given: dict, sequence or single
_ARRAY = "array."  # the prefix of the arrays' entries (then an input name or argN)


def _input_arrays(plan: BenchmarkPlan, produced: Any) -> tuple[str, dict[str, Any]]:
    """(``dict``, ``sequence`` or ``single``; the arrays by input name or position)."""
    import numpy as np

    def array(value: Any) -> Any:
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        converted = np.asarray(value)
        if converted.dtype.hasobject:
            raise MeasurementError(
                f"{plan.key('input')}: the input callable returned {type(value).__name__} "
                "values that are not numeric arrays",
                slug="inputs",
            )
        return converted

    if isinstance(produced, dict):
        return "dict", {str(k): array(v) for k, v in produced.items()}
    if isinstance(produced, (tuple, list)):
        return "sequence", {f"arg{i}": array(v) for i, v in enumerate(produced)}
    return "single", {"arg0": array(produced)}


def read_inputs(path: Path) -> Any:
    """Inputs written by ``prepare_inputs``, as the callable gave them: a dict of arrays by
    input name, a tuple of arrays, or one array."""
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        kind = str(data[_KIND])
        arrays = {
            name.removeprefix(_ARRAY): data[name] for name in data.files if name.startswith(_ARRAY)
        }
    if kind == "dict":
        return arrays
    if kind == "sequence":
        return tuple(arrays[f"arg{i}"] for i in range(len(arrays)))
    return arrays["arg0"]


# Execution providers per variant, in order of preference (ORT falls back along the list).
PROVIDERS = {
    "onnxruntime": ["CPUExecutionProvider"],
    "onnxruntime-int8": ["CPUExecutionProvider"],
    "onnxruntime-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "onnxruntime-tensorrt": [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ],
}


def unavailable_reason(variant: str) -> str | None:
    """Why this onnxruntime build cannot run ``variant`` (its first provider is missing)."""
    wanted = PROVIDERS.get(variant, ["CPUExecutionProvider"])[0]
    available = _ort().get_available_providers()
    if wanted in available:
        return None
    return (
        f"{variant} needs onnxruntime's {wanted}, which this onnxruntime build lacks "
        f"(available: {', '.join(available)}); install onnxruntime-gpu with TensorRT, or drop "
        "the variant"
    )


class OnnxBackend:
    """An onnxruntime InferenceSession, intra-op threads pinned; on the CUDA (or TensorRT)
    execution provider inputs and outputs are bound on the device (IO binding), so host-device
    copies are not part of the timed call."""

    sync: Callable[[], None] | None = None

    def __init__(self, plan: BenchmarkPlan) -> None:
        self.plan = plan
        self.session: Any = None
        self.profile_prefix: str | None = None  # set: the session records onnxruntime's profile

    def import_runtime(self) -> None:
        _ort()
        import numpy  # noqa: F401  (part of the runtime's import cost)

        if self.plan.input_callable and not self.plan.inputs:
            resolve_callable(self.plan.input_callable, self.plan.key("input"), ("batch_size",))

    def load(self) -> None:
        ort = _ort()
        if not self.plan.onnx:
            raise MeasurementError(f"{self.plan.name}: no ONNX file prepared", slug="variant")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.plan.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        if self.profile_prefix is not None:
            options.enable_profiling = True
            options.profile_file_prefix = self.profile_prefix
        providers: list[Any] = list(PROVIDERS.get(self.plan.variant, ["CPUExecutionProvider"]))
        if self.plan.cuda:
            device = {"device_id": self.plan.device_index}
            providers = [(p, device) if p != "CPUExecutionProvider" else p for p in providers]
        try:
            self.session = ort.InferenceSession(
                self.plan.onnx, sess_options=options, providers=providers
            )
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise MeasurementError(
                f"{self.plan.name}: onnxruntime cannot load {self.plan.onnx}: {exc}",
                slug="model-load",
            ) from exc

    def _feeds(self, batch_size: int, given: Any = None) -> dict[str, Any]:
        import numpy as np

        names = [i.name for i in self.session.get_inputs()]
        prepared = self.plan.inputs.get(str(batch_size))
        if given is not None:
            produced = given
        elif prepared:  # written by preparation: the input callable is not called here
            produced = read_inputs(Path(prepared))
        else:
            from gate.measure.worker.inputs import plan_inputs

            produced = plan_inputs(self.plan, batch_size)

        def to_numpy(value: Any) -> Any:
            if hasattr(value, "detach"):
                value = value.detach().cpu().numpy()
            return np.asarray(value)

        if isinstance(produced, dict):
            missing = [n for n in names if n not in produced]
            if missing:
                raise MeasurementError(
                    f"{self.plan.name}: inputs lack {missing}; the model expects {names}",
                    slug="inputs",
                )
            return {n: to_numpy(produced[n]) for n in names}
        values = list(produced) if isinstance(produced, (tuple, list)) else [produced]
        if len(values) != len(names):
            raise MeasurementError(
                f"{self.plan.name}: {len(values)} inputs given, the model expects {names}",
                slug="inputs",
            )
        return {n: to_numpy(v) for n, v in zip(names, values, strict=True)}

    def call_for(self, batch_size: int) -> Callable[[], object]:
        feeds = self._feeds(batch_size)
        if self.plan.cuda:
            return self._bound_call(feeds)
        run = self.session.run

        def call() -> object:
            return run(None, feeds)

        return call

    def _bound_call(self, feeds: dict[str, Any]) -> Callable[[], object]:
        """Inputs copied to the GPU once; outputs left there; each call is one Run."""
        ort = _ort()
        active = self.session.get_providers()[0]
        wanted = PROVIDERS[self.plan.variant][0]
        if active != wanted:
            raise MeasurementError(
                f"{self.plan.name}: onnxruntime fell back to {active} instead of {wanted}; "
                "check the CUDA/cuDNN libraries onnxruntime-gpu needs",
                slug="cuda-unavailable",
            )
        binding = self.session.io_binding()
        index = self.plan.device_index
        for name, array in feeds.items():
            binding.bind_ortvalue_input(
                name, ort.OrtValue.ortvalue_from_numpy(array, "cuda", index)
            )
        for output in self.session.get_outputs():
            binding.bind_output(output.name, "cuda", index)
        run = self.session.run_with_iobinding

        def call() -> object:
            run(binding)  # returns once the device work is done (ORT synchronizes the stream)
            return binding

        return call

    def predict(self, inputs: Any, batch_size: int = 8) -> Any:
        """The first output for an eval batch (array, tensor, tuple or dict of inputs), or,
        when None, for the plan's own inputs at ``batch_size``."""
        return self.session.run(None, self._feeds(batch_size, inputs))[0]

    def info(self) -> dict[str, float]:
        """File size and parameters (elements of the graph's initializers)."""
        path = Path(str(self.plan.onnx))
        return {
            "model_size": float(path.stat().st_size),
            "params": float(initializer_elements(path)),
        }

    def threading(self) -> dict[str, Any]:
        """The session's thread settings, read back from it."""
        options = self.session.get_session_options()
        return {
            "ort_intra_op_threads": options.intra_op_num_threads,
            "ort_inter_op_threads": options.inter_op_num_threads,
            "ort_execution_mode": options.execution_mode.name,
        }


def initializer_elements(path: Path) -> int:
    """Elements of the main graph's initializers (the weights) of an ONNX file.

    Read from the protobuf wire format directly (ModelProto.graph = field 7,
    GraphProto.initializer = 5, TensorProto.dims = 1), skipping the tensors' bytes, so that
    counting needs neither the onnx package nor Python objects for the weights (the file's
    bytes are read once; slices of them are views)."""
    view = memoryview(path.read_bytes())
    total = 0
    for graph in _fields(view, 7):
        for tensor in _fields(graph, 5):
            total += math.prod(_integers(tensor, 1))
    return total


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _records(data: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) of one protobuf message's varint fields (an integer) and
    length-delimited fields (a view); fixed-size fields are skipped."""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, value
        elif wire == 2:
            length, pos = _varint(data, pos)
            yield number, data[pos : pos + length]
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise MeasurementError(f"unexpected protobuf wire type {wire}", slug="model-load")


def _fields(data: memoryview, number: int) -> Iterator[memoryview]:
    for found, value in _records(data):
        if found == number and isinstance(value, memoryview):
            yield value


def _integers(data: memoryview, number: int) -> list[int]:
    """A repeated integer field, packed or not."""
    values: list[int] = []
    for found, value in _records(data):
        if found != number:
            continue
        if isinstance(value, int):
            values.append(value)
        else:
            pos = 0
            while pos < len(value):
                item, pos = _varint(value, pos)
                values.append(item)
    return values


# A one-node model (Relu on float[1]; onnx.helper, opset 17, IR 8): what a node costs the
# profiler itself, since it does next to nothing.
_ONE_NODE_MODEL = bytes.fromhex(
    "08083a330a0c0a0178120179220452656c751201675a0f0a0178120a0a08080112040a020801620f0a017912"
    "0a0a08080112040a02080142040a001011"
)


def profile_nodes(plan: BenchmarkPlan, batch_size: int, trace: Path, calls: Calls) -> Recorded:
    """Profile calls of the variant with onnxruntime's own profiler (``enable_profiling``);
    its Chrome trace file becomes ``trace``.

    Returns kernel time and invocations per node type, node name and input shapes (totals over
    the profiled calls), their number, and the seconds per call without the profiler (timed on
    a session of its own: a profiling session records every run). The profiler records from
    session start, so the warm-up runs are recognised by their ``model_run`` events and left
    out. Each node's recorded time includes a few microseconds of the profiler's own work,
    which would make every small node look expensive: that cost, measured on a one-node model
    run alternately with the benchmark in this process, is subtracted from each invocation."""
    plain = OnnxBackend(plan)
    plain.import_runtime()
    plain.load()
    call = plain.call_for(batch_size)
    calls.warm(call)
    wall = calls.unprofiled(call)
    del plain, call
    backend = OnnxBackend(plan)
    backend.profile_prefix = str(trace.with_suffix(""))
    backend.load()
    call = backend.call_for(batch_size)
    calibration = _Calibration(trace.parent / f"{trace.stem}-calibration")

    def alternately() -> object:
        calibration.run()
        return call()

    calls.warm(alternately)
    calls.profiled(alternately)
    written = Path(backend.session.end_profiling())
    events = json.loads(written.read_text(encoding="utf-8"))
    written.replace(trace)
    durations, count = _node_durations(events, calls.warmup)
    own = calibration.cost(calls.warmup)
    rows = [
        robust_total(
            operator=op, node=node, shapes=shapes, durations=[max(0.0, d - own) for d in values]
        )
        for (op, node, shapes), values in durations.items()
    ]
    note = (
        f"onnxruntime's profiler adds about {own * 1e6:.1f} us to each node it records "
        "(measured on a one-node model run alternately with the benchmark); subtracted"
    )
    return Recorded(rows=rows, calls=count, wall=wall, note=note)


def _node_durations(
    events: list[dict[str, Any]], warmup: int
) -> tuple[dict[tuple[str, str, str], list[float]], int]:
    """Seconds per node invocation by (node type, node name, input shapes), and the number of
    runs they come from, the first ``warmup`` runs left out."""
    runs = sorted(
        (e["ts"], e["ts"] + e["dur"])
        for e in events
        if e.get("cat") == "Session" and e.get("name") == "model_run"
    )[warmup:]
    starts = [start for start, _ in runs]
    durations: dict[tuple[str, str, str], list[float]] = {}
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        index = bisect.bisect_right(starts, event["ts"]) - 1
        if index < 0 or event["ts"] > runs[index][1]:
            continue  # a warm-up run's node
        args = event.get("args", {})
        shapes = ", ".join(
            str(dims) for shape in args.get("input_type_shape", []) for dims in shape.values()
        )
        key = (str(args.get("op_name", name)), name.removesuffix("_kernel_time"), shapes)
        durations.setdefault(key, []).append(event["dur"] * 1e-6)  # from microseconds
    return durations, len(runs)


class _Calibration:
    """A one-node model under the profiler, run once per benchmark call: what the profiler
    records for a node that does next to nothing, under the same conditions as the benchmark."""

    def __init__(self, prefix: Path) -> None:
        import numpy as np

        ort = _ort()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_profiling = True
        options.profile_file_prefix = str(prefix)
        self.session = ort.InferenceSession(
            _ONE_NODE_MODEL, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.feeds = {"x": np.ones(1, dtype=np.float32)}

    def run(self) -> None:
        self.session.run(None, self.feeds)

    def cost(self, warmup: int) -> float:
        """Seconds per node (interquartile mean), the first ``warmup`` runs left out."""
        written = Path(self.session.end_profiling())
        events = json.loads(written.read_text(encoding="utf-8"))
        written.unlink()
        durations, _ = _node_durations(events, warmup)
        recorded = [d for values in durations.values() for d in values]
        return interquartile_mean(recorded) if recorded else 0.0
