"""The commit a pull request is paired with in CI (``ci.pull_request_base``), in real git
repositories: the merge commit actions/checkout makes, a checked-out head whose base branch
moved, a shallow clone with and without a stored baseline, and the cases that pair nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gate.config import load_config
from gate.integrations.github import ci
from gate.integrations.github.event import Event
from gate.store.git import BaseRevisionUnavailable

IDENTITY = ["-c", "user.name=dev", "-c", "user.email=dev@example.invalid"]
CONFIG = "models: {}\n"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *IDENTITY, *args], cwd=repo, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def commit(repo: Path, name: str) -> str:
    (repo / name).write_text(f"{name}\n", encoding="utf-8")
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", name)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """main: A; feature: A -> F; then main moves on: A -> B."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "perf-gate.yaml").write_text(CONFIG, encoding="utf-8")
    git(path, "add", "perf-gate.yaml")
    git(path, "commit", "-q", "-m", "A")
    git(path, "checkout", "-q", "-b", "feature")
    commit(path, "f.txt")
    git(path, "checkout", "-q", "main")
    commit(path, "b.txt")
    return path


def shallow_clone(repo: Path, where: Path) -> Path:
    """The feature branch as actions/checkout's default makes it: one commit, no history."""
    shallow = where / "shallow"
    git(where, "clone", "-q", "--depth", "1", "-b", "feature", f"file://{repo}", str(shallow))
    return shallow


def event(base: str, name: str = "pull_request") -> Event:
    payload = {"pull_request": {"number": 1, "base": {"sha": base}, "head": {"sha": "0" * 40}}}
    return Event(name=name, payload=payload)


def pair(
    repo: Path, base: str, *, stored: bool = False, name: str = "pull_request"
) -> tuple[str | None, str]:
    """The commit paired with, and the progress lines said on the way."""
    lines: list[str] = []
    found = ci.pull_request_base(
        load_config(repo / "perf-gate.yaml"), event(base, name), stored, lines.append
    )
    return found, "\n".join(lines)


def test_the_merge_commit_of_actions_checkout_pairs_with_the_base_commit(repo: Path) -> None:
    tip = git(repo, "rev-parse", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge feature into main", "feature")
    found, said = pair(repo, tip)
    assert found == tip
    assert "timings paired with its base commit" in said
    assert "merge-base" not in said


def test_a_checked_out_head_whose_base_moved_pairs_with_the_fork_point(repo: Path) -> None:
    fork_point = git(repo, "rev-parse", "main~1")
    tip = git(repo, "rev-parse", "main")
    git(repo, "checkout", "-q", "feature")
    found, said = pair(repo, tip)
    assert found == fork_point
    assert f"merge-base; the base branch is at {tip[:12]}" in said


def test_stored_timings_and_other_events_pair_with_nothing(repo: Path) -> None:
    tip = git(repo, "rev-parse", "main")
    git(repo, "checkout", "-q", "feature")
    assert pair(repo, tip, name="push") == (None, "")
    (repo / "perf-gate.yaml").write_text(
        "models: {}\npolicy: {timing_mode: stored}\n", encoding="utf-8"
    )
    found, said = pair(repo, tip)
    assert found is None
    assert "nothing to compare" in said


def test_a_shallow_clone_without_a_stored_baseline_names_the_fix(
    repo: Path, tmp_path: Path
) -> None:
    tip, shallow = git(repo, "rev-parse", "main"), shallow_clone(repo, tmp_path)
    with pytest.raises(BaseRevisionUnavailable) as raised:
        pair(shallow, tip)
    message = raised.value.message
    assert "no baseline is stored for this environment" in message
    assert tip[:12] in message
    assert "fetch-depth: 0" in message
    assert raised.value.exit_code == 2


def test_a_shallow_clone_with_a_stored_baseline_pairs_with_its_commit(
    repo: Path, tmp_path: Path
) -> None:
    tip, shallow = git(repo, "rev-parse", "main"), shallow_clone(repo, tmp_path)
    found, said = pair(shallow, tip, stored=True)
    assert found is None
    assert "pairing with the baseline's commit" in said
