"""The action's inputs and the event: validation with the input's name, and which mode each
GitHub event (real @octokit/webhooks-examples payloads) leads to under ``mode: auto``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.errors import ConfigError
from gate.integrations.github.actions import ActionsEnv
from gate.integrations.github.event import CiSettings, Event, resolve_mode, settings_from, status_of

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "github" / "events"


def event(name: str, file: str) -> Event:
    return Event.from_env(ActionsEnv(event_name=name, event_path=EVENTS / file))


def test_inputs_come_from_the_action_environment_with_defaults() -> None:
    settings = settings_from(
        {},
        {
            "PERF_GATE_MODE": "check",
            "PERF_GATE_CONFIG": "models/perf-gate.yaml",
            "PERF_GATE_PYTEST_ARGS": "-k 'perf and not slow' tests/perf",
            "PERF_GATE_BASELINE_KEY": "",
            "PERF_GATE_FAIL_ON_REGRESSION": "False",
            "PERF_GATE_COMMENT": "always",
            "PERF_GATE_PR_RUN_ID": "123",
        },
    )
    assert settings == CiSettings(
        mode="check",
        config=Path("models/perf-gate.yaml"),
        pytest_args=("-k", "perf and not slow", "tests/perf"),
        fail_on_regression=False,
        comment="always",
        pr_run_id=123,
    )
    assert settings_from({}, {}) == CiSettings()


def test_command_line_values_win_over_the_environment() -> None:
    settings = settings_from({"mode": "promote", "comment": None}, {"PERF_GATE_MODE": "check"})
    assert settings.mode == "promote"
    assert settings.comment == "on-change"  # the default


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PERF_GATE_MODE", "deploy", "input 'mode' (PERF_GATE_MODE): 'deploy' is not one of"),
        ("PERF_GATE_COMMENT", "sometimes", "input 'comment' (PERF_GATE_COMMENT)"),
        ("PERF_GATE_FAIL_ON_REGRESSION", "maybe", "'maybe' is not true or false"),
        ("PERF_GATE_PYTEST_ARGS", "-k 'open", "cannot split it like a shell"),
        ("PERF_GATE_PR_RUN_ID", "latest", "'latest' is not a workflow run id"),
        ("PERF_GATE_BASELINE_KEY", "ci/cpu", "'ci/cpu' becomes part of the baseline's file"),
        ("PERF_GATE_BASELINE_KEY", "k" * 101, "at most 100 characters"),
    ],
)
def test_a_bad_input_is_a_one_line_error_naming_it(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from({}, {variable: value})
    assert message in caught.value.message
    assert caught.value.slug == "ci-input"


def test_the_event_decides_the_mode_under_auto() -> None:
    auto = CiSettings()
    assert resolve_mode(auto, event("pull_request", "pull_request.opened.json")) == "check"
    push = event("push", "push.json")
    assert (push.ref, push.default_branch) == ("refs/heads/master", "master")
    assert resolve_mode(auto, push) == "promote"
    assert resolve_mode(auto, event("workflow_run", "workflow_run.completed.fork.json")) == (
        "post-comment"
    )
    # a push to another branch, a schedule, a manual run: measure and report, never promote
    feature = Event(
        name="push",
        payload={"ref": "refs/heads/feature", "repository": {"default_branch": "master"}},
    )
    assert resolve_mode(auto, feature) == "check"
    assert resolve_mode(auto, Event(name="schedule")) == "check"
    assert resolve_mode(CiSettings(mode="check"), push) == "check"


def test_the_pull_request_and_its_head_come_from_the_event() -> None:
    fork = event("pull_request", "pull_request.synchronize.fork.json")
    pull = fork.pull_request()
    assert pull is not None
    assert (pull.number, pull.repository, pull.fork) == (2, "Codertocat/Hello-World", True)
    assert (
        fork.head_sha
        == json.loads((EVENTS / "pull_request.synchronize.fork.json").read_text(encoding="utf-8"))[
            "pull_request"
        ]["head"]["sha"]
    )
    assert event("push", "push.json").pull_request() is None
    assert Event(name="pull_request").head_sha is None


def test_an_unreadable_event_file_is_an_error_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "event.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"event\.json: cannot read the event file"):
        Event.from_env(ActionsEnv(event_name="push", event_path=broken))


@pytest.mark.parametrize(
    ("exit_code", "has_baseline", "status"),
    [(0, True, "pass"), (0, False, "no-baseline"), (1, True, "regression"), (3, True, "error")],
)
def test_status_of_a_report(exit_code: int, has_baseline: bool, status: str) -> None:
    assert status_of({"exit_code": exit_code, "has_baseline": has_baseline}) == status
