"""The trend charts parse with Mermaid's own parser (npm ``mermaid`` in ``jsdom``, offline).

``make install`` runs ``npm ci`` in tests/js; without node or those packages the test is
skipped here and fails under CI, so a green CI run always parsed the charts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gate.report.markdown import ReportOptions, render_summary
from gate.report.trend import TrendPoint, TrendSeries

JS = Path(__file__).resolve().parents[1] / "js"


def mermaid_results(diagrams: list[str]) -> list[dict[str, object]]:
    node = shutil.which("node")
    if node is None or not (JS / "node_modules" / "mermaid").is_dir():
        message = "needs node and `npm ci --prefix tests/js` (make install does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    completed = subprocess.run(
        [node, str(JS / "check_mermaid.mjs")],
        input=json.dumps(diagrams),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    results: list[dict[str, object]] = json.loads(completed.stdout)
    return results


def series(benchmark: str, metric: str, unit: str, values: list[float]) -> TrendSeries:
    return TrendSeries(
        benchmark=benchmark,
        metric=metric,
        unit=unit,
        points=tuple(
            TrendPoint(commit=f"{index:x}" * 40, date=None, value=value)
            for index, value in enumerate(values, start=1)
        ),
    )


def comparison(benchmark: str, metric: str, unit: str, current: float) -> dict[str, object]:
    return {
        "benchmark": benchmark,
        "metric": metric,
        "unit": unit,
        "verdict": "regression",
        "baseline": current / 2,
        "current": current,
        "relative_change": 1.0,
        "fails": True,
    }


def test_every_chart_the_report_draws_parses_and_a_broken_one_does_not() -> None:
    hostile = 'evil" `x` ]] [[ --> %% name\nnext line'
    trends = (
        series("digits-mlp[torch]", "latency", "s", [0.00041, 0.000409, 0.0004]),
        series(hostile, "latency", "s", [1.5, 1.6]),
        series("m[onnxruntime]", "accuracy", "fraction", [0.97, 0.968, 0.971]),
        series("m[torch]", "memory.peak", "B", [3.1e8, 3.3e8]),
        series("m[custom]", "vocab_hits", "hits/s", [12.0, 13.5]),
        # a level that moved: its first promotion is marked in the axis and the table
        series("step[torch]", "latency", "s", [1e-3] * 6 + [1.3e-3] * 6),
    )
    data = {
        "format": 1,
        "exit_code": 1,
        "has_baseline": True,
        "comparisons": [
            comparison("digits-mlp[torch]", "latency", "s", 0.0005),
            comparison(hostile, "latency", "s", 2.0),
            comparison("m[onnxruntime]", "accuracy", "fraction", 0.95),
            comparison("m[torch]", "memory.peak", "B", 4e8),
        ],
    }
    diagrams = []
    for trend in trends:
        options = ReportOptions(trend_metric=trend.metric)
        text = render_summary(data, options, (trend,))
        found = re.findall(r"```mermaid\n(.*?)\n```", text, flags=re.S)
        assert len(found) == 1, text
        diagrams.append(found[0])
        if trend.benchmark == "step[torch]":
            assert '"7777777 ▲"' in found[0]  # the 7th promotion starts the new level
            assert "1.3 ms ▲ level moved +30.0%" in text
    broken = diagrams[0].replace("line [", "line [1,, ")
    results = mermaid_results([*diagrams, broken])
    assert results[:-1] == [{"ok": True, "type": "xychart"}] * len(diagrams)
    assert results[-1]["ok"] is False
