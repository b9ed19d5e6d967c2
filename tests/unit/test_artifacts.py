"""gate.measure.artifacts on real files: names by content, atomic publishing, a bounded cache;
and the prepared inputs in a BenchmarkPlan."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from gate.measure import BenchmarkPlan, artifacts


def write(path: Path, data: bytes = b"x", age_s: float = 0.0) -> Path:
    path.write_bytes(data)
    if age_s:
        stamp = time.time() - age_s
        os.utime(path, (stamp, stamp))
    return path


def digest(n: int) -> str:
    return f"{n:02x}".ljust(64, "0")


def test_prune_keeps_the_most_recently_used_exports_and_drops_what_derived_from_the_others(
    tmp_path,
):
    exports = [
        write(tmp_path / artifacts.export_name("tiny", digest(n)), age_s=100.0 - n)
        for n in range(5)
    ]  # exports[4] is the newest
    derived = {}
    for n, export in enumerate(exports):
        int8 = write(tmp_path / artifacts.quantized_name(export, digest(50 + n)))
        npz = write(tmp_path / artifacts.inputs_name("tiny", 8, digest(n), digest(70 + n)))
        derived[n] = (int8, npz)
    others = [  # another model whose name starts like this one's, a given file's quantization
        write(tmp_path / artifacts.export_name("tiny-big", digest(9)), age_s=500.0),
        write(tmp_path / artifacts.inputs_name("tiny-big", 8, digest(9), digest(1))),
    ]
    artifacts.touch(exports[0])  # used again: now the most recent

    gone = artifacts.prune_exports(tmp_path, "tiny")

    assert sorted(gone) == sorted([exports[1], exports[2]])
    for n in (0, 3, 4):
        assert exports[n].is_file()
        assert all(p.is_file() for p in derived[n])
    for n in (1, 2):
        assert not any(p.exists() for p in derived[n])
    assert all(p.is_file() for p in others)


def test_prune_of_a_family_removes_only_stale_partial_files(tmp_path):
    family = artifacts.inputs_family("m", 1)
    kept = [
        write(tmp_path / artifacts.inputs_name("m", 1, digest(n), digest(n)), age_s=10.0 - n)
        for n in range(4)
    ]
    other_batch = write(tmp_path / artifacts.inputs_name("m", 2, digest(0), digest(0)), age_s=99)
    stale = write(tmp_path / "m.123-abcd.partial", age_s=artifacts.PARTIAL_AGE_S + 60)
    running = write(tmp_path / "m.456-abcd.partial")  # a preparation may still write it

    assert artifacts.prune(tmp_path, family) == [kept[0]]
    assert [p.is_file() for p in kept] == [False, True, True, True]
    assert other_batch.is_file()
    assert not stale.exists()
    assert running.is_file()


def test_publish_keeps_an_identical_file_and_replaces_a_different_one(tmp_path):
    target = write(tmp_path / "graph.onnx", b"same", age_s=50.0)
    inode, mtime = target.stat().st_ino, target.stat().st_mtime
    partial = artifacts.partial_file(tmp_path, "graph")
    partial.write_bytes(b"same")
    artifacts.publish(partial, target)
    assert target.stat().st_ino == inode  # not rewritten: a reader holding it is undisturbed
    assert target.stat().st_mtime > mtime  # marked as used
    assert not partial.exists()

    partial = artifacts.partial_file(tmp_path, "graph")
    partial.write_bytes(b"other")
    artifacts.publish(partial, target)
    assert target.read_bytes() == b"other"
    assert list(tmp_path.iterdir()) == [target]


def test_partial_files_are_unique_and_readable_like_any_other_file(tmp_path):
    first = artifacts.partial_file(tmp_path / "new", "m")
    second = artifacts.partial_file(tmp_path / "new", "m")
    assert first != second
    assert first.name.startswith("m.")
    assert first.suffix == ".partial"
    umask = os.umask(0)
    os.umask(umask)
    assert first.stat().st_mode & 0o777 == 0o666 & ~umask


def test_quantizations_of_two_given_files_of_one_name_are_told_apart(tmp_path):
    one, two = tmp_path / "a" / "model.onnx", tmp_path / "b" / "model.onnx"
    key = digest(1)
    assert artifacts.quantized_name(one, key) != artifacts.quantized_name(two, key)
    assert artifacts.quantized_name(one, key).startswith("model-int8-")
    assert artifacts.quantized_family(one).fullmatch(artifacts.quantized_name(one, digest(2)))
    assert not artifacts.quantized_family(one).fullmatch(artifacts.quantized_name(two, key))


def test_a_plan_without_prepared_inputs_reads_as_before():
    record = {"name": "m[onnxruntime]", "model": "m", "variant": "onnxruntime", "root": "."}
    plan = BenchmarkPlan.from_dict(record)
    assert plan.inputs == {}
    prepared = BenchmarkPlan.from_dict({**record, "inputs": {1: "/c/m-b1.npz"}})
    assert prepared.inputs == {"1": "/c/m-b1.npz"}
    again = BenchmarkPlan.from_dict(json.loads(json.dumps(prepared.to_dict())))
    assert again == prepared
    assert hash(again) == hash(plan)  # plans stay hashable; inputs follow from the rest
