"""Worker rounds of ``perf`` tests in real ``pytest --perf-gate`` runs (pytester projects, real
subprocesses): they load the plugins the user's run loads, say why a test failed in them, and
keep the benchmarks' names when a path option is written with a space."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ._support import write_files

FAST = "measure: {rounds: 2, warmup: 1, min_calls: 5, min_time: 0.01s}\n"
# A fixture that lives in a plugin module, loaded only with -p.
PLUGIN = """
import pytest


@pytest.fixture
def data():
    return list(range(100))
"""
USES_PLUGIN = """
def test_a(perf, data):
    assert perf.latency(sum, data) == 4950
"""
NODE = "test_a.py::test_a"


def output_of(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


def comparison(root: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (root / ".perf-gate" / "comparison.json").read_text(encoding="utf-8")
    )
    return loaded


def latency_rounds(root: Path, benchmark: str) -> int:
    results = json.loads((root / ".perf-gate" / "results.json").read_text(encoding="utf-8"))
    (sample,) = [
        s for s in results["samples"] if s["benchmark"] == benchmark and s["metric"] == "latency"
    ]
    return len(sample["values"])


@pytest.fixture
def plugin_project(pytester: pytest.Pytester) -> pytest.Pytester:
    write_files(
        pytester.path, {"perf-gate.yaml": FAST, "myplug.py": PLUGIN, "test_a.py": USES_PLUGIN}
    )
    return pytester


# --- the user's pytest options reach the worker rounds ------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("ini", "args"),
    [
        pytest.param("addopts = -p myplug\n", (), id="ini-addopts"),
        pytest.param("", ("-p", "myplug"), id="command-line"),
        pytest.param("", ("-pmyplug",), id="command-line-attached"),
        # xdist's -n from addopts is switched off in a round as in the run (-n 0); --ff in
        # addopts needs pytest's cache plugin, which the rounds keep (with their own cache).
        pytest.param("addopts = -n 2 --ff -p myplug\n", ("-n", "0"), id="addopts-n-overridden"),
    ],
)
def test_worker_rounds_load_the_plugins_the_run_loads(plugin_project, ini, args):
    plugin_project.makeini(f"[pytest]\n{ini}")
    result = plugin_project.runpytest_subprocess("--perf-gate", *args)
    output = output_of(result)
    assert result.ret == 0, output
    report = comparison(plugin_project.path)
    assert report["errors"] == []
    assert [c["verdict"] for c in report["comparisons"]] == ["new"]
    assert latency_rounds(plugin_project.path, NODE) == 2


@pytest.mark.slow
def test_a_config_file_given_with_c_is_found_from_a_subdirectory(plugin_project, monkeypatch):
    # The ini has a name pytest would not find by itself: only -c names it. From sub/, the
    # path given is relative to sub/; the worker runs in the rootdir and needs it from there.
    perf_ini = "[pytest]\npythonpath = .\naddopts = -p myplug\n"
    write_files(plugin_project.path, {"perf.ini": perf_ini})
    sub = plugin_project.mkdir("sub")
    monkeypatch.chdir(sub)
    result = plugin_project.runpytest_subprocess(
        "--perf-gate", "-c", "../perf.ini", "--perf-gate-config=../perf-gate.yaml", "../test_a.py"
    )
    output = output_of(result)
    assert result.ret == 0, output
    assert f"rootdir: {plugin_project.path}" in output
    assert comparison(plugin_project.path)["errors"] == []
    assert latency_rounds(plugin_project.path, NODE) == 2


# --- a failure in a worker round keeps its cause --------------------------------------------

# The fixture exists in the parent's quick run only, so only the worker rounds fail.
CONFTEST_PARENT_ONLY = """
import sys

import pytest

if not any(arg.startswith("--perf-gate-worker") for arg in sys.argv):

    @pytest.fixture
    def data():
        return [1, 2, 3]
"""
FAILS_IN_WORKER = """
def test_fixture(perf, data):
    perf.latency(sum, data)


def test_assert(perf):
    perf.latency(sum, [1, 2])
    assert not perf.measuring, "the measured path returned a wrong total"
"""


@pytest.mark.slow
def test_a_worker_failure_names_its_cause_not_only_its_line(pytester):
    pytester.makeini("[pytest]\n")
    write_files(
        pytester.path,
        {"perf-gate.yaml": FAST, "conftest.py": CONFTEST_PARENT_ONLY, "test_w.py": FAILS_IN_WORKER},
    )
    result = pytester.runpytest_subprocess("--perf-gate")
    assert result.ret == 3, output_of(result)
    result.assert_outcomes(passed=2)  # the quick run in the parent passed
    errors = {e["benchmark"]: e["message"] for e in comparison(pytester.path)["errors"]}
    fixture = errors["test_w.py::test_fixture"]
    assert fixture.startswith("head round 1: ")
    assert "fixture 'data' not found" in fixture
    assert "test_w.py:1" in fixture
    assertion = errors["test_w.py::test_assert"]
    assert "test_w.py:7: AssertionError: the measured path returned a wrong total" in assertion
    assert "\n" not in fixture + assertion


# --- a path option written with a space ---------------------------------------------------

CUSTOM_TEST = """
def test_sum(perf):
    perf.latency(sum, [1, 2, 3])
"""


@pytest.fixture
def nested(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project in proj/ with its pytest.ini; a file outside it; the run starts in proj/."""
    project = write_files(
        pytester.path / "proj",
        {"pytest.ini": "[pytest]\n", "perf-gate.yaml": FAST, "test_custom.py": CUSTOM_TEST},
    )
    (pytester.path / "env_base.json").write_text("{}", encoding="utf-8")
    monkeypatch.chdir(project)
    return project


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        pytest.param(
            ("--perf-gate-baseline", "../env_base.json"),
            "",
            "write --perf-gate-baseline=../env_base.json",
            id="baseline",
        ),
        pytest.param(
            ("--perf-gate-report", "../reports"),
            "",
            "write --perf-gate-report=../reports",
            id="report-not-there-yet",
        ),
        pytest.param(
            (),
            "--perf-gate-config perf-gate.yaml",
            "--perf-gate-config perf-gate.yaml in PYTEST_ADDOPTS",
            id="pytest-addopts",
        ),
    ],
)
def test_a_path_option_with_a_space_is_refused_in_one_line(
    pytester, nested, monkeypatch, args, env, fragment
):
    monkeypatch.setenv("PYTEST_ADDOPTS", env)
    result = pytester.runpytest_subprocess("--perf-gate", *args)
    output = output_of(result)
    assert result.ret == 2, output
    lines = [line for line in output.splitlines() if "perf-gate: error:" in line]
    assert len(lines) == 1, output
    assert lines[0].startswith("perf-gate: error: ")
    assert fragment in lines[0]
    assert "rootdir" in lines[0]
    assert "Exit:" not in output
    assert "Traceback" not in output
    assert not (nested / ".perf-gate").exists()


@pytest.mark.slow
def test_the_equals_form_keeps_the_names_relative_to_the_project(pytester, nested):
    result = pytester.runpytest_subprocess(
        "--perf-gate", "--perf-gate-save", "--perf-gate-baseline=../env_base.json"
    )
    output = output_of(result)
    assert result.ret == 0, output
    assert f"rootdir: {nested}" in output
    saved = json.loads((pytester.path / "env_base.json").read_text(encoding="utf-8"))
    assert {s["benchmark"] for s in saved["samples"]} == {"test_custom.py::test_sum"}
