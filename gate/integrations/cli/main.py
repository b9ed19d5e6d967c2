"""The ``perf-gate`` command. Thin: parse, call the layer below, map exit codes.

Each subcommand sets ``handler`` on its parser; command groups that live in their own module
(``gate/cli_*.py``) expose ``register(commands)`` and are added in ``_parser``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from gate import __version__
from gate import pipeline as app
from gate.config import load_config
from gate.config.checks import MAX_NAME, NAME
from gate.config.policy import base_env_option
from gate.core.types import REQUESTED_MODES, ExitCode
from gate.decide import calibrate
from gate.errors import ConfigError, GateError
from gate.integrations.cli import baseline as cli_baseline
from gate.integrations.cli import ci as cli_ci
from gate.integrations.cli import explain as cli_explain
from gate.integrations.cli import export as cli_export
from gate.integrations.cli import publish as cli_publish
from gate.pipeline import GateRequest, run_gate
from gate.report.content import report_from
from gate.report.markdown import ReportOptions, render_summary
from gate.report.terminal import render_table
from gate.store import baseline_store, shard


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perf-gate",
        description="Measure models, compare with the baseline, fail on significant regressions.",
    )
    parser.add_argument("--version", action="version", version=f"perf-gate {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="measure the config's models and gate them against the baseline",
        description="Measure every model variant in the config in fresh worker processes, "
        "compare with the baseline and exit 1 on a regression.",
    )
    run.add_argument("--config", type=Path, help="perf-gate.yaml or pyproject.toml (default: ./)")
    run.add_argument(
        "--out",
        type=Path,
        help="where to write the run record (default .perf-gate/results.json; never a baseline: "
        "--save writes that)",
    )
    run.add_argument("--baseline", type=Path, help="baseline file (default from config)")
    run.add_argument("--save", action="store_true", help="save this run as the new baseline")
    run.add_argument(
        "--baseline-key",
        metavar="KEY",
        help="environment key of the baseline to use (default: the config's baseline_key, auto)",
    )
    run.add_argument(
        "--mode",
        choices=REQUESTED_MODES,
        help="timing mode (default: the config's policy.timing_mode, auto)",
    )
    run.add_argument(
        "--ab", metavar="REF", help="base revision for ab/duet timing (default: baseline's commit)"
    )
    run.add_argument(
        "--base-env",
        metavar="auto|current|PATH",
        help="the base revision's Python in paired runs: auto (its own environment, built with "
        "uv when its dependencies differ), current (this interpreter), or an interpreter or "
        "venv (default: the config's policy.base_environment)",
    )
    run.add_argument(
        "--select", action="append", metavar="NAME", help="measure only this benchmark (repeatable)"
    )
    run.add_argument(
        "--profile",
        action="store_true",
        help="profile base and head of every timed benchmark and show where the time went "
        "(default: only timing regressions, per policy.diagnose; see docs/diagnosis.md)",
    )
    run.add_argument(
        "--shard",
        metavar="I/N",
        help="measure only shard I of N (models split deterministically; see perf-gate merge)",
    )

    compare = commands.add_parser(
        "compare",
        help="compare two run records without measuring",
        description="Compare a baseline run record with a current one under the config's policy.",
    )
    compare.add_argument("baseline", type=Path)
    compare.add_argument("current", type=Path)
    compare.add_argument("--config", type=Path, help="config for the policy (default: ./)")
    compare.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    calibrate = commands.add_parser(
        "calibrate",
        help="A/A rounds: how small a change this runner can resolve",
        description="Pair every model variant with itself for N rounds, print the per-round "
        "spread and the rounds needed per threshold, and record it beside the baseline.",
    )
    calibrate.add_argument("--config", type=Path, help="perf-gate.yaml or pyproject.toml")
    calibrate.add_argument("--rounds", type=int, default=8, help="A/A rounds (default 8)")
    calibrate.add_argument("--baseline", type=Path, help="baseline file (default from config)")
    run.set_defaults(handler=_run)
    compare.set_defaults(handler=_compare)
    calibrate.set_defaults(handler=_calibrate)
    cli_baseline.register(commands)
    cli_publish.register(commands)
    cli_ci.register(commands)
    cli_explain.register(commands)
    cli_export.register(commands)
    return parser


# The ranges of numeric arguments: (command, attribute, option) -> (minimum, maximum, what).
MAX_CALIBRATE_ROUNDS = 1000
_INTEGER_ARGUMENTS = {
    ("calibrate", "rounds", "--rounds"): (3, MAX_CALIBRATE_ROUNDS, "rounds"),
    ("baseline", "limit", "--limit"): (1, 1_000_000, ""),
    ("comment", "pr", "--pr"): (1, 2**31 - 1, ""),
}


def _check_arguments(args: argparse.Namespace) -> None:
    """Shapes and ranges of arguments, before any work: names that become part of a file name
    (``--baseline-key``, ``baseline --name``) and the numbers' ranges. Raises ConfigError."""
    named = {"baseline_key": "--baseline-key"}
    if args.command == "baseline":
        named["name"] = "--name"
    for attribute, option in named.items():
        value = getattr(args, attribute, None)
        if value is not None and (not NAME.match(value) or len(value) > MAX_NAME):
            shown = value if len(value) <= 40 else value[:37] + "..."
            raise ConfigError(
                f"{option} {shown!r}: this becomes part of the baseline's file name; use "
                "letters, digits, '_', '-' and '.', starting with a letter, digit or '_', at "
                f"most {MAX_NAME} characters",
                slug="config",
            )
    for (command, attribute, option), (low, high, what) in _INTEGER_ARGUMENTS.items():
        value = getattr(args, attribute, None)
        if args.command == command and value is not None and not low <= value <= high:
            where = " ".join(filter(None, (command, getattr(args, "action", None))))
            raise ConfigError(
                f"{where} {option} {value}: use at least {' '.join(f'{low} {what}'.split())} "
                f"and at most {high:,}",
                slug="config",
            )


def _calibrate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.rounds < 3:
        print("perf-gate: error: calibrate --rounds: use at least 3 rounds", file=sys.stderr)
        return ExitCode.USAGE
    spreads = calibrate.measure_spread(config, args.rounds, app.stderr_progress())
    print(calibrate.render(spreads, config.policy.alpha, config.policy.max_rounds))
    path = calibrate.save(config, spreads, args.baseline or config.baseline)
    print(f"Recorded in {path}")
    return ExitCode.OK


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    progress = app.stderr_progress()
    if not config.models:
        print(f"perf-gate: error: {config.no_models()}", file=sys.stderr)
        return ExitCode.USAGE
    if args.out is not None:  # a run record, never a baseline: --save writes that
        baseline_store.refuse_baseline_target(
            args.out,
            "--out",
            baselines=[config.baseline, *([args.baseline] if args.baseline else [])],
            root=config.root,
            report_dir=config.report_dir,
        )
    selected = set(args.select) if args.select else None
    part = shard.Shard.parse(args.shard, save=args.save) if args.shard else None
    if part:
        selected = shard.select(config, part, selected)
        config = shard.shard_config(config, part)
    request = GateRequest(
        selected=selected,
        mode=args.mode,
        base_ref=args.ab,
        base_env=base_env_option(args.base_env),
        baseline_path=args.baseline,
        baseline_key=args.baseline_key,
        results_path=args.out,
        save=args.save,
        diagnose="always" if args.profile else None,
    )
    outcome = run_gate(config, request, progress)
    if part:
        results = args.out or config.report_dir / app.RESULTS_NAME
        shard.mark(results, outcome.record, part, config.report_dir / app.COMPARISON_NAME)
    print(outcome.table)
    cli_export.configured(config, print, _warning)
    return int(outcome.exit_code)


def _warning(message: str) -> None:
    print(f"perf-gate: warning: {message}", file=sys.stderr)


def _compare(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    result, report = app.compare_records(config, args.baseline, args.current)
    if args.format == "json":
        print(json.dumps(report, indent=1))
    elif args.format == "markdown":  # the PR comment's report, for local use
        print(render_summary(report, ReportOptions(tool_version=__version__)))
    else:
        print(render_table(report_from(report)))
    return int(result.exit_code)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 pass, 1 regression, 2 usage, 3 internal)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        _check_arguments(args)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except GateError as exc:
        print(exc.one_line(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("perf-gate: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`perf-gate compare ... | head`)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush stays quiet
        return 141  # 128 + SIGPIPE, as a shell reports a process the pipe closed on
    except Exception:  # a bug in perf-gate, not the user's mistake: keep the traceback
        traceback.print_exc()
        print(
            "perf-gate: internal error (a bug in perf-gate; please report it with the output "
            "above)",
            file=sys.stderr,
        )
        return int(ExitCode.INTERNAL)
