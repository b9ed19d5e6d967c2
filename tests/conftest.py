"""Shared by every test: child processes that do not inherit pytest-xdist's worker variables,
and the measuring test files handed out first.

`make test` runs the suite on two pytest-xdist workers, a file at a time (``--dist loadfile``:
module fixtures are built once); `make test-fast` runs what does not measure (``-m "not
slow"``). Files are handed out in collection order, so the ones with the most measuring tests
(``slow``) go first and the many quick files fill in at the end.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # A pytest-xdist worker exports PYTEST_XDIST_*; the pytest, DVC and perf-gate processes
    # the tests start would inherit them and behave as parts of this run (pytest-benchmark
    # switches itself off, for one). They are the user's processes, not ours.
    for name in [n for n in os.environ if n.startswith("PYTEST_XDIST_")]:
        del os.environ[name]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    slow: dict[str, int] = {}
    for item in items:
        slow.setdefault(item.nodeid.split("::")[0], 0)
        if item.get_closest_marker("slow"):
            slow[item.nodeid.split("::")[0]] += 1
    order = {path: index for index, path in enumerate(sorted(slow, key=lambda p: -slow[p]))}
    items.sort(key=lambda item: order[item.nodeid.split("::")[0]])  # stable within a file
