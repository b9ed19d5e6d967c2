"""What one benchmark's measurement must not take from another, on real models and processes:
the same inputs for every variant's parity, a process per thread count, probes that time a
cold start one at a time, memory counted from after the imports; and config references that
cannot be resolved reported as config errors before any round runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from gate.config import load_config
from gate.errors import ConfigError
from gate.measure.paired import PairedRounds, PairedRunner
from gate.measure.profiles import Profiler
from gate.measure.quality import evaluate
from gate.measure.runner import Runner, prepare_all

from ._support import read_json, run_cli, write_files

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.slow

MODULE = "pg_isolation_models"
SPIKE = 256 * 2**20  # bytes held for a moment while loading or inside forward

MODELS = f"""
import os
import time

import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


def unseeded(batch_size):
    return torch.randn(batch_size, 16)  # other numbers on every call


NOT_CALLABLE = 3


def build_with(width):
    return nn.Linear(16, width)


def no_arguments():
    return torch.ones(1, 16)


def build_boom():
    raise RuntimeError("boom")


def batches():
    yield torch.ones(4, 16), torch.zeros(4, dtype=torch.long)


def build_spiky_load():
    junk = b"x" * {SPIKE}  # resident while the model is built, freed before it is returned
    del junk
    return build()


class SpikyForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = build()

    def forward(self, x):
        junk = torch.ones({SPIKE // 4})  # float32, freed when forward returns
        return self.inner(x) + junk[0] * 0


def build_spiky_inference():
    return SpikyForward()


def stamped(batch_size):
    return torch.ones(batch_size, 16)


def _log(event):
    if _LOG:
        with open(_LOG, "a") as out:
            out.write(f"{{os.getpid()}} {{event}} {{time.monotonic()}}\\n")


class Logged(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = build()

    def forward(self, x):
        _log("forward-start")
        out = self.inner(x)
        _log("forward-end")
        return out


def threads_logged(batch_size):
    _log("omp=" + os.environ.get("OMP_NUM_THREADS", "unset"))
    return torch.ones(batch_size, 16)


def build_logged():
    _log("build")
    time.sleep(0.3)  # a cold start long enough that two unguarded probes would overlap
    return Logged()


_LOG = os.environ.get("PG_ISOLATION_LOG")
_log("import")
"""

SETTINGS = "measure: {rounds: 2, warmup: 1, min_calls: 5, min_time: 0.01s, probes: 1, seed: 1}\n"


def ref(name: str) -> str:
    return f"{MODULE}:{name}"


def model(
    name: str, *, torch: str = ref("build"), input: str = "{shape: [1, 16]}", **keys: str
) -> str:
    lines = [f"  {name}:", f"    torch: {torch}", f"    input: {input}"]
    lines += [f"    {key}: {value}" for key, value in keys.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def project(tmp_path: Path):
    """A project with the models module; writes its config with ``configure(models)``."""
    root = write_files(tmp_path / "project", {f"{MODULE}.py": MODELS})

    def configure(*models: str, settings: str = SETTINGS) -> Path:
        write_files(root, {"perf-gate.yaml": "models:\n" + "".join(models) + settings})
        return root

    yield configure
    while str(root) in sys.path:
        sys.path.remove(str(root))
    sys.modules.pop(MODULE, None)


def runner_for(root: Path, messages: list[str] | None = None) -> tuple[object, Runner]:
    config = load_config(root / "perf-gate.yaml")
    progress = messages.append if messages is not None else (lambda message: None)
    return config, Runner(config.measure, config.root, config.report_dir / "work", progress)


# --- parity on the model's own inputs -------------------------------------------------------


def test_parity_without_an_eval_set_feeds_every_variant_the_same_inputs(project):
    root = project(
        model("shaped", variants="[torch, onnxruntime]"),
        model("unseeded", input=f"{MODULE}:unseeded", variants="[torch, onnxruntime]"),
    )
    config, runner = runner_for(root)
    plans, errors, _ = prepare_all(config, None, lambda message: None, runner)
    assert errors == []
    evaluated = evaluate(config, runner, plans, lambda message: None)
    assert evaluated.errors == []
    for name in ("shaped[onnxruntime]", "unseeded[onnxruntime]"):
        parity = evaluated.info[name]["parity"]
        assert parity["ok"] is True, parity["reason"]
        assert parity["reference"] == name.replace("onnxruntime", "torch")
        assert parity["max_abs_diff"] < 1e-5


# --- references that cannot be resolved -----------------------------------------------------

BAD_REFERENCES = [
    (
        model("tiny", torch="nosuchmod:build", variants="[torch]"),
        "perf-gate.yaml: models.tiny.torch: cannot import module 'nosuchmod' (No module named "
        "'nosuchmod'); check the module path (relative to the config file's directory)",
    ),
    (
        model("tiny", torch=ref("nosuch"), variants="[torch]"),
        f"perf-gate.yaml: models.tiny.torch: module '{MODULE}' has no attribute 'nosuch'",
    ),
    (
        model("tiny", torch=ref("NOT_CALLABLE"), variants="[onnxruntime]"),
        f"perf-gate.yaml: models.tiny.torch: '{MODULE}:NOT_CALLABLE' is an int, not a callable",
    ),
    (
        model("tiny", torch=ref("build_with"), variants="[torch]"),
        f"perf-gate.yaml: models.tiny.torch: '{MODULE}:build_with' cannot be called as "
        "build_with() (missing a required argument: 'width'); perf-gate passes exactly these "
        "arguments",
    ),
    (
        model("tiny", input=f"{MODULE}:no_arguments", variants="[torch]"),
        f"perf-gate.yaml: models.tiny.input: '{MODULE}:no_arguments' cannot be called as "
        "no_arguments(batch_size) (too many positional arguments); perf-gate passes exactly "
        "these arguments",
    ),
    (
        model(
            "tiny",
            variants="[torch]",
            eval=f"{{callable: {MODULE}:missing_batches, metrics: [accuracy]}}",
        ),
        f"perf-gate.yaml: models.tiny.eval.callable: module '{MODULE}' has no attribute "
        "'missing_batches'",
    ),
    (
        model(
            "tiny",
            variants="[torch]",
            eval=f"{{callable: {MODULE}:batches, metrics: [accuracy], "
            f"custom: {{spread: {{function: {MODULE}:build, direction: lower}}}}}}",
        ),
        f"perf-gate.yaml: models.tiny.eval.custom.spread.function: '{MODULE}:build' cannot be "
        "called as build(predictions, targets) (too many positional arguments); perf-gate "
        "passes exactly these arguments",
    ),
]


@pytest.mark.parametrize(
    ("config", "message", "here"),
    # the first through a prepare worker (its answer carries the reference back); the others
    # in this process, where the same check runs without a worker to start
    [(*case, index > 0) for index, case in enumerate(BAD_REFERENCES)],
)
def test_a_reference_that_cannot_be_resolved_is_a_config_error_naming_the_key(
    project, config, message, here
):
    root = project(config)
    with pytest.raises(ConfigError) as caught:
        prepare_all(load_config(root / "perf-gate.yaml"), None, lambda message: None, here=here)
    assert caught.value.message == message
    assert caught.value.exit_code == 2
    assert caught.value.slug == "import"


def test_the_users_code_raising_stays_a_measurement_error_with_its_message(project):
    root = project(model("tiny", torch=ref("build_boom"), variants="[torch, onnxruntime]"))
    config, runner = runner_for(root)
    plans, errors, _ = prepare_all(config, None, lambda message: None, runner)
    # the ONNX export runs the factory while preparing; the torch variant meets it in a round
    (error,) = errors
    assert error.benchmark == "tiny[onnxruntime]"
    assert error.message.startswith("preparing: RuntimeError: boom (")
    measured = runner.measure(plans, timing=True)
    (error,) = measured.errors
    assert error.benchmark == "tiny[torch]"
    assert error.message.startswith("round 1: RuntimeError: boom (")


def test_perf_gate_run_exits_2_with_one_line_for_a_bad_reference(project):
    root = project(model("tiny", torch=ref("nosuch"), variants="[torch]"))
    ran = run_cli(root, "run")
    assert ran.ret == 2, ran.output
    assert "Traceback" not in ran.output
    assert ran.stderr.strip().splitlines()[-1] == (
        f"perf-gate: error: perf-gate.yaml: models.tiny.torch: module '{MODULE}' has no "
        "attribute 'nosuch' (perf-gate explain import)"
    )


def test_perf_gate_run_exits_3_and_keeps_the_message_when_the_factory_raises(project):
    root = project(model("tiny", torch=ref("build_boom"), variants="[onnxruntime]"))
    ran = run_cli(root, "run")
    assert ran.ret == 3, ran.output
    assert "Traceback" not in ran.output
    record = read_json(root / ".perf-gate" / "results.json")
    (error,) = record["errors"]
    assert "RuntimeError: boom" in error["message"]


# --- threads ----------------------------------------------------------------------------------

ONE = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
TWO = {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}


def test_a_round_runs_one_process_per_thread_count(project):
    root = project(
        model("one", variants="[torch, onnxruntime]", threads="1"),
        model("two", variants="[torch]", threads="2"),
    )
    messages: list[str] = []
    config, runner = runner_for(root, messages)
    plans, _, _ = prepare_all(config, None, lambda message: None, runner)
    measured = runner.measure(plans)
    assert measured.errors == []
    (line,) = [m for m in messages if m.startswith("round 1/2: ")]
    assert line.endswith(" in 2 fresh processes (one per thread count)")
    assert sorted(line[len("round 1/2: ") : line.index(" in ")].split(", ")) == [
        "one[onnxruntime]",
        "one[torch]",
        "two[torch]",
    ]
    assert measured.info["one[torch]"]["threading"] == {
        "torch_intra_op_threads": 1,
        "torch_inter_op_threads": 1,
        **ONE,
    }
    assert measured.info["one[onnxruntime]"]["threading"] == {
        "ort_intra_op_threads": 1,
        "ort_inter_op_threads": 1,
        "ort_execution_mode": "ORT_SEQUENTIAL",
        **ONE,
    }
    assert measured.info["two[torch]"]["threading"] == {
        "torch_intra_op_threads": 2,
        "torch_inter_op_threads": 1,
        **TWO,
    }
    for name in ("one[torch]", "one[onnxruntime]", "two[torch]"):
        latency = next(
            s for s in measured.samples if s.benchmark == name and s.metric.name == "latency"
        )
        assert len(latency.values) == 2  # every round measured every benchmark


def test_profiles_run_one_process_per_thread_count(project, tmp_path, monkeypatch):
    """A diagnosis profiles each benchmark with its own thread settings, as the rounds do."""
    log = tmp_path / "profile.log"
    monkeypatch.setenv("PG_ISOLATION_LOG", str(log))
    logged = f"{MODULE}:threads_logged"
    root = project(
        model("one", input=logged, variants="[torch]", threads="1"),
        model("two", input=logged, variants="[torch]", threads="2"),
    )
    config, runner = runner_for(root)
    plans, _, _ = prepare_all(config, None, lambda message: None, runner)
    log.unlink(missing_ok=True)  # preparation called the input here, in the parent
    profiler = Profiler(runner, tmp_path / "profiles", max_trace=50 * 2**20)
    profiled = profiler.models("head", [(plan, 1) for plan in plans], root)
    assert set(profiled) == {"one[torch]", "two[torch]"}
    assert all(not isinstance(result, str) for result in profiled.values()), profiled
    seen: dict[str, set[str]] = {}
    for line in log.read_text().splitlines():
        pid, event, _ = line.split()
        if event.startswith("omp="):
            seen.setdefault(pid, set()).add(event)
    assert sorted(map(sorted, seen.values())) == [["omp=1"], ["omp=2"]]


def test_paired_rounds_run_one_group_of_processes_per_thread_count(project):
    root = project(
        model("one", variants="[torch]", threads="1"),
        model("two", variants="[torch, onnxruntime]", threads="2"),
    )
    messages: list[str] = []
    config, runner = runner_for(root, messages)
    plans, _, _ = prepare_all(config, None, lambda message: None, runner)
    by_name = {p.name: p for p in plans}
    into = PairedRounds()
    PairedRunner(runner, root).run(
        [(by_name[n], by_name[n]) for n in ("one[torch]", "two[torch]")],
        [(by_name["two[onnxruntime]"], by_name["two[onnxruntime]"])],
        1,
        into,
    )
    assert into.errors == {}
    (line,) = [m for m in messages if m.startswith("paired round 1: ")]
    assert line.count("|") == 1  # two groups of processes
    expected = {"one[torch]": ONE, "two[torch]": TWO, "two[onnxruntime]": TWO}
    for name, env in expected.items():
        assert into.rounds_of(name) == 1
        for arm in (into.base[name][0], into.head[name][0]):
            assert {k: arm["threading"][k] for k in env} == env
        assert {k: runner.threading[name][k] for k in env} == env


# --- probes -----------------------------------------------------------------------------------


def test_probes_time_their_cold_start_while_no_other_probe_works(project, tmp_path, monkeypatch):
    """Probes run two at a time, but a cold start (building the model, the first call) is timed
    under an exclusive lock: no other probe's import, cold start or later calls fall inside it.
    Events are stamped with the system-wide monotonic clock by the model module itself."""
    log = tmp_path / "probes.log"
    monkeypatch.setenv("PG_ISOLATION_LOG", str(log))  # the workers inherit it
    logged = f"{MODULE}:build_logged"
    root = project(
        *(
            model(name, torch=logged, variants="[torch]", metrics="[memory, cold_start]")
            for name in ("first", "second")
        ),
        settings=SETTINGS.replace("probes: 1", "probes: 2"),
    )
    messages: list[str] = []
    config, runner = runner_for(root, messages)
    plans, _, _ = prepare_all(config, None, lambda message: None, runner)
    measured = runner.measure(plans, timing=False)
    assert measured.errors == []
    assert sorted(m for m in messages if m.startswith("probe ")) == [
        f"probe {k}/2: {name}" for k in (1, 2) for name in ("first[torch]", "second[torch]")
    ]
    events: dict[str, list[tuple[str, float]]] = {}
    for line in log.read_text().splitlines():
        pid, event, stamp = line.split()
        assert int(pid) != os.getpid()  # preparation imports the model in a worker, not here
        events.setdefault(pid, []).append((event, float(stamp)))
    preparing = [pid for pid, stamps in events.items() if [e for e, _ in stamps] == ["import"]]
    assert len(preparing) == 2  # one prepare worker per model: references checked there
    events = {pid: stamps for pid, stamps in events.items() if pid not in preparing}
    assert len(events) == 4  # 2 benchmarks x 2 probes, each its own process
    windows = {}
    for pid, stamps in events.items():
        assert [e for e, _ in stamps][:2] == ["import", "build"]  # imported while shared
        first_call_end = next(t for e, t in stamps if e == "forward-end")
        windows[pid] = (stamps[1][1], first_call_end)  # the timed cold start: build .. 1st call
    for pid, (start, end) in windows.items():
        for other, stamps in events.items():
            if other != pid:
                inside = [(e, t) for e, t in stamps if start <= t <= end]
                assert not inside, f"probe {other} worked during {pid}'s cold start: {inside}"


# --- memory -----------------------------------------------------------------------------------


def test_memory_counts_peaks_from_after_the_imports(project):
    root = project(
        model("spiky-load", torch=ref("build_spiky_load"), variants="[torch]", metrics="[memory]"),
        model(
            "spiky-forward",
            torch=ref("build_spiky_inference"),
            variants="[torch]",
            metrics="[memory]",
        ),
    )
    config, runner = runner_for(root)
    plans, _, _ = prepare_all(config, None, lambda message: None, runner)
    measured = runner.measure(plans, timing=False)
    assert measured.errors == []

    def value(name: str, metric: str) -> float:
        (found,) = [s for s in measured.samples if s.benchmark == name and s.metric.name == metric]
        return found.values[0]

    # a peak while loading counts in memory.load, though it was freed before load returned
    # (nearly all of it: the allocator may reuse a few pages it already held)
    assert value("spiky-load[torch]", "memory.load") > 0.95 * SPIKE
    assert value("spiky-load[torch]", "memory.inference") > 0.95 * SPIKE
    # a peak inside forward counts in memory.inference only
    assert value("spiky-forward[torch]", "memory.load") < SPIKE / 2
    assert value("spiky-forward[torch]", "memory.inference") > 0.95 * SPIKE
    for name in ("spiky-load[torch]", "spiky-forward[torch]"):
        # the absolute peak adds the imports (torch is far more than a few MB)
        assert value(name, "memory.peak") > value(name, "memory.inference") + 50 * 2**20
        assert measured.info[name]["memory_peak_since"] == "imports (VmHWM reset after them)"
