"""The perf-gate demo: record a baseline, make a pull request that slows the model, catch it.

Runs offline on a CPU in about a minute. It works on a copy of this example under
``.perf-gate/demo/`` so the repository is never changed, and exits 0 only when the gate caught
the regression (exit code 1 from ``perf-gate run``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEEP = (
    "model.py",
    "data.py",
    "digits.parquet",
    "perf-gate.yaml",
    "digits.npz",
    "digits-test.npz",
    "weights-mlp.npz",
    "weights-wide.npz",
)


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def git(project: Path, *args: str) -> None:
    identity = ["-c", "user.name=perf-gate demo", "-c", "user.email=demo@example.invalid"]
    subprocess.run(["git", *identity, *args], cwd=project, check=True, capture_output=True)


def perf_gate(project: Path, *args: str) -> int:
    command = [sys.executable, "-m", "gate", "run", *args]
    print("$ perf-gate run " + " ".join(args), flush=True)
    return subprocess.run(command, cwd=project, check=False).returncode


def main() -> int:
    started = time.perf_counter()
    project = Path.cwd() / ".perf-gate" / "demo" / "project"
    if project.exists():
        shutil.rmtree(project)
    project.mkdir(parents=True)
    for name in KEEP:
        shutil.copy2(HERE / name, project / name)
    (project / ".gitignore").write_text(".perf-gate/\n__pycache__/\n", encoding="utf-8")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "digits MLP")
    print(f"demo project: {project} (a git repository with one commit on main)")

    banner("1. main branch: measure the digits MLP in 4 variants and save the baseline")
    code = perf_gate(project, "--save")
    if code != 0:
        print(f"demo: recording the baseline failed with exit code {code}", file=sys.stderr)
        return 1

    banner("2. a pull request swaps in a wider network (384x384 hidden units)")
    model = project / "model.py"
    source = model.read_text(encoding="utf-8")
    changed = source.replace(
        'def build() -> DigitsMLP:\n    return load("mlp")',
        'def build() -> DigitsMLP:\n    return load("wide")',
    )
    assert changed != source, "model.py no longer has the expected build() function"
    model.write_text(changed, encoding="utf-8")
    git(project, "checkout", "-q", "-b", "wider-model")
    git(project, "commit", "-q", "-am", "Use the wider network")
    print('model.py: build() now returns load("wide"), committed on branch wider-model')

    banner("3. the gate runs on the pull request: base and head measured side by side")
    code = perf_gate(project)
    elapsed = time.perf_counter() - started
    report = project / ".perf-gate"
    print(f"\nfiles: {report / 'results.json'}, {report / 'comparison.json'}")
    if code == 1:
        print(f"demo: the gate caught the regression (exit code 1) in {elapsed:.0f} s")
        return 0
    print(f"demo: expected exit code 1 (regression), got {code}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
