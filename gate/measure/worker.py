"""The worker process: one measurement round, or one fresh-process memory/cold-start probe.

Run by the parent as ``python -m gate.measure.worker round|probe PLAN OUT [...]``. A worker
writes its result as JSON to OUT; it reports a benchmark's failure in the JSON and goes on with
the others, so one broken variant does not cost the whole run.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from gate import stats
from gate.measure import BenchmarkPlan, get_backend
from gate.measure.memory import current_rss_bytes, peak_rss_bytes
from gate.measure.timing import time_calls

# Per-call times sent back per (benchmark, batch size, round); enough for p99, bounded in size.
MAX_CALLS_PER_ROUND = 2000


def describe(exc: BaseException) -> str:
    """``Type: message (file:line)`` with the innermost frame, for a one-line error."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def run_round(plans: list[BenchmarkPlan], settings: dict[str, Any], seed: int) -> dict[str, Any]:
    """Measure every plan once in this process, in an order shuffled by ``seed``."""
    order = list(plans)
    random.Random(seed).shuffle(order)
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for plan in order:
        try:
            backend = get_backend(plan)
            backend.import_runtime()
            backend.load()
            batches: dict[str, Any] = {}
            for batch_size in plan.batch_sizes:
                timed = time_calls(
                    backend.call_for(batch_size),
                    warmup=settings["warmup"],
                    min_calls=settings["min_calls"],
                    min_time=settings["min_time"],
                    max_time=settings["max_time"],
                    sync=backend.sync,
                )
                batches[str(batch_size)] = {
                    "first_call": timed.first_call,
                    "median": stats.median(timed.times),
                    "calls": stats.thin(timed.times, MAX_CALLS_PER_ROUND),
                }
            results[plan.name] = {"batches": batches}
        except Exception as exc:  # report and continue with the other benchmarks
            errors[plan.name] = describe(exc)
    return {"order": [p.name for p in order], "results": results, "errors": errors}


def run_probe(plan: BenchmarkPlan) -> dict[str, Any]:
    """Fresh-process memory and cold start: RSS after imports, after load, after inference."""
    try:
        backend = get_backend(plan)
        start = time.perf_counter()
        backend.import_runtime()
        imported = time.perf_counter()
        rss_import = current_rss_bytes() or peak_rss_bytes()
        backend.load()
        fn = backend.call_for(plan.batch_sizes[0])
        loaded = time.perf_counter()
        rss_load = current_rss_bytes() or peak_rss_bytes()
        fn()
        if backend.sync is not None:
            backend.sync()
        first = time.perf_counter()
        for batch_size in plan.batch_sizes:
            call = backend.call_for(batch_size)
            for _ in range(3):
                call()
        return {
            "import_s": imported - start,
            "load_s": loaded - imported,
            "first_call_s": first - loaded,
            "rss_import": rss_import,
            "rss_load": rss_load,
            "rss_peak": peak_rss_bytes(),
            **backend.info(),
        }
    except Exception as exc:
        return {"error": describe(exc)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gate.measure.worker")
    parser.add_argument("mode", choices=("round", "probe"))
    parser.add_argument("plan", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--benchmark", default=None)
    args = parser.parse_args(argv)
    document = json.loads(args.plan.read_text(encoding="utf-8"))
    root = document["root"]
    if root not in sys.path:
        sys.path.insert(0, root)
    plans = [BenchmarkPlan.from_dict(p) for p in document["plans"]]
    if args.mode == "round":
        result = run_round(plans, document["settings"], args.seed)
    else:
        chosen = [p for p in plans if p.name == args.benchmark]
        if not chosen:
            print(f"no benchmark named {args.benchmark!r} in the plan", file=sys.stderr)
            return 2
        result = run_probe(chosen[0])
    args.out.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
