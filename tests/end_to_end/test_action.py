"""The GitHub Action run as a runner runs it, against the GitHub API test server and a DVC remote.

tests/end_to_end/_runner.py reads action.yml and executes each step: the install step really
pip-installs perf-gate from ``GITHUB_ACTION_PATH`` (a copy of this checkout, offline, into a
fresh virtual environment that sees this one's torch/onnxruntime, as a user's workflow would have
installed them), and ``perf-gate ci`` really pulls and promotes baselines with ``dvc`` and talks
to a 127.0.0.1 server that checks every request against GitHub's OpenAPI description. Events
are @octokit/webhooks-examples payloads (tests/fixtures/github/events).

One repository goes through the paths of the issue, in order:

1. a pull request before any baseline exists: passes and says so;
2. the push to the default branch: promotes the baseline to the DVC remote and pushes the
   pointers to the branch;
3. a pull request that breaks the model: fails, comment created (run again with
   ``fail-on-regression: "false"``: reported, the job passes);
4. the same pull request fixed: passes, the same comment updated, not duplicated;
5. a pull request from a fork: its read-only token cannot comment, the comment is uploaded as an
   artifact, and the workflow_run poster posts it;
6. a pull request run with a second config that times base and head side by side and diagnoses
   every timing (``diagnose: always``): the traces of both sides are uploaded as the
   ``perf-gate-profiles`` artifact.

The project is one ONNX MatMul with an eval set; "breaking" it swaps two output columns, so
its accuracy drops by about half: a regression with no timing noise in it. Latency is measured
too (stored rounds), with a threshold wide enough that a loaded machine cannot fail it.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import textwrap
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from ._runner import ActionResult, Runner, runner_environment
from ._support import REPO

np = pytest.importorskip("numpy")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from integration._github import FIXTURES, TOKEN, FakeGitHub  # noqa: E402  (tests/ on sys.path)

pytestmark = pytest.mark.slow

VENV_BIN = Path(sys.executable).parent
DVC = VENV_BIN / "dvc"
EVENTS = FIXTURES / "events"
BASE = "Codertocat/Hello-World"  # the repository of every event payload
IDENTITY = ["-c", "user.name=dev", "-c", "user.email=dev@example.invalid"]
MARKER = "<!-- perf-gate:comment name=main -->"
CONFIG = textwrap.dedent(
    """
    baseline: baselines/main.json
    models:
      tiny:
        onnx: model.onnx
        input: {shape: [1, 16], dtype: float32}
        variants: [onnxruntime]
        metrics: [latency]
        eval:
          data: eval.npz
          metrics: [accuracy]
    policy:
      timing_mode: stored
      thresholds: {latency: 400%, accuracy: 0.5pt}
    measure: {rounds: 3, warmup: 2, min_calls: 20, min_time: 0.02s, probes: 1}
    """
)

# The same gate, timed against the base revision (duet) and diagnosed whatever the verdict: the
# first config compares stored timings, which have no base revision to profile.
DIAGNOSE_CONFIG = CONFIG.replace("timing_mode: stored", "timing_mode: auto\n  diagnose: always")

if not DVC.is_file():  # pragma: no cover - `make test` installs the dvc extra
    pytest.skip("dvc is not installed in this environment", allow_module_level=True)


def sh(cwd: Path, *command: str | Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    return done.stdout.strip()


def git(repo: Path, *args: str) -> str:
    return sh(repo, "git", *IDENTITY, *args)


def write_model(project: Path, *, broken: bool) -> None:
    """``model.onnx``: logits = x @ W; broken: two of W's columns swapped."""
    weights = np.random.default_rng(7).standard_normal((16, 4)).astype(np.float32)
    if broken:
        weights = weights[:, [1, 0, 2, 3]]
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["input", "w"], ["logits"])],
        "tiny",
        [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", 16])],
        [onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", 4])],
        [onnx.numpy_helper.from_array(weights, "w")],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(project / "model.onnx"))


def write_project(project: Path) -> None:
    (project / "perf-gate.yaml").write_text(CONFIG, encoding="utf-8")
    (project / "perf-gate-diagnose.yaml").write_text(DIAGNOSE_CONFIG, encoding="utf-8")
    (project / ".gitignore").write_text(".perf-gate/\n__pycache__/\n", encoding="utf-8")
    write_model(project, broken=False)
    weights = np.random.default_rng(7).standard_normal((16, 4)).astype(np.float32)
    x = np.random.default_rng(8).standard_normal((400, 16)).astype(np.float32)
    np.savez(project / "eval.npz", x=x, y=(x @ weights).argmax(axis=1).astype(np.int64))


def action_copy(target: Path) -> Path:
    """What a runner downloads for ``uses: owner/perf-gate@ref``: the repository's files."""
    target.mkdir()
    for name in ("action.yml", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, target / name)
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
        return _updated(payload, changes)

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


def _updated(payload: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with ``changes`` applied (keys are dotted paths)."""
    result = copy.deepcopy(payload)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = result
        for key in parents:
            node = node[key]
        node[last] = value
    return result


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("action")
    seed, origin, remote = root / "seed", root / "origin.git", root / "dvc-remote"
    seed.mkdir()
    remote.mkdir()
    write_project(seed)
    git(seed, "init", "-q", "-b", "master")
    dvc_env = {**_plain_env(), "DVC_NO_ANALYTICS": "1"}
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


def _plain_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GITHUB_"))}


def push_branch(world: World, branch: str, *, broken: bool, start: str = "origin/master") -> None:
    """A developer's commit on ``branch`` (a broken or a good model), pushed to origin."""
    work = world.root / f"dev-{branch}-{world.runs}"
    sh(world.root, "git", "clone", "-q", world.origin, work)
    git(work, "checkout", "-q", "-B", branch, start)
    write_model(work, broken=broken)
    git(work, "commit", "-q", "--allow-empty", "-am", f"{'break' if broken else 'fix'} the model")
    git(work, "push", "-q", "-f", "origin", branch)


@pytest.fixture(scope="module")
def no_baseline(world: World) -> ActionResult:
    push_branch(world, "first", broken=False)
    event = world.event("pull_request.opened.json", **{"pull_request.number": 1, "number": 1})
    return world.act(world.workspace("origin/first"), "pull_request", event, run_id=101)


@pytest.fixture(scope="module")
def promoted(world: World, no_baseline: ActionResult) -> ActionResult:
    event = world.event("push.json")
    return world.act(world.workspace("master"), "push", event, run_id=102)


@pytest.fixture(scope="module")
def regression(world: World, promoted: ActionResult) -> ActionResult:
    push_branch(world, "changes", broken=True)
    event = world.event("pull_request.opened.json")
    return world.act(world.workspace("origin/changes"), "pull_request", event, run_id=103)


@pytest.fixture(scope="module")
def advisory(world: World, regression: ActionResult) -> ActionResult:
    """The broken pull request again, with ``fail-on-regression: "false"``, no comment."""
    event = world.event("pull_request.opened.json")
    return world.act(
        world.workspace("origin/changes"),
        "pull_request",
        event,
        run_id=106,
        inputs={"fail-on-regression": "false", "comment": "never"},
    )


@pytest.fixture(scope="module")
def fixed(world: World, regression: ActionResult, advisory: ActionResult) -> ActionResult:
    push_branch(world, "changes", broken=False, start="origin/changes")
    event = world.event("pull_request.synchronize.json")
    return world.act(world.workspace("origin/changes"), "pull_request", event, run_id=104)


@pytest.fixture(scope="module")
def fork(world: World, promoted: ActionResult) -> tuple[ActionResult, int, ActionResult]:
    """The fork's run (PR #3, read-only token), the comments PR #3 had after it, then the
    workflow_run poster's run."""
    push_branch(world, "fork-changes", broken=False)
    pull = world.event("pull_request.synchronize.fork.json", **{"number": 3})
    pull["pull_request"]["number"] = 3
    world.fake.pulls[(BASE, 3)] = copy.deepcopy(pull["pull_request"])
    world.fake.script(
        "POST",
        403,
        {"message": "Resource not accessible by integration", "documentation_url": "x"},
        path="/issues/3/comments",
    )
    run = world.event("workflow_run.completed.fork.json")
    checked = world.act(
        world.workspace("origin/fork-changes"),
        "pull_request",
        pull,
        run_id=run["workflow_run"]["id"],
    )
    before = len(comments(world, 3))
    posted = world.act(world.workspace("master"), "workflow_run", run, run_id=105)
    return checked, before, posted


@pytest.fixture(scope="module")
def diagnosed(world: World, promoted: ActionResult) -> ActionResult:
    push_branch(world, "diagnosed", broken=True)
    event = world.event("pull_request.opened.json")
    return world.act(
        world.workspace("origin/diagnosed"),
        "pull_request",
        event,
        run_id=107,
        inputs={
            "config": "perf-gate-diagnose.yaml",
            "comment": "never",
            "fail-on-regression": "false",
        },
    )


def comments(world: World, number: int) -> list[dict[str, Any]]:
    return world.fake.comments.get((BASE, number), [])


def test_no_baseline_yet_passes_and_says_so(world: World, no_baseline: ActionResult) -> None:
    assert no_baseline.exit_code == 0, no_baseline.log
    assert no_baseline.outputs["status"] == "no-baseline"
    assert no_baseline.outputs["regressions"] == "0"
    assert "no baseline has been promoted" in no_baseline.step("perf-gate ci").stderr
    (comment,) = comments(world, 1)
    assert comment["body"].startswith("### 🆕 no baseline yet")
    assert no_baseline.summary.startswith("### 🆕 no baseline yet")
    assert Path(no_baseline.outputs["report-path"]).name == "summary.md"
    install = no_baseline.step("Install perf-gate")
    assert install.exit_code == 0, install.stderr
    assert (world.python_bin / "perf-gate").is_file()  # installed from GITHUB_ACTION_PATH


def test_a_push_to_the_default_branch_promotes_the_baseline(
    world: World, promoted: ActionResult
) -> None:
    assert promoted.exit_code == 0, promoted.log
    assert promoted.outputs["status"] == "no-baseline"  # compared with nothing, then promoted
    gate = promoted.step("perf-gate ci")
    assert "perf-gate ci (promote): promoted main@" in gate.stdout
    assert "pushed the pointers to master" in gate.stdout
    # the pointer commit is on origin's default branch, and its object in the DVC remote
    log = sh(world.root, "git", "--git-dir", world.origin, "log", "-1", "--format=%s%n%an")
    assert log.startswith("perf-gate: promote baseline main@")
    assert log.endswith("github-actions[bot]")
    files = sh(
        world.root, "git", "--git-dir", world.origin, "ls-tree", "-r", "--name-only", "master"
    )
    (pointer,) = [f for f in files.splitlines() if f.endswith(".json.dvc") and "history" not in f]
    text = sh(world.root, "git", "--git-dir", world.origin, "show", f"master:{pointer}")
    md5 = text.split("md5: ")[1].split()[0]
    assert (world.remote / "files" / "md5" / md5[:2] / md5[2:]).is_file()
    assert promoted.summary.startswith("### 🆕 no baseline yet")


def test_a_regression_fails_the_pull_request_with_a_comment(
    world: World, regression: ActionResult
) -> None:
    assert regression.exit_code == 1, regression.log
    assert regression.outputs["status"] == "regression"
    assert int(regression.outputs["regressions"]) >= 1
    gate = regression.step("perf-gate ci")
    assert "pulled" in gate.stderr  # the baseline came from the DVC remote
    assert "::error title=perf-gate regression%3A tiny[onnxruntime] accuracy::" in gate.stdout
    (comment,) = comments(world, 2)
    assert comment["body"].startswith("### ❌")
    assert "tiny\\[onnxruntime\\] | accuracy" in comment["body"]
    assert comment["body"].rstrip().endswith(MARKER)
    assert regression.outputs["comment-id"] == str(comment["id"])
    assert regression.outputs["comment-file-written"] == "false"
    assert regression.summary.startswith("### ❌")
    assert regression.step("Verdict").exit_code == 1
    # Timings compared as stored (no base revision) and only accuracy regressed: nothing to
    # diagnose, so no traces and no profiles artifact (the diagnosed run is below).
    report = Path(regression.outputs["report-path"]).with_name("comparison.json")
    assert json.loads(report.read_text(encoding="utf-8"))["diagnosis"] == []
    assert not regression.step("Upload the diagnosis's traces").ran


def test_fail_on_regression_false_reports_without_failing(
    world: World, advisory: ActionResult
) -> None:
    assert advisory.exit_code == 0, advisory.log
    assert advisory.outputs["status"] == "regression"
    assert "regressions do not fail the job" in advisory.step("perf-gate ci").stdout
    assert advisory.outputs["comment-file-written"] == "true"  # comment: never
    assert len(comments(world, 2)) == 1


def test_the_fixed_pull_request_passes_and_updates_the_same_comment(
    world: World, regression: ActionResult, fixed: ActionResult
) -> None:
    assert fixed.exit_code == 0, fixed.log
    assert fixed.outputs["status"] == "pass"
    assert fixed.outputs["regressions"] == "0"
    (comment,) = comments(world, 2)  # updated, not duplicated
    assert fixed.outputs["comment-id"] == regression.outputs["comment-id"] == str(comment["id"])
    assert comment["body"].startswith("### ✅ no regressions")
    patched = [c for c in world.fake.calls() if c[0] == "PATCH"]
    assert patched == [("PATCH", f"/repos/{BASE}/issues/comments/{comment['id']}")]


def test_a_fork_leaves_the_comment_and_the_workflow_run_poster_posts_it(
    world: World, fork: tuple[ActionResult, int, ActionResult]
) -> None:
    checked, before, posted = fork
    assert checked.exit_code == 0, checked.log
    assert checked.outputs["status"] == "pass"
    assert checked.outputs["comment-file-written"] == "true"
    assert before == 0  # the read-only token could not comment
    upload = checked.step("Upload the comment for the workflow_run poster (forks)")
    assert upload.ran
    assert upload.exit_code == 0
    assert posted.exit_code == 0, posted.log
    assert posted.step("Install perf-gate").ran
    assert posted.step("Download the pull request's comment (workflow_run)").exit_code == 0
    (comment,) = comments(world, 3)
    artifact = next((world.root / "artifacts").glob("*/perf-gate-comment-main"))
    assert comment["body"] == (artifact / "comment.md").read_text(encoding="utf-8")
    assert comment["body"].startswith("### ✅ no regressions")
    assert posted.outputs["comment-id"] == str(comment["id"])
    assert ("GET", f"/repos/{BASE}/pulls/3") in world.fake.calls()


def test_a_diagnosis_uploads_the_traces_of_both_sides(
    world: World, diagnosed: ActionResult
) -> None:
    assert diagnosed.exit_code == 0, diagnosed.log
    report = Path(diagnosed.outputs["report-path"]).with_name("comparison.json")
    (entry,) = json.loads(report.read_text(encoding="utf-8"))["diagnosis"]
    assert entry["benchmark"] == "tiny[onnxruntime]"
    assert entry["available"], entry["missing"]
    assert entry["tool"] == "onnxruntime"
    upload = diagnosed.step("Upload the diagnosis's traces")
    assert upload.ran
    assert upload.exit_code == 0, upload.stderr
    artifact = world.root / "artifacts" / "107" / "perf-gate-profiles"
    for side in ("base", "head"):
        # the report's path, from the config directory, ends with the artifact's path
        assert entry["traces"][side] == f".perf-gate/profiles/tiny[onnxruntime]/{side}.json"
        trace = json.loads((artifact / "tiny[onnxruntime]" / f"{side}.json").read_text())
        assert trace, f"{side}.json holds no events"
    assert "#### Where the time went" in diagnosed.summary
    assert "tiny\\[onnxruntime\\]/head.json (head)" in diagnosed.summary
