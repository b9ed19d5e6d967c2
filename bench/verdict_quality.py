"""Error rates of the gate's verdicts per timing mode, on real worker processes of this machine.

Setting: an MLP (512 -> W -> W -> 512, ReLU; W calibrated so that one torch forward at batch 1
with 1 thread takes about 3 ms) and its onnxruntime export, with injected slowdowns of 0, +2.5%,
+5%, +7.5% and +10%: the slowed variants add a ``Linear(512, m)`` on the input whose width m is
fitted per runtime in this process so that it costs that fraction of the base forward. The
models are written to a temporary project (``model.py`` with ``build_e0``, ``build_e25``, ...,
``build_ort_e25``, ... and ``make_input``); the onnxruntime variants are exported and cached by
``gate.measure.prepared.prepare``; the effective slowdowns are then measured over a long
interleaved run through the gate's own backends and printed.

Recording (every value is the per-round median of a real worker process, ``Runner.worker``):

* stored: a base session of R rounds (e0 only) first; the ab and duet recordings next; then a
  head session of R rounds (all levels): baseline and head minutes apart, as with a stored
  baseline;
* ab: R rounds, each one base worker (e0) and one head worker (all five levels, random order),
  the two in random order;
* duet: R duet workers, each pairing e0 (base) with every level (head), for both runtimes.

Besides, a few "cost rounds" time what one gate round of one model costs per mode (ab: a base
worker with e0 plus a head worker with e75; duet: one duet worker with the pair; stored: the
head worker alone; the stored baseline's rounds were paid earlier).

Trials: recorded rounds are resampled with replacement (paired modes resample whole rounds, so
the pairing is kept) and the gate's decision rule is applied unchanged:
``gate.decide.compare.decide``
with the default policy (threshold 5%, alpha 0.01); in ab and duet sequentially as
``gate.pipeline`` does it (min_rounds 8, then round_step 4 more while the timing comparison is
inconclusive, up to max_rounds 24; ``PairedBaseline(looks=5)``), in stored mode with 5 rounds on
each side. Per cell: the share flagged as regression, the share inconclusive, the mean rounds
used and the gate wall time they cost. The rules of two peers are applied to the same rounds:
pytest-benchmark's ``--benchmark-compare-fail=median:5%`` (one head process against one base
process: flag when the median grew by more than 5%) and github-action-benchmark's default 200%
alert (flag when the head's value is more than twice the base's); and the gate on 20 A/A
benchmarks at once (Holm across them) gives the false-alarm rate of a whole run.

Only for speed, ``gate.core.stats.t_ppf`` (a pure function of (p, df), bisection of 200 steps) is
wrapped in an ``lru_cache`` in the processes that run the trials; every result is unchanged.

Resampling recorded rounds treats them as independent draws from one distribution: for stored
mode this understates the drift between sessions on different days or machines (here the two
sessions are only minutes apart), so its rates are a best case.

    .venv/bin/python bench/verdict_quality.py [--rounds R] [--trials N] [--quick] [--seed S]

Live gate runs (not resampled), quiet and beside a noisy neighbour, are bench/live_verdicts.py;
``--live`` here runs it with the arguments that follow.
"""

from __future__ import annotations

import argparse
import functools
import io
import itertools
import math
import multiprocessing
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gate.config import MeasureSettings, load_config
from gate.core import stats
from gate.core.types import GateResult, Policy, RunRecord, Sample, Verdict
from gate.decide.compare import PairedBaseline, decide, inconclusive_benchmarks
from gate.measure import BenchmarkPlan
from gate.measure.prepared import prepare
from gate.measure.runner import Runner
from gate.measure.samples import LATENCY

LEVELS = (("e0", 0.0), ("e25", 0.025), ("e50", 0.05), ("e75", 0.075), ("e100", 0.10))
EFFECT = dict(LEVELS)
RUNTIMES = ("torch", "onnxruntime")
MODES = ("stored", "ab", "duet")
FEATURES = 512
TARGET_FORWARD_S = 3e-3
STORED_ROUNDS = 5  # measure.rounds default: rounds per side in stored mode
FLEET = 20  # benchmarks in the "whole run" false-alarm trials
COST_LEVEL = "e75"  # the level whose gate round is timed for the wall-time estimates
PEER_MEDIAN = 0.05  # pytest-benchmark --benchmark-compare-fail=median:5%
PEER_ALERT = 2.0  # github-action-benchmark alert-threshold default 200%
IMPOSED = "*"  # suffix of the cross-check cells (A/A noise, nominal effect imposed)

# Goals (the figure the issue is judged by), all in ab mode; duet must reach them in 1/3 the time.
GOAL_FALSE_ALARM = 0.005
GOAL_FLEET_FALSE_ALARM = 0.01
GOAL_POWER = {"e75": 0.95, "e100": 0.99}
GOAL_SMALL = ("e25", 0.05)
GOAL_WALL_S = 60.0
GOAL_DUET_TIME_FACTOR = 1.0 / 3.0

MODEL_SOURCE = '''"""A 512 -> W -> W -> 512 MLP with calibrated extra work (verdict_quality.py).

``build_eNN`` adds ``extra_work(x, n)`` (two small matmuls on the input, n x n: compute on data
that fits in the core's cache, so its cost does not depend on where the weights landed in
memory) with n fitted so that it costs NN/10 % of the torch forward; ``build_ort_eNN`` the same
for the onnxruntime export. The extra result is a second output, so nothing can prune it.
"""

import numpy as np

FEATURES = 512
WIDTH = @WIDTH@
EXTRA = @EXTRA@


def make_input(batch_size):
    """The input of every variant (numpy only: onnxruntime workers never import torch)."""
    return np.random.default_rng(0).standard_normal((batch_size, FEATURES), dtype=np.float32)


def extra_work(x, n):
    a = x[:, :n]
    square = a.transpose(0, 1) @ a
    return square @ square


def build(n=0, width=WIDTH):
    import torch

    class SlowedMLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.body = torch.nn.Sequential(
                torch.nn.Linear(FEATURES, width),
                torch.nn.ReLU(),
                torch.nn.Linear(width, width),
                torch.nn.ReLU(),
                torch.nn.Linear(width, FEATURES),
            )
            self.n = n

        def extra_repr(self):
            # in the repr: gate caches exports by repr and weights, levels must differ there
            return f"extra_work n={self.n}"

        def forward(self, x):
            y = self.body(x)
            if not self.n:
                return y
            return y, extra_work(x, self.n)

    return SlowedMLP().eval()


def build_e0():
    return build(0)
'''


def progress(started: float, message: str) -> None:
    print(f"[{time.perf_counter() - started:5.0f} s] {message}", file=sys.stderr, flush=True)


def percent(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{100.0 * value:.{digits}f}%"


def signed(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{100.0 * value:+.{digits}f}%"


def wilson_upper(k: int, n: int, z: float = 1.96) -> float:
    """Upper end of the 95% Wilson interval of a proportion k/n."""
    if n == 0:
        return math.nan
    p = k / n
    denominator = 1 + z * z / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre + margin) / denominator


# --- the temporary project -----------------------------------------------------------------


def model_source(width: int, extra: dict[str, dict[str, int]]) -> str:
    text = MODEL_SOURCE.replace("@WIDTH@", str(width)).replace("@EXTRA@", repr(extra))
    for name, fraction in LEVELS:
        if fraction == 0.0:
            continue
        text += f'\n\ndef build_{name}():\n    return build(EXTRA["torch"]["{name}"])\n'
        text += f'\n\ndef build_ort_{name}():\n    return build(EXTRA["onnxruntime"]["{name}"])\n'
    return text


def builder_namespace() -> dict[str, Any]:
    """``build`` and ``make_input`` of MODEL_SOURCE, for the in-process calibration."""
    namespace: dict[str, Any] = {}
    exec(model_source(0, {"torch": {}, "onnxruntime": {}}), namespace)
    return namespace


def factory(runtime: str, level: str) -> str:
    if level == "e0":
        return "model:build_e0"
    return f"model:build_{level}" if runtime == "torch" else f"model:build_ort_{level}"


def plan_for(root: Path, runtime: str, level: str) -> BenchmarkPlan:
    return BenchmarkPlan(
        name=f"mlp[{runtime}]@{level}",
        model="mlp",
        variant=runtime,
        root=str(root),
        torch=factory(runtime, level),
        input_callable="model:make_input",
        batch_sizes=(1,),
        metrics=("latency",),
        threads=1,
    )


# --- in-process calibration ----------------------------------------------------------------


@dataclass
class Timed:
    """Per arm: every call time and each block's median (seconds), arms interleaved.

    On a shared machine a call that loses its core for a moment is slow; the lower quartile of
    all calls of an arm is what the code costs when it keeps its core, and the arms took turns
    block by block, so they met the same machine.
    """

    calls: dict[str, list[float]]
    blocks: dict[str, list[float]]

    def quartile(self, arm: str) -> float:
        return stats.quantile(self.calls[arm], 0.25)


def interleaved(
    calls: dict[str, Callable[[], object]],
    blocks: int,
    per_block: int,
    rng: random.Random,
    before: dict[str, Callable[[], object]] | None = None,
) -> Timed:
    """Time each arm in ``blocks`` blocks of ``per_block`` calls, in random order per block.

    An arm named in ``before`` has that call run (untimed) before each of its timed calls."""
    before = before or {}
    for call in calls.values():
        for _ in range(10):
            call()
    timed = Timed({name: [] for name in calls}, {name: [] for name in calls})
    clock = time.perf_counter_ns
    for _ in range(blocks):
        order = list(calls)
        rng.shuffle(order)
        for name in order:
            call, first = calls[name], before.get(name)
            times = []
            for _ in range(per_block):
                if first is not None:
                    first()
                begin = clock()
                call()
                times.append((clock() - begin) / 1e9)
            timed.calls[name].extend(times)
            timed.blocks[name].append(statistics.median(times))
    return timed


def torch_call(function: Callable[[Any], object], array: Any) -> Callable[[], object]:
    import torch

    x = torch.from_numpy(array)

    def call() -> object:
        with torch.inference_mode():
            return function(x)

    return call


def ort_call(module: Any, array: Any) -> Callable[[], object]:
    """An onnxruntime session (1 thread) on an in-memory export of ``module``."""
    import onnxruntime
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (torch.from_numpy(array),), buffer, input_names=["input"], dynamo=False
        )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(
        buffer.getvalue(), sess_options=options, providers=["CPUExecutionProvider"]
    )
    feeds = {"input": array}
    run = session.run

    def call() -> object:
        return run(None, feeds)

    return call


def calibrate_width(namespace: dict[str, Any]) -> tuple[int, list[tuple[int, float]]]:
    """The hidden width whose torch forward (batch 1, 1 thread) is closest to ~3 ms.

    The lower quartile of 80 calls per width: robust to calls that lost their core."""
    array = namespace["make_input"](1)
    tried: list[tuple[int, float]] = []
    for width in range(1536, 4097, 256):
        call = torch_call(namespace["build"](0, width), array)
        for _ in range(15):
            call()
        times = []
        for _ in range(80):
            begin = time.perf_counter()
            call()
            times.append(time.perf_counter() - begin)
        tried.append((width, stats.quantile(times, 0.25)))
        if tried[-1][1] > 1.5 * TARGET_FORWARD_S:
            break
    best = min(tried, key=lambda item: abs(math.log(item[1] / TARGET_FORWARD_S)))
    return best[0], tried


class Arms:
    """The calls of one runtime's calibration: whole base models, the extra work alone, a no-op.

    The extra work is timed on its own, each call right after a base forward (which leaves the
    caches as the model leaves them for it: in the model it costs about half as much again as
    in a tight loop), minus a call that only slices the input, also after a base forward (the
    runtime's fixed cost per call). The base forward is the median over ``BASE_COPIES`` fresh
    copies, because a copy's speed depends a few percent on where its weights landed in memory.
    """

    def __init__(self, runtime: str, namespace: dict[str, Any], width: int) -> None:
        import torch

        self.runtime = runtime
        self.namespace = namespace
        self.width = width
        self.array = namespace["make_input"](1)
        self.torch = torch

    def base(self) -> Callable[[], object]:
        module = self.namespace["build"](0, self.width)
        if self.runtime == "torch":
            return torch_call(module, self.array)
        return ort_call(module, self.array)

    def _function(self, function: Callable[[Any], object]) -> Callable[[], object]:
        if self.runtime == "torch":
            return torch_call(function, self.array)

        class Wrapped(self.torch.nn.Module):
            def forward(self, x: Any) -> object:
                return function(x)

        return ort_call(Wrapped(), self.array)

    def extra(self, n: int) -> Callable[[], object]:
        work = self.namespace["extra_work"]
        return self._function(lambda x: work(x, n))

    def noop(self) -> Callable[[], object]:
        return self._function(lambda x: x[:, :1])


BASE_COPIES = 3


@dataclass
class Fitted:
    runtime: str
    base_s: float
    base_copies_s: list[float]
    cost_s: dict[int, float]  # extra work n -> seconds


def measure_extra(
    arms: Arms, sizes: Sequence[int], blocks: int, rng: random.Random, per_block: int = 15
) -> tuple[Fitted, Timed]:
    calls = {f"base{k}": arms.base() for k in range(BASE_COPIES)}
    calls |= {"noop": arms.noop()} | {f"n{n}": arms.extra(n) for n in sizes}
    forward = calls["base0"]
    before = {name: forward for name in calls if not name.startswith("base")}
    timed = interleaved(calls, blocks, per_block, rng, before)
    copies = [timed.quartile(f"base{k}") for k in range(BASE_COPIES)]
    noop = timed.quartile("noop")
    costs = {n: max(0.0, timed.quartile(f"n{n}") - noop) for n in sizes}
    return Fitted(arms.runtime, statistics.median(copies), copies, costs), timed


def solve_sizes(fitted: Fitted) -> dict[str, int]:
    """Per level, the n whose extra cost is that fraction of the base forward.

    Between measured sizes the cost is interpolated as a power law (log-log linear); the
    cost of n x n matmuls grows about as n^3.
    """
    points: list[tuple[int, float]] = []
    for n, cost in sorted(fitted.cost_s.items()):
        # a running maximum: a noisy point must not make the curve go down
        cost = max([cost, *(c for _, c in points)])
        if cost > 0.0:
            points.append((n, cost))
    sizes: dict[str, int] = {}
    for name, fraction in LEVELS:
        if fraction == 0.0:
            continue
        target = fraction * fitted.base_s
        best = points[-1][0]
        for (n0, c0), (n1, c1) in itertools.pairwise(points):
            if c0 <= target <= c1 and c1 > c0:
                share = (math.log(target) - math.log(c0)) / (math.log(c1) - math.log(c0))
                best = round(math.exp(math.log(n0) + share * (math.log(n1) - math.log(n0))))
                break
        else:
            if target < points[0][1]:
                best = points[0][0]
        sizes[name] = max(1, min(FEATURES, best))
    return sizes


@dataclass
class Calibration:
    width: int
    widths_tried: list[tuple[int, float]]
    extra: dict[str, dict[str, int]]
    fit: dict[str, Fitted]
    check: dict[str, Fitted] = field(default_factory=dict)
    check_timed: dict[str, Timed] = field(default_factory=dict)
    check_blocks: int = 0

    def effective(self, runtime: str, level: str) -> float:
        check = self.check[runtime]
        return check.cost_s[self.extra[runtime][level]] / check.base_s


def calibrate(blocks: int, check_blocks: int, rng: random.Random, started: float) -> Calibration:
    import torch

    torch.set_num_threads(1)
    namespace = builder_namespace()
    progress(started, "calibrating the width (torch forward ~3 ms)")
    width, tried = calibrate_width(namespace)
    grid = [32, 64, 96, 128, 160, 192, 224, 256, 320, 384, 512]
    extra: dict[str, dict[str, int]] = {}
    fits: dict[str, Fitted] = {}
    for runtime in RUNTIMES:
        progress(started, f"fitting the extra work of {runtime} (width {width})")
        arms = Arms(runtime, namespace, width)
        fits[runtime] = measure_extra(arms, grid, blocks, rng)[0]
        extra[runtime] = solve_sizes(fits[runtime])
    calibration = Calibration(width, tried, extra, fits, check_blocks=check_blocks)
    for runtime in RUNTIMES:
        progress(started, f"checking the slowdowns of {runtime} ({check_blocks} blocks)")
        arms = Arms(runtime, namespace, width)
        sizes = sorted(set(extra[runtime].values()))
        fitted, timed = measure_extra(arms, sizes, check_blocks, rng, per_block=20)
        calibration.check[runtime] = fitted
        calibration.check_timed[runtime] = timed
    return calibration


# --- recording -----------------------------------------------------------------------------

KINDS = ("stored base", "ab base", "ab head", "duet", "stored head")
CONTENDED = 0.9  # a worker that had its core less than this share of its wall time waited


@dataclass
class Recording:
    """Per-round medians (seconds) of every worker, with each worker's wall time and CPU share.

    The lists of one kind are aligned: index i is round i of that kind.
    """

    stored_base: dict[str, list[float]] = field(default_factory=dict)  # runtime -> rounds
    stored_head: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    ab_base: dict[str, list[float]] = field(default_factory=dict)
    ab_head: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    duet_base: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    duet_head: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    worker_s: dict[str, list[float]] = field(default_factory=dict)  # kind -> seconds
    cpu_share: dict[str, list[float]] = field(default_factory=dict)  # kind -> CPU s / wall s
    load: list[float] = field(default_factory=list)  # 1-minute load average at each worker
    round_s: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (mode, runtime)

    def contended(self, mode: str) -> list[bool]:
        """Per recorded round of ``mode``: did one of its workers wait for a core?"""
        kinds = {"stored": ("stored base", "stored head"), "ab": ("ab base", "ab head")}
        if mode == "duet":
            return [share < CONTENDED for share in self.cpu_share["duet"]]
        first, second = (self.cpu_share[kind] for kind in kinds[mode])
        if mode == "stored":  # not paired: count the rounds of both sessions
            return [share < CONTENDED for share in first + second]
        return [min(a, b) < CONTENDED for a, b in zip(first, second, strict=True)]


@dataclass
class Ran:
    """One worker process: its per-plan medians (duet: of both arms), wall and CPU seconds."""

    values: dict[str, float]
    seconds: float
    cpu_share: float
    base: dict[str, float] = field(default_factory=dict)


def medians_of(result: dict[str, Any]) -> dict[str, float]:
    if result["errors"]:
        raise SystemExit(f"worker errors: {result['errors']}")
    return {name: r["batches"]["1"]["median"] for name, r in result["results"].items()}


def children_cpu_s() -> float:
    """User + system CPU seconds of this process's children that have been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_worker(
    runner: Runner,
    plans: list[BenchmarkPlan],
    rng: random.Random,
    base_plans: list[BenchmarkPlan] | None = None,
    recording: Recording | None = None,
) -> Ran:
    """One ``round`` worker for ``plans``, or a ``duet`` worker pairing ``base_plans`` with them."""
    if recording is not None:
        recording.load.append(os.getloadavg()[0])
    seed = str(rng.randrange(2**31))
    begin, cpu = time.perf_counter(), children_cpu_s()
    if base_plans is None:
        result = runner.worker(plans, ["round", "--seed", seed], runner.round_timeout(plans))
    else:
        result = runner.worker(
            plans,
            ["duet", "--seed", seed],
            runner.round_timeout(plans) * 2,
            extra={"base_plans": [b.to_dict() for b in base_plans]},
        )
    seconds = time.perf_counter() - begin
    share = (children_cpu_s() - cpu) / seconds
    if base_plans is None:
        return Ran(medians_of(result), seconds, share)
    return Ran(medians_of(result["head"]), seconds, share, medians_of(result["base"]))


def cost_rounds(
    runner: Runner,
    plans: dict[tuple[str, str], BenchmarkPlan],
    rng: random.Random,
    into: Recording,
) -> None:
    """Time one gate round of one model per mode (level COST_LEVEL), per runtime."""
    for runtime in RUNTIMES:
        base, head = plans[(runtime, "e0")], plans[(runtime, COST_LEVEL)]
        jobs = ["base", "head", "duet"]
        rng.shuffle(jobs)
        seconds: dict[str, float] = {}
        for job in jobs:
            if job == "duet":
                seconds[job] = run_worker(runner, [head], rng, [base]).seconds
            else:
                seconds[job] = run_worker(runner, [base if job == "base" else head], rng).seconds
        into.round_s.setdefault(("ab", runtime), []).append(seconds["base"] + seconds["head"])
        into.round_s.setdefault(("stored", runtime), []).append(seconds["head"])
        into.round_s.setdefault(("duet", runtime), []).append(seconds["duet"])


def record(
    runner: Runner,
    plans: dict[tuple[str, str], BenchmarkPlan],
    rounds: int,
    cost_sets: int,
    rng: random.Random,
    started: float,
) -> Recording:
    out = Recording()
    cells = [(runtime, level) for runtime in RUNTIMES for level, _ in LEVELS]
    base_plans = [plans[(runtime, "e0")] for runtime in RUNTIMES]
    head_plans = [plans[cell] for cell in cells]
    duet_bases = [plans[(runtime, "e0")] for runtime, _ in cells]

    def run(
        kind: str, chosen: list[BenchmarkPlan], bases: list[BenchmarkPlan] | None = None
    ) -> Ran:
        ran = run_worker(runner, chosen, rng, bases, out)
        out.worker_s.setdefault(kind, []).append(ran.seconds)
        out.cpu_share.setdefault(kind, []).append(ran.cpu_share)
        return ran

    def base_values(into: dict[str, list[float]], ran: Ran) -> None:
        for runtime in RUNTIMES:
            into.setdefault(runtime, []).append(ran.values[plans[(runtime, "e0")].name])

    def head_values(into: dict[tuple[str, str], list[float]], values: dict[str, float]) -> None:
        for cell in cells:
            into.setdefault(cell, []).append(values[plans[cell].name])

    for index in range(rounds):
        progress(started, f"stored: base session round {index + 1}/{rounds}")
        base_values(out.stored_base, run("stored base", base_plans))

    cost_at = {round(i * rounds / max(1, cost_sets)) for i in range(cost_sets)}
    for index in range(rounds):
        jobs = ["ab base", "ab head", "duet"]
        rng.shuffle(jobs)
        progress(started, f"ab + duet: round {index + 1}/{rounds} ({' / '.join(jobs)})")
        for job in jobs:
            if job == "duet":
                ran = run(job, head_plans, duet_bases)
                head_values(out.duet_base, ran.base)
                head_values(out.duet_head, ran.values)
            elif job == "ab base":
                base_values(out.ab_base, run(job, base_plans))
            else:
                head_values(out.ab_head, run(job, head_plans).values)
        if index in cost_at:
            progress(started, "cost rounds: one gate round of one model per mode")
            cost_rounds(runner, plans, rng, out)

    for index in range(rounds):
        progress(started, f"stored: head session round {index + 1}/{rounds}")
        head_values(out.stored_head, run("stored head", head_plans).values)
    return out


# --- trials (run in worker processes of a pool) ---------------------------------------------


def install_caches() -> None:
    """t_ppf is pure in (p, df) and the trials ask for few distinct pairs: memoize it."""
    if not hasattr(stats.t_ppf, "cache_info"):
        stats.t_ppf = functools.lru_cache(maxsize=None)(stats.t_ppf)


@dataclass(frozen=True)
class Task:
    mode: str
    runtime: str
    level: str
    base: tuple[float, ...]
    head: tuple[float, ...]
    trials: int
    seed: str
    policy: Policy
    fleet: int = 1


@dataclass
class Outcome:
    task: Task
    verdicts: dict[str, int] = field(default_factory=dict)  # single benchmark: verdict counts
    rounds: int = 0  # summed over trials (and benchmarks)
    at_max: int = 0  # benchmarks that ended at max_rounds
    disagree: int = 0  # final comparisons noting a t-test / Wilcoxon disagreement
    flagged_changes: list[float] = field(default_factory=list)
    runs_flagged: int = 0  # fleet: trials with any regression
    benchmarks_flagged: int = 0  # fleet: false regressions summed over benchmarks


def looks_of(policy: Policy) -> int:
    """As gate.pipeline._looks: the number of times the sequential procedure may stop."""
    return 1 + math.ceil(max(0, policy.max_rounds - policy.min_rounds) / policy.round_step)


def sample(name: str, values: Sequence[float]) -> Sample:
    return Sample(benchmark=name, metric=LATENCY, values=tuple(values))


def gate_trial(task: Task, rng: random.Random) -> tuple[GateResult, dict[str, int]]:
    """One gate run on resampled rounds: its result and the rounds used per benchmark."""
    policy = task.policy
    names = [f"bench{k:02d}" for k in range(task.fleet)]
    if task.mode == "stored":
        picks = {
            n: (
                [rng.randrange(len(task.base)) for _ in range(STORED_ROUNDS)],
                [rng.randrange(len(task.head)) for _ in range(STORED_ROUNDS)],
            )
            for n in names
        }
        baseline = RunRecord(
            samples=tuple(sample(n, [task.base[i] for i in picks[n][0]]) for n in names),
            environment={},
        )
        current = RunRecord(
            samples=tuple(sample(n, [task.head[i] for i in picks[n][1]]) for n in names),
            environment={},
        )
        return decide(baseline, current, policy), dict.fromkeys(names, STORED_ROUNDS)
    count = len(task.base)
    looks = looks_of(policy)
    chosen = {n: [rng.randrange(count) for _ in range(policy.min_rounds)] for n in names}
    while True:
        current = RunRecord(
            samples=tuple(sample(n, [task.head[i] for i in chosen[n]]) for n in names),
            environment={},
        )
        paired = PairedBaseline(
            samples=tuple(sample(n, [task.base[i] for i in chosen[n]]) for n in names),
            modes=dict.fromkeys(names, task.mode),
            looks=looks,
        )
        result = decide(None, current, policy, paired=paired)
        pending = [n for n in inconclusive_benchmarks(result) if len(chosen[n]) < policy.max_rounds]
        if not pending:
            return result, {n: len(chosen[n]) for n in names}
        for n in pending:
            step = min(policy.round_step, policy.max_rounds - len(chosen[n]))
            chosen[n] += [rng.randrange(count) for _ in range(step)]


def run_task(task: Task) -> Outcome:
    install_caches()
    rng = random.Random(task.seed)
    outcome = Outcome(task)
    for _ in range(task.trials):
        result, used = gate_trial(task, rng)
        outcome.rounds += sum(used.values())
        outcome.at_max += sum(1 for n in used.values() if n >= task.policy.max_rounds)
        regressions = 0
        for comparison in result.comparisons:
            if "disagree" in comparison.note:
                outcome.disagree += 1
            if comparison.verdict is Verdict.REGRESSION:
                regressions += 1
                outcome.flagged_changes.append(comparison.relative_change)
            if task.fleet == 1:
                key = comparison.verdict.value
                outcome.verdicts[key] = outcome.verdicts.get(key, 0) + 1
        outcome.benchmarks_flagged += regressions
        outcome.runs_flagged += regressions > 0
    return outcome


def tasks_for(
    recording: Recording, policy: Policy, trials: int, fleet_trials: int, seed: int
) -> list[Task]:
    tasks: list[Task] = []
    for mode in MODES:
        for runtime in RUNTIMES:
            for level, _ in LEVELS:
                base, head = pool(recording, mode, runtime, level)
                mode_policy = replace(policy, timing_mode=mode)
                tasks.append(
                    Task(
                        mode,
                        runtime,
                        level,
                        base,
                        head,
                        trials,
                        f"{seed}-{mode}-{runtime}-{level}",
                        mode_policy,
                    )
                )
                if level == "e0":
                    tasks.append(
                        Task(
                            mode,
                            runtime,
                            level,
                            base,
                            head,
                            fleet_trials,
                            f"{seed}-{mode}-{runtime}-fleet",
                            mode_policy,
                            FLEET,
                        )
                    )
            # Cross-check: the A/A rounds centred (true change exactly 0), nominal effect imposed.
            for level, fraction in LEVELS:
                base, head = imposed_pool(recording, mode, runtime, fraction)
                mode_policy = replace(policy, timing_mode=mode)
                name = f"{level}{IMPOSED}"
                tasks.append(
                    Task(
                        mode,
                        runtime,
                        name,
                        base,
                        head,
                        max(50, trials // 2),
                        f"{seed}-{mode}-{runtime}-{name}",
                        mode_policy,
                    )
                )
                if fraction == 0.0:
                    tasks.append(
                        Task(
                            mode,
                            runtime,
                            name,
                            base,
                            head,
                            max(50, fleet_trials // 2),
                            f"{seed}-{mode}-{runtime}-{name}-fleet",
                            mode_policy,
                            FLEET,
                        )
                    )
    tasks += method_tasks(recording, policy, trials, fleet_trials, seed)
    # The slowest first, so that the pool's two processes finish together.
    return sorted(tasks, key=lambda t: (t.fleet == 1, t.mode == "stored"))


SYNTHETIC = "normal"  # runtime name of the method check's tasks
SYNTHETIC_POOLS = 20
FRESH_POOL = 20_000


def method_noise(recording: Recording) -> float:
    """The SD of the per-round log ratios of the ab A/A rounds (median over runtimes)."""
    return statistics.median(
        statistics.stdev(log_ratios(*pool(recording, "ab", runtime, "e0"))) for runtime in RUNTIMES
    )


def method_tasks(
    recording: Recording, policy: Policy, trials: int, fleet_trials: int, seed: int
) -> list[Task]:
    """The ab rule on normal A/A noise of the recorded SD: resampled from pools of R values
    (as the trials resample R recorded rounds) against draws from a pool so large that rounds
    do not repeat. The difference is what resampling few rounds adds to the false alarms."""
    rng = random.Random(f"{seed}-method")
    sd = method_noise(recording)
    rounds = len(recording.ab_base[RUNTIMES[0]])
    ab = replace(policy, timing_mode="ab")
    tasks = []

    def normal_pool(size: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        logs = [rng.gauss(0.0, sd) for _ in range(size)]
        centre = statistics.fmean(logs)
        return (1.0,) * size, tuple(math.exp(v - centre) for v in logs)

    for k in range(SYNTHETIC_POOLS):
        base, head = normal_pool(rounds)
        single = max(1, trials // SYNTHETIC_POOLS)
        fleet = max(1, fleet_trials // SYNTHETIC_POOLS)
        tasks.append(Task("ab", SYNTHETIC, f"pool{k}", base, head, single, f"{seed}-p{k}", ab))
        tasks.append(
            Task("ab", SYNTHETIC, f"pool{k}", base, head, fleet, f"{seed}-f{k}", ab, FLEET)
        )
    base, head = normal_pool(FRESH_POOL)
    tasks.append(Task("ab", SYNTHETIC, "fresh", base, head, trials, f"{seed}-fresh", ab))
    tasks.append(Task("ab", SYNTHETIC, "fresh", base, head, fleet_trials, f"{seed}-ff", ab, FLEET))
    return tasks


def print_method_check(outcomes: list[Outcome], recording: Recording) -> None:
    def rates(fresh: bool) -> str:
        chosen = [
            o
            for o in outcomes
            if o.task.runtime == SYNTHETIC and (o.task.level == "fresh") == fresh
        ]
        single = [o for o in chosen if o.task.fleet == 1]
        fleet = [o for o in chosen if o.task.fleet > 1]
        k = sum(o.verdicts.get("regression", 0) for o in single)
        n = sum(o.task.trials for o in single)
        kf = sum(o.runs_flagged for o in fleet)
        nf = sum(o.task.trials for o in fleet)
        return (
            f"false alarms {percent(k / n, 2)} ({k}/{n}), {FLEET}-benchmark runs "
            f"{percent(kf / nf, 1)} ({kf}/{nf})"
        )

    rounds = len(recording.ab_base[RUNTIMES[0]])
    print(
        f"method check: the ab rule on normal A/A noise with the recorded SD "
        f"({percent(method_noise(recording), 1)} per round):\n  resampled from pools of "
        f"{rounds} values ({SYNTHETIC_POOLS} pools, as the trials above resample {rounds} "
        f"rounds): {rates(False)}\n  drawn from a pool of {FRESH_POOL} (rounds do not "
        f"repeat): {rates(True)}\n  (the excess of the first line over the second is what "
        "resampling few rounds adds to the\n  false alarms above; the second is the rule's rate "
        "on ideal noise of this size)"
    )


def imposed_pool(
    recording: Recording, mode: str, runtime: str, fraction: float
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The e0 (A/A) rounds with their recorded change removed and ``fraction`` multiplied in.

    What remains is this machine's noise with an exactly known effect: the error rates of the
    decision rule itself, free of the sampling error of the recorded slowed cells."""
    base, head = pool(recording, mode, runtime, "e0")
    if mode == "stored":
        shift = statistics.fmean(math.log(v) for v in base) - statistics.fmean(
            math.log(v) for v in head
        )
        return base, tuple(h * math.exp(shift) * (1.0 + fraction) for h in head)
    shift = -statistics.fmean(log_ratios(base, head))
    return base, tuple(h * math.exp(shift) * (1.0 + fraction) for h in head)


def pool(
    recording: Recording, mode: str, runtime: str, level: str
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(base values, head values) of one cell; index-aligned rounds for ab and duet."""
    if mode == "stored":
        return tuple(recording.stored_base[runtime]), tuple(recording.stored_head[(runtime, level)])
    if mode == "ab":
        return tuple(recording.ab_base[runtime]), tuple(recording.ab_head[(runtime, level)])
    return tuple(recording.duet_base[(runtime, level)]), tuple(
        recording.duet_head[(runtime, level)]
    )


# --- reporting -----------------------------------------------------------------------------


def log_ratios(base: Sequence[float], head: Sequence[float]) -> list[float]:
    return [math.log(h / b) for b, h in zip(base, head, strict=True)]


def mad_outliers(values: Sequence[float], limit: float = 3.5) -> int:
    """Values farther than ``limit`` robust SDs (1.4826 MAD) from the median."""
    centre = statistics.median(values)
    mad = statistics.median(abs(v - centre) for v in values) * 1.4826
    if mad == 0.0:
        return 0
    return sum(1 for v in values if abs(v - centre) > limit * mad)


def recorded_change(recording: Recording, mode: str, runtime: str, level: str) -> float:
    """The change in the recorded rounds as the gate estimates it (ratio of geometric means)."""
    base, head = pool(recording, mode, runtime, level)
    if mode == "stored":
        return (
            math.exp(
                statistics.fmean(math.log(v) for v in head)
                - statistics.fmean(math.log(v) for v in base)
            )
            - 1.0
        )
    return math.exp(statistics.fmean(log_ratios(base, head))) - 1.0


def print_calibration(calibration: Calibration, recording: Recording) -> None:
    tried = ", ".join(f"{w}: {s * 1e3:.2f} ms" for w, s in calibration.widths_tried)
    print(
        f"calibration: width {calibration.width} (torch forward, batch 1, 1 thread, lower "
        f"quartile of 80 calls:\n  {tried})"
    )
    for runtime in RUNTIMES:
        fit = calibration.fit[runtime]
        copies = ", ".join(f"{c * 1e3:.3f}" for c in fit.base_copies_s)
        curve = ", ".join(f"{n}: {signed(c / fit.base_s, 1)}" for n, c in fit.cost_s.items())
        print(
            f"  {runtime}: base forward {fit.base_s * 1e3:.3f} ms (fresh copies {copies} ms);"
            f" extra work n: cost\n    {curve}"
        )
    print(
        f"effective slowdowns, checked over {calibration.check_blocks} interleaved blocks of 20 "
        "calls per arm: the extra work\nalone (minus a call that only slices the input) over the"
        f" median of {BASE_COPIES} fresh base copies (lower quartiles\nof all calls; per block: "
        "median (q25..q75) of the block medians); then the change in the recorded\nworker rounds"
        " (ratio of geometric means over all rounds: what the resampling treats as the truth)"
    )
    header = (
        f"{'runtime':<12} {'level':<6} {'nominal':>8} {'n':>4} {'checked':>8} "
        f"{'per block (q25..q75)':>23} {'ab rounds':>10} {'duet rnds':>10} {'stored':>8}"
    )
    print(header)
    print("-" * len(header))
    for runtime in RUNTIMES:
        check = calibration.check[runtime]
        timed = calibration.check_timed[runtime]
        base_blocks = [
            statistics.median(values)
            for values in zip(*(timed.blocks[f"base{k}"] for k in range(BASE_COPIES)), strict=True)
        ]
        copies = ", ".join(f"{c * 1e3:.3f}" for c in check.base_copies_s)
        for level, fraction in LEVELS:
            if fraction == 0.0:
                n, checked, spread = "0", "", f"base {copies} ms"
            else:
                size = calibration.extra[runtime][level]
                shares = [
                    (e - o) / b
                    for e, o, b in zip(
                        timed.blocks[f"n{size}"], timed.blocks["noop"], base_blocks, strict=True
                    )
                ]
                n, checked = str(size), signed(calibration.effective(runtime, level))
                q25, q75 = stats.quantile(shares, 0.25), stats.quantile(shares, 0.75)
                spread = (
                    f"{signed(statistics.median(shares), 1)} ({100 * q25:+.1f}..{100 * q75:+.1f}%)"
                )
            rec = [
                signed(recorded_change(recording, mode, runtime, level))
                for mode in ("ab", "duet", "stored")
            ]
            print(
                f"{runtime:<12} {level:<6} {signed(fraction, 1):>8} {n:>4} {checked:>8} "
                f"{spread:>23} {rec[0]:>10} {rec[1]:>10} {rec[2]:>8}"
            )


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["--live"]:  # live gate runs: bench/live_verdicts.py
        import runpy

        sys.argv = [str(Path(__file__).with_name("live_verdicts.py")), *arguments[1:]]
        runpy.run_path(sys.argv[0], run_name="__main__")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=None, help="recorded rounds per mode (10)")
    parser.add_argument("--trials", type=int, default=None, help="trials per cell (2000)")
    parser.add_argument("--quick", action="store_true", help="3 rounds, 400 trials, short checks")
    parser.add_argument("--seed", type=int, default=None, help="seed (default: random)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes for the trials (default: up to 2)",
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 10)
    trials = args.trials or (400 if args.quick else 2000)
    fleet_trials = max(50, trials // 4)
    if rounds < 2:
        parser.error("--rounds must be at least 2")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    rng = random.Random(seed)
    blocks_fit, blocks_check, cost_sets = (10, 16, 1) if args.quick else (20, 40, 2)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="perf-gate-verdicts-") as tmp_name:
        tmp = Path(tmp_name)
        project = tmp / "project"
        project.mkdir()
        calibration = calibrate(blocks_fit, blocks_check, rng, started)
        (project / "model.py").write_text(
            model_source(calibration.width, calibration.extra), encoding="utf-8"
        )
        progress(started, "exporting the onnxruntime variants (gate.measure.prepared.prepare)")
        plans = {
            # a cache each: preparation keeps one export per model name in a cache folder
            (runtime, level): prepare(
                plan_for(project, runtime, level), tmp / "cache" / f"{runtime}-{level}"
            )
            for runtime in RUNTIMES
            for level, _ in LEVELS
        }
        settings = MeasureSettings(threads=1)
        runner = Runner(settings, project, tmp / "work")
        record_started = time.perf_counter()
        recording = record(runner, plans, rounds, cost_sets, rng, started)
        record_s = time.perf_counter() - record_started
        policy = load_config(root=tmp).policy  # the defaults: no config file there

    progress(started, f"trials: {trials} per cell, {fleet_trials} for the {FLEET}-benchmark runs")
    trials_started = time.perf_counter()
    tasks = tasks_for(recording, policy, trials, fleet_trials, seed)
    if args.jobs > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context, initializer=install_caches) as ex:
            outcomes = list(ex.map(run_task, tasks))
    else:
        outcomes = [run_task(task) for task in tasks]
    trials_s = time.perf_counter() - trials_started
    report(
        calibration,
        recording,
        outcomes,
        policy,
        rounds=rounds,
        trials=trials,
        fleet_trials=fleet_trials,
        seed=seed,
        load=load,
        record_s=record_s,
        trials_s=trials_s,
        total_s=time.perf_counter() - started,
        settings=settings,
        quick=args.quick,
    )
    return 0


def report(
    calibration: Calibration,
    recording: Recording,
    outcomes: list[Outcome],
    policy: Policy,
    *,
    rounds: int,
    trials: int,
    fleet_trials: int,
    seed: int,
    load: str,
    record_s: float,
    trials_s: float,
    total_s: float,
    settings: MeasureSettings,
    quick: bool,
) -> None:
    outcomes, method = (
        [o for o in outcomes if o.task.runtime != SYNTHETIC],
        [o for o in outcomes if o.task.runtime == SYNTHETIC],
    )
    single = {(o.task.mode, o.task.runtime, o.task.level): o for o in outcomes if o.task.fleet == 1}
    fleet = {
        (o.task.mode, o.task.runtime + (IMPOSED if o.task.level.endswith(IMPOSED) else "")): o
        for o in outcomes
        if o.task.fleet > 1
    }
    round_s = {key: statistics.median(values) for key, values in recording.round_s.items()}
    cost_count = len(recording.round_s[("ab", RUNTIMES[0])])
    threshold = policy.threshold_for("x", "latency").value

    print(
        f"verdict quality: {os.cpu_count()} CPUs, load average {load} at start; seed {seed}; "
        f"{rounds} recorded rounds per mode{' (--quick: rates are rough)' if quick else ''}; "
        f"recording {record_s:.0f} s, trials {trials_s:.0f} s, total {total_s:.0f} s"
    )
    print(
        f"policy: threshold {threshold:.0%}, alpha {policy.alpha:g}; paired modes sequential "
        f"{policy.min_rounds} + {policy.round_step} .. {policy.max_rounds} rounds "
        f"(looks {looks_of(policy)}); stored {STORED_ROUNDS} + {STORED_ROUNDS} rounds; worker "
        f"settings warmup {settings.warmup}, min_calls {settings.min_calls}, "
        f"min_time {settings.min_time:g}s, threads 1"
    )
    print()
    print_calibration(calibration, recording)
    print()
    print(
        "recording: worker processes, wall seconds and CPU share (CPU s / wall s; below "
        f"{CONTENDED:.0%} the worker\nwaited for a core), median (min..max); 1-minute load "
        f"average {min(recording.load):.2f}..{max(recording.load):.2f} (median "
        f"{statistics.median(recording.load):.2f}) at worker starts"
    )
    for kind in KINDS:
        values, shares = recording.worker_s[kind], recording.cpu_share[kind]
        waited = sum(1 for share in shares if share < CONTENDED)
        plans_of = "e0 of both runtimes" if kind.endswith("base") else "5 levels x 2 runtimes"
        print(
            f"  {kind:<12} {statistics.median(values):5.1f} s "
            f"({min(values):.1f}..{max(values):.1f})  "
            f"CPU {percent(statistics.median(shares), 0)} "
            f"({percent(min(shares), 0)}..{percent(max(shares), 0)}), "
            f"{waited}/{len(shares)} waited  [{plans_of}]"
        )
    print(
        f"one gate round of one model ({COST_LEVEL}), median of {cost_count} cost rounds: "
        + "; ".join(
            f"{runtime} " + ", ".join(f"{mode} {round_s[(mode, runtime)]:.1f} s" for mode in MODES)
            for runtime in RUNTIMES
        )
    )
    print()
    print(
        f"gate verdicts on resampled rounds: {trials} trials per row; est. wall = mean rounds x "
        "seconds per gate round of that mode (stored: head rounds only)"
    )
    header = (
        f"{'mode':<7} {'model':<12} {'effect':>7} {'flagged':>8} {'inconcl.':>9} {'improv.':>8} "
        f"{'mean rounds':>12} {'est. wall s':>12} {'recorded':>9}"
    )
    print(header)
    print("-" * len(header))
    for mode in MODES:
        for runtime in RUNTIMES:
            for level, fraction in LEVELS:
                o = single[(mode, runtime, level)]
                n = o.task.trials
                mean_rounds = o.rounds / n
                print(
                    f"{mode:<7} {runtime:<12} {signed(fraction, 1):>7} "
                    f"{percent(o.verdicts.get('regression', 0) / n):>8} "
                    f"{percent(o.verdicts.get('inconclusive', 0) / n):>9} "
                    f"{percent(o.verdicts.get('improvement', 0) / n):>8} "
                    f"{mean_rounds:>12.1f} {mean_rounds * round_s[(mode, runtime)]:>12.0f} "
                    f"{signed(recorded_change(recording, mode, runtime, level)):>9}"
                )
    print("(recorded: the change in all recorded rounds of the cell, the resampling's truth)")
    print()
    print_imposed(single, fleet)
    print()
    print_method_check(method, recording)
    print()
    print_peers(recording, round_s)
    print()
    print(
        f"{FLEET} benchmarks at effect 0 in one run (Holm across {FLEET}; each benchmark "
        f"sequential on its own), {fleet_trials} runs per row: runs with any false regression"
    )
    for mode in MODES:
        parts = []
        for runtime in RUNTIMES:
            o = fleet[(mode, runtime)]
            n = o.task.trials
            parts.append(
                f"{runtime} {percent(o.runs_flagged / n)} ({o.runs_flagged}/{n}, 95% upper "
                f"{percent(wilson_upper(o.runs_flagged, n))}; mean rounds "
                f"{o.rounds / (n * FLEET):.1f})"
            )
        print(f"  {mode:<7} " + "; ".join(parts))
    print()
    print_diagnostics(recording, single, policy)
    print()
    print_goals(single, fleet, round_s)
    print()
    print("caveats:")
    print(
        "  - trials resample the recorded rounds as independent draws: stored mode's base and head"
        " sessions\n    were minutes apart on one machine, so its rates understate the drift "
        "between sessions on\n    other days or runners (a best case); ab and duet measure both"
        " sides in the same round."
    )
    print(
        f"  - {rounds} recorded rounds per cell: resampling up to {policy.max_rounds} from them "
        "repeats rounds, and an\n    outlier round in the recording is in about "
        f"{percent(1 - (1 - 1 / rounds) ** policy.min_rounds, 0)} of the "
        f"{policy.min_rounds}-round draws."
    )
    print(
        "  - the ab head worker measured all 5 levels of both runtimes (10 plans) in one process;"
        " a gate\n    round measures the project's own benchmarks. The wall-time column uses the"
        " cost rounds\n    above (one model per round), not the recording's workers."
    )


def print_imposed(
    single: dict[tuple[str, str, str], Outcome], fleet: dict[tuple[str, str], Outcome]
) -> None:
    trials = single[(MODES[0], RUNTIMES[0], f"e0{IMPOSED}")].task.trials
    fleet_trials = fleet[(MODES[0], f"{RUNTIMES[0]}{IMPOSED}")].task.trials
    print(
        "cross-check: the recorded A/A rounds (e0 against e0) centred so that their change is "
        "exactly 0, with\nthe nominal slowdown multiplied into the head side: the decision rule's"
        " error rates on this\nmachine's noise, free of the sampling error of the recorded "
        f"cells; {trials} trials per cell: flagged\n(inconclusive) [mean rounds]; last column: "
        f"{FLEET}-benchmark A/A runs with a false alarm ({fleet_trials} runs)"
    )
    header = (
        f"{'mode':<7} {'model':<12} "
        + " ".join(f"{signed(f, 1):>20}" for _, f in LEVELS)
        + f" {f'{FLEET} A/A':>8}"
    )
    print(header)
    print("-" * len(header))
    for mode in MODES:
        for runtime in RUNTIMES:
            cells = []
            for level, _ in LEVELS:
                o = single[(mode, runtime, f"{level}{IMPOSED}")]
                n = o.task.trials
                flagged = o.verdicts.get("regression", 0) / n
                unsure = o.verdicts.get("inconclusive", 0) / n
                cells.append(f"{percent(flagged)} ({percent(unsure, 0)}) [{o.rounds / n:.1f}]")
            f = fleet[(mode, f"{runtime}{IMPOSED}")]
            print(
                f"{mode:<7} {runtime:<12} "
                + " ".join(f"{c:>20}" for c in cells)
                + f" {percent(f.runs_flagged / f.task.trials):>8}"
            )


def print_peers(recording: Recording, round_s: dict[tuple[str, str], float]) -> None:
    """Peers' rules on one base process and one head process (exact over all pairs)."""
    print(
        "peers on the same rounds (one base process against one head process; share flagged, "
        "exact over all pairs):"
    )
    print(
        f"  pytest-benchmark --benchmark-compare-fail=median:{PEER_MEDIAN:.0%}: head median > "
        f"base median x {1 + PEER_MEDIAN:g}"
    )
    print(f"  github-action-benchmark (alert-threshold 200%): head > base x {PEER_ALERT:g}")
    header = (
        f"{'rule':<18} {'data':<7} {'model':<12} "
        + " ".join(f"{signed(f, 1):>7}" for _, f in LEVELS)
        + f" {'rounds':>7} {'est. wall s':>12}"
    )
    print(header)
    print("-" * len(header))
    rules = (("pytest-benchmark", 1.0 + PEER_MEDIAN), ("gh-action-bench", PEER_ALERT))
    for label, limit in rules:
        for data in ("stored", "ab"):
            for runtime in RUNTIMES:
                shares = []
                for level, _ in LEVELS:
                    base, head = pool(recording, data, runtime, level)
                    if data == "stored":
                        pairs = [(b, h) for b in base for h in head]
                    else:
                        pairs = list(zip(base, head, strict=True))
                    shares.append(sum(1 for b, h in pairs if h > b * limit) / len(pairs))
                print(
                    f"{label:<18} {data:<7} {runtime:<12} "
                    + " ".join(f"{percent(s):>7}" for s in shares)
                    + f" {1:>7} {round_s[('stored', runtime)]:>12.0f}"
                )
    print(
        "(data stored: any base-session round against any head-session round, as when comparing"
        " with a\n saved run; ab: the base and head process of the same round. est. wall: one "
        "head process)"
    )


def detectable(mode: str, base: Sequence[float], head: Sequence[float], policy: Policy) -> float:
    """The change the gate's test detects with 80% power at its largest sample, on this spread.

    Paired: max_rounds rounds of log ratios at the per-look one-sided level alpha/looks/2 (as
    ``_paired_test``); stored: Welch on 5 + 5 rounds at alpha. The verdict "regression" also
    needs the estimate itself beyond the threshold."""
    if mode == "stored":
        var_b = statistics.variance([math.log(v) for v in base]) / STORED_ROUNDS
        var_h = statistics.variance([math.log(v) for v in head]) / STORED_ROUNDS
        se = math.sqrt(var_b + var_h)
        df = (var_b + var_h) ** 2 / ((var_b**2 + var_h**2) / (STORED_ROUNDS - 1))
        return math.expm1(stats.minimum_detectable_effect(se, df, policy.alpha))
    n = policy.max_rounds
    se = statistics.stdev(log_ratios(base, head)) / math.sqrt(n)
    alpha = policy.alpha / looks_of(policy) / 2.0
    return math.expm1(stats.minimum_detectable_effect(se, n - 1, alpha))


def print_diagnostics(
    recording: Recording, single: dict[tuple[str, str, str], Outcome], policy: Policy
) -> None:
    print(
        "what the verdicts rest on: spread of the per-round log ratios head/base (paired modes) or"
        " of\nthe per-round values (stored: base session | head session), rounds beyond 3.5 robust"
        f" SDs,\nrecorded rounds with a worker below {CONTENDED:.0%} CPU share (waited), share of "
        "trials ending at max\nrounds, t-test/Wilcoxon disagreement notes among the final "
        "verdicts, the mean change that the\nflagged trials estimated, and the change the test "
        f"detects with 80% power on this spread\n(MDE: ab/duet at {policy.max_rounds} rounds, "
        f"stored at {STORED_ROUNDS} + {STORED_ROUNDS})"
    )
    header = (
        f"{'mode':<7} {'model':<12} {'effect':>7} {'SD/CV':>15} {'outliers':>9} "
        f"{'waited':>7} {'at max':>7} {'t/W disagr.':>12} {'flagged est.':>13} "
        f"{'min..max ratio':>16} {'MDE':>7}"
    )
    print(header)
    print("-" * len(header))
    for mode in MODES:
        for runtime in RUNTIMES:
            for level, fraction in LEVELS:
                o = single[(mode, runtime, level)]
                base, head = pool(recording, mode, runtime, level)
                if mode == "stored":
                    cv_b = stats.coefficient_of_variation(base)
                    cv_h = stats.coefficient_of_variation(head)
                    spread = f"{percent(cv_b, 2)}|{percent(cv_h, 2)}"
                    outliers = f"{mad_outliers(base)}|{mad_outliers(head)}"
                    ratios = [h / b for b in base for h in head]
                else:
                    logs = log_ratios(base, head)
                    spread = percent(statistics.stdev(logs), 2)
                    outliers = str(mad_outliers(logs))
                    ratios = [h / b for b, h in zip(base, head, strict=True)]
                n = o.task.trials
                waited = recording.contended(mode)
                flagged = (
                    signed(statistics.fmean(o.flagged_changes), 1) if o.flagged_changes else "-"
                )
                print(
                    f"{mode:<7} {runtime:<12} {signed(fraction, 1):>7} {spread:>15} "
                    f"{outliers:>9} {f'{sum(waited)}/{len(waited)}':>7} "
                    f"{percent(o.at_max / n):>7} {percent(o.disagree / n):>12} "
                    f"{flagged:>13} {f'{min(ratios):.3f}..{max(ratios):.3f}':>16} "
                    f"{percent(detectable(mode, base, head, policy)):>7}"
                )


def print_goals(
    single: dict[tuple[str, str, str], Outcome],
    fleet: dict[tuple[str, str], Outcome],
    round_s: dict[tuple[str, str], float],
) -> None:
    suffix = ""  # "" for the recorded cells, IMPOSED for the cross-check

    def cell(mode: str, runtime: str, level: str) -> Outcome:
        return single[(mode, runtime, level + suffix)]

    def share(mode: str, runtime: str, level: str, verdict: str = "regression") -> float:
        o = cell(mode, runtime, level)
        return o.verdicts.get(verdict, 0) / o.task.trials

    def wall(mode: str, runtime: str, level: str) -> float:
        return mean_rounds(mode, runtime, level) * round_s[(mode, runtime)]

    def mean_rounds(mode: str, runtime: str, level: str) -> float:
        o = cell(mode, runtime, level)
        return o.rounds / o.task.trials

    def over(value: float, limit: float) -> str:
        return f", over by {percent(value - limit, 2)}" if value > limit else ""

    def error_goals(mode: str) -> list[tuple[str, bool, str]]:
        goals = []
        for runtime in RUNTIMES:
            value = share(mode, runtime, "e0")
            o = cell(mode, runtime, "e0")
            k = o.verdicts.get("regression", 0)
            goals.append(
                (
                    f"{mode} {runtime}: false alarms at effect 0 <= {percent(GOAL_FALSE_ALARM)}",
                    value <= GOAL_FALSE_ALARM,
                    f"{percent(value, 2)} ({k}/{o.task.trials}, 95% upper "
                    f"{percent(wilson_upper(k, o.task.trials), 2)})"
                    + over(value, GOAL_FALSE_ALARM),
                )
            )
            f = fleet[(mode, runtime + suffix)]
            value = f.runs_flagged / f.task.trials
            goals.append(
                (
                    f"{mode} {runtime}: {FLEET}-benchmark runs with a false alarm <= "
                    f"{percent(GOAL_FLEET_FALSE_ALARM)}",
                    value <= GOAL_FLEET_FALSE_ALARM,
                    f"{percent(value, 2)} ({f.runs_flagged}/{f.task.trials})"
                    + over(value, GOAL_FLEET_FALSE_ALARM),
                )
            )
            for level, goal in GOAL_POWER.items():
                value = share(mode, runtime, level)
                goals.append(
                    (
                        f"{mode} {runtime}: {signed(EFFECT[level], 1)} flagged >= "
                        f"{percent(goal, 0)}",
                        value >= goal,
                        f"{percent(value)} (short by {percent(max(0.0, goal - value))})"
                        if value < goal
                        else percent(value),
                    )
                )
            level, goal = GOAL_SMALL
            value = share(mode, runtime, level)
            goals.append(
                (
                    f"{mode} {runtime}: {signed(EFFECT[level], 1)} flagged <= {percent(goal, 0)}",
                    value <= goal,
                    percent(value) + over(value, goal),
                )
            )
        return goals

    titles = (
        (
            "",
            "goals (ab mode; duet must meet the same error goals in a third of ab's time or less):",
        ),
        (
            IMPOSED,
            "the same goals on the cross-check (A/A noise of the recording, nominal effects):",
        ),
    )
    for suffix, title in titles:
        if suffix:
            print()
        goals = error_goals("ab")
        for runtime in RUNTIMES:
            value = wall("ab", runtime, COST_LEVEL)
            goals.append(
                (
                    f"ab {runtime}: gate wall time at {signed(EFFECT[COST_LEVEL], 1)} <= "
                    f"{GOAL_WALL_S:.0f} s",
                    value <= GOAL_WALL_S,
                    f"{value:.0f} s ({mean_rounds('ab', runtime, COST_LEVEL):.1f}"
                    f" rounds x {round_s[('ab', runtime)]:.1f} s)",
                )
            )
        duet_errors = error_goals("duet")
        duet_time = []
        for runtime in RUNTIMES:
            value, limit = wall("duet", runtime, COST_LEVEL), wall("ab", runtime, COST_LEVEL)
            duet_time.append(
                (
                    f"duet {runtime}: wall at {signed(EFFECT[COST_LEVEL], 1)} <= 1/3 of ab's",
                    value <= limit * GOAL_DUET_TIME_FACTOR,
                    f"{value:.0f} s vs ab {limit:.0f} s (ratio {value / limit:.2f})",
                )
            )
        print(title)
        for text, met, detail in goals:
            print(f"  {'MET    ' if met else 'NOT MET'}  {text:<62} {detail}")
        duet_ok = all(met for _, met, _ in duet_errors + duet_time)
        print(f"  {'MET    ' if duet_ok else 'NOT MET'}  duet reaches the same in 1/3 of the time:")
        for text, met, detail in duet_errors + duet_time:
            print(f"      {'ok  ' if met else 'FAIL'} {text:<58} {detail}")


if __name__ == "__main__":
    sys.exit(main())
