"""``perf-gate baseline pull``: fetch this environment's baseline (and its history) from DVC,
verified by md5, never silently replacing a local copy; DVC's failures sharpened into their
causes (a damaged cache object, a deleted remote, an object never pushed)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gate.config import GateConfig
from gate.errors import BaselineError
from gate.store.baseline_store import history_path, keyed_path, resolve_key
from gate.store.dvc import Dvc, Pointer, file_md5, find_repo, pointer_of, read_pointer
from gate.store.records import read_record


@dataclass(frozen=True)
class Pulled:
    path: Path
    fetched: tuple[Path, ...]
    up_to_date: tuple[Path, ...]
    kept: tuple[Path, ...] = ()  # local copies moved aside by --force


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
    this raises; with it, the copy is kept as ``<file>.local``. Raises BaselineError for every
    DVC failure (no repository, no remote, remote unreachable, object missing, checksum).
    """
    dvc.executable_or_raise("pull")
    target = pull_target(config, key_override, name)
    files = [target] + ([history_path(target)] if pointer_of(history_path(target)).exists() else [])
    pointers = [read_pointer(pointer_of(path)) for path in files]
    wanted: list[Pointer] = []
    up_to_date: list[Path] = []
    for pointer in pointers:
        if pointer.out.exists() and file_md5(pointer.out) == pointer.md5:
            up_to_date.append(pointer.out)
        elif pointer.out.exists() and not force:
            raise BaselineError(
                f"{pointer.out}: the local copy differs from {pointer.path.name} (local changes, "
                "e.g. from --save); not replaced. Pass --force to replace it (the local copy is "
                f"kept as {pointer.out.name}.local)",
                slug="baseline-local-changes",
            )
        else:
            wanted.append(pointer)
    if not wanted:
        return Pulled(path=target, fetched=(), up_to_date=tuple(up_to_date))
    repo = find_repo(config.root)
    if repo is None:
        raise BaselineError(
            f"{config.root}: not inside a DVC repository; run `dvc init` at the repository root",
            slug="dvc-no-repo",
        )
    # Looked at before dvc runs: dvc drops a damaged object it finds, and then only says
    # "missing".
    damaged = [p for p in wanted if _damaged(repo / p.cache_object, p.md5)]
    kept = [_set_aside(p.out) for p in wanted if p.out.exists()]
    try:
        dvc.pull(*(p.path for p in wanted))
    except BaselineError as exc:
        _restore(kept)
        raise _explain_pull_failure(exc, wanted, damaged, repo, dvc) from None
    for pointer in wanted:
        _verify(pointer, repo, kept)
    read_record(target)
    return Pulled(
        path=target,
        fetched=tuple(p.out for p in wanted),
        up_to_date=tuple(up_to_date),
        kept=tuple(kept),
    )


def _set_aside(path: Path) -> Path:
    kept = path.with_name(path.name + ".local")
    os.replace(path, kept)
    return kept


def _restore(kept: list[Path]) -> None:
    for path in kept:
        original = path.with_name(path.name.removesuffix(".local"))
        if not original.exists():
            os.replace(path, original)


def _verify(pointer: Pointer, repo: Path, kept: list[Path]) -> None:
    """The pulled file must have the pointer's md5; a damaged one is removed, never used."""
    found = file_md5(pointer.out) if pointer.out.exists() else "nothing"
    if found == pointer.md5:
        return
    pointer.out.unlink(missing_ok=True)
    _restore(kept)
    raise BaselineError(
        f"{pointer.out}: checksum mismatch after dvc pull (md5 {found}, pointer "
        f"{pointer.md5}); the cached object {repo / pointer.cache_object} is damaged: delete it "
        "and pull again",
        slug="baseline-checksum",
    )


def _damaged(cached: Path, md5: str) -> bool:
    return cached.is_file() and file_md5(cached) != md5


def _explain_pull_failure(
    error: BaselineError,
    wanted: list[Pointer],
    damaged: list[Pointer],
    repo: Path,
    dvc: Dvc,
) -> BaselineError:
    """Sharpen dvc's 'missing object' into its cause: a damaged cache object, a deleted remote."""
    if error.slug != "dvc-missing-object":
        return error
    if damaged:
        pointer = damaged[0]
        return BaselineError(
            f"{pointer.out}: checksum mismatch: the cached object "
            f"{repo / pointer.cache_object} was damaged (not the md5 {pointer.md5} it is "
            "named by) and the remote has no good copy; promote the baseline again, or pull "
            "from a remote that has it",
            slug="baseline-checksum",
        )
    name = dvc.default_remote()
    url = dvc.remotes().get(name or "", "")
    if url and "://" not in url:
        location = Path(url) if Path(url).is_absolute() else repo / ".dvc" / url
        if not location.exists():
            return BaselineError(
                f"the DVC remote {name!r} ({url}) does not exist (deleted or not mounted); "
                "restore it or point the remote elsewhere (`dvc remote modify`)",
                slug="dvc-remote",
            )
    missing = ", ".join(f"{p.out.name} (md5 {p.md5})" for p in wanted)
    return BaselineError(
        f"{missing}: not in the DVC cache and not on the remote {name!r}; promote the baseline "
        "again from the default branch, or restore a pointer of a version that was pushed",
        slug="dvc-missing-object",
    )
