"""Prepared artifacts are never stale, and onnxruntime workers never import torch.

Real torch, onnxruntime and worker processes on tiny models. What a model computes can depend
on more than its code and weights: a depth read from a file while it is built, a plain
attribute set from a value in another module. A cache keyed by code and weights timed an
edited model against its old export; preparation now exports every time and names the export,
its int8 quantization and the prepared inputs by the graph's own bytes. The inputs of an
``input:`` callable are prepared as .npz files, so that onnxruntime's round, probe and duet
workers neither call the callable nor import torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gate.measure import BenchmarkPlan, artifacts
from gate.measure.backends import get_backend
from gate.measure.backends.onnx_backend import read_inputs
from gate.measure.prepared import prepare, smoke_test

from ._support import clean_env, read_json, run_cli, write_files

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

MODELS = """
from pathlib import Path

import torch
from torch import nn

import pg_fresh_settings

HERE = Path(__file__).resolve().parent


class Repeated(nn.Module):
    \"\"\"One shared layer applied ``repeat`` times: its layers, repr and weights are the same
    whatever ``repeat`` is.\"\"\"

    def __init__(self, repeat):
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(16, 16)
        self.repeat = repeat

    def forward(self, x):
        for _ in range(self.repeat):
            x = torch.tanh(self.layer(x))
        return x


def build_depth_from_file():
    return Repeated(int((HERE / "depth.txt").read_text()))


def build_from_settings():
    return Repeated(pg_fresh_settings.REPEAT)


def inputs(batch_size):
    return torch.linspace(-1.0, 1.0, batch_size * 16).reshape(batch_size, 16)


class Pair(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.left = nn.Linear(16, 4)
        self.right = nn.Linear(8, 4)

    def forward(self, a, b):
        return self.left(a) - 2 * self.right(b)


def build_pair():
    return Pair()


def _ramp(batch_size):
    return torch.linspace(0, 1, batch_size * 16).reshape(batch_size, 16)


def named_inputs(batch_size):  # given in the other order than forward's: names must match
    return {"b": torch.full((batch_size, 8), 0.25), "a": _ramp(batch_size)}


def positional_inputs(batch_size):
    return (_ramp(batch_size), torch.full((batch_size, 8), 0.25))
"""

CONFIG = """
models:
  deep:
    torch: pg_fresh_models:build_depth_from_file
    input: pg_fresh_models:inputs
    variants: [torch, onnxruntime]
    metrics: [latency, memory]
    batch_sizes: [1]
  repeat:
    torch: pg_fresh_models:build_from_settings
    input: pg_fresh_models:inputs
    variants: [torch, onnxruntime]
    metrics: [latency]
    batch_sizes: [1]
measure: {rounds: 2, warmup: 1, min_calls: 3, min_time: 0.0s, probes: 1}
"""


def make_project(root: Path, depth: int = 1, repeat: int = 1) -> Path:
    write_files(
        root,
        {
            "pg_fresh_models.py": MODELS,
            "pg_fresh_settings.py": f"REPEAT = {repeat}\n",
            "depth.txt": f"{depth}\n",
            "perf-gate.yaml": CONFIG,
        },
    )
    return root


def nodes(path: Path) -> int:
    return len(onnx.load(str(path)).graph.node)


# --- perf-gate run, twice, with the model changed in between --------------------------------


@pytest.mark.slow
def test_a_second_run_measures_the_changed_graph_not_the_first_runs_export(tmp_path):
    root = make_project(tmp_path / "project", depth=1, repeat=1)
    cache = root / ".perf-gate" / "cache"

    def measured() -> dict[str, dict]:
        ran = run_cli(root, "run", "--out", "results.json")
        assert ran.ret == 0, ran.output
        info: dict[str, dict] = read_json(root / "results.json")["info"]
        for name in ("deep[onnxruntime]", "repeat[onnxruntime]"):
            # the ONNX outputs are the torch model's: the export is of this build's model
            parity = info[name]["parity"]
            assert parity["ok"], (name, parity)
            assert parity["max_abs_diff"] < 1e-5
        return info

    first = measured()
    (root / "depth.txt").write_text("3\n", encoding="utf-8")  # read while the model is built
    (root / "pg_fresh_settings.py").write_text("REPEAT = 4\n", encoding="utf-8")  # an attribute
    second = measured()

    for name, times in (("deep[onnxruntime]", 3), ("repeat[onnxruntime]", 4)):
        before, after = first[name]["onnx_file"], second[name]["onnx_file"]
        assert before != after  # another graph, another name
        assert nodes(cache / after) == times * nodes(cache / before)  # Gemm + Tanh per pass
        assert after == artifacts.export_name(
            name.split("[")[0], artifacts.file_digest(cache / after)
        )
    # where the round's time went, per benchmark; the ONNX probe had no torch in it
    for name, entry in second.items():
        cost = entry["round_cost"]
        assert set(cost) == {"import_s", "load_s", "inputs_s", "warmup_s", "timing_s", "rounds"}
        assert cost["rounds"] == 2
        assert all(cost[part] >= 0 for part in artifacts_parts()), (name, cost)
    assert second["deep[onnxruntime]"]["probe_runtimes"] == ["onnxruntime"]
    assert "torch" in second["deep[torch]"]["probe_runtimes"]


def artifacts_parts() -> tuple[str, ...]:
    from gate.measure.samples import COST_PARTS

    return COST_PARTS


# --- preparation in this process: new graphs, reused graphs, a bounded cache -----------------


@pytest.fixture
def project(tmp_path):
    root = make_project(tmp_path / "project")
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    for name in ("pg_fresh_models", "pg_fresh_settings"):
        sys.modules.pop(name, None)


def plan_of(root: Path, variant: str, factory: str, **changes) -> BenchmarkPlan:
    fields = {
        "name": f"tiny[{variant}]",
        "model": "tiny",
        "variant": variant,
        "root": str(root),
        "torch": f"pg_fresh_models:{factory}",
        "input_callable": "pg_fresh_models:inputs",
        "batch_sizes": (1, 4),
        "threads": 1,
    }
    return BenchmarkPlan(**{**fields, **changes})


def ort_output(plan: BenchmarkPlan, batch_size: int):
    backend = get_backend(plan)
    backend.import_runtime()
    backend.load()
    return backend.call_for(batch_size)()[0]


def test_every_graph_gets_its_own_quantization_and_inputs_and_the_cache_stays_bounded(project):
    cache = project / ".perf-gate" / "cache"
    plan = plan_of(project, "onnxruntime-int8", "build_depth_from_file")
    prepared: dict[int, BenchmarkPlan] = {}
    for depth in range(1, 7):
        (project / "depth.txt").write_text(f"{depth}\n", encoding="utf-8")
        prepared[depth] = prepare(plan, cache)
        exports = [p for p in cache.iterdir() if artifacts.export_family("tiny").fullmatch(p.name)]
        assert len(exports) == min(depth, artifacts.KEEP)
        assert len(list(cache.glob("*-int8-*.onnx"))) == min(depth, artifacts.KEEP)
        for batch_size in (1, 4):
            family = artifacts.inputs_family("tiny", batch_size)
            assert len([p for p in cache.iterdir() if family.fullmatch(p.name)]) <= artifacts.KEEP
        assert not list(cache.glob("*.partial"))
    quantized = [Path(p.onnx) for p in prepared.values()]
    assert len(set(quantized)) == 6  # a changed graph never meets an old quantization
    assert not quantized[0].exists()  # superseded: deleted with its export and inputs
    assert not any(Path(p).exists() for p in prepared[1].inputs.values())
    assert all(Path(p).is_file() for p in prepared[6].inputs.values())
    # the same graph again reuses its quantization and inputs, file for file
    inode = quantized[-1].stat().st_ino
    again = prepare(plan, cache)
    assert again == prepared[6]
    assert Path(again.onnx).stat().st_ino == inode
    # and what it computes is the model as built now: six passes
    with torch.inference_mode():
        model = __import__("pg_fresh_models").build_depth_from_file().eval()
        expected = model(__import__("pg_fresh_models").inputs(4)).numpy()
    fp32 = prepare(plan_of(project, "onnxruntime", "build_depth_from_file"), cache)
    np.testing.assert_allclose(ort_output(fp32, 4), expected, atol=1e-5)
    assert np.abs(ort_output(again, 4) - expected).max() < 0.1  # int8: close, not exact


@pytest.mark.parametrize(("inputs", "kind"), [("named_inputs", dict), ("positional_inputs", tuple)])
def test_prepared_inputs_keep_their_names_and_order(project, inputs, kind):
    cache = project / ".perf-gate" / "cache"
    plan = plan_of(project, "onnxruntime", "build_pair", input_callable=f"pg_fresh_models:{inputs}")
    prepared = prepare(plan, cache)
    assert set(prepared.inputs) == {"1", "4"}
    stored = read_inputs(Path(prepared.inputs["4"]))
    assert isinstance(stored, kind)
    module = __import__("pg_fresh_models")
    given = getattr(module, inputs)(4)
    if kind is dict:
        assert list(stored) == ["b", "a"]
        args, kwargs = (), given
    else:
        args, kwargs = given, {}
    with torch.inference_mode():
        expected = module.build_pair().eval()(*args, **kwargs).numpy()
    smoke_test(prepared)
    np.testing.assert_allclose(ort_output(prepared, 4), expected, atol=1e-5)


# --- onnxruntime workers without torch ---------------------------------------------------------

# Runs a worker mode in this interpreter, then reports which runtimes it had imported.
WRAPPER = """
import json
import sys

from gate.measure.worker.main import main

code = main(sys.argv[1:])
loaded = sorted({name.split(".")[0] for name in sys.modules} & {"torch", "onnxruntime"})
print(json.dumps({"code": code, "loaded": loaded}))
"""


def test_onnxruntime_round_probe_and_duet_workers_never_import_torch(project, tmp_path):
    cache = project / ".perf-gate" / "cache"
    plans = [
        prepare(
            plan_of(project, "onnxruntime", "build_depth_from_file", name="deep[onnxruntime]"),
            cache,
        ),
        prepare(
            plan_of(
                project,
                "onnxruntime",
                "build_pair",
                name="pair[onnxruntime]",
                model="pair",
                input_callable="pg_fresh_models:named_inputs",
            ),
            cache,
        ),
    ]
    document = {
        "root": str(project),
        "settings": {"warmup": 2, "min_calls": 30, "min_time": 0.0, "max_time": 1.0},
        "plans": [p.to_dict() for p in plans],
        "base_plans": [p.to_dict() for p in plans],
    }
    (tmp_path / "plan.json").write_text(json.dumps(document), encoding="utf-8")
    (tmp_path / "wrapper.py").write_text(WRAPPER, encoding="utf-8")

    def worker(*args: str) -> tuple[dict, dict, float]:
        out = tmp_path / f"{args[0]}.json"
        started = time.perf_counter()
        completed = subprocess.run(
            [
                sys.executable,
                str(tmp_path / "wrapper.py"),
                args[0],
                str(tmp_path / "plan.json"),
                str(out),
                *args[1:],
            ],
            cwd=project,
            env=clean_env(OMP_NUM_THREADS="1", PYTHONPATH=str(project)),
            capture_output=True,
            text=True,
            timeout=240,
            check=True,
        )
        wall = time.perf_counter() - started
        report = json.loads(completed.stdout.splitlines()[-1])
        assert report["code"] == 0
        return report, read_json(out), wall

    report, result, wall = worker("round", "--seed", "1")
    assert report["loaded"] == ["onnxruntime"]
    assert result["errors"] == {}
    assert result["runtimes"] == ["onnxruntime"]
    costs = [entry["cost"] for entry in result["results"].values()]
    assert len(costs) == 2
    assert all(value >= 0 for cost in costs for value in cost.values())
    assert sum(sum(cost.values()) for cost in costs) < wall  # parts of the process's time

    for name in ("deep[onnxruntime]", "pair[onnxruntime]"):
        report, result, _ = worker("probe", "--benchmark", name)
        assert report["loaded"] == ["onnxruntime"]
        assert "error" not in result, result
        assert result["runtimes"] == ["onnxruntime"]

    report, result, _ = worker("duet", "--seed", "2")
    assert report["loaded"] == ["onnxruntime"]
    assert result["head"]["errors"] == {}
    assert set(result["head"]["results"]) == {"deep[onnxruntime]", "pair[onnxruntime]"}
