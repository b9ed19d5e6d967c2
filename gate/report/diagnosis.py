"""Diagnoses in the reports: the ``diagnosis`` list of comparison.json and the terminal's
top operators per benchmark. Reads Diagnosis values only; the diff was made in
gate/diagnose/diff.py.
"""

from __future__ import annotations

from typing import Any

from gate.core.diagnosis import TOP, Diagnosis, OperatorChange, finite_or_none
from gate.units import UNIT_SECONDS, format_value

PERFETTO = "https://ui.perfetto.dev"
_DETAIL_WIDTH = 60
# Below a picosecond a time is float noise (a wall minus the operators scaled to that wall).
NOISE = 1e-12
# What runs outside the recorded operators, per profiler.
_OUTSIDE = {"onnxruntime": "session, bindings, nodes too short to resolve"}


def outside_label(tool: object) -> str:
    """``outside operators (Python, dispatch)``, or what lies outside for ``tool``."""
    return f"outside operators ({_OUTSIDE.get(str(tool), 'Python, dispatch')})"


def _denoised(value: float) -> float:
    return 0.0 if abs(value) < NOISE else value


def _change_to_dict(change: OperatorChange) -> dict[str, Any]:
    return {
        "operator": change.operator,
        "status": change.status,
        "base_time": change.base_time,
        "head_time": change.head_time,
        "increase": change.increase,
        "share": finite_or_none(change.share),
        "base_calls": change.base_calls,
        "head_calls": change.head_calls,
        "base_shapes": list(change.base_shapes),
        "head_shapes": list(change.head_shapes),
        "added_shapes": list(change.added_shapes),
        "removed_shapes": list(change.removed_shapes),
        "nodes": [
            {
                "node": n.node,
                "base_time": n.base_time,
                "head_time": n.head_time,
                "increase": n.increase,
            }
            for n in change.nodes
        ],
        "layers": [
            {
                "layer": n.node,
                "base_time": n.base_time,
                "head_time": n.head_time,
                "increase": n.increase,
            }
            for n in change.layers
        ],
        "module": change.module,
        "base_operators": list(change.base_operators),
        "head_operators": list(change.head_operators),
    }


def diagnosis_to_dict(diagnosis: Diagnosis) -> dict[str, Any]:
    """One entry of comparison.json's ``diagnosis`` list (times in seconds per benchmark call;
    docs/diagnosis.md describes every key)."""
    return {
        "benchmark": diagnosis.benchmark,
        "metric": diagnosis.metric,
        "verdict": diagnosis.verdict,
        "available": diagnosis.available,
        "missing": diagnosis.missing or None,
        "tool": diagnosis.tool or None,
        "unit": UNIT_SECONDS,
        "measured_change": finite_or_none(diagnosis.measured_change),
        "profiled": {"base": diagnosis.base_total, "head": diagnosis.head_total},
        "wall": {"base": diagnosis.base_wall, "head": diagnosis.head_wall},
        "outside_operators": _outside(diagnosis),
        "explained": finite_or_none(diagnosis.explained),
        "top": [c.operator for c in diagnosis.top()],
        "operators": [_change_to_dict(c) for c in diagnosis.changes],
        "truncated": diagnosis.truncated,
        "new": [c.operator for c in diagnosis.new],
        "vanished": [c.operator for c in diagnosis.vanished],
        "switched": [c.label for c in diagnosis.switched],
        "changed_shapes": [
            {
                "operator": c.operator,
                "added": list(c.added_shapes),
                "removed": list(c.removed_shapes),
            }
            for c in diagnosis.changed_shapes
        ],
        "traces": dict(diagnosis.traces),
        "notes": list(diagnosis.notes),
    }


def _outside(diagnosis: Diagnosis) -> dict[str, Any] | None:
    if diagnosis.outside is None:
        return None
    base, head = (_denoised(value) for value in diagnosis.outside)
    measured = diagnosis.measured_change
    share = (head - base) / measured if measured and measured > 0 and head > base else None
    return {"base": base, "head": head, "increase": head - base, "share": share}


def _seconds(value: float, signed: bool = False) -> str:
    value = _denoised(value)
    text = format_value(abs(value), UNIT_SECONDS)
    if not signed:
        return text
    return ("+" if value >= 0 else "-") + text


def _detail(change: OperatorChange) -> str:
    """Where it happened: onnxruntime node names or torch layers that grew, else the input
    shapes (head's, or base's)."""
    grew = change.nodes or change.layers
    if grew:
        text = ", ".join(f"{n.node} {_seconds(n.increase, signed=True)}" for n in grew)
    elif change.added_shapes:
        text = f"new shape {change.added_shapes[0]}"
    else:
        shapes = change.head_shapes or change.base_shapes
        text = shapes[0] if shapes else ""
    if change.status != "changed":
        text = f"{change.status}{': ' + text if text else ''}"
    return text if len(text) <= _DETAIL_WIDTH else text[: _DETAIL_WIDTH - 3] + "..."


def _headline(diagnosis: Diagnosis) -> str:
    head = f"  {diagnosis.benchmark} {diagnosis.metric} ({diagnosis.verdict})"
    if not diagnosis.available:
        return f"{head}: diagnosis missing: {diagnosis.missing}"
    parts = []
    if diagnosis.measured_change is not None:
        parts.append(f"measured {_seconds(diagnosis.measured_change, signed=True)} per call")
    if diagnosis.explained is not None:
        parts.append(f"the top {TOP} operators explain {diagnosis.explained * 100:.0f}%")
        outside = _outside(diagnosis) or {}
        share = outside.get("share")
        if share is not None and share > diagnosis.explained:
            parts.append(f"outside operators {_seconds(outside['increase'], True)} ({share:.0%})")
    profiled = diagnosis.head_total - diagnosis.base_total
    parts.append(f"profiled {_seconds(profiled, signed=True)} ({diagnosis.tool})")
    return f"{head}: " + "; ".join(parts)


def _table(diagnosis: Diagnosis) -> list[str]:
    header = ("operator", "base", "head", "change", "share", "where")
    rows = [
        (
            c.label,
            _seconds(c.base_time),
            _seconds(c.head_time),
            _seconds(c.increase, signed=True),
            f"{c.share * 100:.0f}%" if c.share is not None else "",
            _detail(c),
        )
        for c in diagnosis.top()
    ]
    if not rows:
        return ["    no operator got slower in the profiles"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "    " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def render_diagnoses(diagnoses: tuple[Diagnosis, ...]) -> str:
    """The terminal's diagnosis section (empty when there is none): per benchmark, the top
    operators by increase of self time per call, new/vanished operators, layers whose kernel
    changed, shape changes, traces."""
    if not diagnoses:
        return ""
    lines = ["", "Diagnosis: where the time went (self time per call, profiled base -> head):"]
    # One reason shared by several benchmarks (pytest-benchmark rows, which perf-gate cannot
    # re-run) is one line, not one per benchmark.
    reasons: dict[str, list[Diagnosis]] = {}
    for diagnosis in diagnoses:
        if not diagnosis.available:
            reasons.setdefault(diagnosis.missing, []).append(diagnosis)
    shared = {reason for reason, group in reasons.items() if len(group) > 1}
    for diagnosis in diagnoses:
        if not diagnosis.available and diagnosis.missing in shared:
            continue
        lines.append(_headline(diagnosis))
        if not diagnosis.available:
            continue
        lines.extend(_table(diagnosis))
        outside = _outside(diagnosis)
        if outside is not None and (outside["base"] or outside["head"]):
            lines.append(
                f"    {outside_label(diagnosis.tool)}: {_seconds(outside['base'])} -> "
                f"{_seconds(outside['head'])} ({_seconds(outside['increase'], signed=True)})"
            )
        changed = [
            f"{label}: {', '.join(c.label for c in group[:TOP])}"
            + (f" (+{len(group) - TOP} more)" if len(group) > TOP else "")
            for label, group in (
                ("new", diagnosis.new),
                ("vanished", diagnosis.vanished),
                ("kernels switched", diagnosis.switched),
                ("shapes changed", diagnosis.changed_shapes),
            )
            if group
        ]
        if changed:
            lines.append("    " + "; ".join(changed))
        if diagnosis.traces:
            traces = ", ".join(f"{side} {path}" for side, path in diagnosis.traces.items())
            lines.append(f"    traces: {traces} (open in {PERFETTO})")
        lines.extend(f"    note: {note}" for note in diagnosis.notes)
    for reason in sorted(shared):
        group = reasons[reason]
        names = ", ".join(f"{d.benchmark} {d.metric}" for d in group[:3])
        more = f" and {len(group) - 3} more" if len(group) > 3 else ""
        lines.append(f"  diagnosis missing for {len(group)} benchmarks ({names}{more}): {reason}")
    return "\n".join(lines)
