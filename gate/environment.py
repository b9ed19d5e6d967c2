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

from gate.model import GitInfo

PACKAGES = ("torch", "onnxruntime", "onnx", "numpy", "pytest-benchmark")


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


def _gpu() -> str | None:
    """GPU names from nvidia-smi when present; None on machines without one."""
    try:
        completed = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    names = [line.strip() for line in completed.stdout.splitlines() if line.strip()]
    return ", ".join(names) if completed.returncode == 0 and names else None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def fingerprint(threads: int) -> dict[str, Any]:
    """What the machine and software are: CPU, cores, memory, OS, Python, package versions."""
    return {
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "gpu": _gpu(),
        "threads": threads,
        "packages": {name: _version(name) for name in PACKAGES},
    }


def environment_key(environment: dict[str, Any]) -> str:
    """A short key of the fields that make timings comparable: OS, CPU model, accelerator."""
    text = "|".join(str(environment.get(field)) for field in ("os", "machine", "cpu_model", "gpu"))
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
