"""``perf-gate ci`` (what the GitHub Action runs) and ``perf-gate merge`` (matrix jobs -> one
report). Thin: parse, call gate.integrations.github.ci / gate.store.merge, print one line,
return the exit code."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from gate import pipeline as app
from gate.core.types import ExitCode
from gate.integrations.github import ci
from gate.integrations.github import event as ci_event
from gate.integrations.github.actions import ActionsEnv, annotation
from gate.integrations.github.client import DEFAULT_API_URL, GitHubClient, Secret
from gate.store import merge


def register(commands: Any) -> None:
    """Add ``ci`` and ``merge`` to the ``perf-gate`` subcommands."""
    run = commands.add_parser(
        "ci",
        help="the GitHub Action's step: check a pull request, promote on the default branch, "
        "or post a fork's comment (workflow_run)",
        description="Decide from the GitHub event what to do: pull_request -> pull the "
        "baseline, measure, compare, summary, annotations, sticky comment, exit 1 on a "
        "regression; push to the default branch -> measure and promote the baseline; "
        "workflow_run -> post the comment a fork's run left as an artifact. Options default to "
        "the action's PERF_GATE_* environment variables (docs/github-action.md).",
    )
    run.add_argument("--mode", choices=ci_event.MODES, help="default auto: from the event")
    run.add_argument("--config", help="perf-gate.yaml or pyproject.toml (default: ./)")
    run.add_argument("--pytest-args", help="run `pytest --perf-gate ARGS` instead of the models")
    run.add_argument("--baseline-key", metavar="KEY", help="environment key of the baseline")
    run.add_argument("--dvc-remote", metavar="NAME", help="DVC remote for pull and promote")
    run.add_argument(
        "--fail-on-regression", metavar="true|false", help="exit 1 on a regression (default true)"
    )
    run.add_argument("--comment", choices=ci_event.COMMENT_MODES, help="default on-change")
    run.add_argument(
        "--comment-dir", metavar="DIR", help="post-comment: where the artifacts were downloaded"
    )
    run.add_argument("--pr-run-id", metavar="ID", help="post-comment: the pull request's run")
    run.add_argument(
        "--base-env",
        metavar="auto|current|PATH",
        help="the base revision's Python in paired runs (default: policy.base_environment)",
    )
    run.set_defaults(handler=_ci)

    join = commands.add_parser(
        "merge",
        help="merge the results of matrix jobs (shards, environments) into one run record",
        description="Merge results-*.json of one commit and config into one run record, and "
        "the comparison reports beside them (results-N.json -> comparison-N.json) into one "
        "report grouped by environment. Refuses shards of different commits or configs.",
    )
    join.add_argument("results", nargs="+", type=Path, help="the jobs' results files")
    join.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path(".perf-gate") / app.RESULTS_NAME,
        help="the merged record (default .perf-gate/results.json; the report goes beside it)",
    )
    join.set_defaults(handler=_merge)


def _client(api_url: str, token: Secret) -> GitHubClient:
    return GitHubClient(
        api_url=api_url or DEFAULT_API_URL,
        token=token,
        warn=lambda message: print(f"perf-gate: {message}", file=sys.stderr),
    )


def _progress(message: str) -> None:
    print(f"perf-gate: {message}", file=sys.stderr, flush=True)


def _ci(args: argparse.Namespace) -> int:
    environ = dict(os.environ)
    values = {name: getattr(args, name.replace("-", "_")) for name in ci_event.INPUT_VARIABLES}
    settings = ci_event.settings_from(values, environ)
    in_actions = ActionsEnv.from_environ(environ).in_actions

    def warn(message: str) -> None:
        print(f"perf-gate: warning: {message}", file=sys.stderr)
        if in_actions:
            print(annotation("warning", message, title="perf-gate"))

    outcome = ci.run_ci(
        settings, environ, make_client=_client, warn=warn, stdout=sys.stdout, progress=_progress
    )
    print(f"perf-gate ci ({outcome.mode}): {outcome.message}")
    return outcome.exit_code


def _merge(args: argparse.Namespace) -> int:
    merged = merge.merge(args.results)
    written = merge.write(merged, args.out)
    environments = (
        f" in {len(merged.labels)} environments ({', '.join(merged.labels.values())})"
        if merged.labels
        else ""
    )
    print(
        f"merged {len(merged.parts)} results{environments} of commit "
        f"{(merged.record.git.commit or 'unknown')[:12]} into {' and '.join(map(str, written))}"
    )
    return int(ExitCode.OK)
