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
    "torch": {"gate/measure/backends/torch_runtime.py", "gate/measure/backends/torch_int8.py"},
    "onnxruntime": {"gate/measure/backends/onnx_backend.py", "gate/measure/backends/onnx_int8.py"},
    "onnx": {"gate/measure/backends/onnx_int8.py"},
    "numpy": {
        "gate/measure/backends/onnx_backend.py",
        "gate/measure/backends/onnx_int8.py",
        "gate/measure/quant_inputs.py",
        "gate/measure/worker/accuracy.py",
        "gate/measure/worker/inputs.py",
    },
    "pyarrow": {"gate/measure/worker/accuracy.py"},
    "pytest": {"gate/integrations/pytest/plugin.py"},
    "_pytest": set(),
    "yaml": {"gate/config/__init__.py"},
    "requests": {"gate/integrations/github/client.py"},
    "jinja2": {"gate/report/markdown.py"},
    "prometheus_client": {"gate/report/openmetrics.py"},
    "mlflow": {"gate/integrations/mlflow_export.py"},
}
# The layers of docs/ARCHITECTURE.md, lowest first: a module imports its own layer or lower ones.
LAYERS = (
    (
        "foundation",
        ("gate/__init__.py", "gate/_version.py", "gate/errors.py", "gate/units.py", "gate/core/"),
    ),
    ("config", ("gate/config/",)),
    ("measure", ("gate/measure/",)),
    ("store", ("gate/store/",)),
    ("decide", ("gate/decide/",)),
    ("diagnose", ("gate/diagnose/",)),
    ("report", ("gate/report/",)),
    ("pipeline", ("gate/pipeline.py", "gate/base_run.py")),
    ("integrations", ("gate/integrations/", "gate/__main__.py")),
)


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


def layer(relative: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(relative == p or (p.endswith("/") and relative.startswith(p)) for p in prefixes):
            return index
    raise AssertionError(f"{relative} is in no layer of LAYERS: add it (and to ARCHITECTURE.md)")


def module_path(name: str) -> str:
    """gate.a.b -> gate/a/b.py, or gate/a/b/__init__.py for a package."""
    base = GATE.parent / name.replace(".", "/")
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    return str(path.relative_to(GATE.parent))


def gate_imports(path: Path) -> set[str]:
    """Every gate module ``path`` imports, at the top or inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == "gate")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "gate":
                continue
            for alias in node.names:  # `from gate.store import baselines` names a module
                full = f"{node.module}.{alias.name}"
                known = (GATE.parent / full.replace(".", "/")).with_suffix(".py").exists()
                names.add(full if known else node.module)
    return names


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(GATE.parent)))
def test_modules_import_only_their_layer_or_lower_ones(path: Path) -> None:
    relative = str(path.relative_to(GATE.parent))
    own = layer(relative)
    for name in gate_imports(path):
        target = module_path(name)
        assert layer(target) <= own, (
            f"{relative} ({LAYERS[own][0]}) imports {name} ({LAYERS[layer(target)][0]}), "
            "a higher layer"
        )


def test_no_import_cycle_between_modules() -> None:
    """Lazy imports count too: the backends once imported the profiler that imported them."""
    graph = {
        str(p.relative_to(GATE.parent)): {module_path(n) for n in gate_imports(p)}
        for p in modules()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            # a package's __init__ is imported with any of its modules: not an edge back
            if target.endswith("__init__.py") and node.startswith(target[: -len("__init__.py")]):
                continue
            assert state.get(target) != 1, "import cycle: " + " -> ".join([*path, node, target])
            if target not in state:
                visit(target, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_no_two_modules_are_forms_of_one_word() -> None:
    """evaluate/evaluation, profile/profiling, baseline/baselines: one name per concern (the
    same name in two role folders is fine: config/quality.py configures what decide/quality.py
    decides)."""
    seen: dict[str, str] = {}
    for path in modules():
        if path.stem == "__init__":
            continue
        stem = path.stem
        for suffix in ("s", "ing", "ion", "is", "e"):
            stem = stem.removesuffix(suffix)
        relative = str(path.relative_to(GATE.parent))
        other = seen.setdefault(stem, relative)
        assert Path(other).stem == path.stem, f"{other} and {relative}: one word, two forms"


def test_core_runs_without_torch_onnxruntime_or_pytest() -> None:
    code = (
        "import sys\n"
        "for name in ('torch', 'onnxruntime', 'onnx', 'pytest', 'numpy'):\n"
        "    sys.modules[name] = None\n"
        "import gate, gate.config, gate.decide.compare, gate.store.records, gate.core.stats\n"
        "import gate.pipeline, gate.integrations.cli.main\n"
        "import gate.report.terminal, gate.report.jsonreport, gate.measure.runner\n"
        "import gate.report.markdown, gate.integrations.github.publish\n"
        "import gate.integrations.cli.publish\n"
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
