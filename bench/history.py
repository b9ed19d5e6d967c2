"""The cost of change-point detection on promoted histories (gate/store/changes.py): every
metric of every benchmark searched with E-Divisive means (gate/core/changepoints.py), for
histories of 30 and 1,000 promotions x 200 benchmarks (one metric each, plus the drift check),
and how often it finds what is there: shifts located, flat histories left alone.

    .venv/bin/python bench/history.py
"""

from __future__ import annotations

import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gate.core.changepoints import change_points
from gate.store import history as hist
from gate.store.changes import all_changes, drifts


def synthetic(promotions: int, benchmarks: int, seed: int) -> hist.History:
    """A history in which every tenth benchmark's latency steps up 15% halfway."""
    rng = random.Random(seed)
    entries = []
    for index in range(promotions):
        medians = {}
        for b in range(benchmarks):
            level = 1e-3 * (1.15 if b % 10 == 0 and index >= promotions // 2 else 1.0)
            medians[f"model{b}[torch]"] = {"latency": (level * math.exp(rng.gauss(0, 0.03)), 8)}
        entries.append(
            hist.Entry(
                commit=f"{index:040x}",
                ref="main",
                created="",
                promoted=f"{index:08d}",
                environment_key="k",
                units={"latency": "s"},
                medians=medians,
            )
        )
    return hist.History(entries=tuple(reversed(entries)), limit=max(promotions, 30))


def main() -> int:
    rows = []
    for promotions in (30, 1000):
        history = synthetic(promotions, 200, seed=promotions)
        started = time.perf_counter()
        found = all_changes(history)
        search = time.perf_counter() - started
        started = time.perf_counter()
        drifted = drifts(history, {"latency": (0.10, min(20, promotions - 1))})
        drift_s = time.perf_counter() - started
        stepped = {c.benchmark for c in found}
        right = sum(1 for b in range(0, 200, 10) if f"model{b}[torch]" in stepped)
        wrong = len(stepped - {f"model{b}[torch]" for b in range(0, 200, 10)})
        rows.append(
            (
                f"{promotions} x 200",
                f"{search:.2f} s",
                f"{drift_s:.2f} s",
                f"{right}/20",
                f"{wrong}/180",
                str(len(drifted)),
            )
        )
    header = ("history", "change points", "drift check", "steps found", "flat flagged", "drifts")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    rng = random.Random(7)
    started = time.perf_counter()
    for _ in range(200):
        change_points([math.exp(rng.gauss(0, 0.03)) for _ in range(1000)])
    per = (time.perf_counter() - started) / 200
    print(f"\none series of 1,000 promotions: {per * 1000:.1f} ms per search")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
