"""The base revision's own Python environment, for a paired run whose dependencies changed.

A pull request that upgrades a runtime (``onnxruntime==1.31.0`` -> ``1.32.0``) would otherwise
be measured with the new packages on both sides. ``build`` makes a virtual environment with
``uv`` (same interpreter, so the same Python version and ABI) that holds only the base
revision's versions of the packages that differ (``--no-deps``) and reads this interpreter's
packages after its own (a ``.pth`` line that adds this interpreter's site folders, so their
own ``.pth`` files and editable installs work): every other package is the very one the head
side runs, and nothing large (torch) is installed twice. What the installed packages require
is then checked inside the new environment (``importlib.metadata`` and ``packaging``); a
requirement no visible package meets is installed the same way, up to three passes.

Environments are cached under ``<report_dir>/cache/base-envs/<key>`` (or
``$PERF_GATE_BASE_ENV_CACHE/<key>``: the action's, kept by actions/cache), the key a hash of the
interpreter, its package folders, uv's version and the requirements installed: a later run of
the same upgrade reuses it (seconds to build cold from uv's cache, nothing warm), and a CI
cache of the report folder's ``cache`` keeps it between jobs. It is built in a folder of its
own and renamed into place once complete; the 3 most recently used are kept.

uv reads its own settings (``UV_INDEX_URL``, ``UV_FIND_LINKS``, ``UV_OFFLINE``, ``uv.toml``),
so a private index or a wheelhouse works as it does for the project's own installs. Anything
that stops the build (no uv, no network for a package, an sdist that fails) raises
``Unavailable`` with one line; the caller falls back to this interpreter's packages and says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import site
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

CACHE_ENV = "PERF_GATE_BASE_ENV_CACHE"  # where environments are kept (the action sets it)
INHERIT_FILE = "_perf_gate_inherit.pth"
READY_FILE = "perf-gate-ready.json"
KEEP = 3
BUILD_TIMEOUT = 900.0
QUERY_TIMEOUT = 120.0

# Run by an environment's interpreter: its Python and every visible distribution's version.
_QUERY = """
import json, platform, re, sys
from importlib import metadata
found = {}
for dist in metadata.distributions():
    name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
    if name and name not in found:
        found[name] = dist.version
print(json.dumps({"python": platform.python_version(), "executable": sys.executable,
                  "packages": found}))
"""

# Run by the new environment's interpreter: requirements of the packages installed in its own
# folder that no visible distribution meets (markers evaluated there).
_UNMET = """
import json, sys
from importlib import metadata
try:
    from packaging.requirements import Requirement
except ImportError:
    print("[]"); sys.exit(0)
own = sys.argv[1]
unmet = []
for dist in metadata.distributions(path=[own]):
    for text in dist.requires or ():
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            version = None
        if version is None or (req.specifier and not req.specifier.contains(version, True)):
            unmet.append(str(req))
print(json.dumps(sorted(set(unmet))))
"""


class Unavailable(Exception):
    """The base environment could not be built or used; ``message`` says why in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class BaseEnvironment:
    """An interpreter for the base revision's workers."""

    python: str
    origin: str  # "built" (now), "cached" (an earlier run's), "given" (--base-env PATH)
    installed: tuple[str, ...] = ()  # the requirements installed over this interpreter's
    seconds: float = 0.0  # time to build it (0 when cached or given)
    inherited: tuple[str, ...] = field(default=())  # this interpreter's package folders
    site: str | None = None  # its own package folder (a built environment's)

    @property
    def modules(self) -> tuple[str, ...]:
        """The top-level modules its own folder holds (what it has that this interpreter's
        packages would otherwise provide)."""
        return top_level_modules(Path(self.site)) if self.site else ()

    def describe(self) -> str:
        """A few words on where the base side ran, for notes and progress lines."""
        if self.origin == "given":
            return f"the given interpreter {self.python}"
        how = "cached" if self.origin == "cached" else f"built by uv in {self.seconds:.1f} s"
        return f"its own environment ({how}: {', '.join(self.installed)})"


def cache_folder(report_dir: Path) -> Path:
    """Where environments are kept: ``PERF_GATE_BASE_ENV_CACHE``, else the report folder's
    ``cache/base-envs``."""
    where = os.environ.get(CACHE_ENV)
    return Path(where).expanduser() if where else report_dir / "cache" / "base-envs"


def top_level_modules(folder: Path) -> tuple[str, ...]:
    """The importable top-level names in a package folder: packages, modules, extensions."""
    names = set()
    try:
        entries = list(folder.iterdir())
    except OSError:
        return ()
    for entry in entries:
        name = entry.name
        if name.endswith((".dist-info", ".egg-info", ".pth")) or name == "__pycache__":
            continue
        if entry.is_dir():
            names.add(name)
        elif name.endswith((".py", ".so", ".pyd")):
            names.add(name.split(".")[0])
    return tuple(sorted(names))


def inherited_folders() -> tuple[str, ...]:
    """This interpreter's package folders (a virtualenv's site-packages, or the system's)."""
    folders = [*site.getsitepackages()]
    if site.ENABLE_USER_SITE and site.getusersitepackages():
        folders.append(site.getusersitepackages())
    return tuple(f for f in dict.fromkeys(folders) if os.path.isdir(f))


def uv_binary() -> str:
    """uv's executable: the ``uv`` package's, else one on PATH."""
    try:
        import uv  # type: ignore[import-not-found,unused-ignore]

        found: str | None = uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
    if not found:
        raise Unavailable("uv is not installed (pip install uv)")
    return found


def _uv_version(uv: str) -> str:
    completed = _run([uv, "--version"], 60.0)
    return completed.strip()


def cache_key(specs: Iterable[str], uv_version: str, inherited: Iterable[str]) -> str:
    """The cache's name for an environment of ``specs`` over this interpreter."""
    payload = {
        "python": sys.version,
        "executable": os.path.realpath(sys.executable),
        "prefix": sys.prefix,
        "inherited": list(inherited),
        "uv": uv_version,
        "specs": sorted(specs),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def _last_line(text: str) -> str:
    """A failed command's cause in one line: its error line and the line that explains it
    (uv: ``error: No solution found ...`` then ``cause: Because ...``), else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.lower().startswith(("error", "×")):
            cause = lines[index + 1 : index + 2]
            parts = [line.lstrip("× ").removeprefix("error:").strip().rstrip(":")]
            parts += [c.removeprefix("cause:").lstrip("╰─▶ ").strip() for c in cause]
            return ": ".join(parts)[:400]
    return (lines or ["no output"])[-1][:400]


def _run(
    command: list[str], timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None
) -> str:
    """stdout of ``command``; Unavailable with its last error line when it fails."""
    try:
        completed = subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{Path(command[0]).name} ran past {timeout:.0f}s") from None
    except OSError as exc:
        raise Unavailable(f"{command[0]}: {exc.strerror or exc}") from None
    if completed.returncode != 0:
        raise Unavailable(_last_line(completed.stderr + "\n" + completed.stdout))
    return completed.stdout


def _python_of(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _site_of(python: Path) -> str:
    out = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], 60)
    return out.strip()


def _install(uv: str, python: Path, specs: list[str], deadline: float) -> None:
    command = [uv, "pip", "install", "--python", str(python), "--no-deps", *specs]
    _run(command, max(deadline - time.monotonic(), 1.0), env=_uv_env())


def _uv_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)  # --python names the environment; an active one must not
    env.setdefault("UV_NO_PROGRESS", "1")
    return env


def _prune(cache: Path, keep: int = KEEP) -> None:
    """Keep the ``keep`` most recently used environments (and no stale partial folder)."""
    ready = []
    for entry in cache.iterdir():
        marker = entry / READY_FILE
        if marker.is_file():
            ready.append((marker.stat().st_mtime, entry))
        elif ".partial-" in entry.name and time.time() - entry.stat().st_mtime > BUILD_TIMEOUT:
            shutil.rmtree(entry, ignore_errors=True)
    for _, entry in sorted(ready, reverse=True)[keep:]:
        shutil.rmtree(entry, ignore_errors=True)


def build(
    specs: list[str],
    cache: Path,
    progress: Callable[[str], None] = lambda message: None,
    timeout: float = BUILD_TIMEOUT,
) -> BaseEnvironment:
    """The environment of ``specs`` over this interpreter's packages, from the cache or built
    now. Raises Unavailable (one line) when it cannot be built."""
    uv = uv_binary()
    inherited = inherited_folders()
    key = cache_key(specs, _uv_version(uv), inherited)
    final = cache / key
    if (final / READY_FILE).is_file() and _python_of(final).exists():
        os.utime(final / READY_FILE)  # most recently used
        python = _python_of(final)
        installed = json.loads((final / READY_FILE).read_text(encoding="utf-8"))
        return BaseEnvironment(
            str(python), "cached", tuple(installed), inherited=inherited, site=_site_of(python)
        )
    if final.exists():  # incomplete, or its interpreter is gone (a cache from another runner)
        shutil.rmtree(final, ignore_errors=True)
    started = time.monotonic()
    deadline = started + timeout
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f"{key}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    progress(f"building the base revision's environment with uv ({', '.join(specs)})")
    try:
        _run(
            [
                uv,
                "venv",
                "--quiet",
                "--python",
                sys.executable,
                "--no-python-downloads",
                str(partial),
            ],
            timeout,
            env=_uv_env(),
        )
        python = _python_of(partial)
        own = _site_of(python)
        lines = "".join(f"import site; site.addsitedir({f!r})\n" for f in inherited)
        Path(own, INHERIT_FILE).write_text(lines, encoding="utf-8")
        _install(uv, python, specs, deadline)
        installed = list(specs)
        for _ in range(3):
            unmet = json.loads(_run([str(python), "-c", _UNMET, own], QUERY_TIMEOUT))
            if not unmet:
                break
            _install(uv, python, unmet, deadline)
            installed += unmet
        else:
            raise Unavailable(f"requirements still unmet after three passes: {', '.join(unmet)}")
        (partial / READY_FILE).write_text(json.dumps(installed), encoding="utf-8")
        try:
            partial.rename(final)
        except OSError:  # another run finished the same environment first
            if not (final / READY_FILE).is_file():
                raise
            shutil.rmtree(partial, ignore_errors=True)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _prune(cache)
    seconds = time.monotonic() - started
    python = _python_of(final)
    return BaseEnvironment(
        str(python), "built", tuple(installed), seconds, inherited=inherited, site=_site_of(python)
    )


def given(path: str) -> BaseEnvironment:
    """``--base-env PATH`` / ``policy.base_environment: PATH``: an interpreter, or a virtual
    environment's folder. Raises Unavailable when it is neither or cannot run perf-gate's
    worker (perf-gate must be installed there too)."""
    where = Path(path).expanduser()
    python = _python_of(where) if where.is_dir() else where
    if not python.is_file():
        raise Unavailable(f"{path}: no Python interpreter there (give a python file or a venv)")
    try:
        # from a folder of its own: the working directory (a checkout of perf-gate) must not
        # make the package importable
        _run(
            [str(python), "-c", "import gate.measure.worker.main"],
            QUERY_TIMEOUT,
            cwd=Path(tempfile.gettempdir()),
        )
    except Unavailable as exc:
        raise Unavailable(
            f"{python} cannot import perf-gate's worker ({exc.message}): install perf-gate "
            "in that environment too"
        ) from None
    return BaseEnvironment(str(python), "given")


def query(python: str, first: str | None = None) -> dict[str, object]:
    """{python, executable, packages: {name: version}} as ``python`` sees them, with ``first``
    before ``PYTHONPATH`` as base workers have it; raises Unavailable when it cannot run."""
    env = dict(os.environ)
    if first:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [first, env.get("PYTHONPATH")]))
    data = json.loads(_run([python, "-c", _QUERY], QUERY_TIMEOUT, env=env))
    if not isinstance(data, dict):
        raise Unavailable(f"{python}: no answer to the package query")
    return data


def fingerprint(packages: dict[str, str]) -> str:
    """A short hash of an environment's distributions and versions (each side's, compared)."""
    text = "\n".join(f"{name}=={version}" for name, version in sorted(packages.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
