"""The base revision of a paired run: which commit, its worktree while the run lasts, and, when
no baseline is stored, its own probes and evaluation as the run's baseline.

``resolve_mode`` picks the timing mode and the base commit (``--ab REF``, the pull request's
base in CI, else the stored baseline's commit). ``base_checkout`` checks that commit out in a
temporary worktree whose workers import its code. ``base_baseline`` measures what the paired
rounds do not (memory, model size, cold start, accuracy, a ``perf`` test's recorded values) in
that worktree, so a pull request gated without any stored baseline still gets every metric
compared with the code it changes (zero-setup gating, docs/github-action.md). The record it
returns lives for one decision only: it is never written as a baseline.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from gate.config import GateConfig
from gate.core.types import GitInfo, RequestedMode, RunRecord, Sample
from gate.decide.compare import TIMING_FAMILIES
from gate.decide.sequential import BaseRevision, PairedTiming
from gate.diagnose.investigation import NO_BASE, BaseSide
from gate.measure import base_imports
from gate.measure.environment import git_info
from gate.measure.quality import evaluate
from gate.measure.runner import Progress, Runner
from gate.store.dependencies import changes_note, dependency_changes
from gate.store.git import BaseRevisionUnavailable, Git


def resolve_mode(
    config: GateConfig,
    requested: RequestedMode | None,
    base_ref: str | None,
    baseline: RunRecord | None,
) -> tuple[RequestedMode, str | None, list[str]]:
    """(mode, base commit or None, notes): ``stored`` whenever no base revision can be used."""
    mode = requested or config.policy.timing_mode
    if mode == "stored":
        return "stored", None, []
    ref = base_ref or (baseline.git.commit if baseline else None)
    if ref is None:
        note = "no base revision (no baseline commit, no --ab REF): timings compared as stored"
        return "stored", None, [note] if mode != "auto" else []
    git = Git(config.root)
    try:
        commit = git.resolve(ref)
    except BaseRevisionUnavailable as exc:
        return "stored", None, [f"{exc.message}; timings compared as stored instead"]
    head = git_info(config.root)
    if head.commit == commit and not head.dirty:
        return (
            "stored",
            None,
            ["the base revision is the current commit: timings compared as stored"],
        )
    return mode, commit, []


@dataclass
class BaseCheckout:
    """The base revision's checkout while a paired run lasts (``revision`` None: stored)."""

    revision: BaseRevision | None = None
    imports: base_imports.BaseImports | None = None
    no_base: str = NO_BASE  # why there is nothing to profile against
    side: BaseSide | None = None  # what the diagnosis profiles, once the base was measured
    timing: PairedTiming | None = None  # what the paired rounds measured of it


@contextmanager
def base_checkout(
    config: GateConfig, pytest_root: Path | None, commit: str | None, notes: list[str]
) -> Iterator[BaseCheckout]:
    """The base revision in a temporary worktree whose workers import its own code; nothing
    when timings are stored (no commit) or the config's folder is not in that revision. A note
    names the dependencies that differ from it (``store/dependencies.py``): the base side runs
    with this interpreter's packages, so the paired timings cannot show what they do."""
    if commit is None:
        yield BaseCheckout()
        return
    git = Git(config.root)
    top = git.toplevel()
    with git.worktree(commit) as tree, base_imports.isolated(top, tree) as imports:
        revision = BaseRevision(
            commit=commit,
            root=tree / config.root.relative_to(top),
            pytest_root=tree / pytest_root.relative_to(top) if pytest_root else None,
        )
        if revision.root.is_dir():
            changed = dependency_changes(config.root, top, commit)
            if changed:
                notes.append(changes_note(changed, commit))
            yield BaseCheckout(revision, imports)
            return
        missing = (
            f"{config.root.relative_to(top)} does not exist in the base revision {commit[:12]}"
        )
        notes.append(f"{missing}: timings compared as stored")
        yield BaseCheckout(no_base=f"{missing}: nothing to profile against")


def base_baseline(
    config: GateConfig,
    runner: Runner,
    base: BaseCheckout,
    head: RunRecord,
    progress: Progress,
) -> tuple[RunRecord | None, list[str]]:
    """The base revision as the baseline of this run, when none is stored (None when nothing
    was paired): its timings are the paired rounds' (compared through the paired side); this
    measures the rest in its worktree, with the head's probe count and eval set. Returns the
    record and notes on what the base could not give (those rows are then ``new``).

    Raises BaseImportError (exit 2) when a base worker imported the head's code."""
    revision, timing = base.revision, base.timing
    if revision is None or timing is None:
        return None, []
    plans = list(timing.base_plans.values())
    samples: list[Sample] = list(timing.base_other)
    notes: list[str] = []
    commit = revision.commit[:12]
    if plans:
        progress(f"probes of the base revision {commit}")
        probes = runner.measure(plans, timing=False, root=revision.root)
        evaluated = evaluate(config, runner, plans, progress, root=revision.root)
        samples += probes.samples + evaluated.samples
        if base.imports is not None:
            base.imports.check()
        failed = sorted({e.benchmark for e in probes.errors + evaluated.errors})
        if failed:
            notes.append(
                f"the base revision {commit} could not be probed or evaluated for "
                f"{', '.join(failed)}: those metrics are reported as new"
            )
    # the base's timings are compared through the paired side, never as stored values
    samples = [s for s in samples if s.metric.family not in TIMING_FAMILIES]
    source = f"the base revision {commit}, measured in this run"
    record = replace(
        head,
        samples=tuple(samples),
        git=GitInfo(commit=revision.commit, dirty=False),
        info={},
        errors=(),
        files={},
    )
    notes.append(
        f"no stored baseline: every metric compared with {source}; record one with "
        "`perf-gate run --save` or promote one (docs/baselines.md) for history and trends"
    )
    return record, notes
