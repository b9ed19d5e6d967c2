"""``perf-gate ci``: the one command the GitHub Action runs; the event decides what it does.

- ``pull_request`` (``check``): pull this environment's baseline from DVC, measure, compare,
  then the job summary, annotations, the sticky comment and the step outputs; exit 1 on a
  regression (unless ``fail-on-regression`` is false). A fork's read-only token cannot
  comment: the comment is left as an artifact (gate/integrations/github/poster.py).
- ``push`` to the default branch (``promote``): measure, report, then promote the run to the
  baseline (``dvc add`` + ``dvc push``) and commit the ``.dvc`` pointers back to the branch,
  so that the next pull request pulls it.
- ``workflow_run`` (``post-comment``): post the comment a fork's run left
  (gate/integrations/github/poster.py).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from gate import pipeline as app
from gate.config import GateConfig, load_config
from gate.core.types import ExitCode
from gate.errors import BaselineError, ConfigError, GateError, PublishError
from gate.integrations.cli import export
from gate.integrations.github.actions import ActionsEnv, append_summary, write_outputs
from gate.integrations.github.event import (
    PULL_REQUEST_EVENTS,
    CiOutcome,
    CiSettings,
    Event,
    resolve_mode,
    status_of,
)
from gate.integrations.github.poster import ARTIFACT_PREFIX, post_comment, write_artifact
from gate.integrations.github.publish import (
    ClientFactory,
    CommentRequest,
    ReportInput,
    failing_count,
    publish_comment,
    publish_summary,
    warning_of,
)
from gate.pipeline import GateRequest, run_gate
from gate.report.escape import escape_text
from gate.store import baseline_store as baselines
from gate.store import pull as baseline_pull
from gate.store.dvc import Dvc, find_repo, pointer_of
from gate.store.git import BaseRevisionUnavailable, Git

BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
PUSH_TRIES = 3
SUMMARY_ERROR_LIMIT = 2000  # characters of an error message in the job summary

Progress = Callable[[str], None]

# ---------------------------------------------------------------------------------------------
# check and promote: measure and report


def _dvc(config: GateConfig, remote: str | None) -> Dvc:
    """The project's DVC, switched to ``remote`` (``dvc remote default --local``) when named.

    Raises ConfigError when no such remote is configured.
    """
    dvc = Dvc(find_repo(config.root) or config.root)
    if remote:
        known = dvc.remotes()
        if remote not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise ConfigError(
                f"input 'dvc-remote': no DVC remote named {remote!r} (configured: {listed}); "
                "add it with `dvc remote add` and commit .dvc/config",
                slug="ci-input",
            )
        dvc.run("remote", "default", "--local", remote, what="pull")
    return dvc


def pull_baseline(config: GateConfig, settings: CiSettings, progress: Progress) -> str | None:
    """Pull this environment's baseline from DVC; returns a note when none has been promoted
    (the run then reports every result as new). Raises BaselineError for DVC failures."""
    try:
        baseline_pull.pull_target(config, settings.baseline_key, None)
    except BaselineError as exc:
        if exc.slug == "baseline-not-promoted":
            return "no baseline has been promoted for this environment yet"
        raise
    dvc = _dvc(config, settings.dvc_remote)
    pulled = baseline_pull.pull(config, dvc=dvc, key_override=settings.baseline_key)
    for path in pulled.fetched:
        progress(f"pulled {path}")
    return None


def pull_request_base(
    config: GateConfig, event: Event, stored: bool, progress: Progress
) -> str | None:
    """The commit a pull request's timings are paired with: the merge-base of the event's base
    commit and HEAD (the base commit itself for the merge commit actions/checkout makes; the
    fork point for a checked-out head whose base branch moved since). None when the event is
    not a pull request, the config asks for ``timing_mode: stored``, or the base commit is not
    in the clone while a stored baseline exists (its commit is paired with instead).

    Raises BaseRevisionUnavailable (exit 2) when there is no stored baseline and the base
    commit cannot be reached: without one nothing would be compared (zero-setup gating needs
    the base commit in the clone: ``fetch-depth: 0``)."""
    sha = event.base_sha
    if event.name not in PULL_REQUEST_EVENTS or sha is None:
        return None
    if config.policy.timing_mode == "stored":
        if not stored:
            progress("policy.timing_mode is stored and no baseline is stored: nothing to compare")
        return None
    git = Git(config.root)
    try:
        commit = git.merge_base(git.resolve(sha), git.resolve("HEAD"))
    except BaseRevisionUnavailable as exc:
        if stored:
            progress(f"pull request base: {exc.message}; pairing with the baseline's commit")
            return None
        raise BaseRevisionUnavailable(
            f"no baseline is stored for this environment, so perf-gate measures the pull "
            f"request's base commit {sha[:12]} beside it, but {exc.message}",
            slug="ab-base",
        ) from None
    moved = f" (merge-base; the base branch is at {sha[:12]})" if commit != sha else ""
    progress(f"pull request: timings paired with its base commit {commit[:12]}{moved}")
    return commit


def measure(
    config: GateConfig, settings: CiSettings, progress: Progress, base: str | None = None
) -> tuple[Path, int | None]:
    """Run the gate (``perf-gate run``, or ``pytest --perf-gate`` with ``pytest-args``), with
    its timings paired with the commit ``base`` when given; returns the comparison report it
    wrote and pytest's exit code (None without pytest: the report's code is the run's). Raises
    GateError when the gate could not run."""
    comparison = config.report_dir / app.COMPARISON_NAME
    comparison.unlink(missing_ok=True)  # never report a stale file from an earlier run
    if settings.pytest_args:
        command = [sys.executable, "-m", "pytest", "--perf-gate"]
        if config.path is not None:
            command.append(f"--perf-gate-config={config.path}")
        baseline = baselines.locate(config, settings.baseline_key)
        if baseline.exists():
            command.append(f"--perf-gate-baseline={baseline}")
        if base:
            command.append(f"--perf-gate-ab={base}")
        if settings.base_env:
            command.append(f"--perf-gate-base-env={settings.base_env}")
        progress(" ".join(shlex.quote(part) for part in [*command, *settings.pytest_args]))
        code = subprocess.run([*command, *settings.pytest_args], check=False).returncode
        if not comparison.is_file():
            raise ConfigError(
                f"pytest exited with code {code} and perf-gate wrote no {comparison}; see the "
                "log above (are the perf tests selected by pytest-args?)",
                slug="ci-pytest",
            )
        return comparison, code
    if not config.models:
        raise ConfigError(
            f"{config.no_models()}, or run your perf tests with the 'pytest-args' input",
            slug="nothing-measured",
        )
    request = GateRequest(
        baseline_key=settings.baseline_key, base_ref=base, base_env=settings.base_env
    )
    outcome = run_gate(config, request, progress)
    print(outcome.table, flush=True)
    return comparison, None


def _report_source(config: GateConfig, comparison: Path) -> ReportInput:
    return ReportInput(
        comparison=comparison, report_dir=config.report_dir, name=config.baseline.stem
    )


def _read(path: Path) -> Mapping[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, Mapping) else {}


def _summary_outputs(
    config: GateConfig,
    comparison: Path,
    env: ActionsEnv,
    stdout: TextIO,
    warn: Callable[[str], None],
) -> tuple[Mapping[str, Any], dict[str, str]]:
    """Job summary and annotations; returns the report and the outputs so far. A job summary
    that cannot be written is a warning: it never changes the verdict."""
    source = _report_source(config, comparison)
    summary = publish_summary(source, replace(env, output=None), stdout)
    for line in summary.warnings:
        warn(line)
    data = _read(comparison)
    return data, {
        "status": status_of(data),
        "regressions": str(failing_count(data)),
        "report-path": str(summary.path),
    }


def _comment(
    config: GateConfig,
    settings: CiSettings,
    comparison: Path,
    event: Event,
    environ: Mapping[str, str],
    make_client: ClientFactory,
    warn: Callable[[str], None],
    outputs: dict[str, str],
) -> str:
    """The sticky comment of a pull request (or the artifact for the poster); returns a line."""
    pull = event.pull_request()
    if pull is None:
        return "not a pull request: no comment"
    when = "never" if settings.comment == "artifact" else settings.comment
    quiet = {k: v for k, v in environ.items() if k != "GITHUB_OUTPUT"}  # outputs written once
    done = publish_comment(
        CommentRequest(source=_report_source(config, comparison), pr=pull.number, when=when),
        quiet,
        make_client,
        warn,
    )
    outputs.update({k: v for k, v in done.outputs.items() if k != "comment-url"})
    if settings.comment == "artifact" or done.action == "file":
        try:
            folder = write_artifact(config, pull, event.head_sha, outputs)
        except GateError as exc:  # after the verdict: a warning, never another exit code
            warn(warning_of(exc))
            return f"{done.message}; no artifact for the workflow_run poster"
        outputs.update(
            {
                "comment-artifact": "true",
                "comment-dir": str(folder),
                "comment-name": ARTIFACT_PREFIX + config.baseline.stem,
                "comment-file-written": "true",
            }
        )
        return f"{done.message}; left for the workflow_run poster in {folder}"
    return done.message


def check(
    settings: CiSettings,
    env: ActionsEnv,
    event: Event,
    environ: Mapping[str, str],
    make_client: ClientFactory,
    warn: Callable[[str], None],
    stdout: TextIO,
    progress: Progress,
) -> CiOutcome:
    """A pull request (or any run that is not a promotion): measure, report, comment."""
    config = load_config(settings.config)
    note = pull_baseline(config, settings, progress)
    if note:
        progress(note)
    stored = baselines.locate(config, settings.baseline_key).exists()
    base = pull_request_base(config, event, stored, progress)
    comparison, pytest_code = measure(config, settings, progress, base)
    export.configured(config, progress, warn)
    data, outputs = _summary_outputs(config, comparison, env, stdout, warn)
    message = _comment(config, settings, comparison, event, environ, make_client, warn, outputs)
    # pytest's own code also tells failing tests; the report's code is the gate's verdict
    code = pytest_code if pytest_code is not None else int(data.get("exit_code", 3))
    if outputs["status"] == "regression" and not settings.fail_on_regression:
        code = ExitCode.OK
        message += "; regressions do not fail the job (fail-on-regression: false)"
    return CiOutcome(mode="check", exit_code=code, outputs=outputs, message=message)


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise BaselineError(f"cannot run git: {exc}", slug="ci-push") from exc


def commit_pointers(root: Path, files: list[Path], branch: str, message: str) -> str:
    """Commit the promoted baseline's pointers and push them to ``branch`` of ``origin``
    (rebasing on a branch that moved meanwhile); returns what was done.

    Raises BaselineError naming the fix when git refuses (often: the job lacks
    ``permissions: contents: write``).
    """
    identity: list[str] = []
    if not _git(root, "config", "user.email").stdout.strip():
        identity = ["-c", f"user.name={BOT_NAME}", "-c", f"user.email={BOT_EMAIL}"]
    added = _git(root, "add", "--", *(str(f) for f in files))
    if added.returncode != 0:
        raise BaselineError(f"git add failed: {added.stderr.strip()}", slug="ci-push")
    if _git(root, "diff", "--cached", "--quiet").returncode == 0:
        return "the pointers were already committed"
    committed = _git(root, *identity, "commit", "-q", "-m", message)
    if committed.returncode != 0:
        raise BaselineError(f"git commit failed: {committed.stderr.strip()}", slug="ci-push")
    if _git(root, "remote", "get-url", "origin").returncode != 0:
        return "committed the pointers (no origin remote to push to)"
    failure = ""
    for _ in range(PUSH_TRIES):
        pushed = _git(root, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
        if pushed.returncode == 0:
            return f"pushed the pointers to {branch}"
        failure = " | ".join(pushed.stderr.strip().splitlines()[-2:])
        rebased = _git(root, *identity, "pull", "-q", "--rebase", "origin", branch)
        if rebased.returncode != 0:
            _git(root, "rebase", "--abort")
            failure = " | ".join(rebased.stderr.strip().splitlines()[-2:])
            break
    raise BaselineError(
        f"the baseline was pushed to DVC, but its pointers could not be pushed to {branch}: "
        f"{failure}; give the job `permissions: contents: write` (and allow it past branch "
        "protection), or commit the .dvc files yourself",
        slug="ci-push",
    )


def promote(
    settings: CiSettings,
    env: ActionsEnv,
    event: Event,
    stdout: TextIO,
    progress: Progress,
    warn: Callable[[str], None] = lambda message: None,
) -> CiOutcome:
    """The default branch: measure, report, promote to DVC, commit the pointers."""
    config = load_config(settings.config)
    pull_baseline(config, settings, progress)
    comparison, _ = measure(config, settings, progress)
    export.configured(config, progress, warn)
    _, outputs = _summary_outputs(config, comparison, env, stdout, warn)
    results = config.report_dir / app.RESULTS_NAME
    branch = event.default_branch or ""
    promoted = baselines.promote(
        config,
        results,
        dvc=_dvc(config, settings.dvc_remote),
        key_override=settings.baseline_key,
        default_branch=branch or None,
        progress=progress,
    )
    files = [pointer_of(promoted.path), pointer_of(promoted.history)]
    ignore = promoted.path.parent / ".gitignore"
    if ignore.exists():
        files.append(ignore)
    commit = _git(config.root, "rev-parse", "--short=12", "HEAD").stdout.strip()
    done = commit_pointers(
        config.root,
        files,
        branch or _git(config.root, "branch", "--show-current").stdout.strip(),
        f"perf-gate: promote baseline {promoted.path.name} from {commit} [skip ci]",
    )
    outputs["baseline-path"] = str(promoted.path)
    message = f"promoted {promoted.path.name} (md5 {promoted.md5}); {done}"
    for change in promoted.changes:
        progress(f"the level moved: {change}")
    for drift in promoted.drifts:  # promoted all the same; the job fails to draw attention
        warn(f"{drift} (policy.drift)")
    if promoted.drifts:
        message += f"; {len(promoted.drifts)} metric(s) beyond policy.drift"
    return CiOutcome(
        mode="promote",
        exit_code=ExitCode.REGRESSION if promoted.drifts else ExitCode.OK,
        outputs=outputs,
        message=message,
    )


# ---------------------------------------------------------------------------------------------
# the command


def run_ci(
    settings: CiSettings,
    environ: Mapping[str, str],
    *,
    make_client: ClientFactory,
    warn: Callable[[str], None],
    stdout: TextIO,
    progress: Progress,
) -> CiOutcome:
    """Run the mode the event calls for and write the step outputs.

    A GateError still writes ``status=error`` to the outputs and a line to the job summary,
    then propagates (the CLI prints it and exits 2 or 3).
    """
    env = ActionsEnv.from_environ(environ)
    try:
        event = Event.from_env(env)
        mode = resolve_mode(settings, event)
        if mode == "post-comment":
            outcome = post_comment(settings, env, event, environ, make_client, warn)
        elif mode == "promote":
            outcome = promote(settings, env, event, stdout, progress, warn)
        else:
            outcome = check(settings, env, event, environ, make_client, warn, stdout, progress)
    except GateError as exc:
        try:
            if env.output is not None:
                write_outputs(env.output, {"status": "error", "mode": settings.mode})
            if env.step_summary is not None:
                text = escape_text(exc.message, SUMMARY_ERROR_LIMIT)
                append_summary(env.step_summary, f"### ⚠️ perf-gate could not run\n\n{text}\n")
        except PublishError as unwritable:  # the error that stopped the run is the one to tell
            warn(warning_of(unwritable))
        raise
    if env.output is not None:
        try:
            write_outputs(env.output, {**outcome.outputs, "mode": outcome.mode})
        except PublishError as exc:  # after the verdict: a warning, never another exit code
            warn(warning_of(exc))
    return outcome
