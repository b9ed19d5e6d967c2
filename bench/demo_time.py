"""Wall time of a gate run on the digits example, and where the time goes.

Parts, each timed on its own in a temporary directory (the repository is not written to):

* process start: ``python -c pass``, ``python -c "import torch, onnxruntime"`` (paid by every
  fresh worker process) and ``python -c "import gate.integrations.cli.main"`` (fastest of N);
* preparation: ``prepare_all`` (ONNX export + int8 quantization) on a copy of the example whose
  config has ``report_dir`` in the temporary directory: with an empty cache first (this process
  then also imports torch, onnx and onnxruntime.quantization), with another empty cache, warm;
* the whole ``examples/digits/demo.py``, run with the temporary directory as its working
  directory (it writes under ``TMP/.perf-gate/demo``), split into its numbered steps by its
  output, and each step into phases by gate's progress messages (preparing, rounds, probes, ...):
  the demo's stderr is a pseudo-terminal, so ``perf-gate run`` prints its progress there;
* with ``--in-process`` (and ``--quick``): one gate run's measuring through
  ``gate.pipeline.measure_models`` in this process, phase by phase, with CPU seconds beside the wall
  seconds, then ``make_record`` + ``gate_record``;
* with ``--cli``: one whole ``python -m gate run`` on the copy on its own.

CPU seconds are this process's plus those of its finished child processes: on a shared machine
the wall time of identical runs moves by several seconds while the CPU time stays put, so a wall
time well above the CPU time of a single-threaded part means waiting for a core, not more work.

Goal: the demo completes in under 90 s.

    .venv/bin/python bench/demo_time.py [--quick] [--imports N] [--no-demo] [--in-process] [--cli]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pty
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from gate.config import load_config
from gate.measure.runner import prepare_all
from gate.pipeline import gate_record, make_record, measure_models

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits"
GOAL_S = 90.0
DEMO_STEPS = {
    "1": "`perf-gate run --save` (baseline)",
    "2": "edit model.py",
    "3": "`perf-gate run` (pull request)",
}
PROGRESS_PREFIX = "perf-gate: "

Row = tuple[str, float, float | None, str]


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


def time_command(command: list[str], cwd: Path, repeats: int) -> tuple[float, float]:
    """(wall, cpu) of the fastest of ``repeats`` runs of ``command``."""
    runs = []
    for _ in range(repeats):
        start = Mark.now()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
        runs.append(Mark.now().since(start))
    return min(runs)


def phase_kind(message: str) -> str:
    """Progress messages of one phase share a kind: 'round 3/5: ...' -> 'rounds'."""
    if message.startswith("preparing the base revision"):
        return "base revision worktree"
    if message.startswith("preparing "):
        return "preparation (export, quantize)"
    if "inconclusive" in message:
        return "extra rounds (inconclusive)"
    head = message.split(":", 1)[0]
    head = re.sub(r"\s*\d.*$", "", head).strip() or head
    return f"{head}s" if head in {"round", "paired round"} else head


def phases(
    start: float, end: float, events: list[tuple[float, str]], lead: str
) -> list[tuple[str, float]]:
    """(label, wall seconds) with consecutive progress messages of one kind merged."""
    spans: list[tuple[str, float, int]] = [(lead, start, 0)]
    for at, message in events:
        kind = phase_kind(message)
        if spans[-1][0] == kind:
            spans[-1] = (kind, spans[-1][1], spans[-1][2] + 1)
        else:
            spans.append((kind, at, 1))
    bounds = [at for _, at, _ in spans[1:]] + [end]
    return [
        (f"{kind} (x{count})" if count > 1 else kind, bound - at)
        for (kind, at, count), bound in zip(spans, bounds, strict=True)
    ]


class Stopwatch:
    """A progress callback that marks gate's progress messages with wall and CPU time."""

    def __init__(self) -> None:
        self.start = Mark.now()
        self.events: list[tuple[Mark, str]] = []

    def __call__(self, message: str) -> None:
        self.events.append((Mark.now(), message))

    def phases(self, end: Mark) -> list[tuple[str, float, float]]:
        """(label, wall, cpu) for the preparation, every round and the probes."""
        marks: list[tuple[Mark, str]] = [(self.start, "preparation (export, quantize)")]
        for mark, message in self.events:
            if message.startswith("round "):
                marks.append((mark, message.split(":")[0]))
            elif message.startswith("probes:"):
                marks.append((mark, f"probes ({message.split(': ', 1)[1].split(' for')[0]})"))
        bounds = [mark for mark, _ in marks[1:]] + [end]
        return [
            (label, *bound.since(mark)) for (mark, label), bound in zip(marks, bounds, strict=True)
        ]


def read_progress(fd: int, events: list[tuple[float, str]]) -> None:
    """Collect gate's progress lines from the pseudo-terminal, timestamped on arrival."""
    pending = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO once every writer has closed the terminal
            break
        if not chunk:
            break
        now = time.perf_counter()
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith(PROGRESS_PREFIX):
                events.append((now, line[len(PROGRESS_PREFIX) :]))


def run_demo(python: str, cwd: Path) -> tuple[int, list[Row], str]:
    """Run the demo; steps from its output, phases from gate's progress on a pseudo-terminal."""
    master, slave = pty.openpty()
    start = Mark.now()
    process = subprocess.Popen(
        [python, str(EXAMPLE / "demo.py")],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
    )
    os.close(slave)
    events: list[tuple[float, str]] = []
    reader = threading.Thread(target=read_progress, args=(master, events), daemon=True)
    reader.start()
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
    reader.join(timeout=5)
    os.close(master)
    end = start.wall + wall
    bounds = [at for at, _ in marks[1:]] + [end]
    rows: list[Row] = [("whole examples/digits/demo.py", wall, cpu, f"exit {code}")]
    for (at, label), bound in zip(marks, bounds, strict=True):
        rows.append((f"  {label}", bound - at, None, ""))
        inside = [(t, m) for t, m in events if at <= t < bound]
        if inside:
            lead = "start, imports, config"
            for name, seconds in phases(at, bound, inside, lead):
                rows.append((f"    {name}", seconds, None, ""))
    return code, rows, "\n".join(lines[-3:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--imports", type=int, default=3, help="import timings (fastest of, 3)")
    parser.add_argument("--no-demo", action="store_true", help="skip the whole demo run")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="also one gate run's measuring in this process, with CPU seconds per phase",
    )
    parser.add_argument(
        "--cli", action="store_true", help="also time one whole `python -m gate run` on its own"
    )
    parser.add_argument(
        "--quick", action="store_true", help="--imports 1 --no-demo --in-process (~45 s)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.imports, args.no_demo, args.in_process = 1, True, True
    python = sys.executable
    rows: list[Row] = []
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"digits example, {os.cpu_count()} CPUs, load average {load} at start")

    with tempfile.TemporaryDirectory(prefix="perf-gate-bench-") as tmp_name:
        tmp = Path(tmp_name)
        note = f"fastest of {args.imports}"
        bare = time_command([python, "-c", "pass"], tmp, args.imports)
        imports = time_command([python, "-c", "import torch, onnxruntime"], tmp, args.imports)
        gate_import = time_command(
            [python, "-c", "import gate.integrations.cli.main"], tmp, args.imports
        )
        rows.append(("python start (-c pass)", *bare, note))
        rows.append(("python + import torch, onnxruntime", *imports, note))
        rows.append(("python + import gate.integrations.cli.main", *gate_import, note))

        # Preparation: export + quantization into an empty cache (first in this process, so
        # with the imports of torch, onnx and onnxruntime.quantization; then into another empty
        # cache without them), then again with the cache warm.
        config = load_config(copy_example(tmp / "project", tmp / "report"))
        start = Mark.now()
        prepare_all(config, None, lambda message: None)
        first = Mark.now()
        again = dataclasses.replace(config, report_dir=tmp / "report-again")
        prepare_all(again, None, lambda message: None)
        cold = Mark.now()
        prepare_all(config, None, lambda message: None)
        warm = Mark.now()
        rows.append(("prepare_all, empty cache, 1st", *first.since(start), "with the imports"))
        rows.append(("prepare_all, empty cache, 2nd", *cold.since(first), "export + quantize"))
        rows.append(("prepare_all, warm cache", *warm.since(cold), "cache hits"))

        measured = None
        if args.in_process:
            # One gate run's measuring, phase by phase (a fresh report dir: empty cache).
            config = dataclasses.replace(config, report_dir=tmp / "report-in-process")
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
            # The rest of a run: the record, the comparison (no baseline), the report files.
            start = Mark.now()
            record = make_record(config, measured.samples, measured.info, measured.errors)
            outcome = gate_record(config, record)
            done = Mark.now()
            note = f"exit {int(outcome.exit_code)} (no baseline: all new)"
            rows.append(("  record + compare + write reports", *done.since(start), note))
            wall, cpu = done.since(watch.start)
            estimate = (wall + gate_import[0], cpu + gate_import[1])
            rows.append(("sum: gate start + the above", *estimate, "a whole gate run, estimated"))

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
    model = config.models[0]
    print(
        f"each fresh worker process pays ~{imports[0] - bare[0]:.1f} s importing torch + "
        f"onnxruntime (python itself starts in {bare[0]:.2f} s); a round also times "
        f"{len(model.variants)} variants x {len(model.batch_sizes)} batch sizes x "
        f">= {config.measure.min_time:g} s"
    )
    for label, wall, cpu, _ in rows:
        if label.strip().startswith("probes") and cpu is not None and wall > 0:
            print(
                f"in-process probes run up to 2 at a time: cpu/wall = {cpu / wall:.2f} "
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
