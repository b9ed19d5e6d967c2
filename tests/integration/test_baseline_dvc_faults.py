"""Baselines on real DVC (a local-directory remote in tmp_path) meeting faults: a damaged object
on the remote, repeated ``pull --force``, writers that are not ``--save``. Repositories come from
test_dvc_baselines.py's templates."""

from __future__ import annotations

import fcntl
import os
import random
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gate.errors import BaselineError
from gate.store.baseline_store import LOCK_NAME, load_history
from gate.store.dvc import bytes_md5, file_md5, pointer_of, read_pointer
from gate.store.records import baseline_bytes, read_record, write_baseline, write_record

from ._support import write_matmul_onnx
from .test_dvc_baselines import (
    BIN,
    Project,
    copy,
    drop_local,
    env,
    make_record,
    perf_gate,
    templates,  # noqa: F401 - the module-scoped repositories
)

pytestmark = pytest.mark.slow


def one_line_error(output: str, *fragments: str) -> str:
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("perf-gate: error: ")]
    assert len(lines) == 1, output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def remote_object(project: Project, md5: str) -> Path:
    return project.remote / "files" / "md5" / md5[:2] / md5[2:]


def test_a_damaged_object_on_the_remote_is_a_checksum_mismatch(
    templates: dict[str, Project],  # noqa: F811
    tmp_path: Path,
) -> None:
    project = copy(templates["promoted"], tmp_path)
    good = project.baseline.read_bytes()
    md5 = read_pointer(pointer_of(project.baseline)).md5
    damaged = remote_object(project, md5)
    damaged.chmod(0o644)
    damaged.write_bytes(good[: len(good) // 2])  # truncated on the remote
    drop_local(project)  # a fresh checkout: only the remote can supply it
    before = project.snapshot()

    ran = perf_gate(project.repo, "baseline", "pull")
    assert ran.ret == 2, ran.output
    one_line_error(
        ran.output,
        f"{project.baseline}: checksum mismatch: the remote 'store' holds a damaged copy",
        f"{damaged} has md5 {file_md5(damaged)}, not the md5 {md5}",
        "promote the baseline again",
        "(perf-gate explain baseline-checksum)",
    )
    assert "not in the DVC cache" not in ran.output  # not reported as missing
    assert not project.baseline.exists()  # the damaged content is never used
    assert project.snapshot() == before
    assert damaged.read_bytes() == good[: len(good) // 2]  # left as found, for inspection
    assert not (project.repo / "baselines" / ".pull").exists()

    damaged.write_bytes(good)  # repaired on the remote: the same command now works
    healed = perf_gate(project.repo, "baseline", "pull")
    assert healed.ret == 0, healed.output
    assert project.baseline.read_bytes() == good


def test_a_missing_object_is_still_missing_and_names_only_that_file(
    templates: dict[str, Project],  # noqa: F811
    tmp_path: Path,
) -> None:
    project = copy(templates["promoted"], tmp_path)
    md5 = read_pointer(pointer_of(project.baseline)).md5
    remote_object(project, md5).unlink()
    drop_local(project)
    ran = perf_gate(project.repo, "baseline", "pull")
    assert ran.ret == 2, ran.output
    line = one_line_error(
        ran.output,
        f"{project.baseline.name} (md5 {md5}): not in the DVC cache and not on the remote",
        "(perf-gate explain dvc-missing-object)",
    )
    assert project.history.name not in line  # the history was fetched: it is not missing


def test_pull_force_never_overwrites_a_backup(
    templates: dict[str, Project],  # noqa: F811
    tmp_path: Path,
) -> None:
    project = copy(templates["promoted"], tmp_path)
    promoted = project.baseline.read_bytes()
    locals_: list[bytes] = []
    for number, commit in enumerate("78", start=1):
        write_record(project.baseline, make_record(commit * 40, 4e-3 * number))  # a local --save
        locals_.append(project.baseline.read_bytes())
        forced = perf_gate(project.repo, "baseline", "pull", "--force")
        assert forced.ret == 0, forced.output
        suffix = ".local" if number == 1 else f".local.{number}"
        kept = project.baseline.with_name(project.baseline.name + suffix)
        assert f"your local copy was kept as baselines/{kept.name}" in forced.output
        assert project.baseline.read_bytes() == promoted
    first = project.baseline.with_name(project.baseline.name + ".local")
    second = project.baseline.with_name(project.baseline.name + ".local.2")
    assert [first.read_bytes(), second.read_bytes()] == locals_  # both kept, byte for byte
    assert not (project.repo / "baselines" / ".pull").exists()
    leftovers = [p.name for p in (project.repo / "baselines").iterdir() if p.suffix == ".tmp"]
    assert leftovers == []


def test_pull_force_of_the_history_alone_keeps_the_baseline(
    templates: dict[str, Project],  # noqa: F811
    tmp_path: Path,
) -> None:
    project = copy(templates["promoted"], tmp_path)
    baseline, history = project.baseline.read_bytes(), project.history.read_bytes()
    project.history.write_text('{"edited": true}\n')
    refused = perf_gate(project.repo, "baseline", "pull")
    assert refused.ret == 2, refused.output
    one_line_error(
        refused.output,
        f"{project.history}: the local copy differs",
        f"backed up first, as {project.history.name}.local or the next free .local.N",
    )
    forced = perf_gate(project.repo, "baseline", "pull", "--force")
    assert forced.ret == 0, forced.output
    assert f"up to date: baselines/{project.baseline.name}" in forced.output
    assert project.history.read_bytes() == history
    assert project.baseline.read_bytes() == baseline
    kept = project.history.with_name(project.history.name + ".local")
    assert kept.read_text() == '{"edited": true}\n'


def test_merge_o_refuses_a_dvc_tracked_baseline_and_its_pointer(
    templates: dict[str, Project],  # noqa: F811
    tmp_path: Path,
) -> None:
    project = copy(templates["promoted"], tmp_path)
    source = project.results(make_record("e" * 40, 1e-3))
    before = project.snapshot()
    relative = project.baseline.relative_to(project.repo)
    for pointer in (False, True):
        out = f"{relative}.dvc" if pointer else str(relative)
        ran = perf_gate(project.repo, "merge", str(source), "-o", out)
        assert ran.ret == 2, ran.output
        one_line_error(ran.output, f"-o {out}: is a file of the baseline store in")
    elsewhere = project.repo / "elsewhere"
    shutil.copytree(project.repo / "baselines", elsewhere)  # a copy that DVC still tracks
    tracked = elsewhere / project.baseline.name
    ran = perf_gate(project.repo, "merge", str(source), "-o", str(tracked))
    assert ran.ret == 2, ran.output
    one_line_error(ran.output, f"is tracked by DVC ({tracked.name}.dvc)")
    assert project.snapshot() == before


KILL_CONFIG = """
baseline: baselines/main.json
models:
  chain:
    onnx: chain.onnx
    input: {shape: [1, 16], dtype: float32}
    variants: [onnxruntime]
    metrics: [latency]
measure: {rounds: 2, warmup: 2, min_calls: 20, min_time: 0.02s, probes: 1}
"""
# Each command, and a first guess of how long it runs here (s); then the time it took.
KILLED = {
    "run": (["run", "--save", "--mode", "stored", "--out", ".perf-gate/run.json"], 2.0),
    "promote": (["baseline", "promote", "--from", ".perf-gate/new.json"], 3.5),
    "pull": (["baseline", "pull", "--force"], 2.3),
}
KILLS_EACH = 3


@dataclass
class Files:
    """The baseline, its pointer and its history, as bytes (None: absent)."""

    baseline: bytes | None
    pointer: bytes | None
    history: bytes | None

    @classmethod
    def of(cls, project: Project) -> Files:
        def read(path: Path) -> bytes | None:
            return path.read_bytes() if path.exists() else None

        return cls(
            read(project.baseline),
            read(pointer_of(project.baseline)),
            read(project.history),
        )


def _lock_is_free(project: Project) -> bool:
    handle = os.open(project.repo / ".dvc" / "tmp" / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(handle)


def _new_states(project: Project, command: str, before: Files, promoted: bytes) -> set[bytes]:
    """The baselines ``command`` may leave besides the old one, each whole."""
    if command == "promote":
        return {promoted}
    if command == "run":
        out = project.repo / ".perf-gate" / "run.json"
        try:
            return {baseline_bytes(read_record(out))}
        except (BaselineError, FileNotFoundError):
            return set()  # killed before its record: it cannot have saved
    assert before.pointer is not None  # pull: the content its pointer names
    md5 = read_pointer(pointer_of(project.baseline)).md5
    content = project.baseline.read_bytes() if project.baseline.exists() else b""
    return {content} if bytes_md5(content) == md5 else set()


def _pulled_content(project: Project) -> bytes | None:
    """The local baseline when it is the content its pointer names, else None."""
    md5 = read_pointer(pointer_of(project.baseline)).md5
    content = project.baseline.read_bytes()
    return content if bytes_md5(content) == md5 else None


def test_kill_9_during_save_promote_and_pull_never_damages_the_baseline(
    templates: dict[str, Project],  # noqa: F811
    tmp_path: Path,
) -> None:
    """``run --save``, ``baseline promote`` and ``baseline pull --force`` SIGKILLed (the whole
    process group, like a cancelled CI job) at seeded random points: the baseline, its pointer
    and its history are each always the old or the new whole file, every backup is whole, the
    lock is free at once, and the next commands run."""
    project = copy(templates["promoted"], tmp_path)
    (project.repo / "perf-gate.yaml").write_text(KILL_CONFIG)
    write_matmul_onnx(project.repo / "chain.onnx")
    source = project.results(make_record("f" * 40, 2e-3), "new.json")
    promoted = baseline_bytes(read_record(source))
    rng = random.Random(20260117)
    order = [name for name in KILLED for _ in range(KILLS_EACH)]
    rng.shuffle(order)
    counts = {"old": 0, "new": 0, "finished": 0}
    started = time.monotonic()
    estimate = {name: longest for name, (_, longest) in KILLED.items()}
    for name in order:
        command, _ = KILLED[name]
        if name == "pull" and project.baseline.read_bytes() == _pulled_content(project):
            write_baseline(project.baseline, make_record("d" * 40, 3e-3))  # a local --save
        before = Files.of(project)
        (project.repo / ".perf-gate" / "run.json").unlink(missing_ok=True)
        process = subprocess.Popen(
            [str(BIN / "perf-gate"), *command],
            cwd=project.repo,
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        # After the interpreter's start, up to the end: where the files are written.
        delay = rng.uniform(0.25, 1.0) * estimate[name]
        launched = time.monotonic()
        try:
            process.wait(timeout=delay)
            finished = True
            estimate[name] = time.monotonic() - launched  # what it takes here, now
        except subprocess.TimeoutExpired:
            finished = False
            os.killpg(process.pid, signal.SIGKILL)  # the whole process group
            process.wait(timeout=30)
        assert _lock_is_free(project), f"{name}: the lock outlived its process"

        after = Files.of(project)
        assert after.baseline is not None, name
        record = read_record(project.baseline)  # whole and valid, never half-written
        assert baseline_bytes(record) == after.baseline, name
        new = _new_states(project, name, before, promoted)
        assert after.baseline == before.baseline or after.baseline in new, name
        if name == "promote":  # the old pointer, or the one naming the promoted bytes
            assert after.pointer == before.pointer or (
                after.pointer is not None and bytes_md5(promoted) in after.pointer.decode()
            ), name
        else:
            assert after.pointer == before.pointer, name
        assert after.history is not None
        load_history(project.history)  # whole and valid
        if name != "promote":
            assert after.history == before.history, name
        for backup in project.repo.glob("baselines/*.local*"):
            read_record(backup)  # a backup is whole before it gets its name
        state = "old" if after.baseline == before.baseline else "new"
        counts["finished" if finished else state] += 1
        if finished:
            assert process.returncode == 0, name

    # No stale lock, no leftover that stops the next runs.
    saved = perf_gate(project.repo, *KILLED["run"][0])
    assert saved.ret == 0, saved.output
    assert "Saved the baseline" in saved.output
    pulled = perf_gate(project.repo, *KILLED["pull"][0])
    assert pulled.ret == 0, pulled.output
    pointer = read_pointer(pointer_of(project.baseline))
    assert file_md5(project.baseline) == pointer.md5
    folder = project.repo / "baselines"
    assert not (folder / ".pull").exists()
    assert not [
        p.name for p in folder.iterdir() if re.fullmatch(r"\.main@.*\.json\..*\.tmp", p.name)
    ]
    print(f"kill -9 loop: {counts} in {time.monotonic() - started:.1f} s")
    assert sum(counts.values()) == len(order)
