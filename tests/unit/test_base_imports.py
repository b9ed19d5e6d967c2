"""gate.measure.base_imports on its own: the names a path can be imported by, which loaded
modules are head code, and the base worker's PYTHONPATH."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

from gate.measure import base_imports
from gate.measure.base_imports import (
    ENV,
    HARNESS,
    BaseImports,
    ForeignImport,
    foreign_modules,
    refusal,
    search_root,
)


@pytest.mark.parametrize(
    ("name", "location", "root"),
    [
        ("mylib", "/r/src/mylib", "/r/src"),  # setuptools MAPPING: a package's directory
        ("mylib", "/r/src/mylib/__init__.py", "/r/src"),  # editables: its __init__.py
        ("single", "/r/single", "/r"),  # setuptools MAPPING of a module: no suffix
        ("single", "/r/single.py", "/r"),
        ("fast", "/r/fast.cpython-311-x86_64-linux-gnu.so", "/r"),
        ("acme.mylib", "/r/src/acme/mylib", "/r/src"),  # namespace portions
        ("mylib", "/r/lib", None),  # package_dir={"mylib": "lib"}: no directory makes it
        ("acme.mylib", "/r/src/other/mylib", None),
    ],
)
def test_search_root(name: str, location: str, root: str | None) -> None:
    assert search_root(name, Path(location)) == (Path(root) if root else None)


def module(name: str, file: Path | None) -> ModuleType:
    made = ModuleType(name)
    made.__file__ = str(file) if file else None
    return made


def test_foreign_modules_are_files_in_the_head_outside_the_worktree(tmp_path: Path) -> None:
    head, base = tmp_path / "repo", tmp_path / "worktree"
    loaded = {
        "mylib.sub": module("mylib.sub", head / "src" / "mylib" / "sub.py"),
        "mylib": module("mylib", head / "src" / "mylib" / "__init__.py"),
        "based": module("based", base / "src" / "based.py"),
        "elsewhere": module("elsewhere", tmp_path / "site" / "elsewhere.py"),
        "builtin": module("builtin", None),
        "venv_in_repo": module("venv_in_repo", Path(sys.prefix) / "lib" / "x.py"),
    }
    found = foreign_modules(head.resolve(), base.resolve(), loaded)
    assert [name for name, _ in found] == ["mylib", "mylib.sub"]  # outermost first
    assert found[0][1] == (head / "src" / "mylib" / "__init__.py").resolve()


def test_modules_of_the_project_from_outside_the_worktree_are_foreign(tmp_path: Path) -> None:
    """``pip install .`` (no -e): the base worker must not use the copy in site-packages."""
    head, base = tmp_path / "repo", tmp_path / "worktree"
    site = Path(sys.prefix) / "lib" / "site-packages"
    loaded = {
        "mylib": module("mylib", site / "mylib" / "__init__.py"),
        "mylib.sub": module("mylib.sub", base / "mylib" / "sub.py"),
        "numpy": module("numpy", site / "numpy" / "__init__.py"),
    }
    found = foreign_modules(head, base, loaded, names=["mylib"])
    assert found == [("mylib", (site / "mylib" / "__init__.py").resolve())]


def test_perf_gates_own_package_is_the_harness_not_head_code() -> None:
    """perf-gate's repository gating itself: its package lies in the head repository (an
    editable install) and is named by the project, yet it is what measures both sides."""
    head = HARNESS.parent  # the repository holding perf-gate's package
    loaded = {
        "__main__": module("__main__", HARNESS / "measure" / "forkserver.py"),
        "gate.units": module("gate.units", HARNESS / "units.py"),
        "digits.model": module("digits.model", head / "examples" / "digits" / "model.py"),
    }
    found = foreign_modules(head, head.parent / "worktree", loaded, names=["gate"])
    assert [name for name, _ in found] == ["digits.model"]


def test_the_refusal_is_one_line_naming_the_module_the_file_and_the_fix() -> None:
    line = refusal([("mylib", Path("/r/lib/__init__.py")), ("mylib.sub", Path("/r/lib/sub.py"))])
    assert "\n" not in line
    assert "imported mylib from /r/lib/__init__.py (and 1 more" in line
    assert "pip install -e ." in line
    assert "--mode stored" in line
    assert ForeignImport(line).one_line().endswith("(perf-gate explain base-imports)")
    assert ForeignImport(line).exit_code == 2


def test_base_worker_pythonpath_maps_head_entries_into_the_worktree(tmp_path: Path) -> None:
    head, base = tmp_path / "repo", tmp_path / "worktree"
    for folder in (head / "lib", base / "lib", head / "new", base / "src"):
        folder.mkdir(parents=True)
    imports = BaseImports(head, base, (base / "src",), tmp_path / "report")
    entries = [str(base), str(head / "lib"), str(head / "new"), "relative", str(tmp_path)]
    env = imports.environment({"PYTHONPATH": os.pathsep.join(entries)})
    assert env["PYTHONPATH"].split(os.pathsep) == [
        str(base),
        str(base / "lib"),  # the worktree's copy of an absolute entry into the head
        str(head / "new"),  # the base revision lacks it: unchanged (the check watches it)
        "relative",  # relative to the worker's directory, which is in the worktree
        str(tmp_path),
        str(base / "src"),
    ]
    assert json.loads(env[ENV]) == {
        "head": str(head),
        "base": str(base),
        "report": str(tmp_path / "report"),
        "names": [],
        "prefixes": [],
    }


def test_a_base_environment_runs_the_worktrees_workers_with_its_packages_first(
    tmp_path: Path,
) -> None:
    head, tree = tmp_path / "repo", tmp_path / "tree"
    (head / "src").mkdir(parents=True)
    (tree / "src").mkdir(parents=True)
    python, own, inherited = str(tmp_path / "env/bin/python"), str(tmp_path / "own"), "/inh"
    with base_imports.isolated(head, tree) as imports:
        assert base_imports.interpreter(tree) == sys.executable
        base_imports.use_interpreter(imports, python, [inherited], own, ["tinypkg"])
        assert base_imports.interpreter(tree / "sub") == python
        assert base_imports.own_modules(tree) == {"tinypkg"}
        assert base_imports.own_modules(head) == frozenset()
        assert base_imports.interpreter(head) == sys.executable  # head workers: this one
        env = imports.environment({"PYTHONPATH": "/users/own/path"})
        # the environment's packages win over a package the head's PYTHONPATH provides
        assert env["PYTHONPATH"].split(os.pathsep)[:2] == [own, "/users/own/path"]
        # neither this interpreter's packages nor the environment's own are head code
        assert json.loads(env[ENV])["prefixes"] == [inherited, own]
    assert base_imports.interpreter(tree) == sys.executable  # gone with the worktree


def test_packages_the_base_environment_reads_from_a_venv_inside_the_repository_are_not_head_code(
    tmp_path: Path,
) -> None:
    head, base = tmp_path / "repo", tmp_path / "worktree"
    site = head / ".venv" / "lib" / "site-packages"
    (site / "numpy").mkdir(parents=True)
    base.mkdir()
    module = ModuleType("numpy")
    module.__file__ = str(site / "numpy" / "__init__.py")
    assert foreign_modules(head, base, {"numpy": module}) == [
        ("numpy", site / "numpy" / "__init__.py")
    ]
    assert foreign_modules(head, base, {"numpy": module}, inherited=[str(site)]) == []


def test_only_workers_rooted_in_the_worktree_get_the_base_setting(tmp_path: Path) -> None:
    head, tree = tmp_path / "repo", tmp_path / "tree"
    (head / "src").mkdir(parents=True)
    (tree / "src").mkdir(parents=True)
    with base_imports.isolated(head, tree) as imports:
        assert (tree / "src").resolve() in imports.paths
        based = base_imports.worker_environment(tree / "bench", {"PYTHONPATH": str(tree)})
        assert ENV in based
        assert str((tree / "src").resolve()) in based["PYTHONPATH"].split(os.pathsep)
        headed = base_imports.worker_environment(head, {"PYTHONPATH": str(head), ENV: "{}"})
        assert headed == {"PYTHONPATH": str(head)}
        imports.check()  # nothing reported
        imports.report.write_text("the base worker ran head code\n", encoding="utf-8")
        with pytest.raises(ForeignImport, match="ran head code"):
            imports.check()
    assert not imports.report.parent.exists()
    assert ENV not in base_imports.worker_environment(tree, {})
