"""The base revision's environment (``gate.measure.base_env``) built by the real uv from a local
wheelhouse, offline: what it installs, what it reads from this interpreter, the cache, and the
one-line reasons it gives when it cannot be built."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gate.measure import base_env
from gate.measure.base_env import Unavailable

from ._wheels import wheel


@pytest.fixture
def wheelhouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "wheelhouse"
    wheel(folder, "tinypkg", "1.0", "VERSION = '1.0'\n", requires=("tinydep>=2",))
    wheel(folder, "tinypkg", "1.1", "VERSION = '1.1'\n")
    wheel(folder, "tinydep", "2.0", "VERSION = '2.0'\n")
    monkeypatch.setenv("UV_FIND_LINKS", str(folder))
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_NO_CONFIG", "1")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    return folder


def run_in(env: base_env.BaseEnvironment, code: str) -> str:
    """``code``'s output in the environment as a base worker starts it (its packages first)."""
    variables = {**os.environ, "PYTHONPATH": env.site or ""}
    done = subprocess.run(
        [env.python, "-c", code], capture_output=True, text=True, env=variables, check=True
    )
    return done.stdout.strip()


def test_the_environment_holds_the_base_versions_and_reads_this_interpreters_packages(
    wheelhouse: Path, tmp_path: Path
) -> None:
    progress: list[str] = []
    env = base_env.build(["tinypkg==1.0"], tmp_path / "cache", progress.append)
    assert env.origin == "built"
    # tinypkg 1.0 requires tinydep, which this interpreter lacks: installed in a second pass
    assert env.installed == ("tinypkg==1.0", "tinydep>=2")
    assert progress == ["building the base revision's environment with uv (tinypkg==1.0)"]
    assert run_in(env, "import tinypkg, tinydep; print(tinypkg.VERSION, tinydep.VERSION)") == (
        "1.0 2.0"
    )
    # everything else is this interpreter's: perf-gate, pytest, yaml
    found = run_in(env, "import gate, yaml, pytest, sys; print(sys.version)")
    assert found == sys.version
    answer = base_env.query(env.python, env.site)
    assert answer["python"] == ".".join(map(str, sys.version_info[:3]))
    assert answer["packages"]["tinypkg"] == "1.0"  # type: ignore[index]
    assert "pyyaml" in answer["packages"]  # type: ignore[operator]


def test_the_same_requirements_come_from_the_cache_and_three_are_kept(
    wheelhouse: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first = base_env.build(["tinypkg==1.1"], cache)
    again = base_env.build(["tinypkg==1.1"], cache)
    assert again.origin == "cached"
    assert again.python == first.python
    assert again.installed == ("tinypkg==1.1",)
    for spec in ("tinydep==2.0", "tinypkg==1.0", "tinypkg>=1.1"):
        base_env.build([spec], cache)
    kept = sorted(p.name for p in cache.iterdir())
    assert len(kept) == base_env.KEEP
    assert Path(first.python).parents[1].name not in kept  # the least recently used went


def test_a_cached_environment_whose_interpreter_is_gone_is_rebuilt(
    wheelhouse: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    env = base_env.build(["tinypkg==1.1"], cache)
    Path(env.python).unlink()  # a cache restored on a runner without that Python
    again = base_env.build(["tinypkg==1.1"], cache)
    assert again.origin == "built"
    assert Path(again.python).exists()


def test_a_requirement_that_cannot_be_installed_is_one_line_and_leaves_nothing(
    wheelhouse: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(Unavailable) as caught:
        base_env.build(["tinypkg==0.9"], cache)
    message = caught.value.message
    assert "\n" not in message
    assert message.startswith("No solution found when resolving dependencies")
    assert "tinypkg==0.9" in message
    assert list(cache.iterdir()) == []


def test_without_uv_the_reason_names_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uv", None)  # import uv fails
    monkeypatch.setenv("PATH", str(tmp_path))  # and no uv on PATH
    with pytest.raises(Unavailable, match=r"^uv is not installed \(pip install uv\)$"):
        base_env.build(["tinypkg==1.0"], tmp_path / "cache")


def test_a_given_interpreter_must_run_perf_gates_worker(wheelhouse: Path, tmp_path: Path) -> None:
    assert base_env.given(sys.executable).origin == "given"
    bare = tmp_path / "bare"
    subprocess.run(
        [base_env.uv_binary(), "venv", "-q", "--python", sys.executable, str(bare)], check=True
    )
    with pytest.raises(Unavailable) as caught:
        base_env.given(str(bare))  # a venv's folder: its bin/python, without perf-gate
    assert "cannot import perf-gate's worker" in caught.value.message
    assert "No module named 'gate'" in caught.value.message
    with pytest.raises(Unavailable, match="no Python interpreter there"):
        base_env.given(str(tmp_path / "missing"))


def test_the_cache_folder_is_the_actions_where_it_sets_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(base_env.CACHE_ENV, raising=False)
    assert base_env.cache_folder(tmp_path) == tmp_path / "cache" / "base-envs"
    monkeypatch.setenv(base_env.CACHE_ENV, str(tmp_path / "runner-temp"))
    assert base_env.cache_folder(tmp_path) == tmp_path / "runner-temp"


@pytest.mark.parametrize(
    ("output", "line"),
    [
        (
            "error: No solution found when resolving dependencies\n  cause: Because there is "
            "no version of tinypkg==0.9 ...\n",
            "No solution found when resolving dependencies: Because there is no version of "
            "tinypkg==0.9 ...",
        ),
        (
            "  × No solution found when resolving dependencies:\n  ╰─▶ Because x was not found\n",
            "No solution found when resolving dependencies: Because x was not found",
        ),
        ("Resolved 1 package\nsomething went wrong\n", "something went wrong"),
        ("", "no output"),
    ],
)
def test_a_failed_commands_cause_is_one_line(output: str, line: str) -> None:
    assert base_env._last_line(output) == line


def test_the_fingerprint_is_a_hash_of_the_packages_and_versions() -> None:
    one = base_env.fingerprint({"numpy": "2.4.6", "torch": "2.13.0"})
    assert one == base_env.fingerprint({"torch": "2.13.0", "numpy": "2.4.6"})
    assert one != base_env.fingerprint({"numpy": "2.4.5", "torch": "2.13.0"})
    assert len(one) == 12
    assert json.dumps(one)


def test_base_workers_share_the_heads_server_unless_it_loaded_their_packages(
    wheelhouse: Path, tmp_path: Path
) -> None:
    from gate.config import MeasureSettings
    from gate.measure import BenchmarkPlan, base_imports
    from gate.measure.runner import Runner

    head, tree = tmp_path / "repo", tmp_path / "tree"
    head.mkdir()
    tree.mkdir()
    env = base_env.build(["tinypkg==1.0"], tmp_path / "cache")
    assert env.modules == ("tinydep", "tinypkg")  # with what tinypkg 1.0 requires
    plan = BenchmarkPlan(
        name="m[onnxruntime]",
        model="m",
        variant="onnxruntime",
        root=str(head),
        input_shape=(1, 4),
        batch_sizes=(1,),
        metrics=("latency",),
    )
    runner = Runner(MeasureSettings(rounds=1), head, tmp_path / "work")
    try:
        with base_imports.isolated(head, tree) as imports:
            shared = runner._server([plan], 1, head)
            assert shared is not None
            assert shared.modules is not None
            assert "gate" in shared.modules
            assert "tinypkg" not in shared.modules
            base_imports.use_interpreter(imports, env.python, env.inherited, env.site, env.modules)
            # one process image for both sides: the base worker's own packages are not loaded
            assert runner._server([plan], 1, tree) is shared
            # a package the server has loaded (here perf-gate's own) cannot be swapped after the
            # fork: the environment's interpreter gets a server of its own
            base_imports.use_interpreter(imports, env.python, env.inherited, env.site, ["gate"])
            own = runner._server([plan], 1, tree)
            assert own is not None
            assert own is not shared
            assert own.process.args[0] == env.python  # type: ignore[index]
    finally:
        runner.close()
