"""gate.report.markdown: golden files of the PR report, escaping, sizes and the trend input.

The comparison dicts are written by hand in the shape of comparison.json (format 1) plus the
quality keys (absolute_change, flips, rule, variants). Regenerate the golden files after an
intended change with ``PERF_GATE_UPDATE_GOLD=1 pytest tests/unit/test_markdown.py`` and read the
diff before committing it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from gate.core.environment_fields import environment_label
from gate.errors import BaselineError, ConfigError, PublishError
from gate.report.escape import escape_html, escape_text
from gate.report.markdown import (
    COMMENT_LIMIT,
    ReportOptions,
    check_comparison,
    comment_digest,
    marker,
    render_comment,
    render_summary,
    utf16_length,
    verdict_digest,
    verdicts_line,
)
from gate.report.trend import TrendPoint, TrendSeries, trend_from_json

GOLD = Path(__file__).resolve().parents[1] / "gold"
NBSP = "\u00a0"
REGRESSION = f"🔴{NBSP}regression"  # an emoji stays on its word's line
BASE = "3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39"
HEAD = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"


def timing(
    benchmark: str,
    verdict: str,
    baseline: float,
    current: float,
    *,
    metric: str = "latency",
    unit: str = "s",
    direction: str = "lower",
    low: float | None = None,
    high: float | None = None,
    mode: str = "ab",
    mde: float = 0.021,
    **extra: Any,
) -> dict[str, Any]:
    change = current / baseline - 1
    item: dict[str, Any] = {
        "benchmark": benchmark,
        "metric": metric,
        "unit": unit,
        "direction": direction,
        "verdict": verdict,
        "advisory": False,
        "fails": verdict in ("regression", "over-budget", "parity-fail", "error"),
        "baseline": baseline,
        "current": current,
        "relative_change": change,
        "ci_low": change - 0.02 if low is None else low,
        "ci_high": change + 0.02 if high is None else high,
        "p_value": 0.001,
        "significant": verdict in ("regression", "improvement"),
        "threshold": "5%",
        "mode": mode,
        "mde": mde,
        "n_baseline": 8,
        "n_current": 8,
        "note": "",
    }
    item.update(extra)
    return item


def report(comparisons: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for item in comparisons:
        counts[item["verdict"]] = counts.get(item["verdict"], 0) + 1
    fails = any(c["fails"] for c in comparisons if c["verdict"] != "error")
    errors = any(c["verdict"] == "error" for c in comparisons)
    data: dict[str, Any] = {
        "format": 1,
        "exit_code": 1 if fails else 3 if errors else 0,
        "passed": not fails and not errors,
        "has_baseline": True,
        "alpha": 0.01,
        "counts": counts,
        "baseline_commit": BASE,
        "current_commit": HEAD,
        "environment_key": "5d41402abc4b",
        "environment_label": "cpu-x86_64",
        "environment_differences": {},
        "warnings": [],
        "notes": [],
        "errors": [],
        "comparisons": comparisons,
        "tail_latency": [],
    }
    data.update(extra)
    return data


def all_unchanged() -> dict[str, Any]:
    return report(
        [
            timing("digits-mlp[torch]", "unchanged", 0.000412, 0.000409),
            timing("digits-mlp[onnxruntime]", "unchanged", 0.000101, 0.000102, mode="duet"),
            timing(
                "digits-mlp[torch]",
                "unchanged",
                61200.0,
                61500.0,
                metric="throughput@32",
                unit="items/s",
                direction="higher",
            ),
        ]
    )


def regressions() -> dict[str, Any]:
    return report(
        [
            timing("digits-mlp[onnxruntime]", "unchanged", 0.000101, 0.000102, mode="duet"),
            timing("digits-mlp[torch]", "regression", 0.000412, 0.000531, low=0.22, high=0.36),
            timing("digits-mlp[torch-int8]", "regression", 0.000300, 0.000335, low=0.07, high=0.16),
            timing(
                "digits-mlp[torch]",
                "improvement",
                61200.0,
                70100.0,
                metric="throughput@32",
                unit="items/s",
                direction="higher",
            ),
            timing(
                "test_tokenizer",
                "inconclusive",
                0.0021,
                0.00219,
                low=-0.03,
                high=0.11,
                note="interval too wide after 24 rounds",
            ),
            timing(
                "digits-mlp[onnxruntime-int8]",
                "inconclusive",
                0.0004,
                0.00043,
                low=-1.0,
                high=12.0,
                mode="parallel",
                mde=0.042,
                note="interval too wide after 6 rounds",
            ),
            timing(
                "digits-mlp[torch]",
                "regression",
                2_400_000.0,
                3_360_000.0,
                metric="model_size",
                unit="B",
                mode="",
                mde=None,
                low=0.4,
                high=0.4,
            ),
            timing(
                "test_bench_sort",
                "regression",
                0.0011,
                0.0013,
                mode="",
                mde=float("nan"),
                advisory=True,
                fails=False,
                note="pytest-benchmark rounds in one process",
            ),
            {
                "benchmark": "digits-mlp[torch-compile]",
                "metric": "latency",
                "unit": "s",
                "direction": "lower",
                "verdict": "new",
                "advisory": False,
                "fails": False,
                "baseline": None,
                "current": 0.00038,
                "relative_change": None,
                "ci_low": None,
                "ci_high": None,
                "mode": None,
                "mde": None,
                "note": "",
            },
            {
                "benchmark": "digits-mlp[torch-bf16]",
                "metric": "latency",
                "unit": "s",
                "direction": "lower",
                "verdict": "missing",
                "advisory": False,
                "fails": False,
                "baseline": 0.0009,
                "current": None,
                "relative_change": None,
                "ci_low": None,
                "ci_high": None,
                "mode": None,
                "mde": None,
                "note": "not measured",
            },
        ]
    )


def no_baseline() -> dict[str, Any]:
    new = [
        {
            "benchmark": name,
            "metric": "latency",
            "unit": "s",
            "direction": "lower",
            "verdict": "new",
            "advisory": False,
            "fails": False,
            "baseline": None,
            "current": value,
            "relative_change": None,
            "ci_low": None,
            "ci_high": None,
            "mode": None,
            "mde": None,
            "note": "",
        }
        for name, value in (("digits-mlp[torch]", 0.00041), ("digits-mlp[onnxruntime]", 0.0001))
    ]
    return report(new, has_baseline=False, baseline_commit=None)


def over_budget() -> dict[str, Any]:
    budget = {
        "benchmark": "digits-mlp[onnxruntime]",
        "metric": "latency.p99",
        "unit": "s",
        "direction": "lower",
        "verdict": "over-budget",
        "advisory": False,
        "fails": True,
        "baseline": None,
        "current": 0.0031,
        "relative_change": None,
        "ci_low": None,
        "ci_high": None,
        "mode": None,
        "mde": None,
        "note": "budget 2ms",
    }
    memory = dict(
        budget,
        benchmark="digits-mlp[torch]",
        metric="memory.peak",
        unit="B",
        current=712_000_000.0,
        note="budget 600MB",
    )
    return report(
        [timing("digits-mlp[onnxruntime]", "unchanged", 0.000101, 0.000102), budget, memory]
    )


def quality(
    benchmark: str,
    metric: str,
    verdict: str,
    baseline: float,
    current: float,
    **extra: Any,
) -> dict[str, Any]:
    unit = "fraction" if metric in ("accuracy", "top5", "f1_macro") else ""
    item = {
        "benchmark": benchmark,
        "metric": metric,
        "unit": unit,
        "direction": "higher" if unit else "lower",
        "verdict": verdict,
        "advisory": False,
        "fails": verdict in ("regression", "parity-fail"),
        "baseline": baseline,
        "current": current,
        "relative_change": current / baseline - 1,
        "ci_low": None,
        "ci_high": None,
        "mode": None,
        "mde": None,
        "note": "",
        "absolute_change": current - baseline,
        "flips": None,
    }
    item.update(extra)
    return item


def accuracy_parity() -> dict[str, Any]:
    comparisons = [
        quality(
            "digits-mlp[torch-int8]",
            "accuracy",
            "accepted-trade-off",
            0.9722,
            0.9694,
            flips={"to_wrong": 3, "to_right": 2},
            rule="accuracy may drop up to 0.5pt when latency improves by at least 20%",
        ),
        quality(
            "digits-mlp[onnxruntime-int8]",
            "accuracy",
            "regression",
            0.9722,
            0.9528,
            flips={"to_wrong": 9, "to_right": 2},
            absolute_ci=[-0.0291, -0.0097],
        ),
        quality("digits-mlp[onnxruntime-int8]", "mae", "unchanged", 0.121, 0.122),
        {
            "benchmark": "digits-mlp[onnxruntime-int8]",
            "metric": "parity",
            "unit": "",
            "direction": "lower",
            "verdict": "parity-fail",
            "advisory": False,
            "fails": True,
            "baseline": None,
            "current": 0.31,
            "relative_change": None,
            "ci_low": None,
            "ci_high": None,
            "mode": None,
            "mde": None,
            "note": "max abs diff 0.31 > 0.05 against digits-mlp[onnxruntime]",
        },
        timing("digits-mlp[torch-int8]", "improvement", 0.000412, 0.000301),
    ]
    variants = [
        {
            "benchmark": "digits-mlp[torch]",
            "model": "digits-mlp",
            "variant": "torch",
            "reference": None,
            "quality": {"accuracy": 0.9722, "mae": 0.121},
            "latency": 0.000412,
            "memory": 301_000_000.0,
            "parity": None,
        },
        {
            "benchmark": "digits-mlp[torch-int8]",
            "model": "digits-mlp",
            "variant": "torch-int8",
            "reference": "digits-mlp[torch]",
            "quality": {"accuracy": 0.9694, "mae": 0.124},
            "latency": 0.000301,
            "memory": 288_000_000.0,
            "parity": {
                "max_abs_diff": 0.012,
                "mean_abs_diff": 0.0011,
                "top1_agreement": 0.9944,
                "verdict": "ok",
                "bounds": "max abs diff <= 0.05, top-1 agreement >= 99%",
            },
        },
        {
            "benchmark": "digits-mlp[onnxruntime-int8]",
            "model": "digits-mlp",
            "variant": "onnxruntime-int8",
            "reference": "digits-mlp[torch]",
            "quality": {"accuracy": 0.9528, "mae": 0.122},
            "latency": 0.000090,
            "memory": None,
            "parity": {
                "max_abs_diff": 0.31,
                "mean_abs_diff": 0.02,
                "top1_agreement": 0.9611,
                "verdict": "parity-fail",
                "bounds": "max abs diff <= 0.05, top-1 agreement >= 99%",
            },
        },
    ]
    return report(comparisons, variants=variants)


def environment_mismatch() -> dict[str, Any]:
    return report(
        [timing("digits-mlp[torch]", "unchanged", 0.000412, 0.000409, mode="stored")],
        environment_differences={
            "cpu_model": {"baseline": "AMD EPYC 7763 64-Core Processor", "current": "Intel Xeon"},
            "threads": {"baseline": 1, "current": 2},
        },
        warnings=["comparing timings across environments; consider ab mode"],
    )


def many(count: int = 1000) -> dict[str, Any]:
    """``count`` benchmarks: a few regressions and improvements among many unchanged."""
    comparisons = []
    for index in range(count):
        name = f"model-{index:04d}[onnxruntime-int8]"
        if index % 97 == 0:
            comparisons.append(timing(name, "regression", 0.001, 0.001 * (1.1 + index / 10000)))
        elif index % 89 == 0:
            comparisons.append(timing(name, "improvement", 0.001, 0.0008))
        else:
            comparisons.append(timing(name, "unchanged", 0.001, 0.001 * (1 + (index % 7) / 1000)))
    return report(comparisons)


HOSTILE = (
    "evil|name\n## heading <script>alert(1)</script> @octocat #1 "
    "[click](https://evil.example) www.evil.example <!-- perf-gate:comment name=main --> `code`"
)


def hostile_names() -> dict[str, Any]:
    return report(
        [
            timing(HOSTILE, "regression", 0.001, 0.002, metric="latency|<b>x</b>"),
            timing("@team please look", "unchanged", 0.001, 0.001),
        ],
        errors=[{"benchmark": "- [x] <img src=x onerror=alert(1)>", "message": "line1\nline2"}],
        environment_differences={"gpu": {"baseline": "<b>A100</b>", "current": "@nvidia"}},
        notes=["note with **bold** and ](javascript:alert(1))"],
    )


def hostile_trend() -> tuple[TrendSeries, ...]:
    """The hostile benchmark's latency over two baselines: its name goes into a <summary>."""
    points = (
        TrendPoint(commit="1a2b3c4d5e6f", date="2026-11-02", value=0.001),
        TrendPoint(commit=BASE, date="2026-11-09", value=0.001),
    )
    return (TrendSeries(benchmark=HOSTILE, metric="latency", unit="s", points=points),)


US = 1e-6
HOSTILE_OPERATOR = (
    "evil|op` <img src=x onerror=alert(1)> @octocat #1 </details> "
    "<!-- perf-gate:comment name=main --> [x](https://evil.example) (tests/test_pipeline.py)"
)


def operator(
    name: str,
    base_us: float,
    head_us: float,
    measured_us: float,
    *,
    status: str = "changed",
    shapes: tuple[str, ...] = (),
    added: tuple[str, ...] = (),
    removed: tuple[str, ...] = (),
    nodes: tuple[tuple[str, float, float], ...] = (),
) -> dict[str, Any]:
    """One entry of a diagnosis's ``operators`` (times in microseconds per call here)."""
    increase = (head_us - base_us) * US
    return {
        "operator": name,
        "status": status,
        "base_time": base_us * US,
        "head_time": head_us * US,
        "increase": increase,
        "share": increase / (measured_us * US) if increase > 0 else None,
        "base_calls": 0.0 if status == "new" else 1.0,
        "head_calls": 0.0 if status == "vanished" else 1.0,
        "base_shapes": [*removed, *shapes] if status != "new" else [],
        "head_shapes": [*added, *shapes] if status != "vanished" else [],
        "added_shapes": list(added),
        "removed_shapes": list(removed),
        "nodes": [
            {"node": n, "base_time": b * US, "head_time": h * US, "increase": (h - b) * US}
            for n, b, h in nodes
        ],
    }


def diagnosis(
    benchmark: str,
    tool: str,
    measured_us: float,
    operators: list[dict[str, Any]],
    *,
    wall: tuple[float, float] | None = None,
    folder: str | None = None,
    notes: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A diagnosis entry as gate/report/diagnosis.py writes it into comparison.json."""
    top = [o for o in operators if o["increase"] > 0][:5]
    base = sum(o["base_time"] for o in operators)
    head = sum(o["head_time"] for o in operators)
    outside = None
    if wall is not None:
        outside_base, outside_head = wall[0] * US - base, wall[1] * US - head
        grew = outside_head - outside_base
        outside = {
            "base": outside_base,
            "head": outside_head,
            "increase": grew,
            "share": grew / (measured_us * US) if grew > 0 else None,
        }
    traces = folder or benchmark
    return {
        "benchmark": benchmark,
        "metric": "latency",
        "verdict": "regression",
        "available": True,
        "missing": None,
        "tool": tool,
        "unit": "s",
        "measured_change": measured_us * US,
        "profiled": {"base": base, "head": head},
        "wall": {"base": None, "head": None}
        if wall is None
        else {"base": wall[0] * US, "head": wall[1] * US},
        "outside_operators": outside,
        "explained": sum(o["increase"] for o in top) / (measured_us * US),
        "top": [o["operator"] for o in top],
        "operators": operators,
        "truncated": 0,
        "new": [o["operator"] for o in operators if o["status"] == "new"],
        "vanished": [o["operator"] for o in operators if o["status"] == "vanished"],
        "changed_shapes": [
            {"operator": o["operator"], "added": o["added_shapes"], "removed": o["removed_shapes"]}
            for o in operators
            if o["added_shapes"] or o["removed_shapes"]
        ],
        "traces": {
            "base": f".perf-gate/profiles/{traces}/base.json",
            "head": f".perf-gate/profiles/{traces}/head.json",
        },
        "notes": list(notes),
    }


def missing_diagnosis(benchmark: str, reason: str) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "metric": "latency",
        "verdict": "regression",
        "available": False,
        "missing": reason,
        "tool": None,
        "unit": "s",
        "measured_change": None,
        "profiled": {"base": 0.0, "head": 0.0},
        "wall": {"base": None, "head": None},
        "outside_operators": None,
        "explained": None,
        "top": [],
        "operators": [],
        "truncated": 0,
        "new": [],
        "vanished": [],
        "changed_shapes": [],
        "traces": {},
        "notes": [],
    }


def torch_diagnosis(
    benchmark: str = "digits-mlp[torch]", measured_us: float = 119
) -> dict[str, Any]:
    """One more nn.Linear(256, 256) with a GELU, and the dropout gone."""
    return diagnosis(
        benchmark,
        "torch.profiler",
        measured_us,
        [
            operator(
                "aten::addmm",
                61.2,
                158.4,
                measured_us,
                shapes=("[1, 64], [64, 256]",),
                added=("[256], [1, 256], [256, 256]",),
            ),
            operator("aten::gelu", 0, 6.1, measured_us, status="new", shapes=("[1, 256]",)),
            operator("aten::linear", 3.4, 6.9, measured_us, shapes=("[1, 64], [256, 64]",)),
            operator("aten::t", 1.3, 2.6, measured_us, shapes=("[256, 64]",)),
            operator("aten::relu", 2.2, 3.3, measured_us, shapes=("[1, 256]",)),
            operator("aten::copy_", 1.1, 1.6, measured_us),
            operator("aten::dropout", 2.4, 0, measured_us, status="vanished"),
        ],
        wall=(84.0, 196.5),
    )


def diagnosed() -> dict[str, Any]:
    """Three timing regressions: torch and onnxruntime diagnosed, a perf test diagnosed with
    cProfile (an operator name from the test's code, hostile), int8 without a diagnosis."""
    measured_ort = 16.3
    measured_test = 410.0
    return report(
        [
            timing("digits-mlp[torch]", "regression", 0.000412, 0.000531, low=0.22, high=0.36),
            timing("digits-mlp[onnxruntime]", "regression", 0.000101, 0.0001173, mode="duet"),
            timing("digits-mlp[torch-int8]", "regression", 0.000300, 0.000335, low=0.07, high=0.16),
            timing("tests/test_pipeline.py::test_tokenize", "regression", 0.0021, 0.00251),
            timing("digits-mlp[onnxruntime-int8]", "unchanged", 0.00009, 0.000091, mode="duet"),
        ],
        diagnosis=[
            torch_diagnosis(),
            diagnosis(
                "digits-mlp[onnxruntime]",
                "onnxruntime",
                measured_ort,
                [
                    operator(
                        "MatMul",
                        31.0,
                        44.5,
                        measured_ort,
                        shapes=("[1, 64], [64, 256]",),
                        added=("[1, 256], [256, 256]",),
                        nodes=(("/fc2/MatMul", 0, 12.9), ("/fc1/MatMul", 31.0, 31.6)),
                    ),
                    operator("Gelu", 0, 1.9, measured_ort, status="new"),
                    operator("Add", 4.1, 5.0, measured_ort),
                ],
                wall=(98.8, 116.9),
                notes=("onnxruntime's own cost per node (2.9 us) was subtracted from every node",),
            ),
            missing_diagnosis(
                "digits-mlp[torch-int8]",
                "profiling the base revision failed: RuntimeError: quantized engine "
                "'qnnpack' is not available",
            ),
            diagnosis(
                "tests/test_pipeline.py::test_tokenize",
                "cProfile",
                measured_test,
                [
                    operator(
                        HOSTILE_OPERATOR,
                        12.0,
                        361.0,
                        measured_test,
                        added=("[1, 2]|<script>alert(1)</script> @team",),
                        nodes=(("@team/`MatMul`|</td>", 0, 3.0),),
                    ),
                    operator("normalize (tests/pipeline.py)", 80.0, 112.0, measured_test),
                    operator(
                        "<lambda> (tests/pipeline.py)", 10.0, 0.0, measured_test, status="vanished"
                    ),
                ],
                folder="tests_test_pipeline.py__test_tokenize-1a2b3c4d",
            ),
        ],
    )


def dependency_upgrade() -> dict[str, Any]:
    """A pull request that upgrades onnxruntime, its base side measured in the base revision's
    own environment (``base_run.dependencies_block``), and a package name written to break the
    table."""
    return report(
        [
            timing("digits-mlp[onnxruntime]", "regression", 0.000101, 0.000131, mode="ab"),
            timing("digits-mlp[torch]", "unchanged", 0.000412, 0.000409, mode="ab"),
        ],
        dependencies={
            "base_commit": BASE,
            "base_environment": "built",
            "reason": None,
            "installed": ["onnxruntime==1.31.0"],
            "build_seconds": 4.2,
            "packages": [
                {
                    "name": "onnxruntime",
                    "base_requirement": "1.31.0",
                    "head_requirement": "1.32.0",
                    "base": "1.31.0",
                    "head": "1.32.0",
                },
                {
                    "name": "evil|pkg<script>",
                    "base_requirement": ">=1|2",
                    "head_requirement": None,
                    "base": None,
                    "head": None,
                },
            ],
            "sides": {
                "base": {"python": "3.11.7", "executable": "/x", "fingerprint": "e820fdeb180b"},
                "head": {"python": "3.11.7", "executable": "/y", "fingerprint": "fe8cb48eeeef"},
            },
        },
    )


def trend() -> tuple[TrendSeries, ...]:
    points = tuple(
        TrendPoint(commit=commit, date=f"2026-11-{day:02d}", value=value)
        for commit, day, value in (
            ("1a2b3c4d5e6f", 2, 0.000405),
            ("2b3c4d5e6f70", 9, 0.000409),
            ("3c4d5e6f7081", 16, 0.000402),
            (BASE, 23, 0.000412),
        )
    )
    return (TrendSeries(benchmark="digits-mlp[torch]", metric="latency", unit="s", points=points),)


CASES = {
    "all-unchanged": (all_unchanged, ()),
    "regressions": (regressions, trend()),
    "no-baseline": (no_baseline, ()),
    "over-budget": (over_budget, ()),
    "accuracy-parity": (accuracy_parity, ()),
    "environment-mismatch": (environment_mismatch, ()),
    "digest-1000": (many, ()),
    "hostile-names": (hostile_names, hostile_trend()),
    "diagnosis": (diagnosed, ()),
    "dependency-upgrade": (dependency_upgrade, ()),
}
OPTIONS = ReportOptions(run_url="https://github.com/octo/demo/actions/runs/42")


def rendered_comment(case: str) -> str:
    build, series = CASES[case]
    return render_comment(check_comparison(build(), case), OPTIONS, series)


def check_gold(name: str, text: str) -> None:
    path = GOLD / name
    if os.environ.get("PERF_GATE_UPDATE_GOLD"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text, f"{path} differs; see the module docstring"


@pytest.mark.parametrize("case", sorted(CASES))
def test_comment_matches_its_golden_file(case: str) -> None:
    check_gold(f"comment-{case}.md", rendered_comment(case))


def test_first_line_is_the_verdict_the_gate_its_machine_and_the_worst_change() -> None:
    first = {case: rendered_comment(case).splitlines()[0] for case in CASES}
    assert first["regressions"] == (
        "### ❌ perf-gate (cpu-x86\\_64): digits-mlp\\[torch\\] latency +28.9% · 3 regressions, "
        "1 advisory regression, 2 inconclusive"
    )
    assert first["all-unchanged"] == "### ✅ perf-gate (cpu-x86\\_64): no regression · 3 unchanged"
    assert first["no-baseline"] == "### 🆕 perf-gate (cpu-x86\\_64): no baseline yet · 2 new"
    assert first["over-budget"] == (
        "### ❌ perf-gate (cpu-x86\\_64): digits-mlp\\[onnxruntime\\] latency.p99 3.1 ms over "
        "budget 2ms · 2 over budget"
    )
    assert first["accuracy-parity"].startswith(
        "### ❌ perf-gate (cpu-x86\\_64): digits-mlp\\[onnxruntime-int8\\] accuracy -1.94 pt · "
    )
    # another environment is never a green line, and says so in the heading
    assert first["environment-mismatch"] == (
        "### ⚠️ perf-gate (cpu-x86\\_64): baseline from another environment (cpu\\_model, "
        "threads) · 1 unchanged"
    )
    assert first["hostile-names"].startswith("### ❌ perf-gate (cpu-x86\\_64): evil\\|name ")
    assert first["hostile-names"].endswith(
        "· 1 regression · ⚠️ baseline from another environment (gpu)"
    )


def test_a_pass_names_an_advisory_regression_and_an_error_what_could_not_run() -> None:
    advisory = report(
        [
            timing("a", "unchanged", 1.0, 1.0),
            timing("b", "regression", 1.0, 1.2, advisory=True, fails=False),
        ]
    )
    assert render_comment(advisory).startswith(
        "### ✅ perf-gate (cpu-x86\\_64): b latency +20.0% (advisory) · 1 advisory regression, "
        "1 unchanged\n"
    )
    failed = report(
        [timing("a", "unchanged", 1.0, 1.0)],
        exit_code=3,
        errors=[{"benchmark": "m[torch]", "message": "worker died"}],
    )
    assert render_comment(failed).startswith(
        "### ⚠️ perf-gate (cpu-x86\\_64): m\\[torch\\] could not run\n"
    )
    nothing = report([], exit_code=3, environment_label=None)
    assert render_comment(nothing).startswith("### ⚠️ perf-gate: the gate could not run\n")


def test_the_environment_label_is_the_gpu_else_the_architecture() -> None:
    assert environment_label({"machine": "x86_64", "gpu": None}) == "cpu-x86_64"
    assert environment_label({"machine": "arm64", "gpu": "NVIDIA A10G"}) == "NVIDIA A10G"
    two = {"gpu": "NVIDIA H100 80GB HBM3, NVIDIA H100 80GB HBM3"}
    assert environment_label(two) == "2× NVIDIA H100 80GB HBM3"
    merged = {"environments": {"AMD EPYC": {"machine": "x86_64"}, "A10G": {"gpu": "NVIDIA A10G"}}}
    assert environment_label(merged) == "cpu-x86_64 + NVIDIA A10G"
    assert environment_label({}) == ""
    gpu = render_comment(regressions() | {"environment_label": "NVIDIA A10G"}, ReportOptions())
    assert gpu.startswith("### ❌ perf-gate (NVIDIA A10G): ")
    hostile = render_comment(regressions() | {"environment_label": "<b>x</b> @me"})
    assert hostile.startswith("### ❌ perf-gate (&lt;b&gt;x&lt;/b&gt; @&#8203;me): ")


def test_regressions_come_first_timings_before_sizes_and_the_rest_is_folded() -> None:
    text = rendered_comment("regressions")
    table, inconclusive, unchanged = re.split(r"<details><summary>", text)[:3]
    verdicts = re.findall(r"^\| ([^ |<]+)", table, flags=re.M)[2:]  # after the header rows
    assert verdicts == [
        REGRESSION,
        REGRESSION,
        REGRESSION,
        "🟠\u00a0regression",
        "➖\u00a0missing",
        "🆕\u00a0new",
        "🟢\u00a0improvement",
    ]
    # the larger timing regression first, and the exact size (+40%) after the timings
    assert table.index("| digits-mlp\\[torch\\] | latency") < table.index("torch-int8")
    assert table.index("torch-int8") < table.index("model\\_size")
    assert (
        "| +28.9%<br><sub>[+22.0%,\u00a0+36.0%]</sub> | 531\u00a0us<br><sub>from\u00a0412\u00a0us"
        in (table)
    )
    assert f"| ab<br><sub>mde{NBSP}2.1%</sub> |" in table
    # inconclusive rows are folded, with what they could have detected, not their interval
    assert inconclusive.startswith(
        "2 inconclusive (could detect changes of 4.2% or more)</summary>"
    )
    assert "| +7.5% | ≥\u00a04.2% |" in inconclusive
    assert ">+1000%" not in text
    assert "-100.0%" not in text
    assert unchanged.startswith("1 unchanged</summary>")
    assert "digits-mlp\\[onnxruntime\\]" in unchanged.split("</details>")[0]


def test_footer_names_commits_environment_reproduction_and_marker() -> None:
    text = rendered_comment("regressions")
    assert f"baseline `{BASE[:12]}` · current `{HEAD[:12]}`" in text
    assert "environment `5d41402abc4b`" in text
    assert f"git checkout {HEAD}\npytest --perf-gate --perf-gate-ab {BASE}\n" in text
    assert text.rstrip().endswith(marker("main"))
    other = render_comment(regressions(), ReportOptions(name="gpu"))
    assert other.rstrip().endswith("<!-- perf-gate:comment name=gpu -->")
    assert other.startswith("### ❌ perf-gate gpu (cpu-x86\\_64): ")


def test_the_comment_carries_a_digest_of_its_verdicts_above_the_marker() -> None:
    text = rendered_comment("regressions")
    *_, digest_line, marker_line = text.rstrip().splitlines()
    assert marker_line == marker("main")
    assert digest_line == verdicts_line(verdict_digest(regressions()))
    assert comment_digest(text) == verdict_digest(regressions())
    assert re.fullmatch(r"fail [0-9a-f]{16}", verdict_digest(regressions()))
    # the numbers may move; a verdict that changes changes the digest
    moved = regressions()
    moved["comparisons"][0]["current"] = 0.000103
    assert verdict_digest(moved) == verdict_digest(regressions())
    flipped = regressions()
    flipped["comparisons"][0]["verdict"] = "regression"
    assert verdict_digest(flipped) != verdict_digest(regressions())
    assert verdict_digest(all_unchanged()).startswith("pass ")
    assert verdict_digest(environment_mismatch()).startswith("mismatch ")
    assert verdict_digest(no_baseline()).startswith("new ")
    assert comment_digest("report\n> <!-- perf-gate:verdicts pass 0123456789abcdef -->") is None
    assert "perf-gate:verdicts" not in render_summary(regressions(), OPTIONS)


def test_marker_names_are_validated() -> None:
    with pytest.raises(ConfigError, match="--name"):
        marker("a b")
    with pytest.raises(ConfigError):
        marker("x -->")


def test_accuracy_in_points_flips_rules_and_the_variant_table() -> None:
    text = rendered_comment("accuracy-parity")
    assert (
        "| -1.94 pt<br><sub>[-2.91\u00a0pt,\u00a0-0.97\u00a0pt]</sub> "
        "| 95.28%<br><sub>from\u00a097.22%" in (text)
    )
    assert "9 examples flipped to wrong, 2 to right" in text
    assert "#### Trade-off rules applied" in text
    assert "rule: accuracy may drop up to 0.5pt when latency improves by at least 20%" in text
    variants = text.split("#### What each variant costs")[1].split("####")[0]
    assert (
        f"| ✅{NBSP}ok | digits-mlp\\[torch-int8\\] | digits-mlp\\[torch\\] | 96.94% (-0.28 pt) |"
        in variants
    )
    assert f"| 🔴{NBSP}parity fail | digits-mlp\\[onnxruntime-int8\\] |" in variants
    assert "top-1 agreement 96.11%<br><sub>bounds: max abs diff" in variants
    assert "(×0.73)" in variants  # int8 latency against torch


def test_environment_differences_and_warnings_have_sections() -> None:
    text = rendered_comment("environment-mismatch")
    assert "| cpu\\_model | AMD EPYC 7763 64-Core Processor | Intel Xeon |" in text
    assert "| threads | 1 | 2 |" in text
    assert "- comparing timings across environments; consider ab mode" in text


def test_thousand_benchmarks_make_a_digest_under_the_limit_and_a_full_summary() -> None:
    data = many()
    comment = render_comment(data, OPTIONS)
    assert utf16_length(comment) <= COMMENT_LIMIT
    assert "full report is in the [job summary](https://github.com/octo/demo/actions/runs/42)" in (
        comment
    )
    assert comment.count(REGRESSION) == 11  # every regression, worst first
    summary = render_summary(data, OPTIONS)
    assert len(summary.encode()) <= 1_048_576
    assert summary.count("[onnxruntime-int8\\] |") == 1000
    assert "digest" not in summary


def test_comment_and_summary_stay_under_their_limits_whatever_the_size() -> None:
    huge = many(5000)
    long_names = report([timing("x" * 5000 + str(i), "regression", 1.0, 2.0) for i in range(800)])
    for data in (huge, long_names):
        assert utf16_length(render_comment(data)) <= COMMENT_LIMIT
    with pytest.raises(PublishError, match="even as a digest; the limit is 300"):
        render_comment(huge, limit=300)
    tight = render_comment(huge, limit=4000)
    assert utf16_length(tight) <= 4000
    assert tight.startswith("### ❌ perf-gate (cpu-x86\\_64): model-4947\\[onnxruntime-int8\\] ")
    assert tight.splitlines()[0].endswith(" · 52 regressions")
    summary = render_summary(huge, limit=200_000)
    assert len(summary.encode()) <= 200_000
    assert summary.count(REGRESSION) == 52  # what changed stays whole
    assert "…and 4392 more, in comparison.json." in summary  # unchanged rows cut, and said so


def test_hostile_names_cannot_break_tables_inject_html_links_mentions_or_markers() -> None:
    text = rendered_comment("hostile-names")
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<script" not in html
    assert "<img" not in html
    assert "<b>" not in html
    assert "<a " not in html.replace('<a href="https://github.com/octo/demo/actions/runs/42"', "")
    assert re.search(r"(^|\W)@octocat", html) is None
    assert re.search(r"(^|\W)@team", html) is None
    assert "#1 " not in html
    assert "https://evil" not in html
    assert "www.evil" not in html
    assert text.count("<!-- perf-gate:comment") == 1
    assert html.count("<h2") == 0
    assert html.count("<h3>") == 1
    for table in re.findall(r"<table>.*?</table>", html, flags=re.S):
        header = len(re.findall(r"<th[ >]", table.split("</thead>")[0]))
        for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], flags=re.S):
            assert len(re.findall(r"<td[ >]", row)) == header
    assert "<p>evil|name #\u200b#\u200b heading &lt;script&gt;" in MarkdownIt("commonmark").render(
        escape_text(HOSTILE)
    )


def test_the_diagnosis_names_the_operators_with_numbers_and_the_traces() -> None:
    text = rendered_comment("diagnosis")
    section = text.split("#### Where the time went")[1].split("<sub>Change")[0]
    headlines = [line for line in section.splitlines() if line.startswith("**")]
    assert [h.split("**")[1] for h in headlines] == [
        "digits-mlp\\[torch\\] latency",  # the largest change first
        "tests/test\\_pipeline.py::test\\_tokenize latency",
        "digits-mlp\\[onnxruntime\\] latency",
        "digits-mlp\\[torch-int8\\] latency",  # without a diagnosis: last
    ]
    assert headlines[0].endswith(
        "measured +119 us per call (+28.9%); the top 5 operators explain 92%; "
        "largest: aten::addmm +97.2 us (82%)"
    )
    assert (
        "| aten::addmm | added \\[256\\], \\[1, 256\\], \\[256, 256\\] | 61.2 us | 158 us "
        "| +97.2 us | 82% |" in section
    )
    assert "| aten::gelu (new) |  | – | 6.1 us | +6.1 us | 5% |" in section
    assert "nodes /fc2/MatMul +12.9 us, /fc1/MatMul +600 ns | 31 us | 44.5 us |" in section
    assert "- new operators: aten::gelu\n- vanished operators: aten::dropout\n" in section
    assert "outside operators (Python, dispatch): 12.4 us → 17.6 us (+5.2 us, 4% of" in section
    assert "no diagnosis: profiling the base revision failed: RuntimeError" in headlines[3]
    assert section.count("<details><summary>Operators and traces</summary>") == 3
    assert (
        "traces in the `perf-gate-profiles` artifact: digits-mlp\\[torch\\]/base.json (base), "
        "digits-mlp\\[torch\\]/head.json (head)" in section
    )
    assert (
        "`perf-gate-profiles` artifact of [this run](https://github.com/octo/demo/actions/runs/42)"
        in (section)
    )
    assert "aten::copy\\_" not in section  # sixth: only in comparison.json
    # the job summary has the same section
    assert "#### Where the time went" in render_summary(diagnosed(), OPTIONS)


def test_hostile_operator_names_and_shapes_stay_inert() -> None:
    text = rendered_comment("diagnosis")
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<script" not in html
    assert "<img" not in html
    links = re.findall(r'<a href="([^"]*)"', html)
    assert set(links) == {"https://ui.perfetto.dev", "https://github.com/octo/demo/actions/runs/42"}
    assert re.search(r"(^|\W)@(octocat|team)", html) is None
    assert "#1 " not in html
    assert text.count("<!-- perf-gate:comment") == 1
    assert html.count("<details>") == html.count("</details>") == 5  # 3 folds, unchanged, reproduce
    # the operator's backticks make no code span: only ours
    spans = set(re.findall(r"<code>([^<]*)</code>", html))
    assert spans == {"perf-gate-profiles", BASE[:12], HEAD[:12], "5d41402abc4b"}
    for table in re.findall(r"<table>.*?</table>", html, flags=re.S):
        header = len(re.findall(r"<th[ >]", table.split("</thead>")[0]))
        for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], flags=re.S):
            assert len(re.findall(r"<td[ >]", row)) == header
            assert row.count("<td") == row.count("</td>")
    assert "evil|op` &lt;img" in html  # shown as text, whole


def test_the_comment_shows_five_diagnoses_the_summary_all_of_them() -> None:
    names = [f"model-{i}[torch]" for i in range(7)]
    data = report(
        [timing(n, "regression", 0.0004, 0.0004 * (1.1 + i / 100)) for i, n in enumerate(names)],
        diagnosis=[torch_diagnosis(n) for n in names],
    )
    comment = render_comment(data, OPTIONS)
    assert comment.count("<summary>Operators and traces</summary>") == 5
    assert "…and 2 more diagnosed benchmarks, in the job summary." in comment
    assert "**model-6\\[torch\\] latency**" in comment  # the largest changes first
    assert "**model-0\\[torch\\] latency**" not in comment
    summary = render_summary(data, OPTIONS)
    assert summary.count("<summary>Operators and traces</summary>") == 7
    assert "more diagnosed" not in summary


def test_diagnoses_keep_the_comment_under_its_limit() -> None:
    data = many()
    long_name = "op" * 3000 + "|<b>@x</b>"
    data["diagnosis"] = [
        diagnosis(
            c["benchmark"],
            "cProfile",
            50.0,
            [
                operator(
                    f"{long_name}{i}",
                    1,
                    20,
                    50.0,
                    added=(long_name,) * 4,
                    nodes=((long_name, 0, 1),) * 3,
                )
                for i in range(8)
            ],
            notes=(long_name,) * 20,
        )
        for c in data["comparisons"]
        if c["verdict"] == "regression"
    ]
    comment = render_comment(data, OPTIONS)
    assert utf16_length(comment) <= COMMENT_LIMIT
    assert "digest of the worst changes" in comment
    assert comment.count("<summary>Operators and traces</summary>") >= 1
    assert comment.count(f"| {REGRESSION} |") == 11  # every changed row still there
    tight = render_comment(data, OPTIONS, limit=8000)
    assert utf16_length(tight) <= 8000
    assert "diagnosed benchmarks (where the time went) are in the job summary." in tight
    summary = render_summary(data, OPTIONS)
    assert summary.count("<summary>Operators and traces</summary>") == 11


def test_escape_keeps_metric_batch_sizes_readable() -> None:
    assert escape_text("throughput@32") == "throughput@32"
    assert escape_text("@123 a@b.co x@1.5") == "@&#8203;123 a@&#8203;b.co x@&#8203;1.5"
    assert escape_text("a\r\nb\tc") == "a b c"
    assert escape_text("x" * 500).endswith("…")


def test_a_comparison_of_another_format_or_shape_is_a_clear_error() -> None:
    with pytest.raises(BaselineError, match=r"c\.json: format 7 is not supported"):
        check_comparison({"format": 7}, "c.json")
    with pytest.raises(BaselineError, match="comparisons\\[0\\] lacks"):
        check_comparison(
            {"format": 1, "exit_code": 0, "has_baseline": True, "comparisons": [{}]}, "c.json"
        )
    with pytest.raises(BaselineError, match="not a JSON object"):
        check_comparison([], "c.json")


def test_trend_points_are_grouped_and_validated() -> None:
    series = trend_from_json(
        {
            "points": [
                {"benchmark": "m", "metric": "latency", "commit": "a", "date": None, "value": 1},
                {"benchmark": "n", "metric": "latency", "commit": "a", "value": 2, "unit": "s"},
                {"benchmark": "m", "metric": "latency", "commit": "b", "value": 3, "unit": "s"},
            ]
        },
        "h.json",
    )
    assert [(s.benchmark, [p.value for p in s.points], s.unit) for s in series] == [
        ("m", [1.0, 3.0], "s"),
        ("n", [2.0], "s"),
    ]
    with pytest.raises(ConfigError, match=r"h\.json: points\[0\]\.value: expected a finite"):
        trend_from_json([{"benchmark": "m", "metric": "l", "commit": "a", "value": "x"}], "h.json")
    with pytest.raises(ConfigError, match="expected a list of points"):
        trend_from_json({"series": []}, "h.json")


def test_trend_reads_a_baseline_history_file() -> None:
    history = {
        "format": 1,
        "kind": "perf-gate baseline history",
        "entries": [
            {
                "commit": "b" * 40,
                "promoted": "2026-11-20",
                "units": {"latency": "s"},
                "medians": {"m[torch]": {"latency": [0.002, 8]}},
            },
            {
                "commit": "a" * 40,
                "promoted": "2026-11-13",
                "units": {"latency": "s"},
                "medians": {"m[torch]": {"latency": [0.001, 8]}, "n": {"latency": [0.5, 8]}},
            },
        ],
    }
    series = trend_from_json(history, "h.json")
    assert [(s.benchmark, [(p.commit[0], p.value) for p in s.points]) for s in series] == [
        ("m[torch]", [("a", 0.001), ("b", 0.002)]),
        ("n", [("a", 0.5)]),
    ]
    assert series[0].unit == "s"
    with pytest.raises(ConfigError, match=r"entries\[2\]\.medians: expected an object"):
        trend_from_json({**history, "entries": [*history["entries"], {"commit": "c"}]}, "h.json")


def test_chart_is_optional_and_always_has_its_table() -> None:
    with_chart = rendered_comment("regressions")
    assert with_chart.count("```mermaid") == 1
    assert '"this PR"' in with_chart
    assert "| 3f2a9c1d8e7b | 2026-11-23 | 412 us |" in with_chart
    assert "| this PR | – | 531 us |" in with_chart
    without = render_comment(regressions(), ReportOptions(chart=False), trend())
    assert "```mermaid" not in without


def test_golden_inputs_round_trip_through_json() -> None:
    # the renderer reads files written by another job: JSON types only
    for case, (build, _) in CASES.items():
        data = json.loads(json.dumps(build()))
        assert render_comment(data, OPTIONS, CASES[case][1]) == rendered_comment(case)


def test_a_summary_is_html_escaped_not_markdown_escaped() -> None:
    # GitHub shows a <summary> as raw HTML: a backslash escape would be shown as it is
    assert escape_html("digits-mlp[torch]") == "digits-mlp[torch]"
    assert escape_html('a|b `c` *d* <e> & "f"') == "a|b `c` *d* &lt;e&gt; &amp; &quot;f&quot;"
    assert escape_html("</details> @team #1 https://x www.y") == (
        "&lt;/details&gt; @&#8203;team #&#8203;1 https:&#8203;//x www&#8203;.y"
    )
    hostile = TrendSeries(
        benchmark="m[x]|<b>`y`</b> @team </summary>",
        metric="latency",
        unit="s",
        points=(TrendPoint(commit="a" * 40, date=None, value=0.001),),
    )
    text = render_summary(
        report([timing(hostile.benchmark, "regression", 0.001, 0.002)]), OPTIONS, (hostile,)
    )
    (summary,) = re.findall(r"<summary>(Trend: .*?)</summary>", text)
    assert summary == (
        "Trend: latency of m[x]|&lt;b&gt;`y`&lt;/b&gt; @&#8203;team &lt;/summary&gt;"
    )
    assert "\\" not in summary


def test_the_chart_line_is_a_colour_both_themes_show() -> None:
    text = rendered_comment("regressions")
    chart = text.split("```mermaid\n")[1].split("```")[0]
    assert chart.startswith(
        '%%{init: {"themeVariables": {"xyChart": {"plotColorPalette": "#2f81f7"}}}}%%\n'
        "xychart-beta\n"
    )

    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    line = luminance("#2f81f7")
    for background in ("#ffffff", "#0d1117"):  # GitHub's light and dark backgrounds
        lighter, darker = sorted((line, luminance(background)), reverse=True)
        assert (lighter + 0.05) / (darker + 0.05) >= 3.0  # WCAG's contrast for graphics


def test_long_notes_become_footnotes_under_their_table() -> None:
    text = rendered_comment("accuracy-parity")
    table = text.split("<details>")[0]
    assert f"| 🔴{NBSP}parity fail¹ |" in table
    assert (
        f"| 🟡{NBSP}accepted trade-off²<br><sub>3 examples flipped to wrong, 2 to right</sub> |"
        in (table)
    )
    assert (
        f"<sub>¹{NBSP}max abs diff 0.31 &gt; 0.05 against digits-mlp\\[onnxruntime\\]<br>"
        f"²{NBSP}rule: accuracy may drop up to 0.5pt" in table
    )
    slow = "8 round(s) replaced by a fresh pair: slow process (head 1.5x, base 2.1x its median)"
    shared = report(
        [
            timing("m[torch]", "regression", 0.001, 0.002, note=slow),
            timing("m[torch]", "regression", 100.0, 40.0, metric="throughput@32", note=slow),
            timing("n[torch]", "regression", 0.001, 0.0015, note="1 outlier round(s) excluded"),
        ]
    )
    text = render_comment(shared)
    assert text.count(f"{REGRESSION}¹ |") == 2  # one footnote for both rows
    assert text.count("8 round\\(s\\) replaced") == 1
    assert f"{REGRESSION}<br><sub>1 outlier round\\(s\\) excluded</sub> |" in text


def test_a_dependency_change_names_each_package_and_how_the_base_side_ran() -> None:
    text = rendered_comment("dependency-upgrade")
    assert "#### Dependencies that differ from the base revision" in text
    assert "| onnxruntime | 1\\.31.0 | 1\\.32.0 |" in text
    assert "own environment (built with uv)" in text.replace("\\", "")
    assert "packages `e820fdeb180b`" in text
    fallback = dependency_upgrade()
    fallback["dependencies"] |= {"base_environment": "fallback", "reason": "uv is not installed"}
    text = render_comment(check_comparison(fallback, "fallback"), OPTIONS)
    assert "could not be built \\(uv is not installed \\(pip install uv\\)\\)" not in text
    assert "could not be built \\(uv is not installed\\): both sides ran with the head's" in text
