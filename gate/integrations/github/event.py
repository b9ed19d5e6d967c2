"""The inputs and the event of ``perf-gate ci``: what the action was asked, what happened.

The action maps each input to a ``PERF_GATE_*`` environment variable with ``env:`` (never into
the script text); ``perf-gate ci --mode ...`` flags override them. The event comes from the
runner's ``GITHUB_EVENT_NAME`` and ``GITHUB_EVENT_PATH`` and decides the mode under ``auto``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.config.checks import MAX_NAME, NAME
from gate.config.policy import base_env_option
from gate.core.types import ExitCode
from gate.errors import ConfigError
from gate.integrations.github.actions import ActionsEnv, PullRequest, load_event, pull_request_of

MODES = ("auto", "check", "promote", "post-comment")
COMMENT_MODES = ("always", "on-change", "never", "artifact")
STATUSES = ("pass", "regression", "no-baseline", "error")
PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")
SHA = re.compile(r"^[0-9a-f]{40}$")
_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")

# ---------------------------------------------------------------------------------------------
# settings and event


@dataclass(frozen=True, kw_only=True)
class CiSettings:
    """The action's inputs, checked."""

    mode: str = "auto"
    config: Path | None = None
    pytest_args: tuple[str, ...] = ()
    baseline_key: str | None = None
    dvc_remote: str | None = None
    fail_on_regression: bool = True
    comment: str = "on-change"  # the action's default too (action.yml)
    comment_dir: Path | None = None  # where the poster finds downloaded comment artifacts
    pr_run_id: int | None = None
    base_env: str | None = None  # the base revision's Python (policy.base_environment)


# input name -> environment variable the action sets
INPUT_VARIABLES = {
    "mode": "PERF_GATE_MODE",
    "config": "PERF_GATE_CONFIG",
    "pytest-args": "PERF_GATE_PYTEST_ARGS",
    "baseline-key": "PERF_GATE_BASELINE_KEY",
    "dvc-remote": "PERF_GATE_DVC_REMOTE",
    "fail-on-regression": "PERF_GATE_FAIL_ON_REGRESSION",
    "comment": "PERF_GATE_COMMENT",
    "comment-dir": "PERF_GATE_COMMENT_DIR",
    "pr-run-id": "PERF_GATE_PR_RUN_ID",
    "base-env": "PERF_GATE_BASE_ENV",
}


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(
            f"input {name!r} ({INPUT_VARIABLES[name]}): {value!r} is not one of "
            f"{', '.join(choices)}",
            slug="ci-input",
        )
    return value


def _flag(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(
        f"input {name!r} ({INPUT_VARIABLES[name]}): {value!r} is not true or false",
        slug="ci-input",
    )


def settings_from(values: Mapping[str, str | None], environ: Mapping[str, str]) -> CiSettings:
    """Settings from ``values`` (input name -> command-line value, None when not given), else
    the action's environment variables, else the defaults. Raises ConfigError for a bad value."""

    def get(name: str) -> str:
        given = values.get(name)
        raw = given if given is not None else environ.get(INPUT_VARIABLES[name], "")
        return raw.strip()

    try:
        pytest_args = tuple(shlex.split(get("pytest-args")))
    except ValueError as exc:
        raise ConfigError(
            f"input 'pytest-args' (PERF_GATE_PYTEST_ARGS): cannot split it like a shell: {exc}",
            slug="ci-input",
        ) from None
    run_id = get("pr-run-id")
    if run_id and not run_id.isdigit():
        raise ConfigError(
            f"input 'pr-run-id' (PERF_GATE_PR_RUN_ID): {run_id!r} is not a workflow run id",
            slug="ci-input",
        )
    key = get("baseline-key")
    if key and (not NAME.match(key) or len(key) > MAX_NAME):
        raise ConfigError(
            f"input 'baseline-key' (PERF_GATE_BASELINE_KEY): {key[:40]!r} becomes part of the "
            "baseline's file name; use letters, digits, '_', '-' and '.', starting with a "
            f"letter, digit or '_', at most {MAX_NAME} characters",
            slug="ci-input",
        )
    return CiSettings(
        mode=_choice("mode", get("mode") or "auto", MODES),
        config=Path(get("config")) if get("config") else None,
        pytest_args=pytest_args,
        baseline_key=key or None,
        dvc_remote=get("dvc-remote") or None,
        fail_on_regression=_flag("fail-on-regression", get("fail-on-regression") or "true"),
        comment=_choice("comment", get("comment") or "on-change", COMMENT_MODES),
        comment_dir=Path(get("comment-dir")) if get("comment-dir") else None,
        pr_run_id=int(run_id) if run_id else None,
        base_env=base_env_option(get("base-env") or None),
    )


@dataclass(frozen=True, kw_only=True)
class Event:
    """The triggering event: its name and payload (``GITHUB_EVENT_NAME``/``GITHUB_EVENT_PATH``)."""

    name: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def from_env(cls, env: ActionsEnv) -> Event:
        """Raises ConfigError when the event file exists but is not JSON, or a key perf-gate
        reads has another shape than GitHub sends (the message names the file and the key):
        before anything is measured, so a verdict is never replaced by it."""
        if env.event_path is None or not env.event_path.is_file():
            return cls(name=env.event_name)
        return cls(name=env.event_name, payload=load_event(env.event_path), path=env.event_path)

    def _section(self, key: str) -> Mapping[str, Any]:
        value = self.payload.get(key)
        return value if isinstance(value, Mapping) else {}

    @property
    def default_branch(self) -> str | None:
        branch = self._section("repository").get("default_branch")
        return branch if isinstance(branch, str) and branch else None

    @property
    def ref(self) -> str:
        ref = self.payload.get("ref")
        return ref if isinstance(ref, str) else ""

    @property
    def repository(self) -> str:
        return str(self._section("repository").get("full_name") or "")

    @property
    def head_sha(self) -> str | None:
        """The pull request's head commit (what a workflow_run of it reports as head_sha)."""
        head = self._section("pull_request").get("head")
        sha = head.get("sha") if isinstance(head, Mapping) else None
        return sha if isinstance(sha, str) and SHA.match(sha) else None

    @property
    def base_sha(self) -> str | None:
        """The pull request's base commit: the tip of its base branch when the event fired."""
        base = self._section("pull_request").get("base")
        sha = base.get("sha") if isinstance(base, Mapping) else None
        return sha if isinstance(sha, str) and SHA.match(sha) else None

    def pull_request(self) -> PullRequest | None:
        """The event's pull request (checked when the file was read), else None."""
        if self.path is None:
            return None
        return pull_request_of(self.payload, self.path)


def resolve_mode(settings: CiSettings, event: Event) -> str:
    """``check``, ``promote`` or ``post-comment``: the input, or (``auto``) from the event."""
    if settings.mode != "auto":
        return settings.mode
    if event.name == "workflow_run":
        return "post-comment"
    default = event.default_branch
    if event.name == "push" and default and event.ref == f"refs/heads/{default}":
        return "promote"
    return "check"


# ---------------------------------------------------------------------------------------------
# outcome


@dataclass(frozen=True, kw_only=True)
class CiOutcome:
    """What ``perf-gate ci`` did: the exit code, the step outputs and a line for the log."""

    mode: str
    exit_code: int
    outputs: Mapping[str, str]
    message: str


def status_of(data: Mapping[str, Any]) -> str:
    """pass | regression | no-baseline | error, from a comparison report."""
    code = data.get("exit_code")
    if code == ExitCode.REGRESSION:
        return "regression"
    if code != ExitCode.OK:
        return "error"
    return "pass" if data.get("has_baseline") else "no-baseline"
