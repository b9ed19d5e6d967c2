"""The load harness's own cost (gate/measure/worker/load.py): how late the open-loop scheduler
dispatches each query, and what a query costs on its way through the queue, with nothing to
serve and with a call that waits.

Goal (issue: serving under load): the scheduler's lateness p99 under 100 us at 1,000 queries
per second on 2 cores. Lateness is the time from a query's scheduled (Poisson) arrival to its
dispatch; the overhead is a no-op call's latency from arrival (queue hand-off, thread wake-up).
Then the cost of a max-rate search (``perf.max_rate``): its probes and time.

    .venv/bin/python bench/load.py            # 10 s per row
    .venv/bin/python bench/load.py --seconds 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gate.core.stats import quantile
from gate.measure.worker.load import LoadSettings, max_rate, run_load


def us(value: float) -> str:
    return f"{value * 1e6:.0f} us"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each row")
    args = parser.parse_args()

    def noop(batch: int) -> None:
        return None

    def wait(batch: int) -> None:
        time.sleep(0.0005)

    rows = []
    for label, call, rate, threads in (
        ("no-op call", noop, 1000.0, 1),
        ("no-op call", noop, 1000.0, 2),
        ("no-op call", noop, 5000.0, 1),
        ("call waits 0.5 ms", wait, 1000.0, 1),
        ("call waits 0.5 ms", wait, 1000.0, 4),
    ):
        result = run_load(call, LoadSettings(rate=rate, duration=args.seconds, threads=threads))
        late = sorted(result.lateness)
        p50, _, p99 = result.percentiles()
        rows.append(
            (
                label,
                f"{rate:g}/s",
                str(threads),
                f"{result.achieved_rate:.0f}/s",
                us(quantile(late, 0.5)),
                us(quantile(late, 0.99)),
                us(late[-1]),
                us(p50.value),
                us(p99.bound if p99.bound is not None else p99.value),
            )
        )
    header = (
        "case",
        "rate",
        "threads",
        "achieved",
        "late p50",
        "late p99",
        "late max",
        "latency p50",
        "latency p99 (bound)",
    )
    print_table(header, rows)
    print("\nThe cost of a max-rate search (a call that waits 2 ms, p99 under the SLO):")
    searches = []
    for threads, slo in ((1, 0.010), (2, 0.010), (4, 0.020)):
        found = max_rate(wait_2ms, slo=slo, threads=threads, time_budget=60, seed=1)
        searches.append(
            (
                str(threads),
                f"{slo * 1000:g} ms",
                f"{found.best:.0f}/s" if found.best else "none",
                str(len(found.probes)),
                f"{found.elapsed:.1f} s",
                ", ".join(f"{p.rate:.0f}{'+' if p.passed else '-'}" for p in found.probes),
            )
        )
    print_table(
        ("threads", "slo", "max rate", "probes", "time", "rates tried (+ passed)"), searches
    )
    return 0


def wait_2ms(batch: int) -> None:
    time.sleep(0.002)


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    raise SystemExit(main())
