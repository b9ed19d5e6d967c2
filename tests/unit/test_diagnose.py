"""Diagnosis without profilers: the diff of two profiles, the share of the measured change, which
benchmarks are picked, the config key, the reports, and the parent's trace handling."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from gate.config import MeasureSettings, load_config
from gate.core.diagnosis import Diagnosis, OperatorProfile, OperatorTime
from gate.core.types import Comparison, Direction, GateResult, Metric, Verdict
from gate.diagnose.diff import MAX_CHANGES, diff, measured_change, missing, reference_times, targets
from gate.diagnose.investigation import NO_BASE, NOT_RERUNNABLE, BaseSide, Investigation, batch_size
from gate.errors import ConfigError
from gate.measure import BenchmarkPlan
from gate.measure.profiles import Profiler, trace_folder
from gate.measure.runner import Runner
from gate.measure.worker.operators import (
    EVENT_BUDGET,
    MAX_CALLS,
    MIN_CALLS,
    Calls,
    per_call,
    profile_python,
    repeat_calls,
    robust_total,
)
from gate.report.diagnosis import render_diagnoses
from gate.report.jsonreport import result_to_dict
from gate.report.markdown import render_summary

LATENCY = Metric("latency", "s", Direction.LOWER)
THROUGHPUT_32 = Metric("throughput@32", "items/s", Direction.HIGHER)
ACCURACY = Metric("accuracy", "fraction", Direction.HIGHER)
US = 1e-6


def comparison(
    benchmark: str = "tiny[torch]",
    metric: Metric = LATENCY,
    verdict: Verdict = Verdict.REGRESSION,
    baseline: float = 20 * US,
    change: float = 1.0,
) -> Comparison:
    return Comparison(
        benchmark=benchmark,
        metric=metric,
        verdict=verdict,
        baseline=baseline,
        current=baseline * (1 + change),
        relative_change=change,
        significant=verdict in (Verdict.REGRESSION, Verdict.IMPROVEMENT),
    )


def profile(*rows: OperatorTime, tool: str = "torch.profiler", items: int = 1) -> OperatorProfile:
    return OperatorProfile(tool=tool, calls=10, items=items, rows=rows)


def row(
    operator: str, time_us: float, shapes: str = "", calls: float = 1, node: str = ""
) -> OperatorTime:
    return OperatorTime(operator=operator, node=node, shapes=shapes, calls=calls, time=time_us * US)


BASE = profile(
    row("aten::addmm", 8, "[1, 64], [64, 256]"),
    row("aten::relu", 2, "[1, 256]"),
    row("aten::linear", 1, "[1, 64]"),
    row("aten::dropout", 3, "[1, 256]"),
)
# One Linear layer more: a second addmm shape, relu twice, dropout gone, gelu new.
HEAD = profile(
    row("aten::addmm", 8, "[1, 64], [64, 256]"),
    row("aten::addmm", 17, "[1, 256], [256, 256]"),
    row("aten::relu", 4, "[1, 256]", calls=2),
    row("aten::linear", 2, "[1, 64]", calls=2),
    row("aten::gelu", 1, "[1, 256]"),
)


def test_diff_ranks_by_increase_and_names_new_vanished_and_shapes() -> None:
    diagnosis = diff(comparison(change=1.0), BASE, HEAD, traces={"base": "b.json"})
    assert [c.operator for c in diagnosis.top()] == [
        "aten::addmm",
        "aten::relu",
        "aten::gelu",
        "aten::linear",
    ]
    addmm = diagnosis.changes[0]
    assert addmm.status == "changed"
    assert addmm.increase == pytest.approx(17 * US)
    assert addmm.base_calls == 1
    assert addmm.head_calls == 2
    assert addmm.added_shapes == ("[1, 256], [256, 256]",)
    assert addmm.removed_shapes == ()
    assert [c.operator for c in diagnosis.new] == ["aten::gelu"]
    assert [c.operator for c in diagnosis.vanished] == ["aten::dropout"]
    assert [c.operator for c in diagnosis.changed_shapes] == ["aten::addmm"]
    assert diagnosis.changes[-1].operator == "aten::dropout"  # the largest decrease last
    assert diagnosis.traces == {"base": "b.json"}
    assert diagnosis.tool == "torch.profiler"
    assert diagnosis.base_total == pytest.approx(14 * US)
    assert diagnosis.head_total == pytest.approx(32 * US)


def test_shares_are_increases_over_the_measured_change() -> None:
    # measured: 20 us * +100% = +20 us per call; increases 17 + 2 + 1 + 1 = 21 us
    diagnosis = diff(comparison(baseline=20 * US, change=1.0), BASE, HEAD)
    assert diagnosis.measured_change == pytest.approx(20 * US)
    assert diagnosis.changes[0].share == pytest.approx(17 / 20)
    assert diagnosis.explained == pytest.approx(21 / 20)
    vanished = diagnosis.vanished[0]
    assert vanished.share is None  # it got faster: no share of a slowdown


def test_no_slowdown_means_no_shares_and_says_so() -> None:
    diagnosis = diff(comparison(verdict=Verdict.UNCHANGED, change=-0.01), BASE, HEAD)
    assert diagnosis.explained is None
    assert all(c.share is None for c in diagnosis.changes)
    assert any("no significant slowdown" in note for note in diagnosis.notes)


def test_a_slowdown_the_rounds_did_not_establish_gets_no_shares() -> None:
    diagnosis = diff(comparison(verdict=Verdict.INCONCLUSIVE, change=0.0003), BASE, HEAD)
    assert diagnosis.explained is None
    assert all(c.share is None for c in diagnosis.changes)
    assert diagnosis.changes[0].increase > 0  # the operators' numbers are still shown


def test_onnxruntime_nodes_are_grouped_by_type_with_the_nodes_that_grew() -> None:
    base = profile(
        row("MatMul", 5, "[1, 16]", node="MatMul_0"),
        row("Relu", 1, "[1, 64]", node="Relu_1"),
        tool="onnxruntime",
    )
    head = profile(
        row("MatMul", 5, "[1, 16]", node="MatMul_0"),
        row("MatMul", 30, "[1, 64]", node="MatMul_2"),
        row("Relu", 1, "[1, 64]", node="Relu_1"),
        row("Relu", 1, "[1, 64]", node="Relu_3"),
        tool="onnxruntime",
    )
    diagnosis = diff(comparison(baseline=6 * US, change=5.0), base, head)
    top = diagnosis.top()[0]
    assert top.operator == "MatMul"
    assert [(n.node, n.increase) for n in top.nodes] == [("MatMul_2", pytest.approx(30 * US))]
    assert diagnosis.explained == pytest.approx(31 / 30)


def layer_row(
    module: str, kind: str, operator: str, time_us: float, shapes: str = ""
) -> OperatorTime:
    """A torch row attributed to a layer (the innermost submodule: dotted path and class)."""
    return OperatorTime(
        operator=operator,
        module=module,
        module_type=kind,
        shapes=shapes,
        calls=1,
        time=time_us * US,
    )


SLOW, MKLDNN = "aten::_slow_conv2d_forward", "aten::mkldnn_convolution"
# Two conv layers and a batch norm, as torch's profiler records them per layer; in the head,
# features.2.conv (a 5x5 kernel now) runs on oneDNN instead of im2col, and takes 3x as long.
CNN_BASE = profile(
    layer_row("features.0.conv", "Conv2d", "aten::conv2d", 1, "[1, 16, 32, 32]"),
    layer_row("features.0.conv", "Conv2d", SLOW, 100, "[1, 16, 32, 32], [16, 16, 3, 3]"),
    layer_row("features.2.conv", "Conv2d", "aten::conv2d", 1, "[1, 16, 32, 32]"),
    layer_row("features.2.conv", "Conv2d", SLOW, 100, "[1, 16, 32, 32], [16, 16, 3, 3]"),
    layer_row("features.2.conv", "Conv2d", "aten::thnn_conv2d", 2, "[1, 16, 32, 32]"),
    layer_row("features.2.bn", "BatchNorm2d", "aten::native_batch_norm", 10, "[1, 16, 32, 32]"),
    layer_row("", "", "aten::mean", 3, "[1, 16, 32, 32]"),  # in the model's own forward
)
CNN_HEAD = profile(
    layer_row("features.0.conv", "Conv2d", "aten::conv2d", 1, "[1, 16, 32, 32]"),
    layer_row("features.0.conv", "Conv2d", SLOW, 100, "[1, 16, 32, 32], [16, 16, 3, 3]"),
    layer_row("features.2.conv", "Conv2d", "aten::conv2d", 1, "[1, 16, 32, 32]"),
    layer_row("features.2.conv", "Conv2d", MKLDNN, 300, "[1, 16, 32, 32], [16, 16, 5, 5]"),
    layer_row("features.2.bn", "BatchNorm2d", "aten::native_batch_norm", 12, "[1, 16, 32, 32]"),
    layer_row("", "", "aten::mean", 3, "[1, 16, 32, 32]"),
)


def test_a_layer_whose_kernel_changed_is_one_row_of_that_layer() -> None:
    diagnosis = diff(comparison(baseline=220 * US, change=1.0), CNN_BASE, CNN_HEAD)
    switch, batch_norm = diagnosis.top()
    assert switch.status == "switched"
    assert switch.module == "features.2.conv"
    assert switch.operator == f"{SLOW} -> {MKLDNN}"
    assert switch.label == f"{SLOW} -> {MKLDNN} in features.2.conv"
    assert switch.base_operators == (SLOW, "aten::thnn_conv2d")  # by time
    assert switch.head_operators == (MKLDNN,)
    # the layer's total, its wrapper aten::conv2d included
    assert (switch.base_time, switch.head_time) == (
        pytest.approx(103 * US),
        pytest.approx(301 * US),
    )
    assert (switch.base_calls, switch.head_calls) == (3, 2)
    assert switch.head_shapes[0] == "[1, 16, 32, 32], [16, 16, 5, 5]"
    assert switch.share == pytest.approx(198 / 220)
    assert diagnosis.switched == (switch,)
    assert diagnosis.new == ()  # not a new oneDNN convolution and a vanished im2col one
    assert diagnosis.vanished == ()
    # The other layers stay per operator, with the layers whose time in it grew.
    assert batch_norm.operator == "aten::native_batch_norm"
    assert [(n.node, n.increase) for n in batch_norm.layers] == [
        ("features.2.bn", pytest.approx(2 * US))
    ]
    rest = {c.operator: c for c in diagnosis.changes if c.status == "changed"}
    assert (rest[SLOW].base_time, rest[SLOW].head_time) == (100 * US, 100 * US)  # features.0
    assert rest["aten::conv2d"].base_calls == 1
    assert rest["aten::mean"].layers == ()
    assert sum(c.base_time for c in diagnosis.changes) == pytest.approx(diagnosis.base_total)
    assert sum(c.head_time for c in diagnosis.changes) == pytest.approx(diagnosis.head_total)
    assert diagnosis.explained == pytest.approx(200 / 220)
    # A layer that switched kernels runs other operators (3 -> 2 here): explaining little,
    # the profile still names no invocation change of an operator the profiler did not resolve.
    unexplained = diff(comparison(baseline=220 * US, change=5.0), CNN_BASE, CNN_HEAD)
    assert unexplained.explained == pytest.approx(200 / 1100)
    assert not any("invocations" in note for note in unexplained.notes)

    data = result_to_dict(result(comparison(baseline=220 * US)), diagnoses=(diagnosis,))
    entry = data["diagnosis"][0]
    assert json.loads(json.dumps(data, allow_nan=False))["diagnosis"][0] == entry
    assert entry["top"][0] == f"{SLOW} -> {MKLDNN}"
    assert entry["switched"] == [f"{SLOW} -> {MKLDNN} in features.2.conv"]
    assert entry["new"] == entry["vanished"] == []
    first = entry["operators"][0]
    assert first["status"] == "switched"
    assert first["module"] == "features.2.conv"
    assert first["base_operators"] == [SLOW, "aten::thnn_conv2d"]
    assert first["head_operators"] == [MKLDNN]
    assert entry["operators"][1]["layers"] == [
        {
            "layer": "features.2.bn",
            "base_time": pytest.approx(10 * US),
            "head_time": pytest.approx(12 * US),
            "increase": pytest.approx(2 * US),
        }
    ]
    text = render_diagnoses((diagnosis,))
    assert f"{SLOW} -> {MKLDNN} in features.2.conv  103 us  301 us  +198 us  90%" in text
    assert "switched: [1, 16, 32, 32], [16, 16, 5, 5]" in text
    assert "features.2.bn +2 us" in text
    assert f"    kernels switched: {SLOW} -> {MKLDNN} in features.2.conv" in text
    assert "new:" not in text


def test_a_layer_of_another_class_under_the_same_path_is_not_a_switch() -> None:
    # A layer inserted before features.3 in a Sequential: features.3 is a Conv2d now, not the
    # ReLU that had the path; their operators are a vanished and a new one, as without layers.
    base = profile(
        layer_row("features.3", "ReLU", "aten::relu", 2),
        layer_row("features.3", "ReLU", "aten::clamp_min", 5),
    )
    head = profile(
        layer_row("features.3", "Conv2d", "aten::conv2d", 1),
        layer_row("features.3", "Conv2d", SLOW, 100),
        layer_row("features.4", "ReLU", "aten::relu", 2),
        layer_row("features.4", "ReLU", "aten::clamp_min", 5),
    )
    diagnosis = diff(comparison(baseline=7 * US, change=14.0), base, head)
    assert diagnosis.switched == ()
    assert [c.operator for c in diagnosis.new] == [SLOW, "aten::conv2d"]
    relu = next(c for c in diagnosis.changes if c.operator == "aten::relu")
    assert (relu.status, relu.increase) == ("changed", 0.0)


def test_profiles_with_layers_on_one_side_only_are_compared_per_operator() -> None:
    def without_layers(p: OperatorProfile) -> OperatorProfile:
        rows = tuple(
            OperatorTime(operator=r.operator, shapes=r.shapes, calls=r.calls, time=r.time)
            for r in p.rows
        )
        return OperatorProfile(tool=p.tool, calls=p.calls, rows=rows)

    plain = diff(comparison(), without_layers(CNN_BASE), without_layers(CNN_HEAD))
    assert plain.switched == ()
    assert [c.operator for c in plain.new] == [MKLDNN]  # what a profile without layers can say
    assert [c.operator for c in plain.vanished] == ["aten::thnn_conv2d"]
    one_sided = diff(comparison(), CNN_BASE, without_layers(CNN_HEAD))
    assert one_sided.changes == plain.changes
    assert all(c.layers == () and not c.module for c in one_sided.changes)


def test_the_markdown_names_each_layer_of_two_alike_switches() -> None:
    def two_layers(kernel: str, time_us: float) -> OperatorProfile:
        return profile(
            *(layer_row(f"features.{i}.conv", "Conv2d", kernel, time_us * i) for i in (1, 2))
        )

    diagnosis = diff(comparison(baseline=30 * US), two_layers(SLOW, 10), two_layers(MKLDNN, 20))
    assert [c.label for c in diagnosis.top()] == [
        f"{SLOW} -> {MKLDNN} in features.2.conv",
        f"{SLOW} -> {MKLDNN} in features.1.conv",
    ]
    data = result_to_dict(result(comparison(baseline=30 * US)), diagnoses=(diagnosis,))
    markdown = render_summary(data).replace("\\_", "_")
    second = markdown.index(f"| {SLOW} -&gt; {MKLDNN} in features.1.conv | kernel switched")
    assert markdown.index(f"| {SLOW} -&gt; {MKLDNN} in features.2.conv | kernel switched") < second
    assert (
        "largest: aten::_slow_conv2d_forward -&gt; aten::mkldnn_convolution in features.2.conv"
        in (markdown)
    )


def test_many_operators_keep_the_largest_changes() -> None:
    base = profile(*(row(f"op{i}", 1) for i in range(MAX_CHANGES + 50)))
    head = profile(*(row(f"op{i}", 1 + i) for i in range(MAX_CHANGES + 50)))
    diagnosis = diff(comparison(), base, head)
    assert len(diagnosis.changes) == MAX_CHANGES
    assert diagnosis.truncated == 50
    assert diagnosis.changes[0].operator == f"op{MAX_CHANGES + 49}"


def test_measured_change_for_latency_and_throughput() -> None:
    assert measured_change(comparison(baseline=10 * US, change=0.5), 1) == pytest.approx(5 * US)
    # 32 items at 3200 items/s = 10 ms per call; throughput -20% -> 12.5 ms per call
    rate = comparison(metric=THROUGHPUT_32, baseline=3200.0, change=-0.2)
    assert measured_change(rate, 32) == pytest.approx(2.5e-3)
    undefined = Comparison(benchmark="x", metric=LATENCY, verdict=Verdict.NEW, current=1.0)
    assert measured_change(undefined, 1) is None
    assert measured_change(comparison(change=math.nan), 1) is None


def result(*comparisons: Comparison) -> GateResult:
    return GateResult(comparisons=comparisons, alpha=0.01, has_baseline=True)


def test_targets_pick_one_timing_comparison_per_benchmark() -> None:
    decided = result(
        comparison("a", THROUGHPUT_32, Verdict.REGRESSION),
        comparison("a", LATENCY, Verdict.REGRESSION),
        comparison("b", THROUGHPUT_32, Verdict.REGRESSION),
        comparison("b", LATENCY, Verdict.UNCHANGED),
        comparison("c", LATENCY, Verdict.UNCHANGED),
        comparison("d", ACCURACY, Verdict.REGRESSION),
        comparison("e", LATENCY, Verdict.ERROR),
        comparison("f", LATENCY, Verdict.NEW),
    )
    picked = [(c.benchmark, c.metric.name) for c in targets(decided, "on-regression")]
    assert picked == [("a", "latency"), ("b", "throughput@32")]
    every = [(c.benchmark, c.metric.name) for c in targets(decided, "always")]
    assert sorted(every) == [("a", "latency"), ("b", "throughput@32"), ("c", "latency")]
    assert targets(decided, "never") == []


def test_batch_size_of_the_diagnosed_metric() -> None:
    plan = BenchmarkPlan(name="m[torch]", model="m", variant="torch", root=".", batch_sizes=(1, 32))
    assert batch_size(comparison(metric=LATENCY), plan) == 1
    assert batch_size(comparison(metric=THROUGHPUT_32), plan) == 32


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sometimes", "policy.diagnose: unknown value 'sometimes'; expected one of on-regression"),
        ("{when: always, max_trace: 0}", "policy.diagnose.max_trace: expected a positive size"),
        ("{when: always, max_trace: lots}", "policy.diagnose.max_trace: expected a size like"),
        ("{when: always, top: 3}", "policy.diagnose.top: unknown key; expected one of when"),
        ("3", "policy.diagnose: expected one of on-regression, always, never or a mapping"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, value: str, message: str) -> None:
    (tmp_path / "perf-gate.yaml").write_text(f"policy:\n  diagnose: {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config(root=tmp_path)


@pytest.mark.parametrize(
    ("value", "when", "limit"),
    [
        (None, "on-regression", 50e6),
        ("always", "always", 50e6),
        ("off", "never", 50e6),
        ("{when: never, max_trace: 2MiB}", "never", 2 * 2**20),
    ],
)
def test_config_values(tmp_path: Path, value: str | None, when: str, limit: float) -> None:
    text = "policy: {}\n" if value is None else f"policy:\n  diagnose: {value}\n"
    (tmp_path / "perf-gate.yaml").write_text(text, encoding="utf-8")
    settings = load_config(root=tmp_path).diagnose
    assert (settings.when, settings.max_trace) == (when, limit)


def test_json_and_terminal_reports() -> None:
    made = diff(comparison(change=1.0), BASE, HEAD, traces={"base": "p/b.json", "head": "p/h.json"})
    lost = missing(comparison("other[onnxruntime]"), "profiling the head failed: boom")
    report = result_to_dict(result(comparison()), diagnoses=(made, lost))
    assert json.loads(json.dumps(report, allow_nan=False))["diagnosis"] == report["diagnosis"]
    first, second = report["diagnosis"]
    assert first["available"]
    assert first["top"][0] == "aten::addmm"
    assert first["operators"][0]["added_shapes"] == ["[1, 256], [256, 256]"]
    assert first["new"] == ["aten::gelu"]
    assert first["vanished"] == ["aten::dropout"]
    assert first["changed_shapes"][0]["operator"] == "aten::addmm"
    assert first["traces"] == {"base": "p/b.json", "head": "p/h.json"}
    assert first["explained"] == pytest.approx(21 / 20)
    assert second == {**second, "available": False, "missing": "profiling the head failed: boom"}
    text = render_diagnoses((made, lost))
    assert "aten::addmm" in text
    assert "+17 us" in text
    assert "85%" in text
    assert "new: aten::gelu; vanished: aten::dropout; shapes changed: aten::addmm" in text
    assert "other[onnxruntime] latency (regression): diagnosis missing: profiling the head" in text
    assert "https://ui.perfetto.dev" in text
    assert render_diagnoses(()) == ""
    assert result_to_dict(result())["diagnosis"] == []


def test_trace_folders_are_safe_and_distinct() -> None:
    assert trace_folder("digits-mlp[onnxruntime-int8]") == "digits-mlp[onnxruntime-int8]"
    nodeid = trace_folder("tests/test_x.py::test_a[1]")
    assert "/" not in nodeid
    assert ":" not in nodeid
    assert nodeid != trace_folder("tests/test_x.py__test_a[1]")
    assert not trace_folder("../etc").startswith(".")


def test_a_trace_over_the_limit_is_dropped_with_the_reason(tmp_path: Path) -> None:
    runner = Runner(MeasureSettings(), tmp_path, tmp_path / "work")
    profiler = Profiler(runner, tmp_path / "profiles", max_trace=1000)
    small, large = tmp_path / "small.json", tmp_path / "large.json"
    small.write_text("[]", encoding="utf-8")
    large.write_text(json.dumps(["x" * 2000]), encoding="utf-8")
    kept = profiler._place(OperatorProfile(tool="t", calls=1, trace=str(small)), "a[torch]", "base")
    assert kept.trace == str(tmp_path / "profiles" / "a[torch]" / "base.json")
    assert Path(kept.trace).is_file()
    dropped = profiler._place(OperatorProfile(tool="t", calls=1, trace=str(large)), "a", "head")
    assert dropped.trace is None
    assert not large.exists()
    assert (
        "head trace not kept: 2 kB is over policy.diagnose.max_trace (1 kB)" in dropped.trace_note
    )


def test_investigation_without_a_base_says_why_and_clears_old_traces(tmp_path: Path) -> None:
    config = load_config(root=tmp_path)
    stale = config.report_dir / "profiles" / "old" / "head.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}", encoding="utf-8")
    runner = Runner(config.measure, tmp_path, tmp_path / "work")
    decided = result(
        comparison("tiny[torch]"), comparison("bench::test", verdict=Verdict.UNCHANGED)
    )
    investigation = Investigation(
        config=config, runner=runner, when="on-regression", head_plans={}, base=None
    )
    (only,) = investigation(decided)
    assert only.missing == NO_BASE
    assert not stale.exists()
    assert (
        Investigation(config=config, runner=runner, when="never", head_plans={}, base=None)(decided)
        == ()
    )


def test_results_nobody_can_rerun_are_reported_not_profiled(tmp_path: Path) -> None:
    config = load_config(root=tmp_path)
    runner = Runner(config.measure, tmp_path, tmp_path / "work")
    base = BaseSide(root=tmp_path, plans={})
    investigation = Investigation(
        config=config, runner=runner, when="always", head_plans={}, base=base
    )
    (only,) = investigation(result(comparison("tests/test_b.py::test_bench")))
    assert only.missing == NOT_RERUNNABLE
    assert isinstance(only, Diagnosis)
    assert not only.available


def test_repeat_calls_stays_within_its_bounds() -> None:
    ticks = iter(range(10**6))
    slow = repeat_calls(lambda: None, clock=lambda: float(next(ticks)))  # 1 s per clock read
    assert slow == MIN_CALLS
    fast = repeat_calls(lambda: None, clock=lambda: 0.0)
    assert fast == MAX_CALLS


def test_a_call_of_many_events_is_profiled_fewer_times() -> None:
    calls = Calls(warmup=0)
    assert calls.profiled(lambda: None) == MAX_CALLS  # a fast call: the call cap
    assert calls.profiled(lambda: None, events_per_call=10) == MAX_CALLS
    assert calls.profiled(lambda: None, events_per_call=EVENT_BUDGET // 20) == 20
    assert calls.profiled(lambda: None, events_per_call=EVENT_BUDGET) == MIN_CALLS  # the floor


def test_rows_are_medians_per_call() -> None:
    durations = [1e-6] * 9 + [1.0]  # one invocation waited a second for a core
    robust = robust_total(operator="aten::addmm", durations=durations)
    assert robust.time == pytest.approx(10e-6)
    assert robust.calls == 10
    (scaled,) = per_call([robust], calls=5)
    assert scaled.calls == 2
    assert scaled.time == pytest.approx(2e-6)
    shuffled = [row(f"op{i}", i) for i in range(5)]
    random.Random(0).shuffle(shuffled)
    assert next(r.operator for r in per_call(shuffled, 1)) == "op4"


def slow_step(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def quick_step(n: int) -> int:
    return n + 1


def test_cprofile_names_the_function_that_takes_the_time(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    trace = tmp_path / "trace.json"
    profiled = profile_python(lambda: (slow_step(20_000), quick_step(3)), trace=trace, root=root)
    assert profiled.tool == "cProfile"
    assert MIN_CALLS <= profiled.calls <= MAX_CALLS
    top = profiled.rows[0]
    assert top.operator == "slow_step (tests/unit/test_diagnose.py)"
    assert top.calls == 1
    assert top.time > 0
    names = {r.operator for r in profiled.rows}
    assert "quick_step (tests/unit/test_diagnose.py)" in names
    assert not any("gate/measure" in name or "perf_counter" in name for name in names)
    events = json.loads(trace.read_text(encoding="utf-8"))["traceEvents"]
    slices = {e["name"]: e for e in events if e["ph"] == "X"}
    parent = slices["<lambda> (tests/unit/test_diagnose.py)"]
    child = slices["slow_step (tests/unit/test_diagnose.py)"]
    assert parent["ts"] <= child["ts"]
    assert child["dur"] <= parent["dur"]


def test_profiles_are_put_on_the_timing_rounds_scale() -> None:
    # The head's profiling process ran twice as slow as the head's timing rounds.
    base = OperatorProfile(tool="t", calls=10, rows=(row("aten::addmm", 8),), wall=10 * US)
    head = OperatorProfile(tool="t", calls=10, rows=(row("aten::addmm", 40),), wall=60 * US)
    decided = comparison(baseline=10 * US, change=2.0)  # rounds: 10 us -> 30 us per call
    diagnosis = diff(decided, base, head)
    (addmm,) = diagnosis.changes
    assert addmm.head_time == pytest.approx(20 * US)  # 40 us * 30/60
    assert addmm.increase == pytest.approx(12 * US)
    assert diagnosis.outside == (pytest.approx(2 * US), pytest.approx(10 * US))
    assert any("head: profile times scaled by 0.50" in note for note in diagnosis.notes)
    assert not any(note.startswith("base: profile times") for note in diagnosis.notes)
    report = result_to_dict(result(decided), diagnoses=(diagnosis,))["diagnosis"][0]
    assert report["wall"] == {"base": pytest.approx(10 * US), "head": pytest.approx(30 * US)}
    assert report["outside_operators"]["increase"] == pytest.approx(8 * US)
    assert report["outside_operators"]["share"] == pytest.approx(8 / 20)
    assert "outside operators (Python, dispatch): 2 us -> 10 us (+8 us)" in render_diagnoses(
        (diagnosis,)
    )


def test_reference_times_per_call() -> None:
    assert reference_times(comparison(baseline=10 * US, change=1.0), 1) == (
        pytest.approx(10 * US),
        pytest.approx(20 * US),
    )
    rate = comparison(metric=THROUGHPUT_32, baseline=3200.0, change=-0.5)
    assert reference_times(rate, 32) == (pytest.approx(0.01), pytest.approx(0.02))
    unknown = Comparison(benchmark="x", metric=ACCURACY, verdict=Verdict.NEW)
    assert reference_times(unknown, 1) == (None, None)


def test_an_unexpected_failure_is_a_missing_diagnosis_not_a_crash(tmp_path: Path) -> None:
    config = load_config(root=tmp_path)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the worker's scratch folder should go", encoding="utf-8")
    runner = Runner(config.measure, tmp_path, blocked / "work")
    plan = BenchmarkPlan(name="m[torch]", model="m", variant="torch", root=str(tmp_path))
    investigation = Investigation(
        config=config,
        runner=runner,
        when="on-regression",
        head_plans={plan.name: plan},
        base=BaseSide(root=tmp_path, plans={plan.name: plan}),
    )
    (only,) = investigation(result(comparison(plan.name)))
    assert only.missing.startswith("the diagnosis failed: ")
    assert "please report it" in only.missing


def test_one_reason_shared_by_several_benchmarks_is_one_line() -> None:
    reason = "not profiled: this result came from elsewhere"
    shared = tuple(
        Diagnosis(benchmark=f"test_{i}", metric="latency", verdict="regression", missing=reason)
        for i in range(5)
    )
    alone = Diagnosis(benchmark="m[torch]", metric="latency", verdict="regression", missing="boom")
    text = render_diagnoses((*shared, alone))
    assert text.count(reason) == 1
    assert (
        "  diagnosis missing for 5 benchmarks (test_0 latency, test_1 latency, test_2 latency "
        f"and 2 more): {reason}"
    ) in text
    assert "m[torch] latency (regression): diagnosis missing: boom" in text
