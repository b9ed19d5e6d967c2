"""``perf-gate comment`` and ``perf-gate summary``: publish the report of a finished run.

Thin: parse, build the request, call gate.integrations.github.publish, print one line, return
the exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from gate.config import load_config
from gate.core.types import ExitCode
from gate.integrations.github.actions import ActionsEnv, annotation
from gate.integrations.github.client import DEFAULT_API_URL, GitHubClient, Secret
from gate.integrations.github.publish import (
    WHEN,
    CommentRequest,
    ReportInput,
    publish_comment,
    publish_summary,
)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, help="perf-gate.yaml or pyproject.toml (default: ./)"
    )
    parser.add_argument(
        "--comparison",
        type=Path,
        metavar="F",
        help="comparison.json of the run (default: <report_dir>/comparison.json)",
    )
    parser.add_argument(
        "--history",
        type=Path,
        metavar="F",
        help="trend points or a baseline history file for the chart (docs/report.md)",
    )
    parser.add_argument(
        "--name",
        help="names the comment's hidden marker, one comment per name (default: the baseline's "
        "file name, e.g. main)",
    )
    parser.add_argument("--no-chart", action="store_true", help="leave out the trend chart")


def register(commands: Any) -> None:
    """Add ``comment`` and ``summary`` to the ``perf-gate`` subcommands."""
    comment = commands.add_parser(
        "comment",
        help="post or update the pull request's perf-gate comment",
        description="Render the report of comparison.json and create or update the one "
        "comment that carries this gate's marker and was written by the token's own account "
        "(PERF_GATE_COMMENT_AUTHOR names it for a GitHub App). A failure to comment is a "
        "warning (exit 0) unless --strict; a fork's read-only token writes "
        ".perf-gate/comment.md instead.",
    )
    _common(comment)
    comment.add_argument("--pr", type=int, help="pull request number (default: from the event)")
    comment.add_argument("--repo", metavar="OWNER/NAME", help="default: GITHUB_REPOSITORY")
    comment.add_argument(
        "--when",
        choices=WHEN,
        default="always",
        help="always (default): post or edit on every run; on-change (recommended in CI): edit "
        "only when the verdict or a row's verdict differs from the comment's, post a first one "
        "only when something is not unchanged; never: only write the file",
    )
    comment.add_argument(
        "--strict", action="store_true", help="exit non-zero when the comment cannot be posted"
    )
    comment.set_defaults(handler=_comment)

    summary = commands.add_parser(
        "summary",
        help="job summary, annotations and step outputs of the report",
        description="Append the full report to GITHUB_STEP_SUMMARY, print ::error annotations "
        "for what failed (in Actions) and set the outputs status, regressions and report-path. "
        "Exits 0 whatever the verdict; a runner file that cannot be written is a warning.",
    )
    _common(summary)
    summary.set_defaults(handler=_summary)


def _source(args: argparse.Namespace) -> ReportInput:
    config = load_config(args.config)
    return ReportInput(
        comparison=args.comparison or config.report_dir / "comparison.json",
        report_dir=config.report_dir,
        history=args.history,
        name=args.name or config.baseline.stem,
        chart=not args.no_chart,
    )


def _warn(env: ActionsEnv, title: str = "perf-gate comment") -> Any:
    def warn(message: str) -> None:
        print(f"perf-gate: warning: {message}", file=sys.stderr)
        if env.in_actions:
            print(annotation("warning", message, title=title))

    return warn


def _client(api_url: str, token: Secret) -> GitHubClient:
    return GitHubClient(
        api_url=api_url or DEFAULT_API_URL,
        token=token,
        warn=lambda message: print(f"perf-gate: {message}", file=sys.stderr),
    )


def _comment(args: argparse.Namespace) -> int:
    request = CommentRequest(
        source=_source(args), pr=args.pr, repository=args.repo, when=args.when, strict=args.strict
    )
    environ = dict(os.environ)
    outcome = publish_comment(request, environ, _client, _warn(ActionsEnv.from_environ(environ)))
    print(f"perf-gate: {outcome.message}")
    return int(outcome.exit_code)


def _summary(args: argparse.Namespace) -> int:
    env = ActionsEnv.from_environ()
    outcome = publish_summary(_source(args), env, sys.stdout)
    warn = _warn(env, "perf-gate summary")
    for line in outcome.warnings:  # a runner file that cannot be written: never the verdict
        warn(line)
    where = " and the job summary" if outcome.appended else ""
    print(f"perf-gate: report written to {outcome.path}{where}", file=sys.stderr)
    return int(ExitCode.OK)
