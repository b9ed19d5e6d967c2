"""perf-gate comment against a real HTTP server on 127.0.0.1 standing in for GitHub's API.

Every request the client sends is validated against GitHub's published OpenAPI description
(see _github.py); a test fails when any request or success response did not match it. Event
files are @octokit/webhooks-examples payloads (pull_request opened/synchronize) and a fork
variant derived from them (tests/fixtures/github/trim_openapi.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer

from gate.errors import ConfigError, GateError
from gate.integrations.github.client import (
    ACTIONS_BOT,
    Comment,
    GitHubClient,
    RetryPolicy,
    Secret,
    upsert_comment,
)
from gate.integrations.github.publish import (
    CommentOutcome,
    CommentRequest,
    ReportInput,
    on_change_kept,
    publish_comment,
)
from gate.report.markdown import render_comment

from ._github import FIXTURES, TOKEN, FakeGitHub

REPO = "Codertocat/Hello-World"
PR = 2
NOW = 1_800_000_000.0
MARKER = "<!-- perf-gate:comment name=main -->"
EVENTS = FIXTURES / "events"


def comparison(verdict: str = "regression", count: int = 1) -> dict[str, Any]:
    return {
        "format": 1,
        "exit_code": 1 if verdict == "regression" else 0,
        "has_baseline": True,
        "alpha": 0.01,
        "baseline_commit": "a" * 40,
        "current_commit": "b" * 40,
        "comparisons": [
            {
                "benchmark": f"digits-mlp[torch]-{index}",
                "metric": "latency",
                "unit": "s",
                "verdict": verdict,
                "fails": verdict == "regression",
                "baseline": 0.001,
                "current": 0.0012,
                "relative_change": 0.2,
                "ci_low": 0.15,
                "ci_high": 0.25,
                "mode": "ab",
                "mde": 0.02,
                "note": "",
            }
            for index in range(count)
        ],
    }


@pytest.fixture
def fake(httpserver: HTTPServer) -> Iterator[FakeGitHub]:
    github = FakeGitHub(httpserver)
    yield github
    github.closing.set()
    assert github.problems == [], "requests or answers outside GitHub's OpenAPI description"


class Harness:
    """Runs publish_comment with a client whose sleeps and clock are recorded, not real."""

    def __init__(self, fake: FakeGitHub, tmp_path: Path) -> None:
        self.fake = fake
        self.tmp_path = tmp_path
        self.sleeps: list[float] = []
        self.warnings: list[str] = []
        self.clients: list[GitHubClient] = []
        self.output = tmp_path / "github_output"
        self.write(comparison())

    def write(self, data: dict[str, Any]) -> None:
        (self.tmp_path / "comparison.json").write_text(json.dumps(data), encoding="utf-8")

    def environ(self, event: str | None = "pull_request.synchronize.json") -> dict[str, str]:
        environ = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_API_URL": self.fake.base,
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_OUTPUT": str(self.output),
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": "42",
        }
        if event:
            environ["GITHUB_EVENT_PATH"] = str(EVENTS / event)
        return environ

    def make_client(self, api_url: str, token: Secret) -> GitHubClient:
        client = GitHubClient(
            api_url=api_url,
            token=token,
            retry=RetryPolicy(timeout=5.0),
            sleep=self.sleeps.append,
            clock=lambda: NOW,
            warn=self.warnings.append,
        )
        self.clients.append(client)
        return client

    def run(self, *, environ: dict[str, str] | None = None, **request: Any) -> CommentOutcome:
        source = ReportInput(
            comparison=self.tmp_path / "comparison.json", report_dir=self.tmp_path / ".perf-gate"
        )
        return publish_comment(
            CommentRequest(source=source, **request),
            self.environ() if environ is None else environ,
            self.make_client,
            self.warnings.append,
        )

    def outputs(self) -> str:
        return self.output.read_text(encoding="utf-8") if self.output.exists() else ""

    def assert_token_never_shown(self, *texts: str) -> None:
        shown = [
            *texts,
            *self.warnings,
            self.outputs(),
            *(repr(c) for c in self.clients),
            (self.tmp_path / ".perf-gate" / "comment.md").read_text(encoding="utf-8"),
        ]
        assert not [t for t in shown if TOKEN in t]


@pytest.fixture
def harness(fake: FakeGitHub, tmp_path: Path) -> Harness:
    return Harness(fake, tmp_path)


def test_first_comment_is_created_from_the_event_pr(harness: Harness, fake: FakeGitHub) -> None:
    outcome = harness.run()
    assert outcome.action == "created"
    assert fake.calls() == [
        ("GET", f"/repos/{REPO}/issues/{PR}/comments"),
        ("POST", f"/repos/{REPO}/issues/{PR}/comments"),
    ]
    assert fake.seen[0].query == {"per_page": "100"}
    (body,) = fake.bodies(REPO, PR)
    assert body.startswith(
        "### ❌ perf-gate: digits-mlp\\[torch\\]-0 latency +20.0% · 1 regression"
    )
    assert body.rstrip().endswith(MARKER)
    assert body == (harness.tmp_path / ".perf-gate" / "comment.md").read_text(encoding="utf-8")
    comment_id = fake.comments[(REPO, PR)][0]["id"]
    assert "comment-id<<ghadelimiter_" in harness.outputs()
    assert f"\n{comment_id}\n" in harness.outputs()
    assert outcome.exit_code == 0


def test_the_existing_comment_is_updated_not_duplicated(harness: Harness, fake: FakeGitHub) -> None:
    fake.add_comment(REPO, PR, "LGTM", login="octocat")
    ours = fake.add_comment(REPO, PR, f"old report\n\n{MARKER}\n")
    harness.write(comparison("unchanged"))
    outcome = harness.run(environ=harness.environ("pull_request.opened.json"))
    assert outcome.action == "updated"
    # whose comment it is: GITHUB_TOKEN has no user (403), so in Actions it is the Actions bot
    assert fake.calls() == [
        ("GET", f"/repos/{REPO}/issues/{PR}/comments"),
        ("GET", "/user"),
        ("PATCH", f"/repos/{REPO}/issues/comments/{ours}"),
    ]
    assert fake.bodies(REPO, PR)[0] == "LGTM"
    assert fake.bodies(REPO, PR)[1].startswith("### ✅ perf-gate: no regression · 1 unchanged")


def test_the_marker_comment_on_page_three_of_three_is_found(
    harness: Harness, fake: FakeGitHub
) -> None:
    for index in range(240):
        fake.add_comment(REPO, PR, f"comment {index}", login="octocat")
    ours = fake.add_comment(REPO, PR, f"report\n{MARKER}")
    for index in range(5):
        fake.add_comment(REPO, PR, f"later {index}", login="octocat")
    outcome = harness.run()
    assert outcome.action == "updated"
    listed = [s for s in fake.seen if s.method == "GET" and s.path.endswith("/comments")]
    assert [s.query.get("page", "1") for s in listed] == ["1", "2", "3"]
    assert all(s.query["per_page"] == "100" for s in listed)
    assert fake.calls()[-1] == ("PATCH", f"/repos/{REPO}/issues/comments/{ours}")


def test_another_bots_similar_comment_is_left_alone(harness: Harness, fake: FakeGitHub) -> None:
    other = [
        "<!-- perf-gate:comment name=main-gpu -->\nthe GPU gate",
        f"> {MARKER}\n> quoted by someone",
        "<!-- perf-gate:comment name=main --> but not alone on its line",
    ]
    for body in other:
        fake.add_comment(REPO, PR, body, login="other-bot[bot]")
    outcome = harness.run()
    assert outcome.action == "created"
    assert fake.bodies(REPO, PR)[:3] == other
    assert "PATCH" not in [m for m, _ in fake.calls()]


def test_a_forks_read_only_token_writes_the_file_and_passes(
    harness: Harness, fake: FakeGitHub
) -> None:
    fake.script(
        "POST",
        403,
        {"message": "Resource not accessible by integration", "status": "403"},
        **{"x-ratelimit-remaining": "4999"},
    )
    outcome = harness.run(
        environ=harness.environ("pull_request.synchronize.fork.json"), strict=True
    )
    assert outcome.action == "file"
    assert outcome.exit_code == 0  # even with --strict: a fork is expected, not a failure
    assert "comment-file-written<<" in harness.outputs()
    assert "\ntrue\n" in harness.outputs()
    assert "read-only" in harness.warnings[0]
    assert str(harness.tmp_path / ".perf-gate" / "comment.md") in harness.warnings[0]
    assert fake.bodies(REPO, PR) == []
    harness.assert_token_never_shown(outcome.message)


def test_401_is_a_configuration_error_with_the_fix(harness: Harness, fake: FakeGitHub) -> None:
    fake.script("GET", 401, {"message": "Bad credentials", "status": "401"})
    lenient = harness.run()
    assert (lenient.action, lenient.exit_code) == ("failed", 0)
    assert "Bad credentials" in harness.warnings[-1]
    assert "GITHUB_TOKEN: ${{ github.token }}" in harness.warnings[-1]
    assert "perf-gate explain github-auth" in harness.warnings[-1]
    fake.script("GET", 401, {"message": "Bad credentials", "status": "401"})
    strict = harness.run(strict=True)
    assert strict.exit_code == ConfigError.exit_code == 2
    harness.assert_token_never_shown(lenient.message, strict.message)


def test_secondary_rate_limit_honours_retry_after(harness: Harness, fake: FakeGitHub) -> None:
    fake.script(
        "POST",
        403,
        {"message": "You have exceeded a secondary rate limit.", "status": "403"},
        **{"retry-after": "7"},
    )
    assert harness.run().action == "created"
    assert harness.sleeps == [7.0]
    assert [m for m, _ in fake.calls()] == ["GET", "POST", "POST"]


def test_primary_rate_limit_waits_until_reset_within_the_budget(
    harness: Harness, fake: FakeGitHub
) -> None:
    limited = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 30)}
    fake.script("GET", 429, {"message": "API rate limit exceeded", "status": "429"}, **limited)
    assert harness.run().action == "created"
    assert harness.sleeps == [31.0]
    far = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 3600)}
    fake.script("GET", 403, {"message": "API rate limit exceeded", "status": "403"}, **far)
    outcome = harness.run()
    assert (outcome.action, outcome.exit_code) == ("failed", 0)
    assert "budget of 120 s" in harness.warnings[-1]
    assert harness.sleeps == [31.0]  # never slept past the budget


def test_server_errors_are_retried_with_backoff(harness: Harness, fake: FakeGitHub) -> None:
    fake.script("POST", 500, {"message": "Server Error"})
    assert harness.run().action == "created"
    assert harness.sleeps == [1.0]
    for _ in range(3):
        fake.script("GET", 502, {"message": "Bad Gateway"})
    outcome = harness.run(strict=True)
    assert outcome.action == "failed"
    assert outcome.exit_code == 3
    assert harness.sleeps == [1.0, 1.0, 2.0]
    assert "502 3 times" in harness.warnings[-1]


def test_a_body_too_long_is_shortened_and_retried_once(harness: Harness, fake: FakeGitHub) -> None:
    harness.write(comparison(count=400))
    fake.script(
        "POST",
        422,
        {
            "message": "Validation Failed",
            "errors": [
                {
                    "resource": "IssueComment",
                    "code": "custom",
                    "field": "body",
                    "message": "body is too long (maximum is 65536 characters)",
                }
            ],
            "status": "422",
        },
    )
    assert harness.run().action == "created"
    first, second = (s.body["body"] for s in fake.seen if s.method == "POST")
    assert len(second) <= len(first) // 2
    assert "digest of the worst changes" in second
    assert second.rstrip().endswith(MARKER)


def test_a_comment_deleted_meanwhile_is_created_again(harness: Harness, fake: FakeGitHub) -> None:
    fake.add_comment(REPO, PR, f"report\n{MARKER}")
    fake.script("PATCH", 404, {"message": "Not Found", "status": "404"})
    assert harness.run().action == "created"
    assert [m for m, _ in fake.calls()] == ["GET", "GET", "PATCH", "POST"]


def test_on_change_posts_a_first_comment_only_when_there_is_something_to_see(
    harness: Harness, fake: FakeGitHub
) -> None:
    harness.write(comparison("unchanged"))
    assert harness.run(when="on-change").action == "skipped"
    assert [m for m, _ in fake.calls()] == ["GET"]
    assert harness.run(when="never").action == "skipped"
    assert len(fake.seen) == 1  # never: no call at all
    harness.write(comparison("improvement"))
    assert harness.run(when="on-change").action == "created"
    # the skipped run listed once; this one lists, and upsert_comment lists again, then posts
    assert [m for m, _ in fake.calls()] == ["GET", "GET", "GET", "POST"]


def test_on_change_edits_only_when_a_verdict_changed(harness: Harness, fake: FakeGitHub) -> None:
    first = harness.run(when="on-change")
    assert first.action == "created"
    (body,) = fake.bodies(REPO, PR)
    assert "<!-- perf-gate:verdicts fail " in body
    # the next push: other numbers, the same verdicts: the comment stays as it is
    moved = comparison()
    moved["comparisons"][0]["current"] = 0.0013
    harness.write(moved)
    fake.seen.clear()
    again = harness.run(when="on-change")
    assert again.action == "unchanged"
    listing = ("GET", f"/repos/{REPO}/issues/{PR}/comments")
    assert fake.calls() == [listing, ("GET", "/user")]  # whose comment: nothing written
    assert fake.bodies(REPO, PR) == [body]
    comment_id = fake.comments[(REPO, PR)][0]["id"]
    assert again.outputs["comment-id"] == str(comment_id)
    assert again.outputs["comment-file-written"] == "false"
    assert "not edited (--when on-change)" in again.message
    # the regression is fixed: a verdict changed, so the comment is edited
    harness.write(comparison("unchanged"))
    fake.seen.clear()
    fixed = harness.run(when="on-change")
    assert fixed.action == "updated"
    assert fake.calls()[-1] == ("PATCH", f"/repos/{REPO}/issues/comments/{comment_id}")
    assert fake.calls().count(("GET", "/user")) == 1  # asked once, though listed twice
    (updated,) = fake.bodies(REPO, PR)
    assert updated.startswith("### ✅ perf-gate: no regression · 1 unchanged")
    # an old comment without a digest is brought up to date once
    fake.comments[(REPO, PR)][0]["body"] = f"old report\n{MARKER}\n"
    assert harness.run(when="on-change").action == "updated"
    assert harness.run(when="on-change").action == "unchanged"


def test_on_change_never_takes_another_accounts_digest(harness: Harness, fake: FakeGitHub) -> None:
    harness.run(when="always")
    (body,) = fake.bodies(REPO, PR)
    fake.comments[(REPO, PR)].clear()
    fake.add_comment(REPO, PR, body, login="octocat")  # a person's copy, digest and all
    outcome = harness.run(when="on-change")
    assert outcome.action == "created"  # ours is missing: post one, leave theirs alone
    assert fake.bodies(REPO, PR) == [body, body]
    assert "left alone" in outcome.message


def test_no_pull_request_is_a_note_unless_strict(harness: Harness, fake: FakeGitHub) -> None:
    environ = harness.environ(event=None)
    assert harness.run(environ=environ).action == "skipped"
    assert harness.run(environ=environ, strict=True).exit_code == 2
    assert harness.run(environ=environ, pr=7).action == "created"
    assert fake.calls()[-1] == ("POST", f"/repos/{REPO}/issues/7/comments")


def test_enterprise_server_base_url(httpserver: HTTPServer, tmp_path: Path) -> None:
    ghes = FakeGitHub(httpserver, prefix="/api/v3")
    harness = Harness(ghes, tmp_path)
    assert harness.run().action == "created"
    assert [s.path for s in ghes.seen] == [
        f"/api/v3/repos/{REPO}/issues/{PR}/comments",
        f"/api/v3/repos/{REPO}/issues/{PR}/comments",
    ]
    assert ghes.problems == []


def test_a_next_link_to_another_host_is_not_followed(fake: FakeGitHub) -> None:
    fake.script("GET", 200, [], **{"Link": '<https://evil.example/steal?page=2>; rel="next"'})
    client = GitHubClient(api_url=fake.base, token=Secret(TOKEN), sleep=lambda s: None)
    with pytest.raises(GateError, match="is not under") as caught:
        client.list_comments(REPO, PR)
    assert TOKEN not in str(caught.value)


def test_the_validator_rejects_requests_github_would_not_accept(fake: FakeGitHub) -> None:
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    headers["Authorization"] = f"Bearer {TOKEN}"
    url = f"{fake.base}/repos/{REPO}/issues/{PR}/comments"
    requests.post(url, json={"text": "wrong key"}, headers=headers, timeout=5)
    requests.get(url, params={"per_page": "lots"}, headers=headers, timeout=5)
    requests.delete(f"{fake.base}/repos/{REPO}/issues/comments/1", headers=headers, timeout=5)
    requests.get(url, params={"per_page": 100, "sort": "x"}, timeout=5)
    found = list(fake.problems)
    fake.problems.clear()  # they were the point of this test
    assert any("body" in p and "required" in p for p in found)
    assert any("per_page" in p for p in found)
    assert any("DELETE" in p for p in found)
    assert any("Accept header missing" in p for p in found)
    assert any("undocumented query {'sort'}" in p for p in found)


def test_upsert_can_be_used_without_the_cli(fake: FakeGitHub) -> None:
    client = GitHubClient(api_url=fake.base, token=Secret(TOKEN), sleep=lambda s: None)
    done = upsert_comment(client, REPO, PR, MARKER, lambda limit: f"hello\n{MARKER}\n")
    assert done is not None
    assert done.action == "created"
    assert done.comment.author == "github-actions[bot]"
    assert repr(client) == f"GitHubClient(api_url={fake.base!r}, token=Secret('***'))"


def test_perf_gate_comment_command_end_to_end(fake: FakeGitHub, tmp_path: Path) -> None:
    fake.token_user = "octocat"  # a personal access token, outside Actions
    report_dir = tmp_path / ".perf-gate"
    report_dir.mkdir()
    (report_dir / "comparison.json").write_text(json.dumps(comparison()), encoding="utf-8")
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")},
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": fake.base,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_EVENT_PATH": str(EVENTS / "pull_request.opened.json"),
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_OUTPUT": str(tmp_path / "out"),
    }
    command = [sys.executable, "-m", "gate", "comment"]
    first = subprocess.run(command, cwd=tmp_path, env=environ, capture_output=True, text=True)
    second = subprocess.run(command, cwd=tmp_path, env=environ, capture_output=True, text=True)
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert "created comment" in first.stdout
    assert "updated comment" in second.stdout
    assert len(fake.bodies(REPO, PR)) == 1
    for completed in (first, second):
        assert TOKEN not in completed.stdout + completed.stderr


def test_on_change_posts_a_first_comment_for_a_baseline_from_another_environment() -> None:
    quiet = comparison("unchanged")
    assert on_change_kept(None, quiet) == (
        "skipped",
        "nothing changed and no earlier comment: not posted (--when on-change)",
    )
    other = dict(quiet, environment_differences={"cpu_model": {"baseline": "a", "current": "b"}})
    assert on_change_kept(None, other) is None  # a pass that is not green: worth a comment
    assert on_change_kept(None, dict(quiet, has_baseline=False)) is None
    body = render_comment(other)
    mine = Comment(id=1, body=body, url="https://x/1", author=ACTIONS_BOT)
    assert on_change_kept(mine, other) is not None
    assert on_change_kept(mine, quiet) is None  # the environment is the same again: edit
