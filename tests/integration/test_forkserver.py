"""Timed workers forked from a preloaded interpreter: each gets the request's folder,
environment, import path and descriptors, imports the user's code afresh, reports its exit
status, can be stopped, and the server ends with its owner."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gate.config import MeasureSettings
from gate.measure import BenchmarkPlan, forkserver
from gate.measure.runner import Runner

pytestmark = pytest.mark.skipif(not forkserver.available(), reason="no fork server here")

# A stand-in for the worker's main: what the forked process sees, written where argv says.
PROBE = """
import json, os, sys
def main(argv):
    out = argv[1]
    import usercode
    json.dump({
        "cwd": os.getcwd(),
        "env": os.environ.get("PROBE_VALUE"),
        "path": sys.path[:3],
        "usercode": usercode.__file__,
        "fd": os.read(int(argv[2]), 5).decode() if len(argv) > 2 else None,
        "pid": os.getpid(),
    }, open(out, "w"))
    print("to stderr", file=sys.stderr)
    return int(os.environ.get("PROBE_EXIT", "0"))
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[forkserver.ForkServer]:
    # The server imports gate.measure.worker.main; here a stand-in package shadows it.
    stand_in = tmp_path / "stand_in"
    (stand_in / "gate" / "measure" / "worker").mkdir(parents=True)
    real = Path(forkserver.__file__).resolve().parents[2] / "gate"
    for package in ("gate", "gate/measure", "gate/measure/worker"):
        (stand_in / package / "__init__.py").write_text("", encoding="utf-8")
    for module in ("measure/forkserver.py", "measure/processes.py", "units.py"):
        (stand_in / "gate" / module).write_text(
            (real / module).read_text(encoding="utf-8"), encoding="utf-8"
        )
    (stand_in / "gate" / "measure" / "worker" / "main.py").write_text(PROBE, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(stand_in)}
    started = forkserver.ForkServer(env, tmp_path, ())
    yield started
    started.stop()


def project(folder: Path, marker: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "usercode.py").write_text(f"MARK = {marker!r}\n", encoding="utf-8")
    return folder


def test_a_forked_worker_gets_the_requests_folder_environment_path_and_descriptors(
    server: forkserver.ForkServer, tmp_path: Path
) -> None:
    head, base = project(tmp_path / "head", "head"), project(tmp_path / "base", "base")
    results = []
    for root in (head, base, head):  # the user's code is imported afresh every time
        read_end, write_end = os.pipe()
        os.write(write_end, b"hello")
        out = tmp_path / f"out-{root.name}-{len(results)}.json"
        env = {**os.environ, "PROBE_VALUE": root.name, "PYTHONPATH": str(tmp_path / "extra")}
        with server.spawn(
            ["round", str(out), str(read_end)],
            cwd=root,
            env=env,
            pass_fds=(read_end,),
        ) as worker:
            worker.wait(timeout=60)
            stderr = worker.tail.text()
        os.close(read_end)
        os.close(write_end)
        assert worker.returncode == 0, stderr
        assert stderr == "to stderr"  # stdout and stderr come back as one stream
        results.append(json.loads(out.read_text(encoding="utf-8")))
    for root, seen in zip((head, base, head), results, strict=True):
        assert seen["cwd"] == str(root)
        assert seen["env"] == root.name
        assert seen["path"][:2] == [str(root), str(tmp_path / "extra")]
        assert seen["usercode"] == str(root / "usercode.py")
        assert seen["fd"] == "hello"
    assert len({seen["pid"] for seen in results}) == 3


def test_exit_status_and_a_stopped_worker(server: forkserver.ForkServer, tmp_path: Path) -> None:
    root = project(tmp_path / "p", "p")
    env = {**os.environ, "PROBE_EXIT": "3"}
    with server.spawn(["round", str(tmp_path / "o.json")], cwd=root, env=env) as worker:
        worker.wait(timeout=60)
    assert worker.returncode == 3
    (root / "usercode.py").write_text("import time\ntime.sleep(60)\n", encoding="utf-8")
    with server.spawn(
        ["round", str(tmp_path / "o.json")], cwd=root, env=dict(os.environ)
    ) as worker:
        with pytest.raises(subprocess.TimeoutExpired):
            worker.wait(timeout=0.5)
        worker.kill()
        worker.wait(timeout=30)
    assert worker.returncode == -9


def test_the_server_ends_with_its_runner_and_fresh_interpreters_when_switched_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path / "p", "p")
    plan = BenchmarkPlan(
        name="m[onnxruntime]",
        model="m",
        variant="onnxruntime",
        root=str(root),
        input_shape=(1, 4),
        batch_sizes=(1,),
        metrics=("latency",),
    )
    runner = Runner(MeasureSettings(rounds=1), root, tmp_path / "work")
    server = runner._server([plan], 1, root)
    assert server is not None
    pid = server.process.pid
    assert runner._server([plan], 1, root) is server  # one per thread count, reused
    runner.close()
    deadline = time.monotonic() + 10
    while server.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.process.poll() is not None, f"server {pid} still runs"
    monkeypatch.setenv(forkserver.SWITCH, "0")
    assert (
        Runner(MeasureSettings(rounds=1), root, tmp_path / "work")._server([plan], 1, root) is None
    )
