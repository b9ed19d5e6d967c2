"""The ``dvc`` CLI as a class, and the few facts perf-gate reads from DVC's pointer files.

DVC is an optional extra (``perf-gate[dvc]``), so it is never imported: :class:`Dvc` runs the
``dvc`` command as a subprocess (``DVC_NO_ANALYTICS=1``) and turns its exit codes and stderr into
one-line :class:`BaselineError` messages that name the target and the fix. Reading a ``.dvc``
pointer or hashing a file needs no DVC at all, so ``status``, ``history`` and the gate itself work
without it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gate.errors import BaselineError
from gate.store.records import open_regular, read_limited

INSTALL_HINT = "install it with `pip install 'perf-gate[dvc]'` (or `pip install dvc`)"
# DVC writes pointers in a fixed YAML layout; these two lines are all perf-gate needs from them.
_MD5 = re.compile(r"^\s*-?\s*md5:\s*([0-9a-f]{32}(?:\.dir)?)\s*$", re.MULTILINE)
_PATH = re.compile(r"^\s*-?\s*path:\s*(.+?)\s*$", re.MULTILINE)
# Folders never searched for pointers (tools, caches, virtual environments).
_SKIP_DIRS = frozenset({".git", ".dvc", ".venv", "venv", "node_modules", "__pycache__"})
_MAX_POINTERS = 200
# A pointer is a few lines of YAML.
_MAX_POINTER_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Pointer:
    """A ``.dvc`` file: where it is, the file it tracks and the md5 DVC recorded for it."""

    path: Path
    out: Path
    md5: str

    @property
    def cache_object(self) -> Path:
        """Where DVC 3 keeps the object in the repository's default cache."""
        return Path(".dvc", "cache", "files", "md5", self.md5[:2], self.md5[2:])


def pointer_of(data: Path) -> Path:
    """The pointer ``dvc add`` writes for ``data``: ``baselines/main.json.dvc``."""
    return data.with_name(data.name + ".dvc")


def read_pointer(path: Path) -> Pointer:
    """Parse a single-output ``.dvc`` file. Raises BaselineError when it is unreadable."""
    fix = f"restore it from git (`git checkout -- {path.name}`) or promote the baseline again"
    try:
        text = read_limited(path, limit=_MAX_POINTER_BYTES, fix=fix, slug="dvc-pointer").decode(
            "utf-8"
        )
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(
            f"{path}: cannot read the DVC pointer: {exc}", slug="dvc-pointer"
        ) from exc
    md5 = _MD5.search(text)
    out = _PATH.search(text)
    if md5 is None or out is None:
        raise BaselineError(
            f"{path}: not a DVC pointer with an md5 and a path; restore it from git "
            f"(`git checkout -- {path.name}`) or promote the baseline again",
            slug="dvc-pointer",
        )
    return Pointer(path=path, out=path.parent / out.group(1).strip("'\""), md5=md5.group(1))


def bytes_md5(payload: bytes) -> str:
    """The md5 DVC would record for a file holding ``payload``."""
    return hashlib.md5(payload, usedforsecurity=False).hexdigest()


def file_md5(
    path: Path, fix: str = "perf-gate hashes only regular files: replace it with the file"
) -> str:
    """The md5 of a file's bytes, as DVC 3 records it for a single file.

    Raises BaselineError (its message ending in ``fix``) for what is not a regular file (a FIFO
    would block, /dev/zero never end), OSError as ``open`` does."""
    digest = hashlib.md5(usedforsecurity=False)
    with open_regular(path, fix=fix) as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tracked_files(root: Path, skip: Iterable[Path] = ()) -> dict[str, str]:
    """md5 of every DVC-tracked file under ``root`` (``.dvc`` pointers), by relative path.

    Files are hashed as they are now (what the run used), directories get the pointer's md5, a
    missing output is ``"missing"``. Folders in ``skip`` (the baselines) are left out.
    """
    skipped = {p.resolve() for p in skip}
    found: dict[str, str] = {}
    for directory, names, files in os.walk(root):
        here = Path(directory)
        names[:] = sorted(
            n
            for n in names
            if n not in _SKIP_DIRS
            and not n.startswith(".")
            and f"{n}.dvc" not in files  # a tracked folder: its pointer says enough
            and (here / n).resolve() not in skipped
        )
        for name in sorted(files):
            if not name.endswith(".dvc") or len(found) >= _MAX_POINTERS:
                continue
            try:
                pointer = read_pointer(here / name)
            except BaselineError:
                continue
            key = (
                pointer.out.relative_to(root).as_posix()
                if pointer.out.is_relative_to(root)
                else str(pointer.out)
            )
            if pointer.out.is_file():
                found[key] = file_md5(pointer.out)
            else:
                found[key] = pointer.md5 if pointer.out.is_dir() else "missing"
    return found


def find_repo(start: Path) -> Path | None:
    """The DVC repository containing ``start``: the nearest folder with a ``.dvc`` directory."""
    for folder in (start.resolve(), *start.resolve().parents):
        if (folder / ".dvc").is_dir():
            return folder
    return None


def find_dvc() -> str | None:
    """The ``dvc`` command: on PATH first, else next to this interpreter (an unactivated venv)."""
    on_path = shutil.which("dvc")
    if on_path:
        return on_path
    beside = Path(sys.executable).parent / "dvc"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def _tail(text: str, lines: int = 3) -> str:
    kept = [
        line.strip()
        for line in text.strip().splitlines()
        if line.strip() and "dvc.org/support" not in line and not line.startswith("<https:")
    ]
    return " | ".join(kept[-lines:])


class Dvc:
    """``dvc`` run in ``repo``; every failure raises BaselineError with the command and the fix."""

    def __init__(self, repo: Path, executable: str | None = None, timeout: float = 600.0) -> None:
        self.repo = repo
        self.executable = executable or find_dvc()
        self.timeout = timeout

    def executable_or_raise(self, what: str) -> str:
        """The dvc command. Raises BaselineError saying how to install DVC when it is missing."""
        if self.executable is None:
            raise BaselineError(
                f"perf-gate baseline {what} needs DVC, which is not installed; {INSTALL_HINT}",
                slug="dvc-missing",
            )
        return self.executable

    def run(self, *args: str, what: str = "") -> str:
        """Run ``dvc ARGS``; returns stdout. Raises BaselineError naming the cause and the fix."""
        command = [self.executable_or_raise(what or args[0]), *args]
        # DVC wraps its tables and messages at the terminal's width (COLUMNS, else 80 columns
        # when not a terminal): a remote's long path came back split over three lines.
        env = {**os.environ, "DVC_NO_ANALYTICS": "1", "COLUMNS": "10000"}
        try:
            completed = subprocess.run(
                command,
                cwd=self.repo,
                env=env,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise BaselineError(f"cannot run dvc: {exc}", slug="dvc-failed") from exc
        if completed.returncode != 0:
            raise self._error(args, completed.returncode, completed.stderr + completed.stdout)
        return completed.stdout

    def _error(self, args: tuple[str, ...], code: int, output: str) -> BaselineError:
        shown = "dvc " + " ".join(args)
        lowered = output.lower()
        if "not inside of a dvc repository" in lowered:
            return BaselineError(
                f"{self.repo}: not a DVC repository ({shown}); run `dvc init` at the "
                "repository root and add a remote with `dvc remote add -d <name> <url>`",
                slug="dvc-no-repo",
            )
        if "no remote specified" in lowered or "no default remote set" in lowered:
            return BaselineError(
                f"no DVC remote is configured ({shown}); add one with "
                "`dvc remote add -d <name> <url>` and commit .dvc/config",
                slug="dvc-no-remote",
            )
        if "unable to acquire lock" in lowered:
            return BaselineError(
                f"another DVC command holds the repository lock ({shown}); wait for it to "
                "finish and retry",
                slug="dvc-failed",
            )
        if "missing cache files" in lowered or "neither locally nor on remote" in lowered:
            return BaselineError(
                f"{shown}: the object is neither in the DVC cache nor on the remote; "
                "promote the baseline again from the default branch, or restore the .dvc "
                "pointer of a version that was pushed",
                slug="dvc-missing-object",
            )
        if "unexpected error" in lowered and args and args[0] in ("pull", "push", "fetch"):
            return BaselineError(
                f"{shown}: the DVC remote cannot be reached (exit code {code}): "
                f"{_tail(output, 1)}; check the remote's URL and credentials "
                "(`dvc remote list`)",
                slug="dvc-remote",
            )
        return BaselineError(
            f"{shown} failed with exit code {code}: {_tail(output)}", slug="dvc-failed"
        )

    def add(self, *paths: Path) -> None:
        self.run("add", *(str(p) for p in paths), what="promote")

    def push(self, *targets: Path) -> None:
        self.run("push", *(str(p) for p in targets), what="promote")

    def pull(self, *targets: Path) -> None:
        self.run("pull", *(str(t) for t in targets), what="pull")

    def remotes(self) -> dict[str, str]:
        """Configured remotes, name -> URL (``dvc remote list``)."""
        remotes: dict[str, str] = {}
        # `dvc config --list` rather than `dvc remote list`, whose output is a table.
        for line in self.run("config", "--list", what="commands").splitlines():
            key, equals, value = line.partition("=")
            if equals and key.startswith("remote.") and key.endswith(".url"):
                remotes[key[len("remote.") : -len(".url")]] = value
        return remotes

    def remote_config(self) -> tuple[str | None, dict[str, str]]:
        """The default remote's name (None when none is set) and every remote's URL, from one
        ``dvc config --list`` (DVC resolves relative local paths there)."""
        default: str | None = None
        remotes: dict[str, str] = {}
        for line in self.run("config", "--list", what="commands").splitlines():
            key, equals, value = line.partition("=")
            if not equals:
                continue
            if key == "core.remote":
                default = value.strip() or None
            elif key.startswith("remote.") and key.endswith(".url"):
                remotes[key[len("remote.") : -len(".url")]] = value
        return default, remotes

    def default_remote(self) -> str | None:
        """The default remote's name, or None when none is set."""
        try:
            name = self.run("remote", "default", what="commands").strip()
        except BaselineError:
            return None
        return name or None
