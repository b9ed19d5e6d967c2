"""A dependency upgrade measured for real: the base side of a paired run runs in the base
revision's own environment, built by uv from a local wheelhouse (offline, no index).

``tinypkg`` 1.0 does a little work per call and 1.1 about a hundred times as much; the head's
interpreter has 1.1 (an unpacked wheel on ``PYTHONPATH``), and ``requirements.txt`` pins 1.0 in
the base revision. Without the base environment both sides would run 1.1 and the upgrade would
come out ``unchanged``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gate.measure import base_env

from ._support import comparisons_by_key, read_json, run_cli, run_pytest, write_files
from ._wheels import MODEL, MODEL_CONFIG, unpacked, wheel
from .test_ab import MODEL_AB, SEQUENTIAL, commit_all, git, repo_with

pytestmark = pytest.mark.slow

FAST = "VERSION = '1.0'\n\n\ndef compute():\n    return sum(range(200))\n"
SLOW = "VERSION = '1.1'\n\n\ndef compute():\n    return sum(range(200)) + sum(range(20_000))\n"
PERF_TEST = """
import tinypkg


def test_work(perf):
    assert perf.latency(tinypkg.compute) > 0
"""
CONFIG = SEQUENTIAL + "\nmeasure: {warmup: 2, min_calls: 50, min_time: 0.02s}\n"
# Where the verdict is not what a test is about: the fewest rounds.
BRIEF = "policy: {min_rounds: 2, max_rounds: 2, diagnose: never}\n"
BRIEF += "measure: {warmup: 1, min_calls: 10, min_time: 0.005s}\n"
# A torch model whose forward calls the package: the base environment runs torch too (read
# from this interpreter's packages) with the base revision's tinypkg.


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheelhouse")
    wheel(folder, "tinypkg", "1.0", FAST)
    wheel(folder, "tinypkg", "1.1", SLOW)
    return folder


@pytest.fixture(scope="module")
def head_packages(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The head's interpreter: this one with tinypkg 1.1."""
    return unpacked(wheelhouse / "tinypkg-1.1-py3-none-any.whl", tmp_path_factory.mktemp("head"))


def environment(wheelhouse: Path, head_packages: Path, tmp_path: Path) -> dict[str, str]:
    return {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(head_packages)])),
        "UV_FIND_LINKS": str(wheelhouse),
        "UV_OFFLINE": "1",
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "UV_NO_CONFIG": "1",
    }


def upgrade(
    tmp_path: Path, base_pin: str, head_pin: str, model: bool = False, config: str = CONFIG
) -> Path:
    """A repository whose perf test (and ``model``: a torch model) calls tinypkg; HEAD~1 pins
    ``base_pin``, HEAD ``head_pin``."""
    files = {
        "pytest.ini": "[pytest]\n",
        "perf-gate.yaml": (MODEL_CONFIG if model else "") + config,
        "test_work.py": PERF_TEST,
        "requirements.txt": f"tinypkg{base_pin}\n",
        **({"workmodel.py": MODEL} if model else {}),
    }
    repo = repo_with(tmp_path / "repo", files)
    write_files(repo, {"requirements.txt": f"tinypkg{head_pin}\n", "README.md": "bump\n"})
    commit_all(repo, "tinypkg pin")
    return repo


def latency(repo: Path, benchmark: str = "test_work.py::test_work") -> dict:
    comparison = read_json(repo / ".perf-gate" / "comparison.json")
    return comparisons_by_key(comparison)[(benchmark, "latency")]


def test_an_upgrade_that_slows_the_package_is_a_regression_naming_it(
    wheelhouse: Path, head_packages: Path, tmp_path: Path
) -> None:
    env = environment(wheelhouse, head_packages, tmp_path)
    repo = upgrade(tmp_path, "==1.0", "==1.1", model=True)
    ran = run_pytest(repo, "--perf-gate", "--perf-gate-ab", "HEAD~1", env=env)
    assert ran.ret == 1, ran.output
    for benchmark, mode in (("test_work.py::test_work", "ab"), ("work[torch]", MODEL_AB)):
        entry = latency(repo, benchmark)
        assert entry["verdict"] == "regression", entry
        assert entry["mode"] == mode  # a perf test's arms run one after the other
    data = read_json(repo / ".perf-gate" / "comparison.json")
    block = data["dependencies"]
    assert block["base_environment"] == "built"
    (package,) = block["packages"]
    assert package == {
        "name": "tinypkg",
        "base_requirement": "1.0",
        "head_requirement": "1.1",
        "base": "1.0",
        "head": "1.1",
    }
    assert block["sides"]["base"]["fingerprint"] != block["sides"]["head"]["fingerprint"]
    assert block["sides"]["base"]["python"] == block["sides"]["head"]["python"]
    assert any("tinypkg 1.0 -> 1.1" in n and "its own environment" in n for n in data["notes"])
    assert "tinypkg 1.0 -> 1.1" in ran.output
    # the same upgrade again, through the CLI: the environment comes from the cache, and the
    # diagnosis profiles each side in its own environment (the time is the package's Python)
    again = run_cli(repo, "run", "--ab", "HEAD~1", "--profile", env=env)
    assert again.ret == 1, again.output
    data = read_json(repo / ".perf-gate" / "comparison.json")
    assert data["dependencies"]["base_environment"] == "cached"
    assert latency(repo, "work[torch]")["verdict"] == "regression"
    (diagnosis,) = data["diagnosis"]
    assert diagnosis["available"], diagnosis["missing"]
    outside = diagnosis["outside_operators"]
    assert outside["head"] > 5 * outside["base"], outside
    cached = list((repo / ".perf-gate" / "cache" / "base-envs").iterdir())
    assert len(cached) == 1
    assert (cached[0] / base_env.READY_FILE).is_file()
    assert len(git(repo, "worktree", "list").splitlines()) == 1


def test_no_dependency_change_builds_nothing(
    wheelhouse: Path, head_packages: Path, tmp_path: Path
) -> None:
    env = environment(wheelhouse, head_packages, tmp_path)
    repo = upgrade(tmp_path, "==1.1", "==1.1", config=BRIEF)
    ran = run_pytest(repo, "--perf-gate", "--perf-gate-ab", "HEAD~1", env=env)
    # the verdict of an A/A pair is the noise's (3 rounds, a loaded machine): not asserted here
    assert ran.ret in (0, 1), ran.output
    assert latency(repo)["mode"] == "ab"  # a perf test's arms run one after the other
    data = read_json(repo / ".perf-gate" / "comparison.json")
    assert "dependencies" not in data
    assert not any("dependencies differ" in n for n in data["notes"])
    assert not (repo / ".perf-gate" / "cache" / "base-envs").exists()


def test_a_base_requirement_that_cannot_be_installed_falls_back_labelled(
    wheelhouse: Path, head_packages: Path, tmp_path: Path
) -> None:
    env = environment(wheelhouse, head_packages, tmp_path)
    repo = upgrade(tmp_path, "==0.9", "==1.1", config=BRIEF)  # no 0.9 in the wheelhouse
    ran = run_pytest(repo, "--perf-gate", "--perf-gate-ab", "HEAD~1", env=env)
    assert ran.ret in (0, 1), ran.output  # both sides ran 1.1: the verdict is the noise's
    data = read_json(repo / ".perf-gate" / "comparison.json")
    block = data["dependencies"]
    assert block["base_environment"] == "fallback"
    assert "tinypkg" in block["reason"]
    (note,) = [n for n in data["notes"] if "could not be built" in n]
    assert "tinypkg 0.9 -> 1.1" in note
    assert "this interpreter's packages" in note
    assert "could not be built" in ran.output
    assert not any(
        p.name.count(".partial-") for p in (repo / ".perf-gate" / "cache" / "base-envs").iterdir()
    )


def test_perf_gate_ci_on_a_pull_request_measures_the_upgrade(
    wheelhouse: Path, head_packages: Path, tmp_path: Path
) -> None:
    env = environment(wheelhouse, head_packages, tmp_path)
    repo = upgrade(tmp_path, "==1.0", "==1.1")
    events = Path(__file__).parents[1] / "fixtures" / "github" / "events"
    payload = json.loads((events / "pull_request.synchronize.json").read_text(encoding="utf-8"))
    payload["pull_request"]["base"]["sha"] = git(repo, "rev-parse", "HEAD~1")
    payload["pull_request"]["head"]["sha"] = git(repo, "rev-parse", "HEAD")
    event = tmp_path / "event.json"
    event.write_text(json.dumps(payload), encoding="utf-8")
    output, summary = tmp_path / "output", tmp_path / "summary"
    env |= {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_REPOSITORY": "octo-org/octo-repo",
        "PERF_GATE_COMMENT": "never",
        "PERF_GATE_PYTEST_ARGS": "test_work.py",
    }
    ran = run_cli(repo, "ci", env=env)
    assert ran.ret == 1, ran.output
    assert latency(repo)["verdict"] == "regression"
    text = summary.read_text(encoding="utf-8")
    assert "tinypkg" in text
    assert "1.0" in text
    assert "1.1" in text
    assert "\nregression\n" in output.read_text(encoding="utf-8")


def test_a_given_base_environment_that_cannot_run_perf_gate_is_one_line(
    wheelhouse: Path, head_packages: Path, tmp_path: Path
) -> None:
    env = environment(wheelhouse, head_packages, tmp_path)
    repo = upgrade(tmp_path, "==1.1", "==1.1")
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 1\n", encoding="utf-8")
    fake.chmod(0o755)
    given = ("--perf-gate-base-env", str(fake))
    ran = run_pytest(repo, "--perf-gate", "--perf-gate-ab", "HEAD~1", *given, env=env)
    assert ran.ret == 2, ran.output
    assert "Traceback" not in ran.output
    (line,) = ran.lines_with("cannot import perf-gate's worker")
    assert str(fake) in line
    assert "install perf-gate in that environment" in line
    assert "(perf-gate explain base-env)" in line
