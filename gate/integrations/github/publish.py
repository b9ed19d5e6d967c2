"""Publishing the report: the sticky PR comment, the job summary, annotations and outputs.

Orchestration for ``perf-gate comment`` and ``perf-gate summary``: read comparison.json (and
the optional trend history), render, then hand the text to GitHub (github.py) or to the
runner's files (actions.py). Collaborators come in as arguments: the environment mapping, a
factory for the GitHub client, the output streams. Publishing never changes the gate's verdict:
a comment that cannot be posted is a warning (an error only with ``strict``), a fork's
read-only token degrades to ``.perf-gate/comment.md``, and a runner file
(``GITHUB_STEP_SUMMARY``, ``GITHUB_OUTPUT``) that cannot be written is a warning.

Only a comment written by the token's own account is ever edited (:func:`comment_author`), and
with ``--when on-change`` only when its verdicts changed (:func:`on_change_kept`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from gate import __version__
from gate.core.types import ExitCode
from gate.errors import BaselineError, ConfigError, GateError, PublishError
from gate.integrations.github.actions import (
    ActionsEnv,
    append_summary,
    read_event,
    regression_annotations,
    write_outputs,
)
from gate.integrations.github.client import (
    ACTIONS_BOT,
    Comment,
    GitHubClient,
    ReadOnlyTokenError,
    Secret,
    has_marker,
    same_login,
    upsert_comment,
)
from gate.report.content import report_from
from gate.report.markdown import (
    ReportOptions,
    check_comparison,
    comment_digest,
    marker,
    render_comment,
    render_summary,
    verdict_digest,
)
from gate.report.trend import TrendSeries, trend_from_json

COMMENT_NAME = "comment.md"
SUMMARY_NAME = "summary.md"
WHEN = ("always", "on-change", "never")
# the login whose comments perf-gate may edit, when GitHub cannot tell it (a GitHub App's token)
AUTHOR_VARIABLE = "PERF_GATE_COMMENT_AUTHOR"
FAILING = ("regression", "over-budget", "parity-fail", "error")


@dataclass(frozen=True, kw_only=True)
class ReportInput:
    """Where the report comes from and how it is labelled."""

    comparison: Path
    report_dir: Path
    history: Path | None = None
    name: str = "main"
    chart: bool = True


def _read_json(path: Path, what: str, slug: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(
            f"{path}: no such {what}; run the gate first (it writes .perf-gate/comparison.json) "
            "or pass the file's path",
            slug=slug,
        ) from None
    except (OSError, ValueError) as exc:
        raise BaselineError(f"{path}: cannot read the {what}: {exc}", slug=slug) from exc


def load_report(source: ReportInput) -> tuple[Mapping[str, Any], tuple[TrendSeries, ...]]:
    """The checked comparison dict and the trend series (empty without ``history``).

    Raises BaselineError for a missing or unreadable comparison, ConfigError for a bad history.
    """
    data = check_comparison(
        _read_json(source.comparison, "comparison report", "comparison-file"),
        str(source.comparison),
    )
    if source.history is None:
        return data, ()
    try:
        raw = json.loads(source.history.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{source.history}: cannot read the history (--history): {exc}", slug="history-file"
        ) from exc
    return data, trend_from_json(raw, str(source.history))


def check_this_run(data: Mapping[str, Any], path: Path, env: ActionsEnv) -> None:
    """In GitHub Actions, refuse a comparison that another workflow run wrote: the gate
    removes the previous comparison when it starts, so a file stamped with another run means
    this run's gate step did not finish, or the file came from a cache or another run;
    publishing it would report an old verdict as this one's. On a ``workflow_run`` event the
    run that triggered it is this run too. A file without a stamp (written by hand, or by a
    perf-gate before the stamp) cannot be placed and is published as it is.

    Raises BaselineError (exit 2)."""
    if not env.in_actions or not env.run_id:
        return
    expected = {env.run_id, *_triggering_run(env)}
    stamp = data.get("run")
    written = stamp.get("github_run") if isinstance(stamp, Mapping) else None
    if not isinstance(written, str) or written.split("/")[0] in expected:
        return
    raise BaselineError(
        f"{path}: was written by workflow run {written}, not by this run ({env.run_id}); "
        "this run's gate step did not "
        "finish (its log says why) or the file was restored from elsewhere, and a previous "
        "run's verdict is not published as this one's",
        slug="comparison-stale",
    )


def _triggering_run(env: ActionsEnv) -> list[str]:
    """The id of the run a ``workflow_run`` event reports on, where the event file has it."""
    if env.event_name != "workflow_run" or env.event_path is None:
        return []
    try:
        payload = json.loads(env.event_path.read_text(encoding="utf-8"))
        run_id = payload["workflow_run"]["id"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [str(run_id)]


def options_for(source: ReportInput, env: ActionsEnv) -> ReportOptions:
    marker(source.name)  # a bad --name is a usage error before anything is written
    return ReportOptions(
        name=source.name, chart=source.chart, run_url=env.run_url, tool_version=__version__
    )


def failing_count(data: Mapping[str, Any]) -> int:
    """Comparisons that fail the gate (advisory ones do not)."""
    return sum(
        1 for c in data["comparisons"] if c.get("verdict") in FAILING and not c.get("advisory")
    )


def status_of(data: Mapping[str, Any]) -> str:
    return {0: "passed", 1: "failed"}.get(data["exit_code"], "error")


def _write(path: Path, text: str) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BaselineError(
            f"{path}: cannot write the report: {exc}", slug="baseline-write"
        ) from exc
    return path


# ---------------------------------------------------------------------------------------------
# perf-gate summary


@dataclass(frozen=True, kw_only=True)
class SummaryOutcome:
    """``warnings``: runner files that could not be written (one line each, for the caller
    to print); the summary is still in ``path``."""

    path: Path
    appended: bool
    annotations: tuple[str, ...]
    outputs: Mapping[str, str]
    warnings: tuple[str, ...] = ()


def warning_of(exc: GateError) -> str:
    """A GateError as a warning line (its text and its ``perf-gate explain`` pointer)."""
    return exc.one_line().removeprefix("perf-gate: error: ")


def publish_summary(source: ReportInput, env: ActionsEnv, stdout: TextIO) -> SummaryOutcome:
    """Write the full report to ``summary.md``, append it to the job summary, print the
    annotations (in Actions) and set the outputs ``status``, ``regressions``, ``report-path``.

    Raises BaselineError/ConfigError for unreadable inputs. A job summary or outputs file that
    cannot be written is a warning in the outcome, not an error: the summary never changes the
    verdict.
    """
    data, trend = load_report(source)
    check_this_run(data, source.comparison, env)
    text = render_summary(data, options_for(source, env), trend)
    path = _write(source.report_dir / SUMMARY_NAME, text)
    warnings: list[str] = []
    appended = False
    if env.step_summary is not None:
        try:
            append_summary(env.step_summary, text)
            appended = True
        except PublishError as exc:
            warnings.append(warning_of(exc))
    lines = tuple(regression_annotations(data)) if env.in_actions else ()
    for line in lines:
        print(line, file=stdout)
    outputs = {
        "status": status_of(data),
        "regressions": str(failing_count(data)),
        "report-path": str(path),
    }
    if env.output is not None:
        try:
            write_outputs(env.output, outputs)
        except PublishError as exc:
            warnings.append(warning_of(exc))
    return SummaryOutcome(
        path=path,
        appended=appended,
        annotations=lines,
        outputs=outputs,
        warnings=tuple(warnings),
    )


# ---------------------------------------------------------------------------------------------
# perf-gate comment


@dataclass(frozen=True, kw_only=True)
class CommentRequest:
    source: ReportInput
    pr: int | None = None
    repository: str | None = None
    when: str = "always"
    strict: bool = False


@dataclass(frozen=True, kw_only=True)
class CommentOutcome:
    """``action``: created, updated, unchanged (``on-change``: the comment on the pull request
    already shows these verdicts and was left as it is), skipped, file (fork) or failed;
    ``exit_code`` is 0 unless ``strict`` and the comment failed."""

    action: str
    message: str
    file: Path
    exit_code: int = ExitCode.OK
    outputs: Mapping[str, str] = field(default_factory=dict)


ClientFactory = Callable[[str, Secret], GitHubClient]


def comment_author(
    client: GitHubClient, environ: Mapping[str, str], warn: Callable[[str], None]
) -> Callable[[], str | None]:
    """Whose comments perf-gate may edit: the account the token comments as.

    In order: ``PERF_GATE_COMMENT_AUTHOR`` when set (a GitHub App's token comments as
    ``APP[bot]``, which GitHub does not tell an installation token); the token's user
    (``GET /user``: a personal access token); in GitHub Actions, ``github-actions[bot]`` (a
    workflow's GITHUB_TOKEN gets 403 from ``GET /user`` and comments as that bot); else nobody:
    no earlier comment is edited, a new one is posted, and a warning says how to fix it. Asked
    lazily, only when some comment carries the marker.
    """

    def resolve() -> str | None:
        named = environ.get(AUTHOR_VARIABLE, "").strip()
        if named:
            return named
        login = client.token_login()
        if login:
            return login
        if environ.get("GITHUB_ACTIONS") == "true":
            return ACTIONS_BOT
        warn(
            "GitHub does not say which account the token comments as (GET /user: 403), so no "
            f"earlier comment is edited and a new one is posted; set {AUTHOR_VARIABLE} to that "
            "account's login (a GitHub App comments as APP-SLUG[bot])"
        )
        return None

    return resolve


def _changed(data: Mapping[str, Any]) -> bool:
    """Worth a first comment: a verdict other than a pass with every row unchanged (a failure,
    an error, no baseline, a baseline from another environment), or any row not unchanged."""
    report = report_from(data)
    return report.status != "pass" or any(r.verdict != "unchanged" for r in report.rows)


def _once(resolve: Callable[[], str | None]) -> Callable[[], str | None]:
    """``resolve`` asked at most once (``GET /user`` is one call, however many lookups)."""
    answers: list[str | None] = []

    def cached() -> str | None:
        if not answers:
            answers.append(resolve())
        return answers[0]

    return cached


def own_comment(
    client: GitHubClient,
    repository: str,
    number: int,
    sign: str,
    author: Callable[[], str | None],
) -> Comment | None:
    """This gate's comment on the pull request: the first that carries ``sign`` on a line of
    its own and was written by ``author()`` (the rule ``upsert_comment`` edits by); None when
    there is none. Raises GitHubError."""
    marked = [c for c in client.list_comments(repository, number) if has_marker(c.body, sign)]
    if not marked:
        return None
    login = author()
    return next((c for c in marked if login and same_login(c.author, login)), None)


def on_change_kept(existing: Comment | None, data: Mapping[str, Any]) -> tuple[str, str] | None:
    """``--when on-change``: (action, message) when the pull request is left as it is, None
    when the comment is to be posted or edited.

    With no earlier comment, one is posted only when there is something to see (``_changed``);
    an earlier comment is edited only when its verdict digest (``verdict_digest``: the gate's
    answer and every row's verdict) differs from this run's, or it has none. Its numbers and
    commit then stay those of the run that last changed a verdict.
    """
    if existing is None:
        if _changed(data):
            return None
        return "skipped", "nothing changed and no earlier comment: not posted (--when on-change)"
    if comment_digest(existing.body) != verdict_digest(data):
        return None
    return (
        "unchanged",
        f"the verdicts are those of comment {existing.url or existing.id}: not edited "
        "(--when on-change)",
    )


def _target(request: CommentRequest, env: ActionsEnv) -> tuple[str, int] | None:
    """(repository, PR number) from the arguments or the event file; None: not a PR."""
    event = read_event(env.event_path) if env.event_path and env.event_path.is_file() else None
    number = request.pr if request.pr is not None else event.number if event else None
    if number is None:
        return None
    repository = request.repository or env.repository or (event.repository if event else "")
    if not repository:
        raise ConfigError(
            "which repository? set GITHUB_REPOSITORY or pass --repo OWNER/NAME",
            slug="github-event",
        )
    return repository, number


def publish_comment(
    request: CommentRequest,
    environ: Mapping[str, str],
    make_client: ClientFactory,
    warn: Callable[[str], None],
) -> CommentOutcome:
    """Render the comment to ``comment.md``, then create or update the PR's sticky comment.

    Raises GateError only for unreadable inputs or a bad ``--name``; publishing failures are
    outcomes (``failed``, with exit code 0 unless ``strict``).
    """
    env = ActionsEnv.from_environ(environ)
    source = request.source
    data, trend = load_report(source)
    check_this_run(data, source.comparison, env)
    options = options_for(source, env)
    path = _write(source.report_dir / COMMENT_NAME, render_comment(data, options, trend))
    token = environ.get("GITHUB_TOKEN", "")

    def say(message: str) -> None:
        """Warn, with the token (and anything like a credential) redacted once more."""
        warn(Secret(token).redact(message))

    def outcome(
        action: str,
        message: str,
        code: int = ExitCode.OK,
        outputs: Mapping[str, str] | None = None,
    ) -> CommentOutcome:
        written = {"comment-file-written": "true" if action in ("file", "skipped") else "false"}
        result = CommentOutcome(
            action=action,
            message=message,
            file=path,
            exit_code=code,
            outputs={**written, **(outputs or {})},
        )
        if env.output is not None:
            try:
                write_outputs(env.output, result.outputs)
            except PublishError as exc:
                say(warning_of(exc))
        return result

    if request.when == "never":
        return outcome("skipped", f"not posted (--when never); the comment is in {path}")
    try:
        target = _target(request, env)
        if target is None:
            if request.strict:
                raise ConfigError(
                    "no pull request: pass --pr N or run on a pull_request event",
                    slug="github-event",
                )
            return outcome("skipped", f"not a pull request; the comment is in {path}")
        repository, number = target
        if not token:
            raise ConfigError(
                "GITHUB_TOKEN is not set; give the step `env: GITHUB_TOKEN: ${{ github.token }}`",
                slug="github-auth",
            )
        client = make_client(environ.get("GITHUB_API_URL") or env.api_url, Secret(token))
        author = _once(comment_author(client, environ, say))
        if request.when == "on-change":
            existing = own_comment(client, repository, number, marker(source.name), author)
            kept = on_change_kept(existing, data)
            if kept is not None:
                ids = (
                    {"comment-id": str(existing.id), "comment-url": existing.url}
                    if existing
                    else {}
                )
                return outcome(kept[0], kept[1], outputs=ids)
        done = upsert_comment(
            client,
            repository,
            number,
            marker(source.name),
            lambda limit: render_comment(
                data, options, trend, **({"limit": limit} if limit else {})
            ),
            author=author,
        )
    except ReadOnlyTokenError as exc:
        say(f"{exc.message}: {path}")
        return outcome("file", f"the token cannot comment (fork); the comment is in {path}")
    except GateError as exc:
        say(f"comment not posted: {warning_of(exc)}")
        code = exc.exit_code if request.strict else ExitCode.OK
        return outcome("failed", f"comment not posted; it is in {path}", code)
    if done is None:  # not reached: upsert_comment creates when it finds none
        return outcome("skipped", f"not posted; the comment is in {path}")
    return outcome(
        done.action,
        f"{done.action} comment {done.comment.url or done.comment.id} on {repository}#{number}"
        + foreign_note(done.foreign),
        outputs={"comment-id": str(done.comment.id), "comment-url": done.comment.url},
    )


def foreign_note(count: int) -> str:
    """What was left alone: comments that carry the marker but another account wrote."""
    if not count:
        return ""
    if count == 1:
        return " (1 comment by another account carries the marker and was left alone)"
    return f" ({count} comments by other accounts carry the marker and were left alone)"
