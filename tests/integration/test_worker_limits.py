"""Workers under limits (real worker processes, forked and fresh, on a real onnxruntime model):
a timeout ends the worker and what it started, a memory limit turns a runaway allocation into
an error naming the limit, and a crash is described by its signal, with the output's tail."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from gate.config import MeasureSettings
from gate.errors import MeasurementError
from gate.measure import BenchmarkPlan
from gate.measure.processes import exit_description
from gate.measure.runner import Runner

from ._support import write_files, write_matmul_onnx

pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.slow  # real workers, timeouts of seconds

INPUTS = """
import ctypes
import os
import subprocess
import sys
import time

import numpy as np


def ok(batch_size):
    return np.ones((batch_size, 16), dtype=np.float32)


def hang_with_child(batch_size):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(os.environ["CHILD_PID_FILE"], "w") as f:
        f.write(str(child.pid))
    print("started a child and now waiting", flush=True)
    time.sleep(120)


def allocate(batch_size):
    print("allocating 4 GiB", flush=True)
    block = bytearray(4 * 1024**3)
    return block


def crash(batch_size):
    print("about to read address 0", flush=True)
    ctypes.string_at(0)
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_files(tmp_path_factory.mktemp("limits"), {"pg_limits.py": INPUTS})
    write_matmul_onnx(root / "m.onnx")
    return root


def plan(project: Path, inputs: str) -> BenchmarkPlan:
    return BenchmarkPlan(
        name=f"{inputs}[onnxruntime]",
        model=inputs,
        variant="onnxruntime",
        root=str(project),
        onnx=str(project / "m.onnx"),
        input_callable=f"pg_limits:{inputs}",
        metrics=("latency",),
    )


SETTINGS = MeasureSettings(rounds=1, warmup=1, min_calls=5, min_time=0.01, probes=0)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat", encoding="utf-8") as f:  # a zombie is not running
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.parametrize("forked", ["1", "0"])
def test_a_timeout_ends_the_worker_and_everything_it_started(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forked: str
) -> None:
    pid_file = tmp_path / "child.pid"
    monkeypatch.setenv("CHILD_PID_FILE", str(pid_file))
    monkeypatch.setenv("PERF_GATE_FORKSERVER", forked)
    runner = Runner(SETTINGS, project, tmp_path / "work")
    try:
        with pytest.raises(MeasurementError) as raised:
            runner.worker([plan(project, "hang_with_child")], ["round"], 10.0)
    finally:
        runner.close()
    message = raised.value.message
    assert "ran past 10s and was stopped, with all it started" in message
    assert "started a child and now waiting" in message  # the output's tail
    child = int(pid_file.read_text(encoding="utf-8"))
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child), "the worker's child outlived it"


def test_a_runaway_allocation_fails_with_the_memory_limit_named(
    project: Path, tmp_path: Path
) -> None:
    settings = replace(SETTINGS, memory_limit=512 * 1024**2)
    runner = Runner(settings, project, tmp_path / "work")
    try:
        result = runner.measure([plan(project, "allocate"), plan(project, "ok")])
    finally:
        runner.close()
    errors = {e.benchmark: e.message for e in result.errors}
    assert set(errors) == {"allocate[onnxruntime]"}, errors
    assert "MemoryError" in errors["allocate[onnxruntime]"]
    assert "memory limit is 537 MB" in errors["allocate[onnxruntime]"]
    assert "measure.memory_limit" in errors["allocate[onnxruntime]"]
    assert {s.benchmark for s in result.samples} == {"ok[onnxruntime]"}


def test_a_crash_is_named_by_its_signal_with_the_last_output(project: Path, tmp_path: Path) -> None:
    runner = Runner(SETTINGS, project, tmp_path / "work")
    try:
        with pytest.raises(MeasurementError) as raised:
            runner.worker([plan(project, "crash")], ["round"], 60.0, live=True)
    finally:
        runner.close()
    message = raised.value.message
    assert "killed by SIGSEGV (a crash in native code" in message, message
    assert "about to read address 0" in message  # kept even though it was passed through
    assert "see the output above" not in message


def test_exit_descriptions() -> None:
    assert exit_description(3) == "exit code 3"
    assert exit_description(-9).startswith("killed by SIGKILL (stopped from outside")
    assert exit_description(-11).startswith("killed by SIGSEGV")
    assert exit_description(-200) == "killed by signal 200"
