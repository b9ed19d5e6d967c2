"""The base revision's workers import the base revision's code, whatever the install mode.

In the paired ``ab`` mode the base revision is checked out in a temporary worktree and measured
by worker processes rooted there. A project installed in editable mode stays importable through
paths into the head checkout: a ``.pth`` path entry (setuptools with a ``src/`` layout,
hatchling, flit, pdm, poetry), a meta-path finder appended after ``PathFinder`` (setuptools'
``__editable__`` finders, ``editables``), an absolute ``PYTHONPATH`` entry. A base worker
started with the parent's environment would import the head's code and compare the head with
itself.

Parent side (``isolated``): the directories inside the head repository the project is imported
from are found once (this interpreter's ``sys.path``, which holds the ``.pth`` entries; the
editable finders' mappings; the conventional ``src/``) and their counterparts in the worktree
go on the base workers' ``PYTHONPATH`` (``worker_environment``, called by
``runner.worker_environment``), absolute ``PYTHONPATH`` entries into the head are rewritten the
same way. ``PathFinder`` searches ``sys.path`` before any finder appended to ``sys.meta_path``,
and ``PYTHONPATH`` comes before ``site-packages`` and its ``.pth`` entries, so the worktree's
copy wins. A directory the base revision lacks is left out: a module added in the head is
absent in the base, as it should be. A project installed from the repository without
``-e`` (``pip install .``: a copy in ``site-packages``, ``direct_url.json`` naming the
repository) is found by its distribution's top-level names, and the worktree's directory that
holds each of them (``src/`` or the top) joins the path too.

Worker side (``check_worker``): after the user's code ran, every loaded module whose file lies
inside the head repository but outside the worktree (and outside the interpreter's prefixes: a
virtualenv inside the repository), and every module of those installed top-level names loaded
from outside the worktree, is head code in a base worker. The worker reports it and
fails; the parent refuses the paired run in one line (``ForeignImport``, exit 2), never a
silent comparison of the head with itself.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from importlib.machinery import all_suffixes
from pathlib import Path
from urllib.parse import unquote, urlparse

from gate.errors import ConfigError

# perf-gate's own package: the harness that measures both sides.
HARNESS = Path(__file__).resolve().parents[1]
# Set in a base worker's environment: the head repository, the worktree and the report file.
ENV = "PERF_GATE_BASE_IMPORTS"


class ForeignImport(ConfigError):
    """A base-revision worker imported the head's code; paired timings cannot be trusted."""

    default_slug = "base-imports"


def _resolved(entry: str) -> Path | None:
    """``entry`` as an absolute path without symlinks ('' is the working directory)."""
    try:
        return Path(os.path.abspath(entry or os.curdir)).resolve()
    except (OSError, ValueError):
        return None


def _prefixes(inherited: Iterable[str] = ()) -> tuple[Path, ...]:
    """The interpreter's own trees (a virtualenv may live inside the repository), and the
    ``inherited`` package folders of a base environment (``base_env``) that reads the head
    interpreter's packages."""
    raw = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, *inherited}
    found = {Path(os.path.abspath(p)) for p in raw}
    found |= {r for p in raw if (r := _resolved(p)) is not None}
    return tuple(sorted(found))


def _module_name(file: str) -> str | None:
    """The module name of a file name (``mylib.py``, ``fast.cpython-311-x86_64-linux-gnu.so``)."""
    for suffix in sorted(all_suffixes(), key=len, reverse=True):
        if file.endswith(suffix) and file != suffix:
            return file[: -len(suffix)]
    return None


def search_root(name: str, location: Path) -> Path | None:
    """The directory from which ``PathFinder`` imports ``name`` as ``location`` (a package's
    directory or ``__init__.py``, a module's file or its path without suffix); None when the
    names differ (``package_dir={"mylib": "lib"}``)."""
    if location.name == "__init__.py":
        location = location.parent
    elif (stem := _module_name(location.name)) is not None:
        location = location.with_name(stem)
    for part in reversed(name.split(".")):
        if location.name != part:
            return None
        location = location.parent
    return location


def _finder_locations() -> Iterator[tuple[str, str]]:
    """(module name, location) of the editable finders on ``sys.meta_path``: setuptools'
    ``__editable___*_finder`` modules (``MAPPING``, ``NAMESPACES``) and ``editables``'
    redirecting finder."""
    for finder in sys.meta_path:
        owner = str(getattr(finder, "__module__", "") or "")
        module = sys.modules.get(owner)
        tables: list[object] = []
        if owner.startswith("__editable__") and module is not None:
            tables.append(getattr(module, "MAPPING", None))
            namespaces = getattr(module, "NAMESPACES", None)
            if isinstance(namespaces, dict):
                tables.extend(
                    {name: path} for name, paths in namespaces.items() for path in paths or ()
                )
        if owner.split(".")[0] == "editables":
            tables.append(getattr(finder, "_redirections", None))
        for table in tables:
            if isinstance(table, dict):
                for name, location in table.items():
                    if isinstance(name, str) and isinstance(location, str):
                        yield name, location


def import_dirs(head: Path) -> list[Path]:
    """The directories inside ``head`` this interpreter imports code from, in ``sys.path``
    order: ``sys.path`` entries (with the editable installs' ``.pth`` entries), the roots of
    the editable finders' mappings, then ``head/src``."""
    prefixes = _prefixes()
    found: list[Path] = []
    candidates = [_resolved(entry) for entry in sys.path if isinstance(entry, str)]
    for name, location in _finder_locations():
        place = _resolved(location)
        candidates.append(search_root(name, place) if place is not None else None)
    candidates.append(head / "src")
    for path in candidates:
        if (
            path is not None
            and path.is_relative_to(head)
            and not any(path.is_relative_to(p) for p in prefixes)
            and path not in found
        ):
            found.append(path)
    return found


def _top_level(dist: metadata.Distribution) -> set[str]:
    """The importable top-level names a distribution installed: its ``top_level.txt``, else the
    first part of its RECORD's module files."""
    listed = dist.read_text("top_level.txt")
    if listed:
        return {line.strip() for line in listed.splitlines() if line.strip().isidentifier()}
    names = set()
    for file in dist.files or ():
        parts = file.parts
        name = parts[0] if len(parts) > 1 else _module_name(parts[0])
        if name and name.isidentifier() and not name.startswith("__editable__"):
            names.add(name)
    return names


def project_names(head: Path) -> set[str]:
    """Top-level names of the installed distributions built from a directory inside ``head``
    (``direct_url.json`` with a ``file:`` URL, editable or not)."""
    names: set[str] = set()
    for dist in metadata.distributions():
        try:
            url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
        except (ValueError, AttributeError):
            continue
        parsed = urlparse(url) if isinstance(url, str) else None
        if parsed is None or parsed.scheme != "file":
            continue
        source = _resolved(unquote(parsed.path))
        if source is not None and source.is_relative_to(head):
            names |= _top_level(dist)
    return names


def _holder(name: str, folders: Iterable[Path]) -> Path | None:
    """The first of ``folders`` from which ``PathFinder`` imports ``name``."""
    for folder in folders:
        if (folder / name).is_dir() or (folder / f"{name}.py").is_file():
            return folder
    return None


@dataclass(frozen=True)
class BaseImports:
    """The base workers' import setting for one worktree of the head repository ``head``."""

    head: Path
    base: Path
    paths: tuple[Path, ...]  # worktree directories that go on the base workers' PYTHONPATH
    report: Path  # base workers append the modules they loaded from the head here
    names: tuple[str, ...] = ()  # the project's installed top-level names

    def counterpart(self, entry: str) -> str:
        """A ``PYTHONPATH`` entry as the base worker needs it: an absolute path into the head
        becomes the same place in the worktree when the base revision has it."""
        if not os.path.isabs(entry):
            return entry  # relative to the worker's directory, which is in the worktree
        path = _resolved(entry)
        if (
            path is None
            or not path.is_relative_to(self.head)
            or path.is_relative_to(self.base)
            or any(path.is_relative_to(p) for p in _prefixes())
        ):
            return entry
        mapped = self.base / path.relative_to(self.head)
        return str(mapped) if mapped.is_dir() else entry

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` of a base worker: its ``PYTHONPATH`` entries into the head mapped into the
        worktree, the worktree's import directories after them, and the check's setting."""
        entries = [e for e in env.get("PYTHONPATH", "").split(os.pathsep) if e]
        ordered = [self.counterpart(e) for e in entries] + [str(p) for p in self.paths]
        _, inherited, first, _ = _INTERPRETERS.get(self.base, (None, (), None, frozenset()))
        # a base environment's own packages before everything, PYTHONPATH's included
        ordered = [first, *ordered] if first else ordered
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(ordered))
        env[ENV] = json.dumps(
            {
                "head": str(self.head),
                "base": str(self.base),
                "report": str(self.report),
                "names": list(self.names),
                "prefixes": list(inherited),
            }
        )
        return env

    def check(self) -> None:
        """Raise ForeignImport with the first report of a base worker that ran head code."""
        try:
            lines = self.report.read_text(encoding="utf-8").splitlines()
        except OSError:
            return
        for line in lines:
            if line.strip():
                raise ForeignImport(line.strip())


_ACTIVE: list[BaseImports] = []
# The base environment's interpreter of a worktree (``base_env``), and the head interpreter's
# package folders it reads after its own, by worktree.
_INTERPRETERS: dict[Path, tuple[str, tuple[str, ...], str | None, frozenset[str]]] = {}


def use_interpreter(
    imports: BaseImports,
    python: str,
    inherited: Iterable[str] = (),
    first: str | None = None,
    modules: Iterable[str] = (),
) -> None:
    """Base workers of ``imports``' worktree run ``python`` (the base revision's environment)
    until the worktree is left; ``inherited``: the folders of this interpreter's packages it
    reads too (not head code, for the check); ``first``: a folder that goes before every
    ``PYTHONPATH`` entry (the environment's own packages, which must win over a package the
    head's ``PYTHONPATH`` provides); ``modules``: the top-level modules it holds there (a
    worker forked from this interpreter's server gets them only where the server has not
    loaded them)."""
    folders = (*inherited, first) if first else tuple(inherited)
    _INTERPRETERS[imports.base] = (python, folders, first, frozenset(modules))


def own_modules(root: Path) -> frozenset[str]:
    """The top-level modules a worker rooted in ``root`` takes from its base environment's own
    folder (empty: none, or no base environment)."""
    where = _resolved(str(root))
    for imports in _ACTIVE:
        if where is not None and where.is_relative_to(imports.base):
            found = _INTERPRETERS.get(imports.base)
            return found[3] if found else frozenset()
    return frozenset()


def interpreter(root: Path) -> str:
    """The Python a worker rooted in ``root`` runs: the base environment's in a worktree that
    has one, else this interpreter."""
    where = _resolved(str(root))
    for imports in _ACTIVE:
        if where is not None and where.is_relative_to(imports.base):
            found = _INTERPRETERS.get(imports.base)
            return found[0] if found else sys.executable
    return sys.executable


@contextmanager
def isolated(head: Path, base: Path) -> Iterator[BaseImports]:
    """While inside, workers rooted in the worktree ``base`` of the repository ``head`` get
    the base revision's import paths and check what they imported."""
    head_path = _resolved(str(head)) or head
    base_path = _resolved(str(base)) or base
    paths = []
    for directory in import_dirs(head_path):
        mapped = base_path / directory.relative_to(head_path)
        if mapped.is_dir():
            paths.append(mapped)
    names = sorted(project_names(head_path))
    for name in names:  # installed without -e: the worktree's copy, where the base has one
        if _holder(name, paths) is None:
            holder = _holder(name, [base_path / "src", base_path])
            if holder is not None:
                paths.append(holder)
    folder = Path(tempfile.mkdtemp(prefix="perf-gate-imports-"))
    imports = BaseImports(head_path, base_path, tuple(paths), folder / "foreign.txt", tuple(names))
    _ACTIVE.append(imports)
    try:
        yield imports
    finally:
        _ACTIVE.remove(imports)
        _INTERPRETERS.pop(imports.base, None)
        shutil.rmtree(folder, ignore_errors=True)


def worker_environment(root: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` for a worker rooted in ``root``: a base worker's when ``root`` lies in an
    active worktree, else ``env`` without the check's setting."""
    env.pop(ENV, None)
    where = _resolved(str(root))
    for imports in _ACTIVE:
        if where is not None and where.is_relative_to(imports.base):
            return imports.environment(env)
    return env


def foreign_modules(
    head: Path,
    base: Path,
    modules: Mapping[str, object] | None = None,
    names: Iterable[str] = (),
    inherited: Iterable[str] = (),
) -> list[tuple[str, Path]]:
    """(name, file) of the loaded modules that are not the base revision's code, outermost
    first: a file in ``head`` but not in ``base`` (nor in the interpreter's prefixes), or a
    module under one of the project's top-level ``names`` from outside ``base``. perf-gate's
    own package is the measuring harness of both sides, never the code measured: its modules
    are left out, even where the project is perf-gate's own repository. ``inherited``: the
    head interpreter's package folders a base environment reads (installed packages)."""
    prefixes = _prefixes(inherited)
    raw_prefixes = tuple(str(p) + os.sep for p in prefixes)
    project = set(names)
    found = []
    for name, module in list((sys.modules if modules is None else modules).items()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str):
            continue
        ours = name.split(".")[0] in project
        if not ours and os.path.abspath(file).startswith(raw_prefixes):
            continue
        path = _resolved(file)
        if path is None or path.is_relative_to(base) or path.is_relative_to(HARNESS):
            continue
        if ours or (
            path.is_relative_to(head) and not any(path.is_relative_to(p) for p in prefixes)
        ):
            found.append((name, path))
    return sorted(found, key=lambda item: (item[0].count("."), item[0]))


def refusal(foreign: list[tuple[str, Path]]) -> str:
    """The one line that refuses a paired run whose base worker imported head code."""
    name, path = foreign[0]
    others = f" (and {len(foreign) - 1} more modules)" if len(foreign) > 1 else ""
    return (
        f"a worker of the base revision imported {name} from {path}{others}, not from the base "
        "revision's worktree, so the paired timings would compare the head's code with itself; "
        "perf-gate maps the directories the project is imported from into the worktree, and "
        f"{name} comes through a path it cannot map: give each package a directory of its own "
        "name (a src/ or flat layout) and install it with pip install -e ., or compare with "
        "the stored baseline (--mode stored, --perf-gate-mode stored)"
    )


def check_worker() -> str | None:
    """In a base worker (its environment has ``ENV``): the refusal when head code was loaded,
    appended to the parent's report file too; None otherwise."""
    raw = os.environ.get(ENV)
    if not raw:
        return None
    try:
        setting = json.loads(raw)
        head, base, report = (Path(setting[key]) for key in ("head", "base", "report"))
        names = [str(name) for name in setting.get("names", [])]
        inherited = [str(folder) for folder in setting.get("prefixes", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    foreign = foreign_modules(head, base, names=names, inherited=inherited)
    if not foreign:
        return None
    message = refusal(foreign)
    try:
        with report.open("a", encoding="utf-8") as handle:
            handle.write(message + "\n")
    except OSError:
        pass
    return message
