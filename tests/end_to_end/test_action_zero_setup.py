"""Zero-setup gating: the action in a repository with no baseline store at all.

No DVC, no baseline file, no secrets: on a ``pull_request`` event, ``perf-gate ci`` takes the
pull request's base commit from the event, checks it out in a worktree and measures it beside
the head (``duet`` rounds for the ONNX model), then its memory and accuracy in the same run, so
every metric gets a verdict. The runner executes action.yml's steps for real
(tests/end_to_end/_runner.py) against the GitHub API test server.

1. a pull request that slows the model: exit 1, the latency regression in the comment;
2. a pull request that leaves the model alone: exit 0, every metric compared (none ``new``),
   and no comment (``comment: on-change``, the default, posts none when nothing changed);
3. the slowing pull request from a fork: its read-only token cannot comment, the comment is
   uploaded as an artifact and the workflow_run poster posts it; the verdict stays exit 1;
4. a shallow checkout (actions/checkout's default ``fetch-depth: 1``): exit 2 before anything
   is measured, naming the fix.

The slowed model adds 48 MatMul layers to one: many times slower, so the verdict holds on a
loaded two-core machine with a 50% threshold.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._runner import ActionResult
from ._world import BASE, World, comments, git, open_world, sh

np = pytest.importorskip("numpy")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.slow

CONFIG = textwrap.dedent(
    """
    models:
      tiny:
        onnx: model.onnx
        input: {shape: [1, 64], dtype: float32}
        variants: [onnxruntime]
        metrics: [latency, memory]
        eval:
          data: eval.npz
          metrics: [accuracy]
    policy:
      thresholds: {latency: 50%, accuracy: 0.5pt}
      min_rounds: 6
      max_rounds: 12
    measure: {warmup: 5, min_calls: 50, min_time: 0.02s, probes: 1}
    """
)
EXTRA_LAYERS = 48


def write_model(project: Path, *, slowed: bool) -> None:
    """``model.onnx``: logits = x @ W; slowed: 48 square MatMul layers before it (the identity
    matrix, so the outputs and the accuracy stay the same)."""
    weights = np.random.default_rng(7).standard_normal((64, 4)).astype(np.float32)
    nodes, initializers, current = [], [onnx.numpy_helper.from_array(weights, "w")], "input"
    if slowed:
        initializers.append(onnx.numpy_helper.from_array(np.eye(64, dtype=np.float32), "eye"))
        for index in range(EXTRA_LAYERS):
            nodes.append(onnx.helper.make_node("MatMul", [current, "eye"], [f"h{index}"]))
            current = f"h{index}"
    nodes.append(onnx.helper.make_node("MatMul", [current, "w"], ["logits"]))
    graph = onnx.helper.make_graph(
        nodes,
        "tiny",
        [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", 64])],
        [onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", 4])],
        initializers,
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(project / "model.onnx"))


def write_project(project: Path) -> None:
    (project / "perf-gate.yaml").write_text(CONFIG, encoding="utf-8")
    (project / ".gitignore").write_text(".perf-gate/\n__pycache__/\n", encoding="utf-8")
    write_model(project, slowed=False)
    weights = np.random.default_rng(7).standard_normal((64, 4)).astype(np.float32)
    x = np.random.default_rng(8).standard_normal((300, 64)).astype(np.float32)
    np.savez(project / "eval.npz", x=x, y=(x @ weights).argmax(axis=1).astype(np.int64))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with open_world(tmp_path_factory.mktemp("zero-setup"), write_project, dvc=False) as opened:
        yield opened


def branch(world: World, name: str, *, slowed: bool) -> tuple[str, str]:
    """A developer's branch from master (the slowed model, or a README change), pushed to
    origin; returns (base commit, head commit)."""
    work = world.root / f"dev-{name}"
    sh(world.root, "git", "clone", "-q", world.origin, work)
    git(work, "checkout", "-q", "-b", name)
    if slowed:
        write_model(work, slowed=True)
    else:
        (work / "README.md").write_text("A tiny model.\n", encoding="utf-8")
        git(work, "add", "README.md")
    git(work, "commit", "-q", "-am", f"{name}: {'slow' if slowed else 'document'} the model")
    git(work, "push", "-q", "origin", name)
    return git(work, "rev-parse", "origin/master"), git(work, "rev-parse", "HEAD")


def pull_event(world: World, name: str, number: int, base: str, head: str) -> dict[str, Any]:
    event = world.event(name, **{"number": number, "pull_request.number": number})
    event["pull_request"]["base"]["sha"] = base
    event["pull_request"]["head"]["sha"] = head
    return event


def comparison(result: ActionResult) -> dict[str, Any]:
    path = Path(result.outputs["report-path"]).with_name("comparison.json")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def row(data: dict[str, Any], metric: str) -> dict[str, Any]:
    (found,) = [c for c in data["comparisons"] if c["metric"] == metric]
    return found


@pytest.fixture(scope="module")
def slowed(world: World) -> ActionResult:
    base, head = branch(world, "slower", slowed=True)
    event = pull_event(world, "pull_request.opened.json", 11, base, head)
    return world.act(world.workspace("origin/slower"), "pull_request", event, run_id=201)


@pytest.fixture(scope="module")
def unchanged(world: World) -> ActionResult:
    base, head = branch(world, "docs", slowed=False)
    event = pull_event(world, "pull_request.opened.json", 12, base, head)
    return world.act(world.workspace("origin/docs"), "pull_request", event, run_id=202)


def test_no_store_a_slowed_model_fails_against_the_base_commit(
    world: World, slowed: ActionResult
) -> None:
    assert slowed.exit_code == 1, slowed.log
    assert slowed.outputs["status"] == "regression"
    assert not (world.root / "run-1" / "workspace" / ".dvc").exists()
    gate = slowed.step("perf-gate ci").stderr
    assert "pull request: timings paired with its base commit" in gate
    data = comparison(slowed)
    latency = row(data, "latency")
    assert latency["verdict"] == "regression"
    assert latency["mode"] == "duet"
    assert latency["ci_low"] > 0.5  # many times slower: the whole interval past the threshold
    # memory and accuracy compared with the base commit, measured in this run: not "new"
    assert row(data, "accuracy")["verdict"] == "unchanged"
    assert row(data, "memory.peak")["verdict"] != "new"
    assert any("no stored baseline" in note for note in data["notes"])
    (comment,) = comments(world, 11)
    heading = comment["body"].splitlines()[0]
    assert heading.startswith("### ❌ perf-gate (cpu-")
    assert "tiny\\[onnxruntime\\] latency +" in heading  # the worst change, in the heading
    assert "tiny\\[onnxruntime\\]" in comment["body"]
    assert slowed.outputs["comment-file-written"] == "false"


def test_no_store_an_unchanged_model_passes_with_every_metric_compared(
    world: World, unchanged: ActionResult
) -> None:
    assert unchanged.exit_code == 0, unchanged.log
    assert unchanged.outputs["status"] == "pass"
    data = comparison(unchanged)
    verdicts = {c["metric"]: c["verdict"] for c in data["comparisons"]}
    assert verdicts["latency"] in ("unchanged", "improvement")
    assert "new" not in verdicts.values(), verdicts
    heading = unchanged.summary.splitlines()[0]
    assert heading.startswith("### ✅ perf-gate (cpu-")
    assert "no regression" in heading
    # comment: on-change (the default) posts no first comment when every row is unchanged
    assert comments(world, 12) == []
    assert unchanged.outputs["comment-id"] == ""


def test_no_store_a_fork_comments_through_the_workflow_run_poster(
    world: World, slowed: ActionResult
) -> None:
    base, _ = branch(world, "fork-slower", slowed=True)
    pull = pull_event(
        world,
        "pull_request.synchronize.fork.json",
        13,
        base,
        "ec26c3e57ca3a959ca5aad62de7213c562f8c821",  # the workflow_run payload's head_sha
    )
    world.fake.pulls[(BASE, 13)] = json.loads(json.dumps(pull["pull_request"]))
    world.fake.script(
        "POST",
        403,
        {"message": "Resource not accessible by integration", "documentation_url": "x"},
        path="/issues/13/comments",
    )
    run = world.event("workflow_run.completed.fork.json")
    checked = world.act(
        world.workspace("origin/fork-slower"),
        "pull_request",
        pull,
        run_id=run["workflow_run"]["id"],
    )
    assert checked.exit_code == 1, checked.log
    assert checked.outputs["status"] == "regression"
    assert checked.outputs["comment-file-written"] == "true"
    assert comments(world, 13) == []
    posted = world.act(world.workspace("master"), "workflow_run", run, run_id=203)
    assert posted.exit_code == 0, posted.log
    (comment,) = comments(world, 13)
    assert comment["body"].startswith("### ❌")
    assert posted.outputs["comment-id"] == str(comment["id"])


def test_no_store_a_shallow_clone_names_the_fix(world: World, slowed: ActionResult) -> None:
    workspace = world.root / "shallow" / "workspace"
    workspace.parent.mkdir()
    origin = f"file://{world.origin}"
    sh(world.root, "git", "clone", "-q", "--depth", "1", "-b", "slower", origin, workspace)
    base = git(world.root / "dev-slower", "rev-parse", "origin/master")
    head = git(workspace, "rev-parse", "HEAD")
    event = pull_event(world, "pull_request.opened.json", 14, base, head)
    result = world.act(workspace, "pull_request", event, run_id=204)
    assert result.exit_code == 2, result.log
    assert result.outputs["status"] == "error"
    gate = result.step("perf-gate ci").stderr
    assert "fetch-depth: 0" in gate
    assert "no baseline is stored for this environment" in gate
    assert "Traceback" not in result.log
    assert comments(world, 14) == []
