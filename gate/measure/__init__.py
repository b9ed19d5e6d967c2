"""Measurement: what a worker process needs to load and run one benchmark.

``BenchmarkPlan`` is the JSON-able description handed to worker processes; ``get_backend``
returns the backend for its variant, importing torch or onnxruntime only then;
``resolve_callable`` turns a config's ``module:function`` into the function, and says which
config key is wrong when it cannot (``BadReference``).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
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
# quantized with calibration inputs prepared for them (gate.measure.calibration)
INT8_VARIANTS = ("torch-int8", "onnxruntime-int8")
# Thread pools sized from the environment at start-up; workers get them set to the plan's threads.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class VariantUnavailable(MeasurementError):
    """This machine cannot run the variant by design (e.g. no TensorRT execution provider):
    the variant is skipped with a note instead of failing the run."""


class Refused(MeasurementError):
    """A round's measurement that cannot stand, said in one line (a load run whose queries
    raised, a data loader that ran dry): the benchmark's error as it is, with no traceback
    location."""


class BadReference(MeasurementError):
    """A ``module:function`` of the config cannot be used as written: its module is not found,
    the module has no such attribute, or the attribute is not a callable that takes the
    arguments perf-gate passes. ``key`` is the config key (``models.tiny.torch``), ``problem``
    what is wrong with it; preparation turns it into a ConfigError naming the file (exit 2).
    A failure of the user's code itself (an exception while importing or calling it) is not a
    bad reference: it stays a measurement error."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}", slug="import")
        self.key = key
        self.problem = problem


@dataclass(frozen=True, kw_only=True)
class BenchmarkPlan:
    """One model variant as a worker sees it; ``onnx`` is the prepared artifact for ORT variants,
    ``inputs`` the prepared inputs of an ``input:`` callable (batch size -> .npz file) that an
    onnxruntime worker reads instead of calling it."""

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
    inputs: dict[str, str] = field(default_factory=dict, hash=False)
    # what preparation did that a reader of the results should know (how the ONNX graph was
    # exported, what int8 quantized), one sentence each; kept in the record's info
    notes: tuple[str, ...] = ()
    # int8 variants: the calibration batches prepared for static quantization (an .npz)
    calibration: str | None = None
    # the model's ``load:`` settings (config.load.LoadSpec as a dict): a load run per round
    load: dict[str, Any] | None = field(default=None, hash=False)
    # the ``data`` variant: the model's ``data:`` settings (config.load.DataSpec as a dict)
    data: dict[str, Any] | None = field(default=None, hash=False)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def key(self, name: str) -> str:
        """The config key of this plan's model setting ``name`` (``models.tiny.input``)."""
        return f"models.{self.model}.{name}"

    @property
    def input_batch_sizes(self) -> tuple[int, ...]:
        """Every batch size the variant is called at: its ``batch_sizes`` and, under a
        batched ``load:``, the sizes its batches are padded to."""
        from gate.config.load import load_from_dict

        load = load_from_dict(self.load)
        extra = load.batch_sizes if load is not None and load.max_batch > 1 else ()
        return tuple(sorted({*self.batch_sizes, *extra}))

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
        data["inputs"] = {str(k): str(v) for k, v in (data.get("inputs") or {}).items()}
        data["notes"] = tuple(str(n) for n in data.get("notes") or ())
        return cls(**data)


class Backend(Protocol):
    """How one variant is imported, loaded and called; ``sync`` waits for queued device work."""

    sync: Callable[[], None] | None

    def import_runtime(self) -> None: ...

    def load(self) -> None: ...

    def call_for(self, batch_size: int) -> Callable[[], object]: ...

    def predict(self, inputs: Any, batch_size: int = 8) -> Any: ...

    def info(self) -> dict[str, float]: ...

    def threading(self) -> dict[str, Any]: ...


def describe(exc: BaseException) -> str:
    """``Type: message (file:line)`` with the innermost frame, for a one-line error."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    from gate.measure.processes import memory_hint

    text = str(exc)
    return memory_hint(f"{type(exc).__name__}{': ' + text if text else ''}{where}")


def import_object(reference: str, key: str | None = None) -> Any:
    """``"package.module:attr.sub"`` -> the object.

    Raises BadReference (naming ``key``, else the reference) when the module is not found or
    has no such attribute, MeasurementError when importing the module fails in its own code."""
    where = key or repr(reference)
    module_name, _, attribute = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not _names_module(exc.name, module_name):
            raise MeasurementError(
                f"{where}: importing module {module_name!r} failed: {exc}", slug="import"
            ) from exc
        raise BadReference(
            where,
            f"cannot import module {module_name!r} ({exc}); check the module path (relative "
            "to the config file's directory)",
        ) from exc
    except ImportError as exc:
        raise MeasurementError(
            f"{where}: importing module {module_name!r} failed: {exc}", slug="import"
        ) from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            names = [n for n in dir(target) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=1, cutoff=0.8)  # typos only
            guess = f"; did you mean {close[0]!r}?" if close else ""
            raise BadReference(
                where, f"module {module_name!r} has no attribute {attribute!r}{guess}"
            ) from None
    return target


def _names_module(missing: str, module_name: str) -> bool:
    """Whether the module that was not found is ``module_name`` or one of its packages (the
    reference is wrong), not something the module itself imports (its code is)."""
    return module_name == missing or module_name.startswith(missing + ".")


def resolve_callable(
    reference: str, key: str | None = None, arguments: tuple[str, ...] = ()
) -> Callable[..., Any]:
    """The callable ``reference`` names, checked to accept ``arguments`` (their names, for the
    message) positionally.

    Raises BadReference when it cannot be imported, is not callable or takes other arguments."""
    target: Callable[..., Any] = import_object(reference, key)
    where = key or repr(reference)
    if not callable(target):
        kind = type(target).__name__
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        raise BadReference(where, f"{reference!r} is {article} {kind}, not a callable")
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return target  # no signature to check (some builtins): calling it will tell
    try:
        signature.bind(*arguments)
    except TypeError as exc:
        name = reference.rpartition(":")[2].rpartition(".")[2]
        raise BadReference(
            where,
            f"{reference!r} cannot be called as {name}({', '.join(arguments)}) ({exc}); "
            "perf-gate passes exactly these arguments",
        ) from None
    return target


def check_references(plan: BenchmarkPlan) -> None:
    """Resolve the plan's ``torch:`` factory (called with no arguments) and ``input:``
    callable (called with the batch size). Raises BadReference naming the key."""
    if plan.torch:
        resolve_callable(plan.torch, plan.key("torch"))
    if plan.input_callable:
        resolve_callable(plan.input_callable, plan.key("input"), ("batch_size",))
    if plan.data:
        resolve_callable(plan.data["loader"], plan.key("data.loader"))
