"""The GitHub Actions runner's files and workflow commands (files and stdout only, no network).

``GITHUB_STEP_SUMMARY`` gets the full report appended; ``GITHUB_OUTPUT`` gets ``name<<DELIM``
blocks with a random delimiter (a value can never end the block early); annotations are
``::error title=...::message`` lines escaped by the workflow-command rules, so no benchmark
name can start a command of its own. ``GITHUB_EVENT_PATH`` tells the pull request number.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import ConfigError

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


def read_event(path: Path) -> PullRequest | None:
    """The pull request of a ``pull_request``/``pull_request_target`` event file, else None.

    Raises ConfigError when the file cannot be read as JSON.
    """
    try:
        event: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{path}: cannot read the event file (GITHUB_EVENT_PATH): {exc}", slug="github-event"
        ) from exc
    pull = event.get("pull_request") if isinstance(event, dict) else None
    if not isinstance(pull, dict) or not isinstance(pull.get("number"), int):
        return None
    base = event.get("repository") or {}
    head = (pull.get("head") or {}).get("repo") or {}
    repository = str(base.get("full_name") or "")
    head_name = str(head.get("full_name") or "")
    return PullRequest(
        number=pull["number"],
        repository=repository,
        fork=bool(head.get("fork")) or (bool(head_name) and head_name != repository),
    )


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


def append_summary(path: Path, text: str) -> None:
    """Append ``text`` to the job summary file (the runner concatenates every step's)."""
    with path.open("a", encoding="utf-8") as summary:
        summary.write(text if text.endswith("\n") else text + "\n")


def write_outputs(
    path: Path,
    outputs: Mapping[str, str],
    delimiter: Callable[[], str] = lambda: f"ghadelimiter_{uuid.uuid4()}",
) -> None:
    """Append ``name<<DELIM``/value/``DELIM`` blocks; a delimiter found in a value is redrawn."""
    blocks = []
    for name, value in outputs.items():
        mark = delimiter()
        while mark in value:
            mark = delimiter()
        blocks.append(f"{name}<<{mark}\n{value}\n{mark}\n")
    with path.open("a", encoding="utf-8") as output:
        output.write("".join(blocks))
