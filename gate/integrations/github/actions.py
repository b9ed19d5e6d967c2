"""The GitHub Actions runner's files and workflow commands (files and stdout only, no network).

``GITHUB_STEP_SUMMARY`` gets the full report appended; ``GITHUB_OUTPUT`` gets ``name<<DELIM``
blocks with a random delimiter (a value can never end the block early); annotations are
``::error title=...::message`` lines escaped by the workflow-command rules, so no benchmark
name can start a command of its own. ``GITHUB_EVENT_PATH`` tells the pull request number; its
payload is checked where perf-gate reads it, so a key of another shape is one line naming the
file and the key. A runner file that cannot be written is a PublishError the callers turn into
a warning: publishing never changes the verdict.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import ConfigError, PublishError

MAX_ANNOTATIONS = 10


@dataclass(frozen=True, kw_only=True)
class ActionsEnv:
    """What the runner tells a step through its environment (all optional outside Actions)."""

    in_actions: bool = False
    step_summary: Path | None = None
    output: Path | None = None
    event_path: Path | None = None
    event_name: str = ""
    repository: str = ""
    api_url: str = ""
    server_url: str = ""
    run_id: str = ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ActionsEnv:
        env = os.environ if environ is None else environ

        def path(name: str) -> Path | None:
            return Path(env[name]) if env.get(name) else None

        return cls(
            in_actions=env.get("GITHUB_ACTIONS") == "true",
            step_summary=path("GITHUB_STEP_SUMMARY"),
            output=path("GITHUB_OUTPUT"),
            event_path=path("GITHUB_EVENT_PATH"),
            event_name=env.get("GITHUB_EVENT_NAME", ""),
            repository=env.get("GITHUB_REPOSITORY", ""),
            api_url=env.get("GITHUB_API_URL", ""),
            server_url=env.get("GITHUB_SERVER_URL", ""),
            run_id=env.get("GITHUB_RUN_ID", ""),
        )

    @property
    def run_url(self) -> str | None:
        """The workflow run's page, where the job summary shows."""
        if self.server_url and self.repository and self.run_id:
            return f"{self.server_url.rstrip('/')}/{self.repository}/actions/runs/{self.run_id}"
        return None


@dataclass(frozen=True, kw_only=True)
class PullRequest:
    number: int
    repository: str  # the base repository, where the comment goes
    fork: bool  # head in another repository: GITHUB_TOKEN is read-only there


# ---------------------------------------------------------------------------------------------
# the event file


def _kind(value: Any) -> str:
    """What a JSON value is, for a message: ``a string ('a/b')``, ``a list``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})"
    return f"a number ({repr(value)[:40]})"


class _Shape:
    """Checks the keys perf-gate reads from an event payload; each error names the file and
    the key. Keys that are absent are left to the caller (most are optional); a key that is
    present with another type than GitHub sends is an error, never a traceback."""

    def __init__(self, where: str) -> None:
        self.where = where

    def error(self, key: str, expected: str, value: Any) -> ConfigError:
        got = "nothing" if value is ... else _kind(value)
        return ConfigError(
            f"{self.where}: {key}: expected {expected}, got {got}; the event file "
            "(GITHUB_EVENT_PATH) does not have the shape of the event GitHub sends",
            slug="github-event",
        )

    def section(
        self, parent: Mapping[str, Any], key: str, name: str, *, required: bool = False
    ) -> Mapping[str, Any]:
        """``parent[key]`` as an object ({} when absent or null and not ``required``)."""
        value = parent.get(key, ...)
        if isinstance(value, Mapping):
            return value
        if (value is ... or value is None) and not required:
            return {}
        raise self.error(name, "an object", value)

    def string(self, parent: Mapping[str, Any], key: str, name: str) -> str:
        """``parent[key]`` as a string ("" when absent or null)."""
        value = parent.get(key)
        if value is None or isinstance(value, str):
            return value or ""
        raise self.error(name, "a string", value)

    def number(self, parent: Mapping[str, Any], key: str, name: str) -> int:
        """``parent[key]``: a positive whole number, required."""
        value = parent.get(key, ...)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        raise self.error(name, "a positive whole number", value)

    def repository(self, parent: Mapping[str, Any], key: str, name: str) -> str:
        """The ``full_name`` of the repository object at ``parent[key]`` ("" when absent)."""
        repo = self.section(parent, key, name)
        full_name = self.string(repo, "full_name", f"{name}.full_name")
        if full_name and full_name.count("/") != 1:
            raise self.error(f"{name}.full_name", "OWNER/NAME", full_name)
        return full_name


def check_event(payload: Any, path: Path) -> Mapping[str, Any]:
    """The payload, checked where perf-gate reads it (repository, ref, pull_request,
    workflow_run). Raises ConfigError naming the file and the key."""
    shape = _Shape(str(path))
    if not isinstance(payload, Mapping):
        raise shape.error("the event", "an object", payload)
    shape.repository(payload, "repository", "repository")
    shape.string(
        shape.section(payload, "repository", "repository"),
        "default_branch",
        "repository.default_branch",
    )
    shape.string(payload, "ref", "ref")
    _pull_request(shape, payload)
    run = shape.section(payload, "workflow_run", "workflow_run")
    for key in ("event", "head_sha"):
        shape.string(run, key, f"workflow_run.{key}")
    shape.repository(run, "head_repository", "workflow_run.head_repository")
    pulls = run.get("pull_requests")
    if pulls is not None and not isinstance(pulls, list):
        raise shape.error("workflow_run.pull_requests", "a list", pulls)
    for index, item in enumerate(pulls or ()):
        name = f"workflow_run.pull_requests[{index}]"
        if not isinstance(item, Mapping):
            raise shape.error(name, "an object", item)
        shape.number(item, "number", f"{name}.number")
    return payload


def _pull_request(shape: _Shape, payload: Mapping[str, Any]) -> PullRequest | None:
    """The ``pull_request`` of a payload (None when it has none), checked."""
    if payload.get("pull_request") is None:
        return None
    pull = shape.section(payload, "pull_request", "pull_request", required=True)
    number = shape.number(pull, "number", "pull_request.number")
    head = shape.section(pull, "head", "pull_request.head", required=True)
    shape.string(head, "sha", "pull_request.head.sha")
    head_repo = shape.section(head, "repo", "pull_request.head.repo")
    head_name = shape.repository(head, "repo", "pull_request.head.repo")
    fork = head_repo.get("fork", False)
    if not isinstance(fork, bool):
        raise shape.error("pull_request.head.repo.fork", "true or false", fork)
    repository = shape.repository(payload, "repository", "repository")
    return PullRequest(
        number=number,
        repository=repository,
        fork=fork or (bool(head_name) and head_name != repository),
    )


def pull_request_of(payload: Mapping[str, Any], path: Path) -> PullRequest | None:
    """The pull request of an event payload (``pull_request``/``pull_request_target``), else
    None. Raises ConfigError naming the file and the key of a wrong shape."""
    return _pull_request(_Shape(str(path)), payload)


def load_event(path: Path) -> Mapping[str, Any]:
    """The event file's payload, checked (:func:`check_event`).

    Raises ConfigError naming the file when it cannot be read, is not JSON, or has a key of
    another shape than GitHub sends.
    """
    try:
        payload: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConfigError(
            f"{path}: cannot read the event file (GITHUB_EVENT_PATH): {reason}",
            slug="github-event",
        ) from None
    return check_event(payload, path)


def read_event(path: Path) -> PullRequest | None:
    """The pull request of a ``pull_request``/``pull_request_target`` event file, else None.

    Raises ConfigError when the file cannot be read as JSON or has a wrong shape.
    """
    return pull_request_of(load_event(path), path)


def escape_data(text: str) -> str:
    """A workflow command's message: ``%``, CR and LF escaped."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: also ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, message: str, *, title: str = "") -> str:
    """``::error title=...::message`` (level: error, warning or notice)."""
    properties = f" title={escape_property(title)}" if title else ""
    return f"::{level}{properties}::{escape_data(message)}"


def _percent(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f" {value * 100:+.1f}%"
    return ""


def regression_annotations(data: Mapping[str, Any], limit: int = MAX_ANNOTATIONS) -> list[str]:
    """One ``::error`` per failing comparison (at most ``limit``, then a notice of the rest)."""
    failing = [
        c
        for c in data.get("comparisons") or ()
        if isinstance(c, Mapping)
        and c.get("verdict") in ("regression", "over-budget", "parity-fail", "error")
        and not c.get("advisory")
    ]
    lines = []
    for item in failing[:limit]:
        verdict = str(item.get("verdict"))
        title = f"perf-gate {verdict}: {item.get('benchmark')} {item.get('metric')}"
        change = _percent(item.get("relative_change"))
        note = f" ({item['note']})" if item.get("note") else ""
        lines.append(
            annotation(
                "error",
                f"{item.get('benchmark')} {item.get('metric')}: {verdict}{change}{note}",
                title=title,
            )
        )
    if len(failing) > limit:
        lines.append(
            annotation("notice", f"{len(failing) - limit} more failing results in the job summary")
        )
    return lines


def _runner_file_error(path: Path, variable: str, exc: OSError) -> PublishError:
    reason = exc.strerror or type(exc).__name__
    return PublishError(
        f"{path}: cannot append to {variable}: {reason}; it should be the file the runner "
        "made for this step (unset it outside GitHub Actions)",
        slug="github-runner-file",
    )


def append_summary(path: Path, text: str) -> None:
    """Append ``text`` to the job summary file (the runner concatenates every step's).

    Raises PublishError naming GITHUB_STEP_SUMMARY when it cannot be written (a folder, no
    permission): callers warn, since a summary never changes the verdict.
    """
    try:
        with path.open("a", encoding="utf-8") as summary:
            summary.write(text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        raise _runner_file_error(path, "GITHUB_STEP_SUMMARY", exc) from None


def write_outputs(
    path: Path,
    outputs: Mapping[str, str],
    delimiter: Callable[[], str] = lambda: f"ghadelimiter_{uuid.uuid4()}",
) -> None:
    """Append ``name<<DELIM``/value/``DELIM`` blocks; a delimiter found in a value is redrawn.

    Raises PublishError naming GITHUB_OUTPUT when it cannot be written.
    """
    blocks = []
    for name, value in outputs.items():
        mark = delimiter()
        while mark in value:
            mark = delimiter()
        blocks.append(f"{name}<<{mark}\n{value}\n{mark}\n")
    try:
        with path.open("a", encoding="utf-8") as output:
            output.write("".join(blocks))
    except OSError as exc:
        raise _runner_file_error(path, "GITHUB_OUTPUT", exc) from None
