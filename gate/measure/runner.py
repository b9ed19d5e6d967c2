"""The parent side of measurement: prepare artifacts once, then run fresh worker processes.

A round is one fresh worker process per thread count that measures every selected benchmark
of that thread count in a random order (the processes of a round one after the other, in a
random order): thread pools are sized from the environment when a process starts, so a
benchmark with ``threads: 1`` never runs in a process set up for two. The round's value (its
fastest block median, ``stats.best_block``) is the unit the statistics use, because it moves
from one process to the next while calls within a process agree closely. Probes (memory and
cold start) are separate fresh processes per benchmark.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from gate.config import GateConfig, MeasureSettings, ModelSpec
from gate.config.models import DATA_VARIANT
from gate.core.types import BenchmarkError, Sample
from gate.errors import ConfigError, MeasurementError
from gate.measure import (
    THREAD_ENV,
    TORCH_VARIANTS,
    BadReference,
    BenchmarkPlan,
    base_imports,
    forkserver,
    processes,
    resolve_callable,
)
from gate.measure.base_imports import worker_environment as base_environment
from gate.measure.samples import probe_samples, record_info, round_samples

Progress = Callable[[str], None]
# Worker modes whose processes are forked from a preloaded interpreter where possible: the
# timed ones, evaluation (deterministic; it loads every variant of a model, so torch) and
# preparation (the user's code imported, built and exported there, not in the gate's process).
TIMED_MODES = ("round", "duet")
FORKED_MODES = (*TIMED_MODES, "eval", "prepare")
PREPARE_TIMEOUT_S = 900.0  # one model's export, quantization and inputs
# torch.compile's on-disk caches (inductor's FX graph and AOT autograd caches live under it)
INDUCTOR_CACHE = "TORCHINDUCTOR_CACHE_DIR"


def names_of(names: Sequence[str], limit: int = 4) -> str:
    """Benchmark names for a progress line: all of them, or the first few and how many more."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


@dataclass
class Measured:
    """What measuring produced: samples, per-benchmark info and the benchmarks that failed."""

    samples: list[Sample] = field(default_factory=list)
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[BenchmarkError] = field(default_factory=list)


def worker_environment(root: Path, threads: int, memory_limit: int | None = None) -> dict[str, str]:
    """The child's environment: threads pinned, the project root importable, its memory limit
    (``processes.MEMORY_LIMIT_ENV``; None: none); a worker in the base revision's worktree
    imports the base revision's code (``base_imports``)."""
    env = dict(os.environ)
    for name in THREAD_ENV:
        env[name] = str(threads)
    env.pop(processes.MEMORY_LIMIT_ENV, None)
    if memory_limit:
        env[processes.MEMORY_LIMIT_ENV] = str(memory_limit)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return base_environment(root, env)


def plan_model(model: ModelSpec, variant: str, config: GateConfig) -> BenchmarkPlan:
    """The plan of one of ``model.plan_variants`` (``data``: its input pipeline)."""
    from gate.config import benchmark_name

    if variant == DATA_VARIANT:
        assert model.data is not None
        return BenchmarkPlan(
            name=benchmark_name(model.name, variant),
            model=model.name,
            variant=variant,
            root=str(config.root),
            metrics=("data",),
            threads=model.threads or config.measure.threads,
            data=model.data.to_dict(),
        )
    return BenchmarkPlan(
        name=benchmark_name(model.name, variant),
        model=model.name,
        variant=variant,
        root=str(config.root),
        torch=model.torch,
        onnx=str(model.onnx) if model.onnx else None,
        input_callable=model.input.callable,
        input_shape=model.input.shape,
        input_dtype=model.input.dtype,
        batch_sizes=model.batch_sizes,
        metrics=model.metrics,
        threads=model.threads or config.measure.threads,
        device=model.device,
        load=model.load.to_dict() if model.load else None,
    )


class Runner:
    """Runs worker processes for a list of prepared plans and turns their output into samples."""

    def __init__(
        self,
        settings: MeasureSettings,
        root: Path,
        work_dir: Path,
        progress: Progress = lambda message: None,
        max_time: float = 10.0,
    ) -> None:
        self.settings = settings
        self.root = root
        self.work_dir = work_dir
        # Read now: torch writes its default into this process's environment once it has
        # used the cache (quantizing in preparation does), which is no choice of the user's.
        self.compile_cache = os.environ.get(INDUCTOR_CACHE) or str(
            work_dir.parent / "cache" / "inductor"
        )
        self.progress = progress
        self.max_time = max_time
        # Thread settings the head's workers reported, by benchmark (the first report kept).
        self.threading: dict[str, dict[str, Any]] = {}
        # Where each head round's time went, by benchmark (record info ``round_cost``).
        self.costs: dict[str, list[dict[str, float]]] = {}
        self.details: dict[str, list[dict[str, Any]]] = {}  # load runs', data pipelines'
        seed = (
            settings.seed if settings.seed is not None else random.SystemRandom().randrange(2**31)
        )
        self.random = random.Random(seed)
        # Preloaded interpreters for timed workers, by (interpreter, threads, torch preloaded);
        # None: it could not start, fresh interpreters instead.
        self._servers: dict[tuple[str, int, bool], forkserver.ForkServer | None] = {}
        self._servers_lock = threading.Lock()

    def environment(self, root: Path, threads: int) -> dict[str, str]:
        """A worker's environment (``worker_environment``), with torch.compile's caches in
        the report folder's cache unless the user placed them: every worker of the run, and
        later runs of unchanged code, reuse what the first compiled (a CI cache can keep it)."""
        env = worker_environment(root, threads, self.settings.memory_limit)
        env[INDUCTOR_CACHE] = self.compile_cache
        return env

    def close(self) -> None:
        """Stop the preloaded interpreters (also done when the Runner is collected)."""
        with self._servers_lock:
            for server in self._servers.values():
                if server is not None:
                    server.stop()
            self._servers.clear()

    def _server(
        self, plans: list[BenchmarkPlan], threads: int, root: Path
    ) -> forkserver.ForkServer | None:
        """The preloaded interpreter for timed workers of ``threads`` rooted in ``root``
        (started on first use; a base environment's workers get one of their interpreter,
        started in the worktree with their environment), or None where forking is off or
        failed to start (said once)."""
        if not forkserver.available():
            return None
        python = base_imports.interpreter(root)
        torch = any(p.variant in TORCH_VARIANTS for p in plans)
        if python != sys.executable:
            # A base environment's worker forks from the head's own server where that loaded
            # none of the environment's packages: both sides then start from one process
            # image, as in any paired run (two servers would add an offset of their own to
            # every round's ratio); else from a server of the environment's interpreter.
            shared = self._started(sys.executable, threads, torch, self.root)
            overlap = base_imports.own_modules(root)
            if shared is not None and shared.modules is not None and not shared.modules & overlap:
                return shared
            return self._started(python, threads, torch, root)
        return self._started(python, threads, torch, self.root)

    def _started(
        self, python: str, threads: int, torch: bool, home: Path
    ) -> forkserver.ForkServer | None:
        """The server of ``python`` for ``threads`` (torch preloaded or not), started in
        ``home`` on first use; None where it failed to start (said once)."""
        key = (python, threads, torch)
        with self._servers_lock:
            if key not in self._servers:
                preload = ("torch",) if torch else ()
                try:
                    self._servers[key] = forkserver.ForkServer(
                        self.environment(home, threads), home, preload, python
                    )
                except (forkserver.ForkServerUnavailable, OSError) as exc:
                    self.progress(f"timed workers start as fresh interpreters: {exc}")
                    self._servers[key] = None
            return self._servers[key]

    def worker(
        self,
        plans: list[BenchmarkPlan],
        args: list[str],
        timeout: float,
        *,
        root: Path | None = None,
        extra: dict[str, Any] | None = None,
        live: bool = False,
        pass_fds: Sequence[int] = (),
        on_start: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Run one worker process (``args[0]`` is its mode) and return its JSON result;
        ``live`` lets its stderr (progress lines) through to ours; ``pass_fds`` it inherits
        (a lockstep barrier), ``on_start`` is called once it was spawned (or failed to). Its
        thread variables are the plans' thread count (timed modes get plans of one thread
        count; untimed ones with several get the largest).

        Raises MeasurementError when it crashes, times out or writes nothing."""
        root = root or self.root
        document = {
            "root": str(root),
            "settings": {
                "warmup": self.settings.warmup,
                "min_calls": self.settings.min_calls,
                "min_time": self.settings.min_time,
                "max_time": self.max_time,
            },
            "plans": [p.to_dict() for p in plans],
            **(extra or {}),
        }
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.work_dir) as scratch:
            plan_file = Path(scratch) / "plan.json"
            out_file = Path(scratch) / "out.json"
            plan_file.write_text(json.dumps(document), encoding="utf-8")
            python = base_imports.interpreter(root)  # a base environment's, in its worktree
            command = [
                python,
                "-m",
                "gate.measure.worker.main",
                args[0],
                str(plan_file),
                str(out_file),
                *args[1:],
            ]
            threads = max((p.threads for p in plans), default=self.settings.threads)
            env = self.environment(root, threads)
            if any(p.cuda for p in plans):  # a CUDA driver maps what RLIMIT_DATA would count
                env.pop(processes.MEMORY_LIMIT_ENV, None)
            forked = args[0] in FORKED_MODES
            server = self._server(plans, threads, root) if forked else None
            process: subprocess.Popen[str] | forkserver.Forked | None = None
            try:
                if server is not None:
                    with contextlib.suppress(forkserver.ForkServerUnavailable):
                        process = server.spawn(
                            command[3:],
                            cwd=root,
                            env=env,
                            echo=sys.stderr if live else None,
                            pass_fds=tuple(pass_fds),
                        )
                if process is None:
                    process = subprocess.Popen(
                        command,
                        cwd=root,
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        text=True,
                        errors="replace",
                        pass_fds=pass_fds,
                        start_new_session=True,  # its own process group: see processes.py
                    )
            finally:
                if on_start is not None:
                    on_start()
            tail = (
                process.tail
                if isinstance(process, forkserver.Forked)
                else processes.Tail(process.stdout, sys.stderr if live else None)  # type: ignore[arg-type]
            )
            try:
                code = wait_for_worker(process, timeout)
                output = tail.last()
            finally:
                if process.stdout is not None:
                    process.stdout.close()
            if code is None:
                raise MeasurementError(
                    f"a worker process ran past {timeout:.0f}s and was stopped, with all it "
                    f"started; its last output: {output}",
                    slug="worker",
                )
            if code != 0 or not out_file.is_file():
                if code == 0:  # it ended before writing: sys.exit, os._exit
                    raise MeasurementError(
                        "a worker process ended (exit code 0) before writing its result: the "
                        f"model's code ended the process (sys.exit, os._exit?); {output}",
                        slug="worker",
                    )
                raise MeasurementError(
                    f"a worker process ended with {processes.exit_description(code)}: "
                    f"{processes.memory_hint(output)}",
                    slug="worker",
                )
            result: dict[str, Any] = json.loads(out_file.read_text(encoding="utf-8"))
            return result

    def round_timeout(self, plans: list[BenchmarkPlan]) -> float:
        return round_timeout(plans, self.max_time)

    def thread_groups(self, plans: list[BenchmarkPlan]) -> list[list[BenchmarkPlan]]:
        """``plans`` by thread count, the groups in a random order (one process each)."""
        groups: dict[int, list[BenchmarkPlan]] = {}
        for plan in plans:
            groups.setdefault(plan.threads, []).append(plan)
        ordered = [groups[threads] for threads in sorted(groups)]
        self.random.shuffle(ordered)
        return ordered

    def observe(self, results: dict[str, Any]) -> None:
        """Keep the thread settings a head worker reported for each benchmark (the first) and
        the cost of its every round."""
        for name, entry in results.items():
            if "threading" in entry:
                self.threading.setdefault(name, entry["threading"])
            if "cost" in entry:
                self.costs.setdefault(name, []).append(entry["cost"])
            if "details" in entry:
                self.details.setdefault(name, []).append(entry["details"])

    def measure(
        self, plans: list[BenchmarkPlan], *, timing: bool = True, root: Path | None = None
    ) -> Measured:
        """Run the rounds (unless ``timing`` is False) and the probes; ``root``: the project
        the workers import (the base revision's worktree for its probes; default this one).

        Benchmarks that fail anywhere become errors and have no samples."""
        measured = Measured()
        failed: dict[str, str] = {}
        rounds: list[dict[str, Any]] = []
        total = self.settings.rounds if timing else 0
        for index in range(total):
            live = [p for p in plans if p.name not in failed]
            if not live:
                break
            groups = self.thread_groups(live)
            processes = (
                "a fresh process"
                if len(groups) == 1
                else f"{len(groups)} fresh processes (one per thread count)"
            )
            names = names_of([p.name for p in live])
            self.progress(f"round {index + 1}/{total}: {names} in {processes}")
            merged: dict[str, Any] = {"results": {}, "errors": {}}
            for group in groups:
                try:
                    result = self.worker(
                        group,
                        ["round", "--seed", str(self.random.randrange(2**31))],
                        self.round_timeout(group),
                    )
                except MeasurementError as exc:
                    for plan in group:
                        failed.setdefault(plan.name, f"round {index + 1}: {exc}")
                    continue
                merged["results"].update(result["results"])
                merged["errors"].update(result["errors"])
            for name, message in merged["errors"].items():
                failed.setdefault(name, f"round {index + 1}: {message}")
            self.observe(merged["results"])
            rounds.append(merged)
        probes = self._probes([p for p in plans if p.name not in failed], failed, root)
        for plan in plans:
            if plan.name in failed:
                measured.errors.append(
                    BenchmarkError(benchmark=plan.name, message=failed[plan.name])
                )
                continue
            if rounds:
                entries = [r["results"][plan.name] for r in rounds]
                measured.samples.extend(round_samples(plan, entries))
            measured.samples.extend(probe_samples(plan, probes.get(plan.name, [])))
            measured.info[plan.name] = record_info(
                plan,
                probes.get(plan.name, []),
                self.threading.get(plan.name),
                self.costs.get(plan.name),
                self.details.get(plan.name),
            )
        return measured

    def _probes(
        self, plans: list[BenchmarkPlan], failed: dict[str, str], root: Path | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """Fresh-process memory/cold-start probes, ``settings.probes`` per benchmark.

        Two run at a time on machines with spare cores, so that one's imports overlap the
        other's (peak RSS is per process). The cold start is timed alone all the same: the
        probes share a lock file, held shared while a probe works and exclusively while it
        loads the model and makes the first call (worker ``_TimingLock``), so nothing else of
        perf-gate runs during a timed cold start. Without ``fcntl``, one at a time.
        """
        jobs = [
            (plan, index)
            for plan in plans
            if {"memory", "cold_start"} & set(plan.metrics)
            for index in range(self.settings.probes)
        ]
        if not jobs:
            return {}
        self.progress(f"probes: {len(jobs)} fresh process(es) for memory and cold start")
        threads = max(plan.threads for plan, _ in jobs)
        lockable = os.name == "posix"
        parallel = max(1, min(2, (os.cpu_count() or 1) // threads)) if lockable else 1
        self.work_dir.mkdir(parents=True, exist_ok=True)
        lock = self.work_dir / "probe-timing.lock"
        lock_args = ["--timing-lock", str(lock)] if lockable else []

        said = threading.Lock()  # probes start in pool threads: one progress line at a time

        def probe(job: tuple[BenchmarkPlan, int]) -> tuple[str, dict[str, Any]]:
            plan, index = job
            with said:
                self.progress(f"probe {index + 1}/{self.settings.probes}: {plan.name}")
            args = ["probe", "--benchmark", plan.name, *lock_args]
            try:
                return plan.name, self.worker([plan], args, 300.0, root=root)
            except MeasurementError as exc:
                return plan.name, {"error": str(exc)}

        with ThreadPoolExecutor(max_workers=parallel) as pool:
            results = list(pool.map(probe, jobs))
        probes: dict[str, list[dict[str, Any]]] = {}
        for name, result in results:
            if "error" in result:
                failed.setdefault(name, f"probe: {result['error']}")
            else:
                probes.setdefault(name, []).append(result)
        return probes


def round_timeout(plans: list[BenchmarkPlan], max_time: float) -> float:
    """Seconds a round worker of ``plans`` may run: its timed batches, load runs and data
    pipelines, with room for imports and loading."""
    from gate.config.load import load_from_dict

    batches = sum(len(p.batch_sizes) for p in plans if p.variant != DATA_VARIANT)
    load = sum(spec.seconds() for p in plans if (spec := load_from_dict(p.load)) is not None)
    data = 300.0 * sum(1 for p in plans if p.data)
    return 120.0 + batches * (max_time + 30.0) + load + data


class Prepared(NamedTuple):
    """Plans ready to run, benchmarks that failed to prepare, and variants skipped with why."""

    plans: list[BenchmarkPlan]
    errors: list[BenchmarkError]
    skipped: list[str]


def wait_for_worker(
    process: subprocess.Popen[str] | forkserver.Forked, timeout: float
) -> int | None:
    """Wait for a worker; its exit code, or None when it ran past ``timeout`` seconds. Past
    the timeout, or on any interruption of this wait, its whole process group is ended; after
    a normal exit, whatever the worker started and left running is ended too."""
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        processes.kill_group(process.pid)
        process.wait()
        return None
    except BaseException:  # an interrupt: nothing of the worker's may outlive the gate
        processes.kill_group(process.pid)
        raise
    processes.kill_group(process.pid, leader_alive=False)
    return code


def prepare_all(
    config: GateConfig,
    selected: set[str] | None,
    progress: Progress,
    runner: Runner | None = None,
    *,
    here: bool = False,
    smoke: bool = False,
) -> Prepared:
    """Plans for the config's models (only ``selected`` names when given), references checked,
    artifacts prepared: one ``prepare`` worker per model (forked where the fork server runs),
    so the user's code (importing the model's module, building and exporting it, quantizing)
    never runs in this process, and a model that crashes or exits takes down its worker only.

    A variant this machine cannot run by design (TensorRT without its execution provider) is
    skipped with a note; any other failure (the user's code raising, the worker dying) is that
    benchmark's error. Raises ConfigError, naming the file and the key, for a ``torch:``,
    ``input:``, ``eval.callable`` or custom metric that cannot be resolved, or an int8 variant
    with nothing to quantize: no round could measure it. Without a ``runner``, one of its own
    runs the workers and is closed before returning. ``here``: in this process instead (a
    caller that runs the user's code itself anyway). ``smoke``: each prepared variant is also
    loaded and called once per batch size in its worker (``pytest --perf-gate``'s model
    items)."""
    if runner is None and not here:
        own = Runner(config.measure, config.root, config.report_dir / "work", progress)
        try:
            return prepare_all(config, selected, progress, own, smoke=smoke)
        finally:
            own.close()
    prepared = Prepared([], [], [])
    cache_dir = config.report_dir / "cache"
    for model in config.models:
        plans = [plan_model(model, variant, config) for variant in model.plan_variants]
        plans = [p for p in plans if selected is None or p.name in selected]
        if not plans:
            continue
        _check_eval_references(model, config)
        progress(f"preparing {names_of([p.name for p in plans])}")
        eval_spec = model.eval.to_dict() if model.eval else None
        if here or runner is None:
            from gate.measure.worker.main import run_prepare

            if config.root not in map(Path, sys.path):
                sys.path.insert(0, str(config.root))
            done = run_prepare(plans, cache_dir, eval_spec, smoke=smoke)
            _collect_prepared(config, done, prepared)
            continue
        try:
            result = runner.worker(
                plans,
                ["prepare", "--cache-dir", str(cache_dir), *(["--smoke"] if smoke else [])],
                PREPARE_TIMEOUT_S,
                extra={"eval": eval_spec},
            )
        except MeasurementError as exc:  # the worker died, hung or wrote nothing
            prepared.errors.extend(
                BenchmarkError(benchmark=p.name, message=f"preparing: {exc.message}") for p in plans
            )
            continue
        _collect_prepared(config, result, prepared)
    return prepared


def _collect_prepared(config: GateConfig, result: dict[str, Any], into: Prepared) -> None:
    """A ``prepare`` answer into ``into``. Raises ConfigError for a reference that cannot be
    resolved (the first: fixing it may well fix the others)."""
    references = result.get("references", {})
    if references:
        reference = next(iter(references.values()))
        raise ConfigError(
            f"{config.label}: {reference['key']}: {reference['problem']}", slug="import"
        )
    into.plans.extend(BenchmarkPlan.from_dict(p) for p in result["plans"])
    into.skipped.extend(
        f"{name} skipped: {message}" for name, message in result.get("skipped", {}).items()
    )
    into.errors.extend(
        BenchmarkError(benchmark=name, message=message)
        for name, message in result.get("errors", {}).items()
    )


def _check_eval_references(model: ModelSpec, config: GateConfig) -> None:
    """Resolve the model's eval callable and custom metric functions (with the arguments the
    eval worker passes). Raises ConfigError naming the file and the key."""
    if model.eval is None:
        return
    key = f"models.{model.name}.eval"
    references: list[tuple[str, str, tuple[str, ...]]] = []
    if model.eval.callable:
        references.append((model.eval.callable, f"{key}.callable", ()))
    references += [
        (c.function, f"{key}.custom.{c.name}.function", ("predictions", "targets"))
        for c in model.eval.custom
    ]
    if references and str(config.root) not in sys.path:
        sys.path.insert(0, str(config.root))
    for reference, where, arguments in references:
        try:
            resolve_callable(reference, where, arguments)
        except BadReference as exc:
            raise ConfigError(f"{config.label}: {exc.message}", slug="import") from None
        except Exception:  # the user's module failed in its own code: the eval
            pass  # worker meets the same failure and reports it for each variant
