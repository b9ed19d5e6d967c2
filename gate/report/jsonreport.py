"""comparison.json: the machine-readable form of a GateResult (format versioned)."""

from __future__ import annotations

import math
from typing import Any

from gate.model import Comparison, GateResult, Verdict

# Format history: 1 (perf-gate 0.1): first version.
FORMAT = 1


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def comparison_to_dict(c: Comparison) -> dict[str, Any]:
    return {
        "benchmark": c.benchmark,
        "metric": c.metric.name,
        "unit": c.metric.unit,
        "direction": c.metric.direction.value,
        "verdict": c.verdict.value,
        "advisory": c.advisory,
        "fails": c.fails,
        "baseline": _number(c.baseline),
        "current": _number(c.current),
        "relative_change": _number(c.relative_change),
        "ci_low": _number(c.ci_low),
        "ci_high": _number(c.ci_high),
        "p_value": _number(c.p_value),
        "significant": c.significant,
        "threshold": c.threshold.describe() if c.threshold else None,
        "mode": c.mode or None,
        "mde": _number(c.mde),
        "n_baseline": c.n_baseline,
        "n_current": c.n_current,
        "note": c.note,
    }


def result_to_dict(result: GateResult) -> dict[str, Any]:
    """The JSON-ready report: exit code, counts, comparisons, environment differences."""
    return {
        "format": FORMAT,
        "exit_code": int(result.exit_code),
        "passed": result.exit_code == 0,
        "has_baseline": result.has_baseline,
        "alpha": result.alpha,
        "counts": {v.value: result.count(v) for v in Verdict},
        "baseline_commit": result.baseline_commit,
        "current_commit": result.current_commit,
        "environment_differences": {
            k: {"baseline": old, "current": new}
            for k, (old, new) in result.environment_differences.items()
        },
        "warnings": list(result.warnings),
        "notes": list(result.notes),
        "errors": [{"benchmark": e.benchmark, "message": e.message} for e in result.errors],
        "comparisons": [comparison_to_dict(c) for c in result.comparisons],
        "tail_latency": [
            {
                "benchmark": t.benchmark,
                "metric": t.metric,
                "gated": False,
                "baseline": {"p90": t.baseline_p90, "p99": t.baseline_p99},
                "current": {"p90": t.current_p90, "p99": t.current_p99},
                "calls": t.calls,
            }
            for t in result.tails
        ],
    }
