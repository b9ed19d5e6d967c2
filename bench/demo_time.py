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

Each row gives wall seconds and CPU seconds (this process plus its finished child processes):
on a shared or loaded machine the wall time moves by several seconds between identical runs
while the CPU time stays put, so a wall time far above the CPU time (of a single-threaded part)
means waiting for a core, not more work.

Goal: the demo completes in under 90 s.

    .venv/bin/python bench/demo_time.py [--quick] [--imports N] [--no-demo]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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


def cpu_seconds() -> float:
    """User + system CPU of this process and of its children that have been waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


@dataclass(frozen=True)
class Mark:
    wall: float
    cpu: float

    @staticmethod
    def now() -> Mark:
        return Mark(time.perf_counter(), cpu_seconds())

    def since(self, earlier: Mark) -> tuple[float, float]:
        return self.wall - earlier.wall, self.cpu - earlier.cpu


Row = tuple[str, float, float | None, str]


def time_command(command: list[str], cwd: Path, repeats: int) -> tuple[float, float]:
    """(wall, cpu) of the fastest of ``repeats`` runs of ``command``."""
    runs = []
    for _ in range(repeats):
        start = Mark.now()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
        runs.append(Mark.now().since(start))
    return min(runs)


class Stopwatch:
    """A progress callback that marks gate's progress messages with wall and CPU time."""

    def __init__(self) -> None:
        self.start = Mark.now()
        self.events: list[tuple[Mark, str]] = []

    def __call__(self, message: str) -> None:
        self.events.append((Mark.now(), message))

    def phases(self, end: Mark) -> list[tuple[str, float, float]]:
        """(label, wall, cpu) for the preparation, every round and the probes."""
        marks: list[tuple[Mark, str]] = [
            (self.start, "preparation (import torch, export, quantize)")
        ]
        for mark, message in self.events:
            if message.startswith("round "):
                marks.append((mark, message.split(":")[0]))
            elif message.startswith("probes:"):
                marks.append((mark, f"probes ({message.split(': ', 1)[1].split(' for')[0]})"))
        bounds = [mark for mark, _ in marks[1:]] + [end]
        return [
            (label, *bound.since(mark)) for (mark, label), bound in zip(marks, bounds, strict=True)
        ]


def run_demo(python: str, cwd: Path) -> tuple[int, list[Row], str]:
    """Run the demo; its numbered steps are marked from its own output lines (wall time only)."""
    start = Mark.now()
    process = subprocess.Popen(
        [python, str(EXAMPLE / "demo.py")],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    marks: list[tuple[float, str]] = [(start.wall, "setup")]
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip())
        step = re.match(r"=== (\d)\. (.*) ===", line.strip())
        if step:
            label = DEMO_STEPS.get(step.group(1), step.group(2)[:40])
            marks.append((time.perf_counter(), f"step {step.group(1)}: {label}"))
    code = process.wait()
    wall, cpu = Mark.now().since(start)
    bounds = [at for at, _ in marks[1:]] + [start.wall + wall]
    rows: list[Row] = [("whole examples/digits/demo.py", wall, cpu, f"exit {code}")]
    for (at, label), bound in zip(marks, bounds, strict=True):
        rows.append((f"  {label}", bound - at, None, ""))
    return code, rows, "\n".join(lines[-3:])


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
    rows: list[Row] = []
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"digits example, {os.cpu_count()} CPUs, load average {load} at start")

    with tempfile.TemporaryDirectory(prefix="perf-gate-bench-") as tmp_name:
        tmp = Path(tmp_name)
        note = f"fastest of {args.imports}"
        bare = time_command([python, "-c", "pass"], tmp, args.imports)
        imports = time_command([python, "-c", "import torch, onnxruntime"], tmp, args.imports)
        gate_import = time_command([python, "-c", "import gate.cli"], tmp, args.imports)
        rows.append(("python start (-c pass)", *bare, note))
        rows.append(("python + import torch, onnxruntime", *imports, note))
        rows.append(("python + import gate.cli", *gate_import, note))

        # One gate run's measuring, phase by phase (empty cache, fresh report dir).
        config = load_config(copy_example(tmp / "project", tmp / "report"))
        watch = Stopwatch()
        measured = measure_models(config, None, watch)
        measured_at = Mark.now()
        if measured.errors:
            for error in measured.errors:
                print(f"error: {error.benchmark}: {error.message}", file=sys.stderr)
            return 1
        s = config.measure
        detail = f"{len(measured.info)} benchmarks, {s.rounds} rounds, {s.probes} probes each"
        rows.append(("measure_models (in-process)", *measured_at.since(watch.start), detail))
        for label, wall, cpu in watch.phases(measured_at):
            rows.append((f"  {label}", wall, cpu, ""))

        # The rest of a run: the run record, the comparison (no baseline yet), the report files.
        start = Mark.now()
        record = make_record(config, measured.samples, measured.info, measured.errors)
        outcome = gate_record(config, record)
        done = Mark.now()
        note = f"exit {int(outcome.exit_code)} (no baseline: all new)"
        rows.append(("  record + compare + write reports", *done.since(start), note))
        wall, cpu = done.since(watch.start)
        rows.append(
            (
                "sum: gate start + the above",
                wall + gate_import[0],
                cpu + gate_import[1],
                "a whole gate run, estimated",
            )
        )

        # Preparation again: the export and quantization are cached by content.
        start = Mark.now()
        prepare_all(config, None, lambda message: None)
        rows.append(("prepare_all, warm cache", *Mark.now().since(start), "same report dir"))

        if args.cli:
            fresh = load_config(copy_example(tmp / "cli", tmp / "cli-report"))
            start = Mark.now()
            completed = subprocess.run(
                [python, "-m", "gate", "run", "--config", str(fresh.path)],
                cwd=fresh.root,
                capture_output=True,
                text=True,
                check=False,
            )
            note = f"exit {completed.returncode}, empty cache, no baseline"
            rows.append(("whole `python -m gate run`", *Mark.now().since(start), note))

        demo_total = None
        if not args.no_demo:
            demo_cwd = tmp / "demo-cwd"
            demo_cwd.mkdir()
            code, demo_rows, tail = run_demo(python, demo_cwd)
            demo_total = demo_rows[0][1]
            rows.extend(demo_rows)
            if code != 0:
                print(f"demo failed (exit {code}):\n{tail}", file=sys.stderr)

    width = max(len(row[0]) for row in rows)
    print()
    print(f"{'part':<{width}}  {'wall s':>7}  {'cpu s':>7}  note")
    print("-" * (width + 50))
    for label, wall, cpu, note in rows:
        cpu_text = "" if cpu is None else f"{cpu:.2f}"
        print(f"{label:<{width}}  {wall:>7.2f}  {cpu_text:>7}  {note}".rstrip())
    print()
    print(
        f"each fresh worker process pays ~{imports[0] - bare[0]:.1f} s importing torch + "
        f"onnxruntime (python itself starts in {bare[0]:.2f} s); a round also times "
        f"{len(measured.info)} benchmarks x {len(config.models[0].batch_sizes)} batch sizes x "
        f">= {s.min_time:g} s"
    )
    for label, wall, cpu, _ in rows:
        if label.strip().startswith("probes") and cpu is not None and wall > 0:
            print(
                f"probes run up to 2 at a time on spare cores: cpu/wall = {cpu / wall:.2f} "
                "(2.0 = both cores ours; ~1.0 = the other core was busy elsewhere)"
            )
    if demo_total is not None:
        verdict = "MET" if demo_total < GOAL_S else "NOT MET"
        print(f"goal: demo < {GOAL_S:.0f} s: {demo_total:.1f} s -> {verdict}")
    else:
        print(f"goal: demo < {GOAL_S:.0f} s: not measured (--no-demo)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
