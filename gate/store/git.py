"""The git CLI as a class: resolve revisions and check a base revision out in a worktree.

Used by the ``ab`` timing mode: the base revision is measured from a temporary worktree with the
same interpreter and packages. The worktree is removed in ``finally``, whatever the workers did.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gate.errors import GateError


class BaseRevisionUnavailable(GateError):
    """The base revision cannot be checked out; the caller falls back to ``stored`` mode."""

    exit_code = 2
    default_slug = "ab-base"


class Git:
    """``git`` run in ``repo``; every failure raises BaseRevisionUnavailable with its stderr."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            completed = subprocess.run(
                ["git", *args],
                cwd=self.repo,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise BaseRevisionUnavailable(f"cannot run git: {exc}") from exc
        if check and completed.returncode != 0:
            tail = " | ".join(completed.stderr.strip().splitlines()[-2:])
            raise BaseRevisionUnavailable(
                f"git {' '.join(args)} failed with exit code {completed.returncode}: {tail}"
            )
        return completed

    def toplevel(self) -> Path:
        return Path(self._run("rev-parse", "--show-toplevel").stdout.strip())

    def resolve(self, ref: str) -> str:
        """The full commit id of ``ref``. Raises BaseRevisionUnavailable naming the fix."""
        completed = self._run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        if completed.returncode != 0:
            shallow = self._run("rev-parse", "--is-shallow-repository", check=False).stdout.strip()
            hint = (
                "this is a shallow clone: check out with `fetch-depth: 0` (actions/checkout) or "
                "`git fetch --unshallow`"
                if shallow == "true"
                else "fetch it (`git fetch origin <ref>`) or pass another --perf-gate-ab REF"
            )
            raise BaseRevisionUnavailable(
                f"base revision {ref!r} is not in this clone; {hint}", slug="ab-base"
            )
        return completed.stdout.strip()

    def file_at(self, commit: str, path: str) -> str | None:
        """The text of ``path`` (relative to the repository's top) in ``commit``; None where
        it has no such file."""
        completed = self._run("show", f"{commit}:{path}", check=False)
        return completed.stdout if completed.returncode == 0 else None

    def merge_base(self, one: str, other: str) -> str:
        """Their best common ancestor. Raises BaseRevisionUnavailable naming the fix (a
        shallow clone has none)."""
        completed = self._run("merge-base", one, other, check=False)
        if completed.returncode != 0 or not completed.stdout.strip():
            shallow = self._run("rev-parse", "--is-shallow-repository", check=False).stdout.strip()
            why = (
                "this is a shallow clone: check out with `fetch-depth: 0` (actions/checkout)"
                if shallow == "true"
                else "they share no history"
            )
            raise BaseRevisionUnavailable(
                f"no common ancestor of {one[:12]} and {other[:12]}; {why}", slug="ab-base"
            )
        return completed.stdout.strip().splitlines()[0]

    def current_branch(self) -> str | None:
        """The checked-out branch, or None on a detached HEAD (or outside a repository)."""
        completed = self._run("symbolic-ref", "--short", "-q", "HEAD", check=False)
        branch = completed.stdout.strip()
        return branch if completed.returncode == 0 and branch else None

    def default_branch(self) -> str | None:
        """The default branch as this clone knows it: ``origin/HEAD``, else the only one of
        ``main``/``master`` that exists locally; None when it cannot tell."""
        origin = self._run("symbolic-ref", "--short", "-q", "refs/remotes/origin/HEAD", check=False)
        if origin.returncode == 0 and origin.stdout.strip():
            return origin.stdout.strip().removeprefix("origin/")
        present = [
            name
            for name in ("main", "master")
            if self._run("show-ref", "--verify", "-q", f"refs/heads/{name}", check=False).returncode
            == 0
        ]
        return present[0] if len(present) == 1 else None

    def changed_files(self, base: str) -> list[str]:
        """Files that differ between ``base`` and the working tree (committed or not)."""
        return [line for line in self._run("diff", "--name-only", base).stdout.splitlines() if line]

    @contextmanager
    def worktree(self, commit: str) -> Iterator[Path]:
        """A detached worktree of ``commit`` in a temporary directory, removed afterwards."""
        parent = Path(tempfile.mkdtemp(prefix="perf-gate-base-"))
        path = parent / "base"
        self._run("worktree", "add", "--detach", "--force", str(path), commit)
        try:
            yield path
        finally:
            self._run("worktree", "remove", "--force", str(path), check=False)
            shutil.rmtree(parent, ignore_errors=True)
            self._run("worktree", "prune", check=False)
