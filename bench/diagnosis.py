"""What a diagnosis costs and how much of an injected regression it explains.

Copies the digits example into a temporary git repository (the MLP 64 -> 128 -> 10, variants
torch, torch-int8, onnxruntime, onnxruntime-int8, latency at batch 1), commits it, then commits
a single-layer change: one more ``nn.Linear(128, 128)`` after the hidden ReLU (seeded weights).
Each gate run (``gate.pipeline.run_gate``, ab/duet against HEAD~1, ``policy.diagnose:
on-regression``) is timed through its progress messages: the diagnosis starts at its
"diagnosis: profiling ..." message and ends when the run returns (the profile diffs are made
after the decision, so nothing else runs in between). Wall and CPU seconds (this process plus
finished children) show whether the profiling workers waited for a core.

Per variant it prints the measured change per call (timing rounds), the profiled change
(the operators' self time, base -> head), the change outside any operator (time per call
without the profiler minus the operators' self time: Python code, dispatch), the share of the
measured change the top 5 operators explain, and the top operator. Runs: the four variants at
batch 1 (latency) in one gate run (one profiling worker per side for all of them), ``--repeats``
times; torch and onnxruntime alone (``--select``), which shows the fixed cost (process start,
imports, profiler start) one diagnosed benchmark pays; the four variants at batch 32
(throughput), where the same layer does 32 times the work per operator call, ``--repeats``
times. A summary gives each variant's median share and its range over the runs: a change of a
few microseconds per call is split over several small operators, and each profile is one
process on a shared machine, so single runs scatter.

Goals (issue 9): <= 10 s of extra wall time per regressed benchmark on 2 cores; the top 5
operators explain >= 80% of the single-layer change (judged on the median over the runs, and
counted as met only up to 125%: far above 100% the profiles overstate the change).

    .venv/bin/python bench/diagnosis.py [--quick] [--rounds N] [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from gate.config import load_config
from gate.core.diagnosis import Diagnosis
from gate.pipeline import GateRequest, run_gate
from gate.units import format_value

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits"
VARIANTS = ("torch", "torch-int8", "onnxruntime", "onnxruntime-int8")
GOAL_SECONDS = 10.0
GOAL_SHARE = 0.80
CEILING_SHARE = 1.25  # a median share above this overstates the change: not an explanation
CONFIG = """
models:
  digits-mlp:
    torch: model:build
    input: model:example_batch
    variants: [{variants}]
    metrics: [{metric}]
    batch_sizes: [{batch}]
policy: {{min_rounds: {rounds}, max_rounds: {rounds}}}
measure: {{rounds: 3, warmup: 20, min_calls: 100, min_time: 0.1s, threads: 1, probes: 1}}
"""
EXTRA_LAYER = """

def build() -> DigitsMLP:  # the pull request: one more Linear layer after the hidden ReLU
    model = load("mlp")
    torch.manual_seed(0)
    extra = nn.Linear(128, 128)
    with torch.no_grad():
        extra.weight.mul_(0.1)
    layers = list(model.net)
    model.net = nn.Sequential(*layers[:2], extra, *layers[2:])
    return model.eval()
"""


def cpu_seconds() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


@dataclass
class Stopwatch:
    """A progress callback that keeps the wall and CPU time of the diagnosis message."""

    started: tuple[float, float] | None = None
    messages: list[str] = field(default_factory=list)

    def __call__(self, message: str) -> None:
        self.messages.append(message)
        if message.startswith("diagnosis:"):
            self.started = (time.perf_counter(), cpu_seconds())


def git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run(["git", *identity, *args], cwd=repo, check=True, capture_output=True)


def configure(root: Path, rounds: int, batch: int) -> None:
    """Latency at batch 1, or throughput at a larger batch (the same layer, more work per op)."""
    metric = "latency" if batch == 1 else "throughput"
    config = CONFIG.format(variants=", ".join(VARIANTS), rounds=rounds, metric=metric, batch=batch)
    (root / "perf-gate.yaml").write_text(config, encoding="utf-8")


def project(root: Path, rounds: int) -> Path:
    """The example with the single-layer change committed on top of it."""
    for name in ("model.py", "digits.npz", "weights-mlp.npz"):
        shutil.copy2(EXAMPLE / name, root / name)
    configure(root, rounds, 1)
    (root / ".gitignore").write_text(".perf-gate/\n__pycache__/\n", encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "digits MLP")
    model = root / "model.py"
    source = model.read_text(encoding="utf-8")
    old = 'def build() -> DigitsMLP:\n    return load("mlp")\n'
    assert old in source, "examples/digits/model.py no longer has the expected build()"
    model.write_text(source.replace(old, "") + EXTRA_LAYER, encoding="utf-8")
    git(root, "commit", "-q", "-am", "one more Linear layer")
    return root


@dataclass(frozen=True)
class Run:
    label: str
    diagnosed: int
    wall: float
    cpu: float
    diagnoses: tuple[Diagnosis, ...]


def gate_run(root: Path, selected: set[str] | None, label: str) -> Run:
    config = load_config(root=root)
    watch = Stopwatch()
    outcome = run_gate(config, GateRequest(selected=selected, base_ref="HEAD~1"), watch)
    ended = (time.perf_counter(), cpu_seconds())
    if watch.started is None:
        return Run(label, 0, 0.0, 0.0, outcome.diagnoses)
    return Run(
        label,
        len(outcome.diagnoses),
        ended[0] - watch.started[0],
        ended[1] - watch.started[1],
        outcome.diagnoses,
    )


def us(value: float | None) -> str:
    if value is None:
        return "-"
    return ("+" if value >= 0 else "-") + format_value(abs(value), "s")


def print_costs(runs: list[Run]) -> None:
    print("\nDiagnosis cost (wall from the 'diagnosis:' message to the end of the run):")
    header = ("gate run", "diagnosed", "wall s", "cpu s", "wall s per benchmark")
    rows = [
        (
            r.label,
            str(r.diagnosed),
            f"{r.wall:.1f}",
            f"{r.cpu:.1f}",
            f"{r.wall / r.diagnosed:.1f}" if r.diagnosed else "-",
        )
        for r in runs
    ]
    table(header, rows)


def print_shares(runs: list[Run]) -> None:
    print("\nWhat the profiles explain (single-layer change; changes per call):")
    header = (
        "gate run",
        "benchmark",
        "metric",
        "verdict",
        "measured",
        "profiled",
        "outside ops",
        "top 5 explain",
        "top",
    )
    rows = []
    for run in runs:
        for d in run.diagnoses:
            if not d.available:
                rows.append((run.label, d.benchmark, d.metric, d.verdict, *"----", d.missing[:60]))
                continue
            top = d.top()
            outside = d.outside
            rows.append(
                (
                    run.label,
                    d.benchmark,
                    d.metric,
                    d.verdict,
                    us(d.measured_change),
                    us(d.head_total - d.base_total),
                    us(outside[1] - outside[0]) if outside else "-",
                    f"{d.explained * 100:.0f}%" if d.explained is not None else "-",
                    f"{top[0].operator} {us(top[0].increase)}" if top else "-",
                )
            )
    table(header, rows)


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for index, row in enumerate([header, *rows]):
        print("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            print("  " + "  ".join("-" * w for w in widths))


def batch_of(label: str) -> str:
    return label.split(",")[0]  # "batch 1, all 4 #2" -> "batch 1"


def print_summary(runs: list[Run]) -> dict[tuple[str, str], list[float]]:
    """Per batch and variant: the spread of the explained share over the runs."""
    shares: dict[tuple[str, str], list[float]] = {}
    outside: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        for d in run.diagnoses:
            if d.explained is None or d.measured_change is None:
                continue
            key = (batch_of(run.label), d.benchmark)
            shares.setdefault(key, []).append(d.explained)
            if d.outside is not None:
                change = (d.outside[1] - d.outside[0]) / d.measured_change
                outside.setdefault(key, []).append(change)
    print("\nExplained share over the runs (median, min..max; outside operators: median):")
    header = ("batch", "benchmark", "runs", "top 5 explain", "range", "outside ops")
    rows = [
        (
            batch,
            name,
            str(len(values)),
            f"{statistics.median(values):.0%}",
            f"{min(values):.0%}..{max(values):.0%}",
            f"{statistics.median(outside[(batch, name)]):.0%}" if (batch, name) in outside else "-",
        )
        for (batch, name), values in sorted(shares.items())
    ]
    table(header, rows)
    return shares


def print_goals(runs: list[Run], shares: dict[tuple[str, str], list[float]]) -> None:
    per_benchmark = [r.wall / r.diagnosed for r in runs if r.diagnosed]
    print("\nGoals:")
    if per_benchmark:
        worst = max(per_benchmark)
        verdict = "MET" if worst <= GOAL_SECONDS else "NOT MET"
        print(
            f"  extra wall time per regressed benchmark <= {GOAL_SECONDS:g} s: worst {worst:.1f} s"
            f" -> {verdict}"
        )
    else:
        print("  extra wall time: nothing was diagnosed (no regression detected)")
    for (batch, name), values in sorted(shares.items()):
        middle = statistics.median(values)
        # Above 100% the profiles overstate the change; far above, they do not explain it.
        verdict = "MET" if GOAL_SHARE <= middle <= CEILING_SHARE else "NOT MET"
        print(
            f"  top 5 explain {GOAL_SHARE:.0%}..{CEILING_SHARE:.0%} of the single-layer change, "
            f"{name} at {batch}:"
            f" median {middle:.0%} of {len(values)} -> {verdict}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one batch-1 run of all four only")
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds per run (default 5)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="gate runs of all four per batch size (default 3)"
    )
    args = parser.parse_args()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"bench/diagnosis.py: {os.cpu_count()} cores, load average {load}; rounds {args.rounds}")
    repeats = 1 if args.quick else args.repeats
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="perf-gate-diagnosis-") as scratch:
        root = project(Path(scratch), args.rounds)
        for index in range(repeats):
            runs.append(gate_run(root, None, f"batch 1, all 4 #{index + 1}"))
        if not args.quick:
            for variant in ("torch", "onnxruntime"):
                name = f"digits-mlp[{variant}]"
                runs.append(gate_run(root, {name}, f"batch 1, {variant} alone"))
            configure(root, args.rounds, 32)  # the base's plans are made from this config too
            for index in range(repeats):
                runs.append(gate_run(root, None, f"batch 32, all 4 #{index + 1}"))
    print_costs(runs)
    print_shares(runs)
    print_goals(runs, print_summary(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
