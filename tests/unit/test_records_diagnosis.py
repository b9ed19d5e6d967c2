"""How a diagnosis reads when the profile cannot hold the change: float noise outside the
operators (cProfile's times are scaled to the unprofiled wall, so wall minus operators is ~0),
and onnxruntime nodes shorter than its profiler resolves (1 -> 10 Gemm layers recorded as
nothing). Profiles as the profilers wrote them for such models; the reports rendered for real.
Also: a profile's rows keep their torch layer through JSON, and earlier profiles without one
still read."""

from __future__ import annotations

import json

from gate.core.diagnosis import OperatorProfile, OperatorTime
from gate.core.types import Comparison, Direction, GateResult, Metric, Verdict
from gate.diagnose.diff import diff
from gate.report.diagnosis import render_diagnoses
from gate.report.jsonreport import result_to_dict
from gate.report.markdown import render_summary

LATENCY = Metric("latency", "s", Direction.LOWER)
US = 1e-6


def regression(benchmark: str, base: float, head: float) -> Comparison:
    return Comparison(
        benchmark=benchmark,
        metric=LATENCY,
        verdict=Verdict.REGRESSION,
        baseline=base,
        current=head,
        relative_change=head / base - 1,
        ci_low=head / base - 1.1,
        ci_high=head / base - 0.9,
        significant=True,
    )


def row(operator: str, time: float, calls: float = 1, node: str = "") -> OperatorTime:
    return OperatorTime(operator=operator, node=node, calls=calls, time=time)


def reports(comparison: Comparison, base: OperatorProfile, head: OperatorProfile):
    diagnosis = diff(comparison, base, head)
    result = GateResult(comparisons=(comparison,), alpha=0.01, has_baseline=True)
    data = result_to_dict(result, diagnoses=(diagnosis,))
    return diagnosis, render_diagnoses((diagnosis,)), render_summary(data), data


def test_float_noise_outside_the_operators_is_not_printed() -> None:
    # cProfile's rows are scaled so that they sum to the unprofiled time per call: the rest is
    # a subtraction of equal floats, 2.7e-20 s here.
    base = OperatorProfile(
        tool="cProfile",
        calls=10,
        rows=(row("<genexpr> (model.py)", 94.8 * US), row("sum", 69.2 * US + 2.71e-20)),
        wall=164 * US + 2 * 2.71e-20,
    )
    head = OperatorProfile(
        tool="cProfile",
        calls=10,
        rows=(row("<genexpr> (model.py)", 649 * US), row("sum", 521 * US)),
        wall=1170 * US,
    )
    diagnosis, terminal, markdown, data = reports(
        regression("test_python_work", 164 * US, 1170 * US), base, head
    )
    assert 0 < diagnosis.outside[0] < 1e-12  # type: ignore[index]
    assert data["diagnosis"][0]["outside_operators"]["base"] == 0.0
    for text in (terminal, markdown):
        assert "e-1" not in text
        assert "outside operators" not in text  # 0 ns -> 0 ns says nothing
    assert "the top 5 operators explain 100%" in terminal


# onnxruntime records whole microseconds per node and about 3 us of its own, which is
# subtracted: the nine added 64x64 Gemm layers (each well under a microsecond) record ~0.
BASE_ORT = OperatorProfile(
    tool="onnxruntime",
    calls=100,
    rows=(
        row("FusedGemm", 0.98 * US, node="fused /layers.0/Gemm"),
        row("Add", 0.0, node="/layers.0/Add"),
    ),
    wall=8.54 * US,
)
HEAD_ORT = OperatorProfile(
    tool="onnxruntime",
    calls=100,
    rows=(
        row("FusedGemm", 1.0 * US, node="fused /layers.9/Gemm"),
        row("FusedGemm", 0.26 * US, node="fused /layers.1/Gemm"),
        *(row("FusedGemm", 0.0, node=f"fused /layers.{i}/Gemm") for i in (0, 2, 3, 4, 5, 6, 7, 8)),
        *(row("Add", 0.0, node=f"/layers.{i}/Add") for i in range(10)),
    ),
    wall=17.3 * US,
)


def test_onnxruntime_nodes_below_the_resolution_are_named_by_their_invocations() -> None:
    diagnosis, terminal, markdown, data = reports(
        regression("toy[onnxruntime]", 8.54 * US, 17.3 * US), BASE_ORT, HEAD_ORT
    )
    assert diagnosis.explained is not None
    assert diagnosis.explained < 0.5  # the times cannot show the change...
    note = next(n for n in diagnosis.notes if "invocations per call changed" in n)
    assert "Add 1 -> 10, FusedGemm 1 -> 10" in note  # ...the counts can
    outside = data["diagnosis"][0]["outside_operators"]
    assert outside["share"] > 0.9
    headline = next(line for line in terminal.splitlines() if "toy[onnxruntime]" in line)
    assert "the top 5 operators explain 3%; outside operators +8.48 us (97%)" in headline
    assert "(session, bindings, nodes too short to resolve)" in terminal
    assert "(Python, dispatch)" not in terminal
    assert "the top operator explains 3%; largest: FusedGemm +280 ns (3%); outside " in markdown
    assert "invocations per call changed: Add 1 -&gt; 10, FusedGemm 1 -&gt; 10" in markdown


def test_a_profile_that_explains_the_change_gets_no_invocation_note() -> None:
    base = OperatorProfile(tool="onnxruntime", calls=10, rows=(row("MatMul", 5 * US),), wall=8 * US)
    head = OperatorProfile(
        tool="onnxruntime",
        calls=10,
        rows=(row("MatMul", 5 * US), row("MatMul", 30 * US, node="MatMul_2")),
        wall=38 * US,
    )
    diagnosis, terminal, _, _ = reports(regression("m[onnxruntime]", 8 * US, 38 * US), base, head)
    assert diagnosis.explained is not None
    assert diagnosis.explained > 0.9
    assert not any("invocations per call" in note for note in diagnosis.notes)
    assert "outside operators +" not in terminal.splitlines()[2]  # the headline


def test_profiles_keep_the_layer_of_each_row_and_read_earlier_ones_without() -> None:
    layered = OperatorProfile(
        tool="torch.profiler",
        calls=20,
        rows=(
            OperatorTime(
                operator="aten::mkldnn_convolution",
                shapes="[1, 16, 32, 32], [16, 16, 5, 5]",
                module="features.2.conv",
                module_type="Conv2d",
                calls=1,
                time=300 * US,
            ),
            row("aten::mean", 3 * US),  # in the model's own forward: no layer
        ),
        wall=320 * US,
    )
    data = json.loads(json.dumps(layered.to_dict()))
    assert OperatorProfile.from_dict(data) == layered
    assert data["rows"][0]["module"] == "features.2.conv"
    assert "module" not in data["rows"][1]  # rows without a layer are written as before
    earlier = {
        "tool": "torch.profiler",
        "calls": 10,
        "rows": [{"operator": "aten::mean", "time": 1e-6}],
    }
    (read,) = OperatorProfile.from_dict(earlier).rows
    assert (read.module, read.module_type) == ("", "")
