"""Wall time of a gate run on the digits example, and where the time goes.

Parts, each timed on its own in a temporary directory (the repository is not written to):

* process start: ``python -c pass``, and ``python -c "import torch, onnxruntime"`` (best of N);
* a gate run's pieces through ``gate.app.measure_models`` on a copy of the example whose config
  has ``report_dir`` in the temporary directory and an empty cache: preparation (ONNX export +
  int8 quantization, ``prepare_all``), each measurement round (a fresh worker process), the
  memory/cold-start probes; the phases are told apart by the progress messages;
* ``prepare_all`` again with the cache warm (what a second run on unchanged code pays);
* a whole ``python -m gate run`` on that copy (baseline missing: every benchmark is new);
* the whole ``examples/digits/demo.py`` (two gate runs), run with the temporary directory as its
  working directory, so it writes under ``TMP/.perf-gate/demo``.

Goal: the demo completes in under 90 s.

    .venv/bin/python bench/demo_time.py [--quick] [--imports N] [--no-demo]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from gate.app import gate_record, make_record, measure_models
from gate.config import load_config
from gate.measure.runner import prepare_all

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits"
GOAL_S = 90.0
DEMO_STEPS = {
    "1": "`perf-gate run --save` (baseline)",
    "2": "edit model.py",
    "3": "`perf-gate run` (pull request)",
}


def copy_example(target: Path, report_dir: Path) -> Path:
    """The example's files in ``target`` with a config whose report_dir is ``report_dir``."""
    target.mkdir(parents=True)
    for item in EXAMPLE.iterdir():
        if item.is_file() and item.suffix in {".py", ".npz"}:
            shutil.copy2(item, target / item.name)
    raw = yaml.safe_load((EXAMPLE / "perf-gate.yaml").read_text(encoding="utf-8"))
    raw["report_dir"] = str(report_dir)
    config = target / "perf-gate.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return config


def time_command(command: list[str], cwd: Path, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


class Stopwatch:
    """A progress callback that timestamps gate's progress messages."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.events: list[tuple[float, str]] = []

    def __call__(self, message: str) -> None:
        self.events.append((time.perf_counter() - self.start, message))

    def phases(self, end: float) -> list[tuple[str, float]]:
        """(label, seconds) for preparation, every round and the probes."""
        marks: list[tuple[float, str]] = [(0.0, "preparation (import torch, export, quantize)")]
        for at, message in self.events:
            if message.startswith("round "):
                marks.append((at, message.split(":")[0]))
            elif message.startswith("probes:"):
                marks.append((at, f"probes ({message.split(': ', 1)[1].split(' for')[0]})"))
        bounds = [at for at, _ in marks[1:]] + [end]
        return [(label, bound - at) for (at, label), bound in zip(marks, bounds, strict=True)]


def run_demo(python: str, cwd: Path) -> tuple[int, float, list[tuple[str, float]], str]:
    """Run the demo, timestamping its numbered steps from its own output lines."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [python, str(EXAMPLE / "demo.py")],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    marks: list[tuple[float, str]] = [(0.0, "setup (copy)")]
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip())
        step = re.match(r"=== (\d)\. (.*) ===", line.strip())
        if step:
            label = DEMO_STEPS.get(step.group(1), step.group(2)[:40])
            marks.append((time.perf_counter() - start, f"step {step.group(1)}: {label}"))
    code = process.wait()
    total = time.perf_counter() - start
    bounds = [at for at, _ in marks[1:]] + [total]
    steps = [(label, bound - at) for (at, label), bound in zip(marks, bounds, strict=True)]
    return code, total, steps, "\n".join(lines[-3:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--imports", type=int, default=3, help="import timings (best of, 3)")
    parser.add_argument("--no-demo", action="store_true", help="skip the whole demo run")
    parser.add_argument(
        "--cli", action="store_true", help="also time one whole `python -m gate run` on its own"
    )
    parser.add_argument("--quick", action="store_true", help="--imports 1 --no-demo")
    args = parser.parse_args(argv)
    if args.quick:
        args.imports, args.no_demo = 1, True
    python = sys.executable
    rows: list[tuple[str, float, str]] = []
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"digits example, {os.cpu_count()} CPUs, load average {load} at start")

    with tempfile.TemporaryDirectory(prefix="perf-gate-bench-") as tmp_name:
        tmp = Path(tmp_name)
        bare = time_command([python, "-c", "pass"], tmp, args.imports)
        imports = time_command([python, "-c", "import torch, onnxruntime"], tmp, args.imports)
        gate_import = time_command([python, "-c", "import gate.cli"], tmp, args.imports)
        note = f"best of {args.imports}"
        rows.append(("python start (-c pass)", min(bare), note))
        rows.append(("python + import torch, onnxruntime", min(imports), note))
        rows.append(("python + import gate.cli", min(gate_import), note))

        # One gate run's measuring, phase by phase (empty cache, fresh report dir).
        config = load_config(copy_example(tmp / "project", tmp / "report"))
        watch = Stopwatch()
        measured = measure_models(config, None, watch)
        measuring = time.perf_counter() - watch.start
        if measured.errors:
            for error in measured.errors:
                print(f"error: {error.benchmark}: {error.message}", file=sys.stderr)
            return 1
        s = config.measure
        rows.append(
            (
                "measure_models (in-process)",
                measuring,
                f"{len(measured.info)} benchmarks, {s.rounds} rounds, {s.probes} probes each",
            )
        )
        for label, seconds in watch.phases(measuring):
            rows.append((f"  {label}", seconds, ""))

        # The rest of a run: the run record, the comparison (no baseline yet), the report files.
        start = time.perf_counter()
        record = make_record(config, measured.samples, measured.info, measured.errors)
        outcome = gate_record(config, record)
        rows.append(
            (
                "  record + compare + write reports",
                time.perf_counter() - start,
                f"exit {int(outcome.exit_code)} (no baseline: all new)",
            )
        )
        parts = measuring + rows[-1][1] + min(gate_import)
        rows.append(("sum: gate start + measure + report", parts, "a whole run, estimated"))

        # Preparation again: the export and quantization are cached by content.
        start = time.perf_counter()
        prepare_all(config, None, lambda message: None)
        rows.append(("prepare_all, warm cache", time.perf_counter() - start, "same report dir"))

        if args.cli:
            fresh = load_config(copy_example(tmp / "cli", tmp / "cli-report"))
            start = time.perf_counter()
            completed = subprocess.run(
                [python, "-m", "gate", "run", "--config", str(fresh.path)],
                cwd=fresh.root,
                capture_output=True,
                text=True,
                check=False,
            )
            rows.append(
                (
                    "whole `python -m gate run`",
                    time.perf_counter() - start,
                    f"exit {completed.returncode}, empty cache, no baseline",
                )
            )

        demo_total = None
        if not args.no_demo:
            demo_cwd = tmp / "demo-cwd"
            demo_cwd.mkdir()
            code, demo_total, steps, tail = run_demo(python, demo_cwd)
            rows.append(("whole examples/digits/demo.py", demo_total, f"exit {code}"))
            for label, seconds in steps:
                rows.append((f"  {label}", seconds, ""))
            if code != 0:
                print(f"demo failed (exit {code}):\n{tail}", file=sys.stderr)

    width = max(len(label) for label, _, _ in rows)
    print()
    print(f"{'part':<{width}}  {'wall s':>7}  note")
    print("-" * (width + 40))
    for label, seconds, note in rows:
        print(f"{label:<{width}}  {seconds:>7.2f}  {note}")
    print()
    spawn = min(imports) - min(bare)
    print(
        f"each fresh worker pays ~{spawn:.1f} s importing torch + onnxruntime "
        f"(python start {min(bare):.2f} s)"
    )
    if demo_total is not None:
        verdict = "MET" if demo_total < GOAL_S else "NOT MET"
        print(f"goal: demo < {GOAL_S:.0f} s: {demo_total:.1f} s -> {verdict}")
    else:
        print("goal: demo < 90 s: not measured (--no-demo)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
