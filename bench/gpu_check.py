"""The GPU check: CUDA measurement, spread, paired resolution and A/A on a real GPU.

    .venv/bin/python bench/gpu_check.py            # on a machine with an NVIDIA GPU (< 8 min)
    .venv/bin/python bench/gpu_check.py --device cpu --quick   # the same flow on a CPU, small

Steps (each a real `perf-gate` run in a temporary git repository):
1. the GPU test subset (`pytest -m gpu tests/integration/test_cuda.py`);
2. `perf-gate run --save` in stored mode: median and between-process spread per benchmark, GPU
   memory, the fingerprint;
3. an A/A pull request (a docs-only commit) gated in `ab` mode: nothing may be flagged;
4. a pull request that adds one layer: 20 -> 21 layers (+5%) for a bf16 GEMM stack and a conv
   net, 33 -> 34 layers (+3%) for a second GEMM stack, with the latency threshold at 2%.
Models: compute-bound GEMM stacks (bf16 autocast) and a conv net, and a launch-bound MLP at
batch 1 in eager and CUDA-graphs variants. Goals: compute-bound spread <= 0.5%; +3% flagged at
a 2% threshold; A/A never flagged; the launch-bound MLP diagnosed (note naming CUDA graphs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODELS = textwrap.dedent(
    """
    import os

    import torch
    from torch import nn

    QUICK = os.environ.get("GPU_CHECK_QUICK") == "1"
    WIDTH = 256 if QUICK else 4096          # GEMM stack: [batch, WIDTH] x [WIDTH, WIDTH]
    GEMM_BATCH = 64 if QUICK else 4096
    CHANNELS, SIDE, CONV_BATCH = (8, 16, 4) if QUICK else (64, 56, 32)
    GEMM_LAYERS = 20
    GEMM3_LAYERS = 33
    CONV_LAYERS = 20


    def _seeded():
        torch.manual_seed(0)


    def gemm(layers=None):
        _seeded()
        n = GEMM_LAYERS if layers is None else layers
        return nn.Sequential(*[nn.Linear(WIDTH, WIDTH, bias=False) for _ in range(n)])


    def gemm3():
        return gemm(GEMM3_LAYERS)


    def gemm_input(batch_size):
        return torch.randn(GEMM_BATCH, WIDTH, generator=torch.Generator().manual_seed(0))


    def conv():
        _seeded()
        layers = []
        for _ in range(CONV_LAYERS):
            layers += [nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1), nn.ReLU()]
        return nn.Sequential(*layers)


    def conv_input(batch_size):
        generator = torch.Generator().manual_seed(0)
        return torch.randn(CONV_BATCH, CHANNELS, SIDE, SIDE, generator=generator)


    def mlp():
        _seeded()
        return nn.Sequential(
            nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
        )


    def mlp_input(batch_size):
        return torch.randn(batch_size, 256, generator=torch.Generator().manual_seed(0))
    """
)


def config(device: str, quick: bool) -> str:
    gpu = device.startswith("cuda")
    half = "torch-bf16"
    graphs = "[torch, torch-cuda-graphs]" if gpu else "[torch]"
    memory = "[latency, gpu_memory]" if gpu else "[latency]"
    rounds = 4 if quick else 8
    return textwrap.dedent(
        f"""
        models:
          gemm20:
            torch: models:gemm
            input: models:gemm_input
            device: {device}
            variants: [{half}]
            metrics: {memory}
          gemm33:
            torch: models:gemm3
            input: models:gemm_input
            device: {device}
            variants: [{half}]
            metrics: {memory}
          conv20:
            torch: models:conv
            input: models:conv_input
            device: {device}
            variants: [torch]
            metrics: {memory}
          mlp-b1:
            torch: models:mlp
            input: models:mlp_input
            device: {device}
            variants: {graphs}
            metrics: [latency]
        policy:
          thresholds: {{latency: 2%}}
          min_rounds: {rounds}
          max_rounds: {rounds}
        measure: {{rounds: {rounds}, warmup: 20, min_calls: 50, min_time: 0.2s, probes: 1}}
        """
    )


def shell(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def git(project: Path, env: dict[str, str], *args: str) -> None:
    identity = ["-c", "user.name=gpu check", "-c", "user.email=check@example.invalid"]
    completed = shell(["git", *identity, *args], project, env)
    if completed.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {completed.stderr}")


def perf_gate(project: Path, env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    started = time.perf_counter()
    completed = shell([sys.executable, "-m", "gate", "run", *args], project, env)
    took = time.perf_counter() - started
    print(f"$ perf-gate run {' '.join(args)}  -> exit {completed.returncode} in {took:.0f} s")
    if completed.returncode not in (0, 1):
        print(completed.stdout[-3000:], completed.stderr[-3000:], sep="\n")
    comparison = project / ".perf-gate" / "comparison.json"
    return completed.returncode, json.loads(comparison.read_text()) if comparison.is_file() else {}


def cv(values: list[float]) -> float:
    mean = sum(values) / len(values)
    if len(values) < 2 or mean == 0:
        return float("nan")
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return float(variance**0.5 / mean)


def change_text(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("relative_change") is None:
        return "-"
    low, high = entry.get("ci_low"), entry.get("ci_high")
    interval = (
        f" [{low * 100:+.1f}, {high * 100:+.1f}]" if low is not None and high is not None else ""
    )
    return f"{entry['relative_change'] * 100:+.1f}%{interval} {entry['verdict']}"


def latency_entries(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["benchmark"]: c for c in report.get("comparisons", []) if c["metric"] == "latency"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="small models (to try the flow)")
    args = parser.parse_args()
    started = time.perf_counter()
    env = dict(os.environ, GPU_CHECK_QUICK="1" if args.quick else "0", PYTHONPATH=str(REPO))

    from gate.measure.environment import fingerprint

    print("fingerprint:", json.dumps(fingerprint(1), indent=1, default=str))
    tests_ok = "skipped (no GPU)"
    if args.device.startswith("cuda"):
        tests = shell(
            [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests/integration/test_cuda.py"],
            REPO,
            env,
        )
        tests_ok = tests.stdout.strip().splitlines()[-1] if tests.stdout.strip() else "no output"
        print("GPU tests:", tests_ok)
        if tests.returncode != 0:
            print(tests.stdout[-4000:], tests.stderr[-2000:], sep="\n")

    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch)
        (project / "models.py").write_text(MODELS, encoding="utf-8")
        (project / "perf-gate.yaml").write_text(config(args.device, args.quick), encoding="utf-8")
        (project / ".gitignore").write_text(".perf-gate/\n__pycache__/\n", encoding="utf-8")
        git(project, env, "init", "-q", "-b", "main")
        git(project, env, "add", "-A")
        git(project, env, "commit", "-q", "-m", "models")

        save_code, _ = perf_gate(project, env, "--save", "--mode", "stored")
        if save_code != 0:
            print("recording the baseline failed; see the output above")
            return 1
        baseline = json.loads((project / "baselines" / "main.json").read_text())
        samples = {(s["benchmark"], s["metric"]): s for s in baseline["samples"]}
        info = baseline.get("info", {})

        (project / "NOTES.md").write_text("docs only\n", encoding="utf-8")
        git(project, env, "add", "-A")
        git(project, env, "commit", "-q", "-m", "docs only (A/A)")
        aa_code, aa = perf_gate(project, env, "--mode", "ab", "--ab", "HEAD~1")

        source = (project / "models.py").read_text(encoding="utf-8")
        source = source.replace("GEMM_LAYERS = 20", "GEMM_LAYERS = 21")
        source = source.replace("GEMM3_LAYERS = 33", "GEMM3_LAYERS = 34")
        source = source.replace("CONV_LAYERS = 20", "CONV_LAYERS = 21")
        (project / "models.py").write_text(source, encoding="utf-8")
        git(project, env, "commit", "-q", "-am", "one more layer")
        change_code, changed = perf_gate(project, env, "--mode", "ab", "--ab", "HEAD~1")

    aa_latency, change_latency = latency_entries(aa), latency_entries(changed)
    injected = {"gemm20": "+5%", "gemm33": "+3%", "conv20": "+5%", "mlp-b1": "none"}
    header = ("benchmark", "median", "spread", "A/A (ab)", "injected", "change (ab)", "GPU mem")
    rows = []
    for (name, metric), sample in sorted(samples.items()):
        if metric != "latency":
            continue
        values = sample["values"]
        memory = samples.get((name, "gpu_memory.allocated"))
        rows.append(
            (
                name,
                f"{sorted(values)[len(values) // 2] * 1e3:.3f} ms",
                f"{cv(values) * 100:.2f}%",
                change_text(aa_latency.get(name)),
                injected.get(name.split("[")[0], "?"),
                change_text(change_latency.get(name)),
                f"{memory['values'][0] / 2**20:.0f} MiB" if memory else "-",
            )
        )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))

    print("\nnotes of the change run:")
    for note in changed.get("notes", []) + changed.get("warnings", []):
        print(" -", note)
    launch = {k: (v.get("gpu_ms_per_call"), v.get("wall_ms_per_call")) for k, v in info.items()}
    print("kernel ms / wall ms per call:", launch)
    flagged_aa = [n for n, e in aa_latency.items() if e["verdict"] == "regression"]
    compute = [n for n in change_latency if not n.startswith("mlp")]
    spreads = {
        n: cv(samples[(n, "latency")]["values"]) for n in compute if (n, "latency") in samples
    }
    print("\ngoals:")
    print(f" - A/A flagged nothing: {not flagged_aa} {flagged_aa or ''} (exit {aa_code})")
    gemm33 = change_latency.get("gemm33[torch-bf16]", {})
    flagged = gemm33.get("verdict") == "regression"
    print(f" - +3% flagged at a 2% threshold: {flagged} (exit {change_code})")
    print(
        " - compute-bound spread <= 0.5%: "
        + ", ".join(f"{n} {s * 100:.2f}%" for n, s in spreads.items())
    )
    print(f" - GPU tests: {tests_ok}")
    print(f"\n{platform.node()}: {time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
