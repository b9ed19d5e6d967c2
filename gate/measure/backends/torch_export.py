"""The ONNX export the onnxruntime variants are prepared from: right, or refused with the reason.

The TorchScript exporter traces one call (about 0.15 s for a small model once loaded). A trace
records the path these inputs took: ``if x.sum() > 0:`` in ``forward`` becomes a graph with one
branch, which then passes a parity check on inputs that take the same branch. The tracer says
so (``TracerWarning``: converting a tensor to a Python boolean, integer or index); such a
warning raised in the model's own code (not in torch's) makes the trace suspect. A suspect
trace, or one the TorchScript exporter cannot make, is exported again with ``torch.export``
(``dynamo=True``), which follows no branch silently: it either captures the model for every
input or refuses (seconds rather than tenths, so only then). When both fail the export is
refused with both reasons in one line. The exporter's other warnings are kept as a note.

Inputs given by name (a dict, as Hugging Face models take them) are exported through a wrapper
that takes them positionally in ``forward``'s order: the TorchScript exporter passes keyword
inputs so that they collide with ``forward``'s own defaults (``use_cache``), and a graph's inputs
are positional anyway; they keep their names.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import MeasurementError
from gate.measure import BenchmarkPlan, artifacts
from gate.measure.backends.torch_runtime import (
    _torch,
    build_module,
    forward_order,
    make_inputs,
    set_threads,
)

# What a TracerWarning says when the trace followed one path of a value-dependent decision.
_VALUE_DEPENDENT = {
    "boolean": "data-dependent control flow",
    "integer": "a tensor value used as a Python number (shapes, loop counts)",
    "index": "a tensor value used as an index",
    "float": "a tensor value used as a Python number",
    "Iterating over a tensor": "a loop over a tensor's rows",
}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Exported:
    """The published .onnx file and what a reader should know about how it was made."""

    path: Path
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Warned:
    where: str  # file:line in the user's code
    message: str

    def cause(self) -> str:
        for marker, cause in _VALUE_DEPENDENT.items():
            if marker in self.message:
                return cause
        return "a value the trace fixed"

    def describe(self) -> str:
        first = self.message.split(". ")[0].rstrip(".")
        return f"{self.where}: {first} ({self.cause()})"


def _positional(module: Any, names: list[str]) -> Any:
    """``module`` called with named inputs, as a module taking them positionally."""
    torch = _torch()

    class Positional(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(names, args, strict=True)))

    return Positional().eval()


def _user_tracer_warnings(caught: list[warnings.WarningMessage]) -> list[_Warned]:
    """TracerWarnings raised outside torch's own package (torch's internal checks trace
    correctly), each place once."""
    torch = _torch()
    torch_dir = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
    found: dict[str, _Warned] = {}
    for item in caught:
        if item.category.__name__ != "TracerWarning":
            continue
        filename = os.path.abspath(item.filename)
        if filename.startswith(torch_dir):
            continue
        where = f"{Path(filename).name}:{item.lineno}"
        found.setdefault(where, _Warned(where, str(item.message)))
    return list(found.values())


def _other_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    """The exporter's warnings worth a note: not deprecations of the exporter itself, not
    tracer warnings (judged above), each text once."""
    seen: dict[str, None] = {}
    for item in caught:
        if issubclass(item.category, (DeprecationWarning, FutureWarning)):
            continue
        if item.category.__name__ == "TracerWarning":
            continue
        seen.setdefault(str(item.message).splitlines()[0][:160], None)
    return list(seen)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The dynamo exporter's progress lines and log records, kept off the user's terminal."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        logger.setLevel(level)


def _reason(exc: BaseException) -> str:
    """The innermost cause's first line, without the exporter's colour codes."""
    inner = exc
    while inner.__cause__ is not None and inner.__cause__ is not inner:
        inner = inner.__cause__
    lines = [line.strip() for line in _ANSI.sub("", str(inner)).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    return f"{type(inner).__name__}: {text[:300]}"


def _with_torch_export(
    module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], names: list[str], target: Path
) -> None:
    torch = _torch()
    batch = torch.export.Dim("batch")
    dynamic: Any
    if kwargs:
        dynamic = {name: {0: batch} for name in kwargs}
    else:
        dynamic = tuple({0: batch} for _ in args)
    with _quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(target),
            kwargs=kwargs or None,
            input_names=names,
            dynamic_shapes=dynamic,
            dynamo=True,
            external_data=False,  # one file, named by its bytes (models under 2 GB)
            verbose=False,
        )


def export_onnx(plan: BenchmarkPlan, cache_dir: Path) -> Exported:
    """Export the plan's torch model to ONNX with a dynamic batch axis and inputs named as
    given (``input``, ``input_0``.., or the dict's keys in ``forward``'s order).

    The export always runs: what a model computes can depend on more than its code and
    weights (a file read while it is built, a plain attribute that steers ``forward``), and no
    key short of the graph itself sees all of it. The file is named by the sha256 of its
    bytes, so an unchanged graph keeps its file (and its quantization and prepared inputs) and
    a changed one gets a new name; the model's older exports beyond the few most recently
    used are deleted with what was derived from them (``gate.measure.artifacts``).

    Raises MeasurementError (one line, the reasons and the fixes) when no faithful export can
    be made."""
    torch = _torch()
    set_threads(plan.threads)
    module = build_module(plan)
    args, kwargs = make_inputs(plan, 2)
    if kwargs:
        kwargs = {name: kwargs[name] for name in forward_order(module, kwargs)}
        names = list(kwargs)
        traced_module, traced_args = _positional(module, names), tuple(kwargs.values())
    else:
        names = ["input"] if len(args) == 1 else [f"input_{i}" for i in range(len(args))]
        traced_module, traced_args = module, args
    partial = artifacts.partial_file(cache_dir, plan.model)
    notes: list[str] = []
    suspect: list[_Warned] = []
    first_failure = ""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.onnx.export(
                traced_module,
                traced_args,
                str(partial),
                input_names=names,
                dynamic_axes={name: {0: "batch"} for name in names},
                dynamo=False,
            )
        suspect = _user_tracer_warnings(caught)
        others = _other_warnings(caught)
        if others:
            notes.append("the ONNX exporter warned: " + "; ".join(others[:3]))
    except Exception as exc:  # the exporter raises many types; all mean "cannot export"
        first_failure = f"the TorchScript exporter failed ({_reason(exc)})"
    if suspect or first_failure:
        why = first_failure or (
            "the TorchScript trace may not be the model: "
            + "; ".join(w.describe() for w in suspect[:3])
        )
        partial.unlink(missing_ok=True)
        try:
            _with_torch_export(module, args, kwargs, names, partial)
        except Exception as exc:
            partial.unlink(missing_ok=True)
            raise MeasurementError(
                f"{plan.model}: no faithful ONNX export: {why}; torch.export refused too "
                f"({_reason(exc)}); make forward's control flow independent of input values "
                "(torch.cond, torch.where), give an ONNX file with 'onnx:', or drop the "
                "onnxruntime variants",
                slug="onnx-export",
            ) from exc
        notes.insert(0, f"exported with torch.export because {why}")
    try:
        digest = artifacts.file_digest(partial)
    except OSError as exc:
        raise MeasurementError(
            f"{plan.model}: the ONNX exporter wrote no file ({exc})", slug="onnx-export"
        ) from exc
    target = artifacts.publish(partial, cache_dir / artifacts.export_name(plan.model, digest))
    artifacts.prune_exports(cache_dir, plan.model)
    return Exported(target, tuple(notes))
