"""The pull-request report: comparison.json -> GitHub-flavoured Markdown (the only jinja2 importer).

The report is rendered from the comparison *dict* (``jsonreport.result_to_dict``, format 1), not
from a GateResult, so that ``perf-gate comment --comparison F`` works on a file made by another
job. Two sizes come out of one template: the job summary (the full report, under 1 MiB) and the
PR comment (under 65,536 characters: a digest of the worst changes when the full one is larger).

Templates are code: a sandboxed environment with ``StrictUndefined``, and every value printed by
``{{ }}`` is escaped (``escape.finalize``) unless the view marked it safe.

The comment ends with two hidden lines: the digest of its verdicts (``verdict_digest``, which
``perf-gate comment --when on-change`` compares with an earlier comment's) and the marker.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gate.errors import BaselineError, ConfigError, PublishError
from gate.report.content import percent, report_from
from gate.report.diagnosis_sections import PROFILES_ARTIFACT, DiagnosisView, diagnosis_views
from gate.report.escape import TEXT_LIMIT, escape_text, finalize, safe
from gate.report.trend import Chart, TrendSeries, charts
from gate.report.view import (
    DEFAULT_NAME,
    SEVERITY,
    Row,
    VariantTable,
    dependency_rows,
    dependency_sides,
    environment_rows,
    headline,
    number,
    ordered_rows,
    over_budget_rows,
    trade_off_lines,
    variant_table,
    verdict_cells,
)

if TYPE_CHECKING:
    from markupsafe import Markup

SUPPORTED_FORMATS = (1,)
COMMENT_LIMIT = 65_536  # characters GitHub accepts in a comment body
SUMMARY_LIMIT = 1_048_576  # bytes GitHub accepts in one step's job summary
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")
_VERSION = re.compile(r"^[0-9A-Za-z.+-]{1,40}$")
_URL = re.compile(r"^https?://[A-Za-z0-9.:/_\-]+$")
_VERDICTS = re.compile(r"^<!-- perf-gate:verdicts ([a-z]+ [0-9a-f]{16}) -->$")


@dataclass(frozen=True, kw_only=True)
class ReportOptions:
    """What the caller decides: the comment's name, the chart, the link to the run."""

    name: str = DEFAULT_NAME
    chart: bool = True
    trend_metric: str = "latency"
    max_charts: int = 3
    run_url: str | None = None  # the workflow run, whose page shows the job summary
    tool_version: str = ""


def marker(name: str) -> str:
    """The hidden line that identifies this gate's comment; one per config name.

    Raises ConfigError for a name that is not 1-64 letters, digits, ``.``, ``_`` and ``-``.
    """
    if not _NAME.match(name):
        raise ConfigError(
            f"--name {name!r}: use 1-64 letters, digits, '.', '_' or '-' (it goes into the "
            "comment's hidden marker)"
        )
    return f"<!-- perf-gate:comment name={name} -->"


def verdict_digest(data: Mapping[str, Any]) -> str:
    """``fail 3f2a9c1d8e7b6a5f``: the gate's answer (``Report.status``) and a hash of every
    row's verdict (environment, benchmark, metric, verdict; an advisory regression apart) and of
    the benchmarks that could not run. Equal digests: a reader would see the same verdicts,
    whatever the numbers; ``--when on-change`` edits a comment only when its digest differs.
    """
    report = report_from(data)
    rows = sorted({(r.environment, r.benchmark, r.metric, r.counted_as) for r in report.rows})
    errors = sorted({benchmark for benchmark, _ in report.errors})
    text = json.dumps([report.status, rows, errors], ensure_ascii=False, separators=(",", ":"))
    return f"{report.status} {hashlib.sha256(text.encode()).hexdigest()[:16]}"


def verdicts_line(digest: str) -> str:
    """The hidden line that carries ``verdict_digest`` in the comment, above the marker."""
    return f"<!-- perf-gate:verdicts {digest} -->"


def comment_digest(body: str) -> str | None:
    """The verdict digest an earlier comment carries on a line of its own, else None (a
    comment from a perf-gate before the digest, or edited by hand)."""
    found = [m.group(1) for line in body.splitlines() if (m := _VERDICTS.match(line.strip()))]
    return found[-1] if found else None


def check_comparison(data: object, source: str) -> Mapping[str, Any]:
    """``data`` if it is a comparison report this renderer reads.

    Raises BaselineError naming ``source``, the key and the fix.
    """

    def fail(problem: str) -> BaselineError:
        return BaselineError(
            f"{source}: {problem}; pass the comparison.json a perf-gate run wrote "
            "(.perf-gate/comparison.json)",
            slug="comparison-file",
        )

    if not isinstance(data, Mapping):
        raise fail("not a JSON object")
    if data.get("format") not in SUPPORTED_FORMATS:
        supported = ", ".join(str(v) for v in SUPPORTED_FORMATS)
        found = data.get("format")
        raise fail(f"format {found!r} is not supported (this perf-gate reads {supported})")
    for key, kind in (("comparisons", list), ("exit_code", int), ("has_baseline", bool)):
        if not isinstance(data.get(key), kind):
            raise fail(f"key {key!r} is missing or not a {kind.__name__}")
    for index, item in enumerate(data["comparisons"]):
        if not isinstance(item, Mapping) or not all(
            isinstance(item.get(k), str) for k in ("benchmark", "metric", "verdict")
        ):
            raise fail(f"comparisons[{index}] lacks benchmark, metric or verdict")
    return data


@dataclass(frozen=True, kw_only=True)
class Limits:
    """How much of each part one rendering shows (None: everything)."""

    changed: int | None = None
    unchanged: int | None = None
    details: int | None = None  # rows of each other section
    diagnoses: int | None = None  # diagnosed benchmarks (each bounded: top operators, a few lines)
    charts: bool = True
    digest: bool = False


COMMENT_DIAGNOSES = 5  # diagnosed benchmarks in a comment; the job summary has them all
COMMENT_STEPS = (
    Limits(diagnoses=COMMENT_DIAGNOSES),
    *(
        Limits(
            unchanged=0,
            charts=False,
            digest=True,
            changed=rows,
            details=details,
            diagnoses=diagnoses,
        )
        for rows, details, diagnoses in (
            (200, 50, COMMENT_DIAGNOSES),
            (100, 20, COMMENT_DIAGNOSES),
            (50, 10, 3),
            (20, 5, 2),
            (5, 0, 1),
            (0, 0, 0),
        )
    ),
)
SUMMARY_STEPS = (
    Limits(),
    Limits(unchanged=2000),
    Limits(unchanged=500, changed=2000, details=500, diagnoses=200),
    Limits(unchanged=0, changed=500, details=100, diagnoses=50, charts=False),
    Limits(unchanged=0, changed=50, details=10, diagnoses=10, charts=False),
)


@dataclass(frozen=True, kw_only=True)
class View:
    """Everything the template can show, built once per report and cut per rendering."""

    headline: Markup
    changed: tuple[Row, ...]
    inconclusive: tuple[Row, ...]
    unchanged: tuple[Row, ...]
    over_budget: tuple[tuple[Markup, ...], ...]
    environment: tuple[tuple[Markup, ...], ...]
    dependencies: tuple[tuple[Markup, ...], ...]
    dependency_line: Markup | None
    dependency_sides: Markup | None
    trade_offs: tuple[Markup, ...]
    variants: VariantTable | None
    errors: tuple[Markup, ...]
    notes: tuple[Markup, ...]
    charts: tuple[Chart, ...]
    diagnoses: tuple[DiagnosisView, ...] = ()
    footer: dict[str, Any] = field(default_factory=dict)


def _commit(value: object) -> str | None:
    return value if isinstance(value, str) and _COMMIT.match(value) else None


def _footer(data: Mapping[str, Any], options: ReportOptions) -> dict[str, Any]:
    """Commits, environment key, legend, how to reproduce, and the marker."""
    baseline, current = _commit(data.get("baseline_commit")), _commit(data.get("current_commit"))
    reproduce = [f"git checkout {current}"] if current else []
    reproduce.append(
        f"pytest --perf-gate --perf-gate-ab {baseline}" if baseline else "pytest --perf-gate"
    )
    alpha = number(data.get("alpha"))
    key = data.get("environment_key")
    version = options.tool_version
    return {
        "run_url": safe(options.run_url)
        if options.run_url and _URL.match(options.run_url)
        else None,
        "has_baseline": data["has_baseline"],
        "interval": safe(f"{(1 - alpha) * 100:g}%") if alpha is not None else None,
        "alpha": safe(f"{alpha:g}") if alpha is not None else None,
        "baseline_commit": baseline,
        "current_commit": current,
        "environment_key": safe(escape_text(key, 40)) if isinstance(key, str) else None,
        "reproduce": [safe(line) for line in reproduce],
        "tool_version": safe(version) if _VERSION.match(version) else escape_text(version, 40),
        "marker": safe(marker(options.name)),
    }


def build_view(
    data: Mapping[str, Any], options: ReportOptions, trend: Sequence[TrendSeries] = ()
) -> View:
    """The view of a checked comparison dict (see ``check_comparison``)."""
    report = report_from(data)
    rows = ordered_rows(report.rows)
    unchanged = SEVERITY.index("unchanged")
    errors = [
        safe(f"{escape_text(benchmark)}: {escape_text(message, 3 * TEXT_LIMIT)}")
        for benchmark, message in report.errors
    ]
    texts = [*report.notes, *report.warnings]
    return View(
        headline=safe(headline(report, options.name)),
        changed=tuple(r for r in rows if r.severity != unchanged and not r.inconclusive),
        inconclusive=tuple(r for r in rows if r.inconclusive),
        unchanged=tuple(r for r in rows if r.severity == unchanged),
        over_budget=tuple(over_budget_rows(report)),
        environment=tuple(environment_rows(report)),
        dependencies=tuple(dependency_rows(report)),
        dependency_line=safe(escape_text(report.dependencies.sentence, 3 * TEXT_LIMIT))
        if report.dependencies
        else None,
        dependency_sides=dependency_sides(report),
        trade_offs=tuple(trade_off_lines(report)),
        variants=variant_table(report),
        errors=tuple(errors),
        notes=tuple(safe(escape_text(t, 3 * TEXT_LIMIT)) for t in texts),
        charts=tuple(charts(data, trend, options.trend_metric, options.max_charts))
        if options.chart
        else (),
        diagnoses=tuple(diagnosis_views(data)),
        footer=_footer(data, options),
    )


def _take(rows: Sequence[Any], limit: int | None) -> tuple[Sequence[Any], int]:
    """The first ``limit`` rows and how many were left out."""
    if limit is None or len(rows) <= limit:
        return rows, 0
    return rows[:limit], len(rows) - limit


def inconclusive_summary(rows: Sequence[Row]) -> str:
    """``3 inconclusive (could detect changes of 4.2% or more)``: the fold's summary, with the
    largest of the rows' detectable changes (each row could detect a change that large)."""
    mdes = [r.mde for r in rows if r.mde is not None]
    if not mdes:
        return f"{len(rows)} inconclusive"
    largest = percent(max(mdes)).lstrip("+")
    return f"{len(rows)} inconclusive (could detect changes of {largest} or more)"


def _context(view: View, limits: Limits, elsewhere: str, verdicts: str) -> dict[str, Any]:
    context: dict[str, Any] = {
        "headline": view.headline,
        "elsewhere": elsewhere,
        "digest": limits.digest,
        "unchanged_count": len(view.unchanged),
        "inconclusive_summary": safe(inconclusive_summary(view.inconclusive)),
        "show_mode": any(r.mode for r in (*view.changed, *view.inconclusive, *view.unchanged)),
        "verdicts": safe(verdicts) if verdicts else None,
        "variants": view.variants,
        "dependency_line": view.dependency_line,
        "dependency_sides": view.dependency_sides,
        "charts": view.charts if limits.charts else (),
        "profiles_artifact": PROFILES_ARTIFACT,
        **view.footer,
    }
    parts = {
        "changed": (view.changed, limits.changed),
        "inconclusive": (view.inconclusive, limits.changed),
        "unchanged": (view.unchanged, limits.unchanged),
        "over_budget": (view.over_budget, limits.details),
        "environment": (view.environment, limits.details),
        "dependencies": (view.dependencies, limits.details),
        "trade_offs": (view.trade_offs, limits.details),
        "variant_rows": (view.variants.rows if view.variants else (), limits.details),
        "errors": (view.errors, limits.details),
        "notes": (view.notes, limits.details),
        "diagnoses": (view.diagnoses, limits.diagnoses),
    }
    for name, (rows, limit) in parts.items():
        context[name], context[f"{name}_more"] = _take(rows, limit)
    for name in ("changed", "inconclusive", "unchanged"):  # the results' tables
        context[name], context[f"{name}_notes"] = verdict_cells(context[name])
    context["traced"] = any(d.traced for d in context["diagnoses"])
    return context


def _environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(Path(__file__).with_name("templates")),
        undefined=StrictUndefined,
        autoescape=False,
        finalize=finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


_ENVIRONMENT = _environment()


def _render(view: View, limits: Limits, elsewhere: str, verdicts: str) -> str:
    context = _context(view, limits, elsewhere, verdicts)
    return _ENVIRONMENT.get_template("report.md.j2").render(**context)


def _fit(
    view: View,
    steps: Sequence[Limits],
    size: Callable[[str], int],
    limit: int,
    elsewhere: str,
    verdicts: str = "",
) -> str:
    """The first rendering, most complete first, whose size is within ``limit``; rows left
    out are said to be ``elsewhere``.

    Raises PublishError when even the shortest digest does not fit (a limit of a few hundred).
    """
    text = ""
    for limits in steps:
        text = _render(view, limits, elsewhere, verdicts)
        if size(text) <= limit:
            return text
    raise PublishError(
        f"the report needs {size(text)} characters even as a digest; the limit is {limit}",
        slug="github-too-long",
    )


def utf16_length(text: str) -> int:
    """Characters as GitHub counts them (UTF-16 code units: an emoji counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def render_summary(
    data: Mapping[str, Any],
    options: ReportOptions | None = None,
    trend: Sequence[TrendSeries] = (),
    limit: int = SUMMARY_LIMIT,
) -> str:
    """The full report for the job summary and ``--format markdown``, under ``limit`` bytes."""
    view = build_view(data, options or ReportOptions(), trend)
    size = lambda text: len(text.encode("utf-8"))  # noqa: E731
    return _fit(view, SUMMARY_STEPS, size, limit, "in comparison.json")


def render_comment(
    data: Mapping[str, Any],
    options: ReportOptions | None = None,
    trend: Sequence[TrendSeries] = (),
    limit: int = COMMENT_LIMIT,
) -> str:
    """The PR comment: the full report when it fits in ``limit`` characters, else a digest of the
    worst changes that points to the job summary. Its last lines are hidden: the verdict digest
    (``verdict_digest``, for ``--when on-change``) and the marker."""
    view = build_view(data, options or ReportOptions(), trend)
    verdicts = verdicts_line(verdict_digest(data))
    return _fit(view, COMMENT_STEPS, utf16_length, limit, "in the job summary", verdicts)
