"""The worker process: one measurement round, one fresh-process memory/cold-start probe,
one model's evaluation (quality metrics and output parity, in gate.measure.worker.accuracy), or the
operator profiles of a diagnosis (in gate.measure.worker.operators).

Run by the parent as ``python -m gate.measure.worker.main round|probe PLAN OUT [...]``. A worker
writes its result as JSON to OUT; it reports a benchmark's failure in the JSON and goes on with
the others, so one broken variant does not cost the whole run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gate.config.load import load_from_dict
from gate.core import stats
from gate.errors import GateError
from gate.measure import (
    THREAD_ENV,
    Backend,
    BadReference,
    BenchmarkPlan,
    Refused,
    describe,
    processes,
)
from gate.measure.backends import get_backend
from gate.measure.base_imports import check_worker
from gate.measure.lockstep import worker_barrier
from gate.measure.messages import BenchmarkRound, DuetResult, RoundCost, RoundResult, TimedBatch
from gate.measure.worker.memory import (
    current_rss_bytes,
    peak_rss_bytes,
    peak_source,
    reset_peak_rss,
)
from gate.measure.worker.timing import time_calls

# Per-call times sent back per (benchmark, batch size, round); enough for p99, bounded in size.
MAX_CALLS_PER_ROUND = 2000
RUNTIMES = ("torch", "onnxruntime")


def threading_of(backend: Backend) -> dict[str, Any]:
    """The thread settings in effect for ``backend`` in this process: its runtime's pools (read
    back from it) and the thread variables of this process's environment."""
    return {**backend.threading(), **{name: os.environ.get(name) for name in THREAD_ENV}}


def run_round(
    plans: list[BenchmarkPlan],
    settings: dict[str, Any],
    seed: int,
    barrier: Callable[[], None] | None = None,
    load_seed: int | None = None,
) -> RoundResult:
    """Measure every plan once in this process, in an order shuffled by ``seed``; with a
    ``barrier`` (a parallel ``ab`` round, gate.measure.lockstep) each timed measurement starts
    when the other worker's does, and a benchmark that fails still meets its barriers.
    ``load_seed``: the arrivals of every load run (a paired round gives both sides the same,
    so their load runs differ only in how they serve it); default, from ``seed``."""
    order = list(plans)
    random.Random(seed).shuffle(order)
    results: dict[str, BenchmarkRound] = {}
    errors: dict[str, str] = {}
    for plan in order:
        met = 0  # barriers met for this plan
        try:
            if plan.data is not None:  # a model's input pipeline (worker/data.py)
                from gate.measure.worker.data import measure_data

                met += 1
                if barrier is not None:
                    barrier()
                values, details = measure_data(plan)
                results[plan.name] = BenchmarkRound(
                    batches={}, threading={}, values=values, details=details
                )
                continue
            started = time.perf_counter()
            backend = get_backend(plan)
            backend.import_runtime()
            imported = time.perf_counter()
            backend.load()
            loaded = time.perf_counter()
            # Where the round's time went for this benchmark (record info ``round_cost``).
            cost = RoundCost(
                import_s=imported - started,
                load_s=loaded - imported,
                inputs_s=0.0,
                warmup_s=0.0,
                timing_s=0.0,
            )
            batches: dict[str, TimedBatch] = {}
            for batch_size in plan.batch_sizes:
                before = time.perf_counter()
                call = backend.call_for(batch_size)
                ready = time.perf_counter()
                met += 1
                if barrier is not None:
                    barrier()
                    ready = time.perf_counter()  # waiting for the partner is no warm-up
                timed = time_calls(
                    call,
                    warmup=settings["warmup"],
                    min_calls=settings["min_calls"],
                    min_time=settings["min_time"],
                    max_time=settings["max_time"],
                    sync=backend.sync,
                )
                timing = math.fsum(timed.times)
                cost["inputs_s"] += ready - before
                cost["warmup_s"] += time.perf_counter() - ready - timing  # first call included
                cost["timing_s"] += timing
                batches[str(batch_size)] = _timed_batch(timed.first_call, list(timed.times))
            entry = BenchmarkRound(batches=batches, threading=threading_of(backend), cost=cost)
            load = load_from_dict(plan.load)
            if load is not None:  # served under load (worker/serving.py)
                from gate.measure.worker.serving import serve

                met += 1
                if barrier is not None:
                    barrier()
                arrivals = load_seed if load_seed is not None else seed
                entry["values"], entry["details"] = serve(
                    backend, load, settings["warmup"], arrivals
                )
            results[plan.name] = entry
        except Refused as exc:  # one line as it is (a load run's queries raised)
            errors[plan.name] = exc.message
            _keep_step(barrier, barriers_of(plan) - met)
        except Exception as exc:  # report and continue with the other benchmarks
            errors[plan.name] = describe(exc)
            _keep_step(barrier, barriers_of(plan) - met)
    return RoundResult(
        order=[p.name for p in order],
        results=results,
        errors=errors,
        runtimes=runtimes_imported(),
    )


def barriers_of(plan: BenchmarkPlan) -> int:
    """The timed measurements of ``plan`` in a round: one per batch size, one for its load
    run; a data pipeline's one (a parallel round's workers meet a barrier before each)."""
    if plan.data is not None:
        return 1
    return len(plan.batch_sizes) + (1 if plan.load else 0)


def _keep_step(barrier: Callable[[], None] | None, left: int) -> None:
    """Meet the barriers a failed benchmark still owes: the partner measures it."""
    for _ in range(left):
        if barrier is not None:
            barrier()


def runtimes_imported() -> list[str]:
    """The model runtimes this process has imported (its time and memory include theirs)."""
    return [name for name in RUNTIMES if name in sys.modules]


def _timed_batch(timed_first: float, times: list[float]) -> TimedBatch:
    """A benchmark's timings at one batch size in this process: ``value`` is what the round
    contributes (``stats.best_block``: the fastest of 10 consecutive blocks' medians), ``median``
    the median of all calls, ``calls`` the per-call times (thinned) for percentiles."""
    return TimedBatch(
        first_call=timed_first,
        value=stats.best_block(times),
        median=stats.median(times),
        calls=stats.thin(times, MAX_CALLS_PER_ROUND),
    )


def run_duet(
    pairs: list[tuple[BenchmarkPlan, BenchmarkPlan]], settings: dict[str, Any], seed: int
) -> DuetResult:
    """Base and head of each benchmark loaded in this one process, calls alternated in blocks.

    Both arms share the process, so the between-process noise cancels in their ratio; the block
    order within each pair is random so that neither arm always runs first.
    """
    rng = random.Random(seed)
    order = list(pairs)
    rng.shuffle(order)
    blocks = 10
    base_results: dict[str, BenchmarkRound] = {}
    head_results: dict[str, BenchmarkRound] = {}
    errors: dict[str, str] = {}
    for base, head in order:
        try:
            arms: list[Any] = [None, None]
            load_order = [0, 1]
            rng.shuffle(load_order)  # neither arm always gets the fresher memory
            for side in load_order:
                backend = get_backend((base, head)[side])
                backend.import_runtime()
                backend.load()
                arms[side] = backend
            batches: list[dict[str, TimedBatch]] = [{}, {}]
            for batch_size in head.batch_sizes:
                calls = [arm.call_for(batch_size) for arm in arms]
                firsts = [
                    time_calls(
                        call, warmup=settings["warmup"], min_calls=1, min_time=0.0
                    ).first_call
                    for call in calls
                ]
                times: list[list[float]] = [[], []]
                for _ in range(blocks):
                    sides = [0, 1]
                    rng.shuffle(sides)
                    for side in sides:
                        timed = time_calls(
                            calls[side],
                            warmup=0,
                            min_calls=max(1, settings["min_calls"] // blocks),
                            min_time=settings["min_time"] / blocks,
                            max_time=settings["max_time"] / blocks,
                            sync=arms[side].sync,
                        )
                        times[side].extend(timed.times[1:])  # its first call is the block's warm-up
                for side in (0, 1):
                    batches[side][str(batch_size)] = _timed_batch(firsts[side], times[side])
            base_results[head.name] = BenchmarkRound(
                batches=batches[0], threading=threading_of(arms[0])
            )
            head_results[head.name] = BenchmarkRound(
                batches=batches[1], threading=threading_of(arms[1])
            )
        except Exception as exc:  # report and continue with the other pairs
            errors[head.name] = describe(exc)
    names = [h.name for _, h in order]
    return DuetResult(
        base=RoundResult(order=names, results=base_results, errors=errors),
        head=RoundResult(order=names, results=head_results, errors=errors),
    )


def run_prepare(
    plans: list[BenchmarkPlan],
    cache_dir: Path,
    eval_spec: dict[str, Any] | None = None,
    *,
    smoke: bool = False,
) -> dict[str, Any]:
    """Check the references and export/quantize in this process, so that the user's code
    never runs in the gate's own (and a base revision's never meets the head's). The int8
    variants of one model share one calibration file (made from ``eval_spec`` when given).
    ``smoke``: then load each prepared variant and call it once per batch size (what
    ``pytest --perf-gate``'s model items check), a failure being that benchmark's error.

    A reference that cannot be resolved is reported apart from other failures, under
    ``references``, as ``{"key": ..., "problem": ...}`` per benchmark; a variant this machine
    cannot run by design under ``skipped``."""
    from gate.measure import INT8_VARIANTS, VariantUnavailable
    from gate.measure.prepared import prepare, smoke_test

    prepared: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    references: dict[str, dict[str, str]] = {}
    skipped: dict[str, str] = {}
    calibrated: dict[str, str] = {}  # model -> its calibration file
    for plan in plans:
        try:
            if plan.variant in INT8_VARIANTS and not plan.calibration:
                if plan.model not in calibrated:
                    from gate.measure import quant_inputs

                    made = quant_inputs.write(plan, eval_spec, cache_dir)
                    calibrated[plan.model] = str(made)
                plan = BenchmarkPlan.from_dict(
                    {**plan.to_dict(), "calibration": calibrated[plan.model]}
                )
            ready = prepare(plan, cache_dir)
            if smoke:
                try:
                    smoke_test(ready)
                except GateError as exc:  # what the gate checks (a factory's return type)
                    errors[plan.name] = exc.message
                    continue
                except Exception as exc:  # the model's own code raised
                    errors[plan.name] = f"a first call failed: {describe(exc)}"
                    continue
            prepared.append(ready.to_dict())
        except BadReference as exc:
            references[plan.name] = {"key": exc.key, "problem": exc.problem}
            errors[plan.name] = exc.message
        except VariantUnavailable as exc:
            skipped[plan.name] = exc.message
        except GateError as exc:
            errors[plan.name] = exc.message
        except Exception as exc:  # the user's factory or export raised
            errors[plan.name] = f"preparing: {describe(exc)}"
    return {"plans": prepared, "errors": errors, "references": references, "skipped": skipped}


def run_profile(
    plans: list[BenchmarkPlan], settings: dict[str, Any], targets: dict[str, Any]
) -> dict[str, Any]:
    """Operator profiles (diagnosis): each plan at its target's batch size, trace to its path.

    A profile never feeds the timing samples; a failure is reported per benchmark."""
    from gate.measure.backends import profile_plan

    profiles: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for plan in plans:
        target = targets[plan.name]
        try:
            profiled = profile_plan(
                plan, int(target["batch_size"]), Path(target["trace"]), settings["warmup"]
            )
            profiles[plan.name] = profiled.to_dict()
        except Exception as exc:  # report and go on with the other benchmarks
            errors[plan.name] = describe(exc)
    return {"profiles": profiles, "errors": errors}


class _TimingLock:
    """A lock file shared by the probes of one run, so that two can start side by side (their
    imports overlap) while a cold start is timed alone: a probe holds it shared while it works
    and exclusively while it times loading and the first call, so no other probe runs then.
    Without a path (or without ``fcntl``), it does nothing and the parent runs probes one at a
    time."""

    def __init__(self, path: Path | None) -> None:
        self.handle = None
        if path is not None:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - not POSIX
                return
            self.fcntl = fcntl
            self.handle = open(path, "a+b")  # held for the life of the process
            fcntl.flock(self.handle, fcntl.LOCK_SH)

    def exclusive(self) -> None:
        if self.handle is not None:
            self.fcntl.flock(self.handle, self.fcntl.LOCK_UN)
            self.fcntl.flock(self.handle, self.fcntl.LOCK_EX)

    def shared(self) -> None:
        if self.handle is not None:
            self.fcntl.flock(self.handle, self.fcntl.LOCK_UN)
            self.fcntl.flock(self.handle, self.fcntl.LOCK_SH)


def run_probe(plan: BenchmarkPlan, lock: _TimingLock | None = None) -> dict[str, Any]:
    """Fresh-process memory and cold start.

    Every peak is this process's own: VmHWM, which a fresh exec starts from nothing
    (``ru_maxrss`` would start from the launching process's peak; it is read only where /proc
    is missing, and ``peak_source`` says so). RSS after imports; then the high-water mark is
    reset (Linux), so that the peaks during loading (``rss_load_peak``) and over loading and
    inference at every batch size (``rss_inference_peak``) are the model's own, not the
    imports'. Where the mark cannot be reset, both peaks count from process start, imports
    included, and ``peak_since`` says so. ``rss_peak`` is the absolute peak of the process
    (the reset restarts VmHWM, so the imports' peak is read before it); ``runtimes`` the model
    runtimes the process imported."""
    try:
        backend = get_backend(plan)
        start = time.perf_counter()
        backend.import_runtime()
        imported = time.perf_counter()
        rss_import = current_rss_bytes() or peak_rss_bytes()
        source = peak_source()
        import_peak = peak_rss_bytes()  # before the reset restarts VmHWM
        reset = source == "VmHWM" and reset_peak_rss()

        def peak_since_imports() -> int:
            return peak_rss_bytes()  # since the reset, else since process start

        lock = lock or _TimingLock(None)
        lock.exclusive()  # the cold start is timed: no other probe works meanwhile
        load_start = time.perf_counter()
        backend.load()
        fn = backend.call_for(plan.batch_sizes[0])
        loaded = time.perf_counter()
        rss_load_peak = peak_since_imports()
        fn()
        if backend.sync is not None:
            backend.sync()
        first = time.perf_counter()
        lock.shared()
        for batch_size in plan.batch_sizes:
            call = backend.call_for(batch_size)
            for _ in range(3):
                call()
        readings = {
            "import_s": imported - start,
            "load_s": loaded - load_start,
            "first_call_s": first - loaded,
            "rss_import": rss_import,
            "rss_load_peak": rss_load_peak,
            "rss_inference_peak": peak_since_imports(),
            "rss_peak": max(import_peak, peak_rss_bytes()),
            "peak_since": "imports" if reset else "process start",
            "peak_source": source,
            "runtimes": runtimes_imported(),
        }
        launch = getattr(backend, "launch", None)  # CUDA torch variants: kernel vs wall time
        if plan.cuda and launch is not None:
            readings.update(launch(plan.batch_sizes[0]))
        # After the readings: counting parameters reads the artifact again.
        return {**readings, **backend.info(), "threading": threading_of(backend)}
    except Exception as exc:
        return {"error": describe(exc)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gate.measure.worker.main")
    parser.add_argument("mode", choices=("round", "probe", "duet", "prepare", "eval", "profile"))
    parser.add_argument("plan", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    # the arrivals of load runs: the same for both sides of a paired round
    parser.add_argument("--load-seed", type=int, default=None)
    parser.add_argument("--benchmark", default=None)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--timing-lock", type=Path, default=None)
    parser.add_argument("--barrier", default=None)  # R,W fds of a parallel ab round
    parser.add_argument("--smoke", action="store_true")  # prepare: one call per batch size
    args = parser.parse_args(argv)
    processes.apply_memory_limit()
    lock = _TimingLock(args.timing_lock if args.mode == "probe" else None)
    document = json.loads(args.plan.read_text(encoding="utf-8"))
    root = document["root"]
    if root not in sys.path:
        sys.path.insert(0, root)
    plans = [BenchmarkPlan.from_dict(p) for p in document["plans"]]
    result: Mapping[str, Any]
    if args.mode == "round":
        barrier = worker_barrier(args.barrier)
        result = run_round(plans, document["settings"], args.seed, barrier, args.load_seed)
    elif args.mode == "duet":
        bases = [BenchmarkPlan.from_dict(p) for p in document["base_plans"]]
        result = run_duet(list(zip(bases, plans, strict=True)), document["settings"], args.seed)
    elif args.mode == "eval":
        from gate.measure.worker.accuracy import run_eval

        result = run_eval(plans, document["eval"], describe)
    elif args.mode == "prepare":
        cache_dir = args.cache_dir or Path(root) / ".perf-gate" / "cache"
        result = run_prepare(plans, cache_dir, document.get("eval"), smoke=args.smoke)
    elif args.mode == "profile":
        result = run_profile(plans, document["settings"], document["profile"])
    else:
        chosen = [p for p in plans if p.name == args.benchmark]
        if not chosen:
            print(f"no benchmark named {args.benchmark!r} in the plan", file=sys.stderr)
            return 2
        result = run_probe(chosen[0], lock)
    foreign = check_worker()  # a base-revision worker that ran head code measured nothing
    if foreign is not None:
        print(f"perf-gate: {foreign}", file=sys.stderr)
        return 2
    args.out.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
