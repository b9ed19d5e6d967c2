"""The baseline store: which baseline a run uses, and pull / promote / status / history on DVC.

A baseline is ``<dir>/<name>@<key>.json`` (``baselines/main@3f2a9b1c0d4e.json``): the key comes
from the environment fingerprint (OS, CPU model, accelerator), the config's ``baseline_key`` or
``--baseline-key``, so each kind of runner compares with its own. The file's content lives in the
DVC cache and remote; git holds its pointer (``.json.dvc``). A bounded history of summaries sits
beside it (``<name>@<key>.history.json``, also in DVC).

Promotion never touches the live files until everything else has succeeded: the new baseline
and history are written to a staging folder, ``dvc add``-ed and ``dvc push``-ed there, and only
then copied over the live files and pointers with atomic renames. A promote killed at any point
before that leaves the old baseline, history and pointers as they were.

Only ``run --save`` (``save``), ``promote`` and ``pull`` write a baseline, all under one lock:
the DVC repository's ``.dvc/tmp/perf-gate-promote.lock`` (``flock``, freed by the kernel when a
process dies; outside a DVC repository, the baselines folder itself is locked). ``save`` writes
only over the baseline its run read, so of two ``run --save`` at once the second refuses. Every
other writer (``run --out``, ``merge -o``) refuses a path in the baselines store
(``refuse_baseline_target``).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from gate.config import GateConfig
from gate.core.types import RunRecord
from gate.errors import BaselineError
from gate.measure.environment import environment_key, fingerprint, git_info
from gate.store import history as hist
from gate.store.changes import drifts, recent_changes
from gate.store.dvc import Dvc, bytes_md5, file_md5, find_repo, pointer_of, read_pointer
from gate.store.git import Git
from gate.store.records import (
    FileState,
    baseline_bytes,
    file_state,
    read_limited,
    read_record,
    remove_stale_temporaries,
    write_baseline,
    write_bytes_atomic,
)

STAGING = ".promote"
PULL_STAGING = ".pull"  # where `baseline pull` has DVC check files out before renaming them
PULL_FIX = "restore the promoted baseline with `perf-gate baseline pull --force`"
LOCK_NAME = "perf-gate-promote.lock"
LOCK_TIMEOUT = 300.0
PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------- which baseline a run uses


def resolve_key(
    config: GateConfig, override: str | None, record_key: str | None = None
) -> str | None:
    """The environment key in the baseline's name, or None when keying is off (``none``).

    ``--baseline-key`` beats the config's ``baseline_key``; ``auto`` takes the key of the record
    being promoted, else of this machine's fingerprint.
    """
    setting = override or config.baseline_key
    if setting == "none":
        return None
    if setting == "auto":
        return record_key or environment_key(fingerprint(config.measure.threads))
    return setting


def keyed_path(base: Path, key: str | None, name: str | None = None) -> Path:
    """``baselines/main.json`` -> ``baselines/<name>@<key>.json`` (un-keyed when key is None)."""
    stem = name or base.stem
    suffix = base.suffix or ".json"
    return base.with_name(f"{stem}@{key}{suffix}" if key else f"{stem}{suffix}")


def history_path(baseline: Path) -> Path:
    return baseline.with_name(f"{baseline.stem}.history.json")


def _known(path: Path) -> bool:
    # lexists: a dangling symlink (DVC's symlink cache after a gc) is a baseline that is known
    # but missing, and reading it says so; exists() would fall back to another file.
    return os.path.lexists(path) or pointer_of(path).exists()


def _explicit_key(config: GateConfig, override: str | None) -> bool:
    return bool(override) or config.baseline_key not in ("auto", "none")


def locate(config: GateConfig, override: str | None = None, name: str | None = None) -> Path:
    """The baseline file a run compares with and ``--save`` writes.

    This environment's keyed file when it or its pointer exists; else the un-keyed file (the
    layout before keys, and what ``--save`` writes by default); a new keyed file only when a key
    was chosen explicitly. Promotion always writes the keyed file.
    """
    key = resolve_key(config, override)
    keyed = keyed_path(config.baseline, key, name)
    legacy = keyed_path(config.baseline, None, name)
    if key is None or _known(keyed):
        return keyed
    if _known(legacy) or not _explicit_key(config, override):
        return legacy
    return keyed


def check_local(path: Path, *, save: bool) -> tuple[str, ...]:
    """Notes on the local copy of a DVC-tracked baseline; raises when it was never pulled.

    A pointer without its file would make every result ``new`` and the gate pass silently.
    """
    pointer_file = pointer_of(path)
    if not pointer_file.exists():
        return ()
    pointer = read_pointer(pointer_file)
    if not path.exists():
        if save:
            return ()
        raise BaselineError(
            f"{path}: tracked by DVC ({pointer_file.name}) but not pulled; run "
            "`perf-gate baseline pull` first",
            slug="baseline-not-pulled",
        )
    local = file_md5(path, fix=PULL_FIX)
    if local == pointer.md5:
        return ()
    return (
        f"{path.name} differs from its DVC pointer (md5 {local[:8]}, pointer {pointer.md5[:8]}): "
        "compared with the local file; `perf-gate baseline pull --force` restores the promoted one",
    )


def refuse_pull_request_save() -> None:
    """A pull-request run never writes the baseline. Raises BaselineError on one."""
    if os.environ.get("GITHUB_EVENT_NAME") in PULL_REQUEST_EVENTS or os.environ.get(
        "GITHUB_HEAD_REF"
    ):
        raise BaselineError(
            "this is a pull-request run: it never writes the baseline; drop --save, and promote "
            "from the default branch with `perf-gate baseline promote`",
            slug="baseline-branch",
        )


# ---------------------------------------------------------------- promote


@dataclass(frozen=True)
class Promoted:
    path: Path
    history: Path
    key: str | None
    md5: str
    entries: int
    notes: tuple[str, ...] = ()
    # metrics whose level moved beyond policy.drift over the history (store/changes.py)
    drifts: tuple[str, ...] = ()
    # change points whose new level began at one of the newest promotions
    changes: tuple[str, ...] = ()


def _github_default_branch() -> str | None:
    event = os.environ.get("GITHUB_EVENT_PATH")
    if not event:
        return None
    try:
        data = json.loads(Path(event).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    repository = data.get("repository") if isinstance(data, dict) else None
    branch = repository.get("default_branch") if isinstance(repository, dict) else None
    return branch if isinstance(branch, str) and branch else None


def check_branch(git: Git, default_branch: str | None) -> None:
    """Promotion happens only on the default branch. Raises BaselineError naming why not."""
    current = git.current_branch()
    default = default_branch or _github_default_branch() or git.default_branch()
    if default is None:
        raise BaselineError(
            "cannot tell the default branch (no origin/HEAD, no single main/master branch); "
            "pass --default-branch NAME, or --force",
            slug="baseline-branch",
        )
    if current != default:
        where = f"on branch {current!r}" if current else "on a detached HEAD"
        raise BaselineError(
            f"refusing to promote {where}: baselines are promoted only from the default branch "
            f"{default!r}, so that a change under review never becomes its own baseline; pass "
            "--force to promote anyway",
            slug="baseline-branch",
        )


@contextmanager
def promote_lock(
    repo: Path,
    timeout: float = LOCK_TIMEOUT,
    progress: Callable[[str], None] = lambda message: None,
) -> Iterator[None]:
    """Hold the repository's baseline lock (promote, ``run --save``, pull); waits up to
    ``timeout`` seconds for another holder."""
    lock = repo / ".dvc" / "tmp" / LOCK_NAME
    lock.parent.mkdir(parents=True, exist_ok=True)
    with _flock(
        os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644), lock, timeout, progress
    ):
        yield


@contextmanager
def baseline_lock(
    baseline: Path,
    timeout: float = LOCK_TIMEOUT,
    progress: Callable[[str], None] = lambda message: None,
) -> Iterator[None]:
    """The lock every writer of ``baseline`` holds: its DVC repository's promote lock, else
    (no DVC) a lock on the baselines folder itself, which creates no file."""
    repo = find_repo(baseline.parent)
    if repo is not None:
        with promote_lock(repo, timeout, progress):
            yield
        return
    folder = baseline.parent
    folder.mkdir(parents=True, exist_ok=True)
    with _flock(os.open(folder, os.O_RDONLY | os.O_CLOEXEC), folder, timeout, progress):
        yield


@contextmanager
def _flock(
    handle: int, lock: Path, timeout: float, progress: Callable[[str], None]
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the open ``handle`` (closed at the end, which frees it;
    so does the kernel when the process dies: no stale lock)."""
    try:
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting:
                    progress(
                        f"waiting for the baseline lock {lock} (another promote, save or pull)"
                    )
                    waiting = True
                if time.monotonic() > deadline:
                    raise BaselineError(
                        f"{lock}: another perf-gate process (a promote, a `run --save` or a "
                        f"pull) has held the baseline lock for over {timeout:.0f} s; wait for it, "
                        "or check for a hung perf-gate process",
                        slug="baseline-lock",
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(handle)


def save(
    path: Path,
    record: RunRecord,
    read_state: FileState,
    *,
    results: Path,
    timeout: float = LOCK_TIMEOUT,
    progress: Callable[[str], None] = lambda message: None,
) -> None:
    """``run --save``: write ``record`` as the baseline at ``path``, atomically, under the
    baseline lock, and only over the file the run read (``read_state``, from ``file_state``
    before it was read).

    Raises BaselineError when the baseline changed since (another ``run --save``, a promote or
    a pull got there first: this run was compared with the one it replaced), when the lock is
    held too long, or when the file cannot be written.
    """
    with baseline_lock(path, timeout, progress):
        if file_state(path) != read_state:
            raise BaselineError(
                f"{path}: not saved: the baseline changed while this run measured (another "
                "`perf-gate run --save`, a promote or a pull wrote it first), and this run was "
                f"compared with the one before; its record is in {results}: run again with "
                "--save to make it the baseline",
                slug="baseline-lock",
            )
        remove_stale_temporaries(path)
        write_baseline(path, record)


# ---------------------------------------------------------------- writers other than --save


def refuse_baseline_target(
    out: Path,
    option: str,
    *,
    baselines: list[Path],
    root: Path,
    report_dir: Path,
) -> None:
    """Raise BaselineError when ``out``, a file a command other than ``run --save`` and
    ``promote`` is about to write (``run --out``, ``merge -o``), is one of ``baselines``, lies in
    their store (the folder of the first, when it is a folder of its own, else the files named
    after it there), is tracked by DVC, or resolves to any of these through symlinks."""
    reason = _baseline_target(out.resolve(), baselines, root.resolve(), report_dir.resolve())
    if reason is None:
        return
    if os.path.realpath(out) != os.path.abspath(out):
        reason += " (through a symlink)"
    raise BaselineError(
        f"{option} {out}: {reason}; only `perf-gate run --save` and `perf-gate baseline promote` "
        f"write baselines: use one of them, or pass another {option} path (e.g. "
        ".perf-gate/results.json)",
        slug="baseline-write",
    )


def _baseline_target(
    target: Path, baselines: list[Path], root: Path, report_dir: Path
) -> str | None:
    for baseline in baselines:
        if target == baseline.resolve() or _same_file(target, baseline):
            return f"is the baseline {baseline}"
    first = baselines[0]
    store = first.parent.resolve()
    stem = first.stem
    if target.parent == store and target.name.startswith((f"{stem}@", f"{stem}.")):
        return f"is a file of the baseline store in {first.parent}"
    # A folder of its own, not the project's root nor one holding the reports: all of it.
    shared = store in (root, *root.parents, report_dir, *report_dir.parents)
    if not shared and (target == store or store in target.parents):
        return f"is in the baselines folder {first.parent}"
    if target.name.endswith(".dvc"):
        return "is a DVC pointer"
    if pointer_of(target).exists():
        return f"is tracked by DVC ({pointer_of(target).name})"
    return None


def _same_file(target: Path, baseline: Path) -> bool:
    try:
        return os.path.samefile(target, baseline)
    except OSError:
        return False


def _read_history(path: Path, limit: int, dvc: Dvc) -> hist.History:
    """The current history, pulled first when its pointer names content not present here."""
    pointer_file = pointer_of(path)
    if pointer_file.exists():
        pointer = read_pointer(pointer_file)
        if not path.exists():
            dvc.pull(pointer_file)
        if file_md5(path) != pointer.md5:
            raise BaselineError(
                f"{path}: differs from its DVC pointer; restore it with "
                "`perf-gate baseline pull --force` before promoting, so no history is lost",
                slug="baseline-local-changes",
            )
    if not path.exists():
        return hist.History(limit=limit)
    return load_history(path)


def load_history(path: Path) -> hist.History:
    """Read and validate a history file. Raises BaselineError (missing, damaged)."""
    fix = "restore it with `perf-gate baseline pull --force`"
    try:
        data = json.loads(read_limited(path, fix=fix))
    except FileNotFoundError:
        raise BaselineError(f"{path}: file not found", slug="baseline-missing") from None
    except (OSError, ValueError) as exc:
        raise BaselineError(
            f"{path}: not valid JSON ({exc}); restore it with `perf-gate baseline pull --force`",
            slug="baseline-corrupt",
        ) from None
    return hist.from_dict(data, path)


def _history_bytes(history: hist.History) -> bytes:
    return (json.dumps(hist.to_dict(history), separators=(",", ":")) + "\n").encode("utf-8")


def _ignore(folder: Path, names: list[str]) -> None:
    """Add ``/name`` lines to the folder's .gitignore (as ``dvc add`` would), atomically."""
    gitignore = folder / ".gitignore"
    lines = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.exists() else []
    missing = [f"/{n}" for n in names if f"/{n}" not in lines]
    if missing:
        write_bytes_atomic(gitignore, ("\n".join([*lines, *missing]) + "\n").encode("utf-8"))


def promote(
    config: GateConfig,
    record_path: Path,
    *,
    dvc: Dvc,
    key_override: str | None = None,
    name: str | None = None,
    force: bool = False,
    default_branch: str | None = None,
    clock: Callable[[], str] = utc_now,
    progress: Callable[[str], None] = lambda message: None,
) -> Promoted:
    """Make ``record_path`` the baseline of its environment: stage, ``dvc add``, ``dvc push``,
    then replace the live files and pointers atomically and add it to the history.

    Raises BaselineError: not the default branch (unless ``force``), an incomplete or damaged
    record, no DVC, no repository, no remote, a lock held too long.
    """
    dvc.executable_or_raise("promote")
    refuse_pull_request_save()  # even with --force: a change under review never promotes
    if not force:
        check_branch(Git(config.root), default_branch)
    record = read_record(record_path)
    if record.errors:
        names = ", ".join(e.benchmark for e in record.errors)
        raise BaselineError(
            f"{record_path}: not promoted because some benchmarks failed ({names}); fix or drop "
            "them, run again, then promote",
            slug="baseline-incomplete",
        )
    repo = find_repo(config.root)
    if repo is None:
        raise BaselineError(
            f"{config.root}: not inside a DVC repository; run `dvc init` at the repository root "
            "and add a remote with `dvc remote add -d <name> <url>`",
            slug="dvc-no-repo",
        )
    key = resolve_key(config, key_override, _record_key(record))
    target = keyed_path(config.baseline, key, name)
    history_file = history_path(target)
    notes = _record_notes(record, git_info(config.root).commit)
    with promote_lock(repo, progress=progress):
        staging = target.parent / STAGING
        shutil.rmtree(staging, ignore_errors=True)  # left by an interrupted promote
        history = _read_history(history_file, config.baseline_history, dvc)
        entry = hist.summarize(record, key=key or "", promoted=clock())
        updated = hist.add(history, entry, config.baseline_history)
        payloads = {target: baseline_bytes(record), history_file: _history_bytes(updated)}
        staged = {path: staging / path.name for path in payloads}
        for path, payload in payloads.items():
            write_bytes_atomic(staged[path], payload)
        progress(f"dvc add + push {target.name} and {history_file.name}")
        dvc.add(*staged.values())
        dvc.push(*(pointer_of(p) for p in staged.values()))
        pointers = {path: _checked_pointer(staged[path], payloads[path]) for path in payloads}
        remove_stale_temporaries(target.parent / ".gitignore")
        _ignore(target.parent, [p.name for p in payloads])
        for path, payload in payloads.items():  # the commit point: renames only
            for written in (path, pointer_of(path)):
                remove_stale_temporaries(written)  # of writers killed before their rename
            write_bytes_atomic(path, payload)
            write_bytes_atomic(pointer_of(path), pointers[path])
        shutil.rmtree(staging, ignore_errors=True)
    return Promoted(
        path=target,
        history=history_file,
        key=key,
        md5=file_md5(target),
        entries=len(updated.entries),
        notes=notes,
        drifts=tuple(d.describe() for d in drifts(updated, config.policy.drift)),
        changes=tuple(c.describe() for c in recent_changes(updated)),
    )


def _record_key(record: RunRecord) -> str | None:
    key = record.environment.get("key")
    return key if isinstance(key, str) and key else None


def _record_notes(record: RunRecord, head: str | None) -> tuple[str, ...]:
    if record.git.commit and head and record.git.commit != head:
        return (f"the record was measured at {record.git.commit[:12]}, not at HEAD {head[:12]}",)
    return ()


def _checked_pointer(staged: Path, payload: bytes) -> bytes:
    """The staged pointer's bytes, after checking that it names exactly ``payload``."""
    pointer = read_pointer(pointer_of(staged))
    expected = bytes_md5(payload)
    if pointer.md5 != expected:
        raise BaselineError(
            f"{pointer.path}: dvc recorded md5 {pointer.md5}, but the staged file has {expected}; "
            "the live baseline was left unchanged",
            slug="baseline-checksum",
        )
    return pointer.path.read_bytes()


# ---------------------------------------------------------------- status and history


@dataclass(frozen=True)
class Status:
    path: Path
    key: str | None
    pointer: str  # matches | differs | not pulled | not tracked | missing
    record: RunRecord | None
    history_entries: int | None
    staging_left: bool
    notes: tuple[str, ...] = field(default_factory=tuple)


def status(config: GateConfig, override: str | None = None, name: str | None = None) -> Status:
    """Which baseline a run here would use and whether its local copy matches its pointer."""
    key = resolve_key(config, override)
    path = locate(config, override, name)
    pointer_file = pointer_of(path)
    if pointer_file.exists():
        pointer = read_pointer(pointer_file)
        if not path.exists():
            state = "not pulled"
        else:
            state = "matches" if file_md5(path, fix=PULL_FIX) == pointer.md5 else "differs"
    else:
        state = "not tracked" if path.exists() else "missing"
    record = read_record(path) if path.exists() else None
    history_file = history_path(path)
    entries = len(load_history(history_file).entries) if history_file.exists() else None
    notes: list[str] = []
    if key and path != keyed_path(config.baseline, key, name):
        notes.append(f"no baseline for this environment (key {key}) yet: using {path.name}")
    return Status(
        path=path,
        key=key,
        pointer=state,
        record=record,
        history_entries=entries,
        staging_left=any((path.parent / n).exists() for n in (STAGING, PULL_STAGING)),
        notes=tuple(notes),
    )


def age(created: str, now: dt.datetime | None = None) -> str:
    """``3 days``, ``5 hours``, ``12 minutes`` since an ISO time; ``unknown`` if unparseable."""
    try:
        then = dt.datetime.fromisoformat(created)
    except ValueError:
        return "unknown"
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.timezone.utc)
    seconds = ((now or dt.datetime.now(dt.timezone.utc)) - then).total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "just now"


def read_history(
    config: GateConfig, override: str | None = None, name: str | None = None
) -> tuple[Path, hist.History]:
    """The history beside the baseline a run here would use. Raises when it was not pulled."""
    path = history_path(locate(config, override, name))
    if not path.exists():
        if pointer_of(path).exists():
            raise BaselineError(
                f"{path}: tracked by DVC but not pulled; run `perf-gate baseline pull`",
                slug="baseline-not-pulled",
            )
        return path, hist.History(limit=config.baseline_history)
    return path, load_history(path)
