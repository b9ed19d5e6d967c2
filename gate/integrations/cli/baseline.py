"""``perf-gate baseline pull|promote|status|history`` (and ``perf-gate history``): thin; the
logic is in gate/store/baseline_store.py and gate/store/changes.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gate import pipeline as app
from gate.config import load_config
from gate.core.types import ExitCode
from gate.store import baseline_store as baselines
from gate.store import history as hist
from gate.store import pull as baseline_pull
from gate.store.changes import all_changes, series
from gate.store.dvc import Dvc, find_repo, pointer_of

COMMIT_HINT = "commit the pointers so that other checkouts can pull it:"


def register(commands: Any) -> None:
    """Add the ``baseline`` command group to the CLI's subparsers."""
    group = commands.add_parser(
        "baseline",
        help="pull, promote and inspect baselines tracked by DVC",
        description="Baselines live in DVC (content in the cache and remote, a .dvc pointer in "
        "git), one per environment key: baselines/<name>@<key>.json. See docs/baselines.md.",
    )
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")

    pull = actions.add_parser(
        "pull",
        help="dvc pull this environment's baseline and history",
        description="Fetch this environment's baseline (and its history) from the DVC remote "
        "named by its .dvc pointer. A local copy that differs from the pointer is kept unless "
        "--force (and then backed up first). Exit 2 with the reason when the remote, the pointer "
        "or the cache is missing or damaged.",
    )
    _common(pull)
    pull.add_argument(
        "--force",
        action="store_true",
        help="replace a local copy that differs from the pointer (backed up first as "
        "<file>.local, or .local.2, .local.3, ... when that exists: never overwritten)",
    )
    pull.set_defaults(handler=_pull)

    promote = actions.add_parser(
        "promote",
        help="make a run record the baseline: write, dvc add, dvc push, history",
        description="Make a run record (default <report_dir>/results.json) this environment's "
        "baseline: write it atomically, dvc add, dvc push, and append it to the history. "
        "Refused on pull requests and, unless --force, off the default branch.",
    )
    _common(promote)
    promote.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="the run record to promote (default <report_dir>/results.json)",
    )
    promote.add_argument(
        "--force", action="store_true", help="promote even when not on the default branch"
    )
    promote.add_argument(
        "--default-branch", metavar="NAME", help="the default branch (default: detected)"
    )
    promote.set_defaults(handler=_promote)

    status = actions.add_parser(
        "status",
        help="which baseline is in use, and is it current",
        description="Which baseline file this environment uses, whether it is present, "
        "matches its .dvc pointer and is pushed, and when it was promoted.",
    )
    _common(status)
    status.set_defaults(handler=_status)

    _history_parser(actions)
    # the same as a command of its own: `perf-gate history --changes`
    _history_parser(commands)


def _history_parser(commands: Any) -> None:
    history = commands.add_parser(
        "history",
        help="promoted baselines, newest first; --changes: where levels moved",
        description="The promoted baselines of this environment, newest first; with "
        "--benchmark, the trend of each of its metrics across them; with --changes, the change "
        "points of every metric (E-Divisive means, docs/history.md).",
    )
    _common(history)
    history.add_argument("--limit", type=int, default=10, help="entries to show (default 10)")
    history.add_argument(
        "--benchmark", metavar="NAME", help="show the trend of each metric of this benchmark"
    )
    history.add_argument(
        "--changes",
        action="store_true",
        help="the change points of each metric over the promotions, with their commits",
    )
    history.set_defaults(handler=_history)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="perf-gate.yaml or pyproject.toml")
    parser.add_argument("--name", help="baseline name (default: the config's, e.g. main)")
    parser.add_argument(
        "--baseline-key",
        metavar="KEY",
        help="environment key in the file name (default: the config's baseline_key, auto)",
    )


def shown(path: Path) -> str:
    """``path`` relative to the current directory when it is below it (shorter to read)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _dvc(root: Path) -> Dvc:
    return Dvc(find_repo(root) or root)


def _pull(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    pulled = baseline_pull.pull(
        config,
        dvc=_dvc(config.root),
        key_override=args.baseline_key,
        name=args.name,
        force=args.force,
    )
    for path in pulled.fetched:
        print(f"pulled {shown(path)}")
    for path in pulled.up_to_date:
        print(f"up to date: {shown(path)}")
    for path in pulled.kept:
        print(f"your local copy was kept as {shown(path)} (backups are never overwritten)")
    return ExitCode.OK


def _promote(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    source = args.source or config.report_dir / app.RESULTS_NAME
    promoted = baselines.promote(
        config,
        source,
        dvc=_dvc(config.root),
        key_override=args.baseline_key,
        name=args.name,
        force=args.force,
        default_branch=args.default_branch,
        progress=app.stderr_progress(),
    )
    print(
        f"promoted {shown(source)} to {shown(promoted.path)} (md5 {promoted.md5}, environment "
        f"key {promoted.key or 'none'}); history: {promoted.entries} promotion(s) in "
        f"{shown(promoted.history)}"
    )
    for note in promoted.notes:
        print(f"Note: {note}")
    pointers = [pointer_of(promoted.path), pointer_of(promoted.history)]
    files = " ".join(shown(p) for p in [*pointers, promoted.path.parent / ".gitignore"])
    print(f"{COMMIT_HINT} git add {files} && git commit -m 'perf-gate: promote baseline'")
    for change in promoted.changes:
        print(f"Note: the level moved: {change}")
    for drift in promoted.drifts:  # promoted all the same: the baseline is what main is now
        print(f"perf-gate: {drift} (policy.drift)", file=sys.stderr)
    return ExitCode.REGRESSION if promoted.drifts else ExitCode.OK


def _status(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    state = baselines.status(config, args.baseline_key, args.name)
    print(f"baseline:     {shown(state.path)}")
    print(f"key:          {state.key or 'none (un-keyed)'}")
    print(f"dvc pointer:  {_pointer_text(state.pointer)}")
    record = state.record
    if record is not None:
        commit = (record.git.commit or "unknown")[:12]
        print(f"commit:       {commit} ({record.git.ref or 'no ref'})")
        print(f"created:      {record.created} ({baselines.age(record.created)} ago)")
        env = record.environment
        print(
            f"environment:  {env.get('key', '?')}: {env.get('cpu_model')}, {env.get('os')}, "
            f"accelerator {env.get('gpu') or 'none'}"
        )
        print(f"samples:      {len(record.samples)}")
    if state.history_entries is not None:
        print(f"history:      {state.history_entries} promotions (limit {config.baseline_history})")
    for note in state.notes:
        print(f"Note: {note}")
    if state.staging_left:
        print(
            f"Note: a staging folder ({baselines.STAGING} or {baselines.PULL_STAGING}) in "
            f"{shown(state.path.parent)} was left by an interrupted promote or pull; the live "
            "baseline is intact and the next promote or pull removes it"
        )
    return ExitCode.OK


def _pointer_text(state: str) -> str:
    return {
        "matches": "the local copy matches its .dvc pointer",
        "differs": "the local copy DIFFERS from its .dvc pointer (perf-gate baseline pull "
        "--force restores the promoted one)",
        "not pulled": "tracked, not pulled yet (perf-gate baseline pull)",
        "not tracked": "none: this file is not tracked by DVC",
        "missing": "none, and no baseline file: a run with --ab REF (a pull request in CI: its "
        "base commit) compares with that revision, measured beside it; else every result is 'new'",
    }[state]


def _history(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.limit < 1:
        print("perf-gate: error: baseline history --limit: use 1 or more", file=sys.stderr)
        return ExitCode.USAGE
    path, history = baselines.read_history(config, args.baseline_key, args.name)
    if not history.entries:
        print(f"{shown(path)}: no promotions recorded yet")
        return ExitCode.OK
    if args.changes:
        print(render_changes(history, args.benchmark))
        return ExitCode.OK
    if args.benchmark:
        print(render_trend(history, args.benchmark, args.limit))
        return ExitCode.OK
    print(f"{shown(path)}: {len(history.entries)} promotions (limit {history.limit}), newest first")
    print(f"{'promoted':<26} {'commit':<12} {'ref':<20} {'key':<14} benchmarks")
    for entry in history.entries[: args.limit]:
        print(
            f"{entry.promoted:<26} {(entry.commit or '-')[:12]:<12} {(entry.ref or '-')[:20]:<20} "
            f"{entry.environment_key[:14]:<14} {len(entry.medians)}"
        )
    return ExitCode.OK


def render_trend(history: hist.History, benchmark: str, limit: int) -> str:
    """Each metric of ``benchmark`` over the last ``limit`` promotions, oldest first."""
    metrics = sorted({m for e in history.entries for m in e.medians.get(benchmark, {})})
    if not metrics:
        return f"{benchmark}: not in any promoted baseline"
    lines = [f"{benchmark}: median per promotion, oldest first"]
    for metric in metrics:
        points = hist.trend(history, benchmark, metric)[-limit:]
        unit = next((e.units.get(metric, "") for e in history.entries if metric in e.units), "")
        values = " -> ".join(f"{p.value:.4g}" for p in points)
        lines.append(f"  {metric} [{unit}]: {values}")
    return "\n".join(lines)


def render_changes(history: hist.History, benchmark: str | None) -> str:
    """The change points of every metric (of ``benchmark``), oldest first per metric."""
    found = all_changes(history, benchmark)
    scope = benchmark or f"{len({b for b, _ in series(history)})} benchmark(s)"
    heading = f"change points over {len(history.entries)} promotion(s), {scope}"
    if not found:
        return f"{heading}: none (each metric's level held, at 99% confidence)"
    lines = [f"{heading}: {len(found)}"]
    for change in found:
        mark = "worse" if change.worse else "better"
        lines.append(f"  {change.describe()} [{mark}]")
    return "\n".join(lines)
