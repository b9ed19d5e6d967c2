"""What the plugin does at collection, in real pytest runs (pytester, subprocesses): bad
``perf_gate`` markers are collection errors of the selected tests, with or without
--perf-gate; the config's model variants are collected items (counted, listed by --co); a
refusal before the session is one line without pytest's ``Exit:`` prefix."""

from __future__ import annotations

import pytest

from ._support import write_files

MODELS = """
models:
  tiny:
    torch: tinymodel:build
    input: {shape: [1, 16], dtype: float32}
    variants: [torch, onnxruntime]
"""


def output_of(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


def marked(marker: str) -> str:
    return f"""
import pytest


@pytest.mark.{marker}
def test_x():
    raise AssertionError("a test with a bad marker must not run")


def test_plain():
    pass
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\n")
    return pytester


# --- bad markers --------------------------------------------------------------------------


@pytest.mark.parametrize("perf_gate", [(), ("--perf-gate",)], ids=["plain-pytest", "perf-gate"])
@pytest.mark.parametrize(
    ("marker", "fragments"),
    [
        pytest.param(
            "perf_gate(thresold='5%')",
            ["perf_gate(thresold='5%')", "unknown argument 'thresold'", "threshold="],
            id="unknown-keyword",
        ),
        pytest.param(
            "perf_gate(threshold='abc')",
            ["perf_gate(threshold='abc')", "got 'abc'", 'threshold="5%"'],
            id="bad-threshold",
        ),
        pytest.param(
            "perf_gate('3%')",
            ["perf_gate('3%')", "no positional argument", "perf_gate(threshold='3%')"],
            id="positional",
        ),
    ],
)
def test_a_bad_marker_is_one_collection_error_exit_2(project, marker, fragments, perf_gate):
    project.makepyfile(test_marker=marked(marker))
    result = project.runpytest_subprocess(*perf_gate)
    output = output_of(result)
    assert result.ret == 2, output
    # The full line once (pytest's short summary repeats the start of it, cut).
    (line,) = [line for line in output.splitlines() if line.startswith("perf-gate: error:")]
    assert line.startswith("perf-gate: error: test_marker.py::test_x: @pytest.mark.")
    for fragment in fragments:
        assert fragment in line
    assert "1 error during collection" in output
    assert "must not run" not in output
    assert "Exit" not in output
    assert "Traceback" not in output


def test_a_bad_marker_on_a_class_names_the_test(project):
    project.makepyfile(
        test_marker="""
import pytest


@pytest.mark.perf_gate(limit=3)
class TestGroup:
    def test_y(self):
        pass
"""
    )
    result = project.runpytest_subprocess()
    assert result.ret == 2, output_of(result)
    result.stdout.fnmatch_lines(
        ["perf-gate: error: test_marker.py::TestGroup::test_y: *unknown argument 'limit'*"]
    )


@pytest.mark.parametrize("extra", [(), ("--perf-gate", "--co")], ids=["run", "perf-gate-co"])
def test_a_bad_marker_on_a_deselected_test_is_not_reported(project, extra):
    project.makepyfile(test_marker=marked("perf_gate(threshold='abc')"))
    result = project.runpytest_subprocess("-k", "plain", *extra)
    assert result.ret == 0, output_of(result)
    result.stdout.fnmatch_lines(["collected 2 items / 1 deselected / 1 selected"])
    assert "error" not in output_of(result)


def test_a_valid_marker_passes_with_strict_markers(project):
    project.makepyfile(test_marker=marked("perf_gate(threshold='3%')").replace("raise", "pass  #"))
    result = project.runpytest_subprocess("--strict-markers")
    result.assert_outcomes(passed=2)


# --- refusals before the session ------------------------------------------------------------


def test_xdist_is_refused_in_one_line_without_pytests_exit_prefix(project):
    project.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = project.runpytest_subprocess("--perf-gate", "-n", "2")
    output = output_of(result)
    assert result.ret == 2, output
    assert [line for line in output.splitlines() if line.strip()] == [
        "perf-gate: error: --perf-gate cannot run under pytest-xdist (-n): parallel workers "
        "distort each other's timings; run it without -n (or with -n 0)"
    ]


def test_a_bad_config_is_refused_in_one_line_without_pytests_exit_prefix(project):
    write_files(project.path, {"perf-gate.yaml": "measure: {rounds: 1}\n"})
    project.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = project.runpytest_subprocess("--perf-gate")
    output = output_of(result)
    assert result.ret == 2, output
    (line,) = [line for line in output.splitlines() if line.strip()]
    assert line.startswith("perf-gate: error: ")
    assert "measure.rounds" in line


def test_a_report_folder_that_cannot_be_created_is_refused_before_anything_runs(project):
    (project.path / "blocker").write_text("a file where a folder should be\n", encoding="utf-8")
    project.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = project.runpytest_subprocess("--perf-gate", "--perf-gate-report=blocker/sub")
    output = output_of(result)
    assert result.ret == 2, output
    (line,) = [line for line in output.splitlines() if line.strip()]
    assert line.startswith("perf-gate: error: ")
    assert "the report folder cannot be created" in line
    assert "blocker is a file, not a folder" in line


def test_a_config_naming_a_missing_callable_exits_2_and_measures_nothing(project):
    """A ``torch:`` that cannot be imported is the config's mistake: the item fails with the
    file and key, the session stops, and the exit status is 2 (not 1, as for a failing test)."""
    write_files(
        project.path,
        {
            "perf-gate.yaml": MODELS.replace("tinymodel:build", "nosuchmod:build"),
            "test_x.py": "def test_x():\n    pass\n",
        },
    )
    result = project.runpytest_subprocess("--perf-gate")
    output = output_of(result)
    assert result.ret == 2, output
    assert (
        "perf-gate: error: perf-gate.yaml: models.tiny.torch: cannot import module 'nosuchmod'"
        in output
    )
    assert not (project.path / ".perf-gate" / "results.json").exists()


# --- model variants as collected items ------------------------------------------------------


def test_collect_only_counts_and_lists_the_model_variants_and_measures_nothing(project):
    write_files(project.path, {"perf-gate.yaml": MODELS})
    project.makepyfile(test_x="def test_x():\n    pass\n")
    result = project.runpytest_subprocess("--perf-gate", "--co")
    output = output_of(result)
    assert result.ret == 0, output
    result.stdout.fnmatch_lines(
        [
            "collected 3 items",
            "*<Function test_x>",
            "<ModelsFile perf-gate.yaml>",
            "  <ModelItem tiny[torch]>",
            "  <ModelItem tiny[onnxruntime]>",
            "*= perf-gate =*",
            "perf-gate: collect-only, nothing measured",
        ]
    )
    assert "not run" not in output
    assert not (project.path / ".perf-gate" / "comparison.json").exists()


def test_k_deselects_model_variants_like_tests(project):
    write_files(project.path, {"perf-gate.yaml": MODELS})
    project.makepyfile(test_x="def test_x():\n    pass\n")
    result = project.runpytest_subprocess("--perf-gate", "--co", "-q", "-k", "onnxruntime")
    assert result.ret == 0, output_of(result)
    result.stdout.fnmatch_lines(
        ["perf-gate.yaml::tiny[onnxruntime]", "*1/3 tests collected (2 deselected)*"]
    )


@pytest.mark.parametrize(
    ("args", "models"),
    [(("test_x.py",), False), (("test_x.py::test_x",), False), ((".",), True), ((), True)],
)
def test_the_config_is_selected_like_a_test_file(project, args, models):
    write_files(project.path, {"perf-gate.yaml": MODELS})
    project.makepyfile(test_x="def test_x():\n    pass\n")
    result = project.runpytest_subprocess("--perf-gate", "--co", "-q", *args)
    output = output_of(result)
    assert result.ret == 0, output
    assert ("perf-gate.yaml::tiny[torch]" in output) is models, output
    assert "test_x.py::test_x" in output
