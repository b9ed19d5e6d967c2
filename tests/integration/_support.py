"""Shared helpers for the integration tests: tiny projects, subprocess runs, ONNX graphs.

Everything here is real: projects are written to temporary directories, ``pytest`` and
``perf-gate`` run as subprocesses of this interpreter, ONNX graphs are built with ``onnx``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
PERF_GATE = BIN / "perf-gate"

# The tiny torch model of the brief; ``build_slow`` is the same interface doing far more work
# (wider layers, 20 forward passes), so a slowdown is large and deterministic.
TINY_TORCH_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn


    def build():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


    def inputs(batch_size):
        return torch.ones(batch_size, 16)
    """
)

SLOW_TORCH_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Slow(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.inner = nn.Sequential(
                nn.Linear(16, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 16)
            )
            self.head = nn.Linear(16, 4)

        def forward(self, x):
            for _ in range(20):
                x = torch.relu(self.inner(x))
            return self.head(x)


    def build():
        return Slow()


    def inputs(batch_size):
        return torch.ones(batch_size, 16)
    """
)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the outer pytest's variables (addopts, xdist...)."""
    env = {  # PYTEST_ADDOPTS is tests/conftest.py's, for the processes the tests start
        k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") or k == "PYTEST_ADDOPTS"
    }
    env.update(extra)
    return env


@dataclass
class Ran:
    """A finished subprocess: exit code and output."""

    ret: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def lines_with(self, text: str) -> list[str]:
        return [line for line in self.output.splitlines() if text in line]


def run(
    command: list[str], cwd: Path, timeout: float = 240, env: dict[str, str] | None = None
) -> Ran:
    completed = subprocess.run(
        command,
        cwd=cwd,
        env=clean_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Ran(completed.returncode, completed.stdout, completed.stderr)


def run_pytest(
    cwd: Path, *args: str, timeout: float = 240, env: dict[str, str] | None = None
) -> Ran:
    """``python -m pytest ARGS`` in ``cwd`` (a project with its own pytest.ini)."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    return run(command, cwd, timeout, env)


def run_cli(cwd: Path, *args: str, timeout: float = 240, env: dict[str, str] | None = None) -> Ran:
    """The ``perf-gate`` console script of this virtualenv."""
    assert PERF_GATE.is_file(), f"the perf-gate console script is missing: {PERF_GATE}"
    return run([str(PERF_GATE), *args], cwd, timeout, env)


def run_cli_here(cwd: Path, *args: str) -> Ran:
    """The ``perf-gate`` command's own ``main`` in this process, in ``cwd``, with the
    environment a ``run_cli`` child would get: for cases refused before anything is measured,
    where starting an interpreter is most of the cost. (Never for what could hang.)"""
    from gate.integrations.cli import main as cli

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    os.environ.clear()
    os.environ.update(clean_env())
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(list(args))
            except SystemExit as exc:  # argparse's own refusals
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return Ran(code, out.getvalue(), err.getvalue())


def write_files(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def samples_by_key(record: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """results.json samples keyed by (benchmark, metric)."""
    return {(s["benchmark"], s["metric"]): s for s in record["samples"]}


def comparisons_by_key(comparison: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """comparison.json entries keyed by (benchmark, metric)."""
    return {(c["benchmark"], c["metric"]): c for c in comparison["comparisons"]}


def write_matmul_onnx(path: Path, *, width: int = 32, layers: int = 1, seed: int = 0) -> Path:
    """A float32 MatMul+Relu chain with input ``input`` [batch, 16], built without torch."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, initializers = [], []
    previous, size = "input", 16
    for index in range(layers):
        weight = (rng.standard_normal((size, width)) / np.sqrt(size)).astype(np.float32)
        initializers.append(numpy_helper.from_array(weight, f"w{index}"))
        nodes.append(helper.make_node("MatMul", [previous, f"w{index}"], [f"m{index}"]))
        nodes.append(helper.make_node("Relu", [f"m{index}"], [f"r{index}"]))
        previous, size = f"r{index}", width
    graph = helper.make_graph(
        nodes,
        "matmul-chain",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info(previous, TensorProto.FLOAT, ["batch", width])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
