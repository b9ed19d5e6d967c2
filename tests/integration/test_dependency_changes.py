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


def test_a_paired_run_notes_the_dependency_change(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    (repo / "requirements.txt").write_text("onnxruntime==1.32.0\nnumpy\n", encoding="utf-8")
    (repo / "uv.lock").write_text(UV_LOCK.format(ort="1.32.0"), encoding="utf-8")
    git(repo, "commit", "-q", "-am", "upgrade onnxruntime")
    notes: list[str] = []
    config = load_config(repo / "models" / "perf-gate.yaml")
    with base_checkout(config, None, base, notes) as checkout:
        assert checkout.revision is not None
    (note,) = notes
    assert note.startswith(f"dependencies differ from the base revision {base[:12]}")
    assert "onnxruntime 1.31.0 -> 1.32.0" in note
