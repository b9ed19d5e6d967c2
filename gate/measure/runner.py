"""The parent side of measurement: prepare artifacts once, then run fresh worker processes.

A round is one fresh worker process that measures every selected benchmark in a random order;
the per-round median is the unit the statistics use, because the median moves several percent
from one process to the next while calls within a process agree closely. Probes (memory and
cold start) are separate fresh processes per benchmark.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from gate import stats
from gate.config import GateConfig, MeasureSettings, ModelSpec
from gate.errors import GateError, MeasurementError
from gate.measure import ONNX_VARIANTS, BenchmarkPlan, VariantUnavailable
from gate.model import BenchmarkError, Direction, Metric, Sample
from gate.units import UNIT_BYTES, UNIT_RATE, UNIT_SECONDS

Progress = Callable[[str], None]

LATENCY = Metric("latency", UNIT_SECONDS, Direction.LOWER)
COLD_START = Metric("cold_start", UNIT_SECONDS, Direction.LOWER)
MEMORY_PEAK = Metric("memory.peak", UNIT_BYTES, Direction.LOWER)
MEMORY_LOAD = Metric("memory.load", UNIT_BYTES, Direction.LOWER)
MODEL_SIZE = Metric("model_size", UNIT_BYTES, Direction.LOWER)
GPU_MEMORY = Metric("gpu_memory.allocated", UNIT_BYTES, Direction.LOWER)


def throughput_metric(batch_size: int) -> Metric:
    return Metric(f"throughput@{batch_size}", UNIT_RATE, Direction.HIGHER)


@dataclass
class Measured:
    """What measuring produced: samples, per-benchmark info and the benchmarks that failed."""

    samples: list[Sample] = field(default_factory=list)
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[BenchmarkError] = field(default_factory=list)


def worker_environment(root: Path, threads: int) -> dict[str, str]:
    """The child's environment: threads pinned, the project root importable."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return env


def plan_model(model: ModelSpec, variant: str, config: GateConfig) -> BenchmarkPlan:
    from gate.config import benchmark_name

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
    )


def prepare(plan: BenchmarkPlan, cache_dir: Path) -> BenchmarkPlan:
    """Export/quantize what an ONNX variant needs (cached by content under ``cache_dir``)."""
    if plan.variant not in ONNX_VARIANTS:
        return plan
    if sys.path[0] != plan.root and plan.root not in sys.path:
        sys.path.insert(0, plan.root)
    onnx_path = Path(plan.onnx) if plan.onnx else None
    if onnx_path is None:
        from gate.measure.torch_backend import export_onnx

        onnx_path = export_onnx(plan, cache_dir)
    if plan.variant == "onnxruntime-tensorrt":
        from gate.measure.onnx_backend import unavailable_reason

        reason = unavailable_reason(plan.variant)
        if reason:
            raise VariantUnavailable(reason, slug="variant-unavailable")
    if plan.variant == "onnxruntime-int8":
        from gate.measure.onnx_backend import quantize_int8

        onnx_path = quantize_int8(onnx_path, cache_dir)
    return BenchmarkPlan.from_dict({**plan.to_dict(), "onnx": str(onnx_path)})


def smoke_test(plan: BenchmarkPlan) -> None:
    """Load the variant and run one call per batch size here, so that errors surface early."""
    from gate.measure import get_backend

    if plan.root not in sys.path:
        sys.path.insert(0, plan.root)
    backend = get_backend(plan)
    backend.import_runtime()
    backend.load()
    for batch_size in plan.batch_sizes:
        backend.call_for(batch_size)()


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
        self.progress = progress
        self.max_time = max_time
        seed = (
            settings.seed if settings.seed is not None else random.SystemRandom().randrange(2**31)
        )
        self.random = random.Random(seed)

    def worker(
        self,
        plans: list[BenchmarkPlan],
        args: list[str],
        timeout: float,
        *,
        root: Path | None = None,
        extra: dict[str, Any] | None = None,
        live: bool = False,
    ) -> dict[str, Any]:
        """Run one worker process (``args[0]`` is its mode) and return its JSON result;
        ``live`` lets its stderr (progress lines) through to ours.

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
            command = [
                sys.executable,
                "-m",
                "gate.measure.worker",
                args[0],
                str(plan_file),
                str(out_file),
                *args[1:],
            ]
            try:
                completed = subprocess.run(
                    command,
                    cwd=root,
                    env=worker_environment(
                        root, max([self.settings.threads, *(p.threads for p in plans)])
                    ),
                    stdout=subprocess.PIPE,
                    stderr=None if live else subprocess.PIPE,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise MeasurementError(
                    f"a worker process ran past {timeout:.0f}s and was stopped", slug="worker"
                ) from None
            if completed.returncode != 0 or not out_file.is_file():
                output = completed.stderr or "(see the output above)"
                tail = " | ".join(output.strip().splitlines()[-3:])
                raise MeasurementError(
                    f"worker process exited with code {completed.returncode}: {tail}",
                    slug="worker",
                )
            result: dict[str, Any] = json.loads(out_file.read_text(encoding="utf-8"))
            return result

    def round_timeout(self, plans: list[BenchmarkPlan]) -> float:
        batches = sum(len(p.batch_sizes) for p in plans)
        return 120.0 + batches * (self.max_time + 30.0)

    def measure(self, plans: list[BenchmarkPlan], *, timing: bool = True) -> Measured:
        """Run the rounds (unless ``timing`` is False) and the probes.

        Benchmarks that fail anywhere become errors and have no samples."""
        measured = Measured()
        failed: dict[str, str] = {}
        rounds: list[dict[str, Any]] = []
        total = self.settings.rounds if timing else 0
        for index in range(total):
            live = [p for p in plans if p.name not in failed]
            if not live:
                break
            self.progress(f"round {index + 1}/{total}: {len(live)} benchmark(s) in a fresh process")
            try:
                result = self.worker(
                    live,
                    ["round", "--seed", str(self.random.randrange(2**31))],
                    self.round_timeout(live),
                )
            except MeasurementError as exc:
                for plan in live:
                    failed.setdefault(plan.name, f"round {index + 1}: {exc}")
                break
            for name, message in result["errors"].items():
                failed.setdefault(name, f"round {index + 1}: {message}")
            rounds.append(result)
        probes = self._probes([p for p in plans if p.name not in failed], failed)
        for plan in plans:
            if plan.name in failed:
                measured.errors.append(
                    BenchmarkError(benchmark=plan.name, message=failed[plan.name])
                )
                continue
            if rounds:
                entries = [r["results"][plan.name] for r in rounds]
                measured.samples.extend(round_samples(plan, entries))
            measured.samples.extend(_probe_samples(plan, probes.get(plan.name, [])))
            measured.info[plan.name] = _info(plan, probes.get(plan.name, []))
        return measured

    def _probes(
        self, plans: list[BenchmarkPlan], failed: dict[str, str]
    ) -> dict[str, list[dict[str, Any]]]:
        """Fresh-process memory/cold-start probes, ``settings.probes`` per benchmark.

        Probes may run two at a time on machines with spare cores: peak RSS is per process, and
        each probe is single-threaded; timing rounds never run concurrently with anything.
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
        parallel = max(1, min(2, (os.cpu_count() or 1) // max(1, self.settings.threads)))

        def probe(job: tuple[BenchmarkPlan, int]) -> tuple[str, dict[str, Any]]:
            plan = job[0]
            try:
                return plan.name, self.worker([plan], ["probe", "--benchmark", plan.name], 300.0)
            except MeasurementError as exc:
                return plan.name, {"error": str(exc)}

        probes: dict[str, list[dict[str, Any]]] = {}
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            for name, result in pool.map(probe, jobs):
                if "error" in result:
                    failed.setdefault(name, f"probe: {result['error']}")
                else:
                    probes.setdefault(name, []).append(result)
        return probes


def round_samples(plan: BenchmarkPlan, entries: Iterable[dict[str, Any]]) -> list[Sample]:
    """Latency and throughput samples from a benchmark's per-round worker entries."""
    per_batch: dict[int, list[dict[str, Any]]] = {b: [] for b in plan.batch_sizes}
    for entry in entries:
        batches = entry["batches"]
        for batch_size in plan.batch_sizes:
            per_batch[batch_size].append(batches[str(batch_size)])
    samples: list[Sample] = []
    if "latency" in plan.metrics:
        first = per_batch[plan.batch_sizes[0]]
        samples.append(
            Sample(
                benchmark=plan.name,
                metric=LATENCY,
                values=tuple(r["median"] for r in first),
                calls=tuple(c for r in first for c in r["calls"]),
                first_calls=tuple(r["first_call"] for r in first),
            )
        )
    if "throughput" in plan.metrics:
        for batch_size, results in per_batch.items():
            if "latency" in plan.metrics and batch_size == plan.batch_sizes[0]:
                continue  # the same timings as latency: one comparison, not two
            samples.append(
                Sample(
                    benchmark=plan.name,
                    metric=throughput_metric(batch_size),
                    values=tuple(batch_size / r["median"] for r in results),
                )
            )
    return samples


def _probe_samples(plan: BenchmarkPlan, probes: list[dict[str, Any]]) -> list[Sample]:
    if not probes:
        return []
    samples: list[Sample] = []
    if "memory" in plan.metrics:
        samples.append(
            Sample(
                benchmark=plan.name,
                metric=MEMORY_PEAK,
                values=tuple(float(p["rss_peak"]) for p in probes),
            )
        )
        samples.append(
            Sample(
                benchmark=plan.name,
                metric=MEMORY_LOAD,
                values=tuple(float(max(0, p["rss_load"] - p["rss_import"])) for p in probes),
            )
        )
        samples.append(
            Sample(
                benchmark=plan.name,
                metric=MODEL_SIZE,
                values=tuple(float(p["model_size"]) for p in probes),
            )
        )
    if "cold_start" in plan.metrics:
        samples.append(
            Sample(
                benchmark=plan.name,
                metric=COLD_START,
                values=tuple(p["load_s"] + p["first_call_s"] for p in probes),
            )
        )
    if "gpu_memory" in plan.metrics and all("gpu_allocated" in p for p in probes):
        # Gated on what tensors hold (allocated); the allocator's reserve is reported in info.
        samples.append(
            Sample(
                benchmark=plan.name,
                metric=GPU_MEMORY,
                values=tuple(float(p["gpu_allocated"]) for p in probes),
            )
        )
    return samples


def _info(plan: BenchmarkPlan, probes: list[dict[str, Any]]) -> dict[str, Any]:
    info: dict[str, Any] = {
        "model": plan.model,
        "variant": plan.variant,
        "threads": plan.threads,
        "batch_sizes": list(plan.batch_sizes),
    }
    if probes:
        info["import_s"] = stats.median([p["import_s"] for p in probes])
        for key in ("params", "model_size"):
            if key in probes[0]:
                info[key] = probes[0][key]
        for key in _CUDA_INFO:
            if key in probes[0]:
                info[key] = stats.median([p[key] for p in probes])
    if plan.cuda:
        info["device"] = plan.device
    return info


# Probe results on CUDA devices kept in the record's info (medians over probes).
_CUDA_INFO = (
    "gpu_reserved",
    "tf32_matmul",
    "tf32_cudnn",
    "cudnn_benchmark",
    "gpu_ms_per_call",
    "wall_ms_per_call",
)


class Prepared(NamedTuple):
    """Plans ready to run, benchmarks that failed to prepare, and variants skipped with why."""

    plans: list[BenchmarkPlan]
    errors: list[BenchmarkError]
    skipped: list[str]


def prepare_all(config: GateConfig, selected: set[str] | None, progress: Progress) -> Prepared:
    """Plans for the config's models (only ``selected`` names when given), artifacts prepared.

    A variant this machine cannot run by design (TensorRT without its execution provider) is
    skipped with a note; any other failure is that benchmark's error."""
    prepared = Prepared([], [], [])
    cache_dir = config.report_dir / "cache"
    for model in config.models:
        for variant in model.variants:
            plan = plan_model(model, variant, config)
            if selected is not None and plan.name not in selected:
                continue
            progress(f"preparing {plan.name}")
            try:
                prepared.plans.append(prepare(plan, cache_dir))
            except VariantUnavailable as exc:
                prepared.skipped.append(f"{plan.name} skipped: {exc.message}")
            except GateError as exc:
                prepared.errors.append(BenchmarkError(benchmark=plan.name, message=exc.message))
    return prepared
