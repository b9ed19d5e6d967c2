"""Which options of the user's pytest command line a worker round repeats, and how."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.integrations.pytest.options import forwarded_options

ROOT = Path("/project")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ["-p", "myplug", "-pother", "-p=third"],
            ["-p", "myplug", "-pother", "-p=third"],
            id="plugins-as-written",
        ),
        pytest.param(
            ["-o", "a=b", "--override-ini=c=d", "--override-ini", "e=f", "-Werror"],
            ["-o", "a=b", "--override-ini=c=d", "--override-ini", "e=f", "-Werror"],
            id="ini-overrides-and-warnings",
        ),
        pytest.param(
            ["--import-mode=importlib", "--noconftest", "--pyargs", "-W", "ignore"],
            ["--import-mode=importlib", "--noconftest", "--pyargs", "-W", "ignore"],
            id="import-mode-and-flags",
        ),
        pytest.param(
            ["tests/", "-k", "fast", "-m", "slow", "--deselect", "a.py::t", "-x", "-n", "2"],
            [],
            id="selection-and-other-options-stay-behind",
        ),
        pytest.param(
            ["--perf-gate", "--perf-gate-save", "--perf-gate-baseline=b.json", "--rootdir", "x"],
            [],
            id="perf-gate-options-and-rootdir-stay-behind",
        ),
        pytest.param(["--", "-p", "x"], [], id="nothing-after-double-dash"),
        pytest.param(["-p"], [], id="missing-value"),
    ],
)
def test_collection_options_are_forwarded_and_selection_is_not(args, expected):
    assert forwarded_options(args, ROOT, ROOT) == expected


def test_relative_paths_are_rewritten_for_a_worker_in_the_rootdir():
    args = ["-c", "../perf.ini", "--confcutdir=.", "--config-file", "x.ini", "-cy.ini"]
    assert forwarded_options(args, ROOT / "sub", ROOT) == [
        "-c",
        "perf.ini",
        "--confcutdir",
        "sub",
        "--config-file",
        "sub/x.ini",
        "-c",
        "sub/y.ini",
    ]


def test_absolute_paths_are_kept():
    args = ["-c", "/etc/pytest.ini", "--confcutdir=/project/tests"]
    assert forwarded_options(args, ROOT / "sub", ROOT) == args
