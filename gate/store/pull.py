"""``perf-gate baseline pull``: fetch this environment's baseline (and its history) from DVC,
verified by md5, never silently replacing a local copy; DVC's failures sharpened into their
causes (a damaged cache or remote object, a deleted remote, an object never pushed).

DVC checks the files out into a staging folder (``baselines/.pull/``, copies of the pointers);
only verified files are renamed over the live ones, under the baseline lock, so a pull killed at
any point leaves each file either as it was or as the pointer names it. A local copy replaced by
``--force`` is first copied to a backup that never replaces another (``<file>.local``, then
``<file>.local.2``, ...).
"""

from __future__ import annotations

import itertools
import os
import shutil
import stat
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from gate.config import GateConfig
from gate.errors import BaselineError
from gate.store.baseline_store import (
    PULL_STAGING,
    history_path,
    keyed_path,
    promote_lock,
    resolve_key,
)
from gate.store.dvc import Dvc, Pointer, file_md5, find_repo, pointer_of, read_pointer
from gate.store.records import open_regular, read_record, remove_stale_temporaries


@dataclass(frozen=True)
class Pulled:
    path: Path
    fetched: tuple[Path, ...]
    up_to_date: tuple[Path, ...]
    kept: tuple[Path, ...] = ()  # backups of the local copies --force replaced


def pull_target(config: GateConfig, override: str | None, name: str | None) -> Path:
    """The baseline to pull: this environment's pointer, else the un-keyed one."""
    key = resolve_key(config, override)
    keyed = keyed_path(config.baseline, key, name)
    candidates = [keyed] if key is None else [keyed, keyed_path(config.baseline, None, name)]
    for path in candidates:
        if pointer_of(path).exists():
            return path
    raise BaselineError(
        f"{pointer_of(keyed)}: no baseline has been promoted for this environment"
        f"{f' (key {key})' if key else ''}; promote one on the default branch with "
        "`perf-gate baseline promote` on a runner like this one, or pass --baseline-key",
        slug="baseline-not-promoted",
    )


def pull(
    config: GateConfig,
    *,
    dvc: Dvc,
    key_override: str | None = None,
    name: str | None = None,
    force: bool = False,
) -> Pulled:
    """``dvc pull`` the baseline (and its history) of this environment, verified by md5.

    A local copy that differs from its pointer is never replaced silently: without ``force``
    this raises; with it, the copy is first backed up (``<file>.local``, ``.local.2``, ...).
    Raises BaselineError for every DVC failure (no repository, no remote, remote unreachable,
    object missing, checksum).
    """
    dvc.executable_or_raise("pull")
    target = pull_target(config, key_override, name)
    repo = find_repo(config.root)
    with promote_lock(repo) if repo is not None else nullcontext():
        files = [target] + (
            [history_path(target)] if pointer_of(history_path(target)).exists() else []
        )
        pointers = [read_pointer(pointer_of(path)) for path in files]
        wanted: list[Pointer] = []
        up_to_date: list[Path] = []
        for pointer in pointers:
            special = _special(pointer.out, force)
            if special:
                wanted.append(pointer)  # --force: nothing in it to back up; replaced
            elif pointer.out.exists() and file_md5(pointer.out) == pointer.md5:
                up_to_date.append(pointer.out)
            elif pointer.out.exists() and not force:
                raise BaselineError(
                    f"{pointer.out}: the local copy differs from {pointer.path.name} (local "
                    "changes, e.g. from --save); not replaced. Pass --force to replace it (the "
                    f"local copy is backed up first, as {_backup_name(pointer.out).name} or the "
                    "next free .local.N)",
                    slug="baseline-local-changes",
                )
            else:
                wanted.append(pointer)
        if not wanted:
            return Pulled(path=target, fetched=(), up_to_date=tuple(up_to_date))
        if repo is None:
            raise BaselineError(
                f"{config.root}: not inside a DVC repository; run `dvc init` at the repository "
                "root",
                slug="dvc-no-repo",
            )
        staging = target.parent / PULL_STAGING
        try:
            staged = _fetch(wanted, staging, repo, dvc)
            if target in staged:  # a damaged record is never put in place
                read_record(staged[target])
            kept = [_back_up(p.out) for p in wanted if p.out.is_file()]
            for pointer in wanted:  # the commit point: renames only
                remove_stale_temporaries(pointer.out)
                os.replace(staged[pointer.out], pointer.out)
            _sync_folder(target.parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return Pulled(
        path=target,
        fetched=tuple(p.out for p in wanted),
        up_to_date=tuple(up_to_date),
        kept=tuple(kept),
    )


def _fetch(wanted: list[Pointer], staging: Path, repo: Path, dvc: Dvc) -> dict[Path, Path]:
    """``dvc pull`` copies of the pointers in ``staging``; returns live path -> staged file,
    each verified against its pointer's md5 and fsynced."""
    # Looked at before dvc runs: dvc drops a damaged object it finds (from a local-directory
    # remote too), and then only says "missing".
    damaged = [p for p in wanted if _damaged(repo / p.cache_object, p.md5)]
    remote = _Remote.of(repo, dvc) if any(_needs_remote(p, repo) for p in wanted) else None
    for pointer in wanted:
        if remote is not None and _needs_remote(pointer, repo):
            remote.check(pointer)
    shutil.rmtree(staging, ignore_errors=True)  # left by an interrupted pull
    staging.mkdir(parents=True)
    copies: list[Path] = []
    staged: dict[Path, Path] = {}
    for pointer in wanted:
        copy = staging / pointer.path.name
        shutil.copyfile(pointer.path, copy)
        copies.append(copy)
        staged[pointer.out] = staging / pointer.out.relative_to(pointer.path.parent)
    try:
        dvc.pull(*copies)
    except BaselineError as exc:
        if exc.slug != "dvc-missing-object":
            raise
        remote = remote or _Remote.of(repo, dvc)
        raise _explain_pull_failure(wanted, damaged, repo, remote) from None
    for pointer in wanted:
        _verify(pointer, staged[pointer.out], repo)
    return staged


def _needs_remote(pointer: Pointer, repo: Path) -> bool:
    cached = repo / pointer.cache_object
    return not cached.is_file() or file_md5(cached) != pointer.md5


@dataclass(frozen=True)
class _Remote:
    """The default DVC remote: name, URL and, for a local-directory remote, its folder."""

    name: str | None
    url: str
    folder: Path | None

    @classmethod
    def of(cls, repo: Path, dvc: Dvc) -> _Remote:
        name, urls = dvc.remote_config()
        url = urls.get(name or "", "")
        if not url or "://" in url:
            return cls(name, url, None)
        return cls(name, url, Path(url) if Path(url).is_absolute() else repo / ".dvc" / url)

    def check(self, pointer: Pointer) -> None:
        """Raise BaselineError (checksum) when this remote's copy of the pointer's object is
        damaged; before ``dvc pull``, which would delete it and report it missing."""
        if self.folder is None:
            return
        for candidate in (  # DVC 3's layout, then DVC 2's
            self.folder / "files" / "md5" / pointer.md5[:2] / pointer.md5[2:],
            self.folder / pointer.md5[:2] / pointer.md5[2:],
        ):
            if not candidate.is_file():
                continue
            found = file_md5(candidate)
            if found == pointer.md5:
                return
            raise BaselineError(
                f"{pointer.out}: checksum mismatch: the remote {self.name!r} holds a damaged "
                f"copy ({candidate} has md5 {found}, not the md5 {pointer.md5} it is named by) "
                "and the cache has no good one, so nothing was replaced; promote the baseline "
                "again, or restore the object on the remote",
                slug="baseline-checksum",
            )


def _special(path: Path, force: bool) -> bool:
    """True when the local ``path`` is something other than a regular file that ``force`` may
    replace (a FIFO, a device, a socket); raises BaselineError without ``force``, and for a
    directory, which no rename can replace."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISREG(mode):
        return False
    if stat.S_ISDIR(mode):
        raise BaselineError(
            f"{path}: a directory, not a regular file; move it away, then pull again",
            slug="baseline-local-changes",
        )
    if not force:
        raise BaselineError(
            f"{path}: not a regular file (a FIFO, a device or a socket) where the baseline "
            "belongs; pass --force to replace it with the promoted baseline",
            slug="baseline-local-changes",
        )
    return True


def _backup_name(path: Path, number: int = 1) -> Path:
    return path.with_name(f"{path.name}.local" if number == 1 else f"{path.name}.local.{number}")


def _back_up(path: Path) -> Path:
    """Copy the local ``path`` to the first free ``<file>.local``, ``.local.2``, ...; returns
    it. The copy is complete before it gets its name (temporary file, fsync, link), and a name
    that exists is never replaced."""
    fix = "move it away, then pull again"
    with open_regular(path, fix=fix, slug="baseline-local-changes") as source:
        handle, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
        try:
            with os.fdopen(handle, "wb") as stream:
                os.fchmod(stream.fileno(), 0o644)
                shutil.copyfileobj(source, stream)
                stream.flush()
                os.fsync(stream.fileno())
            for number in itertools.count(1):
                backup = _backup_name(path, number)
                try:
                    os.link(temporary, backup)
                except FileExistsError:
                    continue
                return backup
        finally:
            Path(temporary).unlink(missing_ok=True)
    raise AssertionError("unreachable")  # pragma: no cover - itertools.count never ends


def _sync_folder(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _verify(pointer: Pointer, staged: Path, repo: Path) -> None:
    """The pulled file must have the pointer's md5 (a damaged one is never used); fsynced, so
    that the rename that puts it in place cannot outlive its content."""
    found = file_md5(staged) if staged.exists() else "nothing"
    if found != pointer.md5:
        raise BaselineError(
            f"{pointer.out}: checksum mismatch after dvc pull (md5 {found}, pointer "
            f"{pointer.md5}); the cached object {repo / pointer.cache_object} is damaged: delete "
            "it and pull again",
            slug="baseline-checksum",
        )
    if staged.is_symlink():  # DVC's symlink cache: the object itself is the content
        return
    with staged.open("rb") as stream:
        os.fsync(stream.fileno())


def _damaged(cached: Path, md5: str) -> bool:
    return cached.is_file() and file_md5(cached) != md5


def _explain_pull_failure(
    wanted: list[Pointer],
    damaged: list[Pointer],
    repo: Path,
    remote: _Remote,
) -> BaselineError:
    """Sharpen dvc's 'missing object' into its cause: a damaged cache object, a deleted remote,
    or an object that really is nowhere (only those dvc did not fetch are named)."""
    if damaged:
        pointer = damaged[0]
        return BaselineError(
            f"{pointer.out}: checksum mismatch: the cached object "
            f"{repo / pointer.cache_object} was damaged (not the md5 {pointer.md5} it is "
            "named by) and the remote has no good copy; promote the baseline again, or pull "
            "from a remote that has it",
            slug="baseline-checksum",
        )
    if remote.folder is not None and not remote.folder.exists():
        return BaselineError(
            f"the DVC remote {remote.name!r} ({remote.url}) does not exist (deleted or not "
            "mounted); restore it or point the remote elsewhere (`dvc remote modify`)",
            slug="dvc-remote",
        )
    failed = [p for p in wanted if not (repo / p.cache_object).is_file()] or wanted
    missing = ", ".join(f"{p.out.name} (md5 {p.md5})" for p in failed)
    return BaselineError(
        f"{missing}: not in the DVC cache and not on the remote {remote.name!r}; promote the "
        "baseline again from the default branch, or restore a pointer of a version that was "
        "pushed",
        slug="dvc-missing-object",
    )
