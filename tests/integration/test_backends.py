"""gate.measure backends with real torch and onnxruntime: every variant, inputs, artifacts, errors.

A tiny model module is written to a temporary directory and imported the way a worker imports
it (``BenchmarkPlan.root`` on sys.path). Nothing is mocked; the only injected piece is the clock
of ``time_calls``, which is how its loop is meant to be driven deterministically.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gate.errors import MeasurementError
from gate.measure import BadReference, BenchmarkPlan
from gate.measure.backends import get_backend
from gate.measure.prepared import prepare, smoke_test
from gate.measure.worker.timing import time_calls

from ._support import write_files, write_matmul_onnx

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

MODULE = "pg_backend_models"

MODELS = """
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


def build_other_weights():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


def build_big():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(16, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 4)
    )


def build_embedding():
    torch.manual_seed(0)
    return nn.Sequential(nn.Embedding(10, 8), nn.Flatten(), nn.Linear(6 * 8, 4))


def build_without_linear():
    return nn.Sequential(nn.ReLU())


def not_a_module():
    return {"weights": [1.0, 2.0]}


NOT_CALLABLE = 3


def build_with(width):
    return nn.Linear(16, width)


def no_arguments():
    return torch.ones(2, 16)


def inputs(batch_size):
    return torch.ones(batch_size, 16)


def two_inputs(batch_size):
    return (torch.ones(batch_size, 16), torch.ones(batch_size, 16))
"""

# The same module twice, as a user edits it: only forward() changes (20 passes instead of 1);
# the layers, their repr and the weights stay the same.
STALE_V1 = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(16, 16), nn.Tanh())

    def forward(self, x):
        return self.net(x)


def build():
    return Net()
"""
STALE_V2 = STALE_V1.replace(
    "        return self.net(x)\n",
    "        for _ in range(20):\n            x = self.net(x)\n        return x\n",
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    root = write_files(
        tmp_path_factory.mktemp("backends"),
        {
            f"{MODULE}.py": MODELS,
            "pg_stale_v1.py": STALE_V1,
            "pg_stale_v2.py": STALE_V2,
            "pg_needs_missing.py": "import pg_missing_dependency\n",
        },
    )
    sys.path.insert(0, str(root))
    yield root
    while str(root) in sys.path:
        sys.path.remove(str(root))
    for name in (MODULE, "pg_stale_v1", "pg_stale_v2", "pg_needs_missing"):
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def make_plan(root: Path, variant: str, factory: str = "build", **changes) -> BenchmarkPlan:
    fields = {
        "name": f"tiny[{variant}]",
        "model": "tiny",
        "variant": variant,
        "root": str(root),
        "torch": f"{MODULE}:{factory}",
        "input_callable": f"{MODULE}:inputs",
        "batch_sizes": (1, 3),
        "threads": 1,
    }
    fields.update(changes)
    return BenchmarkPlan(**fields)


def reference_output(factory: str, batch_size: int):
    module = __import__(MODULE)
    model = getattr(module, factory)().eval()
    with torch.inference_mode():
        return model(module.inputs(batch_size))


def loaded(plan: BenchmarkPlan):
    backend = get_backend(plan)
    backend.import_runtime()
    backend.load()
    return backend


# --- torch variants -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "dtype", "tolerance"),
    [
        ("torch", "float32", 1e-6),
        ("torch-bf16", "bfloat16", 5e-2),
        ("torch-int8", "float32", 5e-2),
    ],
)
def test_torch_variant_loads_runs_and_computes_the_model(project, variant, dtype, tolerance):
    plan = make_plan(project, variant)
    smoke_test(plan)
    backend = loaded(plan)
    output = backend.call_for(3)()
    assert tuple(output.shape) == (3, 4)
    assert str(output.dtype) == f"torch.{dtype}"
    expected = reference_output("build", 3)
    assert torch.allclose(output.float(), expected, atol=tolerance, rtol=tolerance)
    info = backend.info()
    assert info["model_size"] > 0


PARAMS = 16 * 32 + 32 + 32 * 4 + 4


@pytest.mark.parametrize("variant", ["torch", "torch-int8", "onnxruntime"])
def test_every_backend_reports_the_parameters_of_the_model(project, cache, variant):
    # dynamic int8 packs Linear weights out of nn.Parameters; ONNX keeps them as initializers
    backend = loaded(prepare(make_plan(project, variant), cache))
    assert backend.info()["params"] == PARAMS


def test_onnx_parameters_are_the_elements_of_the_initializers(project, cache):
    import onnx

    from gate.measure.backends.onnx_backend import initializer_elements

    for variant in ("onnxruntime", "onnxruntime-int8"):
        path = Path(prepare(make_plan(project, variant, "build_big", model="big"), cache).onnx)
        graph = onnx.load(str(path)).graph
        expected = sum(int(np.prod(t.dims)) for t in graph.initializer)
        assert initializer_elements(path) == expected


def test_torch_int8_really_contains_quantized_linear_modules(project):
    from gate.measure.backends.torch_int8 import quantize_int8

    quantized_linear = torch.ao.nn.quantized.dynamic.Linear
    plan = make_plan(project, "torch-int8")
    direct = quantize_int8(plan, __import__(MODULE).build().eval())
    assert direct.mode == "dynamic"
    assert direct.layers == {"Linear": 2}
    assert [type(m) for m in direct.module.modules()].count(quantized_linear) == 2

    backend = loaded(make_plan(project, "torch-int8"))
    kinds = [type(m) for m in backend.module.modules()]
    assert kinds.count(quantized_linear) == 2
    assert torch.nn.Linear not in kinds


def test_torch_int8_is_smaller_than_fp32_for_big_linear_layers(project):
    fp32 = loaded(make_plan(project, "torch", "build_big")).info()["model_size"]
    int8 = loaded(make_plan(project, "torch-int8", "build_big")).info()["model_size"]
    assert int8 < 0.5 * fp32


def test_quantize_int8_rejects_a_model_without_quantizable_layers(project, cache):
    from gate.measure.backends.torch_int8 import quantize_int8

    plan = make_plan(project, "torch-int8", "build_without_linear")
    with pytest.raises(BadReference, match="would quantize nothing") as refused:
        quantize_int8(plan, __import__(MODULE).build_without_linear())
    assert refused.value.key == f"models.{plan.model}.variants"
    with pytest.raises(BadReference, match="would quantize nothing"):
        smoke_test(plan)
    with pytest.raises(BadReference, match="would quantize nothing"):
        prepare(plan, cache)  # before any round: the runner makes it a config error


# --- onnxruntime variants -----------------------------------------------------------------


def test_onnxruntime_prepare_exports_into_the_cache_dir(project, cache):
    plan = make_plan(project, "onnxruntime")
    prepared = prepare(plan, cache)
    assert plan.onnx is None  # the plan is frozen; prepare returns a new one
    exported = Path(prepared.onnx)
    assert exported.suffix == ".onnx"
    assert exported.parent == cache
    assert exported.is_file()
    assert not list(cache.glob("*.partial"))
    smoke_test(prepared)
    backend = loaded(prepared)
    (output,) = backend.call_for(3)()
    assert output.shape == (3, 4)
    np.testing.assert_allclose(output, reference_output("build", 3).numpy(), atol=1e-5)
    assert backend.info()["model_size"] == exported.stat().st_size


def test_onnxruntime_export_is_cached_by_content(project, cache):
    first = Path(prepare(make_plan(project, "onnxruntime"), cache).onnx)
    inode = first.stat().st_ino
    second = Path(prepare(make_plan(project, "onnxruntime"), cache).onnx)
    assert second == first
    assert second.stat().st_ino == inode  # the same graph keeps its file: not rewritten
    other = Path(prepare(make_plan(project, "onnxruntime", "build_other_weights"), cache).onnx)
    assert other != first  # other weights, other content, other file
    assert other.is_file()


def test_onnxruntime_export_cache_sees_a_changed_forward(project, cache):
    def exported(module: str) -> BenchmarkPlan:
        plan = make_plan(project, "onnxruntime", torch=f"{module}:build", model="stale")
        return prepare(plan, cache)

    exported("pg_stale_v1")
    edited = exported("pg_stale_v2")
    with torch.inference_mode():
        expected = __import__("pg_stale_v2").build().eval()(torch.ones(2, 16)).numpy()
    (output,) = loaded(edited).call_for(2)()
    np.testing.assert_allclose(output, expected, atol=1e-5)


def test_onnxruntime_int8_quantizes_a_smaller_distinct_file(project, cache):
    fp32 = Path(prepare(make_plan(project, "onnxruntime", "build_big", model="big"), cache).onnx)
    plan = make_plan(project, "onnxruntime-int8", "build_big", model="big")
    quantized = Path(prepare(plan, cache).onnx)
    assert quantized.is_file()
    assert quantized != fp32
    assert "-int8-" in quantized.name
    assert quantized.read_bytes() != fp32.read_bytes()
    assert quantized.stat().st_size < 0.5 * fp32.stat().st_size
    assert Path(prepare(plan, cache).onnx) == quantized  # cached
    prepared = prepare(plan, cache)
    smoke_test(prepared)
    (output,) = loaded(prepared).call_for(3)()
    assert output.shape == (3, 4)


# --- inputs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["torch", "torch-bf16", "torch-int8", "onnxruntime"])
def test_input_given_as_shape_and_dtype(project, cache, variant):
    plan = prepare(
        make_plan(
            project,
            variant,
            input_callable=None,
            input_shape=(1, 16),
            input_dtype="float32",
            batch_sizes=(2, 5),
        ),
        cache,
    )
    smoke_test(plan)
    backend = loaded(plan)
    for batch_size in plan.batch_sizes:
        output = backend.call_for(batch_size)()
        output = output[0] if isinstance(output, list) else output
        assert tuple(output.shape) == (batch_size, 4)


@pytest.mark.parametrize("variant", ["torch", "onnxruntime"])
def test_integer_inputs_from_shape_and_dtype(project, cache, variant):
    plan = prepare(
        make_plan(
            project,
            variant,
            "build_embedding",
            model="embedding",
            input_callable=None,
            input_shape=(1, 6),
            input_dtype="int64",
        ),
        cache,
    )
    smoke_test(plan)
    output = loaded(plan).call_for(3)()
    output = output[0] if isinstance(output, list) else output
    assert tuple(output.shape) == (3, 4)


def test_callable_inputs_reach_both_runtimes_identically(project, cache):
    torch_out = loaded(make_plan(project, "torch")).call_for(2)()
    (ort_out,) = loaded(prepare(make_plan(project, "onnxruntime"), cache)).call_for(2)()
    np.testing.assert_allclose(ort_out, torch_out.numpy(), atol=1e-5)


@pytest.mark.parametrize(
    ("dtype", "factory", "shape"),
    [("float32", "build", (1, 16)), ("int64", "build_embedding", (1, 6))],
)
def test_random_inputs_are_the_same_numbers_in_both_runtimes(project, cache, dtype, factory, shape):
    def plan(variant: str) -> BenchmarkPlan:
        changes = {"input_callable": None, "input_shape": shape, "input_dtype": dtype}
        return prepare(make_plan(project, variant, factory, model=factory, **changes), cache)

    torch_out = loaded(plan("torch")).call_for(3)()
    (ort_out,) = loaded(plan("onnxruntime")).call_for(3)()
    np.testing.assert_allclose(ort_out, torch_out.numpy(), atol=1e-5)


# --- a given ONNX file ----------------------------------------------------------------------


def test_given_onnx_file_is_used_as_is(project, cache, tmp_path):
    given = write_matmul_onnx(tmp_path / "given.onnx", width=8)
    plan = make_plan(project, "onnxruntime", torch=None, onnx=str(given), model="given")
    prepared = prepare(plan, cache)
    assert Path(prepared.onnx) == given
    assert not list(cache.glob("given-*.onnx"))  # neither exported nor copied
    smoke_test(prepared)
    (output,) = loaded(prepared).call_for(3)()
    assert output.shape == (3, 8)


def test_given_onnx_file_can_be_quantized(project, tmp_path):
    given = write_matmul_onnx(tmp_path / "given.onnx", width=256, layers=3)
    cache = tmp_path / "cache"
    plan = make_plan(project, "onnxruntime-int8", torch=None, onnx=str(given), model="given")
    prepared = prepare(plan, cache)
    quantized = Path(prepared.onnx)
    assert quantized.parent == cache
    assert quantized.name.startswith("given-int8-")
    assert quantized.stat().st_size < given.stat().st_size
    smoke_test(prepared)


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["torch", "onnxruntime"])
def test_factory_returning_a_non_module_is_a_measurement_error(project, cache, variant):
    plan = make_plan(project, variant, "not_a_module")
    with pytest.raises(MeasurementError) as caught:
        smoke_test(prepare(plan, cache))
    assert f"'{MODULE}:not_a_module'" in str(caught.value)
    assert "torch.nn.Module" in str(caught.value)
    assert caught.value.exit_code == 3


BAD_FACTORIES = [
    (
        "pg_no_such_module:build",
        "cannot import module 'pg_no_such_module' (No module named 'pg_no_such_module'); "
        "check the module path (relative to the config file's directory)",
    ),
    (f"{MODULE}:no_such_factory", f"module '{MODULE}' has no attribute 'no_such_factory'"),
    (f"{MODULE}:NOT_CALLABLE", f"'{MODULE}:NOT_CALLABLE' is an int, not a callable"),
    (
        f"{MODULE}:build_with",
        f"'{MODULE}:build_with' cannot be called as build_with() "
        "(missing a required argument: 'width'); perf-gate passes exactly these arguments",
    ),
]


@pytest.mark.parametrize("variant", ["torch", "onnxruntime"])
@pytest.mark.parametrize(("reference", "problem"), BAD_FACTORIES)
def test_bad_model_reference_is_found_by_prepare_and_names_its_key(
    project, cache, variant, reference, problem
):
    plan = make_plan(project, variant, torch=reference)
    with pytest.raises(BadReference) as caught:
        prepare(plan, cache)  # before any round: preparation checks the references
    assert caught.value.key == "models.tiny.torch"
    assert caught.value.problem == problem
    assert caught.value.message == f"models.tiny.torch: {problem}"
    if variant == "torch":  # a worker loading the torch variant reports the same
        with pytest.raises(BadReference, match=r"^models\.tiny\.torch: "):
            smoke_test(plan)


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        (f"{MODULE}:no_such_inputs", f"module '{MODULE}' has no attribute 'no_such_inputs'"),
        (
            f"{MODULE}:no_arguments",
            f"'{MODULE}:no_arguments' cannot be called as no_arguments(batch_size) "
            "(too many positional arguments); perf-gate passes exactly these arguments",
        ),
    ],
)
@pytest.mark.parametrize("variant", ["torch", "onnxruntime"])
def test_bad_input_reference_names_the_input_key(project, cache, variant, reference, problem):
    plan = make_plan(project, variant, input_callable=reference)
    with pytest.raises(BadReference) as caught:
        prepare(plan, cache)
    assert caught.value.key == "models.tiny.input"
    assert caught.value.problem == problem


def test_a_module_failing_to_import_its_own_dependency_is_not_a_bad_reference(project, cache):
    plan = make_plan(project, "torch", torch="pg_needs_missing:build")
    with pytest.raises(MeasurementError) as caught:
        prepare(plan, cache)
    assert not isinstance(caught.value, BadReference)
    assert caught.value.message == (
        "models.tiny.torch: importing module 'pg_needs_missing' failed: "
        "No module named 'pg_missing_dependency'"
    )


def test_unknown_variant_is_a_measurement_error(project):
    with pytest.raises(MeasurementError, match="unknown variant 'tensorrt'"):
        get_backend(make_plan(project, "tensorrt"))


def test_unreadable_onnx_file_is_a_measurement_error(project, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not a protobuf")
    plan = make_plan(project, "onnxruntime", torch=None, onnx=str(broken))
    with pytest.raises(MeasurementError, match="cannot load"):
        smoke_test(plan)


def test_wrong_number_of_onnx_inputs_is_a_measurement_error(project, tmp_path):
    given = write_matmul_onnx(tmp_path / "one-input.onnx")
    plan = make_plan(
        project, "onnxruntime", torch=None, onnx=str(given), input_callable=f"{MODULE}:two_inputs"
    )
    with pytest.raises(MeasurementError, match="2 inputs given"):
        smoke_test(plan)


# --- the timing loop with an injected clock -------------------------------------------------


class FakeClock:
    """Nanoseconds that move only when the measured function (or sync) says so."""

    def __init__(self) -> None:
        self.now = 1_000_000
        self.reads = 0

    def __call__(self) -> int:
        self.reads += 1
        return self.now


def workload(clock: FakeClock, cost_ns: int, first_cost_ns: int | None = None):
    calls: list[int] = []

    def fn() -> None:
        cost = first_cost_ns if (first_cost_ns is not None and not calls) else cost_ns
        calls.append(clock.now)
        clock.now += cost

    return fn, calls


MS = 1_000_000


@pytest.mark.parametrize(
    ("cost_ns", "min_calls", "min_time", "max_time", "timed"),
    [
        (MS, 5, 0.02, 10.0, 20),  # min_time decides: 20 calls of 1 ms
        (MS, 50, 0.01, 10.0, 50),  # min_calls decides
        (MS, 1000, 5.0, 0.03, 30),  # max_time stops the loop early
        (1000 * MS, 100, 60.0, 0.5, 3),  # but never before 3 timed calls
        (MS, 1, 0.0, 10.0, 1),  # one call is enough when nothing asks for more
    ],
)
def test_time_calls_stops_by_min_calls_min_time_and_max_time(
    cost_ns, min_calls, min_time, max_time, timed
):
    clock = FakeClock()
    fn, calls = workload(clock, cost_ns)
    result = time_calls(
        fn, warmup=4, min_calls=min_calls, min_time=min_time, max_time=max_time, clock=clock
    )
    assert len(result.times) == timed
    assert len(calls) == 1 + 4 + timed
    assert result.times == pytest.approx([cost_ns / 1e9] * timed)
    assert result.first_call == pytest.approx(cost_ns / 1e9)


def test_time_calls_reports_the_first_call_apart_and_skips_warmup():
    clock = FakeClock()
    fn, calls = workload(clock, MS, first_cost_ns=250 * MS)
    result = time_calls(fn, warmup=0, min_calls=10, min_time=0.0, clock=clock)
    assert result.first_call == pytest.approx(0.25)
    assert result.times == pytest.approx([0.001] * 10)
    assert len(calls) == 11

    clock = FakeClock()
    fn, calls = workload(clock, MS)
    result = time_calls(fn, warmup=7, min_calls=3, min_time=0.0, clock=clock)
    assert len(calls) == 1 + 7 + 3
    # warm-up calls are not timed: the timed loop starts after them
    assert len(result.times) == 3


def test_time_calls_includes_sync_in_each_timed_call():
    clock = FakeClock()
    fn, calls = workload(clock, MS)
    syncs: list[int] = []

    def sync() -> None:
        syncs.append(clock.now)
        clock.now += MS // 2

    result = time_calls(fn, warmup=2, min_calls=6, min_time=0.0, clock=clock, sync=sync)
    assert result.first_call == pytest.approx(0.0015)
    assert result.times == pytest.approx([0.0015] * 6)
    assert len(calls) == 1 + 2 + 6
    assert len(syncs) == 1 + 1 + 6  # after the first call, after warm-up, after each timed call


def test_time_calls_reads_the_clock_twice_per_timed_call():
    clock = FakeClock()
    fn, _ = workload(clock, MS)
    time_calls(fn, warmup=3, min_calls=10, min_time=0.0, clock=clock)
    # start + end of the first call, the loop start, then begin/end of each timed call
    assert clock.reads == 2 + 1 + 2 * 10


def test_time_calls_with_the_real_clock_times_real_calls():
    counter = []
    result = time_calls(lambda: counter.append(1), warmup=2, min_calls=25, min_time=0.001)
    assert len(result.times) >= 25
    assert len(counter) == 1 + 2 + len(result.times)
    assert all(t >= 0 for t in result.times)
