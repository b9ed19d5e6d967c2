"""The diagnosis's view: comparison.json's ``diagnosis`` list -> headlines, operator rows and lines.

Like view.py, it reads the dict defensively and returns Markdown text already escaped where it
holds untrusted parts (operator, shape and node names, file paths).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gate.core.diagnosis import TOP
from gate.report.content import SEVERITY, number, percent
from gate.report.diagnosis import NOISE, outside_label
from gate.report.escape import TEXT_LIMIT, escape_text, safe
from gate.report.view import VERDICT_LABELS
from gate.units import UNIT_SECONDS, format_value

if TYPE_CHECKING:
    from markupsafe import Markup

# The diagnosis: where the time of a regressed benchmark went (comparison.json's "diagnosis").
PROFILES_ARTIFACT = "perf-gate-profiles"  # the artifact action.yml uploads .perf-gate/profiles as
SHAPES_SHOWN = 2  # added and removed input shapes per operator
NODES_SHOWN = 3  # onnxruntime nodes per operator (comparison.json keeps up to 3)
NOTES_SHOWN = 5
SHAPE_LIMIT = 80  # characters of one shape or node name


@dataclass(frozen=True, kw_only=True)
class OperatorRow:
    operator: Markup
    where: Markup
    base: Markup
    head: Markup
    increase: Markup
    share: Markup


@dataclass(frozen=True, kw_only=True)
class DiagnosisView:
    """One diagnosed benchmark: a visible headline; the operators and lines go in a fold."""

    headline: Markup
    available: bool
    rows: tuple[OperatorRow, ...]
    lines: tuple[Markup, ...]
    traced: bool
    severity: int
    magnitude: float


def seconds(value: float, signed: bool = False) -> str:
    """``8 us``; signed: ``+17 us``, ``-570 ns`` (below a picosecond: float noise, ``0 ns``)."""
    value = 0.0 if abs(value) < NOISE else value
    text = format_value(abs(value), UNIT_SECONDS)
    return ("+" if value >= 0 else "-") + text if signed else text


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _names(values: list[str], limit: int = TOP) -> str:
    text = ", ".join(escape_text(v) for v in values[:limit])
    return text + (f" (+{len(values) - limit} more)" if len(values) > limit else "")


def _share(value: float | None) -> str:
    return f"{value * 100:.0f}%" if value is not None else ""


def _label(operator: Mapping[str, Any]) -> str:
    """The operator, and the layer where the row is one layer's (a switched kernel)."""
    module = operator.get("module")
    name = str(operator.get("operator", ""))
    return f"{name} in {module}" if isinstance(module, str) and module else name


def _grew(operator: Mapping[str, Any], key: str, name: str) -> str:
    """``nodes A +3 us, B +1 us`` from comparison.json's ``nodes`` or ``layers`` list."""
    shown: list[str] = []
    for entry in operator.get(key) or ():
        if not isinstance(entry, Mapping) or len(shown) == NODES_SHOWN:
            continue
        increase = number(entry.get("increase"))
        change = f" {seconds(increase, signed=True)}" if increase is not None else ""
        shown.append(f"{escape_text(entry.get(name, ''), SHAPE_LIMIT)}{change}")
    return f"{key} " + ", ".join(shown) if shown else ""


def _where(operator: Mapping[str, Any]) -> str:
    """Input shapes only one side ran, the onnxruntime nodes or torch layers that grew, and
    for a layer whose kernel changed, that its times are the layer's."""
    parts = []
    if operator.get("status") == "switched":
        parts.append("kernel switched: the layer's operators in total")
    for key, label in (("added_shapes", "added"), ("removed_shapes", "removed")):
        shapes = _strings(operator.get(key))
        for shape in shapes[:SHAPES_SHOWN]:
            parts.append(f"{label} {escape_text(shape, SHAPE_LIMIT)}")
        if len(shapes) > SHAPES_SHOWN:
            parts.append(f"{label} {len(shapes) - SHAPES_SHOWN} more")
    parts.extend((_grew(operator, "nodes", "node"), _grew(operator, "layers", "layer")))
    return "<br>".join(part for part in parts if part)


def _time_cell(value: float | None, absent: bool) -> str:
    return "–" if absent or value is None else seconds(value)


def _operator_row(operator: Mapping[str, Any]) -> OperatorRow:
    status = operator.get("status")
    increase = number(operator.get("increase"))
    name = escape_text(_label(operator))
    if status in ("new", "vanished"):
        name += f" ({status})"
    return OperatorRow(
        operator=safe(name),
        where=safe(_where(operator)),
        base=safe(_time_cell(number(operator.get("base_time")), status == "new")),
        head=safe(_time_cell(number(operator.get("head_time")), status == "vanished")),
        increase=safe(seconds(increase, signed=True) if increase is not None else ""),
        share=safe(_share(number(operator.get("share")))),
    )


def _top(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The operators comparison.json names in ``top`` (the largest increases), in that order;
    else the first ones that got slower. A name can stand for several rows (one layer's switch
    and another's, the same two kernels): each name takes the next row of that name."""
    operators = [o for o in entry.get("operators") or () if isinstance(o, Mapping)]
    named = _strings(entry.get("top"))
    if named:
        rows: dict[str, list[Mapping[str, Any]]] = {}
        for o in operators:
            rows.setdefault(str(o.get("operator")), []).append(o)
        chosen = [rows[n].pop(0) for n in named if rows.get(n)]
    else:
        chosen = [o for o in operators if (number(o.get("increase")) or 0.0) > 0]
    return chosen[:TOP]


def _pair(value: object) -> tuple[float, float] | None:
    if not isinstance(value, Mapping):
        return None
    base, head = number(value.get("base")), number(value.get("head"))
    return (base, head) if base is not None and head is not None else None


def _headline(entry: Mapping[str, Any], comparison: Mapping[str, Any] | None) -> str:
    verdict = str(entry.get("verdict"))
    name = (
        f"**{escape_text(entry.get('benchmark', ''))} {escape_text(entry.get('metric', ''), 40)}**"
    )
    head = f"{name} ({VERDICT_LABELS.get(verdict, escape_text(verdict, 30))})"
    if entry.get("available") is not True:
        reason = entry.get("missing") or "no reason given"
        return f"{head}: no diagnosis: {escape_text(reason, 3 * TEXT_LIMIT)}"
    parts = []
    measured = number(entry.get("measured_change"))
    if measured is not None:
        relative = number(comparison.get("relative_change")) if comparison else None
        parts.append(
            f"measured {seconds(measured, signed=True)} per call"
            + (f" ({percent(relative)})" if relative is not None else "")
        )
    top = _top(entry)
    explained = number(entry.get("explained"))
    if top:
        if explained is not None:
            noun = (
                "the top operator explains"
                if len(top) == 1
                else f"the top {len(top)} operators explain"
            )
            parts.append(f"{noun} {_share(explained)}")
        first = top[0]
        share = number(first.get("share"))
        parts.append(
            f"largest: {escape_text(_label(first))} "
            f"{seconds(number(first.get('increase')) or 0.0, signed=True)}"
            + (f" ({_share(share)})" if share is not None else "")
        )
    else:
        parts.append("no operator got slower in the profiles")
    outside = entry.get("outside_operators")
    beyond = number(outside.get("share")) if isinstance(outside, Mapping) else None
    if explained is not None and beyond is not None and beyond > explained:
        parts.append(f"outside operators {_share(beyond)}")  # where the change went instead
    return f"{head}: " + "; ".join(parts)


def _artifact_path(path: str) -> str:
    """Where a trace is inside the artifact: ``<benchmark folder>/<side>.json``."""
    return "/".join(path.replace("\\", "/").split("/")[-2:])


def _lines(entry: Mapping[str, Any]) -> list[str]:
    lines = []
    profiled = _pair(entry.get("profiled"))
    if profiled is not None:
        base, head = profiled
        tool = entry.get("tool")
        by = f" with {escape_text(tool, 40)}" if isinstance(tool, str) and tool else ""
        lines.append(
            f"profiled{by}: {seconds(base)} → {seconds(head)} per call "
            f"({seconds(head - base, signed=True)}) in all operators"
        )
    outside = entry.get("outside_operators")
    pair = _pair(outside)
    if pair is not None and max(abs(v) for v in pair) >= NOISE:
        base, head = pair
        share = number(outside.get("share")) if isinstance(outside, Mapping) else None
        of = f", {_share(share)} of the change" if share is not None else ""
        lines.append(
            f"{outside_label(entry.get('tool'))}: {seconds(base)} → "
            f"{seconds(head)} ({seconds(head - base, signed=True)}{of})"
        )
    shapes = [
        str(c.get("operator"))
        for c in entry.get("changed_shapes") or ()
        if isinstance(c, Mapping) and isinstance(c.get("operator"), str)
    ]
    for label, names in (
        ("new operators", _strings(entry.get("new"))),
        ("vanished operators", _strings(entry.get("vanished"))),
        ("kernels switched", _strings(entry.get("switched"))),
        ("input shapes changed", shapes),
    ):
        if names:
            lines.append(f"{label}: {_names(names)}")
    notes = _strings(entry.get("notes"))
    lines.extend(f"note: {escape_text(n, 3 * TEXT_LIMIT)}" for n in notes[:NOTES_SHOWN])
    if len(notes) > NOTES_SHOWN:
        lines.append(f"…and {len(notes) - NOTES_SHOWN} more notes in comparison.json")
    traces = entry.get("traces")
    if isinstance(traces, Mapping):
        shown = [
            f"{escape_text(_artifact_path(path))} ({escape_text(side, 10)})"
            for side, path in traces.items()
            if isinstance(path, str) and path
        ]
        if shown:
            lines.append(f"traces in the `{PROFILES_ARTIFACT}` artifact: " + ", ".join(shown))
    return lines


def diagnosis_views(data: Mapping[str, Any]) -> list[DiagnosisView]:
    """The diagnosed benchmarks, worst verdict and largest change first; missing diagnoses
    keep their reason."""
    comparisons = {
        (str(c.get("benchmark")), str(c.get("metric"))): c
        for c in data["comparisons"]
        if isinstance(c, Mapping)
    }
    views = []
    for entry in data.get("diagnosis") or ():
        if not isinstance(entry, Mapping):
            continue
        comparison = comparisons.get((str(entry.get("benchmark")), str(entry.get("metric"))))
        available = entry.get("available") is True
        verdict = str(entry.get("verdict"))
        relative = number(comparison.get("relative_change")) if comparison else None
        lines = _lines(entry) if available else []
        traces = entry.get("traces")
        views.append(
            DiagnosisView(
                headline=safe(_headline(entry, comparison)),
                available=available,
                rows=tuple(map(_operator_row, _top(entry))) if available else (),
                lines=tuple(safe(line) for line in lines),
                traced=available and isinstance(traces, Mapping) and bool(traces),
                severity=SEVERITY.index(verdict) if verdict in SEVERITY else len(SEVERITY),
                magnitude=abs(relative) if relative is not None else 0.0,
            )
        )
    views.sort(key=lambda v: (v.severity, not v.available, -v.magnitude))
    return views
