"""The runner, the repository and the GitHub API test server of the action's end-to-end tests.

A :class:`World` holds an origin repository (bare), the action as a runner downloads it, a
runner's Python (a fresh virtual environment that sees this one's torch and onnxruntime, not
perf-gate) and the 127.0.0.1 server standing in for GitHub's API; ``act`` runs action.yml's
steps in a fresh checkout as a runner would (tests/end_to_end/_runner.py).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from integration._github import FIXTURES, TOKEN, FakeGitHub
from pytest_httpserver import HTTPServer

from ._runner import ActionResult, Runner, runner_environment
from ._support import REPO

VENV_BIN = Path(sys.executable).parent
DVC = VENV_BIN / "dvc"
EVENTS = FIXTURES / "events"
BASE = "Codertocat/Hello-World"  # the repository of every event payload
IDENTITY = ["-c", "user.name=dev", "-c", "user.email=dev@example.invalid"]


def sh(cwd: Path, *command: str | Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    return done.stdout.strip()


def git(repo: Path, *args: str) -> str:
    return sh(repo, "git", *IDENTITY, *args)


def action_copy(target: Path) -> Path:
    """What a runner downloads for ``uses: owner/perf-gate@ref``: the repository's files (its
    top-level files, such as action.yml and its constraints, and the package)."""
    target.mkdir()
    for path in REPO.iterdir():
        if path.is_file() and not path.name.startswith("."):
            shutil.copy2(path, target / path.name)
    shutil.copytree(REPO / "gate", target / "gate", ignore=shutil.ignore_patterns("__pycache__"))
    return target


def runner_python(folder: Path) -> Path:
    """A fresh virtual environment standing for the runner's Python after the user's install
    steps: it sees this environment's packages (torch, onnxruntime, numpy...) through a .pth
    file, but not perf-gate, which the action's first step installs."""
    venv.EnvBuilder(with_pip=True).create(folder)
    site = next((folder / "lib").glob("python*/site-packages"))
    ours = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (site / "user-installed.pth").write_text(ours + "\n", encoding="utf-8")
    # ensurepip's old setuptools would shadow the one perf-gate's pyproject.toml needs
    sh(folder, folder / "bin" / "python", "-m", "pip", "uninstall", "-q", "-y", "setuptools")
    return folder / "bin"


@dataclass
class World:
    """The repository, its remotes, the runner and the GitHub API test server."""

    root: Path
    origin: Path
    remote: Path
    action: Path
    python_bin: Path
    fake: FakeGitHub
    runs: int = 0

    def workspace(self, ref: str) -> Path:
        """A checkout of ``ref`` as actions/checkout with ``fetch-depth: 0`` makes it."""
        self.runs += 1
        path = self.root / f"run-{self.runs}" / "workspace"
        path.parent.mkdir()
        sh(self.root, "git", "clone", "-q", self.origin, path)
        git(path, "checkout", "-q", ref)
        return path

    def event(self, name: str, **changes: Any) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
        return updated(payload, changes)

    def act(
        self,
        workspace: Path,
        event_name: str,
        payload: dict[str, Any],
        *,
        run_id: int,
        inputs: dict[str, str] | None = None,
    ) -> ActionResult:
        job = workspace.parent
        event_path = job / "event.json"
        event_path.write_text(json.dumps(payload), encoding="utf-8")
        (job / "temp").mkdir()
        (job / "home").mkdir()
        pull = payload.get("pull_request") or {}
        variables = {
            "GITHUB_EVENT_NAME": event_name,
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_REPOSITORY": BASE,
            "GITHUB_API_URL": self.fake.base,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": str(run_id),
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_SHA": git(workspace, "rev-parse", "HEAD"),
            "GITHUB_REF": payload.get("ref") or f"refs/pull/{pull.get('number')}/merge",
            "RUNNER_TEMP": str(job / "temp"),
            # this machine installs from nothing but what is here: no index, no build isolation
            "PIP_NO_INDEX": "1",
            "PIP_NO_BUILD_ISOLATION": "0",
        }
        if pull:
            variables["GITHUB_HEAD_REF"] = pull["head"]["ref"]
            variables["GITHUB_BASE_REF"] = pull["base"]["ref"]
        runner = Runner(
            action_path=self.action,
            workspace=workspace,
            temp=job / "temp",
            artifacts=self.root / "artifacts",
            environment=runner_environment([self.python_bin, VENV_BIN], job / "home", **variables),
            github={
                "event_name": event_name,
                "event": payload,
                "token": TOKEN,
                "run_id": run_id,
                "repository": BASE,
            },
        )
        return runner.run(inputs)


def updated(payload: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with ``changes`` applied (keys are dotted paths)."""
    result = copy.deepcopy(payload)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = result
        for key in parents:
            node = node[key]
        node[last] = value
    return result


def comments(world: World, number: int) -> list[dict[str, Any]]:
    return world.fake.comments.get((BASE, number), [])


def plain_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "GITHUB_")) or k == "PYTEST_ADDOPTS"  # tests/conftest.py
    }


@contextmanager
def open_world(root: Path, write_project: Callable[[Path], None], *, dvc: bool) -> Iterator[World]:
    """A World whose origin's default branch (``master``) holds what ``write_project`` wrote;
    ``dvc``: a DVC repository with a local-directory remote (else no baseline store at all).
    Every request the server saw must fit GitHub's OpenAPI description."""
    seed, origin, remote = root / "seed", root / "origin.git", root / "dvc-remote"
    seed.mkdir()
    remote.mkdir()
    write_project(seed)
    git(seed, "init", "-q", "-b", "master")
    if dvc:
        dvc_env = {**plain_env(), "DVC_NO_ANALYTICS": "1"}
        sh(seed, DVC, "init", "-q", env=dvc_env)
        sh(seed, DVC, "remote", "add", "-d", "storage", remote, env=dvc_env)
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "a tiny model")
    sh(root, "git", "clone", "-q", "--bare", seed, origin)
    action = action_copy(root / "perf-gate-action")
    python_bin = runner_python(root / "runner-python")
    server = HTTPServer(host="127.0.0.1")
    server.start()
    try:
        fake = FakeGitHub(server)
        yield World(root, origin, remote, action, python_bin, fake)
        assert fake.problems == [], "requests or answers outside GitHub's OpenAPI description"
    finally:
        server.clear()
        server.stop()
