"""The file rules under every baseline reader and writer, without subprocesses: only regular
files are opened (a FIFO never blocks, /dev/zero is never read), reads are bounded, ``--save``
sees a replaced baseline, stale temporary files are recognized exactly, other writers' paths are
checked against the store, and backups never replace one another."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest

from gate.core.types import Direction, Metric, RunRecord, Sample
from gate.errors import BaselineError
from gate.store import pull as baseline_pull
from gate.store.baseline_store import baseline_lock, refuse_baseline_target, save
from gate.store.dvc import file_md5, read_pointer
from gate.store.records import (
    file_state,
    read_limited,
    read_record,
    remove_stale_temporaries,
    write_baseline,
    write_bytes_atomic,
)

RECORD = RunRecord(
    samples=(
        Sample(
            benchmark="m[torch]",
            metric=Metric("latency", "s", Direction.LOWER),
            values=(1e-3, 1.1e-3),
        ),
    ),
    environment={},
)


def within(seconds: float, call):  # type: ignore[no-untyped-def]
    """``call()``'s result or exception, failing the test if it takes longer (a blocked open)."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked"
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome.get("value")


@pytest.mark.parametrize("reader", [read_record, read_limited, file_md5, read_pointer])
def test_a_fifo_is_refused_without_blocking(tmp_path: Path, reader) -> None:  # type: ignore[no-untyped-def]
    fifo = tmp_path / "main.json"
    os.mkfifo(fifo)
    with pytest.raises(BaselineError, match=r"main.json: a FIFO \(named pipe\), not a regular"):
        within(5, lambda: reader(fifo))


def test_a_link_to_dev_zero_and_a_folder_are_refused(tmp_path: Path) -> None:
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    with pytest.raises(BaselineError) as caught:
        within(5, lambda: read_record(zero))
    assert "a character device (through the symlink to /dev/zero), not a regular file" in str(
        caught.value
    )
    assert caught.value.slug == "baseline-corrupt"
    folder = tmp_path / "folder.json"
    folder.mkdir()
    with pytest.raises(BaselineError, match="a directory, not a regular file"):
        read_record(folder)


def test_reads_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b" " * 2048)
    assert len(read_limited(path, limit=2048)) == 2048
    path.write_bytes(b" " * 2049)
    with pytest.raises(
        BaselineError, match=r"big.json: 2049 bytes, more than the 2048 bytes perf-gate reads"
    ):
        read_limited(path, limit=2048)
    with pytest.raises(FileNotFoundError):
        read_limited(tmp_path / "absent.json")


def test_file_state_changes_with_every_replacement(tmp_path: Path) -> None:
    path = tmp_path / "main.json"
    assert file_state(path) is None
    write_baseline(path, RECORD)
    first = file_state(path)
    assert first is not None
    assert file_state(path) == first
    write_baseline(path, RECORD)  # the same bytes, a new file
    assert file_state(path) != first


def test_save_writes_only_over_the_file_its_run_read(tmp_path: Path) -> None:
    path = tmp_path / "baselines" / "main.json"
    save(path, RECORD, None, results=tmp_path / "results.json")  # none read, none there
    read = file_state(path)
    write_baseline(path, RECORD)  # another writer, meanwhile
    other = path.read_bytes()
    with pytest.raises(BaselineError, match="not saved: the baseline changed") as caught:
        save(path, RECORD, read, results=tmp_path / "results.json")
    assert caught.value.slug == "baseline-lock"
    assert f"its record is in {tmp_path / 'results.json'}" in str(caught.value)
    assert path.read_bytes() == other
    save(path, RECORD, file_state(path), results=tmp_path / "results.json")


def test_save_waits_for_the_lock_and_gives_up_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "baselines" / "main.json"
    path.parent.mkdir()
    held = os.open(path.parent, os.O_RDONLY)  # no DVC: the folder is the lock
    fcntl.flock(held, fcntl.LOCK_EX)
    messages: list[str] = []
    try:
        with pytest.raises(
            BaselineError, match="has held the baseline lock for over 0 s"
        ) as caught:
            save(
                path,
                RECORD,
                None,
                results=tmp_path / "r.json",
                timeout=0.2,
                progress=messages.append,
            )
    finally:
        os.close(held)
    assert caught.value.slug == "baseline-lock"
    assert messages
    assert "waiting for the baseline lock" in messages[0]
    assert not path.exists()
    with baseline_lock(path, timeout=1):
        pass  # freed with its holder


def test_only_this_files_stale_temporaries_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "main.json"
    names = [
        ".main.json.ab_cd123.tmp",  # what mkstemp makes for it
        ".main.json.calibration.json.ab_cd123.tmp",  # another file's
        ".main.json.abc.tmp",
        "main.json.ab_cd123.tmp",
        ".main.jsonx.ab_cd123.tmp",
    ]
    for name in names:
        (tmp_path / name).write_text("x")
    removed = remove_stale_temporaries(path)
    assert [p.name for p in removed] == [names[0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "baselines").mkdir(parents=True)
    (root / ".perf-gate").mkdir()
    write_baseline(root / "baselines" / "main.json", RECORD)
    return root


def refused(project: Path, out: Path, *, baseline: str = "baselines/main.json") -> str | None:
    try:
        refuse_baseline_target(
            out,
            "--out",
            baselines=[project / baseline],
            root=project,
            report_dir=project / ".perf-gate",
        )
    except BaselineError as exc:
        return f"{exc} [{exc.slug}]"
    return None


def test_other_writers_are_refused_the_store_and_nothing_else(project: Path) -> None:
    baselines = project / "baselines"
    (project / "hard.json").hardlink_to(baselines / "main.json")
    (project / "link.json").symlink_to(baselines / "main.json")
    (project / "data.csv.dvc").write_text("outs:\n- md5: 0\n  path: data.csv\n")
    cases = {
        baselines / "main.json": "is the baseline",
        baselines / "main@abc.history.json": "is a file of the baseline store in",
        baselines / "sub" / "x.json": "is in the baselines folder",
        baselines: "is in the baselines folder",
        project / "hard.json": "is the baseline",
        project / "link.json": "is the baseline",
        project / "data.csv": "is tracked by DVC (data.csv.dvc)",
        project / "data.csv.dvc": "is a DVC pointer",
    }
    for out, reason in cases.items():
        message = refused(project, out)
        assert message is not None, out
        assert f"--out {out}: {reason}" in message, message
        assert message.endswith("[baseline-write]")
        assert "only `perf-gate run --save` and `perf-gate baseline promote`" in message
    assert "(through a symlink)" in (refused(project, project / "link.json") or "")
    for fine in (project / ".perf-gate" / "results.json", project / "out.json"):
        assert refused(project, fine) is None


def test_a_baseline_in_the_project_root_protects_only_its_own_files(project: Path) -> None:
    write_baseline(project / "main.json", RECORD)
    assert refused(project, project / "results.json", baseline="main.json") is None
    assert refused(project, project / ".perf-gate" / "x.json", baseline="main.json") is None
    for name in ("main.json", "main@k.json", "main.history.json", "main.json.local"):
        assert refused(project, project / name, baseline="main.json") is not None, name


def test_backups_are_numbered_and_never_replace_one_another(tmp_path: Path) -> None:
    path = tmp_path / "main.json"
    contents = []
    for number in range(1, 4):
        write_bytes_atomic(path, f"local {number}\n".encode())
        contents.append(path.read_bytes())
        backup = baseline_pull._back_up(path)
        expected = "main.json.local" if number == 1 else f"main.json.local.{number}"
        assert backup.name == expected
    backups = ["main.json.local", "main.json.local.2", "main.json.local.3"]
    assert [(tmp_path / name).read_bytes() for name in backups] == contents
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
