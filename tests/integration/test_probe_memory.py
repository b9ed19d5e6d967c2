"""A probe's memory is its own, whoever started it: real probe workers of a small torch model,
started by a small launcher, by a launcher that holds 500 MiB, and by this pytest process
(torch imported), report the same memory.peak, load and inference.

On Linux ``ru_maxrss`` starts a freshly exec'd child at its parent's resident size at fork, so
the same model measured 237 MiB under ``perf-gate run``, 264 MiB after the parent exported a
model and 308 MiB under ``pytest --perf-gate``; the probe reads VmHWM instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gate.measure import BenchmarkPlan
from gate.measure.samples import probe_samples

from ._support import clean_env, write_files

pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").is_file(), reason="needs /proc (Linux)"
)

MIB = 2**20
HELD_MIB = 500  # more than the probe's own peak (torch imported: about 250 MiB)

MODEL = """
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))


def inputs(batch_size):
    return torch.ones(batch_size, 16)
"""

# Holds HELD MiB (every page written, so resident), then starts the probe worker and waits.
LAUNCHER = """
import subprocess
import sys

held = b"\\x01" * (int(sys.argv[1]) * 2**20)
completed = subprocess.run([sys.executable, "-m", "gate.measure.worker.main", *sys.argv[2:]])
sys.exit(completed.returncode)
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_files(
        tmp_path_factory.mktemp("probe-memory"),
        {"pg_probe_memory_model.py": MODEL, "launcher.py": LAUNCHER},
    )
    plan = BenchmarkPlan(
        name="tiny[torch]",
        model="tiny",
        variant="torch",
        root=str(root),
        torch="pg_probe_memory_model:build",
        input_callable="pg_probe_memory_model:inputs",
        batch_sizes=(1, 8),
        metrics=("memory",),
    )
    document = {"root": str(root), "settings": {}, "plans": [plan.to_dict()]}
    (root / "plan.json").write_text(json.dumps(document), encoding="utf-8")
    return root


def probe(project: Path, prefix: list[str], out: str) -> dict[str, object]:
    args = ["probe", "plan.json", out, "--benchmark", "tiny[torch]"]
    env = clean_env(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    subprocess.run([*prefix, *args], cwd=project, env=env, check=True, timeout=240)
    result: dict[str, object] = json.loads((project / out).read_text(encoding="utf-8"))
    assert "error" not in result, result
    return result


def memory(result: dict[str, object]) -> dict[str, float]:
    plan = BenchmarkPlan(name="tiny[torch]", model="tiny", variant="torch", root=".")
    plan = BenchmarkPlan.from_dict({**plan.to_dict(), "metrics": ["memory"]})
    return {s.metric.name: s.values[0] for s in probe_samples(plan, [result])}


@pytest.mark.slow
def test_memory_of_a_probe_does_not_depend_on_its_launcher(project):
    python = [sys.executable]
    small = probe(project, [*python, "launcher.py", "0"], "small.json")
    big = probe(project, [*python, "launcher.py", str(HELD_MIB)], "big.json")
    here = probe(
        project, [*python, "-m", "gate.measure.worker.main"], "pytest.json"
    )  # torch loaded
    assert "torch" in sys.modules

    readings = {name: memory(r) for name, r in (("small", small), ("big", big), ("here", here))}
    for result in (small, big, here):
        assert result["peak_source"] == "VmHWM"
        assert result["peak_since"] == "imports"
    peak = readings["small"]["memory.peak"]
    assert 50 * MIB < peak < HELD_MIB * MIB  # torch's imports, far from the launcher's 500 MiB
    for launcher in ("big", "here"):
        for metric in ("memory.peak", "memory.load", "memory.inference"):
            difference = abs(readings[launcher][metric] - readings["small"][metric])
            assert difference < 8 * MIB, (launcher, metric, readings)


LAUNCHERS_CONFIG = """
models:
  tiny:
    torch: tinymodel:build
    input: tinymodel:inputs
    variants: [torch]
    metrics: [memory]
policy: {timing_mode: stored, diagnose: never}
measure: {rounds: 2, warmup: 2, min_calls: 10, min_time: 0.01s, probes: 3}
"""


@pytest.mark.slow
def test_a_baseline_recorded_by_perf_gate_run_gates_pytest_without_a_memory_change(
    tmp_path: Path,
) -> None:
    # Recorded by `perf-gate run` (a small parent), gated by `pytest --perf-gate` (a parent
    # that holds pytest and torch): unchanged code shows no memory change. With ru_maxrss the
    # second launcher's probes started at its resident size and memory.peak rose by ~30%.
    from ._support import read_json, run_cli, run_pytest

    root = write_files(
        tmp_path / "project",
        {"perf-gate.yaml": LAUNCHERS_CONFIG, "tinymodel.py": MODEL},
    )
    assert run_cli(root, "run", "--save").ret == 0
    gated = run_pytest(root, "--perf-gate", "-p", "no:cacheprovider")
    assert gated.ret == 0, gated.output
    rows = {
        c["metric"]: c
        for c in read_json(root / ".perf-gate" / "comparison.json")["comparisons"]
        if c["metric"].startswith("memory")
    }
    assert set(rows) == {"memory.peak", "memory.load", "memory.inference"}
    for metric, row in rows.items():
        assert row["verdict"] == "unchanged", (metric, row)
    assert abs(rows["memory.peak"]["relative_change"]) < 0.03
