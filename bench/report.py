"""Time to render the pull-request report, and its size.

Renders a comparison.json-shaped dict of N comparisons (a few regressions and improvements,
many unchanged, a timing mode and an interval on each, as a real run writes them) with
``gate.report.markdown.render_comment`` (the PR comment, a digest when the full report passes
65,536 characters) and ``render_summary`` (the job summary, under 1 MiB). Each is timed
``--repeats`` times after one warm-up call (the first call also compiles the templates; its
time is shown apart) and the table gives the median with min..max, and the size in characters
as GitHub counts them (UTF-16 units) and in bytes.

Goal: 1,000 comparisons render to the comment in < 200 ms, and the comment is <= 65,536
characters.

    .venv/bin/python bench/report.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from gate.report.markdown import (
    COMMENT_LIMIT,
    SUMMARY_LIMIT,
    render_comment,
    render_summary,
    utf16_length,
)

GOAL_MS = 200.0


def comparisons(count: int) -> dict[str, Any]:
    """``count`` comparisons: 1 in 97 a regression, 1 in 89 an improvement, the rest unchanged."""
    items = []
    for index in range(count):
        if index % 97 == 0:
            verdict, change = "regression", 0.1 + index / 10_000
        elif index % 89 == 0:
            verdict, change = "improvement", -0.2
        else:
            verdict, change = "unchanged", (index % 7) / 1000
        items.append(
            {
                "benchmark": f"model-{index:05d}[onnxruntime-int8]",
                "metric": "latency",
                "unit": "s",
                "direction": "lower",
                "verdict": verdict,
                "advisory": False,
                "fails": verdict == "regression",
                "baseline": 0.001,
                "current": 0.001 * (1 + change),
                "relative_change": change,
                "ci_low": change - 0.02,
                "ci_high": change + 0.02,
                "mode": "ab",
                "mde": 0.021,
                "note": "",
            }
        )
    return {
        "format": 1,
        "exit_code": 1,
        "has_baseline": True,
        "alpha": 0.01,
        "baseline_commit": "3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39",
        "current_commit": "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d",
        "environment_key": "5d41402abc4b",
        "comparisons": items,
    }


def timed(render: Callable[[], str], repeats: int) -> tuple[float, list[float], str]:
    """(first call in ms, later calls in ms, the text)."""
    start = time.perf_counter()
    text = render()
    first = (time.perf_counter() - start) * 1000
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        render()
        times.append((time.perf_counter() - start) * 1000)
    return first, times, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 1,000 only")
    parser.add_argument("--repeats", type=int, default=0, help="timed calls per row")
    args = parser.parse_args()
    repeats = args.repeats or (5 if args.quick else 21)
    sizes = (1000,) if args.quick else (100, 1000, 10_000)
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{repeats} timed calls per row after one first call (which compiles the templates)\n")
    header = ("render", "comparisons", "first ms", "median ms", "min..max ms", "chars", "bytes")
    rows = []
    goal_met = None
    for count in sizes:
        data = comparisons(count)
        for name, render in (("comment", render_comment), ("summary", render_summary)):
            first, times, text = timed(lambda render=render, data=data: render(data), repeats)
            median = statistics.median(times)
            rows.append(
                (
                    name,
                    f"{count:,}",
                    f"{first:.1f}",
                    f"{median:.1f}",
                    f"{min(times):.1f}..{max(times):.1f}",
                    f"{utf16_length(text):,}",
                    f"{len(text.encode()):,}",
                )
            )
            if name == "comment" and count == 1000:
                goal_met = median < GOAL_MS and utf16_length(text) <= COMMENT_LIMIT
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    print(
        f"\ngoal: 1,000 comparisons -> comment in < {GOAL_MS:.0f} ms and <= {COMMENT_LIMIT:,} "
        f"characters (summary <= {SUMMARY_LIMIT:,} bytes): {'met' if goal_met else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
