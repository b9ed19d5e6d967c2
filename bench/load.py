"""The load harness's own cost (gate/measure/worker/load.py): how late the open-loop scheduler
dispatches each query, and what a query costs on its way through the queue, with nothing to
serve and with a call that waits.

Goal (issue: serving under load): the scheduler's lateness p99 under 100 us at 1,000 queries
per second on 2 cores. Lateness is the time from a query's scheduled (Poisson) arrival to its
dispatch; the overhead is a no-op call's latency from arrival (queue hand-off, thread wake-up).
Then the cost of a max-rate search (``perf.max_rate``, ``load: {slo: ...}``): its probes and
time; and a data pipeline (``models.<name>.data``, gate/measure/worker/data.py) over a Parquet
file with 0, 2 and 4 DataLoader workers, its reads waiting or decoding on the CPU, each row a
fresh process as in a round (bench/zoo/pipelines.py).

    .venv/bin/python bench/load.py            # 10 s per row
    .venv/bin/python bench/load.py --seconds 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
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
    write_parquet()

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
    print("\nA data pipeline: 64 Parquet row groups of 1,024 rows through a DataLoader, a fresh")
    print("process per run, 3 runs per row (medians; worker CPU as a share of a core):")
    print_table(
        ("reads", "workers", "items/s", "MB/s", "first batch", "main CPU", "worker CPU"),
        [data_row(mode, workers) for mode in ("wait", "cpu") for workers in (0, 2, 4)],
    )
    return 0


DATA_RUN = """
import json, sys
sys.path.insert(0, {bench!r})
from zoo import pipelines
from gate.measure import BenchmarkPlan
from gate.measure.worker.data import measure_data
plan = BenchmarkPlan(name="p[data]", model="p", variant="data", root={bench!r},
                     data={{"loader": "zoo.pipelines:{loader}", "batches": 60}})
values, details = measure_data(plan)
print(json.dumps({{"values": {{k: v["value"] for k, v in values.items()}}, **details}}))
"""


def data_row(mode: str, workers: int) -> tuple[str, ...]:
    bench = str(Path(__file__).resolve().parent)
    runs = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", DATA_RUN.format(bench=bench, loader=f"{mode}_{workers}")],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))

    def median(values: list[float]) -> float:
        return quantile(sorted(values), 0.5)

    shares = [s for r in runs for s in r["worker_cpu"]]
    return (
        "object storage, 20 ms" if mode == "wait" else "decoding, ~20 ms CPU",
        str(workers),
        f"{median([r['values']['data.items_per_s'] for r in runs]):.0f}",
        f"{median([r['bytes_per_s'] for r in runs]) / 1e6:.2f}",
        f"{median([r['values']['cold_start.first_batch'] for r in runs]) * 1000:.0f} ms",
        f"{median([r['main_cpu'] for r in runs]):.2f}",
        f"{median(shares):.2f}" if shares else "-",
    )


def write_parquet() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from zoo import pipelines

    pipelines.write()


def wait_2ms(batch: int) -> None:
    time.sleep(0.002)


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    raise SystemExit(main())
