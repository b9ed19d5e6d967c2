"""Shared by every test: child processes that do not inherit pytest-xdist's worker variables,
and the measuring test files handed out first.

`make test` runs the suite on two pytest-xdist workers, a file at a time (``--dist loadfile``:
module fixtures are built once); `make test-fast` runs what does not measure (``-m "not
slow"``). Files are handed out in collection order, so the longest go first (``FILE_SECONDS``,
else their count of measuring ``slow`` tests) and the many quick files fill in at the end.
"""

from __future__ import annotations

import os

import pytest

# hydra-core (installed with DVC) registers a pytest plugin whose imports cost about 0.4 s in
# every pytest process; no test uses it, and the suite starts hundreds of pytest processes
# (the tests' own runs and perf-gate's worker rounds under them).
CHILD_ADDOPTS = "-p no:hydra_pytest"


def pytest_configure(config: pytest.Config) -> None:
    # A pytest-xdist worker exports PYTEST_XDIST_*; the pytest, DVC and perf-gate processes
    # the tests start would inherit them and behave as parts of this run (pytest-benchmark
    # switches itself off, for one). They are the user's processes, not ours.
    for name in [n for n in os.environ if n.startswith("PYTEST_XDIST_")]:
        del os.environ[name]
    # The outer run read its own addopts already; the processes the tests start (pytester's,
    # and those of the helpers' clean environments, which keep only this PYTEST_ variable)
    # get CHILD_ADDOPTS.
    os.environ["PYTEST_ADDOPTS"] = CHILD_ADDOPTS


# Seconds the heaviest files take (``--durations``, 2-core machine, 2026-12-07): handed out
# first, longest first, so that no long file starts last and keeps one worker busy alone at
# the end. Other files are estimated from their count of ``slow`` tests.
FILE_SECONDS = {
    "tests/end_to_end/test_action.py": 90,
    "tests/integration/test_ab.py": 75,
    "tests/end_to_end/test_action_zero_setup.py": 55,
    "tests/integration/test_model_zoo.py": 50,
    "tests/integration/test_plugin.py": 50,
    "tests/integration/test_model_load.py": 60,
    "tests/integration/test_plugin_load.py": 45,
    "tests/integration/test_measure_isolation.py": 45,
    "tests/end_to_end/test_readme_flow.py": 40,
    "tests/integration/test_diagnosis.py": 35,
    "tests/integration/test_dvc_baselines.py": 32,
    "tests/integration/test_plugin_paired_note.py": 27,
    "tests/integration/test_base_imports.py": 27,
    "tests/integration/test_baseline_dvc_faults.py": 25,
    "tests/integration/test_probe_memory.py": 24,
    "tests/integration/test_plugin_benchmark_suite.py": 21,
    "tests/integration/test_quality.py": 20,
    "tests/integration/test_diagnosis_layers.py": 18,
}
SECONDS_PER_SLOW_TEST = 2.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    cost: dict[str, float] = {}
    for item in items:
        path = item.nodeid.split("::")[0]
        cost.setdefault(path, 0.0)
        if item.get_closest_marker("slow"):
            cost[path] += SECONDS_PER_SLOW_TEST
    for path, seconds in FILE_SECONDS.items():
        if path in cost:
            cost[path] = max(cost[path], seconds)
    order = {path: index for index, path in enumerate(sorted(cost, key=lambda p: -cost[p]))}
    items.sort(key=lambda item: order[item.nodeid.split("::")[0]])  # stable within a file
