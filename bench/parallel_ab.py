"""How to run the two workers of an ``ab`` round: one after the other, side by side (placement
left to the scheduler), or side by side pinned to a core each (assignment random per round).

A/A paired rounds (the same tree on both sides) of the bench model of bench/live_verdicts.py
(torch, batch sizes 1 and 16, one thread) through the gate's own ``PairedRunner``, quiet and
beside the noisy neighbour of bench/live_verdicts.py. Per arrangement: the spread of the
per-round log ratios (SD, and the robust SD 1.4826 x MAD, which a few slow processes do not
move), the rounds with a slow process on one side (``stats.slow_processes``), the rounds a
+-5% threshold at alpha 0.01 would need at that SD, and the wall time per round.

    .venv/bin/python bench/parallel_ab.py [--rounds 16] [--conditions quiet noisy]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_verdicts import make_repo, neighbour

from gate.config import load_config
from gate.core import stats
from gate.measure.paired import PairedRounds, PairedRunner
from gate.measure.runner import Runner, prepare_all
from gate.measure.samples import round_samples

ARRANGEMENTS = {"one after the other": (False, False), "side by side": (True, False)}
ARRANGEMENTS["side by side, pinned"] = (True, True)


def spread_of(repo: Path, parallel: bool, pinned: bool, rounds: int) -> dict[str, float]:
    config = load_config(repo)
    plans, _, _ = prepare_all(config, {"blocks[torch]"}, lambda message: None)
    runner = Runner(config.measure, config.root, config.report_dir / "work")
    into = PairedRounds()
    started = time.monotonic()
    PairedRunner(runner, repo, parallel=parallel, pinned=pinned).run(
        [(p, p) for p in plans], [], rounds, into
    )
    wall = (time.monotonic() - started) / rounds
    plan = plans[0]
    n = into.rounds_of(plan.name)
    result: dict[str, float] = {"wall": wall}
    slow = 0
    for arm in ("base", "head"):
        for sample in round_samples(plan, getattr(into, arm)[plan.name][:n]):
            slow += len(stats.slow_processes([math.log(v) for v in sample.values]))
    result["slow"] = slow
    heads = round_samples(plan, into.head[plan.name][:n])
    bases = round_samples(plan, into.base[plan.name][:n])
    for head, base in zip(heads, bases, strict=True):
        ratios = [math.log(h / b) for h, b in zip(head.values, base.values, strict=True)]
        centre = stats.median(ratios)
        result[f"{head.metric.name} sd"] = math.sqrt(stats.variance(ratios))
        result[f"{head.metric.name} robust"] = 1.4826 * stats.median(
            [abs(r - centre) for r in ratios]
        )
    return result


def needed(sd: float, threshold: float = 0.05, alpha: float = 0.01 / 4) -> int:
    """Rounds for a simultaneous interval of half-width below half the threshold."""
    for n in range(3, 200):
        if stats.t_ppf(1 - alpha / 2, n - 1) * sd / math.sqrt(n) < threshold / 2:
            return n
    return 200


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--conditions", nargs="+", default=["quiet", "noisy"])
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    print(
        "| condition | arrangement | latency SD (robust) | throughput@16 SD (robust) | "
        "slow processes | rounds for +-5% (latency) | wall per round |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as where:
        repo = make_repo(Path(where))
        for condition in args.conditions:
            order = list(ARRANGEMENTS.items())
            random.Random(args.seed).shuffle(order)
            for name, (parallel, pinned) in order:
                stop = multiprocessing.Event()
                noisy = None
                if condition == "noisy":
                    noisy = multiprocessing.Process(target=neighbour, args=(stop, args.seed))
                    noisy.start()
                try:
                    r = spread_of(repo, parallel, pinned, args.rounds)
                finally:
                    stop.set()
                    if noisy is not None:
                        noisy.join(timeout=5)
                print(
                    f"| {condition} | {name} | {r['latency sd']:.1%} ({r['latency robust']:.1%}) "
                    f"| {r['throughput@16 sd']:.1%} ({r['throughput@16 robust']:.1%}) | "
                    f"{r['slow']:.0f} of {4 * args.rounds} | {needed(r['latency sd'])} | "
                    f"{r['wall']:.1f} s |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
