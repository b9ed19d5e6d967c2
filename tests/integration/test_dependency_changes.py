"""Dependency changes between the base revision and the working tree (store/dependencies.py),
in real git repositories: requirement pins, pyproject dependencies and lock files, and the note
a paired run gets when its base side ran with this interpreter's packages."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from gate.base_run import base_checkout
from gate.config import load_config
from gate.store.dependencies import (
    Change,
    base_requirements,
    changes_note,
    dependency_changes,
    parse_requirements,
    parse_toml,
)

IDENTITY = ["-c", "user.name=dev", "-c", "user.email=dev@example.invalid"]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *IDENTITY, *args], cwd=repo, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


UV_LOCK = """
version = 1
requires-python = ">=3.10"

[[package]]
name = "onnxruntime"
version = "{ort}"
source = {{ registry = "https://pypi.org/simple" }}

[[package]]
name = "NumPy"
version = "2.1.0"
source = {{ registry = "https://pypi.org/simple" }}
"""


def test_requirement_lines_pins_and_specs() -> None:
    text = textwrap.dedent(
        """
        # runtimes
        onnxruntime==1.31.0  # pinned
        Torch_Vision >= 0.20 ; python_version >= "3.10"
        tokenizers[all]===0.21.1
        -r other.txt
        --index-url https://example.invalid/simple
        mylib @ https://example.invalid/mylib-1.0.tar.gz
        https://example.invalid/wheels/other-2.0-py3-none-any.whl
        numpy
        """
    )
    assert parse_requirements(text) == {
        "onnxruntime": "1.31.0",
        "torch-vision": '>= 0.20 ; python_version >= "3.10"',
        "tokenizers": "0.21.1",
        "mylib": "@ https://example.invalid/mylib-1.0.tar.gz",  # a direct reference is its spec
        "numpy": "any",
    }


def test_pyproject_and_lock_files() -> None:
    pyproject = '[project]\ndependencies = ["torch>=2.4", "pyyaml==6.0.2"]\n'
    pyproject += '[project.optional-dependencies]\nonnx = ["onnxruntime==1.31.0"]\n'
    assert parse_toml("pyproject.toml", pyproject) == {
        "torch": ">=2.4",
        "pyyaml": "6.0.2",
        "onnxruntime": "1.31.0",
    }
    assert parse_toml("uv.lock", UV_LOCK.format(ort="1.32.0")) == {
        "onnxruntime": "1.32.0",
        "numpy": "2.1.0",
    }
    pylock = '[[packages]]\nname = "torch"\nversion = "2.13.0"\n'
    assert parse_toml("pylock.toml", pylock) == {"torch": "2.13.0"}
    with pytest.raises(ValueError, match="at line"):  # tomllib.TOMLDecodeError
        parse_toml("uv.lock", "[[package]\nname =")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    (path / "models").mkdir(parents=True)
    (path / "models" / "perf-gate.yaml").write_text("models: {}\n", encoding="utf-8")
    (path / "requirements.txt").write_text("onnxruntime==1.31.0\nnumpy\n", encoding="utf-8")
    (path / "uv.lock").write_text(UV_LOCK.format(ort="1.31.0"), encoding="utf-8")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "base")
    return path


def test_an_upgrade_in_the_working_tree_is_named_with_both_versions(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    (repo / "requirements.txt").write_text(
        "onnxruntime==1.32.0\nnumpy\ntokenizers==0.21\n", encoding="utf-8"
    )
    (repo / "uv.lock").write_text(UV_LOCK.format(ort="1.32.0"), encoding="utf-8")
    changes = dependency_changes(repo / "models", repo, base)
    assert changes == [
        Change("onnxruntime", "1.31.0", "1.32.0"),
        Change("tokenizers", None, "0.21"),
    ]
    note = changes_note(changes, base)
    assert "onnxruntime 1.31.0 -> 1.32.0, tokenizers (none) -> 0.21" in note
    assert "paired timings do not show what the dependency change does" in note


def test_nothing_changed_and_an_unreadable_lock_say_nothing(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    assert dependency_changes(repo / "models", repo, base) == []
    # a damaged lock in the working tree is left out on both sides, not read as "removed"
    (repo / "uv.lock").write_text("[[package]\nname = ", encoding="utf-8")
    assert dependency_changes(repo / "models", repo, base) == []
    (repo / "requirements.txt").write_text("onnxruntime==1.33.0\nnumpy\n", encoding="utf-8")
    assert dependency_changes(repo / "models", repo, base) == [
        Change("onnxruntime", "1.31.0", "1.33.0")
    ]


def test_a_paired_run_notes_the_dependency_change(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = git(repo, "rev-parse", "HEAD")
    (repo / "requirements.txt").write_text("onnxruntime==1.32.0\nnumpy\n", encoding="utf-8")
    (repo / "uv.lock").write_text(UV_LOCK.format(ort="1.32.0"), encoding="utf-8")
    git(repo, "commit", "-q", "-am", "upgrade onnxruntime")
    config = load_config(repo / "models" / "perf-gate.yaml")
    # offline, with an empty cache: the base environment cannot be built, labelled
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_NO_CONFIG", "1")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    notes: list[str] = []
    with base_checkout(config, None, base, notes) as checkout:
        assert checkout.revision is not None
        assert checkout.revision.python is None  # this interpreter for both sides
        assert checkout.dependencies is not None
        assert checkout.dependencies["base_environment"] == "fallback"
    (note,) = notes
    assert note.startswith(f"dependencies differ from the base revision {base[:12]}")
    assert "onnxruntime 1.31.0 -> 1.32.0" in note
    assert "could not be built (" in note
    # policy.base_environment: current (or --base-env current) says so instead
    notes = []
    with base_checkout(config, None, base, notes, base_env="current") as checkout:
        assert checkout.dependencies is not None
        assert checkout.dependencies["base_environment"] == "current"
    (note,) = notes
    assert note.endswith("(policy.base_environment: current)")


@pytest.mark.parametrize(
    ("change", "installed", "specs", "notes"),
    [
        (
            Change("onnxruntime", "1.31.0", "1.32.0"),
            {"onnxruntime": "1.32.0"},
            ["onnxruntime==1.31.0"],
            [],
        ),
        # a range the installed version meets resolves to it: nothing to install
        (Change("numpy", ">=1.20", ">=1.26"), {"numpy": "2.4.6"}, [], []),
        (Change("numpy", "<2", ">=2"), {"numpy": "2.4.6"}, ["numpy<2"], []),
        # removed by the head: the base side needs it back
        (Change("tinydep", ">=1", None), {}, ["tinydep>=1"], []),
        (Change("tinydep", "any", None), {}, ["tinydep"], []),
        (Change("tinydep", "any", None), {"tinydep": "1.0"}, [], []),
        # added by the head: still visible to the base side
        (
            Change("newpkg", None, "1.0"),
            {"newpkg": "1.0"},
            [],
            ["newpkg (added by the head) is visible to the base side too"],
        ),
        (
            Change("pkg", "@ file:///wheels/pkg-1.0-py3-none-any.whl", "1.1"),
            {"pkg": "1.1"},
            ["pkg @ file:///wheels/pkg-1.0-py3-none-any.whl"],
            [],
        ),
        (Change("pkg", "; sys_platform == 'win32'", "1.1"), {"pkg": "1.1"}, [], []),
        (
            Change("pkg", "=>1", "1.1"),
            {"pkg": "1.1"},
            [],
            ["pkg: the base's requirement '=>1' cannot be read"],
        ),
    ],
)
def test_the_base_environment_installs_only_what_resolves_differently(
    change: Change, installed: dict[str, str], specs: list[str], notes: list[str]
) -> None:
    required = base_requirements([change], installed)
    assert list(required.specs) == specs
    assert list(required.notes) == notes


def test_head_pins_this_interpreter_lacks_are_named() -> None:
    required = base_requirements(
        [Change("onnxruntime", "1.31.0", "1.32.0")], {"onnxruntime": "1.30.0"}
    )
    assert required.head_mismatch == ("onnxruntime 1.32.0 (this interpreter has 1.30.0)",)
