"""``perf-gate export openmetrics|mlflow``: a finished run's results where ML teams already look
(docs/export.md). Thin: read comparison.json; openmetrics renders with gate/report/openmetrics.py
and writes a file (atomically, as node_exporter's textfile collector needs) or pushes to a
Pushgateway; mlflow logs a run through gate/integrations/mlflow_export.py."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gate.config import GateConfig, load_config
from gate.core.types import ExitCode
from gate.errors import GateError, PublishError
from gate.integrations.github.publish import ReportInput, load_report
from gate.report import openmetrics
from gate.store.git import Git
from gate.store.records import write_bytes_atomic

PUSH_TIMEOUT_S = 30.0


def register(commands: Any) -> None:
    group = commands.add_parser(
        "export",
        help="write a run's results for Prometheus (openmetrics) or MLflow (mlflow)",
        description="Export a finished run's comparison.json where ML teams already look. "
        "See docs/export.md.",
    )
    targets = group.add_subparsers(dest="target", required=True, metavar="TARGET")
    metrics = targets.add_parser(
        "openmetrics",
        help="Prometheus text format: stdout, a file (node_exporter textfile), a Pushgateway",
        description="The run's values, intervals and verdicts as Prometheus gauges "
        "(perf_gate_result_seconds, perf_gate_change_ratio, perf_gate_verdict, ...), labelled "
        "by benchmark, model, variant, metric, environment and branch.",
    )
    metrics.add_argument("--config", type=Path, help="perf-gate.yaml or pyproject.toml")
    metrics.add_argument(
        "--comparison",
        type=Path,
        metavar="F",
        help="comparison.json of the run (default: <report_dir>/comparison.json)",
    )
    metrics.add_argument(
        "-o", "--out", type=Path, metavar="FILE", help="write here (atomically); default stdout"
    )
    metrics.add_argument(
        "--push", metavar="URL", help="push to this Pushgateway (e.g. http://pushgateway:9091)"
    )
    metrics.add_argument("--job", default="perf-gate", help="the Pushgateway job (perf-gate)")
    metrics.add_argument(
        "--branch",
        help="the branch label (default: GITHUB_HEAD_REF or GITHUB_REF_NAME in Actions, "
        "else the checked-out branch)",
    )
    metrics.set_defaults(handler=_openmetrics)
    tracking = targets.add_parser(
        "mlflow",
        help="one MLflow run per gate run: params, metrics with their intervals, verdicts",
        description="Log the run to MLflow: params (models, variants, environment, commit, "
        "branch), each row's value with its interval bounds as metrics, the verdicts as tags, "
        "comparison.json and the Markdown report as artifacts.",
    )
    tracking.add_argument("--config", type=Path, help="perf-gate.yaml or pyproject.toml")
    tracking.add_argument("--comparison", type=Path, metavar="F", help="comparison.json of the run")
    tracking.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="where to log (default: MLFLOW_TRACKING_URI, else sqlite:///<report_dir>/mlflow.db)",
    )
    tracking.add_argument("--experiment", default="perf-gate", help="experiment (perf-gate)")
    tracking.add_argument("--run-name", help="the run's name (default: perf-gate <commit>)")
    tracking.add_argument("--branch", help="the branch param (default as for openmetrics)")
    tracking.set_defaults(handler=_mlflow)


def _branch(root: Path) -> str:
    for name in ("GITHUB_HEAD_REF", "GITHUB_REF_NAME"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        return Git(root).current_branch() or ""
    except Exception:  # not a repository, no git: no branch label
        return ""


def write_openmetrics(
    data: Mapping[str, Any], *, out: Path | None, push: str | None, job: str, branch: str
) -> list[str]:
    """Push and/or write the report's metrics; the lines to print. Raises PublishError for a
    Pushgateway that does not take them."""
    said = []
    if out is not None:  # first: a Pushgateway that fails leaves the file written
        write_bytes_atomic(out, openmetrics.exposition(data, branch=branch))
        said.append(f"wrote {out}")
    if push:
        try:
            openmetrics.push(data, push, job=job, branch=branch, timeout=PUSH_TIMEOUT_S)
        except Exception as exc:  # urllib's: unreachable, refused, 4xx/5xx, a bad URL
            raise PublishError(
                f"--push {push}: the Pushgateway did not take the metrics ({exc}); check "
                "the URL and that the Pushgateway is reachable from this job",
                slug="export-push",
            ) from None
        said.append(f"pushed {len(data['comparisons'])} rows to {push} (job {job})")
    return said


def write_mlflow(
    config: GateConfig,
    data: Mapping[str, Any],
    *,
    uri: str | None,
    experiment: str,
    branch: str,
    run_name: str | None = None,
) -> str:
    """Log the report as an MLflow run; the line to print. Raises ConfigError (no MLflow) or
    PublishError (the store refused)."""
    from gate.integrations.mlflow_export import log_run
    from gate.report.markdown import ReportOptions, render_summary

    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        config.report_dir.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{(config.report_dir / 'mlflow.db').resolve()}"
    exported = log_run(
        data,
        tracking_uri=uri,
        experiment=experiment,
        report=render_summary(data, ReportOptions()),
        branch=branch,
        run_name=run_name,
    )
    return (
        f"logged MLflow run {exported.run_id} ({exported.metrics} metrics) to experiment "
        f"{exported.experiment!r} at {exported.tracking_uri}"
    )


def configured(config: GateConfig, say: Callable[[str], None], warn: Callable[[str], None]) -> None:
    """The config's ``export:`` after a run (``perf-gate run``, ``perf-gate ci``): each export
    that fails is a warning; the gate's verdict and exit code stand."""
    settings = config.export
    comparison = config.report_dir / "comparison.json"
    if not settings.any or not comparison.is_file():
        return
    try:
        data, _ = load_report(ReportInput(comparison=comparison, report_dir=config.report_dir))
    except GateError as exc:
        warn(f"export: {exc.message}")
        return
    branch = _branch(config.root)
    if settings.openmetrics_path or settings.openmetrics_push:
        try:
            for line in write_openmetrics(
                data,
                out=settings.openmetrics_path,
                push=settings.openmetrics_push,
                job=settings.openmetrics_job,
                branch=branch,
            ):
                say(f"export: {line}")
        except GateError as exc:
            warn(f"export.openmetrics: {exc.message}")
    if settings.mlflow:
        try:
            say(
                "export: "
                + write_mlflow(
                    config,
                    data,
                    uri=settings.mlflow_tracking_uri,
                    experiment=settings.mlflow_experiment,
                    branch=branch,
                )
            )
        except GateError as exc:
            warn(f"export.mlflow: {exc.message}")


def _openmetrics(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    comparison = args.comparison or config.report_dir / "comparison.json"
    data, _ = load_report(ReportInput(comparison=comparison, report_dir=config.report_dir))
    branch = args.branch if args.branch is not None else _branch(config.root)
    for line in write_openmetrics(data, out=args.out, push=args.push, job=args.job, branch=branch):
        print(line)
    if args.out is None and not args.push:
        sys.stdout.write(openmetrics.exposition(data, branch=branch).decode())
    return ExitCode.OK


def _mlflow(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    comparison = args.comparison or config.report_dir / "comparison.json"
    data, _ = load_report(ReportInput(comparison=comparison, report_dir=config.report_dir))
    branch = args.branch if args.branch is not None else _branch(config.root)
    print(
        write_mlflow(
            config,
            data,
            uri=args.tracking_uri,
            experiment=args.experiment,
            branch=branch,
            run_name=args.run_name,
        )
    )
    return ExitCode.OK
