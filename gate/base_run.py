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

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from gate.config import GateConfig
from gate.core.types import GitInfo, RequestedMode, RunRecord, Sample
from gate.decide.compare import TIMING_FAMILIES
from gate.decide.sequential import BaseRevision, PairedTiming
from gate.diagnose.investigation import NO_BASE, BaseSide
from gate.errors import ConfigError
from gate.measure import base_env, base_imports
from gate.measure.environment import git_info
from gate.measure.quality import evaluate
from gate.measure.runner import Progress, Runner
from gate.store.dependencies import (
    BaseRequirements,
    Change,
    base_requirements,
    changes_note,
    dependency_changes,
    installed_versions,
)
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
    # comparison.json's ``dependencies`` (``dependencies_block``); None: nothing differs
    dependencies: dict[str, object] | None = None


@contextmanager
def base_checkout(
    config: GateConfig,
    pytest_root: Path | None,
    commit: str | None,
    notes: list[str],
    base_env: str | None = None,
    progress: Progress = lambda message: None,
) -> Iterator[BaseCheckout]:
    """The base revision in a temporary worktree whose workers import its own code and run
    in its own environment (``_environment``: built when its dependencies differ, or the one
    ``base_env`` / ``policy.base_environment`` names); nothing when timings are stored (no
    commit) or the config's folder is not in that revision.

    Raises ConfigError (exit 2) when a given base environment cannot run perf-gate."""
    if commit is None:
        yield BaseCheckout()
        return
    git = Git(config.root)
    top = git.toplevel()
    with git.worktree(commit) as tree, base_imports.isolated(top, tree) as imports:
        root = tree / config.root.relative_to(top)
        if root.is_dir():
            setting = base_env or config.policy.base_environment
            changed = dependency_changes(config.root, top, commit)
            python, block = _environment(config, setting, changed, imports, commit, progress)
            if block is not None:
                notes.append(str(block.pop("note")))
            revision = BaseRevision(
                commit=commit,
                root=root,
                pytest_root=tree / pytest_root.relative_to(top) if pytest_root else None,
                python=python,
            )
            yield BaseCheckout(revision, imports, dependencies=block)
            return
        missing = (
            f"{config.root.relative_to(top)} does not exist in the base revision {commit[:12]}"
        )
        notes.append(f"{missing}: timings compared as stored")
        yield BaseCheckout(no_base=f"{missing}: nothing to profile against")


def _environment(
    config: GateConfig,
    setting: str,
    changed: list[Change],
    imports: base_imports.BaseImports,
    commit: str,
    progress: Progress,
) -> tuple[str | None, dict[str, object] | None]:
    """The base workers' interpreter (None: this one) and the report's ``dependencies`` block
    with its note (None when nothing differs and no interpreter was given). ``setting``:
    ``auto`` builds the base revision's environment when its dependencies differ
    (``measure/base_env.py``; where that fails, this interpreter, labelled), ``current`` keeps
    this interpreter, anything else is a given interpreter or virtual environment."""
    env: base_env.BaseEnvironment | None = None
    reason = None
    required = base_requirements(changed, installed_versions())
    if setting not in ("auto", "current"):
        try:
            env = base_env.given(setting)
        except base_env.Unavailable as exc:
            raise ConfigError(
                f"base environment {setting}: {exc.message} (policy.base_environment, --base-env)",
                slug="base-env",
            ) from None
    elif changed and setting == "auto" and required.specs:
        try:
            env = base_env.build(
                list(required.specs), base_env.cache_folder(config.report_dir), progress
            )
        except base_env.Unavailable as exc:
            reason = exc.message
            progress(f"the base revision's environment could not be built: {reason}")
    if not changed and env is None:
        return None, None
    if env is not None:
        base_imports.use_interpreter(imports, env.python, env.inherited, env.site, env.modules)
    block = dependencies_block(changed, required, commit, setting, env, reason)
    return (env.python if env else None), block


def dependencies_block(
    changed: list[Change],
    required: BaseRequirements,
    commit: str,
    setting: str,
    env: base_env.BaseEnvironment | None,
    reason: str | None,
) -> dict[str, object]:
    """comparison.json's ``dependencies``: each changed package's requirement and installed
    version on both sides, each side's interpreter and fingerprint (a hash of its packages),
    how the base side ran; and the ``note`` for the report."""
    head = base_env.query(sys.executable)
    base = base_env.query(env.python, env.site) if env is not None else head
    head_packages = _packages(head)
    base_packages = _packages(base)
    short = commit[:12]
    listed = ", ".join(str(c) for c in changed[:6]) + (
        f" and {len(changed) - 6} more" if len(changed) > 6 else ""
    )
    if env is not None:
        how = env.origin
        ran = f"the base side ran in {env.describe()}"
        if changed:
            sides = ", ".join(
                f"{c.name} {base_packages.get(c.name, '(none)')} -> "
                f"{head_packages.get(c.name, '(none)')}"
                for c in changed[:6]
            )
            note = f"dependencies differ from the base revision {short} ({sides}); {ran}"
        else:
            note = f"{ran}; no dependency file differs from the base revision {short}"
    elif reason is not None:
        how = "fallback"
        note = (
            f"{changes_note(changed, short)}: the base revision's environment could not be "
            f"built ({reason})"
        )
    elif setting == "current":
        how = "current"
        note = f"{changes_note(changed, short)} (policy.base_environment: current)"
    else:
        how = "same"
        note = (
            f"dependencies differ from the base revision {short} ({listed}), but this "
            "interpreter's versions meet the base's requirements too: both sides ran with them"
        )
    extra = list(required.notes)
    if required.head_mismatch:
        extra.append(
            "this interpreter does not have the head's pins: " + ", ".join(required.head_mismatch)
        )
    if extra:
        note += "; " + "; ".join(extra)
    return {
        "note": note,
        "base_commit": commit,
        "base_environment": how,
        "reason": reason,
        "installed": list(env.installed) if env is not None else [],
        "build_seconds": round(env.seconds, 2) if env is not None else None,
        "packages": [
            {
                "name": c.name,
                "base_requirement": c.base,
                "head_requirement": c.head,
                "base": base_packages.get(c.name),
                "head": head_packages.get(c.name),
            }
            for c in changed
        ],
        "sides": {
            side: {
                "python": str(data.get("python")),
                "executable": str(data.get("executable")),
                "fingerprint": base_env.fingerprint(packages),
            }
            for side, data, packages in (
                ("base", base, base_packages),
                ("head", head, head_packages),
            )
        },
    }


def _packages(data: dict[str, object]) -> dict[str, str]:
    packages = data.get("packages")
    return {str(k): str(v) for k, v in packages.items()} if isinstance(packages, dict) else {}


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
