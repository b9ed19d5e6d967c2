"""What differs between two run records' environment fingerprints. Pure: no I/O.

The fields that make up the environment key live here, so that the key
(``environment.environment_key``) and the label "measured in a different environment" use one
field set; everything else that differs is a note that leaves verdicts alone.
"""

from __future__ import annotations

from collections.abc import Mapping

from gate.core.types import RunRecord
from gate.units import UNIT_BYTES, format_value

# The fingerprint fields that environment.environment_key hashes: when the keys differ, stored
# timings are compared across machines and are advisory (policy.on_environment_mismatch).
ENVIRONMENT_KEY_FIELDS = ("os", "machine", "cpu_model", "gpu")
# Fields outside the key that still move timings; a difference is reported, verdicts stand.
ENVIRONMENT_OTHER_FIELDS = (
    "python",
    "implementation",
    "cpu_count",
    "threads",
    "memory_bytes",
    "gpu_count",
)
# Fields that map names to values, each name compared apart, and what an absent one is called.
ENVIRONMENT_MAPPINGS = {"packages": "not installed", "thread_env": "unset"}
# The static nvidia-smi fields of each GPU (its clocks and temperature move during any run).
GPU_STATIC_FIELDS = ("driver_version", "memory.total", "power.limit", "mig.mode.current")


def other_environment(baseline: RunRecord, current: RunRecord) -> bool:
    """Whether the two records have different environment keys (stored timings advisory)."""
    return baseline.environment.get("key") != current.environment.get("key")


def environment_differences(
    baseline: RunRecord, current: RunRecord
) -> dict[str, tuple[object, object]]:
    """The key fields that differ when the environment keys differ (``key`` itself when none
    of them does, e.g. a key chosen by hand); empty when the keys are equal."""
    if not other_environment(baseline, current):
        return {}
    differences: dict[str, tuple[object, object]] = {
        key: (baseline.environment.get(key), current.environment.get(key))
        for key in ENVIRONMENT_KEY_FIELDS
        if baseline.environment.get(key) != current.environment.get(key)
    }
    return differences or {"key": (baseline.environment.get("key"), current.environment.get("key"))}


def _shown(field: str, value: object) -> str:
    if value is None:
        return "none"
    if field == "memory_bytes" and isinstance(value, (int, float)):
        return format_value(float(value), UNIT_BYTES)
    return str(value)


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _gpus(environment: Mapping[str, object]) -> list[Mapping[str, object]]:
    gpus = environment.get("gpus")
    return [_mapping(g) for g in gpus] if isinstance(gpus, list) else []


def environment_notes(baseline: RunRecord, current: RunRecord) -> tuple[str, ...]:
    """A note naming what else differs from the baseline's fingerprint (Python, cores, memory,
    torch/onnxruntime versions, thread variables, GPU driver...): outside the environment key,
    so verdicts stand,
    but a change may come from here. The key fields join it when the keys are equal."""
    old, new = baseline.environment, current.environment
    fields: tuple[str, ...] = ENVIRONMENT_OTHER_FIELDS
    if not other_environment(baseline, current):
        fields = ENVIRONMENT_KEY_FIELDS + fields
    changes = [
        f"{f} {_shown(f, old.get(f))} -> {_shown(f, new.get(f))}"
        for f in fields
        if old.get(f) != new.get(f)
    ]
    for field, absent in ENVIRONMENT_MAPPINGS.items():
        was, now = _mapping(old.get(field)), _mapping(new.get(field))
        for name in sorted(set(was) | set(now)):
            before, after = was.get(name), now.get(name)
            if before != after:
                changes.append(f"{name} {before or absent} -> {after or absent}")
    old_gpus, new_gpus = _gpus(old), _gpus(new)
    for index in range(min(len(old_gpus), len(new_gpus))):
        for f in GPU_STATIC_FIELDS:
            before, after = old_gpus[index].get(f), new_gpus[index].get(f)
            if before != after:
                changes.append(f"gpus[{index}].{f} {_shown(f, before)} -> {_shown(f, after)}")
    if not changes:
        return ()
    return (
        "the environment also differs from the baseline's, outside the environment key "
        "(verdicts stand, but a change may come from here): " + ", ".join(changes),
    )


LABEL_LIMIT = 40  # characters of an environment's label in a report's heading


def _gpu_label(gpu: str) -> str:
    """``NVIDIA A10G`` for one GPU, ``2× NVIDIA H100 80GB HBM3`` for two alike."""
    names = [n.strip() for n in gpu.split(",") if n.strip()]
    if len(set(names)) == 1 and len(names) > 1:
        return f"{len(names)}× {names[0]}"
    return ", ".join(names)


def environment_label(environment: Mapping[str, object]) -> str:
    """The machine of a run record's fingerprint in a few readable words, for the heading of
    its report: the GPU's name where it has one (``NVIDIA A10G``), else ``cpu-`` and the
    architecture (``cpu-x86_64``); a merged record's environments joined with `` + `` (``3
    environments`` when that is long); empty for a fingerprint with neither field. The
    environment key itself is a hash, which tells two runners apart but not which is which.
    """
    merged = environment.get("environments")
    if isinstance(merged, Mapping):
        labels = [environment_label(_mapping(e)) or str(name) for name, e in merged.items()]
        joined = " + ".join(labels)
        return joined if len(joined) <= LABEL_LIMIT else f"{len(labels)} environments"
    gpu = environment.get("gpu")
    if isinstance(gpu, str) and gpu.strip():
        label = _gpu_label(gpu)
    elif isinstance(machine := environment.get("machine"), str) and machine.strip():
        label = f"cpu-{machine.strip().lower()}"
    else:
        return ""
    return label if len(label) <= LABEL_LIMIT else label[: LABEL_LIMIT - 1] + "…"
