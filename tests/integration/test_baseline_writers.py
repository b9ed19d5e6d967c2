"""Who may write a baseline, and what a baseline may be: ``perf-gate`` run as a user would, on
an ONNX-only project (no DVC). Only ``run --save`` (and ``baseline promote``) writes one, under
the baseline lock and only over the baseline its run read; ``run --out`` and ``merge -o`` refuse
any path in the store; a baseline that is a FIFO, a device, a folder or too large is refused in
one line without being read. Each case checks the exit code, the one line, no traceback and the
baseline byte for byte."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path

import pytest

from gate.core.types import Direction, GitInfo, Metric, RunRecord, Sample
from gate.store.records import (
    MAX_FILE_BYTES,
    baseline_bytes,
    read_record,
    write_baseline,
    write_record,
)

from ._support import PERF_GATE, clean_env, run_cli, run_cli_here, write_files, write_matmul_onnx

LATENCY = Metric("latency", "s", Direction.LOWER)
PROJECT = """
models:
  matmul:
    onnx: model.onnx
    input: {shape: [1, 16], dtype: float32}
    variants: [onnxruntime]
    metrics: [latency]
measure: {rounds: 2, warmup: 2, min_calls: 20, min_time: 0.02s, probes: 1}
"""
BENCHMARK = "matmul[onnxruntime]"


def record(commit: str, latency: float) -> RunRecord:
    values = tuple(latency * f for f in (0.99, 1.0, 1.01))
    return RunRecord(
        samples=(Sample(benchmark=BENCHMARK, metric=LATENCY, values=values),),
        environment={},
        git=GitInfo(commit=commit, ref="main", dirty=False),
        created="2026-01-01T00:00:00+00:00",
    )


def one_line_error(output: str, *fragments: str) -> str:
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("perf-gate: error: ")]
    assert len(lines) == 1, output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = write_files(tmp_path / "project", {"perf-gate.yaml": PROJECT})
    write_matmul_onnx(root / "model.onnx")
    write_baseline(root / "baselines" / "main.json", record("a" * 40, 1e-5))
    write_record(root / "shard.json", record("b" * 40, 1e-5))
    return root


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize(
    ("out", "reason"),
    [
        ("baselines/main.json", "is the baseline"),
        ("baselines/main@ci-cpu.json", "is a file of the baseline store in"),
        ("baselines/results.json", "is in the baselines folder"),
        ("link.json", "is the baseline"),  # a symlink to the baseline
        ("linked/main.json", "is the baseline"),  # through a symlinked folder
        ("linked/other.json", "is in the baselines folder"),
    ],
)
def test_run_out_and_merge_o_refuse_the_baseline_store(
    project: Path, out: str, reason: str
) -> None:
    (project / "link.json").symlink_to(project / "baselines" / "main.json")
    (project / "linked").symlink_to(project / "baselines")
    before = files_of(project / "baselines")
    for command in (["run", "--out", out], ["merge", "shard.json", "-o", out]):
        ran = run_cli_here(project, *command)
        assert ran.ret == 2, ran.output
        option = command[-2]
        line = one_line_error(
            ran.stderr,
            f"{option} {out}: {reason}",
            "only `perf-gate run --save` and `perf-gate baseline promote` write baselines",
            f"pass another {option} path",
            "(perf-gate explain baseline-write)",
        )
        assert ("(through a symlink)" in line) == out.startswith("link"), line
        assert files_of(project / "baselines") == before  # byte for byte, nothing added
    assert not (project / ".perf-gate").exists()  # refused before measuring


@pytest.mark.slow  # measures
def test_run_out_elsewhere_writes_a_record_and_leaves_the_baseline(project: Path) -> None:
    before = files_of(project / "baselines")
    merged = run_cli(project, "merge", "shard.json", "-o", "out/merged.json", timeout=60)
    assert merged.ret == 0, merged.output
    assert (project / "out" / "merged.json").is_file()
    ran = run_cli(project, "run", "--out", "out/results.json", timeout=120)
    assert ran.ret in (0, 1), ran.output
    assert (project / "out" / "results.json").is_file()
    assert files_of(project / "baselines") == before


@pytest.mark.slow  # measures
def test_two_saves_at_once_the_second_refuses(project: Path) -> None:
    """Both runs read the same baseline; the lock is held until both have measured, so they
    save one after the other: the first saves, the second finds the baseline changed."""
    baseline = project / "baselines" / "main.json"
    before = baseline.read_bytes()
    folder = os.open(project / "baselines", os.O_RDONLY)  # the lock outside a DVC repository
    fcntl.flock(folder, fcntl.LOCK_EX)
    processes = []
    try:
        for name in ("one", "two"):
            processes.append(
                subprocess.Popen(
                    [str(PERF_GATE), "run", "--save", "--out", f"out/{name}.json"],
                    cwd=project,
                    env=clean_env(),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        deadline = time.monotonic() + 120
        outs = [project / "out" / f"{name}.json" for name in ("one", "two")]
        while not all(p.exists() for p in outs) and time.monotonic() < deadline:
            assert all(p.poll() is None for p in processes), "a run ended while locked out"
            time.sleep(0.05)
        assert all(p.exists() for p in outs)
        time.sleep(0.3)  # both at the lock (the records are written just before it)
        assert baseline.read_bytes() == before
    finally:
        os.close(folder)  # frees the lock
    results = [(p.wait(timeout=120), *p.communicate()) for p in processes]
    assert sorted(code for code, _, _ in results) == [0, 2], results
    saved = [out for code, out, _ in results if code == 0]
    refused = [err for code, _, err in results if code == 2]
    assert "Saved the baseline" in saved[0]
    one_line_error(
        refused[0],
        f"{baseline}: not saved: the baseline changed while this run measured",
        "its record is in out/",
        "run again with --save",
        "(perf-gate explain baseline-lock)",
    )
    winner = outs[[code for code, _, _ in results].index(0)]
    assert baseline.read_bytes() != before
    assert baseline.read_bytes() == _baseline_form(winner)
    assert not [n for n in os.listdir(project / "baselines") if n.endswith(".tmp")]


def _baseline_form(results: Path) -> bytes:
    return baseline_bytes(read_record(results))


@pytest.mark.slow  # measures
def test_a_save_with_no_baseline_yet_is_not_raced_either(project: Path) -> None:
    """A second save over a baseline that appeared after its run read 'none' refuses too."""
    baseline = project / "baselines" / "main.json"
    baseline.unlink()
    folder = os.open(project / "baselines", os.O_RDONLY)
    fcntl.flock(folder, fcntl.LOCK_EX)
    try:
        process = subprocess.Popen(
            [str(PERF_GATE), "run", "--save", "--out", "out/late.json"],
            cwd=project,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while not (project / "out" / "late.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        write_baseline(baseline, record("c" * 40, 2e-5))  # what another writer saved meanwhile
        other = baseline.read_bytes()
    finally:
        os.close(folder)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2, stderr
    one_line_error(stderr, "not saved: the baseline changed while this run measured")
    assert baseline.read_bytes() == other


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _folder(path: Path) -> None:
    path.mkdir()


def _huge(path: Path) -> None:
    with path.open("wb") as stream:  # sparse: no disk used
        stream.truncate(MAX_FILE_BYTES + 1024 * 1024)


@pytest.mark.slow  # three perf-gate processes per case, each guarded by a timeout
@pytest.mark.parametrize(
    ("make", "what"),
    [
        (_fifo, "a FIFO (named pipe), not a regular file"),
        (_dev_zero, "a character device (through the symlink to /dev/zero), not a regular file"),
        (_folder, "a directory, not a regular file"),
        (_huge, "65 MiB, more than the 64 MiB perf-gate reads from one file"),
    ],
)
def test_a_baseline_that_is_not_a_readable_file_is_refused_in_one_line(
    project: Path, make, what: str
) -> None:
    baseline = project / "baselines" / "main.json"
    baseline.unlink()
    make(baseline)
    before = os.lstat(baseline)
    for command in (
        ["run"],
        ["compare", "baselines/main.json", "shard.json"],
        ["baseline", "status"],
    ):
        ran = run_cli(project, *command, timeout=30)  # a hang would time out: a failure
        assert ran.ret == 2, (command, ran.output)
        one_line_error(ran.stderr, "baselines/main.json: ", what, "explain baseline-corrupt")
    after = os.lstat(baseline)
    assert (after.st_ino, after.st_mode, after.st_size) == (
        before.st_ino,
        before.st_mode,
        before.st_size,
    )
    assert not (project / ".perf-gate" / "comparison.json").exists()  # nothing was measured
