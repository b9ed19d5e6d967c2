"""Import rules of docs/ARCHITECTURE.md: each third-party package has one importer, and the
core works without torch, onnxruntime or pytest."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

GATE = Path(__file__).resolve().parents[2] / "gate"

# third-party top-level package -> the only modules allowed to import it
OWNERS = {
    "torch": {"gate/measure/backends/torch_backend.py"},
    "onnxruntime": {"gate/measure/backends/onnx_backend.py"},
    "onnx": set(),
    "numpy": {"gate/measure/backends/onnx_backend.py", "gate/measure/worker/accuracy.py"},
    "pyarrow": {"gate/measure/worker/accuracy.py"},
    "pytest": {"gate/integrations/pytest/plugin.py"},
    "_pytest": set(),
    "yaml": {"gate/config/__init__.py"},
    "requests": {"gate/integrations/github/client.py"},
    "jinja2": {"gate/report/markdown.py"},
}
FOUNDATION = {
    "gate/core/types.py",
    "gate/units.py",
    "gate/errors.py",
    "gate/_version.py",
    "gate/core/diagnosis.py",
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules() -> list[Path]:
    return sorted(GATE.rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(GATE.parent)))
def test_third_party_packages_have_one_importer(path: Path) -> None:
    relative = str(path.relative_to(GATE.parent))
    for name in imported_packages(path):
        top = name.split(".")[0]
        if top in OWNERS:
            assert relative in OWNERS[top], f"{relative} imports {top}; only {OWNERS[top]} may"


@pytest.mark.parametrize("path", sorted(FOUNDATION))
def test_foundation_imports_only_foundation(path: str) -> None:
    for name in imported_packages(GATE.parent / path):
        if name.startswith("gate"):
            target = (
                "gate/" + name.split(".", 1)[1].replace(".", "/") + ".py" if "." in name else ""
            )
            assert target in FOUNDATION, f"{path} imports {name}, which is not a foundation module"


def test_core_runs_without_torch_onnxruntime_or_pytest() -> None:
    code = (
        "import sys\n"
        "for name in ('torch', 'onnxruntime', 'onnx', 'pytest', 'numpy'):\n"
        "    sys.modules[name] = None\n"
        "import gate, gate.config, gate.decide.compare, gate.store.records, gate.core.stats, gate.records_app, gate.integrations.cli.main\n"
        "import gate.report.terminal, gate.report.jsonreport, gate.measure.runner\n"
        "import gate.report.markdown, gate.integrations.github.publish, gate.integrations.cli.publish\n"
        "try:\n"
        "    gate.integrations.cli.main.main(['--version'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "else:\n"
        "    raise AssertionError('--version did not exit')\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "perf-gate" in completed.stdout
