"""Frozen value types of a diagnosis: where the time of a regressed benchmark went.

A diagnosis compares an operator-level profile of the base with one of the head (torch
operators, onnxruntime nodes, or Python functions under cProfile) and names the operators whose
self time per benchmark call grew. Foundation layer: no I/O; the profiling happens in
``gate.measure.worker.operators`` (worker) and ``gate.measure.profiles`` (parent), the diff in
``gate.diagnose.diff``, the orchestration in ``gate.diagnose.investigation``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gate.errors import ConfigError
from gate.units import parse_size

# When to diagnose: timing regressions only (default), every timed benchmark, or never.
DIAGNOSE_WHEN = ("on-regression", "always", "never")
DIAGNOSE_KEYS = ("when", "max_trace")
DEFAULT_MAX_TRACE = 50e6  # bytes per trace file; larger traces are dropped, the tables kept
TOP = 5  # operators shown per benchmark in the terminal; their share is the "explained" share


class _Context(Protocol):
    def error(self, key: str, message: str) -> ConfigError: ...

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...] | None) -> dict[str, Any]: ...


@dataclass(frozen=True, kw_only=True)
class DiagnoseSettings:
    """``policy.diagnose``: when to profile, and the largest trace file kept."""

    when: str = "on-regression"
    max_trace: float = DEFAULT_MAX_TRACE


def parse_diagnose(ctx: _Context, value: Any, key: str) -> DiagnoseSettings:
    """``on-regression`` | ``always`` | ``never`` (or false), or ``{when: ..., max_trace: 20MB}``.

    Raises ConfigError (through ``ctx``) naming the key and the values expected."""
    if value is None:
        return DiagnoseSettings()
    if value is False:  # YAML reads "off" and "no" as false
        return DiagnoseSettings(when="never")
    if not isinstance(value, (str, dict)):
        raise ctx.error(
            key,
            f"expected one of {', '.join(DIAGNOSE_WHEN)} or a mapping {{when: ..., max_trace: "
            f"...}}, got {value!r}",
        )
    raw = {"when": value} if isinstance(value, str) else ctx.mapping(value, key, DIAGNOSE_KEYS)
    when = raw.get("when", "on-regression")
    if when not in DIAGNOSE_WHEN:
        where = f"{key}.when" if isinstance(value, dict) else key
        raise ctx.error(
            where, f"unknown value {when!r}; expected one of {', '.join(DIAGNOSE_WHEN)}"
        )
    max_trace = raw.get("max_trace", DEFAULT_MAX_TRACE)
    try:
        limit = parse_size(max_trace) if isinstance(max_trace, str) else float(max_trace)
    except (TypeError, ValueError):
        raise ctx.error(
            f"{key}.max_trace", f"expected a size like '50MB', got {max_trace!r}"
        ) from None
    if isinstance(max_trace, bool) or not limit > 0:
        raise ctx.error(
            f"{key}.max_trace", f"expected a positive size like '50MB', got {max_trace!r}"
        )
    return DiagnoseSettings(when=str(when), max_trace=limit)


@dataclass(frozen=True, kw_only=True)
class OperatorTime:
    """One row of a profile: an operator (with a node name, input shapes and the layer it ran in
    where the profiler records them), its invocations and its self time, both per benchmark
    call."""

    operator: str  # aten::addmm, MatMul (node type), or "function (file.py)" under cProfile
    node: str = ""  # onnxruntime node name
    shapes: str = ""  # input shapes, e.g. "[1, 64], [256, 64]"
    calls: float = 0.0
    time: float = 0.0  # seconds of self time (CPU, plus device time where recorded)
    # torch: the innermost submodule whose forward ran the operator, as its dotted path from
    # the model (``features.3.conv``), and its class (``Conv2d``); "" outside any submodule
    # and for profiles that record no modules (onnxruntime, cProfile, compiled torch)
    module: str = ""
    module_type: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "operator": self.operator,
            "node": self.node,
            "shapes": self.shapes,
            "calls": self.calls,
            "time": self.time,
        }
        if self.module or self.module_type:  # absent where none, as in earlier profiles
            data.update(module=self.module, module_type=self.module_type)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OperatorTime:
        return cls(
            operator=str(data["operator"]),
            node=str(data.get("node", "")),
            shapes=str(data.get("shapes", "")),
            calls=float(data.get("calls", 0.0)),
            time=float(data["time"]),
            module=str(data.get("module", "")),
            module_type=str(data.get("module_type", "")),
        )


@dataclass(frozen=True, kw_only=True)
class OperatorProfile:
    """What one profiling worker measured for one benchmark on one side (base or head).

    ``calls`` benchmark calls were profiled; ``items`` is what one call processes (the batch
    size), so a throughput change converts to time per call. ``trace`` is the Chrome trace file,
    or None with ``trace_note`` saying why it was not kept; ``note`` says how the times were
    adjusted, if they were. ``wall`` is the seconds per call timed in the same process without
    the profiler: what the operators' self times do not cover ran outside any operator.
    """

    tool: str
    calls: int
    items: int = 1
    rows: tuple[OperatorTime, ...] = ()
    trace: str | None = None
    trace_note: str = ""
    note: str = ""
    wall: float | None = None

    @property
    def total(self) -> float:
        return sum(row.time for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "calls": self.calls,
            "items": self.items,
            "rows": [row.to_dict() for row in self.rows],
            "trace": self.trace,
            "trace_note": self.trace_note,
            "note": self.note,
            "wall": self.wall,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OperatorProfile:
        return cls(
            tool=str(data["tool"]),
            calls=int(data["calls"]),
            items=int(data.get("items", 1)),
            rows=tuple(OperatorTime.from_dict(row) for row in data["rows"]),
            trace=data.get("trace"),
            trace_note=str(data.get("trace_note", "")),
            note=str(data.get("note", "")),
            wall=None if data.get("wall") is None else float(data["wall"]),
        )


@dataclass(frozen=True, kw_only=True)
class NodeChange:
    """One onnxruntime node of an operator type, or one layer (a torch submodule's dotted path)
    an operator ran in, base against head (seconds per call)."""

    node: str
    base_time: float
    head_time: float

    @property
    def increase(self) -> float:
        return self.head_time - self.base_time


@dataclass(frozen=True, kw_only=True)
class OperatorChange:
    """One operator, base against head: self time and invocations per benchmark call.

    ``status`` is ``new`` (only in the head), ``vanished`` (only in the base), ``changed``, or
    ``switched``: one layer (``module``, a torch submodule on both sides) whose kernel changed,
    e.g. ``aten::_slow_conv2d_forward`` in the base and ``aten::mkldnn_convolution`` in the
    head. A switched row holds the layer's every operator (times and invocations are the
    layer's totals), names the operators only the base or only the head ran in it
    (``base_operators``, ``head_operators``, up to 3 by time) and is named ``<base's> -> <head's>``
    after the first of each. ``share`` is the increase over the measured change of the
    benchmark (None when the benchmark did not get slower).
    """

    operator: str
    status: str
    base_time: float
    head_time: float
    base_calls: float
    head_calls: float
    base_shapes: tuple[str, ...] = ()  # the input shapes with the most time, per side
    head_shapes: tuple[str, ...] = ()
    added_shapes: tuple[str, ...] = ()  # shapes only the head ran (an operator on both sides)
    removed_shapes: tuple[str, ...] = ()  # shapes only the base ran
    share: float | None = None
    nodes: tuple[NodeChange, ...] = ()
    layers: tuple[NodeChange, ...] = ()  # torch: the layers whose time in it grew the most
    module: str = ""  # the layer of a switched row
    base_operators: tuple[str, ...] = ()  # a switched layer's kernels, only in the base
    head_operators: tuple[str, ...] = ()  # ... and only in the head

    @property
    def increase(self) -> float:
        return self.head_time - self.base_time

    @property
    def shapes_changed(self) -> bool:
        return bool(self.added_shapes or self.removed_shapes)

    @property
    def label(self) -> str:
        """The operator, and the layer where the row is one layer's (``... in features.3``)."""
        return f"{self.operator} in {self.module}" if self.module else self.operator


@dataclass(frozen=True, kw_only=True)
class Diagnosis:
    """The profile diff of one benchmark, or (``missing`` set) why there is none.

    ``measured_change`` is head minus base in seconds per benchmark call from the timing
    rounds (not the profiles); ``explained`` the share of it that the top increases account for.
    """

    benchmark: str
    metric: str
    verdict: str
    missing: str = ""
    tool: str = ""
    measured_change: float | None = None
    base_total: float = 0.0
    head_total: float = 0.0
    base_wall: float | None = None  # seconds per call without the profiler, same process
    head_wall: float | None = None
    changes: tuple[OperatorChange, ...] = ()
    explained: float | None = None
    traces: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    truncated: int = 0  # operators left out of ``changes`` (the smallest changes)

    @property
    def available(self) -> bool:
        return not self.missing

    def top(self, count: int = TOP) -> tuple[OperatorChange, ...]:
        """The ``count`` largest increases (operators that got faster are not listed)."""
        return tuple(c for c in self.changes if c.increase > 0)[:count]

    @property
    def outside(self) -> tuple[float, float] | None:
        """Seconds per call outside any operator (Python code, dispatch), base and head: the
        unprofiled time per call minus the operators' self times; None when not timed."""
        if self.base_wall is None or self.head_wall is None:
            return None
        return max(0.0, self.base_wall - self.base_total), max(
            0.0, self.head_wall - self.head_total
        )

    @property
    def new(self) -> tuple[OperatorChange, ...]:
        return tuple(c for c in self.changes if c.status == "new")

    @property
    def vanished(self) -> tuple[OperatorChange, ...]:
        return tuple(c for c in self.changes if c.status == "vanished")

    @property
    def changed_shapes(self) -> tuple[OperatorChange, ...]:
        return tuple(c for c in self.changes if c.shapes_changed)

    @property
    def switched(self) -> tuple[OperatorChange, ...]:
        """Layers whose kernel changed (torch profiles with layers only)."""
        return tuple(c for c in self.changes if c.status == "switched")


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN or infinity."""
    return None if value is None or not math.isfinite(value) else value
