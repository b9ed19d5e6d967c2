"""Worker results -> samples and the record's info: the per-round values (fastest block
medians) of latency and throughput, the probes' memory, model size, cold start and GPU memory,
and what a benchmark is (variant, threads, parameters, how memory peaks were read)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePath
from typing import Any

from gate.core import stats
from gate.core.types import Direction, Metric, Sample
from gate.measure import BenchmarkPlan
from gate.measure.messages import BenchmarkRound, TimedBatch
from gate.units import UNIT_BYTE_RATE, UNIT_BYTES, UNIT_RATE, UNIT_SECONDS, format_value

LATENCY = Metric("latency", UNIT_SECONDS, Direction.LOWER)
COLD_START = Metric("cold_start", UNIT_SECONDS, Direction.LOWER)
MEMORY_PEAK = Metric("memory.peak", UNIT_BYTES, Direction.LOWER)
MEMORY_LOAD = Metric("memory.load", UNIT_BYTES, Direction.LOWER)
MEMORY_INFERENCE = Metric("memory.inference", UNIT_BYTES, Direction.LOWER)
MODEL_SIZE = Metric("model_size", UNIT_BYTES, Direction.LOWER)
GPU_MEMORY = Metric("gpu_memory.allocated", UNIT_BYTES, Direction.LOWER)


def throughput_metric(batch_size: int) -> Metric:
    return Metric(f"throughput@{batch_size}", UNIT_RATE, Direction.HIGHER)


def round_value(batch: TimedBatch) -> float:
    """What one round contributes for one batch size: the fastest block's median
    (``stats.best_block``); a worker entry written before it existed has only its median."""
    return float(batch.get("value", batch["median"]))


def round_samples(plan: BenchmarkPlan, entries: Iterable[BenchmarkRound]) -> list[Sample]:
    """Latency and throughput samples from a benchmark's per-round worker entries, and the
    values a round measured once (a load run's, a data pipeline's: ``value_samples``)."""
    entries = list(entries)
    if plan.data is not None:
        return value_samples(plan.name, entries)
    samples: list[Sample] = []
    per_batch: dict[int, list[TimedBatch]] = {b: [] for b in plan.batch_sizes}
    for entry in entries:
        batches = entry["batches"]
        for batch_size in plan.batch_sizes:
            per_batch[batch_size].append(batches[str(batch_size)])
    if "latency" in plan.metrics:
        first = per_batch[plan.batch_sizes[0]]
        samples.append(
            Sample(
                benchmark=plan.name,
                metric=LATENCY,
                values=tuple(round_value(r) for r in first),
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
                    values=tuple(batch_size / round_value(r) for r in results),
                )
            )
    return samples + value_samples(plan.name, entries)


def value_samples(benchmark: str, entries: list[BenchmarkRound]) -> list[Sample]:
    """One sample per metric of the rounds' ``values`` (one value per round), in the order
    the first round named them; a metric some round lacks is left out (the benchmark failed
    there, and its error says so)."""
    names = list(entries[0].get("values", {})) if entries else []
    samples = []
    for name in names:
        found = [e.get("values", {}).get(name) for e in entries]
        kept = [v for v in found if v is not None]
        if len(kept) != len(found):
            continue
        first = kept[0]
        direction = Direction.HIGHER if first["higher"] else Direction.LOWER
        samples.append(
            Sample(
                benchmark=benchmark,
                metric=Metric(name, first["unit"], direction),
                values=tuple(float(v["value"]) for v in kept),
            )
        )
    return samples


def probe_samples(plan: BenchmarkPlan, probes: list[dict[str, Any]]) -> list[Sample]:
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
        # The model's own memory: peaks after the imports, minus the RSS the imports left.
        samples.append(
            Sample(
                benchmark=plan.name,
                metric=MEMORY_LOAD,
                values=tuple(float(max(0, p["rss_load_peak"] - p["rss_import"])) for p in probes),
            )
        )
        samples.append(
            Sample(
                benchmark=plan.name,
                metric=MEMORY_INFERENCE,
                values=tuple(
                    float(max(0, p["rss_inference_peak"] - p["rss_import"])) for p in probes
                ),
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


def record_info(
    plan: BenchmarkPlan,
    probes: list[dict[str, Any]],
    threading: dict[str, Any] | None,
    costs: list[dict[str, float]] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The record's info on a benchmark: what it is (and the ONNX file measured), its thread
    settings as a worker reported them (a round's, else a probe's), parameters, sizes, how
    memory peaks were read and what the probe process had imported, and where its rounds' time
    went (``costs``: the rounds' ``cost`` entries); a load run's or data pipeline's rounds
    (``details``) summed up in a note."""
    info: dict[str, Any] = {
        "model": plan.model,
        "variant": plan.variant,
        "threads": plan.threads,
        "batch_sizes": list(plan.batch_sizes),
    }
    threading = threading or next((p["threading"] for p in probes if "threading" in p), None)
    if threading is not None:
        info["threading"] = threading
    if plan.onnx:  # an export's name holds the graph's digest: which graph was measured
        info["onnx_file"] = PurePath(plan.onnx).name
    if costs:
        info["round_cost"] = round_cost(costs)
    if probes:
        info["import_s"] = stats.median([p["import_s"] for p in probes])
        for key in ("params", "model_size"):
            if key in probes[0]:
                info[key] = probes[0][key]
        if "runtimes" in probes[0]:
            info["probe_runtimes"] = sorted({r for p in probes for r in p.get("runtimes", [])})
        if "memory" in plan.metrics:
            info["memory_peak_since"] = memory_peak_since(probes)
        for key in _CUDA_INFO:
            if key in probes[0]:
                info[key] = stats.median([p[key] for p in probes])
    if plan.cuda:
        info["device"] = plan.device
    notes = list(plan.notes)
    if details:
        notes += rounds_notes(details)
    if notes:
        info["notes"] = notes
    return info


def rounds_notes(details: list[dict[str, Any]]) -> list[str]:
    """What the rounds' load runs and data pipelines saw, as the report's notes (medians over
    rounds): queries dropped, the batches formed, the scheduler's lateness, the max-rate
    search's cost; the CPU of a loader's worker processes."""
    notes: list[str] = []

    def median(key: str) -> float:
        return stats.median([float(d[key]) for d in details if key in d])

    if any("offered" in d for d in details):
        text = (
            f"load: {median('completed'):.0f} of {median('offered'):.0f} queries served per "
            f"round (median), {median('dropped'):.0f} dropped, mean batch "
            f"{median('mean_batch'):.2g}, the scheduler's lateness p99 "
            f"{format_value(median('lateness_p99'), UNIT_SECONDS)}"
        )
        notes.append(text)
    if any("search_probes" in d for d in details):
        exhausted = sum(1 for d in details if d.get("search_exhausted"))
        notes.append(
            f"max-rate search: {median('search_probes'):.0f} load runs in "
            f"{median('search_s'):.1f} s per round (median)"
            + (f"; {exhausted} round(s) hit search_budget before 5% precision" if exhausted else "")
        )
    if any("items" in d for d in details):
        workers = [d.get("worker_cpu") or [] for d in details if "items" in d]
        counts = sorted({len(w) for w in workers})
        shares = sorted(share for w in workers for share in w)
        text = (
            f"data: {median('items'):.0f} items ({format_value(median('bytes'), UNIT_BYTES)}) "
            f"in {median('batches'):.0f} batches timed per round, "
            f"{format_value(median('bytes_per_s'), UNIT_BYTE_RATE)} (median); the main "
            f"process used {median('main_cpu'):.2f} of a core"
        )
        if shares:
            text += (
                f", each of its {'/'.join(map(str, counts))} loader worker process(es) "
                f"{stats.median(shares):.2f} (median; {shares[0]:.2f} to {shares[-1]:.2f})"
            )
        notes.append(text)
    return notes


def memory_peak_since(probes: list[dict[str, Any]]) -> str:
    """How the probes read their peaks, the least exact reading named when they differ."""
    if any(p.get("peak_source", "VmHWM") != "VmHWM" for p in probes):
        return (
            "process start (ru_maxrss: no /proc here, so memory.load and memory.inference "
            "include the imports' own peak, and memory.peak may include the peak of the "
            "process that started the probe)"
        )
    if all(p.get("peak_since") == "imports" for p in probes):
        return "imports (VmHWM reset after them)"
    return (
        "process start (VmHWM: the peak could not be reset after the imports here, so "
        "memory.load and memory.inference include the imports' own peak)"
    )


COST_PARTS = ("import_s", "load_s", "inputs_s", "warmup_s", "timing_s")


def round_cost(costs: list[dict[str, float]]) -> dict[str, float]:
    """Median seconds per round a benchmark spent importing its runtime (the process's first
    benchmark pays for it), loading, making its inputs, warming up (first calls included) and
    in timed calls, over ``costs``; ``rounds`` is how many rounds they are."""
    summary = {
        part: stats.median([c[part] for c in costs if part in c])
        for part in COST_PARTS
        if any(part in c for c in costs)
    }
    return {**summary, "rounds": len(costs)}


# Probe results on CUDA devices kept in the record's info (medians over probes).
_CUDA_INFO = (
    "gpu_reserved",
    "tf32_matmul",
    "tf32_cudnn",
    "cudnn_benchmark",
    "gpu_ms_per_call",
    "wall_ms_per_call",
)
