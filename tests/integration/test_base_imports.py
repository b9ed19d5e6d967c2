"""The base side runs the base code: a project installed in editable mode (``pip install -e``
into a real virtualenv) is imported from the base revision's worktree by the base workers,
whatever its layout, and a paired run whose base worker still loaded head code is refused in
one line (exit 2), never reported as "unchanged"."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ._support import (
    Ran,
    clean_env,
    comparisons_by_key,
    read_json,
    write_files,
    write_matmul_onnx,
)

pytestmark = pytest.mark.slow

IDENTITY = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]
IGNORE = ".perf-gate/\n__pycache__/\n*.egg-info/\nbuild/\n"


def git(repo: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", *IDENTITY, *args], cwd=repo, capture_output=True, text=True, check=True
    )
    return completed.stdout.strip()


def history(repo: Path, base: dict[str, str], head: dict[str, str]) -> Path:
    """A repository whose HEAD~1 has the files ``base`` and HEAD those of ``head`` (files only
    in ``base`` deleted)."""
    write_files(repo, {".gitignore": IGNORE, **base})
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    for name in set(base) - set(head):
        git(repo, "rm", "-q", name)
    write_files(repo, head)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "head")
    return repo


def pyproject(name: str, setuptools: str = "") -> str:
    return (
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{name}"\nversion = "0.1"\n' + setuptools
    )


def side(label: str) -> str:
    return f"SIDE = {label!r}\n"


def make_venv(where: Path) -> Path:
    """A virtualenv whose Python also sees this one's packages (perf-gate, pytest, setuptools,
    numpy, onnxruntime) through a ``.pth`` file; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    Path(purelib, "_perf_gate_tests.pth").write_text(
        f"import site; site.addsitedir({ours!r})\n", encoding="utf-8"
    )
    return python


def install_editable(python: Path, *projects: Path, copied: tuple[Path, ...] = ()) -> None:
    """``pip install -e`` of ``projects`` (and ``pip install`` of ``copied``) offline, with the
    setuptools already installed."""
    editables = [arg for project in projects for arg in ("-e", str(project))]
    command = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    completed = subprocess.run(
        [*command, "--no-index", *editables, *map(str, copied)],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
    )
    assert completed.returncode == 0, completed.stderr


def run_in(python: Path, cwd: Path, *args: str, **env: str) -> Ran:
    completed = subprocess.run(
        [str(python), *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    return Ran(completed.returncode, completed.stdout, completed.stderr)


# --- the base worker's imports, layout by layout --------------------------------------------

# What a base worker does, as perf-gate's paired runs do it: the base revision (HEAD~1) in a
# worktree, a process rooted there with ``runner.worker_environment``. The process imports the
# modules named on its command line and reports where each came from, then runs the check.
# perf tests pair their arms side by side where two cores are free

PROBE = textwrap.dedent(
    """
    import json, subprocess, sys
    from pathlib import Path
    from gate.store.git import Git
    from gate.measure import base_imports
    from gate.measure.runner import worker_environment

    WORKER = '''
    import importlib, json, sys
    from gate.measure.base_imports import check_worker
    found = {}
    for name in sys.argv[1:]:
        try:
            module = importlib.import_module(name)
        except ImportError:
            found[name] = None
        else:
            found[name] = [module.__file__, getattr(module, "SIDE", None)]
    print(json.dumps({"modules": found, "refusal": check_worker()}))
    '''
    repo, where, *modules = sys.argv[1:]
    git = Git(Path(repo))
    with git.worktree(git.resolve("HEAD~1")) as tree, base_imports.isolated(git.toplevel(), tree):
        root = tree / where
        done = subprocess.run(
            [sys.executable, "-c", WORKER, *modules], cwd=root, env=worker_environment(root, 1),
            capture_output=True, text=True, check=True,
        )
        print(json.dumps({"tree": str(tree.resolve()), **json.loads(done.stdout)}))
    """
)


def src_layout(repo: Path) -> tuple[str, list[str]]:
    """setuptools, src/ layout: a static ``.pth`` entry to the head's src/."""
    history(
        repo,
        {
            "pyproject.toml": pyproject("bi-src"),
            "src/bi_src/__init__.py": side("base"),
            "src/bi_src/dropped.py": side("base"),  # only in the base revision
        },
        {
            "pyproject.toml": pyproject("bi-src"),
            "src/bi_src/__init__.py": side("head"),
            "src/bi_src/added.py": side("head"),  # only in the head
        },
    )
    return ".", ["bi_src", "bi_src.dropped", "bi_src.added"]


def flat_layout(repo: Path) -> tuple[str, list[str]]:
    """setuptools, flat layout, the config in a subdirectory: an ``__editable__`` finder."""
    setuptools = '\n[tool.setuptools]\npackages = ["bi_flat"]\n'
    files = {"pyproject.toml": pyproject("bi-flat", setuptools), "bench/perf-gate.yaml": "{}\n"}
    history(
        repo,
        {**files, "bi_flat/__init__.py": side("base")},
        {**files, "bi_flat/__init__.py": side("head")},
    )
    return "bench", ["bi_flat"]


def namespace_layout(repo: Path) -> tuple[str, list[str]]:
    """A namespace package (no ``__init__.py`` in ``acme_ns``), flat: a finder with
    ``NAMESPACES`` and a path hook."""
    setuptools = '\n[tool.setuptools.packages.find]\ninclude = ["acme_ns*"]\nnamespaces = true\n'
    files = {"pyproject.toml": pyproject("bi-ns", setuptools), "bench/perf-gate.yaml": "{}\n"}
    history(
        repo,
        {**files, "acme_ns/bi_ns/__init__.py": side("base")},
        {**files, "acme_ns/bi_ns/__init__.py": side("head")},
    )
    return "bench", ["acme_ns.bi_ns"]


def unmappable_layout(repo: Path) -> tuple[str, list[str]]:
    """``package_dir={"bi_odd": "lib"}``: no directory named bi_odd, so no path can put the
    worktree's copy first; the head's finder serves it."""
    setuptools = '\n[tool.setuptools]\npackages = ["bi_odd"]\npackage-dir = {bi_odd = "lib"}\n'
    history(
        repo,
        {"pyproject.toml": pyproject("bi-odd", setuptools), "lib/__init__.py": side("base")},
        {"pyproject.toml": pyproject("bi-odd", setuptools), "lib/__init__.py": side("head")},
    )
    return ".", ["bi_odd"]


def copied_layout(repo: Path) -> tuple[str, list[str]]:
    """Flat layout installed without -e (``pip install .``): a copy in site-packages, found by
    its ``direct_url.json``; the config in a subdirectory, so the top is not on the path."""
    setuptools = '\n[tool.setuptools]\npackages = ["bi_copy"]\n'
    files = {"pyproject.toml": pyproject("bi-copy", setuptools), "bench/perf-gate.yaml": "{}\n"}
    history(
        repo,
        {**files, "bi_copy/__init__.py": side("base")},
        {**files, "bi_copy/__init__.py": side("head")},
    )
    return "bench", ["bi_copy"]


def copied_unmappable_layout(repo: Path) -> tuple[str, list[str]]:
    """Installed without -e from a directory of another name: only the copy in site-packages
    has it."""
    setuptools = '\n[tool.setuptools]\npackages = ["bi_copy_odd"]\n'
    setuptools += 'package-dir = {bi_copy_odd = "lib"}\n'
    files = {"pyproject.toml": pyproject("bi-copy-odd", setuptools)}
    history(
        repo,
        {**files, "lib/__init__.py": side("base")},
        {**files, "lib/__init__.py": side("head")},
    )
    return ".", ["bi_copy_odd"]


LAYOUTS: dict[str, Callable[[Path], tuple[str, list[str]]]] = {
    "src": src_layout,
    "flat": flat_layout,
    "namespace": namespace_layout,
    "unmappable": unmappable_layout,
    "copied": copied_layout,
    "copied-unmappable": copied_unmappable_layout,
}
COPIED = {"copied", "copied-unmappable"}  # installed without -e


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One virtualenv with every layout's repository installed editable (distinct names)."""
    top = tmp_path_factory.mktemp("layouts")
    python = make_venv(top / "venv")
    repos = {name: top / name for name in LAYOUTS}
    places = {name: make(repos[name]) for name, make in LAYOUTS.items()}
    install_editable(
        python,
        *(repos[name] for name in LAYOUTS if name not in COPIED),
        copied=tuple(repos[name] for name in sorted(COPIED)),
    )
    probe = top / "probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    return {"python": python, "probe": probe, "repos": repos, "places": places}


def probe(installed: dict[str, Any], layout: str, **env: str) -> dict[str, Any]:
    repo = installed["repos"][layout]
    where, modules = installed["places"][layout]
    ran = run_in(installed["python"], repo, str(installed["probe"]), str(repo), where, *modules)
    assert ran.ret == 0, ran.output
    result: dict[str, Any] = json.loads(ran.stdout)
    return result


@pytest.mark.parametrize("layout", ["src", "flat", "namespace", "copied"])
def test_base_worker_imports_the_worktree_copy(installed: dict[str, Any], layout: str) -> None:
    result = probe(installed, layout)
    tree = Path(result["tree"])
    for name, found in result["modules"].items():
        if name.endswith(".added"):
            assert found is None, "a module added in the head is absent in the base revision"
            continue
        assert found is not None, f"{name} did not import in the base worker"
        file, label = found
        assert Path(file).is_relative_to(tree), f"{name} came from {file}, not from {tree}"
        assert label == "base"
    assert result["refusal"] is None


def test_absolute_pythonpath_into_the_head_is_mapped(tmp_path: Path) -> None:
    repo = history(
        tmp_path / "repo",
        {"lib/bi_path/__init__.py": side("base"), "bench/perf-gate.yaml": "{}\n"},
        {"lib/bi_path/__init__.py": side("head"), "bench/perf-gate.yaml": "{}\n"},
    )
    script = tmp_path / "probe.py"
    script.write_text(PROBE, encoding="utf-8")
    command = [str(script), str(repo), "bench", "bi_path"]
    ran = run_in(Path(sys.executable), repo, *command, PYTHONPATH=str(repo / "lib"))
    assert ran.ret == 0, ran.output
    result = json.loads(ran.stdout)
    file, label = result["modules"]["bi_path"]
    assert Path(file).is_relative_to(result["tree"])
    assert label == "base"
    assert result["refusal"] is None


def test_a_module_that_cannot_be_mapped_is_caught(installed: dict[str, Any]) -> None:
    result = probe(installed, "unmappable")
    file, label = result["modules"]["bi_odd"]
    assert label == "head"  # the head's finder served it ...
    assert Path(file).is_relative_to(installed["repos"]["unmappable"])
    assert f"imported bi_odd from {file}, not from" in result["refusal"]  # ... and it is caught


def test_an_installed_copy_that_cannot_be_mapped_is_caught(installed: dict[str, Any]) -> None:
    result = probe(installed, "copied-unmappable")
    file, label = result["modules"]["bi_copy_odd"]
    assert label == "head"  # the copy pip installed from the head ...
    assert "site-packages" in Path(file).parts
    assert f"imported bi_copy_odd from {file}, not from" in result["refusal"]  # ... is caught


# --- whole paired runs -----------------------------------------------------------------------

# The library writes where it was imported from to $TRACE, so a test can see which copy each
# process (the pytest parent, base and head workers) used.
LIBRARY = """
import os

SIZE = {size}
if os.environ.get("TRACE"):
    with open(os.environ["TRACE"], "a", encoding="utf-8") as handle:
        handle.write(__file__ + "\\n")


def work():
    return sum(range(SIZE))
"""
PERF_TEST = """
import {module}


def test_work(perf):
    assert perf.latency({module}.work) >= 0
"""
PERF_CONFIG = """
policy: {min_rounds: 3, max_rounds: 8, round_step: 5, thresholds: {latency: 20%}, diagnose: never}
measure: {warmup: 2, min_calls: 20, min_time: 0.02s}
"""


def test_paired_perf_tests_measure_the_base_code_of_an_editable_install(
    tmp_path: Path,
) -> None:
    """`cattrs` in issue 13: src/ layout installed with `pip install -e .`; the head does 20x
    the work, which the base worker sees only if it imports the worktree's src/."""
    common = {
        "pyproject.toml": pyproject("e2e-lib"),
        "pytest.ini": "[pytest]\n",
        "perf-gate.yaml": PERF_CONFIG,
        "test_lib.py": PERF_TEST.format(module="e2e_lib"),
    }
    repo = history(
        tmp_path / "repo",
        {**common, "src/e2e_lib/__init__.py": LIBRARY.format(size=2_000)},
        {**common, "src/e2e_lib/__init__.py": LIBRARY.format(size=40_000)},
    )
    python = make_venv(tmp_path / "venv")
    install_editable(python, repo)
    trace = tmp_path / "trace.txt"
    ran = run_in(
        python,
        repo,
        *("-m", "pytest", "-p", "no:cacheprovider", "--perf-gate", "--perf-gate-ab", "HEAD~1"),
        TRACE=str(trace),
    )
    files = [Path(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    from_worktree = [f for f in files if not f.is_relative_to(repo)]
    assert from_worktree, f"no process imported the base revision's copy: {files}"
    assert all(f.parts[-4:] == ("base", "src", "e2e_lib", "__init__.py") for f in from_worktree)
    assert all(f.parents[3].name.startswith("perf-gate-base-") for f in from_worktree)
    assert ran.ret == 1, ran.output
    comparison = read_json(repo / ".perf-gate" / "comparison.json")
    entry = comparisons_by_key(comparison)[("test_lib.py::test_work", "latency")]
    assert entry["mode"] == "ab"  # a perf test's arms run one after the other
    assert entry["verdict"] == "regression", entry


def odd_library(size: int) -> dict[str, str]:
    setuptools = '\n[tool.setuptools]\npackages = ["e2e_odd"]\npackage-dir = {e2e_odd = "lib"}\n'
    inputs = "\n\ndef inputs(batch_size):\n    import numpy\n\n"
    inputs += "    return numpy.ones((batch_size, 16), dtype=numpy.float32)\n"
    return {
        "pyproject.toml": pyproject("e2e-odd", setuptools),
        "lib/__init__.py": LIBRARY.format(size=size) + inputs,
    }


def assert_refused(ran: Ran, repo: Path) -> None:
    """Exit 2 with one error line naming the module and the fix; the worktree removed."""
    assert ran.ret == 2, ran.output
    errors = ran.lines_with("perf-gate: error:")
    assert len(errors) == 1, ran.output
    assert "a worker of the base revision imported e2e_odd from " in errors[0]
    assert str(repo / "lib" / "__init__.py") in errors[0]
    assert "pip install -e ." in errors[0]
    assert errors[0].endswith("(perf-gate explain base-imports)")
    assert "Traceback" not in ran.output
    assert len(git(repo, "worktree", "list").splitlines()) == 1


def test_paired_perf_tests_refuse_a_base_that_imported_head_code(tmp_path: Path) -> None:
    common = {
        "pytest.ini": "[pytest]\n",
        "perf-gate.yaml": PERF_CONFIG,
        "test_lib.py": PERF_TEST.format(module="e2e_odd"),
    }
    repo = history(
        tmp_path / "repo", {**common, **odd_library(2_000)}, {**common, **odd_library(40_000)}
    )
    python = make_venv(tmp_path / "venv")
    install_editable(python, repo)
    ran = run_in(
        python,
        repo,
        *("-m", "pytest", "-p", "no:cacheprovider", "--perf-gate", "--perf-gate-ab", "HEAD~1"),
    )
    assert_refused(ran, repo)


MODEL_CONFIG = """
models:
  chain:
    onnx: chain.onnx
    input: e2e_odd:inputs
    variants: [onnxruntime]
    metrics: [latency]
policy: {min_rounds: 2, max_rounds: 2, thresholds: {latency: 20%}, diagnose: never}
measure: {rounds: 2, warmup: 1, min_calls: 5, min_time: 0.01s, probes: 1}
"""


def test_paired_model_runs_refuse_a_base_that_imported_head_code(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_matmul_onnx(repo / "chain.onnx")
    common = {"perf-gate.yaml": MODEL_CONFIG}
    history(repo, {**common, **odd_library(2_000)}, {**common, **odd_library(40_000)})
    python = make_venv(tmp_path / "venv")
    install_editable(python, repo)
    ran = run_in(python, repo, "-m", "gate", "run", "--mode", "ab", "--ab", "HEAD~1")
    assert_refused(ran, repo)
