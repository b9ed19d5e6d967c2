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
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._runner import ActionResult
from ._world import BASE, DVC, World, comments, git, open_world, sh

np = pytest.importorskip("numpy")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


pytestmark = pytest.mark.slow

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


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with open_world(tmp_path_factory.mktemp("action"), write_project, dvc=True) as opened:
        yield opened


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
    checked = world.act(  # a pass with every row unchanged: on-change would post nothing
        world.workspace("origin/fork-changes"),
        "pull_request",
        pull,
        run_id=run["workflow_run"]["id"],
        inputs={"comment": "always"},
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


def test_no_baseline_yet_passes_and_says_so(world: World, no_baseline: ActionResult) -> None:
    assert no_baseline.exit_code == 0, no_baseline.log
    assert no_baseline.outputs["status"] == "no-baseline"
    assert no_baseline.outputs["regressions"] == "0"
    assert "no baseline has been promoted" in no_baseline.step("perf-gate ci").stderr
    (comment,) = comments(world, 1)
    for text in (comment["body"], no_baseline.summary):
        assert text.startswith("### 🆕 perf-gate (cpu-")  # the tool and the machine
        assert "no baseline yet" in text.splitlines()[0]
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
    assert promoted.summary.startswith("### 🆕 perf-gate (cpu-")
    assert "no baseline yet" in promoted.summary.splitlines()[0]


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
    assert comment["body"].startswith("### ✅ perf-gate (cpu-")
    assert "no regression" in comment["body"].splitlines()[0]
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
    assert comment["body"].startswith("### ✅ perf-gate (cpu-")
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
