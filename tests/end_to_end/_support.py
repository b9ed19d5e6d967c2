"""Subprocess helpers for the end-to-end tests (the venv's own ``perf-gate`` and ``pytest``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PERF_GATE = Path(sys.executable).parent / "perf-gate"


@dataclass
class Ran:
    ret: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def rows(self, benchmark: str, metric: str) -> list[str]:
        """Rows of the printed comparison table for (benchmark, metric)."""
        return [
            line
            for line in self.stdout.splitlines()
            if line.startswith(f"{benchmark} ") and line.split()[1:2] == [metric]
        ]


def run(command: list[str], cwd: Path, timeout: float = 300) -> Ran:
    env = {  # PYTEST_ADDOPTS is tests/conftest.py's, for the processes the tests start
        k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") or k == "PYTEST_ADDOPTS"
    }
    completed = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return Ran(completed.returncode, completed.stdout, completed.stderr)


def perf_gate(cwd: Path, *args: str) -> Ran:
    assert PERF_GATE.is_file(), f"the perf-gate console script is missing: {PERF_GATE}"
    return run([str(PERF_GATE), *args], cwd)


def pytest_in(cwd: Path, *args: str) -> Ran:
    return run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def by_key(entries: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["benchmark"], e["metric"]): e for e in entries}
