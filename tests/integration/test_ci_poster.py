"""The fork-safe poster (``perf-gate ci`` on workflow_run) against the GitHub API test server:
the artifact is posted only to the pull request whose head GitHub reports as the commit the
run tested; stale, forged or damaged artifacts are not posted. Every request is checked
against GitHub's OpenAPI description (tests/integration/_github.py)."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from gate.errors import ConfigError, PublishError
from gate.integrations.github import ci
from gate.integrations.github.client import GitHubClient, RetryPolicy, Secret
from gate.integrations.github.event import CiOutcome, CiSettings
from gate.integrations.github.poster import ARTIFACT_META

from ._github import FIXTURES, TOKEN, FakeGitHub

REPO = "Codertocat/Hello-World"
EVENTS = FIXTURES / "events"
MARKER = "<!-- perf-gate:comment name=main -->"
RUN = json.loads((EVENTS / "workflow_run.completed.fork.json").read_text(encoding="utf-8"))
PULL = json.loads((EVENTS / "pull_request.synchronize.fork.json").read_text(encoding="utf-8"))
HEAD = RUN["workflow_run"]["head_sha"]


@pytest.fixture
def fake(httpserver: HTTPServer) -> Iterator[FakeGitHub]:
    github = FakeGitHub(httpserver)
    github.pulls[(REPO, 2)] = copy.deepcopy(PULL["pull_request"])
    yield github
    assert github.problems == [], "requests or answers outside GitHub's OpenAPI description"


def artifact(folder: Path, body: str = f"### ✅ no regressions\n\n{MARKER}\n", **meta: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "comment.md").write_text(body, encoding="utf-8")
    fields = {
        "format": 1,
        "repository": REPO,
        "number": 2,
        "head_sha": HEAD,
        "name": "main",
        "status": "pass",
        "regressions": "0",
    }
    (folder / ARTIFACT_META).write_text(json.dumps({**fields, **meta}), encoding="utf-8")
    return folder


def post(
    fake: FakeGitHub, tmp_path: Path, *, event: dict[str, Any] | None = None, **settings: Any
) -> tuple[CiOutcome, list[str], str]:
    """Run the poster; returns the outcome, the warnings and the step outputs."""
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event or RUN), encoding="utf-8")
    output = tmp_path / "github_output"
    environ = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": fake.base,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_EVENT_NAME": "workflow_run",
        "GITHUB_EVENT_PATH": str(event_file),
        "GITHUB_OUTPUT": str(output),
        "RUNNER_TEMP": str(tmp_path),
    }
    warnings: list[str] = []

    def client(api_url: str, token: Secret) -> GitHubClient:
        return GitHubClient(api_url=api_url, token=token, retry=RetryPolicy(timeout=5.0))

    outcome = ci.run_ci(
        CiSettings(**settings),
        environ,
        make_client=client,
        warn=warnings.append,
        stdout=io.StringIO(),
        progress=lambda message: None,
    )
    return outcome, warnings, output.read_text(encoding="utf-8") if output.is_file() else ""


def test_the_forks_comment_is_posted_to_its_pull_request(fake: FakeGitHub, tmp_path: Path) -> None:
    artifact(tmp_path / "perf-gate-comment" / "perf-gate-comment-main")
    outcome, warnings, outputs = post(fake, tmp_path)
    assert outcome.mode == "post-comment"
    assert warnings == []
    (body,) = fake.bodies(REPO, 2)
    assert body.rstrip().endswith(MARKER)
    assert fake.calls()[:2] == [
        ("GET", f"/repos/{REPO}/pulls/2"),
        ("GET", f"/repos/{REPO}/issues/2/comments"),
    ]
    comment_id = fake.comments[(REPO, 2)][0]["id"]
    assert outcome.outputs["comment-id"] == str(comment_id)
    assert f"\n{comment_id}\n" in outputs
    assert f"created comment {comment_id} on {REPO}#2" in outcome.message
    # the next run of the same pull request updates the one comment
    artifact(tmp_path / "perf-gate-comment" / "perf-gate-comment-main", f"second\n{MARKER}\n")
    again, _, _ = post(fake, tmp_path)
    assert fake.bodies(REPO, 2) == [f"second\n{MARKER}\n"]
    assert "updated comment" in again.message


def test_a_pull_request_pushed_again_since_is_not_posted(fake: FakeGitHub, tmp_path: Path) -> None:
    fake.pulls[(REPO, 2)]["head"]["sha"] = "f" * 40  # a newer push has its own run
    artifact(tmp_path / "perf-gate-comment")
    outcome, warnings, _ = post(fake, tmp_path)
    assert fake.bodies(REPO, 2) == []
    assert [m for m, _ in fake.calls()] == ["GET"]
    assert "the run tested ec26c3e57ca3" in warnings[0]
    assert outcome.exit_code == 0


def test_an_artifact_naming_another_pull_request_is_not_posted(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    other = copy.deepcopy(PULL["pull_request"])
    other["number"], other["head"]["sha"] = 7, "e" * 40
    fake.pulls[(REPO, 7)] = other
    artifact(tmp_path / "perf-gate-comment", number=7)  # the fork claims someone else's PR
    _, warnings, _ = post(fake, tmp_path)
    assert fake.bodies(REPO, 7) == []
    assert "#7's head is eeeeeeeeeeee" in warnings[0]


def test_the_same_commit_from_another_repository_is_not_posted(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    fake.pulls[(REPO, 2)]["head"]["repo"]["full_name"] = "someone/else"
    artifact(tmp_path / "perf-gate-comment")
    _, warnings, _ = post(fake, tmp_path)
    assert fake.bodies(REPO, 2) == []
    assert "comes from someone/else, the run from forker/Hello-World" in warnings[0]


@pytest.mark.parametrize(
    ("body", "meta", "problem"),
    [
        ("no marker here\n", {}, "does not carry perf-gate's marker"),
        (f"{'x' * 70_000}\n{MARKER}\n", {}, "longer than GitHub's 65536 characters"),
        (f"ok\n{MARKER}\n", {"number": "2"}, "no pull request number"),
        (f"ok\n{MARKER}\n", {"name": "main -->\n<script>"}, "is not valid"),
        (f"ok\n{MARKER}\n", {"format": 99}, "is not format 1"),
    ],
)
def test_a_damaged_or_hostile_artifact_is_refused(
    fake: FakeGitHub, tmp_path: Path, body: str, meta: dict[str, Any], problem: str
) -> None:
    artifact(tmp_path / "perf-gate-comment", body, **meta)
    with pytest.raises(PublishError) as caught:
        post(fake, tmp_path)
    assert problem in caught.value.message
    assert caught.value.slug == "ci-artifact"
    assert fake.bodies(REPO, 2) == []
    assert "status<<" in (tmp_path / "github_output").read_text(encoding="utf-8")


def test_no_artifact_means_the_pull_request_commented_itself(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    outcome, _, outputs = post(fake, tmp_path)
    assert fake.calls() == []
    assert "no comment artifact" in outcome.message
    assert "comment-file-written<<" in outputs


def test_a_run_that_was_not_a_pull_request_posts_nothing(fake: FakeGitHub, tmp_path: Path) -> None:
    push_run = copy.deepcopy(RUN)
    push_run["workflow_run"]["event"] = "push"
    artifact(tmp_path / "perf-gate-comment")
    outcome, _, _ = post(fake, tmp_path, event=push_run)
    assert fake.bodies(REPO, 2) == []
    assert "was a push run: nothing to post" in outcome.message


def test_pr_run_id_asks_github_for_the_run(fake: FakeGitHub, tmp_path: Path) -> None:
    rest = {**copy.deepcopy(RUN["workflow_run"]), "display_title": "x", "path": "perf.yml"}
    fake.runs[(REPO, 4242)] = rest
    artifact(tmp_path / "perf-gate-comment")
    dispatch = {"repository": RUN["repository"], "inputs": {}}
    outcome, _, _ = post(fake, tmp_path, event=dispatch, pr_run_id=4242)
    assert fake.calls()[0] == ("GET", f"/repos/{REPO}/actions/runs/4242")
    assert len(fake.bodies(REPO, 2)) == 1
    assert outcome.outputs["status"] == "pass"


def test_post_comment_without_a_workflow_run_names_the_fix(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    artifact(tmp_path / "perf-gate-comment")
    with pytest.raises(ConfigError, match="pr-run-id"):
        post(fake, tmp_path, event={"repository": RUN["repository"]}, mode="post-comment")


def test_the_poster_never_edits_a_persons_comment_that_carries_the_marker(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    quoted = f"the bot said:\n{MARKER}\n"
    fake.add_comment(REPO, 2, quoted, login="octocat")
    artifact(tmp_path / "perf-gate-comment")
    outcome, _, _ = post(fake, tmp_path)
    assert fake.bodies(REPO, 2)[0] == quoted
    assert len(fake.bodies(REPO, 2)) == 2
    assert "created comment" in outcome.message
    assert "1 comment by another account carries the marker and was left alone" in outcome.message
    assert ("GET", "/user") in fake.calls()  # GITHUB_TOKEN: 403, so the Actions bot's


def test_a_pull_request_answer_that_is_not_json_is_one_error(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    fake.script(
        "GET", 200, None, "/pulls/2", raw=b"<html>maintenance</html>", content_type="text/html"
    )
    artifact(tmp_path / "perf-gate-comment")
    with pytest.raises(PublishError) as caught:
        post(fake, tmp_path)
    line = caught.value.one_line()
    assert "/pulls/2: GitHub answered 200 with a body that is not JSON (text/html" in line
    assert line.endswith("(perf-gate explain github-answer)")
    assert fake.bodies(REPO, 2) == []
    assert "\nerror\n" in (tmp_path / "github_output").read_text(encoding="utf-8")


def test_an_outputs_folder_is_a_warning_after_posting(fake: FakeGitHub, tmp_path: Path) -> None:
    artifact(tmp_path / "perf-gate-comment")
    (tmp_path / "github_output").mkdir()
    outcome, warnings, _ = post(fake, tmp_path)
    assert outcome.exit_code == 0
    assert len(fake.bodies(REPO, 2)) == 1
    (warning,) = warnings
    assert "cannot append to GITHUB_OUTPUT: Is a directory" in warning
