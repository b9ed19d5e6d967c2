"""The report as a plain-text table for the terminal and pytest's summary: the report model
(``content.py``, the same one the Markdown report renders), laid out in columns.

Reads verdicts only; the decision was made in decide/compare.py.
"""

from __future__ import annotations

from gate.core.types import GateResult
from gate.report.content import (
    Report,
    ReportRow,
    Tail,
    format_quantity,
    percent,
    report_from,
)
from gate.report.jsonreport import result_to_dict
from gate.units import UNIT_SECONDS, format_value


def as_report(result: GateResult | Report) -> Report:
    """The report model of a decision (a GateResult goes through its comparison.json form)."""
    return result if isinstance(result, Report) else report_from(result_to_dict(result))


def verdict_text(row: ReportRow) -> str:
    text = row.verdict
    if row.advisory and row.verdict in ("regression", "improvement"):
        text += " (advisory)"
    return text


def change_text(row: ReportRow) -> str:
    """The change and its interval, with the examples that flipped for quality metrics."""
    if row.flips is None:
        return row.change
    to_wrong, to_right = row.flips
    return f"{row.change} ({to_wrong} flipped to wrong, {to_right} to right)"


def headline(result: GateResult | Report, *, saving: bool = False) -> str:
    """One line: the gate's answer and the counts that led to it (the Markdown report's
    counts). ``saving``: the run records the baseline (and exits 0), so the line says so
    rather than "FAILED"."""
    report = as_report(result)
    summary = report.counts or "nothing measured"
    if saving:
        warning = "; without --save this run would fail" if report.exit_code == 1 else ""
        return f"perf-gate: recording the baseline ({summary}{warning})"
    if report.exit_code == 1:
        return f"perf-gate: FAILED: {summary}"
    if report.exit_code == 3:
        return f"perf-gate: ERROR: {summary}"
    if not report.has_baseline:
        return f"perf-gate: passed, no baseline yet ({summary})"
    return f"perf-gate: passed: {summary}"


def _columns(header: tuple[str, ...], rows: list[tuple[str, ...]], indent: str = "") -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [indent + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append(indent + "  ".join("-" * w for w in widths))
    lines.extend(
        indent + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows
    )
    return [line.rstrip() for line in lines]


MISSING_ROWS_SHOWN = 3  # more baseline rows than this left unmeasured: one line instead


def render_table(
    result: GateResult | Report, *, show_unchanged: bool = True, saving: bool = False
) -> str:
    """The headline, the table and the notes (environment differences, warnings, how-to);
    ``saving`` when this run records the baseline."""
    report = as_report(result)
    header = ("benchmark", "metric", "baseline", "current", "change [CI]", "mode", "mde", "verdict")
    rows: list[tuple[str, ...]] = []
    previous: ReportRow | None = None
    # baseline rows this run did not measure (a subset of the tests selected): a line, not rows
    unmeasured = [r for r in report.rows if r.verdict == "missing"]
    collapse = len(unmeasured) > MISSING_ROWS_SHOWN
    for row in report.rows:
        if not show_unchanged and row.verdict == "unchanged":
            continue
        if collapse and row.verdict == "missing":
            continue
        note = row.note if row.verdict != "unchanged" else ""
        if (
            row.verdict == "error"
            and previous is not None
            and (previous.benchmark, previous.verdict, previous.note)
            == (row.benchmark, row.verdict, row.note)
        ):
            note = "as above"  # a failed benchmark's message once, not on each of its metrics
        rows.append(
            (
                row.benchmark,
                row.metric,
                format_quantity(row.baseline, row.unit) if row.baseline is not None else "-",
                format_quantity(row.current, row.unit) if row.current is not None else "-",
                change_text(row),
                row.mode,
                percent(row.mde).lstrip("+") if row.mode and row.mde is not None else "",
                verdict_text(row) + (f": {note}" if note else ""),
            )
        )
        previous = row
    lines = [headline(report, saving=saving), ""]
    if rows:
        lines.extend(_columns(header, rows))
    if collapse:
        names = sorted({r.benchmark for r in unmeasured})
        shown = ", ".join(names[:MISSING_ROWS_SHOWN])
        more = (
            f" and {len(names) - MISSING_ROWS_SHOWN} more"
            if len(names) > MISSING_ROWS_SHOWN
            else ""
        )
        lines.append(
            f"{len(unmeasured)} baseline rows of {len(names)} benchmark(s) were not measured in "
            f"this run (not selected, or gone from the code): {shown}{more}"
        )
    if report.tails:
        lines.append("")
        lines.append("Tail latency (report only, not gated):")
        lines.extend(f"  {tail_line(t)}" for t in report.tails)
    if report.variants:
        lines.append("")
        lines.extend(variant_table(report))
    notes = []
    if not report.has_baseline and not saving:
        notes.append(
            "No baseline yet: every result is new. Record one with `pytest --perf-gate "
            "--perf-gate-save` or `perf-gate run --save`."
        )
    if report.environment:
        differences = "; ".join(
            f"{key}: {old!r} -> {new!r}" for key, old, new in report.environment
        )
        notes.append(
            f"Baseline measured in a different environment ({environment_effect(report)}): "
            f"{differences}."
        )
    notes.extend(f"Note: {n}" for n in report.notes)
    notes.extend(f"Warning: {w}" for w in report.warnings)
    if report.has_baseline and report.alpha is not None:
        notes.append(
            "Change = current/baseline - 1 from per-process values (stored: Welch on logs; ab, "
            "parallel, duet: paired per-round ratios) [simultaneous "
            f"{(1 - report.alpha) * 100:g}% interval]; mde = smallest change this run could "
            "detect (80% power). A regression needs its interval to exclude no change "
            f"(alpha={report.alpha:g} for the run) and a change beyond the threshold; memory is "
            "judged by its probes' spread, cold start is advisory."
        )
    if notes:
        lines.append("")
        lines.extend(notes)
    return "\n".join(lines)


def tail_line(tail: Tail) -> str:
    """``m[torch] mean / p90 / p99: 1.1 ms / 1.3 ms / 2 ms -> ... (1000 calls)``."""

    def values(*numbers: float | None) -> str | None:
        if any(n is None for n in numbers):
            return None
        return " / ".join(format_value(n, UNIT_SECONDS) for n in numbers if n is not None)

    if tail.current[0] is not None:
        label = "mean / p90 / p99"
        before, now = values(*tail.baseline), values(*tail.current)
    else:
        label = "p90 / p99"
        before, now = values(*tail.baseline[1:]), values(*tail.current[1:])
    change = f"{before} -> {now}" if before else now
    return f"{tail.benchmark} {label}: {change} ({tail.calls} calls)"


def environment_effect(report: Report) -> str:
    """What the other environment did to this run's timing verdicts, from their notes."""
    notes = [row.note for row in report.rows]
    if any("timing not compared" in note for note in notes):
        return "environment key differs: stored timings not compared"
    if any("timing verdict advisory" in note for note in notes):
        return "environment key differs: timings advisory"
    return "environment key differs; no timing was compared with it"


def variant_table(result: GateResult | Report) -> list[str]:
    """What each variant costs, as in the Markdown report: quality beside the reference's,
    latency and memory (x the reference's), parity."""
    table = as_report(result).variants
    if table is None:
        return []
    header = ("variant", "reference", *table.metrics, "latency", "memory", "parity")
    rows = []
    for v in table.rows:
        parity = "-"
        if v.parity is not None:
            parity = ("FAIL: " if v.parity.failed else "ok: ") + v.parity.summary
            parity += "".join(f"; {label}{text}" for label, text in v.parity.details)
        rows.append((v.benchmark, v.reference, *v.quality, v.latency, v.memory, parity))
    return [
        "What each variant costs (quality from the eval set, latency median, memory.inference):",
        *_columns(header, rows, indent="  "),
    ]
