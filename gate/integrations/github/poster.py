"""The fork-safe comment: the artifact a pull request's run leaves, and the ``workflow_run``
poster that posts it.

A fork's ``GITHUB_TOKEN`` cannot comment, so its run writes the comment and what it is for to
``<report_dir>/pr-comment/`` and the action uploads that. The poster runs with a write token
in the base repository, so it treats the artifact as data from code nobody reviewed: the body
is posted only when it carries perf-gate's marker and fits GitHub's limit, and only to the pull
request whose head commit, asked of GitHub's API, is the commit the triggering run tested
(taken from the event or the API, never from the artifact).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.config import GateConfig
from gate.core.types import ExitCode
from gate.errors import ConfigError, PublishError
from gate.integrations.github.actions import ActionsEnv, PullRequest
from gate.integrations.github.client import GitHubClient, Secret, has_marker, upsert_comment
from gate.integrations.github.event import (
    PULL_REQUEST_EVENTS,
    SHA,
    STATUSES,
    CiOutcome,
    CiSettings,
    Event,
)
from gate.integrations.github.publish import (
    COMMENT_NAME,
    ClientFactory,
    comment_author,
    foreign_note,
)
from gate.report.markdown import COMMENT_LIMIT, marker, utf16_length

ARTIFACT_DIR = "pr-comment"  # under the report dir: what the upload step uploads
ARTIFACT_META = "pull-request.json"
ARTIFACT_PREFIX = "perf-gate-comment-"
ARTIFACT_FORMAT = 1


def write_artifact(
    config: GateConfig, pull: PullRequest, head_sha: str | None, outputs: Mapping[str, str]
) -> Path:
    """The comment and what it is for, in the folder the action uploads for the poster.

    Raises PublishError when the folder cannot be written.
    """
    folder = config.report_dir / ARTIFACT_DIR
    meta = {
        "format": ARTIFACT_FORMAT,
        "repository": pull.repository,
        "number": pull.number,
        "head_sha": head_sha,
        "name": config.baseline.stem,
        "status": outputs.get("status", ""),
        "regressions": outputs.get("regressions", ""),
    }
    try:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        shutil.copyfile(config.report_dir / COMMENT_NAME, folder / COMMENT_NAME)
        (folder / ARTIFACT_META).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise PublishError(
            f"{folder}: cannot write the comment artifact: {exc.strerror or exc}",
            slug="ci-artifact-write",
        ) from None
    return folder


# ---------------------------------------------------------------------------------------------
# workflow_run: post a fork's comment


@dataclass(frozen=True, kw_only=True)
class TriggeringRun:
    """The pull request run whose artifact is posted, as GitHub (not the artifact) describes it."""

    event: str
    head_sha: str
    head_repository: str
    pull_numbers: tuple[int, ...]

    @classmethod
    def from_dict(cls, run: Mapping[str, Any]) -> TriggeringRun:
        head_repo = run.get("head_repository")
        pulls = run.get("pull_requests")
        return cls(
            event=str(run.get("event") or ""),
            head_sha=str(run.get("head_sha") or ""),
            head_repository=str(head_repo.get("full_name") or "")
            if isinstance(head_repo, Mapping)
            else "",
            pull_numbers=tuple(
                p["number"]
                for p in (pulls if isinstance(pulls, list) else [])
                if isinstance(p, Mapping) and isinstance(p.get("number"), int)
            ),
        )


def triggering_run(
    settings: CiSettings, event: Event, client: GitHubClient, repository: str
) -> TriggeringRun:
    """The workflow_run event's run, or the ``pr-run-id`` run fetched from the API.

    Raises ConfigError when neither is there, GitHubError when the API call fails.
    """
    if settings.pr_run_id is not None:
        url = client.repo_url(repository, f"actions/runs/{settings.pr_run_id}")
        response = client.request("GET", url)
        data = client.json(response)
        if not isinstance(data, Mapping):
            raise client.shape_error(response, "a workflow run", data)
        return TriggeringRun.from_dict(data)
    run = event.payload.get("workflow_run")
    if event.name != "workflow_run" or not isinstance(run, Mapping):
        raise ConfigError(
            f"mode post-comment runs on a workflow_run event (this is {event.name or 'none'}); "
            "or give the pull request's run with the 'pr-run-id' input",
            slug="ci-post-comment",
        )
    return TriggeringRun.from_dict(run)


@dataclass(frozen=True, kw_only=True)
class Artifact:
    """A downloaded comment artifact, checked as data."""

    folder: Path
    number: int
    name: str
    body: str
    status: str
    regressions: str


def read_artifact(folder: Path) -> Artifact:
    """Read and check one artifact folder. Raises PublishError naming what is wrong."""

    def bad(problem: str) -> PublishError:
        return PublishError(
            f"{folder}: {problem}; the artifact was not made by perf-gate ci (not posted)",
            slug="ci-artifact",
        )

    try:
        meta = json.loads((folder / ARTIFACT_META).read_text(encoding="utf-8"))
        body = (folder / COMMENT_NAME).read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise bad(f"unreadable ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != ARTIFACT_FORMAT:
        raise bad(f"{ARTIFACT_META} is not format {ARTIFACT_FORMAT}")
    number, name = meta.get("number"), meta.get("name")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise bad("no pull request number")
    if not isinstance(name, str):
        raise bad("no comment name")
    try:
        sign = marker(name)
    except ConfigError:
        raise bad(f"the comment name {name[:70]!r} is not valid") from None
    if not has_marker(body, sign):
        raise bad("the comment does not carry perf-gate's marker")
    if utf16_length(body) > COMMENT_LIMIT:
        raise bad(f"the comment is longer than GitHub's {COMMENT_LIMIT} characters")
    status = meta.get("status")
    regressions = meta.get("regressions")
    return Artifact(
        folder=folder,
        number=number,
        name=name,
        body=body,
        status=status if status in STATUSES else "",
        regressions=regressions if isinstance(regressions, str) and regressions.isdigit() else "",
    )


def find_artifacts(folder: Path) -> list[Path]:
    """Folders holding a comment artifact: ``folder`` itself, or its subfolders (one per
    downloaded artifact)."""
    if (folder / ARTIFACT_META).is_file():
        return [folder]
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if (p / ARTIFACT_META).is_file())


def verify_pull(
    client: GitHubClient, repository: str, artifact: Artifact, run: TriggeringRun
) -> str | None:
    """None when the artifact's pull request is the one ``run`` tested, else why not."""
    if run.pull_numbers and artifact.number not in run.pull_numbers:
        return f"#{artifact.number} is not among the run's pull requests {run.pull_numbers}"
    response = client.request("GET", client.repo_url(repository, f"pulls/{artifact.number}"))
    pull = client.json(response)
    head = pull.get("head") if isinstance(pull, Mapping) else None
    if not isinstance(head, Mapping):
        raise client.shape_error(response, "a pull request with a 'head'", pull)
    repo = head.get("repo")
    head_repo = str(repo.get("full_name") or "") if isinstance(repo, Mapping) else ""
    if head.get("sha") != run.head_sha:
        return (
            f"#{artifact.number}'s head is {client.redact(str(head.get('sha')))[:12]}, but the "
            f"run tested {run.head_sha[:12]} (a newer push has its own run)"
        )
    if run.head_repository and head_repo != run.head_repository:
        return (
            f"#{artifact.number} comes from {client.redact(head_repo)[:100]}, the run from "
            f"{run.head_repository}"
        )
    return None


def _fixed(body: str) -> Callable[[int | None], str]:
    """The artifact's body whatever length is asked: it was checked to fit already."""
    return lambda limit: body


def post_comment(
    settings: CiSettings,
    env: ActionsEnv,
    event: Event,
    environ: Mapping[str, str],
    make_client: ClientFactory,
    warn: Callable[[str], None],
) -> CiOutcome:
    """Post each downloaded comment artifact to the pull request it belongs to."""
    folder = settings.comment_dir or Path(environ.get("RUNNER_TEMP", ".")) / "perf-gate-comment"
    found = find_artifacts(folder)
    outputs: dict[str, str] = {"comment-file-written": "false"}
    if not found:
        return CiOutcome(
            mode="post-comment",
            exit_code=ExitCode.OK,
            outputs=outputs,
            message=f"no comment artifact in {folder}: the pull request's run commented itself",
        )
    token = environ.get("GITHUB_TOKEN", "")
    if not token:
        raise ConfigError(
            "GITHUB_TOKEN is not set; the action passes its github-token input", slug="github-auth"
        )
    repository = env.repository or event.repository
    client = make_client(env.api_url, Secret(token))
    run = triggering_run(settings, event, client, repository)
    if run.event not in PULL_REQUEST_EVENTS or not SHA.match(run.head_sha):
        return CiOutcome(
            mode="post-comment",
            exit_code=ExitCode.OK,
            outputs=outputs,
            message=f"the triggering run was a {run.event or 'unknown'} run: nothing to post",
        )
    lines = []
    for path in found:
        artifact = read_artifact(path)
        refused = verify_pull(client, repository, artifact, run)
        if refused:
            warn(f"comment not posted: {refused}")
            lines.append(f"not posted: {refused}")
            continue
        done = upsert_comment(
            client,
            repository,
            artifact.number,
            marker(artifact.name),
            _fixed(artifact.body),
            author=comment_author(client, environ, warn),
        )
        if done is not None:
            outputs.update(
                {
                    "comment-id": str(done.comment.id),
                    "status": artifact.status,
                    "regressions": artifact.regressions,
                }
            )
            lines.append(
                f"{done.action} comment {done.comment.id} on {repository}#{artifact.number}"
                + foreign_note(done.foreign)
            )
    return CiOutcome(
        mode="post-comment", exit_code=ExitCode.OK, outputs=outputs, message="; ".join(lines)
    )
