"""``perf-gate ci`` beyond the end-to-end paths: the promoted pointers committed and pushed on
a branch that moved meanwhile or that refuses the push, a DVC remote that does not exist, and
the outputs and job summary when the gate cannot run. Real git and dvc, in tmp_path."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gate.config import load_config
from gate.errors import BaselineError, ConfigError, GateError
from gate.integrations.github import ci
from gate.integrations.github.event import CiSettings

IDENTITY = ["-c", "user.name=dev", "-c", "user.email=dev@example.invalid"]
DVC = Path(sys.executable).parent / "dvc"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *IDENTITY, *args], cwd=repo, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "README").write_text("x\n", encoding="utf-8")
    git(seed, "init", "-q", "-b", "main")
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "first")
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(tmp_path / "origin.git"))
    return tmp_path / "origin.git"


def clone(origin: Path, path: Path) -> Path:
    git(origin.parent, "clone", "-q", str(origin), str(path))
    return path


def pointer(repo: Path, name: str = "main@k.json.dvc") -> Path:
    path = repo / "baselines" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("outs:\n- md5: 0123456789abcdef0123456789abcdef\n  path: main@k.json\n")
    return path


def test_pointers_are_pushed_over_a_branch_that_moved(
    origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # a runner's git has no identity configured
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    runner = clone(origin, tmp_path / "runner")
    other = clone(origin, tmp_path / "other")  # a merge landed while the runner measured
    (other / "feature.py").write_text("x = 1\n", encoding="utf-8")
    git(other, "add", "-A")
    git(other, "commit", "-q", "-m", "a merge meanwhile")
    git(other, "push", "-q", "origin", "main")
    done = ci.commit_pointers(runner, [pointer(runner)], "main", "perf-gate: promote [skip ci]")
    assert done == "pushed the pointers to main"
    log = git(origin, "log", "--format=%s|%an", "main")
    assert log.splitlines() == [
        "perf-gate: promote [skip ci]|github-actions[bot]",  # no identity configured: the bot's
        "a merge meanwhile|dev",
        "first|dev",
    ]


def test_a_refused_push_names_the_permission(origin: Path, tmp_path: Path) -> None:
    hook = origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'permission denied to github-actions[bot]' >&2\nexit 1\n")
    hook.chmod(0o755)
    runner = clone(origin, tmp_path / "runner")
    with pytest.raises(BaselineError) as caught:
        ci.commit_pointers(runner, [pointer(runner)], "main", "promote")
    assert "its pointers could not be pushed to main" in caught.value.message
    assert "permissions: contents: write" in caught.value.message
    assert caught.value.slug == "ci-push"


def test_without_origin_the_pointers_are_committed_only(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "first")
    assert "no origin remote" in ci.commit_pointers(repo, [pointer(repo)], "main", "promote")
    assert git(repo, "log", "-1", "--format=%s") == "promote"
    assert ci.commit_pointers(repo, [pointer(repo)], "main", "again") == (
        "the pointers were already committed"
    )


def test_a_gate_that_cannot_run_still_sets_status_error(tmp_path: Path) -> None:
    output, summary = tmp_path / "output", tmp_path / "summary"
    environ = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_EVENT_NAME": "pull_request",
    }
    settings = CiSettings(mode="check", config=tmp_path / "missing.yaml")
    with pytest.raises(GateError) as caught:
        ci.run_ci(
            settings,
            environ,
            make_client=lambda url, token: pytest.fail("no API call expected"),
            warn=lambda message: None,
            stdout=io.StringIO(),
            progress=lambda message: None,
        )
    assert "missing.yaml" in caught.value.message
    assert "status<<" in output.read_text(encoding="utf-8")
    assert "\nerror\n" in output.read_text(encoding="utf-8")
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("### ⚠️ perf-gate could not run")
    assert "missing" in text


@pytest.mark.slow
@pytest.mark.skipif(not DVC.is_file(), reason="dvc is not installed")
def test_an_unknown_dvc_remote_names_the_configured_ones(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    for command in (["init", "-q"], ["remote", "add", "-d", "storage", str(tmp_path / "r")]):
        subprocess.run([str(DVC), *command], cwd=tmp_path, env=env, check=True)
    (tmp_path / "perf-gate.yaml").write_text("baseline: baselines/main.json\n", encoding="utf-8")
    config = load_config(tmp_path / "perf-gate.yaml")
    with pytest.raises(ConfigError, match=r"no DVC remote named 'backup' \(configured: storage\)"):
        ci._dvc(config, "backup")
    assert ci._dvc(config, "storage").default_remote() == "storage"
    # A remote whose path is longer than a terminal line (DVC wraps its tables at 80 columns
    # when not writing to a terminal) still reads back whole.
    far = tmp_path / ("deep-" * 30) / "remote"
    subprocess.run([str(DVC), "remote", "add", "far", str(far)], cwd=tmp_path, env=env, check=True)
    assert ci._dvc(config, "far").remotes() == {"storage": str(tmp_path / "r"), "far": str(far)}
