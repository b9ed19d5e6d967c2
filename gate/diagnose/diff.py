"""The diff of two operator profiles, and which benchmarks to diagnose. Pure: no I/O, no clock.

Profiles are aggregated per operator (a torch operator, an onnxruntime node type, a Python
function): self time and invocations per benchmark call, the input shapes seen, and the node
names (onnxruntime) or layers (torch submodules) that grew. A torch layer whose kernel changed
(a convolution from one implementation to another) is one row of its own, the layer's time
before and after, rather than a vanished and a new operator. The diff ranks rows by the
absolute increase of their self time per call and sets it against the change the timing
rounds measured, which the profiles cannot give: profiled times include the profiler's own
overhead, and a profile is one process.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from gate.core.diagnosis import (
    TOP,
    Diagnosis,
    NodeChange,
    OperatorChange,
    OperatorProfile,
    OperatorTime,
)
from gate.core.types import Comparison, Direction, GateResult, Verdict
from gate.units import UNIT_SECONDS

MAX_CHANGES = 300  # operators kept per diagnosis (the largest changes either way)
MAX_SHAPES = 4  # input shapes listed per operator and side, by time
# onnxruntime nodes (torch layers) listed per operator type, by increase; the operators only
# one side ran in a layer whose kernel changed, by time
MAX_NODES = 3
# Below this share the operators' times do not explain the change: the invocation counts
# (exact, unlike times near the profiler's resolution) are named instead.
LOW_EXPLAINED = 0.5


def targets(result: GateResult, when: str) -> list[Comparison]:
    """One timing comparison per benchmark to diagnose, in report order.

    ``on-regression``: benchmarks with a timing ``regression`` (latency rather than throughput
    when both regressed); ``always``: every benchmark with a timing comparison, new ones
    excepted (the regressed metric where there is one, else latency); ``never``: none."""
    if when == "never":
        return []
    chosen: dict[str, Comparison] = {}
    for comparison in sorted(result.comparisons, key=_preference):
        if not per_call(comparison.metric.name, comparison.metric.family):
            continue
        if comparison.verdict in (Verdict.ERROR, Verdict.MISSING, Verdict.NEW):
            continue  # nothing measured, or nothing to compare it with
        if when == "on-regression" and comparison.verdict is not Verdict.REGRESSION:
            continue
        chosen.setdefault(comparison.benchmark, comparison)
    return list(chosen.values())


def per_call(name: str, family: str) -> bool:
    """A timing of one call (latency, throughput at a batch size, a ``perf`` test's), which a
    profile of calls explains; not a load run's tail or rate (``@200qps``, ``max_qps``: the
    queue and the pool shape them) nor a data pipeline's rate."""
    return family in ("latency", "throughput") and not name.endswith("qps")


def _preference(comparison: Comparison) -> tuple[int, int, str]:
    regression = 0 if comparison.verdict is Verdict.REGRESSION else 1
    latency = 0 if comparison.metric.family == "latency" else 1
    return regression, latency, comparison.metric.name


def measured_change(comparison: Comparison, items: int) -> float | None:
    """Head minus base in seconds per benchmark call, from the timing comparison.

    Latency: the base median times the relative change. Throughput (``items`` per call): the
    base time per call (items / base rate) times 1/(1 + change) - 1. None when undefined."""
    change, base = comparison.relative_change, comparison.baseline
    if base is None or base <= 0 or not math.isfinite(change) or change <= -1.0:
        return None
    if comparison.metric.unit == UNIT_SECONDS and comparison.metric.direction is Direction.LOWER:
        return base * change
    if comparison.metric.direction is Direction.HIGHER:
        return (items / base) * (1.0 / (1.0 + change) - 1.0)
    return None


def reference_times(comparison: Comparison, items: int) -> tuple[float | None, float | None]:
    """(base, head) seconds per call from the timing rounds' medians; None where undefined."""

    def per_call(value: float | None) -> float | None:
        if value is None or not value > 0 or not math.isfinite(value):
            return None
        if comparison.metric.direction is Direction.HIGHER:
            return items / value
        return value if comparison.metric.unit == UNIT_SECONDS else None

    return per_call(comparison.baseline), per_call(comparison.current)


def normalised(
    profile: OperatorProfile, reference: float | None, side: str
) -> tuple[OperatorProfile, str]:
    """The profile with its times scaled by the timing rounds' time per call over the time per
    call measured in the profiling process (just before profiling, without the profiler).

    One profiling process per side is one sample of the machine: on a shared runner a whole
    process can run slower (a busy sibling core) and every operator would look slower with it.
    The timing rounds know better what a call costs; the scaling keeps the operators' shares of
    the process and puts the process on the rounds' scale. Returns (profile, a note when the
    factor is far from 1)."""
    if profile.wall is None or reference is None or profile.wall <= 0:
        return profile, ""
    factor = reference / profile.wall
    rows = tuple(replace(row, time=row.time * factor) for row in profile.rows)
    note = ""
    if abs(factor - 1.0) > 0.15:
        note = (
            f"{side}: profile times scaled by {factor:.2f} to the timing rounds' time per call "
            "(the profiling process ran at a different speed)"
        )
    return replace(profile, rows=rows, wall=reference), note


def missing(comparison: Comparison, reason: str) -> Diagnosis:
    """A diagnosis that could not be made, with the reason the reports show."""
    return Diagnosis(
        benchmark=comparison.benchmark,
        metric=comparison.metric.name,
        verdict=comparison.verdict.value,
        missing=reason,
    )


@dataclass
class _Operator:
    time: float = 0.0
    calls: float = 0.0
    shapes: dict[str, float] = field(default_factory=dict)
    nodes: dict[str, float] = field(default_factory=dict)
    layers: dict[str, float] = field(default_factory=dict)

    def add(self, row: OperatorTime, *, layers: bool) -> None:
        self.time += row.time
        self.calls += row.calls
        if row.shapes:
            self.shapes[row.shapes] = self.shapes.get(row.shapes, 0.0) + row.time
        if row.node:
            self.nodes[row.node] = self.nodes.get(row.node, 0.0) + row.time
        if layers and row.module:
            self.layers[row.module] = self.layers.get(row.module, 0.0) + row.time


Layer = tuple[str, str]  # a torch submodule: (dotted path, class name)


def _layer(row: OperatorTime) -> Layer:
    return row.module, row.module_type


def _aggregate(rows: Iterable[OperatorTime], *, layers: bool) -> dict[str, _Operator]:
    operators: dict[str, _Operator] = {}
    for row in rows:
        operators.setdefault(row.operator, _Operator()).add(row, layers=layers)
    return operators


def _largest(weights: dict[str, float], count: int) -> tuple[str, ...]:
    return tuple(name for name, _ in sorted(weights.items(), key=lambda kv: (-kv[1], kv[0])))[
        :count
    ]


def _only(shapes: dict[str, float], other: dict[str, float]) -> dict[str, float]:
    return {shape: time for shape, time in shapes.items() if shape not in other}


def _grew(base: dict[str, float], head: dict[str, float]) -> tuple[NodeChange, ...]:
    """The nodes (or layers) whose time grew the most, largest increase first."""
    names = set(base) | set(head)
    changes = [
        NodeChange(node=n, base_time=base.get(n, 0.0), head_time=head.get(n, 0.0)) for n in names
    ]
    changes.sort(key=lambda c: (-c.increase, c.node))
    return tuple(c for c in changes if c.increase > 0)[:MAX_NODES]


def _change(operator: str, base: _Operator | None, head: _Operator | None) -> OperatorChange:
    status = "new" if base is None else "vanished" if head is None else "changed"
    both = status == "changed"
    base, head = base or _Operator(), head or _Operator()
    return OperatorChange(
        operator=operator,
        status=status,
        base_time=base.time,
        head_time=head.time,
        base_calls=base.calls,
        head_calls=head.calls,
        base_shapes=_largest(base.shapes, MAX_SHAPES),
        head_shapes=_largest(head.shapes, MAX_SHAPES),
        added_shapes=_largest(_only(head.shapes, base.shapes), MAX_SHAPES) if both else (),
        removed_shapes=_largest(_only(base.shapes, head.shapes), MAX_SHAPES) if both else (),
        nodes=_grew(base.nodes, head.nodes),
        layers=_grew(base.layers, head.layers),
    )


def _by_layer(rows: Iterable[OperatorTime]) -> dict[Layer, list[OperatorTime]]:
    layers: dict[Layer, list[OperatorTime]] = {}
    for row in rows:
        if row.module:
            layers.setdefault(_layer(row), []).append(row)
    return layers


def _switched(base: OperatorProfile, head: OperatorProfile) -> dict[Layer, OperatorChange]:
    """Layers whose kernel changed: a submodule of the same path and class on both sides, with
    operators only the base ran in it and operators only the head ran in it (a convolution
    from ``_slow_conv2d_forward`` to ``mkldnn_convolution``). A layer of another class under the
    same path (layers inserted before it in a Sequential) is another layer, not a switch."""
    base_layers, head_layers = _by_layer(base.rows), _by_layer(head.rows)
    switched: dict[Layer, OperatorChange] = {}
    for layer in sorted(set(base_layers) & set(head_layers)):
        base_ops = _aggregate(base_layers[layer], layers=False)
        head_ops = _aggregate(head_layers[layer], layers=False)
        gone = {name: op.time for name, op in base_ops.items() if name not in head_ops}
        came = {name: op.time for name, op in head_ops.items() if name not in base_ops}
        if not gone or not came:
            continue
        before, after = _largest(gone, MAX_NODES), _largest(came, MAX_NODES)
        base_shapes: dict[str, float] = {}
        head_shapes: dict[str, float] = {}
        for op, shapes in ((base_ops, base_shapes), (head_ops, head_shapes)):
            for entry in op.values():
                for shape, time in entry.shapes.items():
                    shapes[shape] = shapes.get(shape, 0.0) + time
        switched[layer] = OperatorChange(
            operator=f"{before[0]} -> {after[0]}",
            status="switched",
            module=layer[0],
            base_time=sum(op.time for op in base_ops.values()),
            head_time=sum(op.time for op in head_ops.values()),
            base_calls=sum(op.calls for op in base_ops.values()),
            head_calls=sum(op.calls for op in head_ops.values()),
            base_shapes=_largest(base_shapes, MAX_SHAPES),
            head_shapes=_largest(head_shapes, MAX_SHAPES),
            base_operators=before,
            head_operators=after,
        )
    return switched


def _changes(base: OperatorProfile, head: OperatorProfile) -> list[OperatorChange]:
    """Every row of both profiles in exactly one change: a layer whose kernel changed as that
    layer's row (torch profiles with layers on both sides), the rest per operator (with the
    layers whose time in it grew, where recorded)."""
    layers = any(row.module for row in base.rows) and any(row.module for row in head.rows)
    switched = _switched(base, head) if layers else {}

    def rest(profile: OperatorProfile) -> dict[str, _Operator]:
        kept = (row for row in profile.rows if _layer(row) not in switched)
        return _aggregate(kept, layers=layers)

    base_ops, head_ops = rest(base), rest(head)
    names = sorted(set(base_ops) | set(head_ops))
    changes = [_change(name, base_ops.get(name), head_ops.get(name)) for name in names]
    return changes + list(switched.values())


def _with_shares(changes: Iterable[OperatorChange], measured: float | None) -> list[OperatorChange]:
    if measured is None or measured <= 0:
        return list(changes)
    return [replace(c, share=c.increase / measured if c.increase > 0 else None) for c in changes]


def _invocation_note(changes: list[OperatorChange], explained: float) -> str:
    """When the operators' times explain little, the operators whose invocations per call
    changed: onnxruntime records whole microseconds and subtracts its own cost per node, so a
    node shorter than that records nothing, and its time shows outside the operators."""
    # (a layer whose kernel changed runs other operators: its count says nothing of resolution)
    counted = [
        c for c in changes if c.status != "switched" and abs(c.head_calls - c.base_calls) >= 0.5
    ]
    if not counted:
        return ""
    counted.sort(key=lambda c: (-abs(c.head_calls - c.base_calls), c.label))
    listed = ", ".join(f"{c.label} {c.base_calls:g} -> {c.head_calls:g}" for c in counted[:TOP])
    more = f" (+{len(counted) - TOP} more)" if len(counted) > TOP else ""
    return (
        f"the operators' self times explain {explained * 100:.0f}% of the change, but "
        f"invocations per call changed: {listed}{more}; operators shorter than the profiler "
        "resolves record little or nothing, and their time shows outside the operators"
    )


def diff(
    comparison: Comparison,
    base: OperatorProfile,
    head: OperatorProfile,
    *,
    traces: dict[str, str] | None = None,
) -> Diagnosis:
    """Base against head for one benchmark: every operator's change, largest increase first.

    Both profiles are first put on the timing rounds' scale (``normalised``). ``explained`` is
    the sum of the top increases over the measured change (can exceed 100%: profiled times
    carry the profiler's overhead, and small changes drown in noise)."""
    base_reference, head_reference = reference_times(comparison, head.items)
    base, base_scaled = normalised(base, base_reference, "base")
    head, head_scaled = normalised(head, head_reference, "head")
    changes = _changes(base, head)
    changes.sort(key=lambda c: -abs(c.increase))
    truncated = max(0, len(changes) - MAX_CHANGES)
    kept = sorted(changes[:MAX_CHANGES], key=lambda c: (-c.increase, c.operator, c.module))
    measured = measured_change(comparison, head.items)
    # Shares of a change the rounds did not establish are noise over noise (a +6 ns change
    # "explained 7081%"): only a significant slowdown is divided up.
    slowdown = comparison.significant and measured is not None and measured > 0
    kept = _with_shares(kept, measured if slowdown else None)
    notes = [note for note in (base.trace_note, head.trace_note) if note]
    if base.note and base.note == head.note:
        notes.append(base.note)
    else:
        notes += [f"{side}: {p.note}" for side, p in (("base", base), ("head", head)) if p.note]
    notes += [note for note in (base_scaled, head_scaled) if note]
    explained: float | None = None
    if slowdown and measured is not None:
        explained = sum(c.increase for c in kept[:TOP] if c.increase > 0) / measured
        if explained < LOW_EXPLAINED:
            notes.append(_invocation_note(changes, explained))
    else:
        notes.append("the timing rounds found no significant slowdown: shares are not computed")
    return Diagnosis(
        benchmark=comparison.benchmark,
        metric=comparison.metric.name,
        verdict=comparison.verdict.value,
        tool=head.tool,
        measured_change=measured,
        base_total=base.total,
        head_total=head.total,
        base_wall=base.wall,
        head_wall=head.wall,
        changes=tuple(kept),
        explained=explained,
        traces=dict(traces or {}),
        notes=tuple(note for note in notes if note),
        truncated=truncated,
    )
