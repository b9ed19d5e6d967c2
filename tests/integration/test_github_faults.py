"""Publishing under faults: a GitHub API that drips, answers what is not JSON or not of GitHub's
shape, echoes the token, locks the conversation; event files and runner files of the wrong
shape; comments that carry the marker but are not the token's own.

Each case runs against the GitHub API test server on 127.0.0.1 (tests/integration/_github.py,
every request and success answer checked against GitHub's OpenAPI description) or a raw socket
server, mostly through the ``perf-gate`` command itself, and asserts the exit code, the one
line that names the file, key or fix, no traceback, and that the token never shows. Deadlines
are short ones passed in a RetryPolicy, so every case ends in well under two seconds.
"""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from gate.config import load_config
from gate.errors import GateError
from gate.integrations.cli import main as cli
from gate.integrations.github import ci
from gate.integrations.github.actions import ActionsEnv
from gate.integrations.github.client import GitHubClient, RetryPolicy, Secret, redact
from gate.integrations.github.event import CiSettings, Event
from gate.integrations.github.publish import (
    CommentOutcome,
    CommentRequest,
    ReportInput,
    publish_comment,
)

from ._github import FIXTURES, TOKEN, FakeGitHub

REPO = "Codertocat/Hello-World"
PR = 2
MARKER = "<!-- perf-gate:comment name=main -->"
EVENT = json.loads((FIXTURES / "events" / "pull_request.opened.json").read_text(encoding="utf-8"))
REPORT = {
    "format": 1,
    "exit_code": 1,
    "has_baseline": True,
    "comparisons": [
        {
            "benchmark": "digits-mlp[torch]",
            "metric": "latency",
            "unit": "s",
            "verdict": "regression",
            "baseline": 0.001,
            "current": 0.0012,
            "relative_change": 0.2,
            "note": "",
        }
    ],
}


@pytest.fixture
def fake(httpserver: HTTPServer) -> Iterator[FakeGitHub]:
    github = FakeGitHub(httpserver)
    yield github
    github.closing.set()
    assert github.problems == [], "requests or answers outside GitHub's OpenAPI description"


class Command:
    """``perf-gate ...`` run in this process, in ``tmp_path``, with the runner's variables."""

    def __init__(
        self,
        tmp_path: Path,
        fake: FakeGitHub,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        self.tmp_path, self.fake, self.capsys = tmp_path, fake, capsys
        self.monkeypatch = monkeypatch
        monkeypatch.chdir(tmp_path)
        report_dir = tmp_path / ".perf-gate"
        report_dir.mkdir()
        (report_dir / "comparison.json").write_text(json.dumps(REPORT), encoding="utf-8")
        self.event = tmp_path / "event.json"
        self.event.write_text(json.dumps(EVENT), encoding="utf-8")
        self.output = tmp_path / "github_output"
        self.environ = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_API_URL": fake.base,
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(self.event),
            "GITHUB_OUTPUT": str(self.output),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "step_summary"),
        }

    def __call__(self, *args: str, **environ: str | None) -> tuple[int, str, str]:
        """The exit code, stdout and stderr of ``perf-gate ARGS``; ``environ`` overrides."""
        for name in [n for n in os.environ if n.startswith(("GITHUB_", "PERF_"))]:
            self.monkeypatch.delenv(name)
        for name, value in {**self.environ, **environ}.items():
            if value is not None:
                self.monkeypatch.setenv(name, value)
        self.capsys.readouterr()
        code = cli.main(list(args))
        out, err = self.capsys.readouterr()
        assert "Traceback" not in out + err
        assert TOKEN not in out + err
        if self.output.is_file():
            assert TOKEN not in self.output.read_text(encoding="utf-8")
        return code, out, err


@pytest.fixture
def perf_gate(
    tmp_path: Path,
    fake: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Command:
    return Command(tmp_path, fake, monkeypatch, capsys)


def one_line(err: str, kind: str = "warning") -> str:
    """The one ``perf-gate: KIND:`` line of stderr."""
    lines = [line for line in err.splitlines() if line.startswith(f"perf-gate: {kind}:")]
    assert len(lines) == 1, err
    return lines[0]


def publish(
    fake: FakeGitHub, tmp_path: Path, retry: RetryPolicy, **request: Any
) -> tuple[CommentOutcome, list[str]]:
    """publish_comment with ``retry`` (short deadlines) and the runner's variables."""
    (tmp_path / "comparison.json").write_text(json.dumps(REPORT), encoding="utf-8")
    warnings: list[str] = []
    environ = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_EVENT_PATH": str(FIXTURES / "events" / "pull_request.opened.json"),
    }

    def client(api_url: str, token: Secret) -> GitHubClient:
        return GitHubClient(api_url=fake.base, token=token, retry=retry)

    source = ReportInput(
        comparison=tmp_path / "comparison.json", report_dir=tmp_path / ".perf-gate"
    )
    outcome = publish_comment(
        CommentRequest(source=source, **request), environ, client, warnings.append
    )
    return outcome, warnings


# ---------------------------------------------------------------------------------------------
# 1. a deadline per call


def test_an_answer_that_drips_ends_by_the_deadline(fake: FakeGitHub, tmp_path: Path) -> None:
    body = b"[" + b" " * 200 + b"]"  # 40 s at one byte every 0.2 s
    fake.script("GET", 200, None, "/comments", raw=body, drip=0.2)
    started = time.monotonic()
    outcome, warnings = publish(fake, tmp_path, RetryPolicy(timeout=5.0, deadline=0.6))
    assert time.monotonic() - started < 1.5
    assert (outcome.action, outcome.exit_code) == ("failed", 0)
    (warning,) = warnings
    assert "no complete answer within 0.6 s" in warning
    assert "(perf-gate explain github-timeout)" in warning
    assert [m for m, _ in fake.calls()] == ["GET"]  # a call out of time is not tried again


@pytest.fixture
def dripping_headers() -> Iterator[str]:
    """A server that sends a status line, then one header byte every 0.2 s, never ending."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    stop = threading.Event()

    def serve() -> None:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: ")
            while not stop.wait(0.2):
                try:
                    connection.sendall(b"x")
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()
    thread.join(5)


def test_headers_that_drip_end_by_the_deadline(dripping_headers: str) -> None:
    client = GitHubClient(
        api_url=dripping_headers,
        token=Secret(TOKEN),
        retry=RetryPolicy(timeout=5.0, deadline=0.5),
    )
    started = time.monotonic()
    with pytest.raises(GateError) as caught:
        client.list_comments(REPO, PR)
    assert time.monotonic() - started < 1.5
    assert caught.value.slug == "github-timeout"
    assert "/issues/2/comments: no complete answer within 0.5 s" in caught.value.one_line()


def test_server_errors_are_not_retried_past_the_deadline(fake: FakeGitHub, tmp_path: Path) -> None:
    for _ in range(3):
        fake.script("GET", 502, {"message": "Bad Gateway"})
    started = time.monotonic()
    outcome, warnings = publish(
        fake, tmp_path, RetryPolicy(timeout=5.0, deadline=0.5, backoff=1.0), strict=True
    )
    assert time.monotonic() - started < 1.5  # the 1 s backoff would pass the deadline
    assert (outcome.action, outcome.exit_code) == ("failed", 3)
    assert "GitHub answered 502 once (within perf-gate's 0.5 s for one call)" in warnings[0]
    assert [m for m, _ in fake.calls()] == ["GET"]


# ---------------------------------------------------------------------------------------------
# 2. answers that are not JSON, or not GitHub's shape: one line, the verdict stands


@pytest.mark.parametrize(
    ("method", "status", "answer", "raw", "problem"),
    [
        ("GET", 200, None, b"<html>Sign in to the proxy</html>", "with a body that is not JSON"),
        ("GET", 200, {"id": 1}, None, "with an object with keys id, not a list of comments"),
        ("GET", 200, [{"body": MARKER}], None, "not a comment (no integer 'id')"),
        ("POST", 201, [], None, "with a list of 0 items, not a comment"),
        ("POST", 201, {"id": 7, "body": "x"}, None, "not a comment (no 'user' object)"),
        ("POST", 201, {"id": 7, "user": "octocat"}, None, "not a comment (no 'user' object)"),
    ],
)
def test_an_answer_of_another_shape_is_one_warning_and_exit_0(
    perf_gate: Command,
    fake: FakeGitHub,
    method: str,
    status: int,
    answer: Any,
    raw: bytes | None,
    problem: str,
) -> None:
    kind = "text/html" if raw else "application/json"
    fake.script(method, status, answer, raw=raw, content_type=kind)
    code, _, err = perf_gate("comment")
    line = one_line(err)
    assert code == 0  # the comment never changes the verdict
    assert f"GitHub answered {status} " in line
    assert problem in line
    assert "is GITHUB_API_URL GitHub's API" in line
    assert line.endswith("(perf-gate explain github-answer)")
    fake.script(method, status, answer, raw=raw, content_type=kind)
    code, _, err = perf_gate("comment", "--strict")
    assert code == 3
    assert problem in one_line(err)


def test_the_token_users_answer_of_another_shape(perf_gate: Command, fake: FakeGitHub) -> None:
    fake.add_comment(REPO, PR, f"old\n{MARKER}")
    fake.script("GET", 200, ["octocat"], path="/user")
    code, _, err = perf_gate("comment")
    assert code == 0
    assert "GET " in one_line(err)
    assert "/user: GitHub answered 200 with a list of 1 items, not a user" in one_line(err)


def test_a_comment_failure_in_perf_gate_ci_keeps_the_verdict(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    """``perf-gate ci`` (check) comments after the verdict: GitHub's answer cannot change it."""
    report_dir = tmp_path / ".perf-gate"
    report_dir.mkdir()
    comparison = report_dir / "comparison.json"
    comparison.write_text(json.dumps(REPORT), encoding="utf-8")
    (tmp_path / "perf-gate.yaml").write_text("baseline: baselines/main.json\n", encoding="utf-8")
    config = load_config(tmp_path / "perf-gate.yaml")
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(EVENT), encoding="utf-8")
    environ = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": fake.base,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_STEP_SUMMARY": str(tmp_path),  # a folder: a warning too
    }
    env = ActionsEnv.from_environ(environ)
    event = Event(name="pull_request", payload=EVENT, path=event_file)
    warnings: list[str] = []
    fake.script("GET", 200, None, raw=b"not json", content_type="text/plain")
    data, outputs = ci._summary_outputs(config, comparison, env, io.StringIO(), warnings.append)
    message = ci._comment(
        config,
        CiSettings(),
        comparison,
        event,
        environ,
        lambda url, token: GitHubClient(api_url=url, token=token),
        warnings.append,
        outputs,
    )
    assert data["exit_code"] == 1  # the verdict the step exits with
    assert "comment not posted" in message
    assert "cannot append to GITHUB_STEP_SUMMARY: Is a directory" in warnings[0]
    assert "with a body that is not JSON (text/plain, 8 bytes: 'not json')" in warnings[1]


# ---------------------------------------------------------------------------------------------
# 3. event files of the wrong shape


def pull(**changes: Any) -> dict[str, Any]:
    payload = json.loads(json.dumps(EVENT))
    payload["pull_request"].update(changes)
    return payload


BAD_EVENTS = [
    ({**EVENT, "repository": "a/b"}, "repository: expected an object, got a string ('a/b')"),
    (pull(head="x"), "pull_request.head: expected an object, got a string ('x')"),
    (
        {"pull_request": {"head": {"sha": "a" * 40}}},
        "pull_request.number: expected a positive whole number, got nothing",
    ),
    (pull(number="2"), "pull_request.number: expected a positive whole number, got a string"),
    (
        pull(head={"repo": {"full_name": 5}}),
        "pull_request.head.repo.full_name: expected a string, got a number (5)",
    ),
    (
        pull(head={"repo": {"full_name": "x/y", "fork": "yes"}}),
        "pull_request.head.repo.fork: expected true or false, got a string ('yes')",
    ),
    (
        {**EVENT, "repository": {"full_name": "no-slash"}},
        "repository.full_name: expected OWNER/NAME",
    ),
    ([1, 2], "the event: expected an object, got a list"),
    ("{not json", "cannot read the event file (GITHUB_EVENT_PATH): Expecting property name"),
    ({"workflow_run": "x"}, "workflow_run: expected an object, got a string ('x')"),
    (
        {"workflow_run": {"pull_requests": [{"number": None}]}},
        "workflow_run.pull_requests[0].number: expected a positive whole number, got null",
    ),
]


@pytest.mark.parametrize(("payload", "problem"), BAD_EVENTS)
def test_an_event_file_of_the_wrong_shape_names_the_file_and_the_key(
    perf_gate: Command, fake: FakeGitHub, payload: Any, problem: str
) -> None:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    perf_gate.event.write_text(text, encoding="utf-8")
    # perf-gate comment: a warning, exit 0 (--strict: 2), and nothing posted
    code, _, err = perf_gate("comment")
    assert code == 0
    assert f"{perf_gate.event}: {problem}" in one_line(err)
    assert one_line(err).endswith("(perf-gate explain github-event)")
    code, _, err = perf_gate("comment", "--strict")
    assert code == 2
    assert problem in one_line(err)
    assert fake.bodies(REPO, PR) == []
    # perf-gate ci reads the event before anything is measured: a configuration error
    code, _, err = perf_gate("ci", "--config", "missing.yaml")
    assert code == 2
    line = one_line(err, "error")
    assert f"{perf_gate.event}: {problem}" in line
    assert "missing.yaml" not in line


# ---------------------------------------------------------------------------------------------
# 4. runner files that cannot be written


@pytest.mark.parametrize(
    ("where", "reason"),
    [("folder", "Is a directory"), ("missing/summary", "No such file or directory")],
)
def test_a_job_summary_that_cannot_be_written_is_one_warning(
    perf_gate: Command, tmp_path: Path, where: str, reason: str
) -> None:
    (tmp_path / "folder").mkdir()
    code, _, err = perf_gate("summary", GITHUB_STEP_SUMMARY=str(tmp_path / where))
    line = one_line(err)
    assert code == 0
    assert f"{tmp_path / where}: cannot append to GITHUB_STEP_SUMMARY: {reason}" in line
    assert line.endswith("(perf-gate explain github-runner-file)")
    assert (tmp_path / ".perf-gate" / "summary.md").is_file()
    assert "\nfailed\n" in perf_gate.output.read_text(encoding="utf-8")  # outputs still set


def test_an_outputs_file_under_a_file_is_one_warning(perf_gate: Command, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    code, _, err = perf_gate("comment", "--when", "never", GITHUB_OUTPUT=str(blocker / "out"))
    assert code == 0
    line = one_line(err)
    assert "cannot append to GITHUB_OUTPUT: Not a directory" in line


def test_a_gate_that_cannot_run_is_still_the_error_shown(
    perf_gate: Command, tmp_path: Path
) -> None:
    """The job summary that cannot be written does not hide why the gate could not run."""
    code, _, err = perf_gate(
        "ci", "--mode", "check", "--config", "missing.yaml", GITHUB_STEP_SUMMARY=str(tmp_path)
    )
    assert code == 2
    assert "missing.yaml" in one_line(err, "error")
    assert "cannot append to GITHUB_STEP_SUMMARY: Is a directory" in one_line(err)


# ---------------------------------------------------------------------------------------------
# 5. the token never shows


def test_an_answer_that_echoes_the_token_is_redacted(perf_gate: Command, fake: FakeGitHub) -> None:
    echoed = f"Forbidden: request had Authorization: Bearer {TOKEN} (header 'authorization')"
    fake.script("POST", 403, {"message": echoed, "status": "403"})
    code, _, err = perf_gate("comment", "--strict")  # Command checks TOKEN not in output
    assert code == 3
    line = one_line(err)
    assert "Authorization: *** (header 'authorization')" in line
    assert "(perf-gate explain github-forbidden)" in line
    fake.script("GET", 200, None, raw=f"<p>token {TOKEN}</p>".encode(), content_type="text/html")
    code, _, err = perf_gate("comment")
    assert code == 0
    assert "'<p>token ***</p>'" in one_line(err)
    comment = (perf_gate.tmp_path / ".perf-gate" / "comment.md").read_text(encoding="utf-8")
    assert TOKEN not in comment


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Authorization: token 0123456789abcdef", "Authorization: ***"),
        ("Authorization: ***: refused", "Authorization: ***: refused"),  # redacting twice
        ("{'Authorization': 'Bearer abc.def'}", "{'Authorization': '***'}"),
        ("authorization=Basic dXNlcjpwYXNzd29yZA==", "authorization=***"),
        ("sent bearer eyJhbGciOi.x.y", "sent bearer ***"),
        ("key ghp_0123456789abcdefABCDEF0123 leaked", "key *** leaked"),
        ("key github_pat_11ABCDEFG0123456789_abcdef leaked", "key *** leaked"),
        ("basic auth with Basic dXNlcjpw", "basic auth with Basic ***"),
        ("the token is read-only; token expired", "the token is read-only; token expired"),
        ("GET /x?access_token=abc123def456&page=2", "GET /x?access_token=***&page=2"),
        ('{"x-access-token": "v1.0123456789abcdef"}', '{"x-access-token": "***"}'),
    ],
)
def test_redaction_of_credentials_in_server_text(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_the_token_is_redacted_as_it_is_and_url_quoted() -> None:
    token = "weird/token+value=1"
    assert redact(f"a {token} b weird%2Ftoken%2Bvalue%3D1 c", token) == "a *** b *** c"


# ---------------------------------------------------------------------------------------------
# 6. only the token's own comment is edited; a locked conversation is named


def test_a_persons_comment_that_carries_the_marker_is_never_edited(
    perf_gate: Command, fake: FakeGitHub
) -> None:
    quoted = f"Why did this fail? The bot said:\n\n{MARKER}\n"
    person = fake.add_comment(REPO, PR, quoted, login="octocat")
    code, out, _ = perf_gate("comment")
    assert code == 0
    assert "created comment" in out
    assert "1 comment by another account carries the marker and was left alone" in out
    assert fake.bodies(REPO, PR)[0] == quoted
    code, out, _ = perf_gate("comment")  # the next push: the bot's own comment is updated
    assert "updated comment" in out
    assert len(fake.bodies(REPO, PR)) == 2
    assert ("PATCH", f"/repos/{REPO}/issues/comments/{person}") not in fake.calls()
    assert fake.bodies(REPO, PR)[0] == quoted


def test_with_a_personal_token_only_that_accounts_comment_is_edited(
    perf_gate: Command, fake: FakeGitHub
) -> None:
    fake.token_user = "Alice"
    bot = fake.add_comment(REPO, PR, f"the Actions bot's\n{MARKER}")
    alices = fake.add_comment(REPO, PR, f"alice's token's\n{MARKER}", login="alice")
    code, out, _ = perf_gate("comment")
    assert code == 0
    assert fake.calls()[-1] == ("PATCH", f"/repos/{REPO}/issues/comments/{alices}")
    assert ("PATCH", f"/repos/{REPO}/issues/comments/{bot}") not in fake.calls()
    assert "updated comment" in out


def test_outside_actions_an_unknown_account_edits_nothing(
    perf_gate: Command, fake: FakeGitHub
) -> None:
    fake.add_comment(REPO, PR, f"old\n{MARKER}")
    code, out, err = perf_gate("comment", GITHUB_ACTIONS=None)
    assert code == 0
    assert "created comment" in out
    assert "set PERF_GATE_COMMENT_AUTHOR to that account's login" in one_line(err)
    assert "PATCH" not in [m for m, _ in fake.calls()]


def test_perf_gate_comment_author_names_an_apps_bot(perf_gate: Command, fake: FakeGitHub) -> None:
    fake.add_comment(REPO, PR, f"the Actions bot's\n{MARKER}")
    apps = fake.add_comment(REPO, PR, f"the app's\n{MARKER}", login="perf-app[bot]")
    code, _, _ = perf_gate("comment", PERF_GATE_COMMENT_AUTHOR="perf-app[bot]")
    assert code == 0
    assert ("GET", "/user") not in fake.calls()  # named: GitHub is not asked
    assert fake.calls()[-1] == ("PATCH", f"/repos/{REPO}/issues/comments/{apps}")


def test_a_locked_conversation_is_named(perf_gate: Command, fake: FakeGitHub) -> None:
    fake.locked[(REPO, PR)] = "too heated"
    code, _, err = perf_gate("comment", "--strict")
    line = one_line(err)
    assert code == 3
    assert "403 Unable to create comment because issue is locked." in line
    assert "the conversation is locked" in line
    assert "pull-requests: write" not in line
    assert line.endswith("(perf-gate explain github-locked)")


def test_a_plain_403_from_a_locked_conversation_is_named_after_asking(
    perf_gate: Command, fake: FakeGitHub
) -> None:
    fake.locked[(REPO, PR)] = "spam"
    fake.lock_answer = {"message": "Forbidden", "status": "403"}
    code, _, err = perf_gate("comment")
    line = one_line(err)
    assert code == 0
    assert f"the conversation of {REPO}#{PR} is locked as 'spam'" in line
    assert "pull-requests: write" not in line
    assert line.endswith("(perf-gate explain github-locked)")
    assert ("GET", f"/repos/{REPO}/issues/{PR}") in fake.calls()


def test_a_422_that_says_locked_on_the_update(perf_gate: Command, fake: FakeGitHub) -> None:
    fake.add_comment(REPO, PR, f"old\n{MARKER}")
    fake.script(
        "PATCH",
        422,
        {"message": "Validation Failed", "errors": ["issue is locked"], "status": "422"},
    )
    code, _, err = perf_gate("comment")
    assert code == 0
    assert "422 Validation Failed; issue is locked: the conversation is locked" in one_line(err)


def test_a_plain_403_on_an_open_conversation_still_names_the_permission(
    perf_gate: Command, fake: FakeGitHub
) -> None:
    fake.script("POST", 403, {"message": "Forbidden", "status": "403"})
    code, _, err = perf_gate("comment")
    assert code == 0
    assert "give the workflow `permissions: pull-requests: write`" in one_line(err)
    assert ("GET", f"/repos/{REPO}/issues/{PR}") in fake.calls()  # asked, not locked


# --------------------------------------------------------------------------------------------
# a comparison another workflow run wrote is never published as this run's


@pytest.mark.parametrize("command", ["summary", "comment"])
def test_a_comparison_from_another_workflow_run_is_refused(
    perf_gate: Command, fake: FakeGitHub, tmp_path: Path, command: str
) -> None:
    path = tmp_path / ".perf-gate" / "comparison.json"
    path.write_text(json.dumps({**REPORT, "run": {"github_run": "111/1"}}), encoding="utf-8")
    code, _, err = perf_gate(command, GITHUB_RUN_ID="222")
    line = one_line(err, "error")
    assert code == 2
    assert "was written by workflow run 111/1, not by this run (222)" in line
    assert line.endswith("(perf-gate explain comparison-stale)")
    assert not [c for c in fake.calls() if c[0] in ("POST", "PATCH")]  # nothing published
    assert not (tmp_path / ".perf-gate" / "summary.md").exists()


def test_this_runs_comparison_is_published(perf_gate: Command, tmp_path: Path) -> None:
    path = tmp_path / ".perf-gate" / "comparison.json"
    path.write_text(json.dumps({**REPORT, "run": {"github_run": "222/2"}}), encoding="utf-8")
    code, _, _ = perf_gate("summary", GITHUB_RUN_ID="222")
    assert code == 0
    assert (tmp_path / ".perf-gate" / "summary.md").is_file()
