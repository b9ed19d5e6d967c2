"""gate.report: the terminal table and the JSON report of a GateResult."""

from __future__ import annotations

import json
import math

import pytest

from gate.core.types import (
    BenchmarkError,
    Budget,
    Comparison,
    Direction,
    GateResult,
    Metric,
    Policy,
    Replication,
    RunRecord,
    Sample,
    Threshold,
    Verdict,
)
from gate.decide.compare import decide
from gate.report.content import format_change as format_item_change
from gate.report.content import report_row
from gate.report.jsonreport import FORMAT, comparison_to_dict, result_to_dict
from gate.report.terminal import headline, render_table, verdict_text

LATENCY = Metric("latency", "s", Direction.LOWER)
THROUGHPUT = Metric("throughput", "items/s", Direction.HIGHER)


def comparison(verdict: Verdict, benchmark: str = "m[torch]", **extra: object) -> Comparison:
    fields: dict[str, object] = {"metric": LATENCY}
    fields.update(extra)
    return Comparison(benchmark=benchmark, verdict=verdict, **fields)  # type: ignore[arg-type]


REGRESSION = comparison(
    Verdict.REGRESSION,
    baseline=0.010,
    current=0.01123,
    relative_change=0.123,
    ci_low=0.101,
    ci_high=0.146,
    p_value=1e-5,
    significant=True,
    threshold=Threshold(value=0.05),
    n_baseline=5,
    n_current=5,
)
UNCHANGED = comparison(
    Verdict.UNCHANGED,
    benchmark="m[onnxruntime]",
    baseline=0.002,
    current=0.002,
    relative_change=0.001,
    ci_low=-0.01,
    ci_high=0.012,
    p_value=0.8,
    threshold=Threshold(value=0.05),
    n_baseline=5,
    n_current=5,
)


def result(*comparisons: Comparison, has_baseline: bool = True, **extra: object) -> GateResult:
    return GateResult(
        comparisons=comparisons,
        alpha=0.01,
        has_baseline=has_baseline,
        **extra,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------------------------
# headline


def test_headline_pass() -> None:
    assert headline(result(UNCHANGED)) == "perf-gate: passed: 1 unchanged"


def test_headline_fail_counts_in_verdict_order() -> None:
    text = headline(result(UNCHANGED, REGRESSION, comparison(Verdict.NEW, benchmark="x")))
    assert text == "perf-gate: FAILED: 1 regression, 1 new, 1 unchanged"  # the PR report's order


def test_headline_no_baseline() -> None:
    new = [comparison(Verdict.NEW, benchmark=b, current=0.001) for b in ("a", "b")]
    assert headline(result(*new, has_baseline=False)) == (
        "perf-gate: passed, no baseline yet (2 new)"
    )


def test_headline_error() -> None:
    text = headline(result(comparison(Verdict.ERROR, note="boom"), UNCHANGED))
    assert text == "perf-gate: ERROR: 1 error, 1 unchanged"


def test_headline_nothing_measured() -> None:
    assert headline(result(has_baseline=False)) == (
        "perf-gate: passed, no baseline yet (nothing measured)"
    )


def test_headline_advisory_regression_passes() -> None:
    advisory = comparison(Verdict.REGRESSION, advisory=True, relative_change=0.3)
    # The terminal counts as the Markdown report does: an advisory regression apart.
    assert headline(result(advisory)) == "perf-gate: passed: 1 advisory regression"
    assert verdict_text(report_row(comparison_to_dict(advisory))) == "regression (advisory)"
    assert verdict_text(report_row(comparison_to_dict(REGRESSION))) == "regression"


# --------------------------------------------------------------------------------------------
# change column


@pytest.mark.parametrize(
    ("change", "low", "high", "text"),
    [
        (0.123, 0.101, 0.146, "+12.3% [+10.1%, +14.6%]"),
        (-0.042, -0.06, -0.025, "-4.2% [-6.0%, -2.5%]"),
        (0.0, -0.011, 0.0104, "+0.0% [-1.1%, +1.0%]"),
        (0.5, 0.5, 0.5, "+50.0%"),  # exact (zero variance): no interval
        (0.25, math.nan, math.nan, "+25.0%"),
        (math.nan, math.nan, math.nan, ""),
    ],
)
def test_format_change(change: float, low: float, high: float, text: str) -> None:
    c = comparison(Verdict.UNCHANGED, relative_change=change, ci_low=low, ci_high=high)
    assert format_item_change(comparison_to_dict(c)) == text


# --------------------------------------------------------------------------------------------
# render_table


def test_render_table_fail() -> None:
    text = render_table(result(REGRESSION, UNCHANGED))
    lines = text.splitlines()
    assert lines[0] == "perf-gate: FAILED: 1 regression, 1 unchanged"
    assert lines[1] == ""
    header, rule, first, second = lines[2:6]
    assert header.split() == [
        "benchmark",
        "metric",
        "baseline",
        "current",
        "change",
        "[CI]",
        "mode",
        "mde",
        "verdict",
    ]
    assert set(rule.replace(" ", "")) == {"-"}
    assert first.startswith("m[torch]")
    assert "10 ms" in first
    assert "11.2 ms" in first
    assert "+12.3% [+10.1%, +14.6%]" in first
    assert first.endswith("regression")
    assert second.startswith("m[onnxruntime]")
    assert "2 ms" in second
    assert second.endswith("unchanged")
    # columns line up: each column starts where its header does
    for column in ("metric", "baseline", "change [CI]", "verdict"):
        start = header.index(column)
        assert first[start - 2 : start] == "  "
        assert first[start] != " "
    assert "alpha=0.01" in text
    assert "99% interval" in text
    assert "No baseline yet" not in text


def test_render_table_pass_hides_unchanged_on_request() -> None:
    shown = render_table(result(UNCHANGED))
    assert shown.splitlines()[0] == "perf-gate: passed: 1 unchanged"
    assert "m[onnxruntime]" in shown
    hidden = render_table(result(UNCHANGED), show_unchanged=False)
    assert hidden.splitlines()[0] == "perf-gate: passed: 1 unchanged"
    assert "m[onnxruntime]" not in hidden
    assert "benchmark" not in hidden  # no rows, no table header


def test_render_table_no_baseline() -> None:
    new = comparison(Verdict.NEW, current=0.0123, n_current=5)
    text = render_table(result(new, has_baseline=False))
    lines = text.splitlines()
    assert lines[0] == "perf-gate: passed, no baseline yet (1 new)"
    row = next(line for line in lines if line.startswith("m[torch]"))
    assert row.split() == ["m[torch]", "latency", "-", "12.3", "ms", "new"]
    assert "No baseline yet: every result is new." in text
    assert "--perf-gate-save" in text
    assert "Holm" not in text  # the statistics note only applies with a baseline


def test_render_table_while_saving_says_so_instead_of_failed() -> None:
    """``--save`` exits 0 whatever the verdicts: the headline must not read FAILED, and the
    "no baseline yet, record one" advice is moot in the run that records it."""
    new = comparison(Verdict.NEW, current=0.0123, n_current=5)
    text = render_table(result(new, has_baseline=False), saving=True)
    assert text.splitlines()[0] == "perf-gate: recording the baseline (1 new)"
    assert "No baseline yet" not in text
    failing = render_table(result(REGRESSION), saving=True).splitlines()[0]
    assert (
        failing
        == "perf-gate: recording the baseline (1 regression; without --save this run would fail)"
    )


def test_render_table_notes() -> None:
    advisory = comparison(
        Verdict.REGRESSION,
        benchmark="test_x",
        advisory=True,
        note="in-process rounds: advisory only",
    )
    text = render_table(
        result(
            advisory,
            environment_differences={"cpu_count": (8, 16), "gpu": (None, "H100")},
            warnings=("budget 'x*' latency.p99: matched no measured benchmark and metric",),
        )
    )
    assert "regression (advisory): in-process rounds: advisory only" in text
    assert (
        "Baseline measured in a different environment (environment key differs; no timing was "
        "compared with it): cpu_count: 8 -> 16; gpu: None -> 'H100'."
    ) in text
    assert "Warning: budget 'x*' latency.p99: matched no measured benchmark and metric" in text


def test_render_table_notes_are_hidden_for_unchanged() -> None:
    c = comparison(Verdict.UNCHANGED, note="some note", relative_change=0.0)
    assert "some note" not in render_table(result(c))


def test_render_table_throughput_units() -> None:
    c = comparison(
        Verdict.IMPROVEMENT,
        metric=THROUGHPUT,
        baseline=1500.0,
        current=2_500_000.0,
        relative_change=0.2,
        ci_low=0.1,
        ci_high=0.3,
    )
    row = render_table(result(c)).splitlines()[4]
    assert "1.5 k/s" in row
    assert "2.5 M/s" in row
    assert row.endswith("improvement")


# --------------------------------------------------------------------------------------------
# JSON


def one_of_each() -> GateResult:
    comparisons = [
        comparison(v, benchmark=f"b-{v.value}", baseline=1.0, current=1.1) for v in Verdict
    ]
    return result(
        *comparisons,
        environment_differences={"python": ("3.11.7", "3.12.1")},
        warnings=("w",),
        errors=(BenchmarkError(benchmark="b-error", message="boom"),),
        baseline_commit="aaa",
        current_commit="bbb",
    )


def test_result_to_dict_counts_every_verdict() -> None:
    data = result_to_dict(one_of_each())
    assert data["counts"] == {v.value: 1 for v in Verdict}
    assert set(data["counts"]) == {
        "regression",
        "improvement",
        "unchanged",
        "inconclusive",
        "new",
        "missing",
        "over-budget",
        "parity-fail",
        "accepted-trade-off",
        "error",
    }
    assert data["format"] == FORMAT
    assert data["exit_code"] == 1
    assert data["passed"] is False
    assert data["has_baseline"] is True
    assert data["alpha"] == 0.01
    assert data["baseline_commit"] == "aaa"
    assert data["current_commit"] == "bbb"
    assert data["environment_differences"] == {
        "python": {"baseline": "3.11.7", "current": "3.12.1"}
    }
    assert data["warnings"] == ["w"]
    assert data["errors"] == [{"benchmark": "b-error", "message": "boom"}]
    assert len(data["comparisons"]) == len(Verdict)


def test_result_to_dict_is_strict_json() -> None:
    data = result_to_dict(one_of_each())
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data


def test_result_to_dict_counts_zero() -> None:
    data = result_to_dict(result(UNCHANGED, UNCHANGED))
    assert data["counts"]["unchanged"] == 2
    assert data["counts"]["regression"] == 0
    assert data["exit_code"] == 0
    assert data["passed"] is True


def test_comparison_to_dict_replaces_nan_with_null() -> None:
    data = comparison_to_dict(comparison(Verdict.MISSING, baseline=0.5, n_baseline=3))
    assert data == {
        "benchmark": "m[torch]",
        "metric": "latency",
        "unit": "s",
        "direction": "lower",
        "verdict": "missing",
        "advisory": False,
        "fails": False,
        "baseline": 0.5,
        "current": None,
        "relative_change": None,
        "ci_low": None,
        "ci_high": None,
        "p_value": None,
        "significant": False,
        "threshold": None,
        "mode": None,
        "mde": None,
        "n_baseline": 3,
        "n_current": 0,
        "note": "",
        "absolute_change": None,
        "absolute_ci": None,
        "flips": None,
        "rule": None,
    }


def test_comparison_to_dict_regression() -> None:
    data = comparison_to_dict(REGRESSION)
    assert data["verdict"] == "regression"
    assert data["fails"] is True
    assert data["relative_change"] == 0.123
    assert data["ci_low"] == 0.101
    assert data["ci_high"] == 0.146
    assert data["threshold"] == "5%"
    assert data["significant"] is True


def test_json_and_table_from_a_real_decision() -> None:
    """decide() output, including NaN-carrying verdicts, serializes as strict JSON."""
    base = RunRecord(
        samples=(
            Sample(benchmark="m[torch]", metric=LATENCY, values=(0.010, 0.0101, 0.0099, 0.0100)),
            Sample(benchmark="gone", metric=LATENCY, values=(0.001, 0.0011)),
            Sample(benchmark="one", metric=LATENCY, values=(0.001,)),
        ),
        environment={"cpu_count": 8},
    )
    current = RunRecord(
        samples=(
            Sample(
                benchmark="m[torch]",
                metric=LATENCY,
                values=(0.013, 0.0131, 0.0129, 0.0130),
                calls=(0.013,) * 50 + (0.05,) * 2,
            ),
            Sample(benchmark="one", metric=LATENCY, values=(0.001, 0.0011)),
            Sample(
                benchmark="adv",
                metric=LATENCY,
                values=(1.0, 1.1),
                replication=Replication.IN_PROCESS,
            ),
        ),
        environment={"cpu_count": 16},
        errors=(BenchmarkError(benchmark="broken", message="worker crashed"),),
    )
    policy = Policy(budgets=(Budget(pattern="m[*", metric="latency.p99", limit_text="20ms"),))
    decision = decide(base, current, policy)
    data = result_to_dict(decision)
    json.dumps(data, allow_nan=False)
    assert data["exit_code"] == 1
    counts = data["counts"]
    assert (
        counts["regression"],
        counts["over-budget"],
        counts["missing"],
        counts["new"],
        counts["inconclusive"],
        counts["error"],
    ) == (1, 1, 1, 1, 1, 1)
    # The core count is outside the environment key: named in a note, the regression gates.
    assert data["environment_differences"] == {}
    assert any(note.endswith("cpu_count 8 -> 16") for note in data["notes"])
    table = render_table(decision)
    assert table.splitlines()[0] == (
        "perf-gate: FAILED: 1 regression, 1 over budget, 1 error, 1 inconclusive, 1 new, 1 missing"
    )
    assert "Note: the environment also differs from the baseline's" in table
    assert "Baseline measured in a different environment" not in table


def test_many_baseline_rows_not_measured_are_one_line_few_stay_rows() -> None:
    """Running a subset of the tests leaves most baseline rows unmeasured: the table keeps
    what was measured, and one line counts the rest."""
    unmeasured = [
        comparison(Verdict.MISSING, benchmark=f"test_{i:02d}", note="not measured")
        for i in range(12)
    ]
    measured = comparison(Verdict.UNCHANGED, benchmark="test_kept")
    text = render_table(result(measured, *unmeasured))
    assert "test_kept" in text
    assert "test_05" not in text.split("12 baseline rows")[0]  # not a row of the table
    assert (
        "12 baseline rows of 12 benchmark(s) were not measured in this run (not selected, or "
        "gone from the code): test_00, test_01, test_02 and 9 more"
    ) in text
    few = render_table(result(measured, *unmeasured[:2]))
    assert "baseline rows" not in few
    assert few.count("not measured") == 2  # as rows, with their verdict
