"""Which of the user's pytest options a worker round repeats, and which perf-gate options
pytest would misread; pure functions of the command line (no pytest import), used by
``plugin``."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path

# Options whose value is a path. Written with a space, the value is read by pytest as a test
# path while it picks the rootdir (plugin options are not known yet at that point), which can
# move the rootdir and so rename every custom benchmark.
PATH_OPTIONS = ("--perf-gate-config", "--perf-gate-baseline", "--perf-gate-report")
# Options of the user's command line that shape collection and import; worker rounds repeat
# them so that a perf test finds the same plugins, conftests and fixtures. Test selection
# (paths, -k, -m, --deselect) is never repeated: a worker is given node ids. The rootdir is
# not repeated either: a worker runs in the rootdir and is pinned to it (measure/custom.py).
# pytest-benchmark's options that shape how a ``benchmark`` test measures are repeated too; its
# time per test (--benchmark-max-time) is set by the parent (``custom.CustomRounds``), and its
# storage, saving and comparing stay the parent's.
FORWARDED_FLAGS = frozenset({"--noconftest", "--pyargs", "--benchmark-disable-gc"})
FORWARDED_VALUES = frozenset(
    {
        "-p",
        "-W",
        "--pythonwarnings",
        "-o",
        "--override-ini",
        "--import-mode",
        "--benchmark-min-rounds",
        "--benchmark-min-time",
        "--benchmark-timer",
        "--benchmark-calibration-precision",
        "--benchmark-warmup-iterations",
    }
)
# An option whose value is optional is repeated only as written (``--benchmark-warmup=on``).
FORWARDED_OPTIONAL = frozenset({"--benchmark-warmup"})
FORWARDED_PATHS = frozenset({"-c", "--config-file", "--confcutdir"})


def worker_args(
    args: Sequence[str],
    *,
    invocation: Path,
    root: Path,
    config_path: Path | None,
    report_dir: Path,
    has_plugin: Callable[[str], bool],
) -> list[str]:
    """The pytest options of a worker round: the user's ini ``addopts`` apply there as they
    are; this adds what the command line (``args``, run in ``invocation``) said about
    collection, the config, and switches off what must not run inside a round (parallel
    workers, coverage, reordering, reports). ``has_plugin`` says which plugins are loaded."""
    forwarded = forwarded_options(args, invocation, root)
    if config_path is not None:
        forwarded.append(f"--perf-gate-config={config_path}")
    if has_plugin("xdist"):
        forwarded += ["-n", "0"]  # addopts may ask for workers; a round is one process
    if has_plugin("pytest_cov"):
        forwarded.append("--no-cov")
    if has_plugin("randomly"):
        forwarded.append("--randomly-dont-reorganize")  # the rounds shuffle the tests themselves
    if has_plugin("benchmark"):
        # an autosave or --benchmark-save in addopts writes a round's runs here, not with the
        # user's saved runs
        storage = (report_dir / "work" / "benchmarks").resolve()
        forwarded.append(f"--benchmark-storage=file://{storage}")
    if has_plugin("junitxml"):
        forwarded.append("--junitxml=")  # the user's report is the parent's, not a round's
    if has_plugin("cacheprovider"):
        # Keeps --lf/--ff in addopts valid while leaving the user's cache alone.
        cache = (report_dir / "work" / "cache").resolve()
        forwarded.append(f"--override-ini=cache_dir={cache}")
    return forwarded


def forwarded_options(args: Sequence[str], invocation: Path, root: Path) -> list[str]:
    """The options in ``args`` (a command line run in ``invocation``) that shape collection,
    for a pytest process that runs in ``root``: relative paths are rewritten relative to
    ``root``, so they name the same files in the head and in a base revision's worktree."""
    forwarded: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            break
        name, value = _option_parts(arg)
        if name in FORWARDED_FLAGS or name in FORWARDED_OPTIONAL:
            forwarded.append(arg)
        elif name in FORWARDED_VALUES or name in FORWARDED_PATHS:
            given = [arg]
            if value is None and index < len(args):
                value = args[index]
                given.append(value)
                index += 1
            if value is None:
                break
            if name in FORWARDED_PATHS and not Path(value).is_absolute():
                given = [name, os.path.relpath(invocation / value, root)]
            forwarded += given
    return forwarded


def _option_parts(arg: str) -> tuple[str, str | None]:
    """``--name=value`` -> (name, value), ``-pNAME`` -> ("-p", NAME), ``-p`` -> ("-p", None)."""
    if arg.startswith("--"):
        name, equals, value = arg.partition("=")
        return name, value if equals else None
    if arg.startswith("-") and len(arg) > 2:
        value = arg[2:]
        return arg[:2], value[1:] if value.startswith("=") else value
    return arg, None


def misread_path_option(args: Sequence[str], env_args: Sequence[str]) -> str | None:
    """What is wrong when a perf-gate path option was written with a space (in ``args``, the
    command line, or ``env_args``, PYTEST_ADDOPTS), or None.

    pytest picks its rootdir before plugins add their options, so it reads ``FILE`` in
    ``--perf-gate-baseline FILE`` as a test path; a file outside the project moves the rootdir
    and renames every custom benchmark. The ``=`` form is read as one option."""
    for source, given in (("", args), (" in PYTEST_ADDOPTS", env_args)):
        for arg, value in pairwise(given):
            if arg in PATH_OPTIONS and not value.startswith("-"):
                return (
                    f"{arg} {value}{source}: pytest reads a path after a space as a test path "
                    f"when it picks the rootdir, which renames the benchmarks; write "
                    f"{arg}={value}"
                )
    return None
