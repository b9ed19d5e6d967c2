"""comparison.json: the machine-readable form of a GateResult (format versioned)."""

from __future__ import annotations

import math
from typing import Any

from gate.config.quality import ParityBounds
from gate.core.diagnosis import Diagnosis
from gate.core.types import Comparison, GateResult, TailLatency, VariantSummary, Verdict
from gate.report.diagnosis import diagnosis_to_dict

# Format history: 1 (perf-gate 0.1): first version; later keys (environment_key, diagnosis,
# the tail latency's mean and first_call, environment_label) are additions that readers of
# format 1 may ignore.
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
        "absolute_change": _number(c.absolute_change),
        "absolute_ci": [_number(v) for v in c.absolute_ci] if c.absolute_ci else None,
        "flips": {"to_wrong": c.flips[0], "to_right": c.flips[1]} if c.flips else None,
        "rule": c.rule or None,
    }


def variant_to_dict(v: VariantSummary, reference: str | None) -> dict[str, Any]:
    return {
        "benchmark": v.benchmark,
        "model": v.model,
        "variant": v.variant,
        "reference": reference,
        "quality": dict(v.quality),
        "latency": _number(v.latency),
        "memory": _number(v.memory),
        "parity": _parity(v.parity),
    }


def _parity(parity: Any) -> dict[str, Any] | None:
    if not isinstance(parity, dict):
        return None
    bounds = parity.get("bounds") or {}
    given = {
        key: float(bounds[key])
        for key in ("atol", "rtol", "top1_agreement", "ties")
        if isinstance(bounds.get(key), (int, float))
    }
    return {
        "max_abs_diff": parity.get("max_abs_diff"),
        "mean_abs_diff": parity.get("mean_abs_diff"),
        "top1_agreement": parity.get("top1_agreement"),
        "near_ties": parity.get("near_ties"),
        "verdict": "ok" if parity.get("ok") else "parity-fail",
        "bounds": ParityBounds(**given).describe(ties="ties" in given),
        "reason": parity.get("reason") or None,
    }


def _tail_to_dict(tail: TailLatency) -> dict[str, Any]:
    """Per-call latency of one benchmark, not gated: mean, p90, p99 (seconds), and its first
    call (median over rounds; ``ratio``: its multiple of the median call)."""
    first_call = None
    if tail.first_call is not None:
        first_call = {
            "baseline": tail.baseline_first_call,
            "current": tail.first_call,
            "ratio": _number(tail.first_call_ratio),
        }
    return {
        "benchmark": tail.benchmark,
        "metric": tail.metric,
        "gated": False,
        "baseline": {
            "mean": tail.baseline_mean,
            "p90": tail.baseline_p90,
            "p99": tail.baseline_p99,
        },
        "current": {
            "mean": tail.current_mean,
            "p90": tail.current_p90,
            "p99": tail.current_p99,
        },
        "calls": tail.calls,
        "first_call": first_call,
    }


def result_to_dict(
    result: GateResult,
    *,
    environment_key: str | None = None,
    diagnoses: tuple[Diagnosis, ...] = (),
    environment_label: str | None = None,
) -> dict[str, Any]:
    """The JSON-ready report: exit code, counts, comparisons, environment differences;
    ``environment_key`` is the current run's (shown in the PR report's footer) and
    ``environment_label`` its machine in words (``core.environment_fields.environment_label``:
    the PR report's heading); ``diagnosis`` the operator-level profile diffs of regressed
    benchmarks (docs/diagnosis.md)."""
    return {
        "format": FORMAT,
        "exit_code": int(result.exit_code),
        "passed": result.exit_code == 0,
        "has_baseline": result.has_baseline,
        "alpha": result.alpha,
        "counts": {v.value: result.count(v) for v in Verdict},
        "baseline_commit": result.baseline_commit,
        "current_commit": result.current_commit,
        "environment_key": environment_key,
        "environment_label": environment_label or None,
        "environment_differences": {
            k: {"baseline": old, "current": new}
            for k, (old, new) in result.environment_differences.items()
        },
        "warnings": list(result.warnings),
        "notes": list(result.notes),
        "errors": [{"benchmark": e.benchmark, "message": e.message} for e in result.errors],
        "comparisons": [comparison_to_dict(c) for c in result.comparisons],
        "variants": [
            variant_to_dict(v, (v.parity or {}).get("reference")) for v in result.variants
        ],
        "tail_latency": [_tail_to_dict(t) for t in result.tails],
        "diagnosis": [diagnosis_to_dict(d) for d in diagnoses],
    }
