"""Round-to-round noise of the digits example's variants, threads pinned and unpinned.

Each round is one fresh worker process (``gate.measure.runner.Runner``) that measures every
variant, as in a gate run. Reported per variant, with the coefficient of variation
(``gate.core.stats.coefficient_of_variation``) across rounds of the per-round latency median
(batch 1)
and of the per-round throughput@32, and, for contrast, the within-process CV of the per-call
times at batch 1 (median over rounds; with a robust IQR/median beside it, since per-call times
have a long tail).

* pinned: ``measure.threads: 1`` (what the example uses);
* unpinned: ``measure.threads`` = ``os.cpu_count()``. The runner sets OMP/MKL/OpenBLAS threads to
  ``measure.threads`` in the worker's environment, so "unpinned" means "all cores".

Rounds of the two settings alternate (pinned, unpinned, pinned, ...) so that slow drift of the
machine hits both alike. Memory and cold-start probes are left out (they do not feed these
numbers). The gate compares per-round values with Welch's test, so the between-round CV is the
noise that decides what a 5% threshold can detect.

    .venv/bin/python bench/noise.py [--rounds 8] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from gate.config import load_config
from gate.core import stats
from gate.measure import BenchmarkPlan
from gate.measure.runner import Runner, prepare_all
from gate.measure.samples import LATENCY, throughput_metric

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "digits" / "perf-gate.yaml"
THROUGHPUT_BATCH = 32


def percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100.0 * value:.2f}%"


def robust_spread(values: tuple[float, ...]) -> float:
    """Interquartile range over the median: a spread that the long tail does not dominate."""
    return (stats.quantile(values, 0.75) - stats.quantile(values, 0.25)) / stats.median(values)


@dataclasses.dataclass
class Series:
    """What the rounds of one setting produced for one benchmark."""

    latency: list[float] = dataclasses.field(default_factory=list)
    throughput: list[float] = dataclasses.field(default_factory=list)
    within_cv: list[float] = dataclasses.field(default_factory=list)
    within_iqr: list[float] = dataclasses.field(default_factory=list)


def one_round(runner: Runner, plans: list[BenchmarkPlan], series: dict[str, Series]) -> None:
    """One fresh worker process measuring every plan (a Runner with rounds=1)."""
    measured = runner.measure(plans)
    for error in measured.errors:
        raise SystemExit(f"{error.benchmark}: {error.message}")
    throughput = throughput_metric(THROUGHPUT_BATCH)
    for sample in measured.samples:
        entry = series.setdefault(sample.benchmark, Series())
        if sample.metric == LATENCY:
            entry.latency.extend(sample.values)
            entry.within_cv.append(stats.coefficient_of_variation(sample.calls))
            entry.within_iqr.append(robust_spread(sample.calls))
        elif sample.metric == throughput:
            entry.throughput.extend(sample.values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="rounds per setting (default 8)")
    parser.add_argument("--quick", action="store_true", help="4 rounds per setting")
    parser.add_argument("--seed", type=int, default=None, help="seed of the variant order")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 4
    if args.rounds < 2:
        parser.error("--rounds must be at least 2")
    cpus = os.cpu_count() or 1
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())

    with tempfile.TemporaryDirectory(prefix="perf-gate-noise-") as tmp_name:
        tmp = Path(tmp_name)
        base = load_config(CONFIG)
        # A copy of the config: reports and the export cache go to the temporary directory.
        base = dataclasses.replace(base, report_dir=tmp / "report", baseline=tmp / "none.json")
        settings = {"pinned": 1, "unpinned": cpus}
        runners: dict[str, tuple[Runner, list[BenchmarkPlan]]] = {}
        for label, threads in settings.items():
            measure = dataclasses.replace(base.measure, threads=threads, rounds=1, seed=args.seed)
            config = dataclasses.replace(base, measure=measure)
            plans, errors, _ = prepare_all(config, None, lambda message: None)
            if errors:
                for error in errors:
                    print(f"error: {error.benchmark}: {error.message}", file=sys.stderr)
                return 1
            # Latency and throughput only: no memory/cold-start probe processes.
            plans = [dataclasses.replace(p, metrics=("latency", "throughput")) for p in plans]
            runners[label] = (Runner(measure, config.root, config.report_dir / "work"), plans)

        results: dict[str, dict[str, Series]] = {label: {} for label in settings}
        started = time.perf_counter()
        for index in range(args.rounds):
            for label in settings:
                runner, plans = runners[label]
                one_round(runner, plans, results[label])
            done = index + 1
            print(
                f"round {done}/{args.rounds} of both settings done "
                f"({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
        elapsed = time.perf_counter() - started

    s = base.measure
    print(
        f"digits example: {args.rounds} rounds per setting, each a fresh worker process "
        f"measuring all variants (warmup {s.warmup}, min_calls {s.min_calls}, "
        f"min_time {s.min_time:g}s); {cpus} CPUs, load average {load} at start; {elapsed:.0f} s"
    )
    print("latency@1, thr@32 = median over rounds of the per-round values (min..max over rounds);")
    print("CV rounds = stdev/mean of the per-round values; CV in-proc and IQR/med = spread of")
    print("the per-call times at batch 1 inside one round (median over rounds)")
    print()
    header = (
        f"{'benchmark':<28} {'setting':<12} {'latency@1':>10} {'(min..max us)':>15} "
        f"{'CV rounds':>10} "
        f"{'thr@32 /s':>10} {'(min..max k/s)':>15} {'CV rounds':>10} {'CV in-proc':>10} "
        f"{'IQR/med':>9}"
    )
    print(header)
    print("-" * len(header))
    names = list(results["pinned"])
    for name in names:
        for label, threads in settings.items():
            entry = results[label][name]
            print(
                f"{name:<28} {f'{label} ({threads})':<12} "
                f"{stats.median(entry.latency) * 1e6:>8.1f}us "
                f"{f'{min(entry.latency) * 1e6:.1f}..{max(entry.latency) * 1e6:.1f}':>15} "
                f"{percent(stats.coefficient_of_variation(entry.latency)):>10} "
                f"{stats.median(entry.throughput):>10.0f} "
                f"{f'{min(entry.throughput) / 1e3:.0f}..{max(entry.throughput) / 1e3:.0f}':>15} "
                f"{percent(stats.coefficient_of_variation(entry.throughput)):>10} "
                f"{percent(stats.median(entry.within_cv)):>10} "
                f"{percent(stats.median(entry.within_iqr)):>9}"
            )
    print()
    print("per round, latency@1 over the variant's median (median over variants): a round where")
    print("every variant is slow means the whole machine was slow then (other load), not noise")
    print("of one runtime")
    for label in settings:
        per_round = [
            stats.median(
                [
                    results[label][n].latency[i] / stats.median(results[label][n].latency)
                    for n in names
                ]
            )
            for i in range(args.rounds)
        ]
        print(f"{label:<9} " + " ".join(f"{r:.2f}" for r in per_round))
    print()
    for label in settings:
        cvs = [stats.coefficient_of_variation(results[label][n].latency) for n in names]
        thr = [stats.coefficient_of_variation(results[label][n].throughput) for n in names]
        print(
            f"{label:<9} CV across rounds, median (max) over variants: latency "
            f"{percent(stats.median(cvs))} ({percent(max(cvs))}), throughput@{THROUGHPUT_BATCH} "
            f"{percent(stats.median(thr))} ({percent(max(thr))})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
