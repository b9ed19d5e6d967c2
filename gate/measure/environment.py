"""The environment fingerprint recorded with every run, and the key that says two runs compare.

Reads only the standard library and /proc; torch and onnxruntime versions come from package
metadata so that fingerprinting never imports them.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from gate.core.environment_fields import ENVIRONMENT_KEY_FIELDS
from gate.core.types import GitInfo

PACKAGES = (
    "torch",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnx",
    "numpy",
    "pytest-benchmark",
    # CUDA and cuDNN as the torch / onnxruntime-gpu wheels bring them (CUDA 12 builds)
    "nvidia-cuda-runtime-cu12",
    "nvidia-cudnn-cu12",
    "tensorrt",
)
# Variables that size native thread pools (OpenMP, MKL, OpenBLAS) when a process starts; the
# same names as gate.measure.THREAD_ENV, which worker processes get set to their plan's threads.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# nvidia-smi fields of the GPU fingerprint (static) and of the GPU state (moves during a run).
GPU_FIELDS = ("name", "driver_version", "memory.total", "power.limit", "mig.mode.current")
GPU_STATE_FIELDS = ("clocks.sm", "clocks.mem", "temperature.gpu", "clocks_throttle_reasons.active")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def query_gpus(fields: tuple[str, ...]) -> list[dict[str, str]]:
    """One dict per GPU of nvidia-smi's ``fields``; empty on machines without nvidia-smi."""
    try:
        completed = subprocess.run(
            ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if completed.returncode != 0:
        return []
    return parse_gpu_query(completed.stdout, fields)


def parse_gpu_query(text: str, fields: tuple[str, ...]) -> list[dict[str, str]]:
    """nvidia-smi's CSV (no header, no units) -> one dict per GPU; malformed lines dropped."""
    gpus = []
    for line in text.splitlines():
        values = [v.strip() for v in line.split(",")]
        if len(values) == len(fields) and values[0]:
            gpus.append(dict(zip(fields, values, strict=True)))
    return gpus


def _gpu(gpus: list[dict[str, str]]) -> str | None:
    """GPU names, the accelerator part of the environment key; None without a GPU."""
    return ", ".join(g["name"] for g in gpus) if gpus else None


def gpu_state() -> list[dict[str, str]]:
    """Clocks, temperature and throttle reasons now, per GPU (empty without a GPU)."""
    return query_gpus(GPU_STATE_FIELDS)


def gpu_state_changes(start: list[dict[str, str]], end: list[dict[str, str]]) -> list[str]:
    """Notes on clock or thermal changes between two ``gpu_state`` readings: an SM clock that
    moved by more than 5%, a temperature rise of 10 C or more, or active throttling."""
    notes = []
    for index, (before, after) in enumerate(zip(start, end, strict=False)):
        changes = []
        sm_before, sm_after = _number(before.get("clocks.sm")), _number(after.get("clocks.sm"))
        if sm_before and sm_after and abs(sm_after / sm_before - 1) > 0.05:
            changes.append(f"SM clock {sm_before:g} -> {sm_after:g} MHz")
        t_before = _number(before.get("temperature.gpu"))
        t_after = _number(after.get("temperature.gpu"))
        if t_before is not None and t_after is not None and t_after - t_before >= 10:
            changes.append(f"temperature {t_before:g} -> {t_after:g} C")
        reasons = after.get("clocks_throttle_reasons.active", "")
        if reasons and _number(reasons, base=16) not in (None, 0, 1):
            changes.append(f"clock throttle reasons {reasons}")
        if changes:
            notes.append(
                f"GPU {index} changed during the run ({'; '.join(changes)}): timings of this "
                "run may not compare with the baseline; check cooling and clock settings"
            )
    return notes


def _number(value: str | None, base: int = 10) -> float | None:
    if value is None:
        return None
    try:
        return float(int(value, 16)) if base == 16 else float(value)
    except ValueError:
        return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def fingerprint(threads: int) -> dict[str, Any]:
    """What the machine and software are: CPU, cores, memory, OS, Python, package versions,
    per GPU its name, driver, memory, power limit, MIG mode and current state; the thread
    setting (``measure.threads``) and the thread variables of the environment perf-gate ran in
    (``thread_env``, None when unset): in-process measurements run under them, while worker
    processes get their benchmark's threads (recorded in each benchmark's info)."""
    gpus = query_gpus(GPU_FIELDS + GPU_STATE_FIELDS)
    return {
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "gpu": _gpu(gpus),
        "gpu_count": len(gpus),
        "gpus": gpus,
        "threads": threads,
        "thread_env": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "packages": {name: _version(name) for name in PACKAGES},
    }


def environment_key(environment: dict[str, Any]) -> str:
    """A short key of the fields that make timings comparable: OS, CPU model, accelerator."""
    text = "|".join(str(environment.get(field)) for field in ENVIRONMENT_KEY_FIELDS)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def git_info(root: Path) -> GitInfo:
    """The commit, ref and dirtiness of the repository at ``root``; empty outside a repository."""

    def git(*args: str) -> str | None:
        try:
            completed = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return completed.stdout.strip() if completed.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return GitInfo()
    ref = os.environ.get("GITHUB_HEAD_REF") or git("rev-parse", "--abbrev-ref", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return GitInfo(commit=commit, ref=ref, dirty=bool(status) if status is not None else None)
